"""Terraform said once: every setting is declared in modules/pipeline/variables.tf, and the
environment roots' pass-throughs are generated from it by scripts/terraform-passthrough.py."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "terraform-passthrough.py"
TERRAFORM = ROOT / "terraform"


def _script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("terraform_passthrough", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


passthrough = _script()


def _pipeline() -> dict[str, dict[str, list[str]]]:
    result: dict[str, dict[str, list[str]]] = passthrough.variables(
        (TERRAFORM / "modules" / "pipeline" / "variables.tf").read_text()
    )
    return result


def test_the_pass_throughs_are_current() -> None:
    run = subprocess.run([sys.executable, str(SCRIPT), "--check"], capture_output=True, text=True, check=False)
    assert run.returncode == 0, run.stderr


def test_no_setting_is_declared_twice_in_the_roots_and_the_pipeline() -> None:
    twice = passthrough.declared_more_than_once()
    assert {name: paths for name, paths in twice.items() if sum(not p.startswith("examples/") for p in paths) > 1} == {}


def test_every_setting_reaches_the_pipeline_with_its_default_written_once() -> None:
    shared = TERRAFORM / "environments" / "shared"
    root = passthrough.variables((shared / "variables.tf").read_text())
    pipeline = _pipeline()
    assert set(pipeline) <= set(root)
    call = (shared / "main.tf").read_text()
    for name, args in pipeline.items():
        assert re.search(rf"^  {name}\s+= var\.{name}$", call, re.M), f"{name} is not passed to the pipeline"
        assert root[name]["type"] == args["type"], f"{name}: the root's type differs from the pipeline's"
        if "default" in args:  # the root's null becomes the pipeline's default, which must then refuse null
            assert root[name]["default"][0].split("=", 1)[1].split("#")[0].strip() == "null", name
            assert args["default"][0].endswith("= null") or args.get("nullable") == ["  nullable    = false"], name
        else:
            assert "default" not in root[name], f"{name} is required in the pipeline, so in the root too"


def test_every_output_of_the_pipeline_is_an_output_of_the_roots() -> None:
    pipeline: dict[str, dict[str, list[str]]] = {}
    for tf in (TERRAFORM / "modules" / "pipeline").glob("*.tf"):
        pipeline |= passthrough.variables(tf.read_text(), "output")
    root = passthrough.variables((TERRAFORM / "environments" / "shared" / "outputs.tf").read_text(), "output")
    assert set(root) == set(pipeline) and "buckets" in root
    for name, args in root.items():
        assert args["value"] == [f"  value       = module.pipeline.{name}"]
        assert args["description"] == pipeline[name]["description"]


def test_every_environment_root_links_the_shared_files() -> None:
    for env in ("dev", "staging", "prod", "local"):
        for name in ("main.tf", "variables.tf", "outputs.tf", "versions.tf"):
            path = TERRAFORM / "environments" / env / name
            assert path.is_symlink() and path.resolve() == (TERRAFORM / "environments" / "shared" / name).resolve()


def test_the_check_catches_a_setting_added_without_regenerating() -> None:
    pipeline = (TERRAFORM / "modules" / "pipeline" / "variables.tf").read_text()
    new = 'variable "new_setting" {\n  type        = number\n  description = "New."\n  default     = 1\n}\n'
    added = pipeline + "\n" + new
    parsed = passthrough.variables(added)
    generated = passthrough.root_variables(parsed)
    assert 'variable "new_setting" {\n  type        = number\n  description = "New."\n  default     = null' in generated
    assert "  new_setting" in passthrough.module_call(parsed)
    current = (TERRAFORM / "environments" / "shared" / "variables.tf").read_text()
    assert passthrough.splice(current, generated) != current


def test_validation_blocks_stay_in_the_pipeline() -> None:
    text = 'variable "x" {\n  type = number\n\n  validation {\n    condition = var.x > 0\n  }\n  default = 2\n}\n'
    assert passthrough.variables(text) == {"x": {"type": ["  type = number"], "default": ["  default = 2"]}}


#: modules/iot still writes these defaults of its own (its variables.tf was another change's this session)
def test_a_settings_default_is_not_written_again_where_the_pipeline_passes_it_on() -> None:
    assert passthrough.defaults_written_again() == []


def test_the_count_finds_a_default_written_again(tmp_path: Path) -> None:
    (tmp_path / "modules" / "pipeline").mkdir(parents=True)
    (tmp_path / "modules" / "pipeline" / "variables.tf").write_text(
        'variable "memory" {\n  type        = number\n  description = "MB."\n  default     = 1024\n}\n'
    )
    (tmp_path / "modules" / "pipeline" / "main.tf").write_text(
        'module "processor" {\n  source    = "../processor"\n  memory_mb = var.memory\n}\n'
    )
    (tmp_path / "modules" / "processor").mkdir()
    processor = 'variable "memory_mb" {\n  type        = number\n  description = "MB."\n  default     = 1024\n}\n'
    (tmp_path / "modules" / "processor" / "variables.tf").write_text(processor)
    assert passthrough.defaults_written_again(tmp_path) == ["memory -> module.processor.memory_mb"]
    (tmp_path / "modules" / "processor" / "variables.tf").write_text(processor.replace("  default     = 1024\n", ""))
    assert passthrough.defaults_written_again(tmp_path) == []

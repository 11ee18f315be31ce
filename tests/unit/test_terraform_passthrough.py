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

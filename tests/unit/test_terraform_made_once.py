"""Each kind of resource that several modules need is made by one module, so the copies cannot
drift: a service's log group (terraform/modules/log_group, with the role a service that writes
it itself assumes) and a Lambda's schedules (terraform/modules/schedule, with the scheduler's
role). Buckets have their own test (test_terraform_buckets.py)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2] / "terraform"
#: resource type -> the one module allowed to declare it
MADE_BY = {
    "aws_cloudwatch_log_group": "log_group",
    "aws_scheduler_schedule": "schedule",
}
MODULE_SOURCE = re.compile(r'module\s+"[^"]+"\s*\{[^}]*?source\s*=\s*"([^"]+)"', re.DOTALL)


def declared_outside(root: Path, resource_type: str, module: str) -> list[str]:
    """``file`` of each declaration of ``resource_type`` outside ``modules/<module>``."""
    home = root / "modules" / module
    pattern = re.compile(rf'^\s*resource\s+"{resource_type}"', re.MULTILINE)
    return [
        str(tf.relative_to(root))
        for tf in sorted(root.rglob("*.tf"))
        if ".terraform" not in tf.parts and home not in tf.parents and pattern.search(tf.read_text())
    ]


def users(root: Path, module: str) -> set[str]:
    """The modules that call ``modules/<module>``."""
    return {
        tf.parent.name
        for tf in (root / "modules").rglob("*.tf")
        if any(src.rstrip("/").endswith(f"/{module}") for src in MODULE_SOURCE.findall(tf.read_text()))
    }


@pytest.mark.parametrize(("resource_type", "module"), MADE_BY.items())
def test_only_its_module_declares_the_resource(resource_type: str, module: str) -> None:
    assert declared_outside(ROOT, resource_type, module) == []


def test_every_service_log_group_and_schedule_comes_from_its_module() -> None:
    assert users(ROOT, "log_group") >= {"function", "network", "api"}
    assert users(ROOT, "schedule") >= {"compaction", "report"}


def test_the_check_finds_a_log_group_written_by_hand(tmp_path: Path) -> None:
    (tmp_path / "modules" / "x").mkdir(parents=True)
    (tmp_path / "modules" / "x" / "main.tf").write_text(
        'resource "aws_cloudwatch_log_group" "flow" {\n  name = "f"\n}\n'
    )
    (tmp_path / "modules" / "log_group").mkdir()
    (tmp_path / "modules" / "log_group" / "main.tf").write_text('resource "aws_cloudwatch_log_group" "this" {}\n')
    assert declared_outside(tmp_path, "aws_cloudwatch_log_group", "log_group") == ["modules/x/main.tf"]

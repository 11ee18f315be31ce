"""scripts/terraform-docs.py: each module's README lists every input and output, and is current."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MODULES = sorted(p.parent for p in (ROOT / "terraform" / "modules").glob("*/variables.tf"))


def test_every_module_readme_is_current() -> None:
    run = subprocess.run([sys.executable, str(ROOT / "scripts" / "terraform-docs.py"), "--check"],
                         capture_output=True, text=True, check=False)  # fmt: skip
    assert run.returncode == 0, run.stderr


@pytest.mark.parametrize("module", MODULES, ids=[m.name for m in MODULES])
def test_the_tables_name_every_variable_and_output_with_its_description(module: Path) -> None:
    readme = (module / "README.md").read_text()
    for kind, file in (("variable", "variables.tf"), ("output", "outputs.tf")):
        source = (module / file).read_text()
        names = re.findall(rf'^{kind} "([^"]+)"', source, re.M)
        described = re.findall(r'^  description\s*=\s*"((?:[^"\\]|\\.)*)"', source, re.M)
        assert len(names) == len(described), f"every {kind} in {module.name}/{file} has a description"
        for name in names:
            row = next((r for r in readme.splitlines() if r.startswith(f"| `{name}` |")), None)
            assert row is not None, f"{module.name}: {kind} {name} missing from README.md"
        for text in described:
            assert text.replace("\\", "").replace("|", "\\|")[:40] in readme.replace("\\\\", "\\")

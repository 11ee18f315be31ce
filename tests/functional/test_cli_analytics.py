"""``iotpm query`` over a folder copy of an archive the processor wrote."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from iotpm.cli.app import app
from iotpm.service.in_memory import MemoryPipeline
from iotpm.service.samples import batch
from iotpm.testing.archive import write_archive

T0 = 1_790_000_000_000  # 2026-09-21T14:13:20Z
DAY = "2026-09-21"


@pytest.fixture
def folder(tmp_path: Path, memory_pipeline: Callable[..., MemoryPipeline]) -> str:
    """A folder copy of what the processor archived of 3 devices (dev-0001 hot from reading 5)."""
    stores = memory_pipeline(timeseries=True)
    stores.processor()(batch(3, 20, start_ms=T0, faulty=[1], fault_from=5))
    write_archive(stores.archive, tmp_path)
    return str(tmp_path)


def test_query_runs_a_named_query_and_prints_json(folder: str) -> None:
    args = ["query", "limit_breaches_per_line_per_day", "--day", DAY, "--archive", folder, "--json"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    (row,) = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    assert row["temperature_breaches"] == 15 and row["devices_in_breach"] == 1


def test_query_runs_any_sql_and_names_what_is_missing(folder: str) -> None:
    sql = "SELECT count(DISTINCT device_id) AS devices FROM ${readings} r"
    result = CliRunner().invoke(app, ["query", "--sql", sql, "--archive", folder, "--json"])
    assert result.exit_code == 0 and json.loads(result.stdout.splitlines()[0]) == {"devices": 3}
    missing = CliRunner().invoke(app, ["query", "device_readings", "--archive", folder])
    assert missing.exit_code == 2 and "device_id" in missing.output
    unknown = CliRunner().invoke(app, ["query", "nope", "--archive", folder])
    assert unknown.exit_code == 2 and "device_readings" in unknown.output


def test_query_compact_writes_parquet_and_answers_the_same(tmp_path: Path, folder: str) -> None:
    args = ["query", "limit_breaches_per_line_per_day", "--day", DAY, "--archive", folder, "--json"]
    raw = CliRunner().invoke(app, args)
    compacted = CliRunner().invoke(app, [*args, "--compact"])
    assert compacted.exit_code == 0, compacted.output
    assert "compacted 1 hours" in compacted.stderr and list(tmp_path.glob("compacted/readings/*/*/*/*/*.parquet"))
    assert compacted.stdout == raw.stdout and json.loads(raw.stdout.splitlines()[0])["readings"] == 60

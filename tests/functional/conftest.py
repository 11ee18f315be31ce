"""Fixtures of the functional tests (handlers and commands with in-memory fakes)."""

from __future__ import annotations

from pathlib import Path

import pytest

#: the shared anomaly benchmark's data, beside the checkout on the development machines (never copied into the repo)
_ANOMALY_BENCH = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "anomaly-bench"


@pytest.fixture
def anomaly_bench() -> Path:
    """The anomaly benchmark's folder (NAB and the others); the test is skipped where it is not present."""
    if not _ANOMALY_BENCH.is_dir():
        pytest.skip("shared anomaly-bench data not present (never copied into the repo)")
    return _ANOMALY_BENCH

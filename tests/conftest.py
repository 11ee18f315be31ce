"""Shared fixtures: signals with a known answer."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

from iotpm.service.in_memory import MemoryPipeline

# CI machines are shared: generation slowed by another job's load is not a failing test
settings.register_profile("shared-machine", suppress_health_check=[HealthCheck.too_slow], deadline=None)
settings.load_profile("shared-machine")

REPO_ROOT = Path(__file__).resolve().parents[1]
BENCH = REPO_ROOT.parent / "shared" / "data" / "anomaly-bench"
INTERVAL_MS = 5_000


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(7)


def timestamps(n: int, start: int = 1_700_000_000_000) -> np.ndarray:
    """Regular epoch-ms timestamps, one reading every five seconds."""
    return start + np.arange(n, dtype=np.int64) * INTERVAL_MS


def healthy(rng: np.random.Generator, n: int) -> np.ndarray:
    """A healthy pump: temperature ~55 °C, vibration ~2 mm/s, pressure ~90 psi."""
    base = np.array([55.0, 2.0, 90.0])
    noise = np.array([0.5, 0.1, 1.5])
    return base + rng.normal(0.0, 1.0, (n, 3)) * noise


CHANNELS = ("temperature_c", "vibration_mm_s", "pressure_psi")


@pytest.fixture
def memory_pipeline() -> Callable[..., MemoryPipeline]:
    """The one factory for a processor over the in-memory stores:
    ``memory_pipeline(behind=True)`` gives the stores, ``.processor(settings=...)`` a processor over them."""
    return MemoryPipeline.build

"""Fixtures every tier shares: a seeded random generator and the one factory for a processor
over the in-memory stores.

Generators a test calls with arguments live in :mod:`iotpm.testing` (signals with a known
answer, an archive as a folder, ...), typed and importable; this file holds fixtures only.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

from iotpm.service.in_memory import MemoryPipeline

# CI machines are shared: generation slowed by another job's load is not a failing test
settings.register_profile("shared-machine", suppress_health_check=[HealthCheck.too_slow], deadline=None)
settings.load_profile("shared-machine")


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(7)


# session-scoped: it holds nothing, and a module-scoped fixture (a filled fleet) or a hypothesis test may use it
@pytest.fixture(scope="session")
def memory_pipeline() -> Callable[..., MemoryPipeline]:
    """The one factory for a processor over the in-memory stores:
    ``memory_pipeline(behind=True)`` gives the stores, ``.processor(settings=...)`` a processor over them."""
    return MemoryPipeline.build

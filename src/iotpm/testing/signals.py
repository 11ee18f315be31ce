"""Signals with a known answer: a healthy pump's readings at a regular interval.

What the detector's tests (and anyone checking a detector of their own) start from: three
channels of a pump running well, and epoch-ms timestamps one reading every five seconds.
A test adds its fault on top, so what it expects follows from what it added.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

#: the pump's channels, in the order :func:`healthy` gives them
CHANNELS = ("temperature_c", "vibration_mm_s", "pressure_psi")
#: milliseconds between two readings of :func:`timestamps`
INTERVAL_MS = 5_000
#: the healthy pump's level and noise per channel: ~55 °C, ~2 mm/s, ~90 psi
_LEVEL = (55.0, 2.0, 90.0)
_NOISE = (0.5, 0.1, 1.5)


def timestamps(n: int, start: int = 1_700_000_000_000) -> npt.NDArray[np.int64]:
    """Regular epoch-ms timestamps from ``start``, one reading every :data:`INTERVAL_MS`."""
    return start + np.arange(n, dtype=np.int64) * INTERVAL_MS


def healthy(rng: np.random.Generator, n: int) -> npt.NDArray[np.float64]:
    """``n`` readings of a healthy pump, shape ``(n, 3)`` in :data:`CHANNELS` order: the level plus Gaussian noise."""
    x: npt.NDArray[np.float64] = np.array(_LEVEL) + rng.normal(0.0, 1.0, (n, 3)) * np.array(_NOISE)
    return x

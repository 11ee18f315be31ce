"""Operating state: whether a machine runs, and whether it has settled since it started.

A stopped machine is not a faulty one: its vibration sits at the sensor's floor, a
stopped pump's pressure is below the 30 psi a running one must hold, and a reading
that repeats while nothing moves is not a stuck sensor. Each reading gets a gate:

- **off** when the device type's off-condition holds (every listed metric below its
  value, e.g. ``vibration_mm_s < 0.2``), or, for a device with no off-condition, when
  every metric sits at its floor: the lowest value it has reported before (a stopped
  machine's signals fall to their floor and stay there; a new, lower value is a drop
  and is scored, a return to the floor is idling);
- **starting** for ``start_s`` after each start of a machine with an off-condition (a
  pump's pressure is still building);
- **settling** until ``settle_s`` after it (temperatures are on their way to the
  operating point);
- **on** otherwise.

The gate is 1 when on, 0.5 while settling, 0 when off or starting, -1 when idle at a
learned floor. Below 1 the kernel treats the reading as missing to the statistical
detectors (no score, no adaptation, no repeat run); at 0 and below it drops the low
limits too; at -1 the step from the floor to the next reading is still scored (leaving
the floor may be the anomaly). The high limits always apply (an
overheating machine alarms even while it is stopped). A reading whose metric is
missing leaves the state as it was.

Vectorised over the devices of a kernel call; the state it carries per device (the
floors, whether it ran, when it started) is part of the device's state vector, so
chunks of any size give the same gates.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from iotpm.detection.state import FloatArray, IntArray, Layout

BoolArray = npt.NDArray[np.bool_]


def gates(
    packed: FloatArray,
    layout: Layout,
    ts: IntArray,
    x: FloatArray,
    lengths: IntArray,
    off_below: FloatArray,
    start_ms: float,
    settle_ms: float,
) -> FloatArray:
    """The gate (d, t) of each reading, advancing the operating state in ``packed`` in place.

    ``x`` (d, t, c) padded past ``lengths``; ``off_below`` (d, c) the off-condition (NaN:
    the metric is not part of it; a row of NaN: learned from the floors).
    """
    d, t, _ = x.shape
    valid = np.arange(t)[None, :] < lengths[:, None]
    floor = layout.view(packed, "floor")
    with np.errstate(invalid="ignore"):
        filled = np.where(np.isnan(x) | ~valid[..., None], np.inf, x)
        mins = np.minimum.accumulate(np.concatenate([floor[:, None, :], filled], axis=1), axis=1)
        at_floor = x == mins[:, :-1]  # equal to the lowest value reported before it
        below = x < off_below[:, None, :]
    listed: BoolArray = np.isfinite(off_below)  # (d, c)
    present = ~np.isnan(x)
    configured = np.any(listed, axis=1)[:, None]  # (d, 1)
    # off-condition: every listed metric present and below its value; known when all are present
    cond_known = np.all(present | ~listed[:, None, :], axis=2)
    cond_off = np.all(below | ~listed[:, None, :], axis=2)
    floor_known = np.all(present, axis=2)
    floor_off = np.all(at_floor, axis=2)
    known = np.asarray(np.where(configured, cond_known, floor_known), dtype=np.bool_) & valid
    off = np.asarray(np.where(configured, cond_off, floor_off), dtype=np.bool_)
    was = layout.scalar(packed, "running") > 0
    running = _carry(~off, known, was)
    before = np.concatenate([was[:, None], running[:, :-1]], axis=1)
    started = running & ~before & valid
    t_f = ts.astype(np.float64)
    last_start = np.maximum.accumulate(np.where(started, t_f, -np.inf), axis=1)
    last_start = np.fmax(last_start, layout.scalar(packed, "started")[:, None])
    # a start is a machine's (a device with an off-condition): leaving a learned floor is
    # scored at once, it may be the anomaly itself
    since = np.where(configured, t_f - last_start, np.inf)
    stopped = np.where(configured, 0.0, -1.0)  # at a learned floor, the step off it is scored
    gate = np.where(running, np.where(since >= settle_ms, 1.0, np.where(since >= start_ms, 0.5, 0.0)), stopped)
    gate = np.where(valid, gate, 0.0)
    rows, last = np.arange(d), np.maximum(lengths - 1, 0)
    has = lengths > 0
    floor[:] = mins[rows, lengths]
    layout.scalar(packed, "running")[:] = np.where(has, running[rows, last], was)
    layout.scalar(packed, "started")[:] = np.where(has, last_start[rows, last], layout.scalar(packed, "started"))
    return np.asarray(gate, dtype=np.float64)


def _carry(value: BoolArray, known: BoolArray, initial: BoolArray) -> BoolArray:
    """``value`` where ``known``, else the last known value before it (``initial`` before any)."""
    t = value.shape[1]
    idx = np.maximum.accumulate(np.where(known, np.arange(t)[None, :], -1), axis=1)
    taken = np.take_along_axis(value, np.maximum(idx, 0), axis=1)
    return np.asarray(np.where(idx >= 0, taken, initial[:, None]), dtype=np.bool_)

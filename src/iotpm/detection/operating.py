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
    d, t, c = x.shape
    valid = np.arange(t)[None, :] < lengths[:, None]
    listed: BoolArray = np.isfinite(off_below)  # (d, c)
    configured = np.any(listed, axis=1)[:, None]  # (d, 1)
    # per metric, (d, t) at a time: reductions over a handful of metrics are slower
    # than a loop over them
    cond_known, cond_off = valid.copy(), valid.copy()
    floor_known, floor_off = valid.copy(), valid.copy()
    learn = not bool(configured.all())
    floor = layout.view(packed, "floor")
    mins = np.empty((d, t + 1, c)) if learn else np.zeros(0)
    with np.errstate(invalid="ignore"):
        for j in range(c):
            xj = x[:, :, j]
            present = ~np.isnan(xj)
            lj = listed[:, j : j + 1]
            cond_known &= present | ~lj
            cond_off &= (xj < off_below[:, j : j + 1]) | ~lj
            if learn:
                mins[:, 0, j] = floor[:, j]
                np.minimum.accumulate(np.where(present & valid, xj, np.inf), axis=1, out=mins[:, 1:, j])
                np.minimum(mins[:, 1:, j], floor[:, j : j + 1], out=mins[:, 1:, j])
                floor_known &= present
                floor_off &= xj == mins[:, :-1, j]  # equal to the lowest value reported before it
    known = np.where(configured, cond_known, floor_known)
    off = np.where(configured, cond_off, floor_off)
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
    if learn:
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

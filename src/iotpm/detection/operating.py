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
- **stopping** while the load proxy of a running machine is more than ``coast_drop``
  below its level over the last ``coast_tau_s`` (a run-down: the rotor coasts, the head
  it built is gone within seconds);
- **on** otherwise.

The gate is 1 when on, 0.5 while settling, 0 when off, starting or stopping, -1 when idle
at a learned floor. Below 1 the kernel treats the reading as missing to the statistical
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

from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from iotpm.detection.native import NativeKernel
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
    coast_ms: float = 10_000.0,
    *,
    proxy: int = -1,
    coast_drop: float = 0.15,
    native: NativeKernel | None = None,
) -> FloatArray:
    """The gate (d, t) of each reading, advancing the operating state in ``packed`` in place.

    ``x`` (d, t, c) padded past ``lengths``; ``off_below`` (d, c) the off-condition (NaN:
    the metric is not part of it; a row of NaN: learned from the floors); ``proxy`` the
    load proxy's channel (-1: none, no run-down is told apart).
    """
    d, t = x.shape[:2]
    valid = np.arange(t)[None, :] < lengths[:, None]
    configured = np.any(np.isfinite(off_below), axis=1)[:, None]  # (d, 1)
    learn = not bool(configured.all())
    floor = layout.view(packed, "floor")
    condition = _off_condition(x, valid, off_below, floor, learn)
    known, off = condition.known, condition.off
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
    if proxy >= 0:
        settled = gate >= 1.0
        args = (t_f, x[:, :, proxy], valid, running, settled, coast_ms, coast_drop, start_ms, native)
        stopping = _run_down(packed, layout, *args)
        gate = np.where(stopping & running, 0.0, gate)
    gate = np.where(valid, gate, 0.0)
    rows, last = np.arange(d), np.maximum(lengths - 1, 0)
    has = lengths > 0
    if learn:
        floor[:] = condition.mins[rows, lengths]
    layout.scalar(packed, "running")[:] = np.where(has, running[rows, last], was)
    layout.scalar(packed, "started")[:] = np.where(has, last_start[rows, last], layout.scalar(packed, "started"))
    return np.asarray(gate, dtype=np.float64)


class OffCondition(NamedTuple):
    """Per reading (d, t): whether the off-condition is known and whether it holds."""

    known: BoolArray
    off: BoolArray
    mins: FloatArray  # (d, t + 1, c) the lowest value before each reading (learned floors only)


def _off_condition(
    x: FloatArray, valid: BoolArray, off_below: FloatArray, floor: FloatArray, learn: bool
) -> OffCondition:
    """The configured off-condition (every listed metric below its level) where a device
    has one, else the learned one (every metric at the lowest value it has reported)."""
    d, t, c = x.shape
    listed: BoolArray = np.isfinite(off_below)  # (d, c)
    configured = np.any(listed, axis=1)[:, None]  # (d, 1)
    # per metric, (d, t) at a time: reductions over a handful of metrics are slower
    # than a loop over them
    cond_known, cond_off = valid.copy(), valid.copy()
    floor_known, floor_off = valid.copy(), valid.copy()
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
    return OffCondition(known, off, mins)


def _run_down(
    packed: FloatArray,
    layout: Layout,
    t_f: FloatArray,
    v: FloatArray,
    valid: BoolArray,
    running: BoolArray,
    settled: BoolArray,
    coast_ms: float,
    drop: float,
    start_ms: float,
    native: NativeKernel | None = None,
) -> BoolArray:
    """Readings of a running machine whose load proxy ``v`` (d, t) runs down: more than
    ``drop`` below its level (an EWMA in time, ``coast_ms``, of the readings before, carried
    in the state) and more than four times its typical distance from that level (noise is no
    run-down: an EWMA over thirty times as long), or below half its running level (over as
    long: a rotor under half its speed delivers under a quarter of its head). Once it runs
    down it is stopping until it is back within ``drop`` of the level it ran down from, or
    stops, for at most ``start_ms`` (a stop is a transient like a start: a machine still
    turning after that runs at a new operating point). The spread and the running level
    learn from ``settled`` readings only (a start's overshoot is neither). One reading at a
    time, so chunks of any size give the same bits; in C when the library is there (the
    weights computed here for both)."""
    d, t = v.shape
    names = ("coast", "coast_t", "coast_dev", "coast_run", "coast_from", "coast_at")
    state = [layout.scalar(packed, name) for name in names]
    present = valid & running & np.isfinite(v)  # a wild value (inf) is no level
    # per reading: 0 nothing to learn, 1 present, 2 present and settled, -1 stopped
    marks = np.where(present, 1.0 + (present & settled), np.where(valid & ~running, -1.0, 0.0))
    # the time since the previous present reading (or the state's), and the weights for it
    if present.all():  # the usual batch: the reading before
        prev_t = np.concatenate([state[1][:, None], t_f[:, :-1]], axis=1)
    else:
        idx = np.maximum.accumulate(np.where(present, np.arange(t)[None, :], -1), axis=1)
        prev = np.concatenate([np.full((d, 1), -1), idx[:, :-1]], axis=1)
        prev_t = np.where(prev >= 0, np.take_along_axis(t_f, np.maximum(prev, 0), axis=1), state[1][:, None])
    # first-order weights of the elapsed time (a reading a time constant or more after the
    # last one replaces the level); while it has seen little, an average weighs all alike
    elapsed = np.maximum(t_f - prev_t, 0.0)
    weight = np.minimum(elapsed / coast_ms, 1.0)
    seen = layout.scalar(packed, "n")[:, None] + (np.arange(t) + 1.0)[None, :]
    slow = np.fmax(np.minimum(elapsed / (30.0 * coast_ms), 1.0), 1.0 / seen)
    keep = 1.0 - drop
    levels = tuple(np.ascontiguousarray(a) for a in state)
    if native is not None:
        series = (np.ascontiguousarray(np.where(present, v, 0.0)), marks, t_f, weight, slow)
        out = native.run_down(keep, start_ms, series, levels) > 0.0
    else:
        out = _run_down_steps(keep, start_ms, v, marks, t_f, weight, slow, *levels)
    for field, value in zip(state, levels, strict=True):
        field[:] = value
    return out


def _run_down_steps(
    keep: float,
    start_ms: float,
    v: FloatArray,
    marks: FloatArray,
    t_f: FloatArray,
    weight: FloatArray,
    slow: FloatArray,
    lev: FloatArray,
    lev_t: FloatArray,
    dev: FloatArray,
    run: FloatArray,
    since: FloatArray,
    began: FloatArray,
) -> BoolArray:
    """The recursion of :func:`_run_down` in numpy, in the C code's order; the levels in place
    (``since``: the level a run-down started from, 0 while none is under way; ``began``: when)."""
    out = np.zeros(v.shape, dtype=bool)
    with np.errstate(invalid="ignore"):
        for j in range(v.shape[1]):
            vj, mj = v[:, j], marks[:, j]
            pj, sj = mj > 0.0, mj > 1.5
            gap = vj - lev
            # a fall of twice the run-down's share within one reading is a run-down whatever the
            # proxy's scatter (a production load does not lose 30 % at once)
            fresh = ((vj < keep * lev) & (-gap > 4.0 * dev)) | (vj < (2.0 * keep - 1.0) * lev) | (vj < 0.5 * run)
            tj = t_f[:, j]
            latched = (since > 0.0) & (tj - began <= start_ms)
            stop = pj & np.where(latched, vj < keep * since, fresh)
            out[:, j] = stop
            began[:] = np.where(pj & stop & ~latched, tj, began)
            since[:] = np.where(pj, np.where(stop, np.where(latched, since, lev), 0.0), np.where(mj < 0.0, 0.0, since))
            # the spread of the machine as it runs: not from the first reading (its distance
            # from nothing), nor from a run-down's
            steady = sj & (lev_t > 0.0) & ~stop
            dev[:] = np.where(steady, dev + slow[:, j] * (np.abs(gap) - dev), dev)
            run[:] = np.where(sj, np.where(run > 0.0, run + slow[:, j] * (vj - run), vj), run)
            lev[:] = np.where(pj, lev + weight[:, j] * gap, lev)
            lev_t[:] = np.where(pj, t_f[:, j], lev_t)
    return out


def _carry(value: BoolArray, known: BoolArray, initial: BoolArray) -> BoolArray:
    """``value`` where ``known``, else the last known value before it (``initial`` before any)."""
    t = value.shape[1]
    idx = np.maximum.accumulate(np.where(known, np.arange(t)[None, :], -1), axis=1)
    taken = np.take_along_axis(value, np.maximum(idx, 0), axis=1)
    return np.asarray(np.where(idx >= 0, taken, initial[:, None]), dtype=np.bool_)

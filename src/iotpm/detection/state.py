"""Compact, versioned per-device detector state.

A ready device's state is one float64 vector laid out by :class:`Layout`; a fleet is
the stack of those vectors, and the kernel works on named column views of the stack,
so loading and saving state for a batch is one ``np.stack`` and one row slice each.
A device still in warm-up also carries its warm-up buffer (at most ``warmup`` rows).
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from iotpm.detection._layout import CHANNEL_FIELDS, DEVICE_FIELDS, HISTORY_FIELDS, MATRIX_FIELDS, T2_HISTORY
from iotpm.models.metrics import parse_metric

STATE_VERSION: Final = 11

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

#: the layout of version 3 (before the operating-point baseline), whose states still load
_V3_CHANNEL_FIELDS: Final = (
    "mu", "s", "s_min", "dscale", "last_x", "run", "flat_thr", "cp", "cn", "fast", "slow", "zmax", "dmax",
    "smooth", "mew", "floor",
)  # fmt: skip
_V3_DEVICE_FIELDS: Final = (
    "n", "last_t", "dt_exp", "alarm", "above", "below", "cool", "health", "t2_on", "alarm_since", "running",
    "started",
)  # fmt: skip
_V3_FIXED: Final = (("t2_hist", T2_HISTORY),)
#: the layout of version 4 (before the alarm's lifecycle), whose states still load
_V4_CHANNEL_FIELDS: Final = (
    "mu", "s", "s_min", "last_x", "zmax", "cp", "cn", "dscale", "dmax", "run", "flat_thr", "op_m", "op_c", "op_f",
    "op_b", "smooth", "mew", "fast", "slow", "floor",
)  # fmt: skip
_V4_DEVICE_FIELDS: Final = (
    "n", "last_t", "load", "load_m", "load_v", "ran", "dt_exp", "t2_on", "alarm", "above", "below", "cool", "health",
    "alarm_since", "running", "started",
)  # fmt: skip
#: the layout of version 5 (before the load proxy as it is), whose states still load
_V5_CHANNEL_FIELDS: Final = (*_V4_CHANNEL_FIELDS[:19], "caused", "floor")
_V5_DEVICE_FIELDS: Final = (
    "n", "last_t", "interval", "r_adapt", "r_tail", "load", "load_m", "load_v", "ran", "dt_exp", "t2_on", "r_mewma",
    "r_ewma_limit", "alarm", "above", "below", "cool", "health", "alarm_since", "below_since", "severity", "esc_ref",
    "last_score", "running", "started", "coast", "coast_t", "coast_dev", "coast_run", "coast_from", "coast_at",
)  # fmt: skip
#: the layout of version 6 (before the drift's memory of the shift it learned), whose states still load
_V6_CHANNEL_FIELDS: Final = (
    "mu", "s", "s_min", "last_x", "zmax", "cp", "cn", "dscale", "dmax", "run", "flat_thr", "op_m", "op_c", "op_f",
    "op_b", "op_l", "smooth", "mew", "fast", "slow", "caused", "floor",
)  # fmt: skip
_V6_DEVICE_FIELDS: Final = (
    "n", "last_t", "interval", "r_adapt", "r_tail", "load", "load_m", "load_v", "ran", "now", "now_m", "now_v",
    "dt_exp", "t2_on", "r_mewma", "r_ewma_limit", "alarm", "above", "below", "cool", "health", "alarm_since",
    "below_since", "severity", "esc_ref", "last_score", "running", "started", "coast", "coast_t", "coast_dev",
    "coast_run", "coast_from", "coast_at",
)  # fmt: skip
#: the layout of version 7 as 49d607a wrote it (before the re-alarm's off-delay: 525ae4c added
#: ``cleared_at`` and ``off_mult`` and kept the version; the longer one is version 8), whose states
#: still load. Version 7 states of either size load: the size tells them apart
_V7_CHANNEL_FIELDS: Final = (
    "mu", "s", "s_min", "last_x", "zmax", "cp", "cn", "drift_from", "dscale", "dmax", "run", "flat_thr", "op_m",
    "op_c", "op_f", "op_b", "op_l", "smooth", "mew", "fast", "slow", "caused", "floor",
)  # fmt: skip
_V7_DEVICE_FIELDS: Final = _V6_DEVICE_FIELDS
#: the layout of versions 8 and 9 (and of 525ae4c's version 7: before the drift counted how long a
#: learned level has held still), whose states still load
_V8_CHANNEL_FIELDS: Final = _V7_CHANNEL_FIELDS
_V8_DEVICE_FIELDS: Final = (
    "n", "last_t", "interval", "r_adapt", "r_tail", "load", "load_m", "load_v", "ran", "now", "now_m", "now_v",
    "dt_exp", "t2_on", "r_mewma", "r_ewma_limit", "alarm", "above", "below", "cool", "health", "alarm_since",
    "below_since", "cleared_at", "off_mult", "severity", "esc_ref", "last_score", "running", "started", "coast",
    "coast_t", "coast_dev", "coast_run", "coast_from", "coast_at",
)  # fmt: skip
#: the layout of version 10 (before the drift marked a shift that began at a restart), whose states
#: still load
_V10_CHANNEL_FIELDS: Final = tuple(name for name in CHANNEL_FIELDS if name != "restart")
_V10_DEVICE_FIELDS: Final = DEVICE_FIELDS
#: the fixed-width fields' widths (each history field holds T2_HISTORY values)
_FIXED: Final = tuple((field, T2_HISTORY) for field in HISTORY_FIELDS)
_V3_MATRIX: Final = ("P",)


class Layout:
    """Offsets of every field in the state vector of a device with ``c`` channels: the
    declared fields (:mod:`iotpm.detection._layout`), per channel, per device, fixed-width
    and channels x channels, in that order."""

    def __init__(
        self,
        c: int,
        channel_fields: tuple[str, ...] = CHANNEL_FIELDS,
        device_fields: tuple[str, ...] = DEVICE_FIELDS,
        fixed: tuple[tuple[str, int], ...] = _FIXED,
        matrix: tuple[str, ...] = MATRIX_FIELDS,
    ) -> None:
        self.c = c
        self.offsets: dict[str, slice] = {}
        widths = [(name, c) for name in channel_fields] + [(name, 1) for name in device_fields]
        widths += [*fixed, *((name, c * c) for name in matrix)]
        at = 0
        for name, width in widths:
            self.offsets[name] = slice(at, at + width)
            at += width
        self.size = at

    def view(self, packed: FloatArray, name: str) -> FloatArray:
        """A writable view of one field across the stacked states (d, width)."""
        return packed[:, self.offsets[name]]

    def scalar(self, packed: FloatArray, name: str) -> FloatArray:
        """A writable (d,) view of a per-device field."""
        return packed[:, self.offsets[name].start]

    def matrix(self, packed: FloatArray) -> FloatArray:
        """The (d, c, c) precision matrices of the multivariate detector."""
        return packed[:, self.offsets["P"]].reshape(packed.shape[0], self.c, self.c)


@lru_cache(maxsize=64)
def layout_for(channels: int) -> Layout:
    """The (immutable) state layout for a channel count."""
    return Layout(channels)


def _frozen(array: npt.NDArray[Any]) -> npt.NDArray[Any]:
    array.flags.writeable = False
    return array


#: empty warm-up buffers, shared: a buffer is only ever replaced, never written in place
_NO_TIMES: Final = _frozen(np.zeros(0, dtype=np.int64))


@lru_cache(maxsize=64)
def _no_rows(channels: int) -> FloatArray:
    return _frozen(np.zeros((0, channels)))


@dataclass
class DeviceState:
    """Everything the detector carries between batches for one device."""

    channels: tuple[str, ...]
    vector: FloatArray
    ready: bool = False  # True once the baseline has been learned
    warm_t: IntArray = field(default_factory=lambda: _NO_TIMES)
    warm_x: FloatArray = field(default_factory=lambda: _no_rows(0))

    def __post_init__(self) -> None:
        c = len(self.channels)
        if self.warm_x.shape[1:] != (c,):
            self.warm_x = _no_rows(c) if not self.warm_x.size else self.warm_x.reshape(len(self.warm_t), c)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable form (base64 little-endian float64 arrays)."""
        out: dict[str, Any] = {
            "v": STATE_VERSION,
            "channels": list(self.channels),
            "ready": self.ready,
            "state": _b64(self.vector),
        }
        if not self.ready and len(self.warm_t):
            out["warm_t"] = _b64(self.warm_t.astype("<i8"))
            out["warm_x"] = _b64(self.warm_x)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DeviceState:
        """Inverse of :meth:`to_dict`; rejects versions it does not know."""
        if data.get("v") not in (3, 4, 5, 6, 7, 8, 9, 10, STATE_VERSION):
            raise ValueError(f"detector state version {data.get('v')!r} is not {STATE_VERSION}")
        channels = tuple(str(c) for c in data["channels"])
        vector = np.frombuffer(binascii.a2b_base64(data["state"], strict_mode=True), dtype="<f8").astype(np.float64)
        if data["v"] == 3:
            vector = _from_v3(vector, channels)
        elif data["v"] == 4:
            vector = _from_v4(vector, channels)
        elif data["v"] == 5:
            vector = _from_v5(vector, channels)
        elif data["v"] == 6:
            vector = _from_v6(vector, channels)
        elif data["v"] == 7:
            vector = _from_v7(vector, channels)
        elif data["v"] in (8, 9):
            vector = _from_v8(vector, channels)
        elif data["v"] == 10:
            vector = _from_v10(vector, channels)
        if vector.size != layout_for(len(channels)).size:
            raise ValueError("detector state does not match its channel list")
        if data["v"] < 9:
            _stuck_run_in_time(vector, layout_for(len(channels)), channels)
        state = cls(channels, vector, ready=bool(data["ready"]))
        if "warm_t" in data:
            state.warm_t = np.frombuffer(base64.b64decode(data["warm_t"]), dtype="<i8").astype(np.int64)
            warm = np.frombuffer(base64.b64decode(data["warm_x"]), dtype="<f8")
            state.warm_x = warm.astype(np.float64).reshape(len(state.warm_t), len(channels))
        return state


def _remapped(old: FloatArray, was: Layout, now: Layout) -> FloatArray:
    """``old``, laid out as ``was``, in the layout ``now``: each field copied by name, the fields
    ``was`` lacks at zero (each migration then sets them as a fresh state has them)."""
    if old.size != was.size:
        raise ValueError("detector state does not match its channel list")
    vector = np.zeros(now.size)
    for name, sl in was.offsets.items():
        vector[now.offsets[name]] = old[sl]
    return vector


def _from_v6(old: FloatArray, channels: tuple[str, ...]) -> FloatArray:
    """A version-6 vector in the current layout: no shift learned yet to remember."""
    c = len(channels)
    was, now = Layout(c, _V6_CHANNEL_FIELDS, _V6_DEVICE_FIELDS, _FIXED, MATRIX_FIELDS), layout_for(c)
    vector = _remapped(old, was, now)
    _nothing_learned(vector, now)
    return vector


def _from_v7(old: FloatArray, channels: tuple[str, ...]) -> FloatArray:
    """A version-7 vector in the current layout. Version 7 had two sizes: the one 525ae4c
    wrote is the current layout, the shorter one (49d607a) has no re-alarm yet (see
    :func:`_no_realarm`)."""
    c = len(channels)
    was, now = Layout(c, _V7_CHANNEL_FIELDS, _V7_DEVICE_FIELDS, _FIXED, MATRIX_FIELDS), layout_for(c)
    if old.size == Layout(c, _V8_CHANNEL_FIELDS, _V8_DEVICE_FIELDS, _FIXED, MATRIX_FIELDS).size:
        return _from_v8(old, channels)
    vector = _remapped(old, was, now)
    _no_realarm(vector, now)
    _nothing_held(vector, now)
    return vector


def _from_v8(old: FloatArray, channels: tuple[str, ...]) -> FloatArray:
    """A version-8 or -9 vector in the current layout: how long a learned level has held still
    is not known, so it counts from the first reading (see :func:`_nothing_held`)."""
    c = len(channels)
    was, now = Layout(c, _V8_CHANNEL_FIELDS, _V8_DEVICE_FIELDS, _FIXED, MATRIX_FIELDS), layout_for(c)
    vector = _remapped(old, was, now)
    _nothing_held(vector, now)
    return vector


def _from_v10(old: FloatArray, channels: tuple[str, ...]) -> FloatArray:
    """A version-10 vector in the current layout: no shift under way is marked as begun at a
    restart (``restart`` 0; the next gap marks one)."""
    c = len(channels)
    was, now = Layout(c, _V10_CHANNEL_FIELDS, _V10_DEVICE_FIELDS, _FIXED, MATRIX_FIELDS), layout_for(c)
    return _remapped(old, was, now)


def _nothing_held(vector: FloatArray, layout: Layout) -> None:
    """A state from before the drift counted how long a learned level holds still: none yet
    (the first reading starts it, where a shift is remembered)."""
    vector[layout.offsets["hold_at"]] = np.nan
    vector[layout.offsets["hold_ms"]] = 0.0


def _stuck_run_in_time(vector: FloatArray, layout: Layout, channels: tuple[str, ...]) -> None:
    """A state from before version 9 (the same layout as 8): a metric with a unit kept its stuck
    run in readings at the warm-up's interval; from version 9 in time (ms), which is those
    readings at that interval (``interval``, the warm-up's). Metrics without a unit keep
    readings."""
    o = layout.offsets
    measured = np.array([parse_metric(name) is not None for name in channels], dtype=bool)
    in_time = vector[o["flat_thr"]] * vector[o["interval"]][0]
    vector[o["flat_thr"]] = np.where(measured, in_time, vector[o["flat_thr"]])


def _nothing_learned(vector: FloatArray, layout: Layout) -> None:
    """A state from before the drift remembered the shift it learned (none is remembered) and
    before the re-alarm's off-delay (see :func:`_no_realarm`)."""
    vector[layout.offsets["drift_from"]] = np.nan
    _no_realarm(vector, layout)
    _nothing_held(vector, layout)


def _no_realarm(vector: FloatArray, layout: Layout) -> None:
    """A state from before the re-alarm's off-delay: no clear remembered, the off-delay at
    clear_s (as a fresh state has them)."""
    vector[layout.offsets["cleared_at"]] = -np.inf
    vector[layout.offsets["off_mult"]] = 1.0


def _from_v5(old: FloatArray, channels: tuple[str, ...]) -> FloatArray:
    """A version-5 vector in the current layout: the load proxy as it is starts from the
    lagged one's mean and variance (the regressions on it learn from there)."""
    c = len(channels)
    was, now = Layout(c, _V5_CHANNEL_FIELDS, _V5_DEVICE_FIELDS, _FIXED, MATRIX_FIELDS), layout_for(c)
    vector = _remapped(old, was, now)
    _instant_load(vector, now, channels)
    _nothing_learned(vector, now)
    return vector


def _instant_load(vector: FloatArray, layout: Layout, channels: tuple[str, ...]) -> None:
    """The load proxy as it is starts from the lagged one's mean and variance. Before
    version 6 only a temperature was regressed on the load: every other metric's regression
    (its mean ``op_m``, its covariance ``op_c``) was never learned, its mean stayed at the
    first reading it saw. Those start at the metric's level now with no dependence, and
    learn theirs over ``regression_tau_s`` (a stale mean turned the first hours' covariance
    into a slope and raised the operating-point test)."""
    o = layout.offsets
    vector[o["now"]] = vector[o["now_m"]] = vector[o["load_m"]]
    vector[o["now_v"]] = vector[o["load_v"]]
    vector[o["op_l"]] = vector[o["load_m"]]
    units = [parse_metric(name) for name in channels]
    unlearned = np.array([u is None or u.quantity != "temperature" for u in units], dtype=bool)
    vector[o["op_m"]] = np.where(unlearned, vector[o["op_f"]], vector[o["op_m"]])
    vector[o["op_c"]] = np.where(unlearned, 0.0, vector[o["op_c"]])


def _from_v4(old: FloatArray, channels: tuple[str, ...]) -> FloatArray:
    """A version-4 vector in the current layout (see :func:`_lifecycle_unknown`)."""
    c = len(channels)
    was, now = Layout(c, _V4_CHANNEL_FIELDS, _V4_DEVICE_FIELDS, _V3_FIXED, _V3_MATRIX), layout_for(c)
    vector = _remapped(old, was, now)
    _lifecycle_unknown(vector, now)
    _instant_load(vector, now, channels)
    _nothing_learned(vector, now)
    return vector


def _lifecycle_unknown(vector: FloatArray, layout: Layout) -> None:
    """A state from before the lifecycle and the time constants: its interval is the one it
    learned. An alarm open then: which metrics caused it and the score it was raised at are
    not known, so it escalates only when it crosses a limit; a run below the clear level
    already under way counts as long enough to clear."""
    o = layout.offsets
    vector[o["below_since"]] = -np.inf
    vector[o["interval"]] = vector[o["dt_exp"]]  # the time constants' rates follow from it
    vector[o["caused"]] = vector[o["alarm"]]
    vector[o["esc_ref"]] = np.inf if vector[o["alarm"]][0] > 0 else 0.0


def _from_v3(old: FloatArray, channels: tuple[str, ...]) -> FloatArray:
    """A version-3 vector in the current layout: the operating-point baseline starts at the
    learned level and scores once it has learned for ``OperatingPointConfig.learn_s``."""
    c = len(channels)
    was, now = Layout(c, _V3_CHANNEL_FIELDS, _V3_DEVICE_FIELDS, _V3_FIXED, _V3_MATRIX), layout_for(c)
    vector = _remapped(old, was, now)
    mu, s = vector[now.offsets["mu"]], vector[now.offsets["s"]]
    for name in ("op_m", "op_f", "op_b"):
        vector[now.offsets[name]] = mu
    proxy = load_proxy(channels)
    if proxy >= 0:
        vector[now.offsets["load"]] = vector[now.offsets["load_m"]] = mu[proxy]
    vector[now.offsets["load_v"]] = s[proxy] ** 2 if proxy >= 0 else 1.0
    _lifecycle_unknown(vector, now)
    _instant_load(vector, now, channels)
    _nothing_learned(vector, now)
    return vector


def load_proxy(channels: tuple[str, ...]) -> int:
    """The channel that stands for the machine's load (its first vibration velocity), or -1."""
    for k, name in enumerate(channels):
        unit = parse_metric(name)
        if unit is not None and unit.quantity == "vibration":
            return k
    return -1


def _b64(array: npt.NDArray[Any]) -> str:
    return base64.b64encode(np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<")).tobytes()).decode()

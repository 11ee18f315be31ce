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

from iotpm.detection._layout import T2_HISTORY
from iotpm.models.metrics import parse_metric

STATE_VERSION: Final = 4

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

#: per-channel fields, each C wide.
CHANNEL_FIELDS: Final = (
    "mu",  # baseline level
    "s",  # baseline scale
    "s_min",  # floor under the scale, from the warm-up block
    "dscale",  # typical |step| between consecutive readings
    "last_x",  # last finite value
    "run",  # readings equal to the previous one, in a row
    "flat_thr",  # run length that counts as a stuck sensor (inf = off)
    "cp",  # CUSUM, upward
    "cn",  # CUSUM, downward
    "fast",  # fast level, for the trend
    "slow",  # slower level, for the trend
    "zmax",  # decaying maximum of |z|: how heavy this channel's tails are
    "dmax",  # decaying maximum of |step| / typical step
    "smooth",  # 1 when the channel wanders smoothly (steps far below its spread in the warm-up)
    "mew",  # the multivariate EWMA of the z-vector (its share for this channel)
    "floor",  # lowest value reported so far (a stopped machine's signals sit at their floor)
    "op_m",  # operating point: mean of the value, for the regression on the load proxy
    "op_c",  # operating point: covariance of the value with the lagged load proxy
    "op_f",  # operating point: the smoothed value, net of the load's share
    "op_b",  # operating point: its baseline, adapted while the test is quiet
)
#: per-device scalar fields.
DEVICE_FIELDS: Final = (
    "n",  # readings seen
    "last_t",  # last timestamp, epoch ms
    "dt_exp",  # expected interval, ms
    "alarm",  # 1 while an alarm is raised
    "above",  # readings in a row at or above the raise level
    "below",  # readings in a row below the clear level
    "cool",  # readings left in the cooldown
    "health",  # smoothed anomaly score behind the health index
    "t2_on",  # 1 when the multivariate detector has a baseline
    "alarm_since",  # timestamp of the open alarm's raise, epoch ms
    "running",  # 1 while the machine runs (operating state)
    "started",  # timestamp of its last start, epoch ms (-inf: settled since before it was seen)
    "load",  # the load proxy, lagged by the thermal time constant
    "load_m",  # its mean
    "load_v",  # its variance
    "ran",  # running, settled time the operating-point baselines have learned from, ms
)


#: the fields of version 3 (before the operating-point baseline), which still load
_V3_CHANNEL_FIELDS: Final = CHANNEL_FIELDS[: CHANNEL_FIELDS.index("op_m")]
_V3_DEVICE_FIELDS: Final = DEVICE_FIELDS[: DEVICE_FIELDS.index("load")]


class Layout:
    """Offsets of every field in the state vector of a device with ``c`` channels."""

    def __init__(
        self,
        c: int,
        channel_fields: tuple[str, ...] = CHANNEL_FIELDS,
        device_fields: tuple[str, ...] = DEVICE_FIELDS,
    ) -> None:
        self.c = c
        self.offsets: dict[str, slice] = {}
        at = 0
        for name in channel_fields:
            self.offsets[name] = slice(at, at + c)
            at += c
        for name in device_fields:
            self.offsets[name] = slice(at, at + 1)
            at += 1
        self.offsets["t2_hist"] = slice(at, at + T2_HISTORY)
        at += T2_HISTORY
        self.offsets["P"] = slice(at, at + c * c)
        self.size = at + c * c

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
        if data.get("v") not in (3, STATE_VERSION):
            raise ValueError(f"detector state version {data.get('v')!r} is not {STATE_VERSION}")
        channels = tuple(str(c) for c in data["channels"])
        vector = np.frombuffer(binascii.a2b_base64(data["state"], strict_mode=True), dtype="<f8").astype(np.float64)
        if data["v"] == 3:
            vector = _from_v3(vector, channels)
        if vector.size != layout_for(len(channels)).size:
            raise ValueError("detector state does not match its channel list")
        state = cls(channels, vector, ready=bool(data["ready"]))
        if "warm_t" in data:
            state.warm_t = np.frombuffer(base64.b64decode(data["warm_t"]), dtype="<i8").astype(np.int64)
            warm = np.frombuffer(base64.b64decode(data["warm_x"]), dtype="<f8")
            state.warm_x = warm.astype(np.float64).reshape(len(state.warm_t), len(channels))
        return state


def _from_v3(old: FloatArray, channels: tuple[str, ...]) -> FloatArray:
    """A version-3 vector in the current layout: the operating-point baseline starts at the
    learned level and scores once it has learned for ``OperatingPointConfig.learn_s``."""
    c = len(channels)
    was, now = Layout(c, _V3_CHANNEL_FIELDS, _V3_DEVICE_FIELDS), layout_for(c)
    if old.size != was.size:
        raise ValueError("detector state does not match its channel list")
    vector = np.zeros(now.size)
    for name, sl in was.offsets.items():
        vector[now.offsets[name]] = old[sl]
    mu, s = vector[now.offsets["mu"]], vector[now.offsets["s"]]
    for name in ("op_m", "op_f", "op_b"):
        vector[now.offsets[name]] = mu
    proxy = load_proxy(channels)
    if proxy >= 0:
        vector[now.offsets["load"]] = vector[now.offsets["load_m"]] = mu[proxy]
    vector[now.offsets["load_v"]] = s[proxy] ** 2 if proxy >= 0 else 1.0
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

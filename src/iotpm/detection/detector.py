"""The public streaming API: :class:`DeviceDetector` for one device, and
:class:`FleetDetector` for a batch of many (what the processor Lambda calls).

Both run the same kernel; a device detector is a fleet of one.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Literal

import numpy as np
import numpy.typing as npt

from iotpm.detection import native, operating
from iotpm.detection._layout import CH, CHANNEL_DETECTORS, DEV, DEVICE_DETECTORS, MAX_CHANNELS
from iotpm.detection.config import DetectorConfig
from iotpm.detection.detectors import IsoVibrationZone
from iotpm.detection.engine import Kernel, KernelOutput, KernelRows, fit_statistics, new_vector
from iotpm.detection.state import DeviceState, FloatArray, IntArray, Layout, layout_for, load_proxy
from iotpm.models.metrics import parse_metric

#: which kernel runs: the compiled one when built for this machine ("auto"), or one of them
Backend = Literal["auto", "native", "numpy"]
_MS_PER_HOUR = 3_600_000.0
_MAX_REASONS = 5
_HOURS_PER_WEEK = 168.0


@dataclass(frozen=True, slots=True)
class Reason:
    """Why an alarm was raised: which detector, which metric, observed vs expected."""

    detector: str
    metric: str
    observed: float
    expected: float
    score: float
    detail: str = ""


EventKind = Literal["raise", "escalate", "clear"]
Severity = Literal["warning", "critical"]


@dataclass(frozen=True, slots=True)
class AlarmEvent:
    """A transition of the alarm at one reading of the chunk: its raise, an escalation while
    it is open (it got worse: its new severity and the reasons at that reading), its clear
    (with the severity the incident reached)."""

    kind: EventKind
    index: int
    ts_ms: int
    severity: Severity
    score: float
    reasons: tuple[Reason, ...] = ()


@dataclass(frozen=True, slots=True)
class Prediction:
    """A metric's trend and when it reaches its alarm limit at that trend."""

    metric: str
    level: float
    slope_per_hour: float
    limit: float | None
    hours_to_limit: float | None


@dataclass
class DetectionResult:
    """Per-reading outputs for one device's chunk, plus its device-level view.

    ``in_alarm`` is the alarm's state after each reading (raised at the raise level
    after ``min_duration`` readings, cleared after ``clear_duration`` readings and
    ``clear_s`` seconds below the clear level); ``events`` are its transitions: one raise
    and one clear per incident, and an escalation each time the open alarm got worse.
    ``is_anomaly`` flags the readings that carry an open alarm: the alarm is on and the
    reading itself scores at the raise level or above. The readings of an
    alarm waiting out its clear duration, or back under the raise level but not yet
    under the clear level, are in the alarm without being anomalous themselves.
    """

    channels: tuple[str, ...]
    score: FloatArray
    is_anomaly: npt.NDArray[np.bool_]
    events: list[AlarmEvent]
    channel_scores: FloatArray  # (n, c, len(CHANNEL_DETECTORS))
    device_scores: FloatArray  # (n, len(DEVICE_DETECTORS))
    expected: FloatArray  # (n, c)
    scale: FloatArray  # (n, c)
    health: float
    alarm_open: bool
    #: (c, 4): level, slope per hour, the limit it heads for, hours to it (NaN = none)
    trend: FloatArray = field(default_factory=lambda: np.zeros((0, 4)))
    in_alarm: npt.NDArray[np.bool_] = field(default_factory=lambda: np.zeros(0, dtype=bool))
    #: (n,) operating state per reading: 1 running, 0.5 settling after a start, 0 stopped or
    #: starting, -1 idle at a learned floor (:mod:`iotpm.detection.operating`)
    operating: FloatArray = field(default_factory=lambda: np.zeros(0))
    #: (n, c) what the operating-point baseline expects at each reading's load (NaN where the
    #: machine is not running and settled)
    operating_point: FloatArray = field(default_factory=lambda: np.zeros((0, 0)))

    @property
    def predictions(self) -> dict[str, Prediction]:
        """Per metric: its trend and when it reaches its limit at that trend."""
        return {row[0]: Prediction(*row) for row in self._trend_rows()}

    def trend_table(self) -> dict[str, dict[str, float | None]]:
        """:attr:`predictions` as plain dicts, as the device record stores them."""
        return {
            name: {"level": level, "slope_per_hour": slope, "limit": limit, "hours_to_limit": hours}
            for name, level, slope, limit, hours in self._trend_rows()
        }

    def _trend_rows(self) -> Iterator[tuple[str, float, float, float | None, float | None]]:
        for name, (level, slope, limit, hours) in zip(self.channels, self.trend.tolist(), strict=True):
            if not math.isnan(level):  # no trend before the baseline is learned
                yield name, level, slope, _opt(limit), _opt(hours)


def _opt(value: float) -> float | None:
    return value if math.isfinite(value) else None


@dataclass
class DeviceInput:
    """One device's share of a batch."""

    device_id: str
    channels: tuple[str, ...]
    ts: IntArray  # (n,) epoch ms, in device order
    values: FloatArray  # (n, c); NaN = missing
    state: DeviceState | None = None
    line: str | None = None
    device_type: str | None = None


class FleetDetector:
    """Runs the detector over many devices at once; states go in and come back out."""

    def __init__(self, config: DetectorConfig | None = None, backend: Backend = "auto") -> None:
        self.config = config or DetectorConfig()
        self.native = native.load() if backend != "numpy" else None
        if backend == "native" and self.native is None:
            raise RuntimeError(f"the native kernel is not built for this machine ({native.library_name()})")
        self._kernels: dict[tuple[str, ...], Kernel] = {}
        self._limits: dict[tuple[str, str | None, str | None, tuple[str, ...]], tuple[FloatArray, FloatArray]] = {}
        self._off: dict[tuple[tuple[str, ...], str | None], list[float]] = {}
        self.iso = IsoVibrationZone(self.config)

    def new_state(self, channels: Sequence[str]) -> DeviceState:
        """A fresh state for a device with these channels."""
        chans = tuple(channels)
        return DeviceState(chans, new_vector(layout_for(len(chans))), warm_x=np.zeros((0, len(chans))))

    def rebaseline(self, state: DeviceState) -> DeviceState:
        """A state that learns the device anew from its next readings (an operator's
        re-baseline after a repair, or a machine back at a new level): the statistics, the
        operating point and the run-down's levels start again with a warm-up; the alarm (and
        its lifecycle), the operating state and the reading count carry over, so an open
        alarm clears once its condition is gone, under the static limits alone meanwhile."""
        lay = layout_for(len(state.channels))
        fresh = self.new_state(state.channels)
        kept = (
            *("alarm", "above", "below", "cool", "health", "alarm_since", "below_since", "severity", "esc_ref"),
            *("cleared_at", "off_mult"),
            *("last_score", "caused", "floor", "running", "started", "n", "last_t"),
        )
        for name in kept:
            fresh.vector[lay.offsets[name]] = state.vector[lay.offsets[name]]
        return fresh

    def fit(self, item: DeviceInput) -> DeviceState:
        """Learn a device's baseline from a label-free block; returns its new state."""
        state = item.state or self.new_state(item.channels)
        ts = np.concatenate([state.warm_t, np.asarray(item.ts, dtype=np.int64)])
        x = np.concatenate(
            [state.warm_x, np.asarray(item.values, dtype=np.float64).reshape(len(item.ts), len(state.channels))]
        )
        lay = layout_for(len(state.channels))
        measured = np.array([parse_metric(name) is not None for name in state.channels], dtype=bool)
        fit_statistics(state.vector, lay, ts, x, self.config, load_proxy(state.channels), measured)
        state.ready = True
        state.warm_t, state.warm_x = ts[:0], x[:0]
        return state

    def update(self, items: Sequence[DeviceInput]) -> list[tuple[DetectionResult, DeviceState]]:
        """Detect over every device's chunk; results and new states in input order."""
        out: list[tuple[DetectionResult, DeviceState] | None] = [None] * len(items)
        groups: dict[tuple[str, ...], list[int]] = {}
        for i, item in enumerate(items):
            groups.setdefault(tuple(item.channels), []).append(i)
        for channels, members in groups.items():
            for i, pair in zip(members, self._update_group(channels, [items[i] for i in members]), strict=True):
                out[i] = pair
        return [pair for pair in out if pair is not None]

    def _update_group(
        self, channels: tuple[str, ...], items: list[DeviceInput]
    ) -> list[tuple[DetectionResult, DeviceState]]:
        kernel = self._kernel(channels)
        states = [it.state if it.state is not None else self.new_state(channels) for it in items]
        ts = [np.asarray(it.ts, dtype=np.int64) for it in items]
        xs = [
            np.asarray(it.values, dtype=np.float64).reshape(len(t), len(channels))
            for it, t in zip(items, ts, strict=True)
        ]
        off = np.array([self._off_below(channels, it.device_type) for it in items])
        # a device still learning needs its gates first: its warm-up learns from the readings
        # of a running, settled machine only; a ready device's come with its kernel call
        gate = self._learning_gates(channels, states, ts, xs, off)
        split = [0 if g is None else self._warm_split(states[i], ts[i], g) for i, g in enumerate(gate)]
        warm = [i for i, k in enumerate(split) if k > 0]
        limits = [self._device_limits(it) for it in items]
        bounds = np.stack([lo for lo, _ in limits]), np.stack([hi for _, hi in limits])
        run = partial(self._run, kernel, bounds, states, ts=ts, xs=xs, gate=gate, off=off)
        parts_a = run([(i, slice(0, split[i])) for i in warm], statistics=False)
        for i in warm:
            learned = gate[i]
            assert learned is not None, "a learning device's gates are computed before its warm-up"
            self._warm_up(items[i].device_id, channels, states[i], ts[i][: split[i]], xs[i][: split[i]], learned)
        ready = [(i, slice(split[i], len(ts[i]))) for i in range(len(items)) if split[i] < len(ts[i])]
        parts_b = run(ready, statistics=True)
        lay = layout_for(len(channels))
        vectors = np.stack([st.vector for st in states])
        low, high = bounds
        trend = self._trend(vectors, lay, low, high)
        trend[[not st.ready for st in states]] = np.nan
        health = self._health(vectors, lay, trend[..., 3]).tolist()
        alarm_open = (lay.scalar(vectors, "alarm") > 0).tolist()
        return [
            (
                self._result(
                    channels,
                    items[i],
                    states[i],
                    ts[i],
                    xs[i],
                    _or_empty(gate[i]),
                    trend[i],
                    health[i],
                    alarm_open[i],
                    parts_a.get(i),
                    parts_b.get(i),
                ),
                states[i],
            )
            for i in range(len(items))
        ]

    def _learning_gates(
        self,
        channels: tuple[str, ...],
        states: list[DeviceState],
        ts: list[IntArray],
        xs: list[FloatArray],
        off: FloatArray,
    ) -> list[FloatArray | None]:
        """The gates of the devices still learning (None for the others)."""
        learning = [i for i, st in enumerate(states) if not st.ready]
        gate: list[FloatArray | None] = [None] * len(states)
        sub = self._gates(
            channels, [states[i] for i in learning], [ts[i] for i in learning], [xs[i] for i in learning], off[learning]
        )
        for i, g in zip(learning, sub, strict=True):
            gate[i] = g
        return gate

    def _warm_up(
        self,
        device_id: str,
        channels: tuple[str, ...],
        st: DeviceState,
        ts: IntArray,
        xs: FloatArray,
        gate: FloatArray,
    ) -> None:
        """Keep the warm-up's running, settled readings; fit once there are enough."""
        keep = gate[: len(ts)] >= 1.0
        st.warm_t = np.concatenate([st.warm_t, ts[keep]])
        st.warm_x = np.concatenate([st.warm_x, xs[keep]])
        span = np.array([st.warm_t[-1] - st.warm_t[0] if len(st.warm_t) else 0], dtype=np.float64)
        if self._warmed(np.array([len(st.warm_t)]), span)[0]:
            self.fit(DeviceInput(device_id, channels, ts[:0], xs[:0], st))

    def _warm_split(self, state: DeviceState, ts: IntArray, gate: FloatArray) -> int:
        """How many of the chunk's readings belong to the warm-up (until it has enough running ones)."""
        if state.ready:
            return 0
        on = np.flatnonzero(gate >= 1.0)
        if not len(on):
            return len(gate)
        count = len(state.warm_t) + np.arange(1, len(on) + 1)
        first = state.warm_t[0] if len(state.warm_t) else ts[on[0]]
        done = np.flatnonzero(self._warmed(count, (ts[on] - first).astype(np.float64)))
        return int(on[done[0]]) + 1 if done.size else len(gate)

    def _warmed(self, count: IntArray, span_ms: FloatArray) -> npt.NDArray[np.bool_]:
        """Whether a warm-up of ``count`` running readings over ``span_ms`` is enough: ``warmup``
        readings, or ``warmup_s`` of running time in at least ``warmup_min`` readings."""
        cfg = self.config
        return np.asarray((count >= cfg.warmup) | ((count >= cfg.warmup_min) & (span_ms >= 1000.0 * cfg.warmup_s)))

    def _gates(
        self,
        channels: tuple[str, ...],
        states: list[DeviceState],
        ts: list[IntArray],
        xs: list[FloatArray],
        off: FloatArray,
    ) -> list[FloatArray]:
        """Each reading's operating gate (:mod:`iotpm.detection.operating`); advances the states."""
        out: list[FloatArray] = [np.zeros(0)] * len(states)
        order = sorted(range(len(states)), key=lambda i: -len(ts[i]))
        for band in _bands([len(ts[i]) for i in order]):
            rows = [i for i in order[band] if len(ts[i])]
            if not rows:
                continue
            t = len(ts[rows[0]])
            lengths = np.array([len(ts[i]) for i in rows], dtype=np.int64)
            t_pad = np.zeros((len(rows), t), dtype=np.int64)
            x_pad = np.full((len(rows), t, len(channels)), np.nan)
            for row, i in enumerate(rows):
                t_pad[row, : lengths[row]], x_pad[row, : lengths[row]] = ts[i], xs[i]
            packed = np.stack([states[i].vector for i in rows])
            g = self._gate(packed, t_pad, x_pad, lengths, off[rows], load_proxy(channels))
            for row, i in enumerate(rows):
                states[i].vector = packed[row].copy()
                out[i] = g[row, : lengths[row]]
        return out

    def _gate(
        self, packed: FloatArray, ts: IntArray, x: FloatArray, lengths: IntArray, off: FloatArray, proxy: int
    ) -> FloatArray:
        op, lay = self.config.operating, layout_for(x.shape[2])
        times = (1000.0 * op.start_s, 1000.0 * op.settle_s, 1000.0 * op.coast_tau_s)
        return operating.gates(
            packed, lay, ts, x, lengths, off, *times, proxy=proxy, coast_drop=op.coast_drop, native=self.native
        )

    def _off_below(self, channels: tuple[str, ...], device_type: str | None) -> list[float]:
        key = (channels, device_type)
        cached = self._off.get(key)
        if cached is None:
            cached = self._off[key] = self.config.operating.resolve(channels, device_type)
        return cached

    def _run(
        self,
        kernel: Kernel,
        bounds: tuple[FloatArray, FloatArray],
        states: list[DeviceState],
        parts: list[tuple[int, slice]],
        ts: list[IntArray],
        xs: list[FloatArray],
        gate: list[FloatArray | None],
        off: FloatArray,
        statistics: bool,
    ) -> dict[int, tuple[KernelOutput, int, int]]:
        """Kernel calls over the given slices; returns each device's output and row in it.

        The kernel works on (devices, longest chunk) padded arrays, so devices of very
        different lengths (one backfilling 10,000 readings among hundreds sending one)
        go in separate calls: padding stays within twice the readings, not hundreds of
        times them.
        """
        parts = [p for p in parts if p[1].stop > p[1].start]
        parts.sort(key=lambda p: p[1].start - p[1].stop)  # longest first
        out: dict[int, tuple[KernelOutput, int, int]] = {}
        for band in _bands([p[1].stop - p[1].start for p in parts]):
            chunk = parts[band]
            lengths = np.array([p[1].stop - p[1].start for p in chunk], dtype=np.int64)
            d, t, c = len(chunk), int(lengths[0]), len(states[0].channels)
            packed = np.stack([states[i].vector for i, _ in chunk])
            t_pad = np.zeros((d, t), dtype=np.int64)
            x_pad = np.full((d, t, c), np.nan)
            g_pad = np.zeros((d, t))
            order = [i for i, _ in chunk]
            low, high = bounds[0][order], bounds[1][order]  # each device's static limits (d, c)
            for row, (i, sl) in enumerate(chunk):
                n = sl.stop - sl.start
                t_pad[row, :n] = ts[i][sl]
                x_pad[row, :n] = xs[i][sl]
            known = [row for row, (i, _) in enumerate(chunk) if gate[i] is not None]
            if len(known) < d:  # ready devices: their whole chunk is in this call
                if known:
                    fresh = [row for row in range(d) if row not in set(known)]
                    sub = packed[fresh]
                    g_pad[fresh] = self._gate(
                        sub, t_pad[fresh], x_pad[fresh], lengths[fresh], off[order][fresh], kernel.proxy
                    )
                    packed[fresh] = sub
                else:
                    g_pad = self._gate(packed, t_pad, x_pad, lengths, off[order], kernel.proxy)
                for row, (i, _) in enumerate(chunk):
                    gate[i] = gate[i] if gate[i] is not None else g_pad[row, : lengths[row]].copy()
            for row in known:
                i, sl = chunk[row]
                g = gate[i]
                assert g is not None
                g_pad[row, : lengths[row]] = g[sl]
            result = kernel(packed, t_pad, x_pad, lengths, low, high, statistics, g_pad)
            for row, (i, _) in enumerate(chunk):
                states[i].vector = packed[row].copy()
            out.update({i: (result, row, int(lengths[row])) for row, (i, _) in enumerate(chunk)})
        return out

    def _kernel(self, channels: tuple[str, ...]) -> Kernel:
        kernel = self._kernels.get(channels)
        if kernel is None:
            units = [parse_metric(ch) for ch in channels]
            vib = np.array([u is not None and u.quantity == "vibration" for u in units], dtype=np.float64)
            kernel = self._kernels[channels] = Kernel(
                self.config, channels, vib, self.native if len(channels) <= MAX_CHANNELS else None
            )
        return kernel

    def _device_limits(self, item: DeviceInput) -> tuple[FloatArray, FloatArray]:
        key = (item.device_id, item.line, item.device_type, tuple(item.channels))
        cached = self._limits.get(key)
        if cached is None:
            low, high = np.full(len(item.channels), np.nan), np.full(len(item.channels), np.nan)
            for j, ch in enumerate(item.channels):
                lim = self.config.thresholds.resolve(
                    ch, device_id=item.device_id, line=item.line, device_type=item.device_type
                )
                if lim is not None:
                    low[j] = np.nan if lim.low is None else lim.low
                    high[j] = np.nan if lim.high is None else lim.high
            cached = self._limits[key] = (low, high)
        return cached

    def _result(
        self,
        channels: tuple[str, ...],
        item: DeviceInput,
        state: DeviceState,
        ts: IntArray,
        x: FloatArray,
        gate: FloatArray,
        trend: FloatArray,
        health: float,
        alarm_open: bool,
        *parts: tuple[KernelOutput, int, int] | None,
    ) -> DetectionResult:
        segs = [p for p in parts if p is not None]
        if len(segs) == 1:  # the usual case: the whole chunk in one kernel call
            out, row, length = segs[0]
            cols, moved = out.rows(row, length), out.transitions[row]
        else:
            cols = KernelRows.join([out.rows(row, length) for out, row, length in segs], len(channels))
            moved = any(out.transitions[row] for out, row, _ in segs)
        assert len(cols.score) == len(ts), "kernel parts must cover the chunk"
        events = self._events(channels, ts, x, cols, item, state) if moved or alarm_open else []
        if len(ts):
            state.vector[layout_for(len(channels)).offsets["last_score"].start] = cols.score[-1]
        return DetectionResult(
            channels=channels,
            score=cols.score,
            is_anomaly=cols.anomalous,
            events=events,
            channel_scores=cols.channel_scores,
            device_scores=cols.device_scores,
            expected=cols.expected,
            scale=cols.scale,
            health=health,
            alarm_open=alarm_open,
            trend=trend,
            in_alarm=cols.in_alarm,
            operating=gate,
            operating_point=cols.point,
        )

    def _events(
        self,
        channels: tuple[str, ...],
        ts: IntArray,
        x: FloatArray,
        cols: KernelRows,
        item: DeviceInput,
        state: DeviceState,
    ) -> list[AlarmEvent]:
        """The alarm's raises, escalations and clears in the chunk; advances the open alarm's
        lifecycle in ``state`` (its severity, causes and escalation level)."""
        return [
            AlarmEvent(
                kind,
                i,
                int(ts[i]),
                "critical" if critical else "warning",
                float(cols.score[i]),
                self._reasons(channels, x[i], cols, i, item) if kind != "clear" else (),
            )
            for kind, i, critical in Lifecycle(self.config, state).advance(cols)
        ]

    def _reasons(
        self, channels: tuple[str, ...], x: FloatArray, cols: KernelRows, i: int, item: DeviceInput
    ) -> tuple[Reason, ...]:
        """What scored at the clear level or above at reading ``i``: the detectors that count
        toward the alarm's score strongest first, then a gap when it does not count (a gap of
        days scores in the hundreds; listed first, it reads as the cause of the alarm)."""
        floor = self.config.alarm.clear_level
        chs, devs, expected = cols.channel_scores[i], cols.device_scores[i], cols.expected[i]
        low, high = self._device_limits(item)
        found: list[Reason] = []
        for j, k in zip(*np.nonzero(chs >= floor), strict=True):
            det = CHANNEL_DETECTORS[k]
            exp, detail = float(expected[j]), ""
            if det == "threshold":
                exp = float(high[j] if np.isfinite(high[j]) and x[j] > high[j] else low[j])
                detail = "above high limit" if x[j] > exp else "below low limit"
            elif det == "iso10816":
                zone = self.iso.zone(float(x[j]))
                exp, detail = self.iso.cd if zone == "D" else self.iso.bc, f"ISO 10816-3 zone {zone}"
            found.append(Reason(det, channels[j], float(x[j]), exp, float(chs[j, k]), detail))
        for k in np.flatnonzero(devs >= floor):
            det, score = DEVICE_DETECTORS[k], float(devs[k])
            shares = cols.shares[i]
            total = float(shares.sum())
            # a metric missing at this reading still carries its share in the chart's average:
            # the reason names a metric that sent a value, never one that sent nothing
            present = np.where(np.isfinite(x[: len(shares)]), shares, 0.0)
            if det == "multivariate" and total > 0 and present.max() > 0:
                # named by the metric that carries the largest share of the joint deviation
                j = int(np.argmax(present))
                detail = f"joint deviation from the learned baseline; {100 * shares[j] / total:.0f} % of it here"
                found.append(Reason(det, channels[j], float(x[j]), float(expected[j]), score, detail))
            else:
                found.append(Reason(det, "*", score, 1.0, score, "score relative to its limit"))
        counts = self.config.dropout_alarms
        found.sort(key=lambda r: (r.detector == "dropout" and not counts, -r.score))
        return tuple(found[:_MAX_REASONS])

    def _trend(self, v: FloatArray, lay: Layout, low: FloatArray, high: FloatArray) -> FloatArray:
        """Trend from a fast and a slow level (their gap on a ramp is slope x lag), and
        the hours until the trend meets the limit it is heading for; (d, c, 4).

        The slope is reported when the gap is beyond ``trend_z`` of its own noise. The
        crossing is predicted from the slope's lower bound (the gap less that noise), so
        a barely significant trend predicts no near crossing, and no further ahead than
        ``trend_reach`` times the time the slope was measured over: a line fitted to
        minutes says nothing about next week.
        """
        cfg = self.config
        slow, fast = v[:, lay.offsets["slow"]], v[:, lay.offsets["fast"]]
        # the reading noise, from the typical step: white noise steps 2/sqrt(pi) sigma on average
        sigma = v[:, lay.offsets["dscale"]] * (math.sqrt(math.pi) / 2.0)
        dt = v[:, lay.offsets["dt_exp"]]
        a, af = cfg.trend_rate_slow, cfg.trend_rate
        lag = (1.0 - a) / a - (1.0 - af) / af  # readings between the two levels on a ramp
        # the gap's standard deviation on white noise of unit sigma (two EWMAs of one series)
        gap_sd = math.sqrt(af / (2.0 - af) + a / (2.0 - a) - 2.0 * af * a / (1.0 - (1.0 - af) * (1.0 - a)))
        with np.errstate(all="ignore"):
            gap = fast - slow
            noise = cfg.trend_z * gap_sd * sigma
            per_hour = _MS_PER_HOUR / (lag * dt)
            significant = (np.abs(gap) > noise) & (dt > 0)
            slope = np.where(significant, gap * per_hour, 0.0)
            slope = np.where(np.isfinite(slope), slope, 0.0)
            bound = np.sign(slope) * np.maximum(np.abs(gap) - noise, 0.0) * per_hour
            limit = np.where(slope > 0, high, np.where(slope < 0, low, np.nan))
            hours = np.maximum((limit - fast) / bound, 0.0)
            reach = cfg.trend_reach * lag * dt / _MS_PER_HOUR
            hours = np.where(hours <= reach, hours, np.nan)
        return np.stack([fast, slope, limit, hours], axis=-1)

    @staticmethod
    def _health(v: FloatArray, lay: Layout, hours: FloatArray) -> FloatArray:
        """0-100 from the smoothed anomaly score, capped by an open alarm and a near limit.

        A smoothed score up to 0.5 (half the alarm level: ordinary noise) is full
        health; 1.5 and above is zero.
        """
        smoothed = lay.scalar(v, "health")
        value = 100.0 * (1.0 - np.clip(smoothed - 0.5, 0.0, 1.0))
        value = np.where(lay.scalar(v, "alarm") > 0, np.minimum(value, 40.0), value)
        soonest = np.min(np.where(np.isfinite(hours), hours, np.inf), axis=1, initial=np.inf)
        cap = np.where(soonest < 24.0, 50.0, np.where(soonest < _HOURS_PER_WEEK, 80.0, 100.0))
        return np.asarray(np.round(np.minimum(value, cap), 1), dtype=np.float64)


class Lifecycle:
    """The open alarm's life between its raise and its clear (ISA-18.2): it escalates when
    it gets worse. Kept in the device's state, computed from the kernel's per-reading
    scores, so every kernel gives the same events and chunks of any size give the same
    events as one call.

    While the alarm is open it escalates at a reading where

    - a static limit or ISO 10816-3 zone D is crossed and it was a warning: it becomes
      critical (and stays critical until it clears);
    - a metric that was not yet a cause scores at the raise level on a detector of its own
      (the multivariate detector's largest share moving to another metric is not a new
      cause; the multivariate's score doubling is an escalation like any other);
    - the score, sustained over two readings (the smaller of the reading's and the one
      before), reaches ``escalate_factor`` times the score it was raised or last escalated
      at by the score. Only the machine's condition counts here: a stuck sensor's run or a
      gap grows with time, not with the fault (they raise, and are a new cause, all the same).
    """

    def __init__(self, config: DetectorConfig, state: DeviceState) -> None:
        self.cfg = config.alarm
        self.state = state
        self.lay = layout_for(len(state.channels))

    def advance(self, cols: KernelRows) -> list[tuple[EventKind, int, bool]]:
        """The chunk's events as (kind, reading, critical), in order; the state advances."""
        n = len(cols.score)
        if not n:
            return []
        v, o = self.state.vector, self.lay.offsets
        severity, ref = v[o["severity"].start] > 0, float(v[o["esc_ref"].start])
        caused = v[o["caused"]] > 0
        raised, cleared = np.flatnonzero(cols.raised >= 1.0), np.flatnonzero(cols.cleared > 0)
        open_before = bool(cols.in_alarm[0]) != bool(cols.raised[0] >= 1.0 or cols.cleared[0] > 0)
        marks = sorted([(int(i), "raise") for i in raised] + [(int(i), "clear") for i in cleared])
        events: list[tuple[EventKind, int, bool]] = []
        at = 0 if open_before else None  # the first reading of the open alarm still to examine
        for i, kind in marks:
            if kind == "raise":
                # per detector, the reading's largest score: its limits and its condition
                row = cols.channel_scores[i].max(axis=0).tolist()
                severity = max(row[CH["threshold"]], row[CH["iso10816"]]) >= 1.0
                mv = float(cols.device_scores[i, DEV["multivariate"]])
                condition = max([mv] + [s for k, s in enumerate(row) if k != CH["flatline"]])
                caused, ref = self._causes(cols, i), max(condition, self.cfg.raise_level)
                events.append(("raise", i, severity))
                at = i + 1
            else:
                if at is not None:
                    severity, caused, ref = self._escalate(cols, at, i, severity, caused, ref, events)
                events.append(("clear", i, severity))
                severity, caused, ref, at = False, np.zeros_like(caused), 0.0, None
        if at is not None:
            severity, caused, ref = self._escalate(cols, at, n, severity, caused, ref, events)
        v[o["severity"].start], v[o["esc_ref"].start] = float(severity), ref
        v[o["caused"]] = caused.astype(np.float64)
        return events

    @staticmethod
    def _limits(cols: KernelRows, start: int, stop: int) -> npt.NDArray[np.bool_]:
        """Readings [start, stop) past a static limit or into ISO zone D."""
        cs = cols.channel_scores[start:stop]
        return np.asarray(np.maximum(cs[:, :, CH["threshold"]], cs[:, :, CH["iso10816"]]).max(axis=1) >= 1.0)

    @staticmethod
    def _condition(cols: KernelRows, start: int, stop: int) -> FloatArray:
        """The machine's condition over readings [start, stop): every score but the stuck
        sensor's and the gap's."""
        cs, f = cols.channel_scores[start:stop], CH["flatline"]
        out = np.fmax(cs[:, :, :f].max(axis=(1, 2)), cols.device_scores[start:stop, DEV["multivariate"]])
        if f + 1 < cs.shape[2]:
            out = np.fmax(out, cs[:, :, f + 1 :].max(axis=(1, 2)))
        return np.asarray(out, dtype=np.float64)

    def _causes(self, cols: KernelRows, i: int) -> npt.NDArray[np.bool_]:
        """The metrics that score at the raise level at reading ``i``."""
        level = self.cfg.raise_level
        found = cols.channel_scores[i].max(axis=1) >= level
        if cols.device_scores[i, DEV["multivariate"]] >= level and cols.shares[i].sum() > 0:
            found[int(np.argmax(cols.shares[i]))] = True
        return np.asarray(found, dtype=bool)

    def _escalate(
        self,
        cols: KernelRows,
        start: int,
        stop: int,
        severity: bool,
        caused: npt.NDArray[np.bool_],
        ref: float,
        events: list[tuple[EventKind, int, bool]],
    ) -> tuple[bool, npt.NDArray[np.bool_], float]:
        """Escalations of the open alarm over readings [start, stop); returns its new state."""
        if stop <= start or cols.score[start:stop].max() < min(self.cfg.raise_level, 1.0):
            return severity, caused, ref  # nothing scores at the raise level: nothing got worse
        at: set[int] = set()
        limits = None if severity else self._limits(cols, start, stop)
        if limits is not None:
            at.update((start + np.flatnonzero(limits)[:1]).tolist())
        level = self.cfg.raise_level
        # the condition back after it had gone for the plain off-delay (a re-alarm held in the
        # incident by the doubled off-delay) is judged as a raise would be: worse than the level
        # the incident was raised or last escalated at, it escalates; either way doubling is
        # judged from its level on, so a failure behind an intermittent alarm pages
        back = start + np.flatnonzero((cols.raised[start:stop] > 0) & (cols.raised[start:stop] < 1.0))
        conditions = self._condition(cols, start, stop) if back.size else np.zeros(0)
        factor, score, segment = self.cfg.escalate_factor, cols.score, start
        for i in [*back.tolist(), stop]:
            if i > segment and score[segment:i].max() >= factor * ref:  # else no sustained condition can double
                ref = self._doublings(cols, segment, i, ref, at)
            if i == stop:
                break
            condition = float(conditions[i - start])
            if condition > ref:
                at.add(i)
            ref, segment = max(condition, level), i + 1
        # a metric's own detector at the raise level while it is not yet a cause is a new
        # cause; the metric carrying the largest share of the multivariate's deviation is not
        # one: at a score near the raise level the largest share flips from reading to reading
        # between metrics that are all a little off (26 escalations per healthy bearing of IMS
        # set 1). "Not yet a cause" counts the causes every escalation before the reading
        # added, in reading order, so where the readings are cut into calls changes nothing.
        scoring = cols.channel_scores[start:stop].max(axis=2) >= level  # (n, c)
        others, pos = sorted(at), 0
        while True:
            new = (scoring[pos:] & ~caused[None, :]).any(axis=1)
            first = start + pos + int(np.argmax(new)) if new.any() else stop
            other = next((i for i in others if i >= start + pos), stop)
            i = min(first, other)
            if i >= stop:
                break
            severity = severity or bool(limits is not None and limits[i - start])
            caused = caused | self._causes(cols, i)
            events.append(("escalate", i, severity))
            pos = i + 1 - start
        return severity, caused, ref

    def _doublings(self, cols: KernelRows, start: int, stop: int, ref: float, at: set[int]) -> float:
        """Adds to ``at`` where the condition, sustained over two readings (the smaller of the
        reading's and the score before it: the one before the range is the state's last
        score), reaches the factor times the level it was raised or last escalated at;
        returns the level it was last escalated at."""
        score = cols.score
        before = score[start - 1] if start > 0 else self.state.vector[self.lay.offsets["last_score"].start]
        prior = np.concatenate(([before], score[start : stop - 1]))
        sustained = np.minimum(self._condition(cols, start, stop), np.minimum(score[start:stop], prior))
        factor, j = self.cfg.escalate_factor, 0
        while j < stop - start:  # each rise past the factor escalates, from the level it reached
            hits = np.flatnonzero(sustained[j:] >= factor * ref)
            if not hits.size:
                break
            j += int(hits[0])
            at.add(start + j)
            ref = float(sustained[j])
            j += 1
        return ref


def _or_empty(gate: FloatArray | None) -> FloatArray:
    return np.zeros(0) if gate is None else gate


#: padded cells a kernel call may waste beyond its readings' own, whatever the ratio
_PAD_SLACK = 4096


def _bands(lengths: list[int]) -> list[slice]:
    """Runs of the (descending) lengths whose padded size stays within twice their total."""
    bands, start, total = [], 0, 0
    for k, n in enumerate(lengths):
        if k > start and (k - start + 1) * lengths[start] > 2 * (total + n) + _PAD_SLACK:
            bands.append(slice(start, k))
            start, total = k, 0
        total += n
    if lengths:
        bands.append(slice(start, len(lengths)))
    return bands


class DeviceDetector:
    """Streaming detector for one device (the contract the evaluation adapter calls).

    >>> det = DeviceDetector(channels=["temperature_c"])
    >>> r = det.update(np.arange(3, dtype=np.int64) * 1000, np.array([[20.0], [21.0], [95.0]]))
    >>> r.is_anomaly.tolist()
    [False, False, True]
    """

    def __init__(
        self,
        channels: Sequence[str],
        config: DetectorConfig | None = None,
        *,
        device_id: str = "device",
        line: str | None = None,
        device_type: str | None = None,
        backend: Backend = "auto",
    ) -> None:
        self._fleet = FleetDetector(config, backend)
        self._input = DeviceInput(device_id, tuple(channels), np.zeros(0, np.int64), np.zeros((0, len(channels))))
        self._input.line, self._input.device_type = line, device_type
        self._state = self._fleet.new_state(channels)

    @property
    def channels(self) -> tuple[str, ...]:
        """The metric names, in the column order of ``values``."""
        return self._input.channels

    @property
    def state(self) -> DeviceState:
        """Everything carried between chunks (serialise with ``state.to_dict()``)."""
        return self._state

    @classmethod
    def from_state(
        cls,
        state: DeviceState,
        config: DetectorConfig | None = None,
        *,
        device_id: str = "device",
        line: str | None = None,
        device_type: str | None = None,
        backend: Backend = "auto",
    ) -> DeviceDetector:
        """Resume from a saved state."""
        det = cls(state.channels, config, device_id=device_id, line=line, device_type=device_type, backend=backend)
        det._state = state
        return det

    def fit(self, timestamps: IntArray, values: FloatArray) -> None:
        """Learn the baseline from a label-free warm-up block (skips the streaming warm-up)."""
        self._state = self._fleet.fit(self._chunk(timestamps, values))

    def rebaseline(self) -> None:
        """Learn the device anew from its next readings (:meth:`FleetDetector.rebaseline`)."""
        self._state = self._fleet.rebaseline(self._state)

    def update(self, timestamps: IntArray, values: FloatArray) -> DetectionResult:
        """Score a chunk (any size, in time order) and advance the state."""
        result, self._state = self._fleet.update([self._chunk(timestamps, values)])[0]
        return result

    def _chunk(self, timestamps: IntArray, values: FloatArray) -> DeviceInput:
        ts = np.asarray(timestamps, dtype=np.int64).reshape(-1)
        x = np.asarray(values, dtype=np.float64).reshape(len(ts), len(self.channels))
        it = self._input
        return DeviceInput(it.device_id, it.channels, ts, x, self._state, it.line, it.device_type)

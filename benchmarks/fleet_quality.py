"""Detection quality on a plant's week: false raises, detection, delay and lead time, and
the alarm load an operator sees.

The simulator's offline long-run mode (``iotpm.simulator.fleet.long_run``) generates a
week of a fleet (shifts, idle nights and weekends, cycling compressors, load and
setpoint changes, the daily ambient, restarts and data gaps) with slow and abrupt
faults and their ground truth, and (unless ``--classic``) another plant's phenomena:
pressure that follows the load, large setpoint steps, vibration that steps with the
load, a coast-down at every stop, healthy machines back from a two-day stop at a new
level. ``--plant heldout`` is a plant the detector was not developed on (casings with
their own thermal time constants of 10-60 minutes, a hot afternoon, ageing sensors, a
temperature sensor's calibration drift, machines at two or three fixed speeds): tune
nothing on it, so that its figures stay held-out ones. ``--plant legacy`` is another
(2026-12-07, not tuned on either): the base model read through whole-unit transmitters (1 C,
0.1 mm/s, 1 psi, as an older PLC scales its 4-20 mA inputs), with two process upsets a line
in the week (its supply header loses a fifth to a third of its head for 20-60 minutes:
every running machine on the line loses head and cavitates). It runs at each of
``--intervals`` (every 10 s and every 10 minutes by default: the same hours should
behave alike). The fleet goes through ``FleetDetector`` in one-hour
batches (as the processor sees it), and through three peers in the same process:

- ``static``: the static limits alone (what a plain SCADA alarm does);
- ``sigma3``: the static limits, and 3 sigma of each metric's first day of running readings
  (judged while the machine runs);
- ``cusum``: the static limits, and a two-sided CUSUM (k = 0.5, h = 5 sigma) on each
  metric standardised as sigma3 does (its first day of running readings), reset after each signal.

Every peer's alarm goes through the product's hysteresis (raise at score 1, clear after
2 readings and 10 minutes below 0.8). Figures per detector:

- false raises per device-day: raises on fault-free time (healthy devices, and faulty
  ones before their fault) over fault-free device-days;
- per fault kind: how many devices were detected (a page: a raise, or for iotpm an
  escalation of an alarm already open; before the run ends for a slow fault). A slow fault
  that has not crossed its limit by the run's end (on a machine that runs a few hours a day
  it has worn less) is not yet a failure to predict: it is left out of the detected
  fraction and reported apart, with how many of them were paged; the fraction with them
  counted in (as scored before 2026-12-07, night) is printed beside. Then the median
  delay, and for slow faults the lead time before the static limit is crossed (the
  hours from the first page to the crossing, with the minimum and how many are under 12 h;
  beside it the machine's running time in those hours: what it can still run before the
  limit, the lead a machine that ran through the nights would have). A slow fault grows
  with the machine's running time (``--fault-clock running``: wear, fouling and a seal's
  leak; a machine stopped overnight restarts as worn as it stopped); ``--fault-clock wall``
  grows it by the clock, also while stopped, as the simulator did before 2026-12-07,
  when a fault could grow past its limit in a night in which no reading showed it. An abrupt
  fault is judged **from the first reading that shows it** (the simulator's ground truth
  ``visible_ms``: the first reading sent that differs from what the healthy machine would
  have sent): it is detected if a page comes within an hour of that reading, and its delay
  is counted from it, in seconds and in readings. No detector can see a fault before a
  reading carries it: at one reading every 10 minutes an overheating shows 10 minutes
  after it starts, and intermittent spikes (one reading in ten while running) at the
  first reading that catches one, which may be hours later. The figures from the fault's
  start (a page within an hour of the start, the delay from it) are printed beside them
  ("from start"), as the benchmark scored them before. An abrupt fault no reading shows is
  left out of both (counted as "unseen"). Dropout is a
  data-quality event (the detector reports the gap, it raises no alarm by default):
  its row shows whether the gap was reported and it is left out of the fractions;
- the operator's view (iotpm): time in alarm on healthy devices, escalations, whether
  every limit crossing of a fault paged critical within 3 readings (a critical raise or
  escalation at the crossing reading or one of the two after it, or an alarm already open
  and critical at the crossing; beside it, as scored before, whether an alarm is still
  open and critical at the third reading, which a single reading over the limit that
  pages and clears ten minutes later fails at 10-minute readings), and the EEMUA 191
  figures scaled to a 100-device line watched by one operator: alarms (raises and
  escalations) per 10 minutes on average and at the peak, the share of 10-minute windows
  in a flood (more than 10), standing alarms (open longer than 24 h), and chattering (a
  raise within 10 minutes of the same device's clear).

The last line is JSON for iotpm at the first interval (``false_raises_per_device_day``,
``detected_fraction``, ``median_lead_time_h``, ``median_delay_s``, ``operator``) with the
peers' figures under ``peers``, and every interval's under ``by_interval``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from iotpm.detection import AlarmConfig, DetectorConfig, DeviceInput, DeviceState, FleetDetector
from iotpm.detection._layout import CH
from iotpm.detection.detector import Reason
from iotpm.simulator.fleet import (
    ABRUPT_FAULTS,
    CHANNELS,
    DEFAULT_LIMITS_LONG_RUN,
    FAULT_CLOCKS,
    LONG_RUN_FAULTS,
    LONG_RUN_METRIC,
    PLANTS,
    SLOW_FAULTS,
    LongRun,
    LongRunFault,
    long_run,
)

FloatArray = npt.NDArray[np.float64]
#: an abrupt fault must page within an hour of the first reading that shows it
ABRUPT_WINDOW_MS = 3_600_000
#: a crossing predicted within this many hours is "heading for a limit" (the report's horizon)
HEADING_HORIZON_H = 168.0
WARMUP = 100


@dataclass
class Outcome:
    """One detector's raises per device (epoch ms), and the gaps it reported."""

    raises: list[list[int]]
    alarm: list[npt.NDArray[np.bool_]]  # per device, per reading: the alarm is on
    gaps: list[list[int]] = field(default_factory=list)
    seconds: float = 0.0
    #: per device, after each window: (epoch ms, metric, predicted hours to its limit)
    heading: list[list[tuple[int, str, float]]] = field(default_factory=list)
    #: per device: the epoch ms of each window's last reading (when the predictions were read)
    checked: list[list[int]] = field(default_factory=list)
    #: per device: every alarm event (epoch ms, raise / escalate / clear, severity)
    events: list[list[tuple[int, str, str]]] = field(default_factory=list)
    #: per device: each raise's cause (epoch ms, "detector metric" of its first reason)
    causes: list[list[tuple[int, str]]] = field(default_factory=list)


def run_iotpm(run: LongRun, config: DetectorConfig, hours: float = 1.0) -> Outcome:
    fleet = FleetDetector(config)
    states: list[DeviceState | None] = [None] * len(run.devices)
    raises: list[list[int]] = [[] for _ in run.devices]
    gaps: list[list[int]] = [[] for _ in run.devices]
    alarm: list[list[npt.NDArray[np.bool_]]] = [[] for _ in run.devices]
    heading: list[list[tuple[int, str, float]]] = [[] for _ in run.devices]
    checked: list[list[int]] = [[] for _ in run.devices]
    events: list[list[tuple[int, str, str]]] = [[] for _ in run.devices]
    causes: list[list[tuple[int, str]]] = [[] for _ in run.devices]
    t0 = time.perf_counter()
    for window in run.chunks(hours):
        items = []
        for i, sl in window:
            d = run.devices[i]
            items.append(DeviceInput(d.device_id, CHANNELS, d.ts[sl], d.values[sl], states[i], d.line, d.machine_type))
        for (i, sl), (result, state) in zip(window, fleet.update(items), strict=True):
            states[i] = state
            raises[i] += [e.ts_ms for e in result.events if e.kind == "raise"]
            events[i] += [(e.ts_ms, e.kind, e.severity) for e in result.events]
            causes[i] += [(e.ts_ms, _cause(e.reasons)) for e in result.events if e.kind == "raise"]
            alarm[i].append(result.in_alarm)
            gap = np.flatnonzero(result.device_scores[:, 0] >= 1.0)
            gaps[i] += run.devices[i].ts[sl][gap].tolist()
            if sl.stop > sl.start:
                at = int(run.devices[i].ts[sl.stop - 1])
                checked[i].append(at)
                heading[i] += [(at, p.metric, p.hours_to_limit) for p in result.predictions.values()
                               if p.hours_to_limit is not None and p.hours_to_limit <= HEADING_HORIZON_H]  # fmt: skip
    seconds = time.perf_counter() - t0
    joined = [np.concatenate(a) if a else np.zeros(0, dtype=bool) for a in alarm]
    return Outcome(raises, joined, gaps, seconds, heading, checked, events, causes)


def _cause(reasons: tuple[Reason, ...]) -> str:
    return f"{reasons[0].detector} {reasons[0].metric}" if reasons else "?"


def _limits() -> tuple[FloatArray, FloatArray]:
    low = np.array([DEFAULT_LIMITS_LONG_RUN[c][0] for c in CHANNELS])
    high = np.array([DEFAULT_LIMITS_LONG_RUN[c][1] for c in CHANNELS])
    return low, high


def static_score(x: FloatArray) -> FloatArray:
    low, high = _limits()
    with np.errstate(invalid="ignore"):
        return np.asarray(np.where((x > high) | (x < low), 1.0, 0.0).max(axis=1), dtype=np.float64)


def _running(x: FloatArray, ts: npt.NDArray[np.int64]) -> npt.NDArray[np.bool_]:
    """Readings of a running machine: the vibration (the load proxy) at least half its usual
    running level, that level taken from the first day only (what a peer could know when it
    judges later readings). A peer that learned its 3 sigma from a stopped machine, or judged
    a stop against running statistics, would be in alarm always."""
    vib = x[:, CHANNELS.index("vibration_mm_s")]
    first_day = (ts < ts[0] + 86_400_000) & np.isfinite(vib) if len(ts) else np.isfinite(vib)
    if not first_day.any():
        return np.zeros(len(x), dtype=np.bool_)
    with np.errstate(invalid="ignore"):
        return np.asarray(vib >= 0.5 * np.percentile(vib[first_day], 75), dtype=np.bool_)


def _standardised(x: FloatArray, ts: npt.NDArray[np.int64]) -> FloatArray:
    """z of each metric against its first day of running readings (at least WARMUP of them:
    a day holds a shift's load and the daily ambient, as an engineer setting 3-sigma limits
    by hand would take them); 0 while stopped or still learning, and for a metric absent."""
    running = _running(x, ts)
    index = np.flatnonzero(running)
    day = int(np.searchsorted(ts[index], ts[index[0]] + 86_400_000)) if len(index) else 0
    index = index[: max(day, WARMUP)]
    learned = index[-1] + 1 if len(index) else len(x)
    warm = x[index]
    with np.errstate(invalid="ignore"):
        sd = np.nanstd(warm, axis=0) if len(warm) else np.ones(x.shape[1])
        mean = np.nanmean(warm, axis=0) if len(warm) else np.zeros(x.shape[1])
    z = np.asarray((x - mean) / np.where(sd > 0, sd, 1.0), dtype=np.float64)
    z[~running] = 0.0
    z[:learned] = 0.0
    return np.nan_to_num(z, nan=0.0)


def sigma3_score(x: FloatArray, ts: npt.NDArray[np.int64]) -> FloatArray:
    z = np.abs(_standardised(x, ts)) / 3.0
    return np.asarray(np.fmax(static_score(x), z.max(axis=1)), dtype=np.float64)


def cusum_scores(
    xs: list[FloatArray], tss: list[npt.NDArray[np.int64]], k: float = 0.5, h: float = 5.0
) -> list[FloatArray]:
    """Two-sided CUSUM per metric, all devices stepped together (padded to the longest)."""
    n = max(len(x) for x in xs)
    z = np.zeros((n, len(xs), xs[0].shape[1]))
    for i, (x, ts) in enumerate(zip(xs, tss, strict=True)):
        z[: len(x), i] = _standardised(x, ts)
    out = np.zeros((n, len(xs)))
    up, down = np.zeros(z.shape[1:]), np.zeros(z.shape[1:])
    for step in range(n):
        np.maximum(0.0, up + z[step] - k, out=up)
        np.maximum(0.0, down - z[step] - k, out=down)
        out[step] = np.fmax(up, down).max(axis=1) / h
        up[up > h] = 0.0
        down[down > h] = 0.0
    return [np.fmax(static_score(x), out[: len(x), i]) for i, x in enumerate(xs)]


def hysteresis_raises(
    ts: npt.NDArray[np.int64], score: FloatArray, alarm: AlarmConfig
) -> tuple[list[int], npt.NDArray[np.bool_]]:
    """Raise times, and the alarm per reading, under the same hysteresis the product uses."""
    raised: list[int] = []
    state = np.zeros(len(ts), dtype=bool)
    on, above, below, since = False, 0, 0, 0
    # a missing score (a peer's NaN while a metric is absent) is no alarm
    for k, (t, s) in enumerate(zip(ts.tolist(), np.nan_to_num(score).tolist(), strict=True)):
        above = above + 1 if s >= alarm.raise_level else 0
        below = below + 1 if s < alarm.clear_level else 0
        since = t if below == 1 else since
        if not on and above >= alarm.min_duration:
            on = True
            raised.append(t)
        elif on and below >= alarm.clear_duration and t - since >= 1000 * alarm.clear_s:
            on = False
        state[k] = on
    return raised, state


def run_peer(run: LongRun, score: Callable[[list[FloatArray]], list[FloatArray]]) -> Outcome:
    t0 = time.perf_counter()
    alarm = AlarmConfig()
    scores = score([d.values for d in run.devices])
    pairs = [hysteresis_raises(d.ts, s, alarm) for d, s in zip(run.devices, scores, strict=True)]
    return Outcome([r for r, _ in pairs], [a for _, a in pairs], seconds=time.perf_counter() - t0)


def score_outcome(run: LongRun, out: Outcome) -> dict[str, Any]:
    """False raises on fault-free time, and detection, delay and lead time per fault kind."""
    false_raises, free_ms, free_readings, free_alarm = 0, 0, 0, 0
    false_causes: Counter[str] = Counter()
    per_kind: dict[str, dict[str, list[float]]] = {
        k: {
            key: []
            for key in ("n", "hit", "delay", "lead", "lead_run", "hit_start", "delay_start", "readings", "undeveloped")
        }
        for k in LONG_RUN_FAULTS
    }
    for i, d in enumerate(run.devices):
        r = np.array(out.raises[i], dtype=np.int64)
        f = d.fault
        clean_end = run.end_ms if f is None else f.start_ms
        false_raises += int((r < clean_end).sum())
        false_causes.update(cause for t, cause in (out.causes[i] if out.causes else []) if t < clean_end)
        free_ms += clean_end - run.start_ms
        clean = d.ts < clean_end
        free_readings += int(clean.sum())
        free_alarm += int(out.alarm[i][clean].sum())
        if f is None:
            continue
        row = per_kind[f.kind]
        row["n"].append(1)
        if f.kind == "dropout":
            g = np.array(out.gaps[i] if out.gaps else [], dtype=np.int64)
            row["hit"].append(float(((g >= f.end_ms) & (g < f.end_ms + ABRUPT_WINDOW_MS)).any()))
            continue
        # a page is a raise, or an escalation of an alarm already open when the fault began
        escalations = [t for t, kind, _ in (out.events[i] if out.events else []) if kind == "escalate"]
        pages = np.array(sorted(escalations + r.tolist()), dtype=np.int64)
        if f.kind in ABRUPT_FAULTS:
            _judge_abrupt(row, f, pages, d.ts)
            continue
        after = pages[(pages >= f.start_ms) & (pages <= run.end_ms)]
        if f.limit_ms is None:  # not past its limit within the run: not yet a failure to predict
            row["undeveloped"].append(float(after.size > 0))
            continue
        for hit, delay in (("hit", "delay"), ("hit_start", "delay_start")):
            row[hit].append(float(after.size > 0))
            row[delay] += [(after[0] - f.start_ms) / 1000.0] if after.size else []
        if after.size and f.limit_ms is not None:
            row["lead"].append((f.limit_ms - after[0]) / 3_600_000.0)
            row["lead_run"].append(_running_hours(d.ts, d.running, int(after[0]), f.limit_ms, run.interval_s))
    days = free_ms / 86_400_000.0
    faulty = [k for k in LONG_RUN_FAULTS if k != "dropout"]
    hits = sum(sum(per_kind[k]["hit"]) for k in faulty)
    total = sum(len(per_kind[k]["hit"]) for k in faulty)
    undeveloped = [v for k in SLOW_FAULTS for v in per_kind[k]["undeveloped"]]
    hits_start = sum(sum(per_kind[k]["hit_start"]) for k in faulty)
    total_start = sum(len(per_kind[k]["hit_start"]) for k in faulty)
    leads = [v for k in SLOW_FAULTS for v in per_kind[k]["lead"]]
    leads_run = [v for k in SLOW_FAULTS for v in per_kind[k]["lead_run"]]
    delays = [v for k in ABRUPT_FAULTS for v in per_kind[k]["delay"]]
    delays_start = [v for k in ABRUPT_FAULTS for v in per_kind[k]["delay_start"]]
    readings = [v for k in ABRUPT_FAULTS for v in per_kind[k]["readings"]]
    return {
        "false_raises": false_raises,
        "false_raise_causes": dict(false_causes.most_common()),
        "fault_free_device_days": round(days, 1),
        "false_raises_per_device_day": round(false_raises / days, 3) if days else None,
        "fault_free_time_in_alarm": round(free_alarm / free_readings, 3) if free_readings else None,
        "detected_fraction": round(hits / total, 3) if total else None,
        "slow_faults_undeveloped": len(undeveloped),
        "slow_faults_undeveloped_paged": int(sum(undeveloped)),
        "detected_fraction_with_undeveloped": (
            round((hits + sum(undeveloped)) / (total + len(undeveloped)), 3) if total + len(undeveloped) else None
        ),
        "detected_fraction_from_start": round(hits_start / total_start, 3) if total_start else None,
        "median_lead_time_h": round(statistics.median(leads), 1) if leads else None,
        "min_lead_time_h": round(min(leads), 1) if leads else None,
        "median_running_lead_h": round(statistics.median(leads_run), 1) if leads_run else None,
        "min_running_lead_h": round(min(leads_run), 1) if leads_run else None,
        "slow_faults_under_12h": sum(1 for v in leads if v < 12.0),
        "slow_faults_crossing": len(leads),
        "median_delay_s": round(statistics.median(delays), 1) if delays else None,
        "median_delay_readings": round(statistics.median(readings), 1) if readings else None,
        "median_delay_from_start_s": round(statistics.median(delays_start), 1) if delays_start else None,
        "kinds": {
            k: {
                "devices": len(v["n"]),
                "detected": int(sum(v["hit"])),
                "seen": len(v["hit"]),
                "detected_from_start": int(sum(v["hit_start"])),
                "undeveloped": len(v["undeveloped"]),
                "undeveloped_paged": int(sum(v["undeveloped"])),
                "median_delay_s": round(statistics.median(v["delay"]), 1) if v["delay"] else None,
                "median_delay_readings": round(statistics.median(v["readings"]), 1) if v["readings"] else None,
                "median_delay_from_start_s": (
                    round(statistics.median(v["delay_start"]), 1) if v["delay_start"] else None
                ),
                "median_lead_h": round(statistics.median(v["lead"]), 1) if v["lead"] else None,
                "min_lead_h": round(min(v["lead"]), 1) if v["lead"] else None,
                "median_running_lead_h": round(statistics.median(v["lead_run"]), 1) if v["lead_run"] else None,
            }
            for k, v in per_kind.items()
        },
    }


def _running_hours(ts: npt.NDArray[np.int64], running: npt.NDArray[np.bool_], lo: int, hi: int, step: float) -> float:
    """The machine's running time from ``lo`` to ``hi`` (epoch ms): its running readings, each
    standing for one interval (the time it could still run before the limit)."""
    return float((running & (ts >= lo) & (ts < hi)).sum()) * step / 3600.0


def _judge_abrupt(
    row: dict[str, list[float]], f: LongRunFault, pages: npt.NDArray[np.int64], ts: npt.NDArray[np.int64]
) -> None:
    """An abrupt fault: detected within an hour of the first reading that shows it (and,
    as the benchmark scored before, within an hour of its start); the delays from each."""
    if f.visible_ms is None:  # no reading shows it: nothing to detect (not counted)
        return
    for hit, delay, since in (("hit", "delay", f.visible_ms), ("hit_start", "delay_start", f.start_ms)):
        after = pages[(pages >= since) & (pages <= since + ABRUPT_WINDOW_MS)]
        row[hit].append(float(after.size > 0))
        row[delay] += [(after[0] - since) / 1000.0] if after.size else []
        if after.size and hit == "hit":
            # readings sent from the one that shows the fault to the page's, both included
            row["readings"].append(int(np.searchsorted(ts, after[0], side="right") - np.searchsorted(ts, since)))


#: EEMUA 191: one operator's line; a 10-minute window with more alarms than this is a flood
LINE_DEVICES = 100
FLOOD_PER_10_MIN = 10
STANDING_MS = 86_400_000
CHATTER_MS = 600_000


def score_operator(run: LongRun, out: Outcome) -> dict[str, Any]:
    """The alarm load as an operator meets it (see the module's docstring)."""
    interval_ms = int(run.interval_s * 1000)
    healthy = [i for i, d in enumerate(run.devices) if d.fault is None]
    in_alarm = [float(out.alarm[i].mean()) if len(out.alarm[i]) else 0.0 for i in healthy]
    escalations = healthy_escalations = 0
    standing = chatter = 0
    paged, still_open, crossings = 0, 0, 0
    annunciated: list[int] = []
    for i, d in enumerate(run.devices):
        evs = out.events[i]
        annunciated += [t for t, kind, _ in evs if kind in ("raise", "escalate")]
        n_esc = sum(kind == "escalate" for _, kind, _ in evs)
        escalations += n_esc
        healthy_escalations += n_esc if d.fault is None else 0
        opened, last_clear = None, None
        for t, kind, _ in evs:
            if kind == "raise":
                chatter += last_clear is not None and t - last_clear < CHATTER_MS
                opened = t
            elif kind == "clear" and opened is not None:
                standing += t - opened > STANDING_MS
                opened, last_clear = None, t
        standing += opened is not None and run.end_ms - opened > STANDING_MS
        f = d.fault
        if f is not None and f.limit_ms is not None:
            crossings += 1
            at = int(np.searchsorted(d.ts, f.limit_ms))
            by = int(d.ts[min(at + 2, len(d.ts) - 1)])  # the third reading from the crossing on
            paged += _paged_critical(evs, int(d.ts[min(at, len(d.ts) - 1)]), by)
            still_open += _critical_at(evs, by)
    windows = max(1, int(np.ceil((run.end_ms - run.start_ms) / CHATTER_MS)))
    per_window = np.bincount((np.array(annunciated, dtype=np.int64) - run.start_ms) // CHATTER_MS, minlength=windows)
    scale = LINE_DEVICES / len(run.devices)
    return {
        "healthy_time_in_alarm": round(float(np.mean(in_alarm)), 4) if in_alarm else None,
        "healthy_devices_in_alarm_over_2pct": sum(v > 0.02 for v in in_alarm),
        "escalations": escalations,
        "healthy_escalations": healthy_escalations,
        "limit_crossings_paged_within_3": f"{paged}/{crossings}",
        "limit_crossings_open_critical_at_3rd": f"{still_open}/{crossings}",
        "eemua_alarms_per_10min_avg": round(float(per_window.mean()) * scale, 3),
        "eemua_alarms_per_10min_peak": round(float(per_window.max(initial=0)) * scale, 1),
        "eemua_flood_windows": round(float((per_window * scale > FLOOD_PER_10_MIN).mean()), 4),
        "standing_over_24h": standing,
        "chattering": chatter,
        "interval_ms": interval_ms,
    }


def _paged_critical(events: list[tuple[int, str, str]], at: int, by: int) -> bool:
    """Whether a critical alarm pages from ``at`` to ``by`` (both included): a critical
    raise or escalation then, or an alarm already open and critical at ``at``."""
    sent = any(at <= t <= by and kind != "clear" and severity == "critical" for t, kind, severity in events)
    return sent or _critical_at(events, at)


def _critical_at(events: list[tuple[int, str, str]], at: int) -> bool:
    """Whether an alarm is open and critical at ``at`` (the events of one device, in order)."""
    open_, critical = False, False
    for t, kind, severity in events:
        if t > at:
            break
        open_ = kind != "clear"
        critical = open_ and (critical or severity == "critical")
    return open_ and critical


def score_heading(run: LongRun, out: Outcome) -> dict[str, Any]:
    """How the predictions read each hour fare: "heading for a limit" (a crossing predicted
    within the report's week) on fault-free time, and for slow faults whether the fault's
    metric was named heading before its limit was crossed, how early, and how far the
    predicted hours were from the true remaining time at that first prediction."""
    checks, false_checks, devices_named = 0, 0, 0
    leads: list[float] = []
    ratios: list[float] = []
    slow, predicted = 0, 0
    for i, d in enumerate(run.devices):
        f = d.fault
        clean_end = run.end_ms if f is None else f.start_ms
        at = np.array(out.checked[i], dtype=np.int64)
        flagged = {t for t, _, _ in out.heading[i] if t < clean_end}
        checks += int((at < clean_end).sum())
        false_checks += len(flagged)
        devices_named += bool(flagged)
        if f is None or not f.slow or f.limit_ms is None:
            continue
        slow += 1
        metric = LONG_RUN_METRIC[f.kind]
        hits = [(t, h) for t, m, h in out.heading[i] if m == metric and f.start_ms <= t < f.limit_ms]
        if hits:
            predicted += 1
            t, h = hits[0]
            remaining = (f.limit_ms - t) / 3_600_000.0
            leads.append(remaining)
            ratios.append(h / remaining if remaining > 0 else float("nan"))
    return {
        "false_heading_fraction": round(false_checks / checks, 4) if checks else None,
        "false_heading_devices": devices_named,
        "slow_faults_predicted": f"{predicted}/{slow}",
        "median_prediction_lead_h": round(statistics.median(leads), 1) if leads else None,
        "median_predicted_over_true_hours": round(statistics.median(ratios), 2) if ratios else None,
    }


def _fmt(v: Any) -> str:
    return "-" if v is None else str(v)


def report(name: str, res: dict[str, Any], seconds: float) -> None:
    print(
        f"\n{name}: {res['false_raises']} false raises in {res['fault_free_device_days']} fault-free device-days "
        f"= {_fmt(res['false_raises_per_device_day'])}/device-day, in alarm {_fmt(res['fault_free_time_in_alarm'])} "
        f"of that time; detected {_fmt(res['detected_fraction'])} "
        f"(from start {_fmt(res['detected_fraction_from_start'])}; "
        f"{res['slow_faults_undeveloped']} slow faults not past their limit within the run are left out, "
        f"{res['slow_faults_undeveloped_paged']} of them paged; counted in as before: "
        f"{_fmt(res['detected_fraction_with_undeveloped'])}); "
        f"median lead {_fmt(res['median_lead_time_h'])} h, min {_fmt(res['min_lead_time_h'])} h, "
        f"{_fmt(res['slow_faults_under_12h'])}/{_fmt(res['slow_faults_crossing'])} under 12 h "
        f"(in running time: median {_fmt(res['median_running_lead_h'])} h, min {_fmt(res['min_running_lead_h'])} h) "
        f"(slow); median delay {_fmt(res['median_delay_s'])} s, "
        f"{_fmt(res['median_delay_readings'])} readings, from the first reading that shows the fault "
        f"(from start {_fmt(res['median_delay_from_start_s'])} s) (abrupt); {seconds:.1f} s"
    )
    print(
        f"  {'fault':<20} {'detected':>9} {'delay s':>9} {'readings':>8} {'lead h':>7} {'min lead h':>10}"
        f" {'from start: detected':>20} {'delay s':>9}"
    )
    for kind, row in res["kinds"].items():
        if row["devices"]:
            unseen = row["devices"] - row["seen"] if kind in ABRUPT_FAULTS else 0
            print(
                f"  {kind:<20} {row['detected']:>4}/{row['seen']:<4} {_fmt(row['median_delay_s']):>9} "
                f"{_fmt(row['median_delay_readings']):>8} {_fmt(row['median_lead_h']):>7} {_fmt(row['min_lead_h']):>10}"
                f" {row['detected_from_start']:>16}/{row['seen']:<3} {_fmt(row['median_delay_from_start_s']):>9}"
                + (f"  ({unseen} unseen: no reading shows it)" if unseen else "")
                + (
                    f"  (+{row['undeveloped']} not past the limit in the run, {row['undeveloped_paged']} paged)"
                    if row["undeveloped"]
                    else ""
                )
            )
    if res.get("false_raise_causes"):
        print("  false raises by first reason: " + ", ".join(f"{k} {v}" for k, v in res["false_raise_causes"].items()))


def describe(run: LongRun) -> str:
    n = sum(len(d.ts) for d in run.devices)
    running = sum(int(d.running.sum()) for d in run.devices)
    faults = len(run.faults)
    return (
        f"{len(run.devices)} devices x {run.days:g} days at {run.interval_s:g} s: {n:,} readings "
        f"({100 * running / n:.0f} % while running), {faults} faulty devices"
    )


def plot_day(run: LongRun, path: str, day: int = 1) -> str:
    """One healthy two-shift machine's idle-run-idle day: readings, operating point, state, raises."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    i = next(k for k, d in enumerate(run.devices) if d.fault is None and d.schedule == "two_shift")
    d = run.devices[i]
    fleet, state = FleetDetector(DetectorConfig()), None
    parts: list[tuple[slice, Any]] = []
    for window in run.chunks(1.0):
        for k, sl in window:
            if k == i:
                [(result, state)] = fleet.update([DeviceInput(d.device_id, CHANNELS, d.ts[sl], d.values[sl], state)])
                parts.append((sl, result))
    lo, hi = run.start_ms + day * 86_400_000, run.start_ms + (day + 1) * 86_400_000
    keep = (d.ts >= lo) & (d.ts < hi)
    hours = (d.ts[keep] - lo) / 3_600_000.0
    point = np.concatenate([r.operating_point for _, r in parts])[keep]
    gate = np.concatenate([r.operating for _, r in parts])[keep]
    op = np.concatenate([r.channel_scores[..., CH["operating_point"]].max(axis=1) for _, r in parts])[keep]
    raised = [(e.ts_ms - lo) / 3_600_000.0 for sl, r in parts for e in r.events if e.kind == "raise"]
    fig, axes = plt.subplots(5, 1, figsize=(11, 10), sharex=True, height_ratios=[3, 3, 3, 1, 1])
    low, high = _limits()
    labels = ("expected at this load (operating point)", "operating point", "operating point")
    for j, ax in enumerate(axes[:3]):
        ax.plot(hours, d.values[keep, j], lw=0.4, color="tab:blue", label="reading")
        ax.plot(hours, point[:, j], lw=1.0, color="tab:orange", label=labels[j])
        for limit in (low[j], high[j]):
            if np.isfinite(limit) and limit < 1.3 * np.nanmax(d.values[keep, j]):
                ax.axhline(limit, color="tab:red", lw=0.8, ls="--")
        for t in raised:
            if 0 <= t < 24:
                ax.axvline(t, color="tab:red", lw=1.0)
        ax.set_ylabel(CHANNELS[j])
        ax.legend(loc="upper right", fontsize=8)
    axes[3].step(hours, gate, where="post", color="black", lw=0.8)
    axes[3].set_yticks([0, 0.5, 1], ["off", "settling", "running"])
    axes[4].plot(hours, op, color="tab:orange", lw=0.8)
    axes[4].axhline(1.0, color="tab:red", lw=0.8, ls="--")
    axes[4].set_ylim(0, 1.2)
    axes[4].set_ylabel("op. point\ntest")
    axes[4].set_xlabel(
        f"hour of day {day + 1} ({d.device_id}, {d.schedule}); dashed: static limits, the test's raise level"
    )
    fig.suptitle("Operating state and operating point: load changes move the expectation, not the alarm")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    return path


def plot_failure(run: LongRun, path: str, kind: str = "bearing_wear") -> str:
    """One machine's failure: its readings from a day before the fault to the end, the
    static limits, and the alarm's raises, escalations and clears with their severity."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    i = next(k for k, d in enumerate(run.devices) if d.fault is not None and d.fault.kind == kind)
    d, fault = run.devices[i], run.devices[i].fault
    assert fault is not None
    fleet, state = FleetDetector(DetectorConfig()), None
    events: list[tuple[float, str, str]] = []
    for window in run.chunks(1.0):
        for k, sl in window:
            if k == i:
                item = DeviceInput(d.device_id, CHANNELS, d.ts[sl], d.values[sl], state, d.line, d.machine_type)
                [(result, state)] = fleet.update([item])
                events += [((e.ts_ms - run.start_ms) / 3_600_000.0, e.kind, e.severity) for e in result.events]
    lo = max(run.start_ms, fault.start_ms - 86_400_000)
    keep = d.ts >= lo
    hours = (d.ts[keep] - run.start_ms) / 3_600_000.0
    colour = {"raise": "tab:orange", "escalate": "tab:red", "clear": "tab:green"}
    fig, axes = plt.subplots(3, 1, figsize=(11, 8), sharex=True)
    low, high = _limits()
    for j, ax in enumerate(axes):
        ax.plot(hours, d.values[keep, j], lw=0.3, color="tab:blue")
        for limit in (low[j], high[j]):
            if np.isfinite(limit) and limit < 1.3 * np.nanmax(d.values[keep, j]):
                ax.axhline(limit, color="tab:red", lw=0.8, ls="--")
        for t, kind_, severity in events:
            if t >= hours[0]:
                ax.axvline(t, color=colour[kind_], lw=1.0, ls="-" if severity == "critical" else ":")
        ax.axvline((fault.start_ms - run.start_ms) / 3_600_000.0, color="black", lw=0.8, ls="-.")
        ax.set_ylabel(CHANNELS[j])
    shown = [f"{k} ({s}) at {t:.0f} h" for t, k, s in events if t >= hours[0]][:6]
    axes[2].set_xlabel(
        f"hours into the run ({d.device_id}, {kind}); dash-dot: the fault starts; dashed red: static limits\n"
        "orange: raise, red: escalate, green: clear (solid: critical, dotted: warning)"
    )
    fig.suptitle("A failure as the operator sees it: " + ", ".join(shown), fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    return path


def report_operator(op: dict[str, Any]) -> None:
    print(
        f"  operator: healthy devices in alarm {100 * (op['healthy_time_in_alarm'] or 0):.2f} % of their time "
        f"({op['healthy_devices_in_alarm_over_2pct']} devices over 2 %); {op['escalations']} escalations "
        f"({op['healthy_escalations']} on healthy devices); limit crossings paged critical within 3 readings "
        f"{op['limit_crossings_paged_within_3']} (still open and critical at the third reading "
        f"{op['limit_crossings_open_critical_at_3rd']})"
    )
    print(
        f"  EEMUA 191, a {LINE_DEVICES}-device line: {op['eemua_alarms_per_10min_avg']} alarms per 10 min "
        f"(peak {op['eemua_alarms_per_10min_peak']}, flood in {100 * op['eemua_flood_windows']:.2f} % of windows); "
        f"{op['standing_over_24h']} standing > 24 h; {op['chattering']} chattering"
    )


def evaluate(args: argparse.Namespace, interval: float) -> dict[str, Any]:
    """Generate the run at one interval, score iotpm and the peers; print and return the figures."""
    t0 = time.perf_counter()
    run = long_run(
        args.devices, args.days, interval, args.seed, plant="base" if args.classic else args.plant,
        fault_clock=args.fault_clock,
    )  # fmt: skip
    print(f"\n== {describe(run)}; generated in {time.perf_counter() - t0:.1f} s (seed {args.seed})")
    if args.plot and interval == args.intervals[0]:
        print(f"plot: {plot_day(run, args.plot)}")
    if args.plot_failure and interval == args.intervals[0]:
        print(f"plot: {plot_failure(run, args.plot_failure)}")
    results: dict[str, dict[str, Any]] = {}
    out = run_iotpm(run, DetectorConfig())
    results["iotpm"] = score_outcome(run, out)
    report("iotpm (DetectorConfig())", results["iotpm"], out.seconds)
    operator = score_operator(run, out)
    report_operator(operator)
    heading = score_heading(run, out)
    print(
        f"  heading for a limit (hourly reads): {heading['false_heading_fraction']} of fault-free reads, on "
        f"{heading['false_heading_devices']} devices; slow faults predicted {heading['slow_faults_predicted']}, "
        f"median {_fmt(heading['median_prediction_lead_h'])} h before the limit, predicted/true hours "
        f"{_fmt(heading['median_predicted_over_true_hours'])}"
    )
    peers: dict[str, Callable[[list[FloatArray]], list[FloatArray]]] = {}
    if not args.no_peers:
        peers = {
            "static": lambda xs: [static_score(x) for x in xs],
            "sigma3": lambda xs: [sigma3_score(x, d.ts) for x, d in zip(xs, run.devices, strict=True)],
            "cusum": lambda xs: cusum_scores(xs, [d.ts for d in run.devices]),
        }
    for name, fn in peers.items():
        po = run_peer(run, fn)
        results[name] = score_outcome(run, po)
        report(name, results[name], po.seconds)
    keys = (
        "false_raises_per_device_day",
        "detected_fraction",
        "detected_fraction_from_start",
        "detected_fraction_with_undeveloped",
        "slow_faults_undeveloped",
        "slow_faults_undeveloped_paged",
        "median_lead_time_h",
        "min_lead_time_h",
        "median_running_lead_h",
        "min_running_lead_h",
        "slow_faults_under_12h",
        "slow_faults_crossing",
        "median_delay_s",
        "median_delay_readings",
        "median_delay_from_start_s",
        "fault_free_time_in_alarm",
    )
    summary: dict[str, Any] = {k: results["iotpm"][k] for k in keys}
    summary["kinds"] = results["iotpm"]["kinds"]
    summary["operator"] = operator
    summary["heading"] = heading
    summary["peers"] = {name: {k: results[name][k] for k in keys} for name in peers}
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--devices", type=int, default=100)
    parser.add_argument("--days", type=float, default=7.0)
    parser.add_argument(
        "--intervals", type=lambda v: [float(x) for x in v.split(",")], default=[10.0, 600.0],
        help="seconds between readings, comma-separated: one run at each",
    )  # fmt: skip
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--classic", action="store_true", help="the base model alone (same as --plant base)")
    parser.add_argument(
        "--plant", choices=PLANTS, default="extended",
        help="extended: the base model with another plant's phenomena (default); speed: variable-speed drives; "
        "heldout: physics the detector was not developed on (its figures are held-out figures); "
        "legacy: whole-unit transmitters and line-wide process upsets (also held out)",
    )  # fmt: skip
    parser.add_argument(
        "--fault-clock", choices=FAULT_CLOCKS, default="running",
        help="running: slow faults grow with the machine's running time (wear, fouling, a seal's leak); "
        "wall: by the clock, also while the machine is stopped (the simulator before 2026-12-07)",
    )  # fmt: skip
    parser.add_argument("--no-peers", action="store_true")
    parser.add_argument("--plot", metavar="PNG", help="also draw one healthy machine's idle-run-idle day")
    parser.add_argument("--plot-failure", metavar="PNG", help="also draw one machine's bearing failure and its alarm")
    args = parser.parse_args()
    by_interval = {f"{interval:g}s": evaluate(args, interval) for interval in args.intervals}
    summary = dict(next(iter(by_interval.values())))
    summary["by_interval"] = by_interval
    summary["run"] = {
        "devices": args.devices, "days": args.days, "intervals_s": args.intervals, "seed": args.seed,
        "phenomena": not args.classic, "plant": "base" if args.classic else args.plant,
        "fault_clock": args.fault_clock,
    }  # fmt: skip
    print(json.dumps(summary))


if __name__ == "__main__":
    main()

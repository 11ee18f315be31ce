"""The shipped detector on real run-to-failure bearings, judged as an operator would.

Two public data sets, neither copied into this repository: the script downloads each
(a shallow ``git clone`` of a public GitHub copy) into a cache outside it (``--cache-dir``,
default ``$IOTPM_DATA_CACHE`` or ``~/.cache/iotpm/datasets``) and keeps only per-snapshot
features there. Neither states a licence; both are published for research by their
authors: cite them when you publish figures made with them.

``ims`` (default): the IMS bearing data of the University of Cincinnati's Center for
Intelligent Maintenance Systems (J. Lee, H. Qiu, G. Yu, J. Lin and Rexnord Technical
Services, "Bearing Data Set", NASA Prognostics Data Repository, 2007). Four Rexnord
ZA-2115 bearings on one shaft at 2,000 rpm under a 6,000 lb radial load, run until one
failed; a one-second accelerometer snapshot every 10 minutes, and the rig stopped for
nights and days (set 1 has stops of 4 to 6 days). Set 1: bearing 3 (inner race) and
bearing 4 (roller) failed at the end, two accelerometers (x, y) per bearing; set 2:
bearing 1 (outer race) failed, one accelerometer each. The per-snapshot features come
from a public analysis of the raw files (``IMS_SOURCE``, ``my-code/ProcessedData/
test{1,2}_timefeatures.csv``: RMS, largest absolute sample, crest factor, excess
kurtosis per channel, computed from the original 20,480-sample snapshots).

``phm2012``: the IEEE PHM 2012 Prognostic Challenge set (FEMTO-ST's PRONOSTIA rig:
Nectoux, P. et al., "PRONOSTIA: an experimental platform for bearings accelerated
degradation tests", IEEE PHM 2012, Denver): 17 bearings run from new to failure (the
test stopped at 20 g) at constant speed and load, a 0.1 s snapshot of a horizontal and a
vertical accelerometer every 10 s (``Learning_set`` and ``Full_Test_Set``). The script
computes the same four features (kurtosis not in excess) from the raw files
(``PHM_SOURCE``, ~0.5 GB to download, a few minutes to reduce once). An accelerated
test: lives of 0.6 to 7.8 hours, so a plant's time constants (an hour's warm-up, a
week's memory of tails) do not map onto it; it shows the detector at 10 s readings on a
fast degradation, not a plant's weeks.

Each bearing is one device; ``ims`` also runs each rig as one device (all bearings'
features: the case where an early false alarm on one bearing may hide another's
failure). The metrics' names have no unit the detector knows (``x_rms``, ...): no static
limit, no ISO zone, no load proxy; only the statistical detectors judge them (issue 28,
case 5). Timestamps are the snapshots' own clock times, so the detector's time-based
settings apply as on a device; readings go in one-hour chunks, as the processor batches.

What an operator would ask, per machine:

- **healthy life in alarm**: the share of the healthy life's running time during which
  an alarm is open (the warm-up included; a stop of 12 h or more counts neither way,
  ``longest`` gives the age an alarm reached, stops included). Healthy life: the first ``--healthy`` (default 0.5) of
  each run, for every machine: neither set publishes an onset of degradation, the
  bearings were new or run in at the start, and published health indicators on both
  sets (and the ``healthy_rms_ratio`` check this script prints: the 95th percentile of
  each RMS over the healthy life against its median) put the degradation in the later
  part of each life. Not the whole run for the bearings that did not fail: on one shaft
  they carry the failing bearing's vibration in its last days (IMS set 2's bearing 4
  ends at 2.6 times its early RMS).
- **the degradation** (``onset``): the first snapshot after the healthy life where an
  RMS (the median of its last six snapshots) reaches twice its healthy median (twice the
  RMS, +6 dB: vibration monitoring's usual "changed condition" step). The failure is the
  last snapshot.
- **first warning**: hours before the failure of the first raise after the healthy
  life; whether an alarm was already open at the onset (then the failure must escalate
  it to be heard).
- **the failure pages**: whether the degradation produced an event of its own (a
  raise, or an escalation of an alarm already open) after the onset, and its severity;
  and whether one came in the last tenth of the life (``paged_last_tenth``: the RMS
  onset can come very late, IMS set 1's bearings double their RMS only in the last
  hour, while their peaks and kurtosis grow days before).
- **drift re-fires**: raises whose first reason is the drift detector, and the hours
  between them (a drift alarm should fire once per drift).
- **after a long stop** (a gap of 12 h or more, IMS set 1): whether a raise came within
  6 h of the restart, and whether an alarm was still open 24 h after it.

Baseline measured in the same run (``sigma3``): each metric against 3 sigma of its first
100 readings (``fleet_quality.py``'s ``sigma3`` peer), with the product's hysteresis
(raise at score 1, clear after 2 readings and 10 minutes below 0.8).

    python benchmarks/real_run_to_failure.py [--dataset ims|phm2012|all]
        [--source-ims URL-or-git-dir] [--source-phm URL-or-git-dir] [--cache-dir DIR]
        [--healthy 0.5] [--machines ims1-b3,...]

The last line is JSON: the summary per data set and peer, and every machine's figures.
"""

from __future__ import annotations

import argparse
import csv
import itertools
import json
import os
import statistics
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

IMS_SOURCE = "https://github.com/ChoCho66/PM-NASA-Bearing-Datas-IMS"
IMS_FILES = {1: "my-code/ProcessedData/test1_timefeatures.csv", 2: "my-code/ProcessedData/test2_timefeatures.csv"}
#: the bearings the IMS report names as failed at the end of each test
IMS_FAILED = {1: (3, 4), 2: (1,)}
PHM_SOURCE = "https://github.com/wkzs111/phm-ieee-2012-data-challenge-dataset"
PHM_SETS = ("Learning_set", "Full_Test_Set")
PHM_FEATURES_FILE = "phm2012_features.csv"
PHM_PERIOD_MS = 10_000  # one snapshot every 10 s (the challenge's documentation)
FEATURES = ("rms", "max", "crest", "kurtosis")
PHM_CHANNELS = tuple(f"{a}_{f}" for a in ("h", "v") for f in FEATURES)
#: the PHM snapshots carry times of day only; a base date for them
PHM_EPOCH_MS = 1_325_376_000_000  # 2012-01-01T00:00:00Z
HOUR_MS = 3_600_000
MINUTE_MS = 60_000
ONSET_FACTOR = 2.0  # twice the healthy RMS: +6 dB, vibration monitoring's changed condition
ONSET_SMOOTH = 6  # snapshots in the onset's running median (an hour of IMS, a minute of PHM)
LONG_STOP_MS = 12 * HOUR_MS
RESTART_RAISE_MS = 6 * HOUR_MS
RESTART_OPEN_MS = 24 * HOUR_MS


@dataclass(slots=True)
class Machine:
    """One device's run: its snapshots' features, and what is known about its end."""

    name: str
    dataset: str
    channels: tuple[str, ...]
    ts: IntArray
    values: FloatArray
    failed: bool
    rms: tuple[int, ...]  # the RMS columns the onset is read on


# ---------------------------------------------------------------- data: download, cache


def default_cache_dir() -> Path:
    env = os.environ.get("IOTPM_DATA_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "iotpm" / "datasets"


def git_dir(source: str, cache: Path, name: str, lazy: bool = False) -> Path:
    """A git directory holding ``source``: itself when it is a local repository, else a
    shallow bare clone of it in the cache (made once). ``lazy``: without file contents,
    which ``git show`` then fetches one by one (for a few files of a larger repository)."""
    local = Path(source)
    if local.exists():
        out = subprocess.run(
            ["git", "-C", str(local), "rev-parse", "--absolute-git-dir"], check=True, capture_output=True, text=True
        )
        return Path(out.stdout.strip())
    target = cache / f"{name}.git"
    if not target.exists():
        cache.mkdir(parents=True, exist_ok=True)
        print(f"downloading {source} into {target}", file=sys.stderr)
        lazy_args = ["--filter=blob:none"] if lazy else []
        subprocess.run(["git", "clone", "--bare", "--depth", "1", *lazy_args, source, str(target)], check=True)
    return target


def _git_show(gdir: Path, path: str) -> bytes:
    return subprocess.run(
        ["git", "--git-dir", str(gdir), "show", f"HEAD:{path}"], check=True, capture_output=True
    ).stdout


def ims_features(source: str, cache: Path) -> dict[int, Path]:
    """The two IMS feature tables in the cache (copied out of the repository once)."""
    out = {n: cache / f"ims_test{n}_timefeatures.csv" for n in IMS_FILES}
    if not all(p.exists() for p in out.values()):
        gdir = git_dir(source, cache, "ims-features", lazy=True)
        for n, path in IMS_FILES.items():
            out[n].write_bytes(_git_show(gdir, path))
    return out


def _ims_table(path: Path) -> tuple[IntArray, list[str], FloatArray]:
    with path.open(newline="") as fh:
        reader = csv.reader(fh)
        header = next(reader)[1:]
        stamps, rows = [], []
        for row in reader:
            when = datetime.strptime(row[0], "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)
            stamps.append(int(when.timestamp() * 1000))
            rows.append([float(v) for v in row[1:]])
    ts = np.asarray(stamps, dtype=np.int64)
    order = np.argsort(ts, kind="stable")
    return ts[order], header, np.asarray(rows, dtype=np.float64)[order]


def ims_machines(paths: dict[int, Path]) -> list[Machine]:
    """Each bearing of IMS sets 1 and 2 as a device, and each rig as one device."""
    out: list[Machine] = []
    for n, path in sorted(paths.items()):
        ts, header, values = _ims_table(path)
        rig_cols: list[int] = []
        rig_names: list[str] = []
        for b in (1, 2, 3, 4):
            prefix = f"B{b}_"
            cols = [i for i, h in enumerate(header) if h.startswith(prefix) and h.rsplit("_", 1)[-1] in FEATURES]
            names = tuple(header[i][len(prefix) :] for i in cols)
            rms = tuple(k for k, c in enumerate(names) if c.endswith("rms"))
            failed = b in IMS_FAILED[n]
            out.append(Machine(f"ims{n}-b{b}", "ims", names, ts, values[:, cols], failed, rms))
            rig_cols += cols
            rig_names += [f"b{b}_{c}" for c in names]
        failed_rms = tuple(k for k, c in enumerate(rig_names) if c.endswith("rms") and int(c[1]) in IMS_FAILED[n])
        out.append(Machine(f"ims{n}-rig", "ims", tuple(rig_names), ts, values[:, rig_cols], True, failed_rms))
    return out


def snapshot_features(signal: FloatArray) -> FloatArray:
    """RMS, largest absolute sample, crest factor and kurtosis of each column of one
    snapshot, axis-major (``h_rms, h_max, h_crest, h_kurtosis, v_rms, ...``)."""
    x = np.asarray(signal, dtype=np.float64)
    rms = np.sqrt(np.mean(x * x, axis=0))
    peak = np.max(np.abs(x), axis=0)
    centred = x - x.mean(axis=0)
    m2 = np.mean(centred**2, axis=0)
    m4 = np.mean(centred**4, axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        crest = np.where(rms > 0, peak / rms, np.nan)
        kurt = np.where(m2 > 0, m4 / (m2 * m2), np.nan)
    return np.stack([rms, peak, crest, kurt], axis=1).reshape(-1)


def parse_snapshot(text: bytes) -> tuple[float, FloatArray]:
    """The second of the day of a PHM snapshot's first sample and its (n, 2) accelerations.
    Rows are ``hour, minute, second, microsecond, horizontal, vertical`` (some bearings'
    files separate with ``;``)."""
    flat = np.array(text.replace(b";", b",").replace(b"\n", b",").split(b",")[:-1], dtype=np.float64)
    rows = flat.reshape(-1, 6)
    h, m, s, us = rows[0, :4]
    return h * 3600.0 + m * 60.0 + s + us * 1e-6, rows[:, 4:6]


def _members(gdir: Path) -> list[tuple[str, str]]:
    out = subprocess.run(
        ["git", "--git-dir", str(gdir), "ls-tree", "-r", "HEAD", "--", *PHM_SETS],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    rows = []
    for line in out.splitlines():
        meta, path = line.split("\t", 1)
        name = path.rsplit("/", 1)[-1]
        if name.startswith("acc_") and name.endswith(".csv"):
            rows.append((path, meta.split()[2]))
    return sorted(rows)


def _blobs(gdir: Path, shas: Sequence[str]) -> Iterator[bytes]:
    proc = subprocess.Popen(
        ["git", "--git-dir", str(gdir), "cat-file", "--batch"], stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    assert proc.stdin is not None and proc.stdout is not None
    try:
        for sha in shas:
            proc.stdin.write(f"{sha}\n".encode())
            proc.stdin.flush()
            size = int(proc.stdout.readline().split()[2])
            data = proc.stdout.read(size)
            proc.stdout.read(1)
            yield data
    finally:
        proc.stdin.close()
        proc.wait()


def phm_features(source: str, cache: Path) -> Path:
    """Every PHM 2012 snapshot reduced to its features, one CSV row each (bearing, ts_ms,
    ``PHM_CHANNELS``), in the cache (made once: a few minutes)."""
    out = cache / PHM_FEATURES_FILE
    if out.exists():
        return out
    gdir = git_dir(source, cache, "phm2012")
    members = _members(gdir)
    if not members:
        raise SystemExit(f"no acc_*.csv under {', '.join(PHM_SETS)} in {gdir}")
    tmp = out.with_suffix(".tmp")
    t0 = time.perf_counter()
    with tmp.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["bearing", "ts_ms", *PHM_CHANNELS])
        day, last_bearing, last_sod = 0.0, "", -1.0
        for k, ((path, _), blob) in enumerate(zip(members, _blobs(gdir, [s for _, s in members]), strict=True)):
            bearing = path.split("/")[-2]
            sod, signal = parse_snapshot(blob)
            if bearing != last_bearing:
                day, last_bearing, last_sod = 0.0, bearing, -1.0
            if sod < last_sod - 3600.0:  # past midnight
                day += 86_400.0
            last_sod = sod
            ts = PHM_EPOCH_MS + round((day + sod) * 1000.0)
            w.writerow([bearing, ts, *(f"{v:.6g}" for v in snapshot_features(signal))])
            if k % 5000 == 0:
                print(f"  {k}/{len(members)} snapshots ({time.perf_counter() - t0:.0f} s)", file=sys.stderr)
    tmp.replace(out)
    return out


def phm_machines(path: Path) -> list[Machine]:
    rows: dict[str, list[list[float]]] = {}
    stamps: dict[str, list[int]] = {}
    with path.open(newline="") as fh:
        reader = csv.reader(fh)
        header = next(reader)
        if tuple(header[2:]) != PHM_CHANNELS:
            raise SystemExit(f"{path}: unexpected columns {header}; delete it to rebuild")
        for row in reader:
            stamps.setdefault(row[0], []).append(int(row[1]))
            rows.setdefault(row[0], []).append([float(v) for v in row[2:]])
    out: list[Machine] = []
    rms = (PHM_CHANNELS.index("h_rms"), PHM_CHANNELS.index("v_rms"))
    for name in sorted(stamps):
        # rows are in the files' order; the snapshots' clocks glitch (Bearing1_1's jump back
        # ~6 h for two snapshots), so the challenge's documented period is used instead
        n = len(stamps[name])
        t = stamps[name][0] + PHM_PERIOD_MS * np.arange(n, dtype=np.int64)
        values = np.asarray(rows[name], dtype=np.float64)
        out.append(Machine(f"phm-{name[7:]}", "phm2012", PHM_CHANNELS, t, values, True, rms))
    return out


# ---------------------------------------------------------------- the operator's judgement


@dataclass(frozen=True, slots=True)
class Event:
    """One alarm transition as the harness keeps it (from ``AlarmEvent``)."""

    ts_ms: int
    kind: str  # raise | escalate | clear
    severity: str
    cause: str = ""  # "<detector> <metric>" of the first reason


@dataclass(slots=True)
class Restart:
    """A restart after a long stop: hours stopped, a raise within 6 h, open 24 h later."""

    at_h: float
    stopped_h: float
    raised: bool
    open_after_24h: bool


@dataclass(slots=True)
class Judgement:
    """What an operator would say about one machine's run."""

    machine: str
    failed: bool
    life_h: float
    healthy_h: float
    healthy_in_alarm: float  # share of the healthy life with an alarm open
    healthy_raises: int
    healthy_alarm_h_by_cause: dict[str, float] = field(default_factory=dict)
    longest_healthy_alarm_h: float = 0.0
    onset_before_failure_h: float | None = None
    open_at_onset: bool = False
    first_warning_h: float | None = None  # first raise after the healthy life, hours before failure
    healthy_alarm_h_held_by: dict[str, float] = field(default_factory=dict)
    failure_paged: bool = False  # a raise or escalation of its own after the onset
    paged_last_tenth: bool = False  # a raise or escalation in the last tenth of the life
    failure_events: list[str] = field(default_factory=list)
    failure_severity: str = ""
    open_at_failure: bool = False
    drift_raises: int = 0
    drift_gaps_h: list[float] = field(default_factory=list)
    raises: int = 0
    escalations: int = 0
    restarts: list[Restart] = field(default_factory=list)


def alarm_intervals(events: Sequence[Event], end_ms: int) -> list[tuple[int, int, str]]:
    """The open intervals [raise, clear) with the raising cause; an alarm still open at the
    end of the run is open until ``end_ms``."""
    out: list[tuple[int, int, str]] = []
    start: int | None = None
    cause = ""
    for e in events:
        if e.kind == "raise" and start is None:
            start, cause = e.ts_ms, e.cause
        elif e.kind == "clear" and start is not None:
            out.append((start, e.ts_ms, cause))
            start = None
    if start is not None:
        out.append((start, end_ms, cause))
    return out


def onset_ms(
    ts: IntArray, rms: FloatArray, healthy_end_ms: int, factor: float = ONSET_FACTOR, smooth: int = ONSET_SMOOTH
) -> int | None:
    """The first snapshot after the healthy life where an RMS column, as the running
    median of its last ``smooth`` snapshots (one bad snapshot does not make an onset),
    reaches ``factor`` times its healthy median; None if none does."""
    healthy = ts < healthy_end_ms
    if not healthy.any() or healthy.all():
        return None
    ref = np.median(rms[healthy], axis=0)
    level = np.stack([np.median(rms[max(0, i - smooth + 1) : i + 1], axis=0) for i in range(len(ts))])
    above = np.flatnonzero((level >= factor * ref).any(axis=1) & ~healthy)
    return int(ts[above[0]]) if above.size else None


def restarts(ts: IntArray, intervals: Sequence[tuple[int, int, str]], events: Sequence[Event]) -> list[Restart]:
    """Each restart after a gap of ``LONG_STOP_MS`` or more in the readings."""
    out: list[Restart] = []
    gaps = np.flatnonzero(np.diff(ts) >= LONG_STOP_MS)
    for g in gaps:
        back = int(ts[g + 1])
        raised = any(e.kind == "raise" and back <= e.ts_ms < back + RESTART_RAISE_MS for e in events)
        later = back + RESTART_OPEN_MS
        open_later = later <= ts[-1] and any(a <= later < b for a, b, _ in intervals)
        out.append(
            Restart(
                round((back - int(ts[0])) / HOUR_MS, 1),
                round((back - int(ts[g])) / HOUR_MS, 1),
                bool(raised),
                bool(open_later),
            )
        )
    return out


def running_steps(ts: IntArray, until_ms: int) -> IntArray:
    """How long each reading stands before ``until_ms``: until the next reading (the last
    one: the median interval), nothing across a long stop (``LONG_STOP_MS`` or more)."""
    if len(ts) == 0:
        return np.zeros(0, dtype=np.int64)
    usual = int(np.median(np.diff(ts))) if len(ts) > 1 else 1
    step = np.diff(ts, append=ts[-1] + usual)
    step = np.where(step >= LONG_STOP_MS, 0, step)
    return np.asarray(np.clip(np.minimum(step, until_ms - ts), 0, None), dtype=np.int64)


def judge(
    machine: str,
    ts: IntArray,
    events: Sequence[Event],
    healthy_end_ms: int,
    onset: int | None,
    held: Sequence[str] = (),
) -> Judgement:
    """Score one machine's alarm events against its healthy life (before
    ``healthy_end_ms``) and its failure (the last reading, degrading from ``onset``; None:
    no failure). ``held``: per reading, what scored highest while an alarm was open (the
    healthy time in alarm is then also attributed to it). Pure: the unit tests drive it
    with made-up events."""
    start, end = int(ts[0]), int(ts[-1])
    healthy_end_ms = min(healthy_end_ms, end)
    intervals = alarm_intervals(events, end)
    # running time: each reading stands until the next one, and a long stop counts neither
    # way (an alarm standing through a stop is in its age, ``longest``, not in the share)
    step = running_steps(ts, healthy_end_ms)
    healthy_ms = max(int(step.sum()), 1)
    by_cause: Counter[str] = Counter()
    longest = 0
    for a, b, cause in intervals:
        inside = (ts >= a) & (ts < b)
        if inside.any():
            by_cause[cause] += int(step[inside].sum())
        longest = max(longest, min(b, healthy_end_ms) - max(a, start))
    raises = [e for e in events if e.kind == "raise"]
    h = 1.0 / HOUR_MS
    drift = [e.ts_ms for e in raises if e.cause.startswith("drift ")]
    j = Judgement(
        machine=machine,
        failed=onset is not None,
        life_h=(end - start) * h,
        healthy_h=healthy_ms * h,
        healthy_in_alarm=sum(by_cause.values()) / healthy_ms,  # a reading is in one interval at most
        healthy_raises=sum(1 for e in raises if e.ts_ms < healthy_end_ms),
        healthy_alarm_h_by_cause={k: round(v * h, 2) for k, v in by_cause.most_common()},
        longest_healthy_alarm_h=round(longest * h, 2),
        open_at_failure=bool(intervals) and intervals[-1][1] >= end and intervals[-1][0] <= end,
        drift_raises=len(drift),
        drift_gaps_h=[round((b - a) * h, 2) for a, b in itertools.pairwise(drift)],
        raises=len(raises),
        escalations=sum(1 for e in events if e.kind == "escalate"),
        restarts=restarts(ts, intervals, events),
    )
    if len(held):
        # a reading holds the alarm until the next reading (the last one: a median interval)
        holders: Counter[str] = Counter()
        for label, dt in zip(held, step, strict=True):
            if label and dt > 0:
                holders[label] += int(dt)
        j.healthy_alarm_h_held_by = {k: round(v * h, 2) for k, v in holders.most_common(4)}
    after = [e for e in raises if e.ts_ms >= healthy_end_ms]
    if onset is not None and after:
        j.first_warning_h = (end - after[0].ts_ms) * h
    if onset is not None:
        j.onset_before_failure_h = (end - onset) * h
        j.open_at_onset = any(a <= onset < b for a, b, _ in intervals)
        tenth = end - (end - start) // 10
        j.paged_last_tenth = any(e.kind in ("raise", "escalate") and e.ts_ms >= tenth for e in events)
        paged = [e for e in events if e.kind in ("raise", "escalate") and e.ts_ms >= onset]
        j.failure_paged = bool(paged)
        j.failure_events = [f"{e.kind} {e.severity} {e.cause} at -{(end - e.ts_ms) * h:.2f} h" for e in paged[:4]]
        j.failure_severity = max((e.severity for e in paged), key=("warning", "critical").index, default="")
    return j


# ---------------------------------------------------------------- the detectors


def run_iotpm(m: Machine, chunk_ms: int = HOUR_MS, operator_h: float | None = None) -> tuple[list[Event], list[str]]:
    """The shipped default (``DetectorConfig()``), one device, fed in ``chunk_ms`` batches.
    Returns its events, and for each reading in alarm the detector and metric scoring
    highest there (what holds the alarm open; "" when no alarm is open).

    ``operator_h``: an operator re-baselines the machine (``DeviceDetector.rebaseline()``)
    when an alarm is still open ``operator_h`` hours after a restart from a long stop (once
    per restart), as issue 28 item 4 lets an operator do for a machine back at a new level."""
    from iotpm.detection import CHANNEL_DETECTORS, DEVICE_DETECTORS, DetectorConfig, DeviceDetector

    det = DeviceDetector(channels=list(m.channels), config=DetectorConfig())
    out: list[Event] = []
    held: list[str] = []
    ts = m.ts
    restarts_at = [int(ts[g + 1]) for g in np.flatnonzero(np.diff(ts) >= LONG_STOP_MS)]
    due = sorted(t + int((operator_h or 0) * HOUR_MS) for t in restarts_at) if operator_h is not None else []
    edges = np.flatnonzero(np.diff((ts - ts[0]) // chunk_ms)) + 1
    for lo, hi in zip(np.r_[0, edges], np.r_[edges, len(ts)], strict=True):
        if due and ts[lo] >= due[0]:
            due = [t for t in due if t > ts[lo]]
            if det.state is not None and out and out[-1].kind != "clear":
                det.rebaseline()
        result = det.update(ts[lo:hi], m.values[lo:hi])
        for e in result.events:
            cause = f"{e.reasons[0].detector} {e.reasons[0].metric}" if e.reasons else ""
            out.append(Event(int(e.ts_ms), str(e.kind), str(e.severity), cause))
        for i in range(hi - lo):
            if not result.in_alarm[i]:
                held.append("")
                continue
            ch = result.channel_scores[i]
            c, k = np.unravel_index(int(np.argmax(ch)), ch.shape)
            d = int(np.argmax(result.device_scores[i]))
            if result.device_scores[i, d] > ch[c, k]:
                held.append(f"{DEVICE_DETECTORS[d]} *")
            else:
                held.append(f"{CHANNEL_DETECTORS[k]} {m.channels[c]}")
    return out, held


def run_sigma3(m: Machine, learn: int = 100) -> list[Event]:
    """Each metric against 3 sigma of its first ``learn`` readings; raise at score 1,
    clear after 2 readings and 10 minutes below 0.8 (the product's hysteresis)."""
    ts, values = m.ts, m.values
    mu = values[:learn].mean(axis=0)
    sd = np.maximum(values[:learn].std(axis=0), 1e-12)
    z = np.abs(values - mu) / (3.0 * sd)
    score = z.max(axis=1)
    score[:learn] = 0.0
    out: list[Event] = []
    open_, below, below_since = False, 0, 0
    for i, s in enumerate(score):
        if not open_ and s >= 1.0:
            out.append(Event(int(ts[i]), "raise", "warning", f"sigma3 {m.channels[int(np.argmax(z[i]))]}"))
            open_, below = True, 0
        elif open_ and s < 0.8:
            below += 1
            if below == 1:
                below_since = int(ts[i])
            if below >= 2 and ts[i] - below_since >= 10 * MINUTE_MS:
                out.append(Event(int(ts[i]), "clear", "warning"))
                open_ = False
        elif open_:
            below = 0
    return out


# ---------------------------------------------------------------- report


def healthy_end(m: Machine, healthy: float) -> int:
    return int(m.ts[0] + healthy * (m.ts[-1] - m.ts[0]))


def evaluate(machines: Sequence[Machine], healthy: float, operator_h: float) -> dict[str, list[Judgement]]:
    out: dict[str, list[Judgement]] = {"iotpm": [], "iotpm+operator": [], "sigma3": []}
    for m in machines:
        end_healthy = healthy_end(m, healthy)
        onset = onset_ms(m.ts, m.values[:, list(m.rms)], end_healthy) if m.failed else None
        if m.failed and onset is None:  # no lasting doubling: still the failure at the end
            onset = int(m.ts[-1])
        events, held = run_iotpm(m)
        out["iotpm"].append(judge(m.name, m.ts, events, end_healthy, onset, held))
        if any(np.diff(m.ts) >= LONG_STOP_MS):
            events, held = run_iotpm(m, operator_h=operator_h)
            out["iotpm+operator"].append(judge(m.name, m.ts, events, end_healthy, onset, held))
        out["sigma3"].append(judge(m.name, m.ts, run_sigma3(m), end_healthy, onset))
    return out


def _median(xs: Sequence[float | None]) -> float | None:
    vals = [x for x in xs if x is not None]
    return round(statistics.median(vals), 4) if vals else None


def summary(js: Sequence[Judgement]) -> dict[str, object]:
    failed = [j for j in js if j.failed]
    causes: Counter[str] = Counter()
    for j in js:
        causes.update(j.healthy_alarm_h_by_cause)
    rs = [r for j in js for r in j.restarts]
    return {
        "machines": len(js),
        "median_healthy_in_alarm": _median([j.healthy_in_alarm for j in js]),
        "mean_healthy_in_alarm": round(sum(j.healthy_in_alarm for j in js) / len(js), 4) if js else None,
        "machines_over_2pct_healthy_in_alarm": sum(1 for j in js if j.healthy_in_alarm > 0.02),
        "healthy_raises_per_machine_day": round(
            sum(j.healthy_raises for j in js) / max(sum(j.healthy_h for j in js) / 24, 1e-9), 3
        ),
        "failed": len(failed),
        "failure_paged": sum(1 for j in failed if j.failure_paged),
        "paged_last_tenth": sum(1 for j in failed if j.paged_last_tenth),
        "failure_critical": sum(1 for j in failed if j.failure_severity == "critical"),
        "open_at_onset": sum(1 for j in failed if j.open_at_onset),
        "median_first_warning_h": _median([j.first_warning_h for j in failed]),
        "median_onset_before_failure_h": _median([j.onset_before_failure_h for j in failed]),
        "drift_raises": sum(j.drift_raises for j in js),
        "restarts": len(rs),
        "restarts_raised": sum(1 for r in rs if r.raised),
        "restarts_open_after_24h": sum(1 for r in rs if r.open_after_24h),
        "healthy_alarm_h_by_cause": {k: round(v, 2) for k, v in causes.most_common(6)},
    }


def _fmt(v: float | None, spec: str = ".1f") -> str:
    return "-" if v is None else format(v, spec)


def _table(peer: str, js: Sequence[Judgement]) -> None:
    print(f"\n{peer}: per machine (hours before the failure = the run's last snapshot)")
    print(
        f"{'machine':<11}{'life h':>7}{'healthy':>9}{'raises':>7}{'longest':>8}{'onset':>7}{'open@on':>8}"
        f"{'1st warn':>9}{'paged/10%':>13}{'esc':>4}{'drift':>6}{'restarts r/o':>13}  healthy alarm h held by (iotpm)"
    )
    for j in js:
        causes = ", ".join(f"{k}: {v}" for k, v in list(j.healthy_alarm_h_held_by.items())[:2])
        rs = j.restarts
        restart = f"{len(rs)}:{sum(r.raised for r in rs)}/{sum(r.open_after_24h for r in rs)}" if rs else "-"
        paged = ((j.failure_severity or "no") + ("/10%" if j.paged_last_tenth else "")) if j.failed else "-"
        print(
            f"{j.machine:<11}{j.life_h:>7.1f}{j.healthy_in_alarm:>8.1%} {j.healthy_raises:>6}"
            f"{j.longest_healthy_alarm_h:>8.1f}{_fmt(j.onset_before_failure_h):>7}"
            f"{('yes' if j.open_at_onset else 'no') if j.failed else '-':>8}"
            f"{_fmt(j.first_warning_h):>9}{paged:>13}{j.escalations:>4}{j.drift_raises:>6}{restart:>13}  {causes}"
        )


def _line(peer: str, s: dict[str, object]) -> str:
    def pct(v: object) -> str:
        return "-" if v is None else f"{float(v):.1%}"  # type: ignore[arg-type]

    def hours(v: object) -> str:
        return "-" if v is None else f"{float(v):.1f} h"  # type: ignore[arg-type]

    return (
        f"{peer}: healthy life in alarm median {pct(s['median_healthy_in_alarm'])}"
        f" (mean {pct(s['mean_healthy_in_alarm'])}; {s['machines_over_2pct_healthy_in_alarm']}/{s['machines']}"
        f" machines over 2 %; {s['healthy_raises_per_machine_day']} raises per healthy machine-day);"
        f" failures paged after the onset {s['failure_paged']}/{s['failed']} (in the last tenth of the life"
        f" {s['paged_last_tenth']}; {s['failure_critical']} critical;"
        f" alarm already open at the onset {s['open_at_onset']}); median first warning"
        f" {hours(s['median_first_warning_h'])} before failure (onset {hours(s['median_onset_before_failure_h'])});"
        f" drift raises {s['drift_raises']}; restarts after a long stop {s['restarts']}: raised"
        f" {s['restarts_raised']}, open 24 h later {s['restarts_open_after_24h']}"
    )


def plot_machine(m: Machine, healthy: float, path: str) -> str:
    """One machine's run: its RMS and kurtosis, the healthy life and the onset, the long
    stops, and the shipped detector's alarm (open spans, raises, escalations, clears)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    events, _ = run_iotpm(m)
    end_healthy = healthy_end(m, healthy)
    onset = onset_ms(m.ts, m.values[:, list(m.rms)], end_healthy) if m.failed else None
    hours = (m.ts - m.ts[0]) / HOUR_MS
    at = {"raise": ("tab:red", "raise"), "escalate": ("tab:orange", "escalate"), "clear": ("tab:green", "clear")}
    fig, axes = plt.subplots(2, 1, figsize=(11, 6.5), sharex=True)
    for ax, feature in zip(axes, ("rms", "kurtosis"), strict=True):
        for k, c in enumerate(m.channels):
            if c.endswith(feature):
                ax.plot(hours, m.values[:, k], ".", ms=1.5, label=c)
        for a, b, _ in alarm_intervals(events, int(m.ts[-1])):
            ax.axvspan((a - m.ts[0]) / HOUR_MS, (b - m.ts[0]) / HOUR_MS, color="tab:red", alpha=0.08, lw=0)
        for g in np.flatnonzero(np.diff(m.ts) >= LONG_STOP_MS):
            ax.axvspan(hours[g], hours[g + 1], color="grey", alpha=0.3, lw=0)
        shown: set[str] = set()
        for e in events:
            colour, label = at[e.kind]
            ax.axvline((e.ts_ms - m.ts[0]) / HOUR_MS, color=colour, lw=0.6, label=None if label in shown else label)
            shown.add(label)
        ax.axvline((end_healthy - m.ts[0]) / HOUR_MS, color="black", ls="--", lw=0.8, label="end of healthy life")
        if onset is not None:
            ax.axvline((onset - m.ts[0]) / HOUR_MS, color="black", ls=":", lw=1.0, label="onset (RMS 2x)")
        ax.set_ylabel(feature)
        ax.legend(loc="upper left", fontsize=7, ncol=4)
    axes[1].set_xlabel(
        f"hours from the start of {m.name}'s run ({m.dataset}); red spans: an alarm open; grey: the rig stopped"
    )
    fig.suptitle(f"{m.name}: the shipped detector on a real run to failure (unit-less features, no limits)")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def load(dataset: str, args: argparse.Namespace, cache: Path) -> list[Machine]:
    if dataset == "ims":
        return ims_machines(ims_features(args.source_ims, cache))
    return phm_machines(phm_features(args.source_phm, cache))


def main(argv: Sequence[str] | None = None) -> int:
    doc = __doc__ or ""
    p = argparse.ArgumentParser(description=doc.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--dataset", choices=("ims", "phm2012", "all"), default="ims")
    p.add_argument("--source-ims", default=IMS_SOURCE, help="git URL or local git directory (IMS features)")
    p.add_argument("--source-phm", default=PHM_SOURCE, help="git URL or local git directory (PHM 2012 files)")
    p.add_argument("--cache-dir", type=Path, default=None, help="default $IOTPM_DATA_CACHE or ~/.cache/iotpm/datasets")
    p.add_argument("--healthy", type=float, default=0.5, help="share of a failed machine's run taken as healthy (0.5)")
    p.add_argument(
        "--operator-h", type=float, default=8.0, help="iotpm+operator: re-baseline this long after a restart (8 h)"
    )
    p.add_argument("--machines", default="", help="comma-separated subset, e.g. ims1-b3,ims2-rig")
    p.add_argument("--plot", action="append", default=[], help="MACHINE=PATH: draw one machine's run (repeatable)")
    p.add_argument("--fetch-only", action="store_true", help="download and cache the features, then stop")
    args = p.parse_args(argv)
    cache = args.cache_dir or default_cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    datasets = ("ims", "phm2012") if args.dataset == "all" else (args.dataset,)
    report: dict[str, object] = {}
    for dataset in datasets:
        machines = load(dataset, args, cache)
        if args.fetch_only:
            print(f"{dataset}: {len(machines)} machines cached in {cache}")
            continue
        for spec in args.plot:
            name, _, path = spec.partition("=")
            for m in machines:
                if m.name == name:
                    print(f"plotted {plot_machine(m, args.healthy, path)}")
        if args.machines:
            wanted = set(args.machines.split(","))
            machines = [m for m in machines if m.name in wanted]
        if not machines:
            continue
        t0 = time.perf_counter()
        result = evaluate(machines, args.healthy, args.operator_h)
        seconds = time.perf_counter() - t0
        n = sum(len(m.ts) for m in machines)
        step = statistics.median(float(np.median(np.diff(m.ts))) for m in machines) / 1000.0
        print(
            f"\n== {dataset}: {len(machines)} machines ({sum(m.failed for m in machines)} failed at the end),"
            f" {n:,} readings, median interval {step:g} s, unit-less metrics; healthy life = first"
            f" {args.healthy:.0%} of each run; onset = RMS at {ONSET_FACTOR:g}x its"
            f" healthy median ({seconds:.1f} s)"
        )
        ratios = []
        for m in machines:
            rms = m.values[m.ts < healthy_end(m, args.healthy)][:, list(m.rms)]
            ratios.append(f"{m.name} {float(np.max(np.percentile(rms, 95, axis=0) / np.median(rms, axis=0))):.2f}")
        print("healthy_rms_ratio (p95/median of RMS over the healthy life): " + ", ".join(ratios))
        sums = {}
        result = {k: v for k, v in result.items() if v}
        for peer, js in result.items():
            _table(peer, js)
        print()
        for peer, js in result.items():
            sums[peer] = summary(js)
            print(_line(peer, sums[peer]))
        report[dataset] = {"summary": sums, "machines": {k: [asdict(j) for j in v] for k, v in result.items()}}
    if not args.fetch_only:
        print(json.dumps(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

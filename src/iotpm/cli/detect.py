"""``iotpm detect``: a CSV of history, read in chunks, through the detector, per device.

Memory does not grow with the file: rows are parsed ``chunk_rows`` at a time, each
chunk goes through one :class:`FleetDetector` call for all its devices, alarms are
written as they are raised, and what the plot needs is kept decimated to a fixed
number of points per device.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import math
import re
import sys
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any, Literal

import numpy as np

from iotpm.detection import AlarmEvent, DetectionResult, DetectorConfig, DeviceInput, DeviceState, FleetDetector
from iotpm.detection.state import FloatArray, IntArray
from iotpm.models import epoch_ms, parse_timestamp
from iotpm.models.validation import _EPOCH_MS_CUTOFF

_TIME_COLUMNS = ("timestamp", "ts", "time", "datetime", "date")
CHUNK_ROWS = 50_000
#: points kept per device for the plot (the series is decimated past this)
PLOT_POINTS = 20_000
STDIO = "-"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
OutFormat = Literal["json", "csv"]


class CsvError(ValueError):
    """The CSV cannot be used; the message says why and where."""


def iso_ms(ts_ms: int) -> str:
    """Epoch ms as ISO 8601 UTC with Z, as the API writes it (ms only when present)."""
    t = _EPOCH + timedelta(milliseconds=ts_ms)
    return t.strftime("%Y-%m-%dT%H:%M:%S") + (f".{ts_ms % 1000:03d}Z" if ts_ms % 1000 else "Z")


@dataclass
class Chunk:
    """Parsed rows: per-row device, epoch-ms timestamps, metric matrix."""

    devices: list[str]
    ts: IntArray
    values: FloatArray
    lines: list[str] | None = None  # per row, when the CSV has a line column
    types: list[str] | None = None  # per row, when it has a device-type column


class CsvSource:
    """A CSV (a path, or ``-`` for stdin) read as chunks of parsed rows.

    The header is read and checked when the source is made, so a wrong column fails
    before any work; the delimiter is sniffed from the header (SKAB uses ``;``).
    """

    def __init__(
        self,
        path: str,
        ts_col: str | None = None,
        device_col: str | None = None,
        metrics: list[str] | None = None,
        chunk_rows: int = CHUNK_ROWS,
        line_col: str | None = None,
        type_col: str | None = None,
    ) -> None:
        self.name = "stdin" if path == STDIO else path
        self.chunk_rows = chunk_rows
        self.total_bytes: int | None = None
        if path == STDIO:
            self._raw: IO[bytes] = sys.stdin.buffer
        else:
            p = Path(path)
            if not p.is_file():
                raise CsvError(f"{path}: no such file")
            self._raw = p.open("rb")
            self.total_bytes = p.stat().st_size
        self._text = io.TextIOWrapper(self._raw, encoding="utf-8-sig", newline="")
        first = self._text.readline()
        if not first.strip():
            raise CsvError(f"{self.name}: the file is empty")
        try:
            self._dialect: type[csv.Dialect] = csv.Sniffer().sniff(first, delimiters=",;\t")
        except csv.Error:
            self._dialect = csv.excel
        header = next(csv.reader([first], dialect=self._dialect))
        self._reader = csv.reader(self._text, dialect=self._dialect)
        row = next(self._reader, None)
        if row is None:
            raise CsvError(f"{self.name}: a header but no rows")
        self._first_row: list[str] | None = row
        found = ts_col or next((h for h in header if h.strip().lower() in _TIME_COLUMNS), None)
        if found is None or found not in header:
            raise CsvError(
                f"{self.name}: no timestamp column (looked for {found or ', '.join(_TIME_COLUMNS)}); header: {header}"
            )
        for what, col in (("device", device_col), ("line", line_col), ("device type", type_col)):
            if col is not None and col not in header:
                raise CsvError(f"{self.name}: {what} column {col!r} not in header {header}")
        first_values = dict(zip(header, row, strict=False))
        labels = (found, device_col, line_col, type_col)
        chosen = metrics or [h for h in header if h not in labels and _numeric(first_values.get(h))]
        missing = [m for m in chosen if m not in header]
        if missing or not chosen:
            raise CsvError(f"{self.name}: metric column(s) {missing or 'none numeric'} not in header {header}")
        self.metrics = chosen
        self._ts_i = header.index(found)
        self._dev_i = header.index(device_col) if device_col else None
        self._line_i = header.index(line_col) if line_col else None
        self._type_i = header.index(type_col) if type_col else None
        self._metric_i = [header.index(m) for m in chosen]
        self._width = len(header)
        self.rows_read = 0

    @property
    def bytes_read(self) -> int:
        """How far into the file the reader is (for a progress bar)."""
        try:
            return self._raw.tell()
        except (OSError, ValueError):
            return 0

    def chunks(self) -> Iterator[Chunk]:
        """The rows, ``chunk_rows`` at a time."""
        first = [self._first_row] if self._first_row is not None else []
        self._first_row = None
        while True:
            rows = first + list(itertools.islice(self._reader, self.chunk_rows - len(first)))
            first = []
            if not rows:
                return
            chunk = self._parse(rows)
            if len(chunk.ts):
                yield chunk

    def close(self) -> None:
        if self._raw is not sys.stdin.buffer:
            self._raw.close()

    def _parse(self, rows: list[list[str]]) -> Chunk:
        """Columns at a time in numpy; a value numpy cannot take goes through the per-row rules."""
        first_line = self.rows_read + 2  # the header is line 1
        self.rows_read += len(rows)
        lines = np.arange(first_line, first_line + len(rows))
        if not all(rows):  # blank lines
            lines = lines[[i for i, r in enumerate(rows) if r]]
            rows = [r for r in rows if r]
            if not rows:
                return Chunk([], np.zeros(0, dtype=np.int64), np.zeros((0, len(self._metric_i))))
        if min(map(len, rows)) < self._width:
            i = next(i for i, r in enumerate(rows) if len(r) < self._width)
            raise CsvError(f"{self.name}: line {lines[i]}: {len(rows[i])} fields, the header has {self._width}")
        cols = list(zip(*rows, strict=False))
        ts = timestamps(cols[self._ts_i])
        if ts is None:
            ts = np.empty(len(rows), dtype=np.int64)
            for i, text in enumerate(cols[self._ts_i]):
                parsed = parse_timestamp(_number_or_text(text))
                if parsed is None:
                    raise CsvError(f"{self.name}: line {lines[i]}: cannot parse timestamp {text!r}")
                ts[i] = epoch_ms(parsed)
        values = np.empty((len(rows), len(self._metric_i)), dtype=np.float64)
        for k, j in enumerate(self._metric_i):
            values[:, k] = floats(cols[j])
        devices = list(cols[self._dev_i]) if self._dev_i is not None else ["all"] * len(rows)
        lines_of = list(cols[self._line_i]) if self._line_i is not None else None
        types_of = list(cols[self._type_i]) if self._type_i is not None else None
        return Chunk(devices, ts, values, lines_of, types_of)


#: ISO 8601 text that numpy and parse_timestamp read alike (naive or Z: UTC; up to ms)
_SIMPLE_ISO = re.compile(r"\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,3})?)?)?Z?")
_MAX_MS = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z


def timestamps(texts: Sequence[str]) -> IntArray | None:
    """Epoch ms of a column at once, as :func:`parse_timestamp` reads each value (epoch
    seconds or ms, or ISO 8601), or None when a value needs the per-row rules."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        try:
            numbers = np.asarray(texts, dtype=np.str_).astype(np.float64)
        except (ValueError, TypeError):
            numbers = None
        if numbers is not None:
            if not np.isfinite(numbers).all():
                return None
            ms = np.where(np.abs(numbers) >= _EPOCH_MS_CUTOFF, numbers, numbers * 1000)
            if np.abs(ms).max(initial=0) > _MAX_MS:
                return None
            return ms.astype(np.int64)
        if not all(map(_SIMPLE_ISO.fullmatch, texts)):  # (one regex over the joined column: 50 MB of stack)
            return None
        try:
            stamps = np.asarray([t.removesuffix("Z") for t in texts], dtype=np.str_).astype("datetime64[ms]")
        except (ValueError, UserWarning, DeprecationWarning):
            return None
    if np.isnat(stamps).any():
        return None
    return stamps.astype(np.int64)


def floats(texts: Sequence[str]) -> FloatArray:
    """A metric column as floats; an empty or non-numeric value is NaN (missing)."""
    try:
        return np.asarray(texts, dtype=np.str_).astype(np.float64)
    except ValueError:
        return np.array([_float(t) for t in texts], dtype=np.float64)


class AlarmWriter:
    """Alarm raises written as they happen: a JSON array, or CSV (top reason per row)."""

    CSV_HEADER = ("device_id", "time", "severity", "score", "detector", "metric", "observed", "expected")

    def __init__(self, out: IO[str], fmt: OutFormat) -> None:
        self._out, self._fmt, self.count = out, fmt, 0
        if fmt == "csv":
            self._csv = csv.writer(out, lineterminator="\n")
            self._csv.writerow(self.CSV_HEADER)
        else:
            out.write("[")

    def write(self, device: str, event: AlarmEvent) -> None:
        rec = alarm_record(device, event)
        if self._fmt == "csv":
            top = rec["reasons"][0] if rec["reasons"] else {}
            row = [rec["device_id"], rec["time"], rec["severity"], rec["score"]]
            self._csv.writerow(row + [top.get(k) for k in ("detector", "metric", "observed", "expected")])
        else:
            self._out.write(("," if self.count else "") + "\n  " + json.dumps(rec))
        self.count += 1

    def close(self) -> None:
        if self._fmt == "json":
            self._out.write("\n]\n" if self.count else "]\n")
        self._out.flush()


def alarm_record(device: str, event: AlarmEvent) -> dict[str, Any]:
    """An alarm raise in the shape of the API's anomalies (``device_id``, ``time``, reasons)."""
    return {
        "device_id": device,
        "time": iso_ms(event.ts_ms),
        "kind": event.kind,
        "severity": event.severity,
        "score": _finite(round(event.score, 4)),
        "reasons": [
            {
                "detector": r.detector,
                "metric": r.metric,
                "observed": _finite(r.observed),
                "expected": _finite(r.expected),
                "score": _finite(round(r.score, 4)),
                "detail": r.detail,
            }
            for r in event.reasons
        ],
    }


class Reservoir:
    """At most ``cap`` rows of a growing series, evenly spaced: every ``stride``-th row is
    kept, and when more than ``cap`` are held every other one is dropped and the stride
    doubles. Memory stays fixed however long the series."""

    def __init__(self, width: int, cap: int = PLOT_POINTS) -> None:
        self.cap, self.stride, self.seen = cap, 1, 0
        self.ts = np.zeros(0, dtype=np.int64)
        self.rows = np.zeros((0, width))

    def add(self, ts: IntArray, rows: FloatArray) -> None:
        pos = self.seen + np.arange(len(ts))
        keep = pos % self.stride == 0
        self.ts = np.concatenate([self.ts, ts[keep]])
        self.rows = np.concatenate([self.rows, rows[keep]])
        self.seen += len(ts)
        while len(self.ts) > self.cap:
            self.ts, self.rows, self.stride = self.ts[::2], self.rows[::2], self.stride * 2


@dataclass
class PlotData:
    """What ``--plot`` draws for one device: the series, its band, and alarm marks per metric."""

    series: Reservoir  # per row: values (c), expected (c), band (c)
    marks: list[Reservoir]  # per metric: (ts, value) of readings in an alarm this metric caused
    raises: list[tuple[int, int, float]] = field(default_factory=list)  # (ts, metric index or -1, value)


@dataclass
class DeviceRun:
    """One device's progress through the file, and what the summary reports."""

    device: str
    line: str | None = None  # from the first row that names it: the scope of line limits
    device_type: str | None = None
    rows: int = 0
    analysed: int = 0
    skipped: int = 0  # rows older than one already analysed (the detector is causal)
    alarms: int = 0
    anomalous: int = 0
    health: float | None = None
    alarm_open: bool = False
    top_reason: str | None = None
    first_ms: int | None = None
    last_ms: int | None = None
    state: DeviceState | None = None
    warm_ts: list[IntArray] = field(default_factory=list)
    warm_x: list[FloatArray] = field(default_factory=list)
    cause: np.ndarray[Any, np.dtype[np.bool_]] | None = None  # metrics the open alarm is on
    plot: PlotData | None = None

    def summary(self) -> dict[str, Any]:
        return {
            "device_id": self.device,
            "line": self.line,
            "device_type": self.device_type,
            "rows": self.rows,
            "analysed": self.analysed,
            "skipped_out_of_order": self.skipped,
            "alarms": self.alarms,
            "anomalous_readings": self.anomalous,
            "health": self.health,
            "alarm_open": self.alarm_open,
            "top_reason": self.top_reason,
            "first": iso_ms(self.first_ms) if self.first_ms is not None else None,
            "last": iso_ms(self.last_ms) if self.last_ms is not None else None,
        }


class Detection:
    """Runs chunks of rows through one fleet detector, keeping a :class:`DeviceRun` per device.

    ``warmup`` rows per device are fitted as a label-free block before scoring; without
    it the detector learns its baseline from its first ``config.warmup`` readings as it
    scores them (the streaming warm-up).
    """

    def __init__(
        self,
        metrics: list[str],
        config: DetectorConfig,
        warmup: int | None = None,
        alarms: AlarmWriter | None = None,
        plot: bool = False,
        plot_points: int = PLOT_POINTS,
    ) -> None:
        self.metrics, self.config, self.warmup = tuple(metrics), config, warmup
        self.fleet = FleetDetector(config)
        self.alarms, self.plot, self.plot_points = alarms, plot, plot_points
        self.runs: dict[str, DeviceRun] = {}

    def feed(self, chunk: Chunk) -> None:
        """Score one chunk: rows grouped by device, each device's in time order."""
        codes: dict[str, int] = {}
        code = np.fromiter((codes.setdefault(d, len(codes)) for d in chunk.devices), np.int64, len(chunk.devices))
        order = np.argsort(code, kind="stable")  # each device's rows together, in file order
        bounds = np.concatenate([[0], np.cumsum(np.bincount(code, minlength=len(codes)))])
        items: list[tuple[DeviceRun, IntArray, FloatArray]] = []
        for name, k in codes.items():
            run = self.runs.setdefault(name, DeviceRun(name))
            idx = order[bounds[k] : bounds[k + 1]]
            if run.line is None and chunk.lines is not None:
                run.line = chunk.lines[idx[0]] or None
            if run.device_type is None and chunk.types is not None:
                run.device_type = chunk.types[idx[0]] or None
            if (np.diff(chunk.ts[idx]) < 0).any():
                idx = idx[np.argsort(chunk.ts[idx], kind="stable")]
            ts, x = self._in_order(run, chunk.ts[idx], chunk.values[idx])
            ts, x = self._warm(run, ts, x)
            if len(ts):
                items.append((run, ts, x))
        if not items:
            return
        inputs = [DeviceInput(r.device, self.metrics, ts, x, r.state, r.line, r.device_type) for r, ts, x in items]
        for (run, ts, x), (result, state) in zip(items, self.fleet.update(inputs), strict=True):
            run.state = state
            self._record(run, ts, x, result)

    def _in_order(self, run: DeviceRun, ts: IntArray, x: FloatArray) -> tuple[IntArray, FloatArray]:
        run.rows += len(ts)
        if run.last_ms is not None:
            late = ts < run.last_ms
            if late.any():
                run.skipped += int(late.sum())
                ts, x = ts[~late], x[~late]
        if len(ts):
            run.first_ms = int(ts[0]) if run.first_ms is None else run.first_ms
            run.last_ms = int(ts[-1])
        return ts, x

    def _warm(self, run: DeviceRun, ts: IntArray, x: FloatArray) -> tuple[IntArray, FloatArray]:
        """Hold rows back until the device's warm-up block is complete, then fit it."""
        if self.warmup is None or run.state is not None:
            return ts, x
        held = sum(len(t) for t in run.warm_ts)
        take = min(self.warmup - held, len(ts))
        run.warm_ts.append(ts[:take])
        run.warm_x.append(x[:take])
        if held + take < self.warmup:
            return ts[:0], x[:0]
        block = DeviceInput(run.device, self.metrics, np.concatenate(run.warm_ts), np.concatenate(run.warm_x))
        run.state = self.fleet.fit(block)
        run.warm_ts, run.warm_x = [], []
        return ts[take:], x[take:]

    def _record(self, run: DeviceRun, ts: IntArray, x: FloatArray, result: DetectionResult) -> None:
        run.analysed += len(ts)
        run.anomalous += int(result.is_anomaly.sum())
        run.health, run.alarm_open = result.health, result.alarm_open
        raises = [e for e in result.events if e.kind == "raise"]
        run.alarms += len(raises)
        if run.top_reason is None and raises and raises[0].reasons:
            top = raises[0].reasons[0]
            run.top_reason = f"{top.detector} on {top.metric}"
        if self.alarms is not None:
            for event in raises:
                self.alarms.write(run.device, event)
        if self.plot:
            self._keep_for_plot(run, ts, x, result, raises)

    def _keep_for_plot(
        self, run: DeviceRun, ts: IntArray, x: FloatArray, result: DetectionResult, raises: list[AlarmEvent]
    ) -> None:
        c = len(self.metrics)
        if run.plot is None:
            cap = self.plot_points
            run.plot = PlotData(Reservoir(3 * c, cap), [Reservoir(1, cap) for _ in range(c)])
        band = 3.0 * result.scale
        run.plot.series.add(ts, np.hstack([x, result.expected, band]))
        caused = self._caused(run, result, raises)
        for j, marks in enumerate(run.plot.marks):
            on = result.is_anomaly & caused[:, j]
            marks.add(ts[on], x[on, j : j + 1])
        for event in raises:
            metrics = [self.metrics.index(r.metric) for r in event.reasons if r.metric in self.metrics] or [-1]
            for j in dict.fromkeys(metrics):
                value = float(x[event.index, j]) if j >= 0 else math.nan
                run.plot.raises.append((event.ts_ms, j, value))
        del run.plot.raises[: max(0, len(run.plot.raises) - self.plot_points)]

    def _caused(self, run: DeviceRun, result: DetectionResult, raises: list[AlarmEvent]) -> np.ndarray[Any, Any]:
        """(n, c): the metrics each reading's alarm is on, those its raise named as reasons
        plus any metric scoring at the clear level itself at that reading."""
        n, c = len(result.score), len(self.metrics)
        cause = np.zeros((n, c), dtype=bool)
        current = run.cause if run.cause is not None else np.zeros(c, dtype=bool)
        start = 0
        for event in raises:
            cause[start : event.index] = current
            current = np.array([m in {r.metric for r in event.reasons} for m in self.metrics])
            start = event.index
        cause[start:] = current
        run.cause = current
        own = result.channel_scores.max(axis=2, initial=0.0) >= self.config.alarm.clear_level
        return np.asarray(cause | own)

    def finish(self) -> list[DeviceRun]:
        """Every device, in the order first seen (devices still in warm-up analysed nothing)."""
        return list(self.runs.values())


@dataclass
class Report:
    """The run's outcome: per device, and the warnings worth a line on stderr."""

    source: str
    metrics: list[str]
    runs: list[DeviceRun]
    warnings: list[str]

    @property
    def rows(self) -> int:
        return sum(r.rows for r in self.runs)

    def to_json(self) -> dict[str, Any]:
        return {
            "file": self.source,
            "metrics": self.metrics,
            "rows": self.rows,
            "analysed": sum(r.analysed for r in self.runs),
            "alarms": sum(r.alarms for r in self.runs),
            "devices": [r.summary() for r in self.runs],
            "warnings": self.warnings,
        }


def run_detection(
    source: CsvSource,
    config: DetectorConfig,
    warmup: int | None,
    alarms: AlarmWriter | None,
    plot: bool,
    progress: Callable[[int, int], None] | None = None,
) -> Report:
    """Read every chunk of ``source`` through the detector; ``progress(bytes, rows)`` after each."""
    detection = Detection(source.metrics, config, warmup, alarms, plot)
    for chunk in source.chunks():
        detection.feed(chunk)
        if progress is not None:
            progress(source.bytes_read, source.rows_read)
    runs = detection.finish()
    return Report(source.name, source.metrics, runs, _warnings(runs, warmup, config))


def _warnings(runs: list[DeviceRun], warmup: int | None, config: DetectorConfig) -> list[str]:
    out = []
    for run in runs:
        if run.skipped:
            out.append(f"{run.device}: {run.skipped} rows older than one already analysed were skipped")
        if warmup is not None and run.analysed == 0:
            out.append(f"{run.device}: {run.rows} rows, not more than --warmup {warmup}: nothing analysed")
        elif warmup is None and run.analysed < config.warmup:
            out.append(
                f"{run.device}: {run.analysed} rows, fewer than the detector's warm-up ({config.warmup}): "
                "only static limits were checked"
            )
    return out


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _numeric(text: str | None) -> bool:
    try:
        float(text or "")
    except ValueError:
        return False
    return True


def _float(text: str) -> float:
    try:
        return float(text) if text else math.nan
    except ValueError:
        return math.nan


def _number_or_text(text: str) -> float | str:
    return float(text) if _numeric(text) else text

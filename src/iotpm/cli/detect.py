"""Reading a CSV of history and running the detector over it, per device."""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from iotpm.detection import DetectionResult, DetectorConfig, DeviceDetector
from iotpm.detection.state import FloatArray, IntArray
from iotpm.models import parse_timestamp

_TIME_COLUMNS = ("timestamp", "ts", "time", "datetime", "date")


class CsvError(ValueError):
    """The CSV cannot be used; the message says why and where."""


@dataclass
class Table:
    """Parsed columns: per-row device, epoch-ms timestamps, metric matrix."""

    devices: list[str]
    ts: IntArray
    values: FloatArray
    metrics: list[str]


@dataclass
class DeviceRun:
    """One device's rows and the detector's result on them."""

    device: str
    ts: IntArray
    values: FloatArray
    metrics: list[str]
    result: DetectionResult
    config: DetectorConfig


def load_csv(path: Path, ts_col: str | None, device_col: str | None, metrics: list[str] | None) -> Table:
    """Read and check the CSV (delimiter sniffed: SKAB uses ';')."""
    if not path.is_file():
        raise CsvError(f"{path}: no such file")
    text = path.read_text(encoding="utf-8-sig")
    if not text.strip():
        raise CsvError(f"{path}: the file is empty")
    dialect = csv.Sniffer().sniff(text.splitlines()[0], delimiters=",;\t")
    rows = list(csv.DictReader(text.splitlines(), dialect=dialect))
    if not rows:
        raise CsvError(f"{path}: a header but no rows")
    header = list(rows[0].keys())
    ts_col = ts_col or next((h for h in header if h.strip().lower() in _TIME_COLUMNS), None)
    if ts_col is None or ts_col not in header:
        raise CsvError(
            f"{path}: no timestamp column (looked for {ts_col or ', '.join(_TIME_COLUMNS)}); header: {header}"
        )
    if device_col is not None and device_col not in header:
        raise CsvError(f"{path}: device column {device_col!r} not in header {header}")
    chosen = metrics or [h for h in header if h not in (ts_col, device_col) and _numeric(rows[0][h])]
    missing = [m for m in chosen if m not in header]
    if missing or not chosen:
        raise CsvError(f"{path}: metric column(s) {missing or 'none numeric'} not in header {header}")
    ts = np.empty(len(rows), dtype=np.int64)
    for i, row in enumerate(rows):
        parsed = parse_timestamp(_number_or_text(row[ts_col]))
        if parsed is None:
            raise CsvError(f"{path}: line {i + 2}: cannot parse timestamp {row[ts_col]!r}")
        ts[i] = int(parsed.timestamp() * 1000)
    values = np.array([[_float(row[m]) for m in chosen] for row in rows], dtype=np.float64)
    devices = [row[device_col] for row in rows] if device_col else ["all"] * len(rows)
    return Table(devices, ts, values, chosen)


def detect_file(table: Table, warmup: int, config: DetectorConfig | None = None) -> list[DeviceRun]:
    """Run one detector per device over its rows in time order."""
    cfg = config or DetectorConfig()
    runs = []
    devices = np.array(table.devices)
    for device in dict.fromkeys(table.devices):
        idx = np.flatnonzero(devices == device)
        idx = idx[np.argsort(table.ts[idx], kind="stable")]
        ts, x = table.ts[idx], table.values[idx]
        det = DeviceDetector(channels=table.metrics, config=cfg, device_id=device)
        n_fit = min(warmup, len(ts))
        if n_fit:
            det.fit(ts[:n_fit], x[:n_fit])
        result = det.update(ts[n_fit:], x[n_fit:])
        runs.append(DeviceRun(device, ts[n_fit:], x[n_fit:], table.metrics, result, cfg))
    return runs


def write_anomalies(runs: list[DeviceRun], out: Path) -> int:
    """One row per alarm raise, with its reasons; JSON or CSV by the file's suffix."""
    records: list[dict[str, Any]] = []
    for run in runs:
        for event in run.result.events:
            if event.kind != "raise":
                continue
            records.append(
                {
                    "device": run.device,
                    "ts_ms": event.ts_ms,
                    "severity": event.severity,
                    "score": round(event.score, 4),
                    "reasons": [
                        {
                            "detector": r.detector,
                            "metric": r.metric,
                            "observed": r.observed,
                            "expected": r.expected,
                            "score": round(r.score, 4),
                            "detail": r.detail,
                        }
                        for r in event.reasons
                    ],
                }
            )
    if out.suffix.lower() == ".json":
        out.write_text(json.dumps(records, indent=2), encoding="utf-8")
    else:
        with out.open("w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh)
            writer.writerow(["device", "ts_ms", "severity", "score", "detector", "metric", "observed", "expected"])
            for rec in records:
                top = rec["reasons"][0] if rec["reasons"] else {}
                writer.writerow(
                    [
                        rec["device"],
                        rec["ts_ms"],
                        rec["severity"],
                        rec["score"],
                        top.get("detector"),
                        top.get("metric"),
                        top.get("observed"),
                        top.get("expected"),
                    ]
                )
    return len(records)


def _numeric(text: str | None) -> bool:
    try:
        float(text or "")
    except ValueError:
        return False
    return True


def _float(text: str | None) -> float:
    try:
        return float(text) if text not in (None, "") else float("nan")
    except ValueError:
        return float("nan")


def _number_or_text(text: str) -> float | str:
    return float(text) if _numeric(text) else text

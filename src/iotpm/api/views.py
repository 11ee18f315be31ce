"""The stores' rows as the API's models (pure functions the routes share)."""

from __future__ import annotations

import math
from datetime import datetime

import numpy as np

from iotpm.api.http import LATEST
from iotpm.api.models import Anomaly, DeviceSummary, Trend, iso
from iotpm.models.readings import epoch_ms
from iotpm.service.ports import AnomalyRow, DeviceRecord


def iso_texts(ts_ms: list[int]) -> list[str]:
    """Epoch ms as ISO 8601 UTC text, all at once in numpy (seconds, or ms when any has them)."""
    stamps = np.array(ts_ms, dtype="datetime64[ms]")
    texts = np.datetime_as_string(stamps, unit="s") if all(t % 1000 == 0 for t in ts_ms) else stamps.astype(str)
    return [text + "Z" for text in texts.tolist()]


def iso_or_none(ts_ms: int | None) -> datetime | None:
    return None if ts_ms is None else iso(ts_ms)


def summary(r: DeviceRecord) -> DeviceSummary:
    return DeviceSummary(
        device_id=r.device_id,
        site=r.site,
        line=r.line,
        device_type=r.device_type,
        health=max(0.0, min(100.0, r.health)),
        alarm_open=r.alarm_open,
        alarm_since=iso_or_none(r.alarm_since_ms),
        last_seen=iso(r.last_ts_ms),
        latest=r.latest,
    )


def trend(t: dict[str, float | None], last_ts_ms: int) -> Trend:
    level, slope, limit, hours = (_finite(t.get(k)) for k in ("level", "slope_per_hour", "limit", "hours_to_limit"))
    crossing = None
    if hours is not None and last_ts_ms + hours * 3_600_000 < LATEST.timestamp() * 1000:
        crossing = iso(last_ts_ms + int(hours * 3_600_000))
    return Trend(level=level, slope_per_hour=slope, limit=limit, hours_to_limit=hours, predicted_crossing=crossing)


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def with_state(a: Anomaly, record: DeviceRecord | None, state: str) -> Anomaly:
    """A raise with its alarm's state: the open alarm's (``state``), or cleared (another incident)."""
    if a.kind != "raise":
        return a
    open_now = (
        record is not None
        and record.alarm_open
        and record.alarm_since_ms is not None
        and epoch_ms(a.time) == record.alarm_since_ms
    )
    return a.model_copy(update={"state": state if open_now and state != "normal" else "cleared"})


def anomaly(a: AnomalyRow) -> Anomaly:
    return Anomaly(
        device_id=a.device_id,
        time=iso(a.ts_ms),
        kind=a.kind,
        severity=a.severity,
        score=a.score if math.isfinite(a.score) else 0.0,
        site=a.site,
        line=a.line,
        device_type=a.device_type,
        reasons=[dict(r) for r in a.reasons],
    )

"""The API's response bodies (pydantic): they are the OpenAPI contract's schemas."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


def iso(ts_ms: int) -> datetime:
    """Epoch milliseconds as an aware UTC datetime (serialised ISO 8601 with Z)."""
    return datetime.fromtimestamp(ts_ms / 1000, tz=UTC)


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ErrorDetail(Body):
    status: int = Field(description="HTTP status, repeated")
    code: str = Field(description="machine-readable: bad_request, not_found, forbidden, unavailable, ...")
    message: str = Field(description="what was wrong, naming the parameter")


class ErrorBody(Body):
    error: ErrorDetail


class Health(Body):
    status: Literal["ok"]
    version: str
    time: datetime


class Trend(Body):
    level: float | None = Field(description="smoothed current level")
    slope_per_hour: float | None
    limit: float | None = Field(description="the alarm limit the metric is heading for")
    hours_to_limit: float | None = Field(description="estimated hours until the limit is crossed (null: not heading)")
    predicted_crossing: datetime | None


class DeviceSummary(Body):
    device_id: str
    site: str
    line: str
    device_type: str
    health: float = Field(ge=0, le=100, description="0-100, lower is worse")
    alarm_open: bool
    alarm_since: datetime | None
    last_seen: datetime
    latest: dict[str, float]


class Anomaly(Body):
    device_id: str
    time: datetime
    kind: Literal["raise", "escalate", "clear"]
    severity: Literal["warning", "critical"]
    score: float
    site: str
    line: str
    device_type: str
    reasons: list[dict[str, Any]]
    state: Literal["unacknowledged", "acknowledged", "shelved", "cleared"] | None = Field(
        default=None, description="a raise's alarm state (ISA-18.2): cleared once its incident is over"
    )


class EffectiveLimit(Body):
    low: float | None
    high: float | None
    source: str = Field(description="registration, device:<id>, line:<line>, device_type:<type> or default")


class EffectiveDetector(Body):
    settings: dict[str, Any] = Field(description="the detector settings the processor scores this device with")
    source: str = Field(description="device_type:<type> (its type's section), document:v<version> (the defaults "
                        "of the stored document) or default (the shipped settings)")  # fmt: skip


class DeviceDetail(DeviceSummary):
    readings: int = Field(description="readings processed for this device")
    open_alarm: Anomaly | None = Field(description="the raise of the open alarm, with its reasons")
    trend: dict[str, Trend]
    limits: dict[str, EffectiveLimit] | None = Field(
        default=None, description="the limits in effect per metric and where each comes from"
    )
    alarm_state: Literal["normal", "unacknowledged", "acknowledged", "shelved"] | None = Field(
        default=None, description="the open alarm's state (ISA-18.2); normal: none is open"
    )
    detector: EffectiveDetector | None = Field(
        default=None, description="the detector settings in effect for the device and where they come from"
    )


class DevicePage(Body):
    items: list[DeviceSummary]
    next_token: str | None


class RawPoint(Body):
    time: datetime
    seq: int | None
    metrics: dict[str, float]
    score: float
    anomaly: bool


class Stats(Body):
    count: int
    min: float
    max: float
    mean: float


class RollupPoint(Body):
    time: datetime = Field(description="bucket start")
    metrics: dict[str, Stats]
    anomalies: int = Field(description="anomalous readings in the bucket")


class ReadingsPage(Body):
    device_id: str
    resolution: Literal["raw", "1m", "1h"]
    items: list[RawPoint] | list[RollupPoint]
    next_token: str | None


class AnomalyPage(Body):
    items: list[Anomaly]
    next_token: str | None


class HealthBands(Body):
    good: int = Field(description="health >= 80")
    watch: int = Field(description="50 <= health < 80")
    critical: int = Field(description="health < 50")


class OpenAlarm(Body):
    device_id: str
    since: datetime | None


class LineSummary(Body):
    line: str
    devices: int
    health_bands: HealthBands
    open_alarms: list[OpenAlarm]
    anomalies_24h: int = Field(description="alarm raises on the line in the last 24 hours")
    worst: list[DeviceSummary] = Field(description="up to 5 devices with the lowest health")

"""What the analytics API reads, as a port: every method is one DynamoDB Query/GetItem shape.

Pages carry an opaque cursor; a cursor a store did not issue raises
:class:`InvalidCursorError` (the API answers 400), never reaches a query as is.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypedDict, TypeVar

from iotpm.service.ports import AnomalyRow, DeviceRecord, MetricStats, ReadingRow, Resolution

T = TypeVar("T")


class InvalidCursorError(ValueError):
    """A pagination token that this store did not issue (or that was altered)."""


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    """Items in order plus the cursor of the next page (None on the last page)."""

    items: Sequence[T]
    cursor: str | None = None


class Summary(TypedDict):
    """One metric in one rollup bucket, as the API shows it (a plain dict: orjson encodes
    dicts five times faster than dataclasses)."""

    count: int
    min: float
    max: float
    mean: float


def summary(s: MetricStats) -> Summary:
    """The API's view of a bucket's aggregate."""
    return {"count": s.count, "min": s.min, "max": s.max, "mean": s.sum / s.count}


@dataclass(frozen=True, slots=True)
class Bucket:
    """One rollup bucket of one device (metrics with no readings are left out)."""

    device_id: str
    resolution: Resolution
    start_ms: int
    metrics: Mapping[str, Summary]
    anomalies: int


@dataclass(frozen=True, slots=True)
class DeviceFilter:
    """Which devices ``GET /devices`` lists."""

    site: str | None = None
    line: str | None = None
    health_below: float | None = None


@dataclass(frozen=True, slots=True)
class AnomalyFilter:
    """Which anomalies ``GET /anomalies`` lists (fleet-wide, newest first)."""

    since_ms: int
    until_ms: int
    severity: str | None = None
    site: str | None = None
    line: str | None = None


class Queries(Protocol):
    """The read side of the tables the processor writes."""

    def device(self, device_id: str) -> DeviceRecord | None:
        """One device's record, or None."""
        ...

    def device_records(self, device_ids: Sequence[str]) -> dict[str, DeviceRecord]:
        """The records of the devices among ``device_ids`` that exist, read together, each as
        :meth:`device` gives it (its newest view in the batch log)."""
        ...

    def devices(self, where: DeviceFilter, limit: int, cursor: str | None) -> Page[DeviceRecord]:
        """Devices ordered by (site, line, id), or by id within a line."""
        ...

    def readings(self, device_id: str, start_ms: int, end_ms: int, limit: int, cursor: str | None) -> Page[ReadingRow]:
        """Raw readings in [start, end), oldest first."""
        ...

    def buckets(
        self, device_id: str, resolution: Resolution, start_ms: int, end_ms: int, limit: int, cursor: str | None
    ) -> Page[Bucket]:
        """Rollup buckets starting in [start, end), oldest first."""
        ...

    def device_anomalies(
        self, device_id: str, start_ms: int, end_ms: int, limit: int, cursor: str | None
    ) -> Page[AnomalyRow]:
        """A device's alarm raises and clears in [start, end), newest first."""
        ...

    def anomalies(self, where: AnomalyFilter, limit: int, cursor: str | None) -> Page[AnomalyRow]:
        """Fleet-wide alarm raises and clears, newest first."""
        ...

    def line_devices(self, line: str, limit: int) -> list[DeviceRecord]:
        """Up to ``limit`` devices of one line."""
        ...


def encode_cursor(value: Mapping[str, Any]) -> str:
    """An opaque, URL-safe token for a store's position."""
    raw = json.dumps(value, separators=(",", ":"), sort_keys=True).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(token: str | None, required: Sequence[str]) -> dict[str, Any] | None:
    """The position in ``token`` (None for the first page); :class:`InvalidCursorError` if it is not ours."""
    if token is None:
        return None
    try:
        value = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    except (binascii.Error, ValueError, UnicodeDecodeError) as exc:
        raise InvalidCursorError("next_token is not a token this API issued") from exc
    if not isinstance(value, dict) or set(value) != set(required):
        raise InvalidCursorError("next_token is not a token this API issued")
    return value

"""The read side over the processor's in-memory stores (unit tests, the Lambda smoke test).

It orders, filters and pages exactly as :class:`~iotpm.adapters.dynamodb_queries.DynamoQueries`
does on the tables; the contract tests run both on the same data.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from iotpm.api import tail
from iotpm.api.ports import (
    AnomalyFilter,
    Bucket,
    DeviceFilter,
    InvalidCursorError,
    Page,
    decode_cursor,
    encode_cursor,
    summary,
)
from iotpm.service.memory import MemoryAnomalies, MemoryLog, MemoryReadings, MemoryRollups, MemoryStates
from iotpm.service.ports import (
    RESOLUTION_MS,
    AnomalyRow,
    BucketAgg,
    DeviceRecord,
    ReadingRow,
    Resolution,
    add_buckets,
)

T = TypeVar("T")


class MemoryQueries:
    """:class:`~iotpm.api.ports.Queries` over the in-memory stores."""

    def __init__(
        self,
        states: MemoryStates | None = None,
        readings: MemoryReadings | None = None,
        anomalies: MemoryAnomalies | None = None,
        rollups: MemoryRollups | None = None,
        log: MemoryLog | None = None,
    ) -> None:
        self.states = states or MemoryStates()
        self.readings_store = readings or MemoryReadings()
        self.anomalies_store = anomalies or MemoryAnomalies()
        self.rollups = rollups or MemoryRollups()
        self.log = log or MemoryLog()

    def device(self, device_id: str) -> DeviceRecord | None:
        record = self.states.items.get(device_id)
        return None if record is None else tail.with_view(self.log, record)

    def device_records(self, device_ids: Sequence[str]) -> dict[str, DeviceRecord]:
        return tail.with_views(self.log, [self.states.items[d] for d in device_ids if d in self.states.items])

    def devices(self, where: DeviceFilter, limit: int, cursor: str | None) -> Page[DeviceRecord]:
        rows = [
            r
            for r in self.states.items.values()
            if (where.site is None or r.site == where.site)
            and (where.line is None or r.line == where.line)
            and (where.health_below is None or r.health < where.health_below)
        ]
        if where.line is not None:
            key: Callable[[DeviceRecord], str] = lambda r: r.device_id  # noqa: E731 - the by_line index order
        else:
            key = lambda r: f"{r.site}#{r.line}#{r.device_id}"  # noqa: E731 - the by_site index order
        return _page(sorted(rows, key=key), key, limit, cursor, reverse=False)

    def readings(self, device_id: str, start_ms: int, end_ms: int, limit: int, cursor: str | None) -> Page[ReadingRow]:
        held = {k: r for (d, k), r in self.readings_store.items.items() if d == device_id}
        held.update(tail.rows(self.log, self.states.items.get(device_id)))
        rows = [r for r in held.values() if start_ms <= r.ts_ms < end_ms]
        return _page(sorted(rows, key=lambda r: r.key), lambda r: r.key, limit, cursor, reverse=False)

    def buckets(
        self, device_id: str, resolution: Resolution, start_ms: int, end_ms: int, limit: int, cursor: str | None
    ) -> Page[Bucket]:
        held = {
            b: BucketAgg(dict(r.metrics), r.anomalies)
            for (d, res, b), r in self.rollups.items.items()
            if d == device_id and res == resolution
        }
        logged = tail.buckets(tail.rows(self.log, self.states.items.get(device_id)), RESOLUTION_MS[resolution])
        rows = [
            Bucket(device_id, resolution, b, {k: summary(s) for k, s in r.metrics.items() if s.count}, r.anomalies)
            for b, r in add_buckets(held, logged).items()
            if start_ms <= b < end_ms
        ]
        return _page(sorted(rows, key=lambda r: r.start_ms), lambda r: f"{r.start_ms:013d}", limit, cursor, False)

    def device_anomalies(
        self, device_id: str, start_ms: int, end_ms: int, limit: int, cursor: str | None
    ) -> Page[AnomalyRow]:
        rows = [r for (d, _), (r, _) in self.anomalies_store.items.items() if d == device_id]
        rows = [r for r in rows if start_ms <= r.ts_ms < end_ms]
        return _page(sorted(rows, key=lambda r: r.key, reverse=True), lambda r: r.key, limit, cursor, reverse=True)

    def anomalies(self, where: AnomalyFilter, limit: int, cursor: str | None) -> Page[AnomalyRow]:
        rows = [
            r
            for r, _ in self.anomalies_store.items.values()
            if where.since_ms <= r.ts_ms < where.until_ms
            and (where.severity is None or r.severity == where.severity)
            and (where.site is None or r.site == where.site)
            and (where.line is None or r.line == where.line)
        ]
        key: Callable[[AnomalyRow], str] = lambda r: f"{r.ts_ms:013d}#{r.device_id}#{r.kind}"  # noqa: E731
        return _page(sorted(rows, key=key, reverse=True), key, limit, cursor, reverse=True)

    def line_devices(self, line: str, limit: int) -> list[DeviceRecord]:
        rows = sorted((r for r in self.states.items.values() if r.line == line), key=lambda r: r.device_id)
        return rows[:limit]


def _page(rows: Sequence[T], key: Callable[[T], str], limit: int, cursor: str | None, reverse: bool) -> Page[T]:
    """Rows after the cursor's key (rows are already in key order), ``limit`` of them."""
    after: dict[str, Any] | None = decode_cursor(cursor, ["k"])
    if after is not None:
        mark = after["k"]
        if not isinstance(mark, str):
            raise InvalidCursorError("next_token is not a token this API issued")
        rows = [r for r in rows if (key(r) < mark if reverse else key(r) > mark)]
    items = list(rows[:limit])
    more = len(rows) > limit
    return Page(items, encode_cursor({"k": key(items[-1])}) if more else None)

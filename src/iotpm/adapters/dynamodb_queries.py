"""The analytics API's read side on the processor's tables: Query and GetItem only, never Scan.

==============================  ============================================================
request                          DynamoDB call
==============================  ============================================================
GET /devices/{id}                devices GetItem
GET /devices (site or none)      devices Query by_site: fleet = device, site_key begins_with
GET /devices?line=               devices Query by_line: line = :line
readings, raw                    readings Query: device_id, sk BETWEEN hour(from) AND to (chunks)
readings, 1m / 1h                rollups Query: series = device#res, bucket BETWEEN block(from) AND to
device anomalies                 anomalies Query: device_id, sk BETWEEN (newest first)
fleet anomalies                  anomalies Query by_day, one day at a time, newest first
==============================  ============================================================

Chunks and blocks are decoded here; readings are ordered by their own key (time,
then sequence number) and cut to [from, to), exactly as the in-memory store does.
Filters that are not part of a key (health, severity, site on a line) are
FilterExpressions with bound values; nothing a client sends is put into an
expression string. Cursors hold the last key as plain values and are rebuilt into
typed keys only after checking their shape.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from iotpm.adapters.dynamodb import (
    FLEET_KEY,
    DynamoLog,
    Item,
    TableNames,
    _n,
    block_of_item,
    chunk_rows,
    device_record,
)
from iotpm.adapters.errors import aws_call
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
from iotpm.service.errors import StoreError
from iotpm.service.ports import (
    CHUNK_MS,
    RESOLUTION_MS,
    ROLLUP_BLOCK_MS,
    AnomalyRow,
    BucketAgg,
    DeviceRecord,
    ReadingRow,
    Resolution,
    add_buckets,
    block_of,
)

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.client import DynamoDBClient
    from mypy_boto3_dynamodb.type_defs import AttributeValueTypeDef

_DAY_MS = 86_400_000


class DynamoQueries:
    """:class:`~iotpm.api.ports.Queries` on the four tables."""

    def __init__(self, client: DynamoDBClient, tables: TableNames) -> None:
        self.client, self.tables = client, tables
        self.log = DynamoLog(client, tables.readings, consistent=False)

    def _record(self, device_id: str) -> DeviceRecord | None:
        with aws_call(f"GetItem {self.tables.devices}"):
            got = self.client.get_item(TableName=self.tables.devices, Key={"device_id": {"S": device_id}})
        item = got.get("Item")
        return device_record(item) if item else None

    def device(self, device_id: str) -> DeviceRecord | None:
        record = self._record(device_id)
        return None if record is None else tail.with_view(self.log, record)

    def device_records(self, device_ids: Sequence[str]) -> dict[str, DeviceRecord]:
        """BatchGetItem, 100 keys a call (unprocessed keys retried), each with its view in the log
        (each shard's log read once)."""
        items = self._records_by_key([{"device_id": {"S": d}} for d in dict.fromkeys(device_ids)])
        return tail.with_views(self.log, [device_record(i) for i in items])

    def devices(self, where: DeviceFilter, limit: int, cursor: str | None) -> Page[DeviceRecord]:
        """An index page of keys (the indexes project keys only), the records read by key, filtered here."""
        if where.line is not None:
            after = decode_cursor(cursor, ["device_id"])
            kwargs: dict[str, Any] = {"IndexName": "by_line", "KeyConditionExpression": "line = :l"}
            values: Item = {":l": {"S": where.line}}
            start = None if after is None else {"line": {"S": where.line}, "device_id": _s(after["device_id"])}
        else:
            after = decode_cursor(cursor, ["device_id", "site_key"])
            kwargs = {"IndexName": "by_site", "KeyConditionExpression": "fleet = :f"}
            values = {":f": {"S": FLEET_KEY}}
            if where.site is not None:
                kwargs["KeyConditionExpression"] += " AND begins_with(site_key, :p)"
                values[":p"] = {"S": f"{where.site}#"}
            start = None
            if after is not None:
                start = {
                    "fleet": {"S": FLEET_KEY},
                    "device_id": _s(after["device_id"]),
                    "site_key": _s(after["site_key"]),
                }

        def keep(keys: list[Item]) -> list[Item]:
            items = self._records_by_key(keys)
            return [
                it
                for it in items
                if (where.site is None or it["site"]["S"] == where.site)
                and (where.health_below is None or float(it["health"]["N"]) < where.health_below)
            ]

        items, last = self._query(self.tables.devices, kwargs, values, limit, start, keep)
        return Page(
            [device_record(i) for i in items],
            _cursor(last, ("device_id", "site_key") if where.line is None else ("device_id",)),
        )

    def _records_by_key(self, keys: list[Item]) -> list[Item]:
        """The device items of an index page, in the page's order (BatchGetItem, 100 a call)."""
        ids = [k["device_id"]["S"] for k in keys]
        got: dict[str, Item] = {}
        for at in range(0, len(ids), 100):
            pending: list[Mapping[str, AttributeValueTypeDef]] = [
                {"device_id": {"S": d}} for d in dict.fromkeys(ids[at : at + 100])
            ]
            for attempt in range(6):
                with aws_call(f"BatchGetItem {self.tables.devices}"):
                    out = self.client.batch_get_item(RequestItems={self.tables.devices: {"Keys": pending}})
                for it in out.get("Responses", {}).get(self.tables.devices, []):
                    got[it["device_id"]["S"]] = it
                unprocessed = out.get("UnprocessedKeys", {}).get(self.tables.devices)
                pending = list(unprocessed["Keys"]) if unprocessed else []
                if not pending:
                    break
                time.sleep(min(0.05 * 2**attempt, 1.0))  # throttled: back off, as the writes do
            if pending:  # never a page that silently lacks devices: the API answers 503
                raise StoreError(f"BatchGetItem {self.tables.devices}: keys still unprocessed", code="Unprocessed")
        return [got[d] for d in ids if d in got]

    def readings(self, device_id: str, start_ms: int, end_ms: int, limit: int, cursor: str | None) -> Page[ReadingRow]:
        """Chunks hour by hour: an hour's chunks are all read before its readings are ordered."""
        after = decode_cursor(cursor, ["sk"])
        mark = None if after is None else _reading_key(after["sk"])
        low = block_of(max(start_ms, 0 if mark is None else int(mark[:13])), CHUNK_MS)
        values = {":d": {"S": device_id}, ":a": {"S": f"{low:013d}"}, ":b": {"S": f"{end_ms - 1:013d}~"}}
        kwargs = {"KeyConditionExpression": "device_id = :d AND sk BETWEEN :a AND :b"}
        out: list[ReadingRow] = []
        hour: dict[str, ReadingRow] = {}
        current: int | None = None
        logged = tail.by_block(tail.rows(self.log, self._record(device_id)), CHUNK_MS)

        def take(row: ReadingRow) -> None:
            if start_ms <= row.ts_ms < end_ms and (mark is None or row.key > mark):
                hour[row.key] = row  # chunks come in ordinal order, the log after them: of one key, the later

        def flush(before: int | None) -> None:
            """The current hour out (with its logged readings), then any logged-only hours before ``before``."""
            for r in logged.pop(current, []) if current is not None else []:
                take(r)
            out.extend(hour[k] for k in sorted(hour))
            hour.clear()
            for at in sorted(h for h in logged if before is None or h < before):
                for r in logged.pop(at):
                    take(r)
                out.extend(hour[k] for k in sorted(hour))
                hour.clear()

        for item in self._items(self.tables.readings, kwargs, values):
            at = block_of(int(item["sk"]["S"][:13]), CHUNK_MS)  # an item before packing: its reading's time
            if at != current:
                flush(at)
                if len(out) > limit:
                    break
                current = at
            for r in chunk_rows(item):
                take(r)
        else:
            flush(None)
        rows = out[:limit]
        return Page(rows, encode_cursor({"sk": rows[-1].key}) if len(out) > limit else None)

    def buckets(
        self, device_id: str, resolution: Resolution, start_ms: int, end_ms: int, limit: int, cursor: str | None
    ) -> Page[Bucket]:
        after = decode_cursor(cursor, ["bucket"])
        mark = None if after is None else _int(after["bucket"])
        low = block_of(max(start_ms, 0 if mark is None else mark), ROLLUP_BLOCK_MS[resolution])
        values = {":s": {"S": f"{device_id}#{resolution}"}, ":a": _n(low), ":b": _n(end_ms - 1)}
        kwargs = {  # BUCKET is one of DynamoDB's reserved words: named through a placeholder
            "KeyConditionExpression": "series = :s AND #bucket BETWEEN :a AND :b",
            "ExpressionAttributeNames": {"#bucket": "bucket"},
        }
        width = ROLLUP_BLOCK_MS[resolution]
        out: list[Bucket] = []
        block: dict[int, BucketAgg] = {}
        current: int | None = None
        logged = tail.buckets(tail.rows(self.log, self._record(device_id)), RESOLUTION_MS[resolution])
        pending = {at: {b: agg for b, agg in logged.items() if block_of(b, width) == at}
                   for at in {block_of(b, width) for b in logged}}  # fmt: skip

        def emit() -> None:
            for at, agg in sorted(block.items()):
                if start_ms <= at < end_ms and (mark is None or at > mark):
                    metrics = {k: summary(s) for k, s in agg.metrics.items() if s.count}
                    out.append(Bucket(device_id, resolution, at, metrics, agg.anomalies))
            block.clear()

        def flush(before: int | None) -> None:
            """The current block out (with its logged buckets), then any logged-only blocks before ``before``."""
            if current is not None:
                block.update(add_buckets(block, pending.pop(current, {})))
            emit()
            for at in sorted(b for b in pending if before is None or b < before):
                block.update(pending.pop(at))
                emit()

        for item in self._items(self.tables.rollups, kwargs, values):
            at = block_of(int(item["bucket"]["N"]), width)  # a bucket item before packing shares its block's
            if at != current:
                flush(at)
                if len(out) > limit:
                    break
                current = at
            block.update(add_buckets(block, block_of_item(item).buckets()))
        else:
            flush(None)
        rows = out[:limit]
        return Page(rows, encode_cursor({"bucket": rows[-1].start_ms}) if len(out) > limit else None)

    def _items(self, table: str, kwargs: dict[str, Any], values: Item) -> Iterator[Item]:
        """Every item of a Query, page by page, for as long as the caller reads."""
        start: Item | None = None
        while True:
            items, start = self._query(table, kwargs, values, 100, start)
            yield from items
            if start is None:
                return

    def device_anomalies(
        self, device_id: str, start_ms: int, end_ms: int, limit: int, cursor: str | None
    ) -> Page[AnomalyRow]:
        after = decode_cursor(cursor, ["sk"])
        values = {":d": {"S": device_id}, ":a": {"S": f"{start_ms:013d}"}, ":b": {"S": f"{end_ms - 1:013d}~"}}
        kwargs = {"KeyConditionExpression": "device_id = :d AND sk BETWEEN :a AND :b", "ScanIndexForward": False}
        start = None if after is None else {"device_id": {"S": device_id}, "sk": _s(after["sk"])}
        items, last = self._query(self.tables.anomalies, kwargs, values, limit, start)
        return Page([_anomaly_row(i) for i in items], _cursor(last, ("sk",)))

    def anomalies(self, where: AnomalyFilter, limit: int, cursor: str | None) -> Page[AnomalyRow]:
        """Walk the by_day index from the newest day back, filling one page."""
        after = decode_cursor(cursor, ["day_key"])
        upper = where.until_ms - 1
        if after is not None:
            upper = min(upper, _int(str(after["day_key"]).split("#", 1)[0]))
        filters, values = _anomaly_filters(where)
        out: list[AnomalyRow] = []
        start = None if after is None else _day_start_key(str(after["day_key"]))
        day = _day(upper)
        while len(out) < limit and day >= _day(where.since_ms):
            values.update({":day": {"S": day}, ":a": {"S": f"{where.since_ms:013d}"}, ":b": {"S": f"{upper:013d}~"}})
            kwargs: dict[str, Any] = {
                "IndexName": "by_day",
                "KeyConditionExpression": "#day = :day AND day_key BETWEEN :a AND :b",
                "ExpressionAttributeNames": {"#day": "day"},
                "ScanIndexForward": False,
            }
            if filters:
                kwargs["FilterExpression"] = " AND ".join(filters)
            items, last = self._query(self.tables.anomalies, kwargs, dict(values), limit - len(out), start)
            out.extend(_anomaly_row(i) for i in items)
            if last is not None:
                return Page(out, encode_cursor({"day_key": last["day_key"]["S"]}))
            start, day = None, _previous_day(day)
        more = len(out) >= limit and day >= _day(where.since_ms)
        return Page(out, encode_cursor({"day_key": _day_key(out[-1])}) if more and out else None)

    def line_devices(self, line: str, limit: int) -> list[DeviceRecord]:
        kwargs = {"IndexName": "by_line", "KeyConditionExpression": "line = :l"}
        out: list[DeviceRecord] = []
        start = None
        while len(out) < limit:
            items, start = self._query(
                self.tables.devices, kwargs, {":l": {"S": line}}, limit - len(out), start, self._records_by_key
            )
            out.extend(device_record(i) for i in items)
            if start is None:
                break
        return out

    def _query(
        self,
        table: str,
        kwargs: dict[str, Any],
        values: Item,
        limit: int,
        start: Item | None,
        keep: Callable[[list[Item]], list[Item]] | None = None,
    ) -> tuple[list[Item], Item | None]:
        """Query until ``limit`` items match (filters, and ``keep`` on each page, can leave it short) or the
        range ends. ``Limit`` is what is left to find, so the last key evaluated is the last item kept."""
        items: list[Item] = []
        while True:
            call = {"TableName": table, **kwargs, "ExpressionAttributeValues": values, "Limit": limit - len(items)}
            if start is not None:
                call["ExclusiveStartKey"] = start
            with _cursor_checked(start is not None), aws_call(f"Query {table}"):
                got = self.client.query(**call)
            page = got.get("Items", [])
            items.extend(keep(page) if keep is not None and page else page)
            start = got.get("LastEvaluatedKey")
            if start is None or len(items) >= limit:
                return items, start


@contextmanager
def _cursor_checked(has_cursor: bool) -> Iterator[None]:
    """A start key DynamoDB refuses came from a client's token: a bad token, not a server error."""
    try:
        yield
    except ClientError as exc:
        if has_cursor and exc.response.get("Error", {}).get("Code") == "ValidationException":
            raise InvalidCursorError("next_token does not belong to this query") from exc
        raise


def _s(value: Any) -> dict[str, str]:
    if not isinstance(value, str) or not value or len(value) > 512:
        raise InvalidCursorError("next_token is not a token this API issued")
    return {"S": value}


def _int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError) as exc:
        raise InvalidCursorError("next_token is not a token this API issued") from exc


def _cursor(last: Item | None, names: tuple[str, ...]) -> str | None:
    if last is None:
        return None
    return encode_cursor({n: next(iter(last[n].values())) for n in names})


def _day(ts_ms: int) -> str:
    return datetime.fromtimestamp(ts_ms / 1000, tz=UTC).strftime("%Y-%m-%d")


def _previous_day(day: str) -> str:
    return (datetime.strptime(day, "%Y-%m-%d").replace(tzinfo=UTC) - timedelta(days=1)).strftime("%Y-%m-%d")


def _day_key(row: AnomalyRow) -> str:
    return f"{row.ts_ms:013d}#{row.device_id}#{row.kind}"


def _day_start_key(day_key: str) -> Item:
    """The by_day start key of a day_key (its table key is recoverable from it)."""
    parts = day_key.split("#")
    kinds = ("raise", "escalate", "clear")
    if len(parts) != 3 or not parts[0].isdigit() or len(parts[0]) != 13 or parts[2] not in kinds:
        raise InvalidCursorError("next_token is not a token this API issued")
    ts, device, kind = int(parts[0]), parts[1], parts[2]
    return {
        "day": {"S": _day(ts)},
        "day_key": {"S": day_key},
        "device_id": _s(device),
        "sk": {"S": f"{ts:013d}#{kind}"},
    }


def _anomaly_filters(where: AnomalyFilter) -> tuple[list[str], Item]:
    filters, values = [], {}
    for name, value in (("severity", where.severity), ("site", where.site), ("line", where.line)):
        if value is not None:
            filters.append(f"{name} = :{name}")
            values[f":{name}"] = {"S": value}
    return filters, values


def _reading_key(value: Any) -> str:
    """A readings cursor: a reading's key, which starts with its 13-digit timestamp."""
    if not isinstance(value, str) or len(value) > 512 or not value[:13].isdigit() or len(value) < 13:
        raise InvalidCursorError("next_token is not a token this API issued")
    return value


def _anomaly_row(item: Item) -> AnomalyRow:
    return AnomalyRow(
        device_id=item["device_id"]["S"],
        ts_ms=int(item["ts"]["N"]),
        kind=item["kind"]["S"],
        severity=item["severity"]["S"],
        score=float(item["score"]["N"]),
        site=item["site"]["S"],
        line=item["line"]["S"],
        device_type=item["device_type"]["S"],
        reasons=tuple(json.loads(item["reasons"]["S"])),
        expires_at=int(item["expires_at"]["N"]),
    )

"""DynamoDB stores: readings, device state, anomalies and rollups.

Keys follow the API's access patterns, so no read path needs a Scan:

==========  ===================  ================================  =====================================
table       partition key        sort key                          indexes
==========  ===================  ================================  =====================================
readings    device_id            sk = hour(13 digits)#1st ordinal  -
devices     device_id            -                                 by_site (fleet, site_key), by_line (line, device_id)
anomalies   device_id            sk = ts#kind                      by_day (day, day_key = ts#device#kind)
rollups     series = device#res  bucket (N, epoch ms of a block)   -
==========  ===================  ================================  =====================================

Write cost grows with devices and batches, not readings: a readings item is a chunk,
one device's readings of one batch within one hour, packed (msgpack, raw deflate) in
one binary attribute; a rollups item is a block of buckets (an hour of minute buckets, or one
hour bucket), its earlier batches summed and its last batch apart (see
:class:`~iotpm.service.ports.RollupBlock`); a device's detector state and trend are
one deflated msgpack blob, so its item stays under 1 KB. Every table has TTL on
``expires_at`` (devices excepted). Numbers outside the packed attributes are DynamoDB
numbers via ``repr`` (shortest round-trip form).
"""

from __future__ import annotations

import base64
import json
import time
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Final

import msgspec

from iotpm.adapters.errors import aws_call, translate
from iotpm.adapters.packing import chunk_columns, chunk_uncolumns, entry_columns, entry_uncolumns
from iotpm.service.errors import ConflictError, StoreError
from iotpm.service.ports import (
    EMPTY_BLOCK,
    AnomalyRow,
    BlockKey,
    BucketAgg,
    ChunkKey,
    DeviceRecord,
    DeviceRows,
    Failures,
    LogDevice,
    LogEntry,
    MetricStats,
    ReadingRow,
    RollupBlock,
    RollupDelta,
    blocks_of,
    chunks_of,
)

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.client import DynamoDBClient
    from mypy_boto3_dynamodb.type_defs import (
        PutItemInputTypeDef,
        QueryInputTypeDef,
        WriteRequestOutputTypeDef,
        WriteRequestTypeDef,
    )

_BATCH_WRITE: Final = 25
_BATCH_GET: Final = 100
_UNPROCESSED_ATTEMPTS: Final = 6
FLEET_KEY: Final = "device"

Item = dict[str, Any]


@dataclass(frozen=True, slots=True)
class TableNames:
    """The four tables (names come from Terraform outputs via settings)."""

    readings: str
    devices: str
    anomalies: str
    rollups: str


def table_specs(names: TableNames) -> list[dict[str, Any]]:
    """CreateTable arguments matching the Terraform dynamodb module (tests and tools)."""

    def attrs(**kinds: str) -> list[dict[str, str]]:
        return [{"AttributeName": k, "AttributeType": v} for k, v in kinds.items()]

    def key(pk: str, sk: str | None = None) -> list[dict[str, str]]:
        out = [{"AttributeName": pk, "KeyType": "HASH"}]
        return out + ([{"AttributeName": sk, "KeyType": "RANGE"}] if sk else [])

    def gsi(name: str, pk: str, sk: str, projection: str = "ALL") -> dict[str, Any]:
        return {"IndexName": name, "KeySchema": key(pk, sk), "Projection": {"ProjectionType": projection}}

    on_demand = {"BillingMode": "PAY_PER_REQUEST"}
    return [
        {"TableName": names.readings, "KeySchema": key("device_id", "sk"), **on_demand,
         "AttributeDefinitions": attrs(device_id="S", sk="S")},
        {"TableName": names.devices, "KeySchema": key("device_id"), **on_demand,
         "AttributeDefinitions": attrs(device_id="S", fleet="S", site_key="S", line="S"),
         "GlobalSecondaryIndexes": [gsi("by_site", "fleet", "site_key", "KEYS_ONLY"),
                                    gsi("by_line", "line", "device_id", "KEYS_ONLY")]},
        {"TableName": names.anomalies, "KeySchema": key("device_id", "sk"), **on_demand,
         "AttributeDefinitions": attrs(device_id="S", sk="S", day="S", day_key="S"),
         "GlobalSecondaryIndexes": [gsi("by_day", "day", "day_key")]},
        {"TableName": names.rollups, "KeySchema": key("series", "bucket"), **on_demand,
         "AttributeDefinitions": attrs(series="S", bucket="N")},
    ]  # fmt: skip


# -- marshalling ---------------------------------------------------------------------


def _number_size(text: str) -> int:
    """A DynamoDB number's size: 1 byte per two significant digits, plus 1."""
    digits = Decimal(text).normalize().as_tuple().digits
    return (len(digits) + 1) // 2 + 1


def _value_size(value: Mapping[str, Any]) -> int:
    ((kind, v),) = value.items()
    if kind == "S":
        return len(v.encode())
    if kind == "N":
        return _number_size(v)
    if kind == "B":
        return len(v)
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "M":
        return 3 + sum(len(k.encode()) + _value_size(x) + 1 for k, x in v.items())
    if kind == "L":
        return 3 + sum(_value_size(x) + 1 for x in v)
    raise ValueError(f"no size rule for a DynamoDB {kind} value")


def item_size(item: Mapping[str, Any]) -> int:
    """An item's size as DynamoDB bills it: attribute names and values (strings in UTF-8, binary as is,
    numbers by their significant digits); an item of up to 1,024 bytes is one write unit."""
    return sum(len(name.encode()) + _value_size(v) for name, v in item.items())


def write_units(size: int) -> int:
    """On-demand write units of one put of an item of ``size`` bytes (a started kilobyte each)."""
    return max(1, -(-size // 1024))


def _n(value: float | int) -> dict[str, str]:
    return {"N": repr(value) if isinstance(value, float) else str(value)}


def _opt_n(value: float | int | None) -> dict[str, Any]:
    return {"NULL": True} if value is None else _n(value)


def _num_map(values: Mapping[str, float]) -> dict[str, Any]:
    return {"M": {k: _n(float(v)) for k, v in values.items()}}


def _from_num_map(attr: Mapping[str, Any]) -> dict[str, float]:
    return {k: float(v["N"]) for k, v in attr.get("M", {}).items()}


class _Packed(msgspec.Struct, array_like=True, gc=False):
    """A :class:`ReadingRow`'s fields as a msgpack array (same order), inside a chunk."""

    device_id: str
    ts_ms: int
    key: str
    seq: int | None
    site: str
    line: str
    device_type: str
    metrics: dict[str, float]
    score: float
    anomaly: bool
    expires_at: int
    ordinal: int


_ROWS: Final = msgspec.msgpack.Decoder(list[_Packed])
_BUCKETS: Final = msgspec.msgpack.Decoder(list[tuple[int, int, list[tuple[str, int, float, float, float]]]])


def _deflate(raw: bytes) -> bytes:
    """Raw deflate (no zlib header: a chunk of one reading is ~150 bytes, the header 6)."""
    return zlib.compress(raw, 6, -15)


def _inflate(data: bytes) -> bytes:
    return zlib.decompress(data, -15)


def chunk_sk(hour_ms: int, first_ordinal: int) -> str:
    """A chunk's sort key: its hour, then its first ordinal (so a device's chunks list in time order)."""
    return f"{hour_ms:013d}#{first_ordinal:012d}"


def chunk_item(key: ChunkKey, rows: Sequence[ReadingRow]) -> Item:
    """The readings-table item of one chunk (rows of one device and hour, in arrival order), as columns."""
    device, hour, first = key
    return {
        "device_id": {"S": device},
        "sk": {"S": chunk_sk(hour, first)},
        "n": _n(len(rows)),
        "data": {"B": _deflate(msgspec.msgpack.encode(chunk_columns(rows)))},
        "v": _n(2),
        "expires_at": _n(
            max(rows.ts()) // 1000 + rows.ttl_s if isinstance(rows, DeviceRows) else max(r.expires_at for r in rows)
        ),
    }


def chunk_rows(item: Mapping[str, Any]) -> list[ReadingRow]:
    """Inverse of :func:`chunk_item`; a chunk of rows (before columns) and a reading item of the layout
    before packing (a chunk of one) read too."""
    if "data" not in item:
        return [_legacy_row(item)]
    raw = _inflate(bytes(item["data"]["B"]))
    if "v" in item:
        return chunk_uncolumns(msgspec.msgpack.decode(raw))
    return [ReadingRow(*msgspec.structs.astuple(p)) for p in _ROWS.decode(raw)]


def _legacy_row(item: Mapping[str, Any]) -> ReadingRow:
    return ReadingRow(
        device_id=item["device_id"]["S"],
        ts_ms=int(item["ts"]["N"]),
        key=item["sk"]["S"],
        seq=int(item["seq"]["N"]) if "seq" in item else None,
        site=item["site"]["S"],
        line=item["line"]["S"],
        device_type=item["device_type"]["S"],
        metrics={k: float(v["N"]) for k, v in item["metrics"]["M"].items()},
        score=float(item["score"]["N"]),
        anomaly=bool(item["anomaly"]["BOOL"]),
        expires_at=int(item["expires_at"]["N"]),
        ordinal=-1,
    )


def _buckets_blob(buckets: Mapping[int, BucketAgg]) -> bytes:
    rows = [
        (start, agg.anomalies, [(name, s.count, s.min, s.max, s.sum) for name, s in agg.metrics.items()])
        for start, agg in sorted(buckets.items())
    ]
    return _deflate(msgspec.msgpack.encode(rows))


def _blob_buckets(data: bytes) -> dict[int, BucketAgg]:
    return {
        start: BucketAgg({name: MetricStats(c, lo, hi, total) for name, c, lo, hi, total in metrics}, anomalies)
        for start, anomalies, metrics in _BUCKETS.decode(_inflate(data))
    }


def block_item(key: BlockKey, block: RollupBlock, expires_at: int) -> Item:
    """The rollups-table item of one block."""
    device, resolution, start = key
    return {
        "series": {"S": f"{device}#{resolution}"},
        "bucket": _n(start),
        "device_id": {"S": device},
        "resolution": {"S": resolution},
        "base": {"B": _buckets_blob(block.base)},
        "last": {"B": _buckets_blob(block.last)},
        "last_ordinal": _n(block.last_ordinal),
        "expires_at": _n(expires_at),
    }


def block_of_item(item: Mapping[str, Any]) -> RollupBlock:
    """Inverse of :func:`block_item`; a bucket item of the layout before packing reads as a block of one."""
    if "metrics" in item:
        stats = {
            name: MetricStats(int(v["M"]["count"]["N"]), float(v["M"]["min"]["N"]), float(v["M"]["max"]["N"]),
                              float(v["M"]["sum"]["N"]))
            for name, v in item["metrics"]["M"].items()
        }  # fmt: skip
        return RollupBlock({int(item["bucket"]["N"]): BucketAgg(stats, int(item["anomalies"]["N"]))}, {}, -1)
    return RollupBlock(
        _blob_buckets(bytes(item["base"]["B"])),
        _blob_buckets(bytes(item["last"]["B"])),
        int(item["last_ordinal"]["N"]),
    )


def anomaly_item(row: AnomalyRow) -> Item:
    """The anomalies-table item of a row (``notified`` false until its alert is sent)."""
    day = datetime.fromtimestamp(row.ts_ms / 1000, tz=UTC).strftime("%Y-%m-%d")
    return {
        "device_id": {"S": row.device_id},
        "sk": {"S": row.key},
        "ts": _n(row.ts_ms),
        "kind": {"S": row.kind},
        "severity": {"S": row.severity},
        "score": _n(row.score),
        "site": {"S": row.site},
        "line": {"S": row.line},
        "device_type": {"S": row.device_type},
        "reasons": {"S": json.dumps(list(row.reasons), separators=(",", ":"))},
        "day": {"S": day},
        "day_key": {"S": f"{row.ts_ms:013d}#{row.device_id}#{row.kind}"},
        "notified": {"BOOL": False},
        "expires_at": _n(row.expires_at),
    }


def device_item(r: DeviceRecord, version: int) -> Item:
    """The devices-table item of a record at ``version``."""
    return {
        "device_id": {"S": r.device_id},
        "fleet": {"S": FLEET_KEY},
        "site_key": {"S": f"{r.site}#{r.line}#{r.device_id}"},
        "site": {"S": r.site},
        "line": {"S": r.line},
        "device_type": {"S": r.device_type},
        "state": {"B": _pack_state(r.detector, r.trend, r.ingest, r.flushed)},
        "last_ts": _n(r.last_ts_ms),
        "latest": _num_map(r.latest),
        "health": _n(float(r.health)),
        "alarm_open": {"BOOL": r.alarm_open},
        "alarm_since": _opt_n(r.alarm_since_ms),
        "readings": _n(r.readings),
        "updated": _n(r.updated_ms),
        "version": _n(version),
        "identity": {"S": r.identity},
        "rebaselined": _n(r.rebaselined_ms),
    }


def _ingest_of(item: Mapping[str, Any]) -> dict[str, Any]:
    """Replay protection as items before it moved into the state blob kept it."""
    if "ingest_pos" not in item:
        return {}
    recent = bytes(item["recent"]["B"]) if "recent" in item else b""
    return {"pos": json.loads(item["ingest_pos"]["S"]), "recent": base64.b64encode(recent).decode()}


def device_record(item: Mapping[str, Any]) -> DeviceRecord:
    """Inverse of :func:`device_item` (and of the layouts before it: detector and trend as JSON text;
    replay protection and the log key as attributes of their own)."""
    since = item.get("alarm_since", {"NULL": True})
    ingest = _ingest_of(item)
    flushed: dict[str, str] = json.loads(item["flushed"]["S"]) if "flushed" in item else {}
    if "state" in item:
        detector, trend, packed_ingest, packed_flushed = _unpack_state(bytes(item["state"]["B"]))
        ingest, flushed = packed_ingest or ingest, packed_flushed or flushed
    else:
        detector, trend = json.loads(item["detector"]["S"]), json.loads(item["trend"]["S"])
    return DeviceRecord(
        device_id=item["device_id"]["S"],
        site=item["site"]["S"],
        line=item["line"]["S"],
        device_type=item["device_type"]["S"],
        detector=detector,
        # the last reading's ordinal is the count of readings (an attribute of older items)
        last_mark=int(item["last_mark"]["N"]) if "last_mark" in item else int(item["readings"]["N"]),
        last_ts_ms=int(item["last_ts"]["N"]),
        latest=_from_num_map(item.get("latest", {})),
        health=float(item["health"]["N"]),
        alarm_open=bool(item["alarm_open"]["BOOL"]),
        alarm_since_ms=None if "NULL" in since else int(since["N"]),
        trend=trend,
        readings=int(item["readings"]["N"]),
        updated_ms=int(item["updated"]["N"]),
        version=int(item["version"]["N"]),
        ingest=ingest,
        flushed=flushed,
        identity=str(item.get("identity", {}).get("S", "payload")),  # items before it: all from payloads
        # items before it: a request older than the item's last write was applied then (or never will be)
        rebaselined_ms=int(item.get("rebaselined", item["updated"])["N"]),
    )


def _pack_state(
    detector: Mapping[str, Any] | None,
    trend: Mapping[str, Any],
    ingest: Mapping[str, Any],
    flushed: Mapping[str, str],
) -> bytes:
    """Detector state, trend table, replay protection and log keys in one deflated msgpack blob.

    It keeps a device item near 1 KB (one write unit). The detector's arrays travel as
    base64 text; a string that is exactly the base64 of some bytes is stored as those
    bytes (msgpack keeps bytes and text apart, so :func:`_unpack_state` turns them back),
    a quarter smaller before deflate, which packs raw floats better than their base64
    too. Sequence numbers are long decimal strings that share most digits: deflated
    together they take a fraction of their text.
    """
    packed = None if detector is None else {k: _b64_bytes(v) for k, v in detector.items()}
    recent = base64.b64decode(ingest.get("recent") or "")
    return _deflate(
        msgspec.msgpack.encode([packed, _trend_text(trend), ingest.get("pos") or {}, recent, dict(flushed)])
    )


_TREND_FIELDS: Final = ("level", "slope_per_hour", "limit", "hours_to_limit")


def _trend_text(trend: Mapping[str, Any]) -> Any:
    """The trend table (shown, never computed on) as text to 7 significant digits: a third of its msgpack.

    A table of other fields than the usual four is kept as it is.
    """
    if not all(isinstance(v, Mapping) and tuple(v) == _TREND_FIELDS for v in trend.values()):
        return dict(trend)
    return {
        metric: ",".join("" if x is None else f"{x:.7g}" for x in (row[f] for f in _TREND_FIELDS))
        for metric, row in trend.items()
    }


def _trend_of(packed: Any) -> dict[str, Any]:
    return {
        metric: dict(zip(_TREND_FIELDS, (None if x == "" else float(x) for x in row.split(",")), strict=True))
        if isinstance(row, str)
        else row
        for metric, row in packed.items()
    }


def _unpack_state(data: bytes) -> tuple[dict[str, Any] | None, dict[str, Any], dict[str, Any], dict[str, str]]:
    """Inverse of :func:`_pack_state` (a blob of detector and trend alone reads with no ingest or keys)."""
    packed, trend_packed, *rest = msgspec.msgpack.decode(_inflate(data))
    trend = _trend_of(trend_packed)
    ingest: dict[str, Any] = {}
    flushed: dict[str, str] = {}
    if rest:
        pos, recent, flushed = rest
        ingest = {"pos": pos, "recent": base64.b64encode(recent).decode()} if pos or recent else {}
    detector = None
    if packed is not None:
        detector = {k: base64.b64encode(v).decode() if isinstance(v, bytes) else v for k, v in packed.items()}
    return detector, trend, ingest, flushed


def _b64_bytes(value: Any) -> Any:
    if not isinstance(value, str) or len(value) < 16:
        return value
    try:
        raw = base64.b64decode(value, validate=True)
    except ValueError:  # binascii.Error, or text that is not ASCII
        return value
    return raw if base64.b64encode(raw).decode() == value else value


# -- stores -------------------------------------------------------------------------


class _Dynamo:
    def __init__(self, client: DynamoDBClient, table: str, workers: int = 8) -> None:
        self.client, self.table, self.workers = client, table, workers

    def _parallel(self, fn: Callable[[Any], Failures], chunks: Sequence[Any]) -> Failures:
        failures: Failures = {}
        if len(chunks) <= 1:
            for chunk in chunks:
                failures.update(fn(chunk))
            return failures
        with ThreadPoolExecutor(max_workers=min(self.workers, len(chunks))) as pool:
            for got in pool.map(fn, chunks):
                failures.update(got)
        return failures

    def _batch_get(self, keys: list[Item]) -> list[Item]:
        """Consistent BatchGetItem in 100s (in parallel), retrying unprocessed keys with backoff."""
        chunks = [keys[i : i + _BATCH_GET] for i in range(0, len(keys), _BATCH_GET)]

        def get(pending: list[Item]) -> list[Item]:
            items: list[Item] = []
            for attempt in range(_UNPROCESSED_ATTEMPTS):
                with aws_call(f"BatchGetItem {self.table}"):
                    got = self.client.batch_get_item(
                        RequestItems={self.table: {"Keys": pending, "ConsistentRead": True}}
                    )
                items.extend(got.get("Responses", {}).get(self.table, []))
                unprocessed = got.get("UnprocessedKeys", {}).get(self.table)
                pending = list(unprocessed["Keys"]) if unprocessed else []
                if not pending:
                    return items
                time.sleep(min(0.05 * 2**attempt, 1.0))
            raise StoreError(f"BatchGetItem {self.table}: keys still unprocessed", code="Unprocessed")

        if len(chunks) <= 1:
            return [item for chunk in chunks for item in get(chunk)]
        with ThreadPoolExecutor(max_workers=min(self.workers, len(chunks))) as pool:
            return [item for got in pool.map(get, chunks) for item in got]

    def _batch_write(self, items: list[Item], device_of: Callable[[Mapping[str, Any]], str]) -> Failures:
        """BatchWriteItem in 25s, retrying unprocessed items with backoff."""
        chunks = [items[i : i + _BATCH_WRITE] for i in range(0, len(items), _BATCH_WRITE)]

        def write(chunk: list[Item]) -> Failures:
            pending: Sequence[WriteRequestTypeDef | WriteRequestOutputTypeDef] = [
                {"PutRequest": {"Item": it}} for it in chunk
            ]
            for attempt in range(_UNPROCESSED_ATTEMPTS):
                try:
                    got = self.client.batch_write_item(RequestItems={self.table: pending})
                except Exception as exc:
                    error = translate(exc, f"BatchWriteItem {self.table}")
                    return {device_of(p["PutRequest"]["Item"]): error for p in pending}
                pending = got.get("UnprocessedItems", {}).get(self.table, [])
                if not pending:
                    return {}
                time.sleep(min(0.05 * 2**attempt, 1.0))
            error = StoreError(f"BatchWriteItem {self.table}: items still unprocessed", code="Unprocessed")
            return {device_of(p["PutRequest"]["Item"]): error for p in pending}

        return self._parallel(write, chunks)


class DynamoReadings(_Dynamo):
    """:class:`~iotpm.service.ports.ReadingStore` on the readings table: one item per chunk."""

    def put_many(self, rows: Sequence[ReadingRow]) -> Failures:
        items = [chunk_item(key, chunk) for key, chunk in chunks_of(rows).items()]
        return self._batch_write(items, lambda it: str(it["device_id"]["S"]))


class DynamoStates(_Dynamo):
    """:class:`~iotpm.service.ports.StateStore` on the devices table."""

    def get_many(self, device_ids: Sequence[str]) -> dict[str, DeviceRecord]:
        records = (device_record(item) for item in self._batch_get([{"device_id": {"S": d}} for d in device_ids]))
        return {r.device_id: r for r in records}

    def put_many(self, records: Sequence[DeviceRecord], *, checked: bool = True) -> Failures:
        if not checked:  # a view of the shard's snapshot: written as it is, in 25s
            items = [device_item(r, r.version + 1) for r in records]
            failures = self._batch_write(items, lambda it: str(it["device_id"]["S"]))
            for r in records:
                r.version += 0 if r.device_id in failures else 1
            return failures

        def put(record: DeviceRecord) -> Failures:
            request: PutItemInputTypeDef = {
                "TableName": self.table,
                "Item": device_item(record, record.version + 1),
                "ConditionExpression": "attribute_not_exists(device_id)",
            }
            if record.version != 0:
                request["ConditionExpression"] = "version = :v"
                request["ExpressionAttributeValues"] = {":v": _n(record.version)}
            try:
                self.client.put_item(**request)
            except Exception as exc:
                return {record.device_id: translate(exc, f"PutItem {self.table}")}
            record.version += 1
            return {}

        return self._parallel(put, list(records))


#: a log entry's item stays below this (DynamoDB's limit is 400 KB an item, names included)
LOG_ITEM_BYTES: Final = 350_000


def log_partition(shard: str) -> str:
    """The readings-table partition of a shard's log (``~`` is in no device id)."""
    return f"~log#{shard}"


def _halves(part: LogEntry) -> list[LogEntry]:
    """A part too large for one item as two: its devices in halves, or one device's readings."""
    if len(part.devices) > 1:
        half = len(part.devices) // 2
        return [msgspec.structs.replace(part, devices=part.devices[:half]),
                msgspec.structs.replace(part, devices=part.devices[half:])]  # fmt: skip
    (d,) = part.devices
    half = len(d.ts) // 2
    return [msgspec.structs.replace(part, devices=[_piece(d, 0, half)]),
            msgspec.structs.replace(part, devices=[_piece(d, half, len(d.ts))])]  # fmt: skip


def _piece(d: LogDevice, start: int, end: int) -> LogDevice:
    """The device's readings ``start:end`` of the entry, with their ordinals and its view."""
    return msgspec.structs.replace(
        d, first_ordinal=d.first_ordinal + start, ts=d.ts[start:end], seq=d.seq[start:end],
        metrics=d.metrics[start:end], score=d.score[start:end], anomaly=d.anomaly[start:end],
    )  # fmt: skip


def _joined(entry: LogEntry) -> LogEntry:
    """An entry whose devices came in pieces (one device's readings over several items) with each device whole."""
    if len({d.device_id for d in entry.devices}) == len(entry.devices):
        return entry
    groups: dict[str, list[LogDevice]] = {}
    for d in entry.devices:
        groups.setdefault(d.device_id, []).append(d)
    devices = []
    for pieces in groups.values():
        pieces.sort(key=lambda p: p.first_ordinal)
        devices.append(msgspec.structs.replace(
            pieces[0], ts=[t for p in pieces for t in p.ts], seq=[q for p in pieces for q in p.seq],
            metrics=[m for p in pieces for m in p.metrics], score=[x for p in pieces for x in p.score],
            anomaly=[a for p in pieces for a in p.anomaly],
        ))  # fmt: skip
    return msgspec.structs.replace(entry, devices=devices)


#: how long a batch-log item is kept: compaction (a batch's, or the scheduled job's for an idle
#: shard within a day or so) has copied its readings into chunks long before; a week covers a
#: job that fails for days, and the stream's own retention (Kinesis keeps 7 days at most)
LOG_TTL_S: Final = 7 * 86_400


def log_expires_at(entry: LogEntry) -> int:
    """When a log entry's items expire (epoch seconds): ``LOG_TTL_S`` after it was written, and
    never after its readings (a readings TTL shorter than that)."""
    return entry.written_ms // 1000 + min(entry.ttl_s, LOG_TTL_S)


def log_items(shard: str, entry: LogEntry) -> list[Item]:
    """An entry as readings-table items: one, or parts when it is large (split across its
    devices, then within one device's readings), each below DynamoDB's item size."""
    return [item for item, _ in _log_parts(shard, entry)]


def _log_parts(shard: str, entry: LogEntry) -> list[tuple[Item, list[str]]]:
    """Each item of the entry and the devices whose readings it holds."""
    parts = [entry]
    out: list[tuple[Item, list[str]]] = []
    while parts:
        part = parts.pop(0)
        data = _deflate(msgspec.msgpack.encode(entry_columns(part)))
        if len(data) > LOG_ITEM_BYTES and (len(part.devices) > 1 or any(len(d.ts) > 1 for d in part.devices)):
            parts[:0] = _halves(part)
            continue
        item = {
            "device_id": {"S": log_partition(shard)},
            "sk": {"S": f"{entry.key}#{len(out):03d}"},
            "n": _n(sum(len(d.ts) for d in part.devices)),
            "data": {"B": data},
            # its own expiry, not its readings': compaction copies them into chunks that keep
            # the readings' (entry.ttl_s, in the blob), by a batch or, for a shard that
            # receives nothing, the scheduled job (service.compaction.IdleShards)
            "expires_at": _n(log_expires_at(entry)),
        }
        out.append((item, [d.device_id for d in part.devices]))
    return out


def log_entries(items: Iterable[Item]) -> Iterator[LogEntry]:
    """Items of :func:`log_items` (in key order, either way) as entries, parts joined."""
    current: LogEntry | None = None
    for item in items:
        part = entry_uncolumns(msgspec.msgpack.decode(_inflate(bytes(item["data"]["B"]))))
        if current is not None and current.key == part.key:
            current.devices.extend(part.devices)
            continue
        if current is not None:
            yield _joined(current)
        current = part
    if current is not None:
        yield _joined(current)


class DynamoLog(_Dynamo):
    """:class:`~iotpm.service.ports.BatchLog` in the readings table, one partition per shard."""

    def __init__(self, client: DynamoDBClient, table: str, consistent: bool = True) -> None:
        super().__init__(client, table)
        self.consistent = consistent

    def append(self, shard: str, entry: LogEntry) -> Failures:
        parts = _log_parts(shard, entry)
        owners = {str(item["sk"]["S"]): devices for item, devices in parts}
        failures = self._batch_write([item for item, _ in parts], lambda it: str(it["sk"]["S"]))
        return {device: exc for sk, exc in failures.items() for device in owners[sk]}

    def after(self, shard: str, key: str | None, newest_first: bool = False) -> Iterator[LogEntry]:
        # "#~" sorts after every part suffix of ``key``; "0" before every key (they start with digits)
        low = "0" if key is None else f"{key}#~"
        kwargs: QueryInputTypeDef = {
            "TableName": self.table,
            "KeyConditionExpression": "device_id = :d AND sk > :k",
            "ExpressionAttributeValues": {":d": {"S": log_partition(shard)}, ":k": {"S": low}},
            "ScanIndexForward": not newest_first,
            "ConsistentRead": self.consistent,
        }

        def pages() -> Iterator[Item]:
            start: Item | None = None
            limit = 1  # newest first, a reader usually stops at the first entry: pages of 1, 4, 16, then 64
            while True:
                if newest_first:  # small pages, not 1 MB ones
                    kwargs["Limit"], limit = limit, min(limit * 4, 64)
                if start:
                    kwargs["ExclusiveStartKey"] = start
                with aws_call(f"Query {self.table} {log_partition(shard)}"):
                    got = self.client.query(**kwargs)
                yield from got.get("Items", [])
                start = got.get("LastEvaluatedKey")
                if not start:
                    return

        return log_entries(pages())


class DynamoAnomalies(_Dynamo):
    """:class:`~iotpm.service.ports.AnomalyStore` on the anomalies table."""

    def record(self, row: AnomalyRow) -> bool:
        try:
            self.client.put_item(
                TableName=self.table,
                Item=anomaly_item(row),
                ConditionExpression="attribute_not_exists(device_id)",
            )
            return True
        except Exception as exc:
            error = translate(exc, f"PutItem {self.table}")
            if not isinstance(error, ConflictError):
                raise error from exc
        with aws_call(f"GetItem {self.table}"):
            got = self.client.get_item(TableName=self.table, Key=self._key(row), ConsistentRead=True)
        # not yet claimed: ``notified`` is still false (a claim stores its token there)
        return bool(got.get("Item", {}).get("notified") == {"BOOL": False})

    def claim(self, row: AnomalyRow, token: str) -> bool:
        try:
            self.client.update_item(
                TableName=self.table,
                Key=self._key(row),
                UpdateExpression="SET notified = :t",
                ConditionExpression="attribute_exists(device_id) AND (notified = :f OR notified = :t)",
                ExpressionAttributeValues={":t": {"S": token}, ":f": {"BOOL": False}},
            )
            return True
        except Exception as exc:
            error = translate(exc, f"UpdateItem {self.table}")
            if isinstance(error, ConflictError):
                return False  # claimed by another attempt: its alert went out (or is going out) once
            raise error from exc

    def release(self, row: AnomalyRow, token: str) -> None:
        try:
            self.client.update_item(
                TableName=self.table,
                Key=self._key(row),
                UpdateExpression="SET notified = :f",
                ConditionExpression="notified = :t",
                ExpressionAttributeValues={":t": {"S": token}, ":f": {"BOOL": False}},
            )
        except Exception as exc:
            error = translate(exc, f"UpdateItem {self.table}")
            if not isinstance(error, ConflictError):  # not ours (any more): nothing to undo
                raise error from exc

    @staticmethod
    def _key(row: AnomalyRow) -> Item:
        return {"device_id": {"S": row.device_id}, "sk": {"S": row.key}}


class DynamoRollups(_Dynamo):
    """:class:`~iotpm.service.ports.RollupStore`: read the blocks, apply the batch, write them whole.

    DynamoDB update expressions have no min/max, so a block is merged client-side: the
    batch's blocks are read together (consistent BatchGetItem), each gets the batch
    (:meth:`~iotpm.service.ports.RollupBlock.apply`: a retry of the last batch replaces
    it), and they are written back together (BatchWriteItem, 25 a call). The write
    carries no condition: a device's records share a partition key, and the event
    source mapping hands a partition key to one invocation at a time, so a block has
    one writer.
    """

    def apply(self, deltas: Sequence[RollupDelta]) -> Failures:
        groups = blocks_of(deltas)
        try:
            current = self._current([self._key(k) for k in groups])
        except StoreError as exc:
            return dict.fromkeys({d.device_id for d in deltas}, exc)
        items = [
            block_item(
                k,
                current.get(f"{k[0]}#{k[1]}#{k[2]}", EMPTY_BLOCK).apply(group),
                max(d.expires_at for d in group),
            )
            for k, group in groups.items()
        ]
        return self._batch_write(items, lambda it: str(it["device_id"]["S"]))

    @staticmethod
    def _key(key: BlockKey) -> Item:
        return {"series": {"S": f"{key[0]}#{key[1]}"}, "bucket": _n(key[2])}

    def _current(self, keys: list[Item]) -> dict[str, RollupBlock]:
        """The blocks as stored now, by series#bucket."""
        return {f"{it['series']['S']}#{it['bucket']['N']}": block_of_item(it) for it in self._batch_get(keys)}


def create_tables(client: DynamoDBClient, names: TableNames, *, ttl: bool = True) -> None:
    """Create the tables (for tests and tools; Terraform owns them in real environments)."""
    for spec in table_specs(names):
        client.create_table(**spec)
    for table in (names.readings, names.anomalies, names.rollups) if ttl else ():
        client.update_time_to_live(
            TableName=table, TimeToLiveSpecification={"Enabled": True, "AttributeName": "expires_at"}
        )


def all_items(client: DynamoDBClient, table: str) -> Iterable[Item]:
    """Every item of a table (tests only: request paths never Scan)."""
    for page in client.get_paginator("scan").paginate(TableName=table, ConsistentRead=True):
        yield from page.get("Items", [])

"""DynamoDB stores of the operator's controls: the device registry, versioned documents, the audit log.

==========  ===============================  =======================  ==============================
table       partition key                    sort key                 indexes
==========  ===============================  =======================  ==============================
registry    device_id                        -                        by_gateway (gateway, device_id)
config      name (``limits``, ``alarm/<id>``)  -                      -
audit       stream (``audit``)               sk = ts(13 digits)#id    -
==========  ===============================  =======================  ==============================

Every write is conditional on the version read (``attribute_not_exists`` for a new
item), so a lost update shows as :class:`~iotpm.service.errors.ConflictError`. An audited
write is one TransactWriteItems of two items, the change and its audit entry (well inside
the 100-item and 4 MB limits; each item stays under 400 KB, which the operator service
checks before writing): both land or neither. The audit log is one partition: operator
writes come a few a minute, far below a partition's 1,000 writes/s, and one partition
reads newest first in one Query.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from botocore.exceptions import BotoCoreError, ClientError

from iotpm.adapters.errors import aws_call, translate
from iotpm.api.ports import InvalidCursorError, Page, decode_cursor, encode_cursor
from iotpm.operator.ports import Audited, AuditEntry, Document, Registration
from iotpm.service.errors import ConflictError, StoreError

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.client import DynamoDBClient
    from mypy_boto3_dynamodb.type_defs import PutTypeDef, TransactWriteItemTypeDef
    from mypy_boto3_sts.client import STSClient

AUDIT_STREAM: Final = "audit"
_BATCH_GET: Final = 100
Item = dict[str, Any]


@dataclass(frozen=True, slots=True)
class OperatorTables:
    """The three tables (names come from Terraform outputs via settings)."""

    registry: str
    config: str
    audit: str


def operator_table_specs(names: OperatorTables) -> list[dict[str, Any]]:
    """CreateTable arguments matching terraform/modules/storage/registry.tf (tests and tools)."""
    s = {"AttributeType": "S"}
    return [
        {
            "TableName": names.registry,
            "BillingMode": "PAY_PER_REQUEST",
            "AttributeDefinitions": [{"AttributeName": "device_id", **s}, {"AttributeName": "gateway", **s}],
            "KeySchema": [{"AttributeName": "device_id", "KeyType": "HASH"}],
            "GlobalSecondaryIndexes": [
                {
                    "IndexName": "by_gateway",
                    "KeySchema": [
                        {"AttributeName": "gateway", "KeyType": "HASH"},
                        {"AttributeName": "device_id", "KeyType": "RANGE"},
                    ],
                    "Projection": {"ProjectionType": "ALL"},
                }
            ],
        },
        {
            "TableName": names.config,
            "BillingMode": "PAY_PER_REQUEST",
            "AttributeDefinitions": [{"AttributeName": "name", **s}],
            "KeySchema": [{"AttributeName": "name", "KeyType": "HASH"}],
        },
        {
            "TableName": names.audit,
            "BillingMode": "PAY_PER_REQUEST",
            "AttributeDefinitions": [{"AttributeName": "stream", **s}, {"AttributeName": "sk", **s}],
            "KeySchema": [{"AttributeName": "stream", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        },
    ]


def create_operator_tables(client: DynamoDBClient, names: OperatorTables) -> None:
    """Create the tables (tests and tools; Terraform owns them in real environments)."""
    for spec in operator_table_specs(names):
        client.create_table(**spec)


def _n(value: int) -> dict[str, str]:
    return {"N": str(value)}


def _s(value: str) -> dict[str, str]:
    return {"S": value}


def _json(value: Any) -> dict[str, str]:
    return {"S": json.dumps(value, sort_keys=True, separators=(",", ":"))}


def _condition(key: str, expected: int | None) -> dict[str, Any]:
    if expected is None:
        return {"ConditionExpression": "attribute_not_exists(#k)", "ExpressionAttributeNames": {"#k": key}}
    return {"ConditionExpression": "version = :v", "ExpressionAttributeValues": {":v": _n(expected)}}


def _put(client: DynamoDBClient, table: str, item: Item, key: str, expected: int | None, audit: Audited | None) -> None:
    """PutItem over version ``expected``; with ``audit``, one transaction with the audit entry."""
    if audit is None:
        with aws_call(f"PutItem {table}"):
            client.put_item(TableName=table, Item=item, **_condition(key, expected))
        return
    log = audit.log
    if not isinstance(log, DynamoAudit):  # one transaction needs both items in DynamoDB
        raise TypeError(f"an audited write to {table} needs the DynamoDB audit log, not {type(log).__name__}")
    change: PutTypeDef = {"TableName": table, "Item": item, **_condition(key, expected)}  # type: ignore[typeddict-item]
    entry: PutTypeDef = {"TableName": log.table, "Item": audit_item(audit.entry),
                         "ConditionExpression": "attribute_not_exists(sk)"}  # fmt: skip
    what = f"TransactWriteItems {table} + {log.table}"
    try:
        items: list[TransactWriteItemTypeDef] = [{"Put": change}, {"Put": entry}]
        client.transact_write_items(TransactItems=items, ClientRequestToken=request_token(items))
    except ClientError as exc:
        reasons = [str(r.get("Code", "")) for r in exc.response.get("CancellationReasons", [])]
        if {"ConditionalCheckFailed", "TransactionConflict"} & set(reasons):
            raise ConflictError(
                f"{what}: cancelled ({', '.join(reasons)})", code="ConditionalCheckFailedException"
            ) from exc
        error = translate(exc, what)
        error.retryable = error.retryable or any("Throttl" in r or "ThroughputExceeded" in r for r in reasons)
        raise error from exc
    except BotoCoreError as exc:
        raise translate(exc, what) from exc


def _batch_get(client: DynamoDBClient, table: str, key: str, ids: Sequence[str], what: str) -> list[Item]:
    out: list[Item] = []
    unique = list(dict.fromkeys(ids))
    for start in range(0, len(unique), _BATCH_GET):
        request: dict[str, Any] = {
            table: {"Keys": [{key: _s(i)} for i in unique[start : start + _BATCH_GET]], "ConsistentRead": True}
        }
        for attempt in range(8):  # unprocessed keys come back under throttling: bounded retries, backing off
            if attempt:
                time.sleep(min(0.05 * 2**attempt, 1.0))
            with aws_call(what):
                got = client.batch_get_item(RequestItems=request)
            out += got.get("Responses", {}).get(table, [])
            request = got.get("UnprocessedKeys") or {}
            if not request:
                break
        if request:  # a key left unread is not a key that is absent: never answer as if it were
            left = len(request[table]["Keys"])
            raise StoreError(f"{what}: {left} keys still unprocessed after retries", code="Throttled", retryable=True)
    return out


class DynamoRegistry:
    """:class:`~iotpm.operator.ports.Registry` on the registry table."""

    def __init__(self, client: DynamoDBClient, table: str) -> None:
        self.client, self.table = client, table

    def get(self, device_id: str) -> Registration | None:
        with aws_call(f"GetItem {self.table}"):
            item = self.client.get_item(TableName=self.table, Key={"device_id": _s(device_id)}, ConsistentRead=True)
        return _registration(item["Item"]) if "Item" in item else None

    def get_many(self, device_ids: Sequence[str]) -> dict[str, Registration]:
        items = _batch_get(self.client, self.table, "device_id", device_ids, f"BatchGetItem {self.table}")
        return {r.device_id: r for r in map(_registration, items)}

    def under(self, gateway: str, limit: int = 10) -> list[str]:
        with aws_call(f"Query {self.table} by_gateway"):
            page = self.client.query(
                TableName=self.table, IndexName="by_gateway", KeyConditionExpression="gateway = :g",
                ExpressionAttributeValues={":g": _s(gateway)}, ProjectionExpression="device_id", Limit=limit,
            )  # fmt: skip
        return [item["device_id"]["S"] for item in page.get("Items", [])]

    def put(self, registration: Registration, expected: int | None, audit: Audited | None = None) -> Registration:
        r = registration
        item: Item = {
            "device_id": _s(r.device_id), "site": _s(r.site), "line": _s(r.line), "device_type": _s(r.device_type),
            "overrides": _json({k: dict(v) for k, v in r.overrides.items()}), "version": _n((expected or 0) + 1),
            "updated_ms": _n(r.updated_ms), "updated_by": _s(r.updated_by),
        }  # fmt: skip
        if r.gateway:
            item["gateway"] = _s(r.gateway)
        _put(self.client, self.table, item, "device_id", expected, audit)
        return _registration(item)


def _registration(item: Item) -> Registration:
    return Registration(
        device_id=item["device_id"]["S"],
        site=item["site"]["S"],
        line=item["line"]["S"],
        device_type=item["device_type"]["S"],
        gateway=item["gateway"]["S"] if "gateway" in item else None,
        overrides=json.loads(item["overrides"]["S"]) if "overrides" in item else {},
        version=int(item["version"]["N"]),
        updated_ms=int(item.get("updated_ms", {"N": "0"})["N"]),
        updated_by=item.get("updated_by", {"S": ""})["S"],
    )


class DynamoDocuments:
    """:class:`~iotpm.operator.ports.Documents` on the config table."""

    def __init__(self, client: DynamoDBClient, table: str) -> None:
        self.client, self.table = client, table

    def get(self, name: str) -> Document | None:
        with aws_call(f"GetItem {self.table}"):
            item = self.client.get_item(TableName=self.table, Key={"name": _s(name)}, ConsistentRead=True)
        return _document(item["Item"]) if "Item" in item else None

    def get_many(self, names: Sequence[str]) -> dict[str, Document]:
        items = _batch_get(self.client, self.table, "name", names, f"BatchGetItem {self.table}")
        return {d.name: d for d in map(_document, items)}

    def put(
        self, name: str, body: Mapping[str, Any], expected: int | None, who: str, now_ms: int,
        audit: Audited | None = None,
    ) -> Document:  # fmt: skip
        item: Item = {"name": _s(name), "body": _json(dict(body)), "version": _n((expected or 0) + 1),
                      "updated_ms": _n(now_ms), "updated_by": _s(who)}  # fmt: skip
        _put(self.client, self.table, item, "name", expected, audit)
        return _document(item)


def _document(item: Item) -> Document:
    return Document(
        item["name"]["S"],
        json.loads(item["body"]["S"]),
        int(item["version"]["N"]),
        int(item["updated_ms"]["N"]),
        item["updated_by"]["S"],
    )


class DynamoAudit:
    """:class:`~iotpm.operator.ports.AuditLog` on the audit table (one partition, newest first)."""

    def __init__(self, client: DynamoDBClient, table: str) -> None:
        self.client, self.table = client, table

    def append(self, entry: AuditEntry) -> None:
        """Append ``entry`` (an entry is never overwritten: ConflictError on an id that exists)."""
        with aws_call(f"PutItem {self.table}"):
            self.client.put_item(
                TableName=self.table, Item=audit_item(entry), ConditionExpression="attribute_not_exists(sk)"
            )

    def page(self, since_ms: int, until_ms: int, limit: int, cursor: str | None) -> Page[AuditEntry]:
        after = decode_cursor(cursor, ["k"])
        if after is not None and not isinstance(after["k"], str):
            raise InvalidCursorError("next_token is not a token this API issued")
        low, high = f"{since_ms:013d}#", f"{until_ms:013d}#"
        request: dict[str, Any] = {
            "TableName": self.table,
            "KeyConditionExpression": "#s = :s AND sk BETWEEN :lo AND :hi",
            "ExpressionAttributeNames": {"#s": "stream"},
            "ExpressionAttributeValues": {":s": _s(AUDIT_STREAM), ":lo": _s(low), ":hi": _s(high)},
            "ScanIndexForward": False,
            "Limit": limit + 1,
            "ConsistentRead": True,
        }
        if after is not None:
            request["ExclusiveStartKey"] = {"stream": _s(AUDIT_STREAM), "sk": _s(after["k"])}
        with aws_call(f"Query {self.table}"):
            items = self.client.query(**request).get("Items", [])
        rows = [_entry(i) for i in items if i["sk"]["S"] < high]  # BETWEEN includes `until#`
        page = rows[:limit]
        more = len(rows) > limit
        return Page(page, encode_cursor({"k": f"{page[-1].ts_ms:013d}#{page[-1].entry_id}"}) if more else None)


def request_token(items: Sequence[Mapping[str, Any]]) -> str:
    """The transaction's idempotency token, from its items: botocore sending the same write
    again after its answer was lost (within DynamoDB's 10 minutes) gets the first attempt's
    success instead of a version conflict (412). Each audited write has its own audit entry
    (a unique id), so two writes never share a token; a different write naming an entry that
    exists still fails its condition."""
    text = json.dumps(items, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:36]


def audit_item(e: AuditEntry) -> Item:
    """The audit table's item of an entry."""
    return {
        "stream": _s(AUDIT_STREAM), "sk": _s(f"{e.ts_ms:013d}#{e.entry_id}"), "ts_ms": _n(e.ts_ms),
        "who": _s(e.who), "action": _s(e.action), "subject": _s(e.subject),
        "before": _json(e.before), "after": _json(e.after),
    }  # fmt: skip


def _entry(item: Item) -> AuditEntry:
    sk = item["sk"]["S"]
    return AuditEntry(
        int(item["ts_ms"]["N"]),
        sk.split("#", 1)[1],
        item["who"]["S"],
        item["action"]["S"],
        item["subject"]["S"],
        json.loads(item["before"]["S"]),
        json.loads(item["after"]["S"]),
    )


def connect(
    names: OperatorTables, region: str | None = None, endpoint_url: str | None = None
) -> tuple[DynamoRegistry, DynamoDocuments, DynamoAudit, str]:
    """The three stores through one boto3 client, and the caller's IAM principal (who the audit names)."""
    import boto3

    session = boto3.session.Session(region_name=region)
    ddb: DynamoDBClient = session.client("dynamodb", endpoint_url=endpoint_url)
    sts: STSClient = session.client("sts", endpoint_url=endpoint_url)
    with aws_call("GetCallerIdentity"):
        who = sts.get_caller_identity()["Arn"]
    return DynamoRegistry(ddb, names.registry), DynamoDocuments(ddb, names.config), DynamoAudit(ddb, names.audit), who

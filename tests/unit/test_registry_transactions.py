"""The audited write's transaction: idempotent when botocore sends it again, never a false 412."""

from __future__ import annotations

from typing import Any

import pytest

from iotpm.adapters.registry import DynamoAudit, DynamoRegistry
from iotpm.operator.ports import Audited, AuditEntry, Registration
from iotpm.service.errors import ConflictError


class Dynamo:
    """TransactWriteItems as DynamoDB answers it: a token seen before with the same items
    succeeds again without writing; otherwise each Put's condition is checked."""

    def __init__(self) -> None:
        self.items: dict[tuple[str, str], dict[str, Any]] = {}
        self.tokens: dict[str, list[dict[str, Any]]] = {}
        self.writes = 0

    def transact_write_items(self, TransactItems: list[dict[str, Any]], ClientRequestToken: str) -> dict[str, Any]:  # noqa: N803
        assert 1 <= len(ClientRequestToken) <= 36
        if ClientRequestToken in self.tokens:
            assert self.tokens[ClientRequestToken] == TransactItems, "same token, other items: a mismatch"
            return {}
        for t in TransactItems:
            put = t["Put"]
            key = (put["TableName"], next(iter(put["Item"].values()))["S"])
            cond = put.get("ConditionExpression", "")
            if "attribute_not_exists" in cond and key in self.items and put["TableName"] != "audit":
                raise _cancelled()
        self.tokens[ClientRequestToken] = TransactItems
        for t in TransactItems:
            put = t["Put"]
            self.items[(put["TableName"], next(iter(put["Item"].values()))["S"])] = put["Item"]
        self.writes += 1
        return {}


def _cancelled() -> Exception:
    from botocore.exceptions import ClientError

    reasons = [{"Code": "ConditionalCheckFailed"}]
    error = {"Error": {"Code": "TransactionCanceledException"}, "CancellationReasons": reasons}
    return ClientError(error, "TransactWriteItems")  # type: ignore[arg-type]


def _write(client: Dynamo, entry_id: str, line: str = "line-1") -> Registration:
    reg = Registration("dev-1", "plant", line, "pump")
    audited = Audited(DynamoAudit(client, "audit"), AuditEntry(1_790_000_000_000, entry_id, "alice", "register",
                                                               "dev-1", None, {"line": line}))  # fmt: skip
    return DynamoRegistry(client, "registry").put(reg, None, audited)  # type: ignore[arg-type]


def test_the_same_write_sent_again_succeeds_once_written() -> None:
    client = Dynamo()
    first = _write(client, "e1")
    again = _write(client, "e1")  # botocore's retry after a lost answer: the same request
    assert again == first and client.writes == 1


def test_another_write_is_not_taken_for_a_retry() -> None:
    client = Dynamo()
    _write(client, "e1")
    with pytest.raises(ConflictError):  # a new registration over an existing one, with its own entry
        _write(client, "e2", line="line-2")
    assert client.writes == 1

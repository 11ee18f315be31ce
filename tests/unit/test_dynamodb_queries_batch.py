"""Reading many device records together: a throttled BatchGetItem is retried with backoff, and keys
that stay unprocessed are an error (the API's 503), never a page that silently lacks devices."""

from __future__ import annotations

from typing import Any

import pytest

from iotpm.adapters import dynamodb_queries
from iotpm.adapters.dynamodb import device_item
from iotpm.adapters.dynamodb_queries import DynamoQueries
from iotpm.service.errors import StoreError
from iotpm.service.memory import MemoryLog
from iotpm.service.ports import DeviceRecord


class Throttled:
    """A devices table that leaves the first ``refuse`` calls' keys unprocessed, then answers."""

    def __init__(self, refuse: int) -> None:
        self.refuse, self.calls = refuse, 0

    def batch_get_item(self, RequestItems: dict[str, Any]) -> dict[str, Any]:  # noqa: N803 - boto3's name
        self.calls += 1
        ((table, req),) = RequestItems.items()
        if self.calls <= self.refuse:
            return {"Responses": {table: []}, "UnprocessedKeys": {table: {"Keys": req["Keys"]}}}
        items = [device_item(DeviceRecord(k["device_id"]["S"], "plant-1", "line-1", "pump"), 1) for k in req["Keys"]]
        return {"Responses": {table: items}}


class Tables:
    devices, readings = "iotpm-test-devices", "iotpm-test-readings"


def queries(client: Throttled) -> DynamoQueries:
    q = DynamoQueries.__new__(DynamoQueries)
    q.client, q.tables, q.log = client, Tables(), MemoryLog()  # type: ignore[assignment]
    return q


@pytest.fixture(autouse=True)
def no_sleep(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    slept: list[float] = []
    monkeypatch.setattr(dynamodb_queries.time, "sleep", slept.append)
    return slept


def test_keys_left_unprocessed_a_few_times_are_read_after_backing_off(no_sleep: list[float]) -> None:
    client = Throttled(refuse=3)
    got = queries(client).device_records(["pump-1", "pump-2"])
    assert sorted(got) == ["pump-1", "pump-2"] and client.calls == 4
    assert no_sleep == sorted(no_sleep) and len(no_sleep) == 3 and no_sleep[0] > 0


def test_keys_that_stay_unprocessed_are_an_error_not_a_shorter_answer() -> None:
    with pytest.raises(StoreError, match="unprocessed"):
        queries(Throttled(refuse=100)).device_records(["pump-1", "pump-2"])

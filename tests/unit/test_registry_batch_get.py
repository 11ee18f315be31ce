"""The registry's BatchGetItem: a key DynamoDB leaves unprocessed is retried, never read as absent."""

from __future__ import annotations

from typing import Any

import pytest

from iotpm.adapters import registry
from iotpm.adapters.registry import DynamoRegistry
from iotpm.service.errors import StoreError


class Throttling:
    """A client that answers some keys and leaves the rest unprocessed, ``times`` times."""

    def __init__(self, times: int) -> None:
        self.times, self.calls = times, 0

    def batch_get_item(self, RequestItems: dict[str, Any]) -> dict[str, Any]:  # noqa: N803 (boto3's name)
        self.calls += 1
        ((table, req),) = RequestItems.items()
        keys = req["Keys"]
        if self.times > 0:
            self.times -= 1
            return {"Responses": {table: []}, "UnprocessedKeys": {table: {"Keys": keys}}}
        items = [{"device_id": k["device_id"], "site": {"S": "s"}, "line": {"S": "l"}, "device_type": {"S": "t"},
                  "version": {"N": "1"}}
                 for k in keys]  # fmt: skip
        return {"Responses": {table: items}}


def test_unprocessed_keys_are_read_on_a_later_attempt(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(registry.time, "sleep", lambda s: None)
    client = Throttling(times=3)
    got = DynamoRegistry(client, "reg").get_many(["a", "b"])
    assert set(got) == {"a", "b"} and client.calls == 4


def test_keys_still_unprocessed_after_the_retries_are_an_error_not_absent_devices(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    slept: list[float] = []
    monkeypatch.setattr(registry.time, "sleep", slept.append)
    with pytest.raises(StoreError, match="unprocessed") as err:
        DynamoRegistry(Throttling(times=100), "reg").get_many(["a", "b"])
    assert err.value.retryable and len(slept) == 7 and slept == sorted(slept)  # backing off between attempts

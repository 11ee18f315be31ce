"""``iotpm simulate --gateway``: the devices' readings of an instant go in gateway messages of at most
MAX_PACKED readings each (AWS IoT Core refuses a payload over 128 KB; the processor a record of more
than 1,000 readings), every reading once, each message's acknowledgement told for its own devices."""

from __future__ import annotations

import json
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import pytest

from iotpm.local import run
from iotpm.simulator.fleet import Fleet
from iotpm.simulator.publish import MAX_PACKED, Counts, packed_messages

IOT_CORE_MAX_PAYLOAD = 128 * 1024


def test_packed_messages_keep_every_reading_in_order_at_most_max_packed_each() -> None:
    items = list(range(1001))
    parts = packed_messages(items)
    assert [len(p) for p in parts] == [400, 400, 201] and [x for p in parts for x in p] == items
    assert packed_messages([]) == [] and packed_messages(items[:3], 2) == [[0, 1], [2]]


def test_a_gateway_of_1000_devices_publishes_messages_under_iot_cores_payload_limit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sent: list[bytes] = []
    acked: list[str] = []

    def publish_packed(
        c: object, topic: str, readings: list[dict[str, Any]], counts: Counts, on_ack: Callable[[], Any] | None
    ) -> None:
        sent.append(json.dumps({"readings": readings}, separators=(",", ":")).encode())
        counts.sent += len(readings)
        counts.done(None, len(readings))
        assert on_ack is not None
        on_ack()

    monkeypatch.setattr(run, "client", lambda *a, **k: object())
    monkeypatch.setattr(run, "connect_all", lambda clients: None)
    monkeypatch.setattr(run, "stop_all", lambda clients: None)
    monkeypatch.setattr(run, "publish_packed", publish_packed)
    broker: Any = SimpleNamespace(host="localhost", port=1, ca=None, topic_prefix="iotpm", topic=lambda t: f"t/{t}")
    identity: Any = lambda thing: SimpleNamespace(cert=None, key=None)  # noqa: E731
    fleet = Fleet(1000, seed=7)
    out = run.simulate(fleet, identity, broker, 1.0, 1.0, lambda *a: None, lambda d, t: acked.append(d), gateway="gw-1")
    readings = [r for body in sent for r in json.loads(body)["readings"]]
    assert out.sent == out.acked == len(readings) > MAX_PACKED * 2
    assert len(sent) == -(-len(readings) // MAX_PACKED)
    assert all(len(json.loads(body)["readings"]) <= MAX_PACKED for body in sent)
    assert max(map(len, sent)) < IOT_CORE_MAX_PAYLOAD
    assert sorted(acked) == sorted(r["device_id"] for r in readings)
    assert len(set(acked)) == len(acked)  # each device's reading acknowledged once, by its own message


def test_several_gateways_each_publish_their_own_devices_readings_on_their_own_topic(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sent: list[tuple[str, list[str]]] = []

    def publish_packed(
        c: object, topic: str, readings: list[dict[str, Any]], counts: Counts, on_ack: Callable[[], Any] | None
    ) -> None:
        sent.append((topic, [r["device_id"] for r in readings]))
        counts.sent += len(readings)
        counts.done(None, len(readings))

    connected: list[str] = []
    monkeypatch.setattr(run, "client", lambda endpoint, name, *a, **k: connected.append(name) or object())
    monkeypatch.setattr(run, "connect_all", lambda clients: None)
    monkeypatch.setattr(run, "stop_all", lambda clients: None)
    monkeypatch.setattr(run, "publish_packed", publish_packed)
    broker: Any = SimpleNamespace(host="localhost", port=1, ca=None, topic_prefix="iotpm", topic=lambda t: f"t/{t}")
    identity: Any = lambda thing: SimpleNamespace(cert=None, key=None)  # noqa: E731
    fleet = Fleet(10, seed=7)
    out = run.simulate(fleet, identity, broker, 2.0, 1.0, lambda *a: None, gateway=["gw-a", "gw-b", "gw-c"])
    assert connected == ["gw-a", "gw-b", "gw-c"]  # the gateways connect, no device does
    assert [t for t, _ in sent] == ["t/gw-a", "t/gw-b", "t/gw-c"] * 2  # a message per gateway per instant
    for topic, devices in sent:
        gw = ["t/gw-a", "t/gw-b", "t/gw-c"].index(topic)
        assert devices == fleet.ids[gw::3]  # device i behind gateway i % 3, in the fleet's order
    assert out.acked == out.sent == 20

"""The local broker's hygiene: IoT Core's message size limit, and no server key left behind."""

from __future__ import annotations

import json
import os
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from awscrt import mqtt5

from iotpm.emulator.control import free_port
from iotpm.local import broker
from iotpm.local.bridge import RECEIVE_MAXIMUM, Bridge
from iotpm.local.certs import LocalCA
from iotpm.local.processes import Processes
from iotpm.simulator.publish import Endpoint, client, connect_all, stop_all


@pytest.fixture
def started(tmp_path: Path) -> Iterator[tuple[broker.Broker, LocalCA, Processes]]:
    ca, procs = LocalCA(tmp_path / "pki"), Processes(tmp_path / "run")
    b = broker.start(procs, tmp_path, ca, free_port(), "iotpm", broker.telemetry_rule("iotpm-local"))
    yield b, ca, procs
    procs.stop("broker")
    broker.remove_files(tmp_path)


class RecordingKinesis:
    """What the rule bridge puts, kept in memory."""

    def __init__(self) -> None:
        self.payloads: list[int] = []
        self.records: list[tuple[str, bytes]] = []

    def put_records(self, StreamName: str, Records: list[dict[str, Any]]) -> dict[str, Any]:  # noqa: N803 - boto3's
        self.payloads += [len(r["Data"]) for r in Records]
        self.records += [(r["PartitionKey"], r["Data"]) for r in Records]
        return {"FailedRecordCount": 0, "Records": [{"SequenceNumber": "1"} for _ in Records]}


def test_a_payload_over_iot_cores_128_kb_never_reaches_the_rule_and_one_at_the_limit_does(
    started: tuple[broker.Broker, LocalCA, Processes],
) -> None:
    b, ca, _ = started
    kinesis = RecordingKinesis()
    rule = Bridge(kinesis, "s", b, ca.issue(broker.BRIDGE_CLIENT)).start()
    ident = ca.issue("pump-0000")
    device = client(Endpoint(b.host, b.port, b.ca), "pump-0000", ident.cert, ident.key)
    connect_all([device])
    outcomes = []
    try:
        time.sleep(0.5)  # the rule's subscription
        for size in (broker.MAX_PAYLOAD_BYTES, broker.MAX_PAYLOAD_BYTES + 1, 4 * broker.MAX_PAYLOAD_BYTES):
            packet = mqtt5.PublishPacket(topic=b.topic("pump-0000"), payload=b"x" * size, qos=mqtt5.QoS.AT_LEAST_ONCE)
            try:
                device.publish(packet).result(10)
                outcomes.append("sent")
            except Exception as exc:  # the client refuses a packet over the broker's maximum
                outcomes.append(type(exc).__name__)
        deadline = time.monotonic() + 5
        while not kinesis.payloads and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.5)  # anything else the broker would forward
    finally:
        stop_all([device])
        rule.stop()
    # the rule adds the thing name to the payload (it is not JSON here: passed unchanged)
    assert kinesis.payloads == [broker.MAX_PAYLOAD_BYTES]
    assert outcomes[-1] != "sent"  # far over the limit: refused at the device, as IoT Core would


def test_the_rule_bridge_reads_basic_ingest_topics_and_keys_a_gateways_message_by_the_gateway(
    started: tuple[broker.Broker, LocalCA, Processes],
) -> None:
    """MQTT's ``+``/``#`` never match a topic starting with ``$``: the bridge subscribes to the
    rule's Basic Ingest filter by name, and the rule sees the topic without its prefix."""
    b, ca, _ = started
    assert b.topic_filter == "$aws/rules/iotpm_local_telemetry/iotpm/+/telemetry"
    kinesis = RecordingKinesis()
    rule = Bridge(kinesis, "s", b, ca.issue(broker.BRIDGE_CLIENT)).start()
    ident, gw = ca.issue("pump-0000"), ca.issue("gw-1")
    device = client(Endpoint(b.host, b.port, b.ca), "pump-0000", ident.cert, ident.key)
    gateway = client(Endpoint(b.host, b.port, b.ca), "gw-1", gw.cert, gw.key)
    connect_all([device, gateway])
    packed = [{"device_id": f"pump-{i:04d}", "seq": 1, "metrics": {}} for i in (1, 2)]
    try:
        time.sleep(0.5)  # the rule's subscription
        qos = mqtt5.QoS.AT_LEAST_ONCE
        device.publish(mqtt5.PublishPacket(topic=b.topic("pump-0000"), payload=b'{"seq":1}', qos=qos)).result(10)
        gateway.publish(mqtt5.PublishPacket(topic=b.topic("gw-1"), payload=json.dumps(packed), qos=qos)).result(10)
        deadline = time.monotonic() + 5
        while len(kinesis.records) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        stop_all([device, gateway])
        rule.stop()
    by_key = dict(kinesis.records)
    assert sorted(by_key) == ["gw-1", "pump-0000"]
    assert json.loads(by_key["pump-0000"]) == {"seq": 1, "thing_name": "pump-0000"}
    assert json.loads(by_key["gw-1"]) == packed  # an array goes through unchanged, keyed by the gateway


class HeldKinesis(RecordingKinesis):
    """Accepts nothing until released: a bridge whose PutRecords waits falls behind the broker."""

    def __init__(self) -> None:
        super().__init__()
        self.release = threading.Event()

    def put_records(self, StreamName: str, Records: list[dict[str, Any]]) -> dict[str, Any]:  # noqa: N803 - boto3's
        self.release.wait(60)
        return super().put_records(StreamName=StreamName, Records=Records)


def test_a_bridge_behind_a_backlog_acknowledges_only_what_it_put_then_puts_it_all_in_each_devices_order(
    started: tuple[broker.Broker, LocalCA, Processes],
) -> None:
    """At least once, as the rule engine: the broker holds what the bridge has not put (it sends at most
    the bridge's receive maximum unacknowledged), and a backlog of several times that drains whole, every
    device's messages in the order it published them, each once."""
    b, ca, _ = started
    kinesis = HeldKinesis()
    rule = Bridge(kinesis, "s", b, ca.issue(broker.BRIDGE_CLIENT)).start()
    devices = [f"pump-{i:04d}" for i in range(5)]
    per_device = RECEIVE_MAXIMUM  # 5 x the receive maximum in all
    publishers = []
    for name in devices:
        ident = ca.issue(name)
        publishers.append(client(Endpoint(b.host, b.port, b.ca), name, ident.cert, ident.key, unthrottled=True))
    connect_all(publishers)
    try:
        time.sleep(0.5)  # the rule's subscription
        qos = mqtt5.QoS.AT_LEAST_ONCE
        acks = [
            c.publish(mqtt5.PublishPacket(topic=b.topic(d), payload=b'{"seq":%d}' % k, qos=qos))
            for k in range(per_device)
            for c, d in zip(publishers, devices, strict=True)
        ]
        for ack in acks:
            ack.result(30)
        time.sleep(1.0)  # whatever more the broker would send
        received_while_held = rule.received
        kinesis.release.set()
        deadline = time.monotonic() + 60
        while len(kinesis.records) < len(acks) and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.5)  # anything sent twice
    finally:
        kinesis.release.set()
        stop_all(publishers)
        rule.stop()
    assert 0 < received_while_held <= RECEIVE_MAXIMUM  # the rest stayed in the broker, unacknowledged
    by_device: dict[str, list[int]] = {d: [] for d in devices}
    for key, data in kinesis.records:
        record = json.loads(data)
        assert record["thing_name"] == key
        by_device[key].append(record["seq"])
    assert by_device == {d: list(range(per_device)) for d in devices}


@pytest.mark.skipif(os.geteuid() != 0, reason="only a broker started by root has files outside the twin's folder")
def test_the_brokers_copy_of_its_key_is_private_and_removed_when_it_stops(
    started: tuple[broker.Broker, LocalCA, Processes], tmp_path: Path
) -> None:
    _, _, procs = started
    [runtime] = [Path(p) for p in (tmp_path / broker.RUNTIME_RECORD).read_text().split()]
    assert runtime.parent == Path(tempfile.gettempdir()) and runtime.name.startswith(broker.RUNTIME_PREFIX)
    assert runtime.stat().st_mode & 0o777 == 0o700
    assert (runtime / "server.key").stat().st_mode & 0o777 == 0o600
    assert runtime not in broker.stale_files(min_age_s=0)  # a running broker uses it
    procs.stop("broker")
    assert runtime in broker.stale_files(min_age_s=0)  # nothing uses it once the broker stopped
    assert broker.remove_files(tmp_path) == [runtime]
    assert not runtime.exists() and not (tmp_path / broker.RUNTIME_RECORD).exists()

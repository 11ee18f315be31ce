"""`iotpm simulate` against mosquitto with mutual TLS: every publish acknowledged, ACL enforced.

Devices publish through IoT Basic Ingest (``$aws/rules/<rule>/iotpm/<thing>/telemetry``), as the
iot module's policy allows; a gateway publishes its devices' readings packed on its own topic."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from iotpm.emulator.control import free_port
from iotpm.local import broker
from iotpm.local.certs import LocalCA
from iotpm.local.processes import Processes
from iotpm.simulator.fleet import Fleet
from iotpm.simulator.publish import Counts, Endpoint, client, connect_all, publish, stop_all

RULE = broker.telemetry_rule("iotpm-local")


@pytest.fixture
def local_broker(tmp_path: Path) -> Iterator[tuple[broker.Broker, LocalCA]]:
    ca, procs = LocalCA(tmp_path / "pki"), Processes(tmp_path / "run")
    b = broker.start(procs, tmp_path, ca, free_port(), "iotpm", RULE)
    yield b, ca
    assert procs.stop("broker")
    broker.remove_files(tmp_path)  # the broker's copy of its key (in /tmp when run as root)


def test_simulate_publishes_every_reading_and_writes_the_truth(
    local_broker: tuple[broker.Broker, LocalCA], tmp_path: Path
) -> None:
    b, ca = local_broker
    for device in Fleet(3).ids:
        ca.issue(device)
    truth = tmp_path / "truth.json"
    cmd = [sys.executable, "-m", "iotpm", "simulate", "--endpoint", b.host, "--port", str(b.port),
           "--certs", str(ca.folder), "--ca", str(ca.cert_path), "--devices", "3", "--rate", "5",
           "--duration", "2", "--faults", "overheating", "--fault-at", "1", "--truth", str(truth),
           "--rule", RULE]  # fmt: skip
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "acknowledged 30, failed 0" in run.stdout
    [fault] = json.loads(truth.read_text())
    assert fault["kind"] == "overheating" and fault["metric"] == "temperature_c"


def test_a_device_cannot_publish_on_another_devices_topic(local_broker: tuple[broker.Broker, LocalCA]) -> None:
    b, ca = local_broker
    ident = ca.issue("pump-0000")
    c = client(Endpoint(b.host, b.port, b.ca), "pump-0000", ident.cert, ident.key)
    connect_all([c])
    counts = Counts()
    try:
        publish(c, b.topic("pump-0000"), {"n": 1}, counts)
        publish(c, b.topic("pump-0001"), {"n": 2}, counts)  # the IoT policy's rule, mirrored by the ACL
        publish(c, "iotpm/pump-0000/telemetry", {"n": 3}, counts)  # its own plain topic: billed messaging, refused
        publish(c, broker.telemetry_topic("iotpm", "pump-0000", "other_rule"), {"n": 4}, counts)  # another rule
        deadline = time.monotonic() + 10
        while counts.acked + counts.failed < 4 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        stop_all([c])
    assert b.topic("pump-0000") == f"$aws/rules/{RULE}/iotpm/pump-0000/telemetry"
    assert (counts.acked, counts.failed) == (1, 3)
    assert counts.errors == {"puback_135": 3}  # NOT_AUTHORIZED


def test_a_certificate_cannot_take_another_devices_client_id(local_broker: tuple[broker.Broker, LocalCA]) -> None:
    """The broker forces the client id to the certificate's name: a device connecting with
    another's client id does not knock that device off, and still speaks only for itself."""
    b, ca = local_broker
    victim_id, attacker_id = ca.issue("pump-0001"), ca.issue("pump-0002")
    victim = client(Endpoint(b.host, b.port, b.ca), "pump-0001", victim_id.cert, victim_id.key)
    connect_all([victim])
    attacker = client(Endpoint(b.host, b.port, b.ca), "pump-0001", attacker_id.cert, attacker_id.key)
    connect_all([attacker])
    counts = Counts()
    try:
        publish(victim, b.topic("pump-0001"), {"n": 1}, counts)  # still connected: acknowledged
        publish(attacker, b.topic("pump-0001"), {"n": 2}, counts)  # connected as pump-0002: refused
        deadline = time.monotonic() + 10
        while counts.acked + counts.failed < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        stop_all([victim, attacker])
    assert (counts.acked, counts.failed) == (1, 1) and counts.errors == {"puback_135": 1}


def test_the_broker_runs_unprivileged_and_its_key_is_private(
    local_broker: tuple[broker.Broker, LocalCA], tmp_path: Path
) -> None:
    conf = (tmp_path / "mosquitto.conf").read_text()
    assert "use_username_as_clientid true" in conf and "use_identity_as_username true" in conf
    assert "user root" not in conf
    key = Path(next(line.split(" ", 1)[1] for line in conf.splitlines() if line.startswith("keyfile ")))
    assert key.stat().st_mode & 0o777 == 0o600
    pid = Processes(tmp_path / "run").pid("broker")
    assert pid is not None
    status = Path(f"/proc/{pid}/status").read_text().splitlines()
    uid = int(next(line.split()[1] for line in status if line.startswith("Uid:")))
    assert uid != 0, "mosquitto runs as root"


def test_a_gateway_publishes_its_devices_readings_packed_on_its_own_topic(
    local_broker: tuple[broker.Broker, LocalCA], tmp_path: Path
) -> None:
    """`--gateway gw-1`: only the gateway's certificate is needed; each tick is one message
    carrying the three devices' readings, acknowledged for all three."""
    b, ca = local_broker
    gw = ca.issue("gw-1")
    certs = gw.cert.parent
    assert not any((certs / f"{d}.pem").exists() for d in Fleet(3).ids)  # the devices have no certificate
    cmd = [sys.executable, "-m", "iotpm", "simulate", "--endpoint", b.host, "--port", str(b.port),
           "--certs", str(certs), "--ca", str(ca.cert_path), "--devices", "3", "--rate", "5",
           "--duration", "2", "--faults", "overheating", "--fault-at", "1", "--truth", str(tmp_path / "t.json"),
           "--rule", RULE, "--gateway", "gw-1"]  # fmt: skip
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "sent 30, acknowledged 30, failed 0" in run.stdout

"""`iotpm simulate` against mosquitto with mutual TLS: every publish acknowledged, ACL enforced."""

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


@pytest.fixture
def local_broker(tmp_path: Path) -> Iterator[tuple[broker.Broker, LocalCA]]:
    ca, procs = LocalCA(tmp_path / "pki"), Processes(tmp_path / "run")
    b = broker.start(procs, tmp_path, ca, free_port(), "iotpm")
    yield b, ca
    assert procs.stop("broker")


def test_simulate_publishes_every_reading_and_writes_the_truth(
    local_broker: tuple[broker.Broker, LocalCA], tmp_path: Path
) -> None:
    b, ca = local_broker
    for device in Fleet(3).ids:
        ca.issue(device)
    truth = tmp_path / "truth.json"
    cmd = [sys.executable, "-m", "iotpm", "simulate", "--endpoint", b.host, "--port", str(b.port),
           "--certs", str(ca.folder), "--ca", str(ca.cert_path), "--devices", "3", "--rate", "5",
           "--duration", "2", "--faults", "overheating", "--fault-at", "1", "--truth", str(truth)]  # fmt: skip
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
        deadline = time.monotonic() + 10
        while counts.acked + counts.failed < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        stop_all([c])
    assert (counts.acked, counts.failed) == (1, 1)
    assert counts.errors == {"puback_135": 1}  # NOT_AUTHORIZED

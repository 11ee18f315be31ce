"""The local twin end to end, as a user runs it: `iotpm local up`, curl the API, `iotpm local down`.

20 devices publish 5 readings a second for 60 s over MQTT5 with mutual TLS; at 30 s
one overheats and one starts leaking pressure. Everything runs for real: moto server,
terraform apply of the local environment, mosquitto, the bridge, the poller calling
the processor handler, the API server.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from iotpm.emulator.control import free_port

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]
MAX_DELAY_S = 15.0  # from the fault's onset to its alarm (the faults ramp over 20 s)


def iotpm(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "iotpm", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )


def listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    if shutil.which("mosquitto") is None and not Path("/usr/sbin/mosquitto").exists():
        pytest.fail("mosquitto is not installed: scripts/test.sh installs it (apt-get install mosquitto)")
    home = tmp_path_factory.mktemp("twin")
    ports = {"emulator": free_port(), "broker": free_port(), "api": free_port()}
    env = {**os.environ, "IOTPM_HOME": str(home)}
    env.pop("AWS_ENDPOINT_URL", None)
    summary = home / "summary.json"
    up = iotpm(
        "local", "up", "--devices", "20", "--duration", "60", "--rate", "5", "--faults", "overheating,pressure_leak",
        "--fault-at", "30", "--restart-at", "45",
        "--emulator-port", str(ports["emulator"]), "--broker-port", str(ports["broker"]),
        "--api-port", str(ports["api"]), "--summary-json", str(summary), env=env,
    )  # fmt: skip
    try:
        assert up.returncode == 0, up.stdout[-3000:] + up.stderr[-3000:]
        yield {"summary": json.loads(summary.read_text()), "stdout": up.stdout, "ports": ports, "env": env}
    finally:
        down = iotpm("local", "down", env=env)
        assert down.returncode == 0, down.stderr
        assert not any(listening(p) for p in ports.values()), "local down left something listening"
        assert iotpm("local", "status", env=env).returncode == 1  # nothing runs


def test_no_reading_is_lost_across_a_restart_of_every_device(run: dict[str, Any]) -> None:
    """At 45 s every device restarts (its sequence numbers start from 1 again): the readings
    of both runs are all stored."""
    s = run["summary"]
    assert s["published"] == 20 * 60 * 5 and s["publish_failed"] == 0
    assert s["published"] == s["stored"] + s["quarantined"]
    assert s["lost"] == 0 and s["quarantined"] == 0


def test_both_faults_detected_promptly_and_no_false_alarm(run: dict[str, Any]) -> None:
    s = run["summary"]
    assert {f["fault"] for f in s["faults"]} == {"overheating", "pressure_leak"}
    for f in s["faults"]:
        assert f["detected"], f
        assert 0 <= f["delay_s"] <= MAX_DELAY_S, f
    # each alarm says why, naming the faulty metric (a multivariate alarm names the
    # metric with the largest share of the joint deviation)
    named = {f["fault"]: {r["metric"] for r in f["reasons"]} for f in s["faults"]}
    assert "temperature_c" in named["overheating"] and "pressure_psi" in named["pressure_leak"], named
    assert s["false_alarms"] == 0, s["false_alarm_devices"]


def test_faults_are_retrievable_over_http_with_the_key(run: dict[str, Any]) -> None:
    s = run["summary"]
    api, key = s["api_url"], s["api_key"]
    assert f"curl -s -H 'x-api-key: {key}'" in run["stdout"]
    for f in s["faults"]:
        req = urllib.request.Request(f"{api}/devices/{f['device_id']}/anomalies", headers={"x-api-key": key})
        with urllib.request.urlopen(req, timeout=10) as resp:
            kinds = [a["kind"] for a in json.loads(resp.read())["items"]]
        assert "raise" in kinds
    with pytest.raises(urllib.error.HTTPError) as denied:
        urllib.request.urlopen(f"{api}/anomalies", timeout=10)
    assert denied.value.code == 403


def test_both_runs_of_a_restarted_device_are_visible_in_the_api(run: dict[str, Any]) -> None:
    s = run["summary"]
    api, key = s["api_url"], s["api_key"]
    req = urllib.request.Request(f"{api}/devices?limit=3", headers={"x-api-key": key})
    with urllib.request.urlopen(req, timeout=10) as resp:
        devices = [d["device_id"] for d in json.loads(resp.read())["items"]]
    for device in devices:
        url = f"{api}/devices/{device}/readings?limit=2000"
        with urllib.request.urlopen(urllib.request.Request(url, headers={"x-api-key": key}), timeout=10) as resp:
            seqs = [r["seq"] for r in json.loads(resp.read())["items"]]
        # 45 s at 5 a second before the restart, 15 s after it, numbered from 1 each time
        assert sorted(seqs) == sorted([*range(1, 226), *range(1, 76)]), device

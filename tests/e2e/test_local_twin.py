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
# from the fault's onset to its alarm: within the fault's 20 s ramp (a leak's pressure reaches its
# 30 psi limit 16 s in; a drop within the limits is no longer scored as a spike, since a setpoint
# step is one too). The product's bound for abrupt faults is 60 s (benchmarks/fleet_quality.py).
MAX_DELAY_S = 20.0


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


# -- the analytics layer on the same twin run: SQL, report, dashboard --------------------


def _faulty(run: dict[str, Any]) -> set[str]:
    return {f["device_id"] for f in run["summary"]["faults"]}


def test_query_counts_every_published_reading_once(run: dict[str, Any]) -> None:
    from datetime import UTC, datetime, timedelta

    today = datetime.now(UTC).date()
    days = ["--from", (today - timedelta(days=1)).isoformat(), "--to", today.isoformat()]
    out = iotpm("query", "limit_breaches_per_line_per_day", *days, "--json", env=run["env"])
    assert out.returncode == 0, out.stderr
    rows = [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]
    s = run["summary"]
    # the raw archive holds every record as received, de-duplicated on (shard, sequence)
    assert sum(r["readings"] for r in rows) == s["published"]
    assert sum(r["devices"] for r in rows) == s["devices"]
    print(f"iotpm query over the twin's archive: {out.stderr.strip().splitlines()[-1]}")


def test_report_names_the_injected_faults_and_no_healthy_device(run: dict[str, Any], tmp_path: Path) -> None:
    out = iotpm("report", "--out", str(tmp_path), "--hours", "2", env=run["env"])
    assert out.returncode == 0, out.stderr
    body = json.loads((tmp_path / "report.json").read_text())
    faulty = _faulty(run)
    assert {a["device_id"] for a in body["open_alarms"]} | {a["device_id"] for a in body["alarms_raised"]} == faulty
    named = {row["device_id"] for key in ("open_alarms", "alarms_raised", "heading_for_limit") for row in body[key]}
    named |= {row["device_id"] for row in body["data_quality"]["silent_devices"]}
    assert named == faulty, named - faulty
    assert body["devices"] == run["summary"]["devices"]
    page = (tmp_path / "report.html").read_text()
    healthy = [f"{d}<" for d in _devices(run) if d not in faulty]
    assert all(f"{d}<" in page for d in faulty) and not any(h in page for h in healthy)
    _keep(tmp_path / "report.html", "report.html")


def _devices(run: dict[str, Any]) -> list[str]:
    req = urllib.request.Request(f"{run['summary']['api_url']}/devices?limit=500",
                                 headers={"x-api-key": run["summary"]["api_key"]})  # fmt: skip
    with urllib.request.urlopen(req, timeout=10) as resp:
        return [d["device_id"] for d in json.loads(resp.read())["items"]]


def _keep(path: Path, name: str) -> None:
    """Copy an artefact to $IOTPM_ARTIFACTS (CI keeps them; the README's screenshots come from here)."""
    target = os.environ.get("IOTPM_ARTIFACTS")
    if target:
        Path(target).mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, Path(target) / name)


def test_dashboard_shows_the_fleet_and_the_faulty_devices_alarm(run: dict[str, Any], tmp_path: Path) -> None:
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    browser, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if browser is None or driver is None:
        pytest.fail(
            "chromium/chromedriver missing: scripts/test.sh installs them (apt-get install chromium chromium-driver)"
        )
    opts = Options()
    opts.binary_location = browser
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,1000"):
        opts.add_argument(arg)
    s = run["summary"]
    faulty = _faulty(run)
    chrome = webdriver.Chrome(service=Service(driver), options=opts)
    try:
        wait = WebDriverWait(chrome, 20)
        chrome.get(f"{s['api_url']}/dashboard")
        wait.until(lambda d: d.find_elements(By.ID, "api-key"))  # asks for the key once
        chrome.find_element(By.ID, "api-key").send_keys(s["api_key"])
        chrome.find_element(By.ID, "save-key").click()
        wait.until(lambda d: d.find_elements(By.ID, "devices"))
        rows = chrome.find_elements(By.CSS_SELECTOR, "#devices tr[data-device]")
        assert {r.get_attribute("data-device") for r in rows} == set(_devices(run))
        alarmed = {r.get_attribute("data-device") for r in rows if "alarm" in (r.get_attribute("class") or "")}
        assert alarmed == faulty
        fleet_ms = int(chrome.execute_script("return document.body.dataset.loadedMs"))
        chrome.save_screenshot(str(tmp_path / "dashboard-fleet.png"))
        hot = next(f for f in s["faults"] if f["fault"] == "overheating")["device_id"]
        chrome.get(f"{s['api_url']}/dashboard#/device/{hot}")
        chrome.refresh()  # the key is remembered: no form this time
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, ".chart"))
        assert "temperature_c" in chrome.find_element(By.ID, "open-alarm").text
        marks = chrome.find_elements(By.CSS_SELECTOR, '.chart[data-metric="temperature_c"] .alarm-mark')
        assert marks, "the alarm is drawn on the metric that caused it"
        device_ms = int(chrome.execute_script("return document.body.dataset.loadedMs"))
        chrome.save_screenshot(str(tmp_path / "dashboard-device.png"))
        print(f"dashboard load: fleet {fleet_ms} ms, device page {device_ms} ms")
    finally:
        chrome.quit()
    for name in ("dashboard-fleet.png", "dashboard-device.png"):
        _keep(tmp_path / name, name)


def test_alarms_reach_their_lines_routes_and_no_other_line(run: dict[str, Any]) -> None:
    """SNS filter policies on the machine-alarm topic deliver to the twin's webhook receiver.

    Each line has a route for every alarm and one for critical alarms only
    (terraform/environments/local/terraform.tfvars). The run's raises must reach
    their own line's route (and its critical route when critical), and no other
    line's; a warning never reaches a critical route.
    """
    s = run["summary"]
    with urllib.request.urlopen(f"{s['webhook_url']}/hooks", timeout=10) as resp:
        deliveries = json.loads(resp.read())["items"]
    for f in s["faults"]:
        req = urllib.request.Request(f"{s['api_url']}/devices/{f['device_id']}/anomalies",
                                     headers={"x-api-key": s["api_key"]})  # fmt: skip
        with urllib.request.urlopen(req, timeout=10) as resp:
            raises = [a for a in json.loads(resp.read())["items"] if a["kind"] == "raise"]
        assert raises, f
        line, severities = raises[0]["line"], {a["severity"] for a in raises}
        # the alert's body carries its attributes too (moto's HTTP notifications leave MessageAttributes out)
        own = [d["message"] | {"route": d["route"]} for d in deliveries
               if isinstance(d["message"], dict) and d["message"].get("device_id") == f["device_id"]]  # fmt: skip
        routes = {d["route"] for d in own if d["event"] == "alarm_raised"}
        expected = {line} | ({f"{line}-critical"} if "critical" in severities else set())
        assert routes == expected, (f["device_id"], severities, routes)
        assert own and all(d["line"] == line for d in own)
        assert all(d["severity"] == "critical" for d in own if d["route"].endswith("-critical"))


def test_a_critical_alert_reaches_its_lines_critical_route_only(run: dict[str, Any]) -> None:
    """The twin's ramp faults raise as warnings at first detection, so a critical raise for
    a faulty machine is published as the processor would (its attributes, the SNS
    adapter, the Terraform-made topic and subscriptions), then looked for at every route."""
    import time

    import boto3

    from iotpm.adapters.sns import SnsAlerts
    from iotpm.service.ports import Alert

    s = run["summary"]
    twin = json.loads((Path(run["env"]["IOTPM_HOME"]) / "local" / "twin.json").read_text())
    topic = twin["outputs"]["processor_environment"]["IOTPM_ALERTS_TOPIC_ARN"]
    region = twin["outputs"].get("region", "eu-west-1")
    sns = boto3.client("sns", endpoint_url=f"http://127.0.0.1:{twin['emulator_port']}", region_name=region,
                       aws_access_key_id="test", aws_secret_access_key="test")  # fmt: skip
    device = _devices_detail(run, s["faults"][0]["device_id"])
    attributes = {"severity": "critical", "site": device["site"], "line": device["line"],
                  "device_id": device["device_id"], "event": "alarm_raised"}  # fmt: skip
    marker = f"e2e-{time.time_ns()}"
    body = {"marker": marker, **attributes}
    SnsAlerts(sns, topic).publish(Alert(f"[CRITICAL] {device['device_id']} alarm raised", body, attributes, marker))
    with urllib.request.urlopen(f"{s['webhook_url']}/hooks", timeout=10) as resp:
        got = {
            d["route"]
            for d in json.loads(resp.read())["items"]
            if isinstance(d["message"], dict) and d["message"].get("marker") == marker
        }
    assert got == {device["line"], f"{device['line']}-critical"}, got


def test_the_overheating_pump_escalates_to_critical_and_its_critical_route_hears_it(run: dict[str, Any]) -> None:
    """The demo's overheating machine is raised as a warning (a spike) and escalated to critical
    when it crosses 80 °C; the escalation reaches its line's route for critical alarms."""
    s = run["summary"]
    fault = next(f for f in s["faults"] if f["fault"] == "overheating")
    req = urllib.request.Request(f"{s['api_url']}/devices/{fault['device_id']}/anomalies",
                                 headers={"x-api-key": s["api_key"]})  # fmt: skip
    with urllib.request.urlopen(req, timeout=10) as resp:
        anomalies = json.loads(resp.read())["items"]
    paged = [a for a in anomalies if a["kind"] in ("raise", "escalate") and a["severity"] == "critical"]
    assert paged, anomalies
    line = paged[0]["line"]
    with urllib.request.urlopen(f"{s['webhook_url']}/hooks", timeout=10) as resp:
        deliveries = json.loads(resp.read())["items"]
    heard = {d["message"]["event"] for d in deliveries if d["route"] == f"{line}-critical"
             and isinstance(d["message"], dict) and d["message"].get("device_id") == fault["device_id"]}  # fmt: skip
    assert "escalate" in {a["kind"] for a in paged}, anomalies  # warning first, critical at the limit
    assert "alarm_escalated" in heard, (heard, paged)


def _devices_detail(run: dict[str, Any], device_id: str) -> dict[str, Any]:
    s = run["summary"]
    req = urllib.request.Request(f"{s['api_url']}/devices/{device_id}", headers={"x-api-key": s["api_key"]})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return dict(json.loads(resp.read()))


# -- the newcomer's path: the twin comes up again from what a run left (keep this test last) ----


def test_the_twin_comes_up_again_after_its_emulator_died_and_local_down(run: dict[str, Any]) -> None:
    """The emulator keeps its resources in memory: once it is gone (a crash, a reboot, `local down`),
    `local status` names the Terraform state as stale, `local down` removes it and the broker's
    files, and `local up` in the same workspace applies afresh and scores a full (short) run."""
    import signal
    import time

    from iotpm.emulator import pidfile

    env, ports = run["env"], run["ports"]
    home = Path(env["IOTPM_HOME"])
    record = home / "local" / "broker-files"
    runtime = [Path(p) for p in record.read_text().split()] if record.exists() else []
    emulator = pidfile.read(home / f"emulator-{ports['emulator']}.pid")
    assert emulator is not None and pidfile.running(emulator)
    os.killpg(emulator.pid, signal.SIGKILL)  # as a crash would leave it: services up, the emulator gone
    deadline = time.monotonic() + 10
    while pidfile.running(emulator) and time.monotonic() < deadline:
        time.sleep(0.1)

    status = iotpm("local", "status", env=env)
    assert "stale state: Terraform state: its emulator" in status.stderr, status.stderr
    down = iotpm("local", "down", env=env)
    assert down.returncode == 0, down.stderr
    assert "removed the Terraform state" in down.stdout and "emulator" not in down.stdout.split("\n")[0]
    assert not any(p.exists() for p in runtime), "the broker's copy of its key was left behind"
    after = iotpm("local", "status", env=env)
    assert after.returncode == 1 and "stale" not in after.stderr, after.stderr

    summary = home / "summary-again.json"
    up = iotpm(
        "local", "up", "--devices", "4", "--duration", "12", "--rate", "5", "--faults", "overheating",
        "--fault-at", "6", "--emulator-port", str(ports["emulator"]), "--broker-port", str(ports["broker"]),
        "--api-port", str(ports["api"]), "--summary-json", str(summary), env=env,
    )  # fmt: skip
    assert up.returncode == 0, up.stdout[-3000:] + up.stderr[-3000:]
    s = json.loads(summary.read_text())
    assert s["published"] == 4 * 12 * 5 and s["publish_failed"] == 0
    logs = "".join(p.read_text()[-1500:] for p in sorted((home / "local" / "run").glob("*.log")))
    # only this run's readings (a fresh emulator); on failure: what up said and the services' logs
    assert s["stored"] == s["published"] and s["quarantined"] == 0 and s["lost"] == 0, up.stderr[-2000:] + logs
    assert f"curl -s -H 'x-api-key: {s['api_key']}'" in up.stdout and "local down" in up.stdout

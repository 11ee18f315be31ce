"""The dashboard page: served by the API handler at /dashboard without the key (every data route keeps it),
with a Content-Security-Policy; in a real browser it talks to its own origin only and shows API data as text.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
import os
import re
import shutil
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from iotpm.api.app import build_app
from iotpm.api.memory import MemoryQueries
from iotpm.api.server import ApiServer
from iotpm.emulator.control import free_port
from iotpm.handlers.api import ApiHandler
from iotpm.service import memory as m
from iotpm.service.ports import AnomalyRow, DeviceRecord, ReadingRow

T0 = 1_790_000_000_000
NOW = T0 + 900_000
KEY = "the-key"
#: markup that sets a window flag if a browser ever parses it as HTML
MARKUP = '<img src=x onerror="window.__pwned=1">'
DIRECTIVES = ("connect-src 'self'", "frame-ancestors 'none'", "default-src 'none'", "base-uri 'none'")


def _policy(headers: Any) -> dict[str, str]:
    csp = headers["Content-Security-Policy"]
    return {d.split(" ", 1)[0]: d for d in (part.strip() for part in csp.split(";"))}


def test_the_page_needs_no_key_and_the_data_does() -> None:
    app = build_app(MemoryQueries())
    server = ApiServer(lambda e, c: app.resolve(dict(e), c), KEY).start()
    try:
        with urllib.request.urlopen(f"{server.url}/dashboard", timeout=5) as resp:
            page = resp.read().decode()
            assert resp.headers["Content-Type"].startswith("text/html")
        assert "iotpm machine health" in page and '"api-key"' in page and "x-api-key" in page
        for path in ("/devices", "/dashboard/../devices", "/dashboardx"):
            with pytest.raises(urllib.error.HTTPError) as denied:
                urllib.request.urlopen(f"{server.url}{path}", timeout=5)
            assert denied.value.code == 403, path
    finally:
        server.stop()


def test_the_page_carries_its_content_security_policy_from_the_lambda_and_the_local_server() -> None:
    handler = ApiHandler(MemoryQueries)
    server = ApiServer(handler, KEY).start()
    try:
        with urllib.request.urlopen(f"{server.url}/dashboard", timeout=5) as resp:
            page, local = resp.read(), resp.headers
    finally:
        server.stop()
    from iotpm.api.server import proxy_event

    lambda_out = handler(proxy_event("GET", "/dashboard", {}, "127.0.0.1"))
    from_lambda = {k: ", ".join(v) for k, v in lambda_out["multiValueHeaders"].items()}
    for headers in (local, from_lambda):
        policy = _policy(headers)
        assert all(policy[d.split(" ", 1)[0]] == d for d in DIRECTIVES), policy
        assert "unsafe-inline" not in headers["Content-Security-Policy"]
        assert headers["X-Frame-Options"] == "DENY" and headers["X-Content-Type-Options"] == "nosniff"
        # the one inline script is allowed by its hash, so the page runs and nothing injected does
        (script,) = re.findall(rb"<script>(.*?)</script>", page, re.S)
        digest = base64.b64encode(hashlib.sha256(script).digest()).decode()
        assert policy["script-src"] == f"script-src 'sha256-{digest}'"
    assert b"innerHTML" not in page and b"location.search" not in page and b"location.origin" not in page


# --- in a real browser -------------------------------------------------------------------------


def _reading(device_id: str, i: int, temperature: float, anomaly: bool) -> ReadingRow:
    ts = T0 + i * 5_000
    metrics = {"temperature_c": temperature, "vibration_mm_s": 2.0 + 0.1 * (i % 7), "pressure_psi": 90.0 + i % 5}
    return ReadingRow(device_id, ts, f"{ts:013d}#{i:08d}", i, "plant-1", "line-1", "pump", metrics, 0.5, anomaly, 0)


def _hostile_fleet() -> MemoryQueries:
    """Five pumps on line-1, dev-0002 in alarm since its reading 80; markup in what the API shows of them."""
    states, readings, anomalies = m.MemoryStates(), m.MemoryReadings(), m.MemoryAnomalies()
    last = T0 + 119 * 5_000
    for n in range(5):
        device_id, hot = f"dev-{n:04d}", n == 2
        rows = [
            _reading(device_id, i, 60.0 + (i - 80) * 0.5 if hot and i >= 80 else 60.0 + n, hot and i >= 80)
            for i in range(120)
        ]
        readings.put_many(rows)
        trend: dict[str, dict[str, float | None]] = {}
        if hot:  # heading for its limit in half an hour
            trend["temperature_c"] = {"level": 70.0, "slope_per_hour": 20.0, "limit": 80.0, "hours_to_limit": 0.5}
        states.items[device_id] = DeviceRecord(
            device_id, "plant-1", "line-1", MARKUP if hot else "pump", latest=dict(rows[-1].metrics),
            health=30.0 if hot else 95.0, alarm_open=hot, alarm_since_ms=rows[80].ts_ms if hot else None,
            trend=trend, readings=120, last_ts_ms=last,
        )  # fmt: skip
    reasons = (
        {"detector": "threshold", "metric": "temperature_c", "observed": 80.5, "expected": 80.0},
        {"detector": MARKUP, "metric": "temperature_c", "observed": 80.5, "expected": 62.0},
    )
    anomalies.record(
        AnomalyRow("dev-0002", T0 + 80 * 5_000, "raise", "warning", 9.0, "plant-1", "line-1", "pump", reasons, 0)
    )
    odd = dataclasses.replace(states.items["dev-0001"], device_id=f"x{MARKUP}", site=MARKUP, latest={MARKUP: 1.0})
    states.items[odd.device_id] = odd
    return MemoryQueries(states, readings, anomalies)


class _Elsewhere:
    """Another origin on this machine that would answer the page (CORS open) and records every request."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        seen = self.requests

        class Request(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                seen.append((self.command, self.path, dict(self.headers.items())))
                body = json.dumps({"items": [], "next_token": None}).encode()
                self.send_response(200)
                self.send_header("Access-Control-Allow-Origin", "*")
                self.send_header("Access-Control-Allow-Headers", "x-api-key")
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_OPTIONS = do_POST = _answer  # noqa: N815 - the names http.server dispatches to

            def log_message(self, format: str, *args: Any) -> None:
                return

        self.httpd = ThreadingHTTPServer(("127.0.0.1", free_port()), Request)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def chrome() -> Iterator[Any]:
    browser, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if browser is None or driver is None:
        why = "chromium/chromedriver missing: scripts/test.sh installs them (apt-get install chromium chromium-driver)"
        if os.environ.get("CI"):
            pytest.fail(why)
        pytest.skip(why)
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    opts = Options()
    opts.binary_location = browser
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,900"):
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver_ = webdriver.Chrome(service=Service(driver), options=opts)
    try:
        yield driver_
    finally:
        driver_.quit()


def _keep(path: Path) -> None:
    """Copy a screenshot to $IOTPM_ARTIFACTS (CI keeps them)."""
    target = os.environ.get("IOTPM_ARTIFACTS")
    if target:
        Path(target).mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, Path(target) / path.name)


def test_an_api_link_to_elsewhere_gets_nothing_and_markup_in_the_data_stays_text(chrome: Any, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    app = build_app(_hostile_fleet(), now_ms=lambda: NOW)
    api = ApiServer(lambda e, c: app.resolve(dict(e), c), KEY).start()
    elsewhere = _Elsewhere()
    try:
        wait = WebDriverWait(chrome, 20)
        chrome.get(f"{api.url}/dashboard")
        wait.until(lambda d: d.find_elements(By.ID, "api-key"))
        # an API URL an earlier version of the page saved is not used either
        chrome.execute_script("localStorage.setItem('iotpm.api', arguments[0])", elsewhere.url)
        chrome.get(f"{api.url}/dashboard?api={elsewhere.url}")
        wait.until(lambda d: d.find_elements(By.ID, "api-key"))
        chrome.find_element(By.ID, "api-key").send_keys(KEY)
        chrome.find_element(By.ID, "save-key").click()
        wait.until(lambda d: d.find_elements(By.ID, "devices"))
        rows = {r.get_attribute("data-device"): r for r in chrome.find_elements(By.CSS_SELECTOR, "#devices tr")[1:]}
        assert set(rows) == {f"dev-{i:04d}" for i in range(5)} | {f"x{MARKUP}"}
        odd = rows[f"x{MARKUP}"].find_elements(By.TAG_NAME, "td")
        assert odd[0].text == f"x{MARKUP}" and odd[1].text == f"{MARKUP} / line-1" and odd[6].text.startswith(MARKUP)
        assert "alarm" in (rows["dev-0002"].get_attribute("class") or "")
        chrome.save_screenshot(str(tmp_path / "dashboard-hostile-fleet.png"))

        chrome.get(f"{api.url}/dashboard?api={elsewhere.url}#/device/dev-0002")
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, ".chart"))
        assert MARKUP in chrome.find_element(By.TAG_NAME, "h2").text
        assert f"{MARKUP} on" in chrome.find_element(By.ID, "open-alarm").text
        assert chrome.find_elements(By.CSS_SELECTOR, ".chart .alarm-mark"), "the alarm is still drawn"
        chrome.save_screenshot(str(tmp_path / "dashboard-hostile-device.png"))

        assert chrome.execute_script("return window.__pwned") is None, "markup from the API ran"
        assert chrome.find_elements(By.CSS_SELECTOR, "#view img") == []
        assert chrome.execute_script("return localStorage.getItem('iotpm.api')") is None
        refused = [e["message"] for e in chrome.get_log("browser") if "Content Security Policy" in e["message"]]
        assert refused == [], refused  # the page runs whole under its own policy
        assert elsewhere.requests == [], elsewhere.requests  # not a request, so never the key
        chrome.get(f"{elsewhere.url}/control")  # the other origin does see what this browser sends it
        assert elsewhere.requests[0][1] == "/control"
    finally:
        elsewhere.stop()
        api.stop()
    for png in tmp_path.glob("*.png"):
        _keep(png)


def test_the_device_view_draws_the_limits_in_effect_from_the_api_and_the_alarms_state(
    chrome: Any, tmp_path: Path
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    from iotpm.operator.memory import MemoryAudit, MemoryDocuments, MemoryRegistry
    from iotpm.operator.service import Operator

    fleet = _hostile_fleet()
    operator = Operator(MemoryRegistry(), MemoryDocuments(), MemoryAudit(), fleet.device, lambda: NOW)
    operator.put_limits({"line": {"line-1": {"temperature": {"low": 5.0, "high": 61.5}}}}, 0, "alice")
    operator.acknowledge("dev-0002", "alice", "on my way")
    app = build_app(fleet, now_ms=lambda: NOW, operator=operator)
    api = ApiServer(lambda e, c: app.resolve(dict(e), c), KEY).start()
    try:
        wait = WebDriverWait(chrome, 20)
        chrome.get(f"{api.url}/dashboard")
        wait.until(lambda d: d.find_elements(By.ID, "api-key"))
        chrome.find_element(By.ID, "api-key").send_keys(KEY)
        chrome.find_element(By.ID, "save-key").click()
        wait.until(lambda d: d.find_elements(By.ID, "devices"))
        chrome.get(f"{api.url}/dashboard#/device/dev-0002")
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, ".chart[data-metric='temperature_c']"))
        temp = chrome.find_element(By.CSS_SELECTOR, ".chart[data-metric='temperature_c']")
        labels = {e.text for e in temp.find_elements(By.CSS_SELECTOR, ".limit-label")}
        # the limits in effect with their source; a bare one is the trend's (the detector's, from the API too)
        trend = fleet.device("dev-0002").trend["temperature_c"]["limit"]  # type: ignore[union-attr]
        assert labels - {f"limit {trend:g}"} == {"limit 61.5 (line:line-1)", "limit 5 (line:line-1)"}
        assert chrome.find_element(By.ID, "alarm-state").text == "acknowledged"
        chrome.save_screenshot(str(tmp_path / "dashboard-limits-in-effect.png"))
    finally:
        api.stop()
    for png in tmp_path.glob("*.png"):
        _keep(png)


def test_the_operators_buttons_write_with_the_operator_key_and_not_without(chrome: Any) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    from iotpm.api.server import LOCAL_OPERATOR
    from iotpm.operator.memory import MemoryAudit, MemoryDocuments, MemoryRegistry
    from iotpm.operator.service import Operator

    fleet = _hostile_fleet()
    audit = MemoryAudit()
    operator = Operator(MemoryRegistry(), MemoryDocuments(), audit, fleet.device, lambda: NOW)
    app = build_app(fleet, now_ms=lambda: NOW, operator=operator)
    api = ApiServer(lambda e, c: app.resolve(dict(e), c), KEY, operator_key="op-key").start()
    try:
        wait = WebDriverWait(chrome, 20)
        chrome.get(f"{api.url}/dashboard")
        wait.until(lambda d: d.find_elements(By.ID, "api-key"))
        chrome.find_element(By.ID, "api-key").send_keys(KEY)
        chrome.find_element(By.ID, "save-key").click()
        wait.until(lambda d: d.find_elements(By.ID, "devices"))
        chrome.get(f"{api.url}/dashboard#/device/dev-0002")
        wait.until(lambda d: d.find_elements(By.ID, "acknowledge"))
        assert chrome.find_element(By.ID, "alarm-state").text == "unacknowledged"
        chrome.find_element(By.ID, "acknowledge").click()  # no operator key: refused
        wait.until(lambda d: "refused" in d.find_element(By.ID, "action-status").text)
        assert audit.entries == []
        chrome.find_element(By.ID, "operator-key").send_keys("op-key")
        chrome.find_element(By.ID, "note").send_keys("on my way")
        chrome.find_element(By.ID, "acknowledge").click()
        wait.until(lambda d: d.find_element(By.ID, "alarm-state").text == "acknowledged")
        assert [(e.action, e.who, (e.after or {}).get("note")) for e in audit.entries] == [
            ("acknowledge", LOCAL_OPERATOR, "on my way")
        ]
    finally:
        api.stop()

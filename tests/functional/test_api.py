"""The analytics API's routes on API Gateway proxy events, over the in-memory read side.

The stores are filled by the real processor (5 devices, dev-0002 running hot from
reading 400), so the answers are what the deployed API would give for that data.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from aws_lambda_powertools.event_handler import APIGatewayRestResolver

from iotpm.api.app import build_app, openapi_json
from iotpm.api.memory import MemoryQueries
from iotpm.api.server import proxy_event
from iotpm.service.in_memory import MemoryPipeline
from iotpm.service.samples import batch

T0 = 1_790_000_000_000
NOW = T0 + 600_000
OPENAPI = Path(__file__).resolve().parents[2] / "src" / "iotpm" / "api" / "openapi.json"


@pytest.fixture(scope="module")
def app(memory_pipeline: Callable[..., MemoryPipeline]) -> APIGatewayRestResolver:
    s = memory_pipeline()
    p = s.processor()
    for i in range(10):
        out = p(batch(5, 60, start_ms=T0, first_seq=i * 60, faulty=[2], fault_from=400, seed=i), now_ms=NOW)
        assert not out.errors
    return build_app(MemoryQueries(s.states, s.readings, s.anomalies, s.rollups), now_ms=lambda: NOW)


def get(app: APIGatewayRestResolver, target: str) -> tuple[int, Any]:
    out = app.resolve(proxy_event("GET", target, {}, "127.0.0.1"), None)
    return out["statusCode"], json.loads(out["body"])


def test_health(app: APIGatewayRestResolver) -> None:
    status, body = get(app, "/health")
    assert status == 200 and body["status"] == "ok" and body["time"] == "2026-09-21T14:23:20Z"


def test_devices_page_through_every_device_once(app: APIGatewayRestResolver) -> None:
    seen, target = [], "/devices?limit=2"
    while True:
        status, body = get(app, target)
        assert status == 200
        seen += [d["device_id"] for d in body["items"]]
        if body["next_token"] is None:
            break
        target = f"/devices?limit=2&next_token={body['next_token']}"
    assert seen == [f"dev-{i:04d}" for i in range(5)]


def test_devices_filters(app: APIGatewayRestResolver) -> None:
    assert [d["device_id"] for d in get(app, "/devices?health_below=50")[1]["items"]] == ["dev-0002"]
    assert len(get(app, "/devices?line=line-1&site=plant-1")[1]["items"]) == 5
    assert get(app, "/devices?site=plant-9")[1]["items"] == []


def test_device_detail_says_why_and_since_when(app: APIGatewayRestResolver) -> None:
    status, body = get(app, "/devices/dev-0002")
    assert status == 200
    assert body["alarm_open"] is True and body["health"] <= 40
    alarm = body["open_alarm"]
    assert alarm["kind"] == "raise" and alarm["time"] == body["alarm_since"]
    assert {"detector", "metric", "observed", "expected"} <= set(alarm["reasons"][0])
    assert any(r["metric"] == "temperature_c" for r in alarm["reasons"])
    assert set(body["trend"]) == {"temperature_c", "vibration_mm_s", "pressure_psi"}
    healthy = get(app, "/devices/dev-0001")[1]
    assert healthy["alarm_open"] is False and healthy["open_alarm"] is None and healthy["health"] > 80


def test_readings_raw_rollup_and_metric_filter(app: APIGatewayRestResolver) -> None:
    _, raw = get(app, "/devices/dev-0002/readings?metric=temperature_c&limit=1000")
    assert len(raw["items"]) == 600 and all(set(p["metrics"]) == {"temperature_c"} for p in raw["items"])
    assert sum(p["anomaly"] for p in raw["items"]) > 0
    _, minute = get(app, "/devices/dev-0002/readings?resolution=1m")
    assert sum(p["metrics"]["temperature_c"]["count"] for p in minute["items"]) == 600
    assert max(p["metrics"]["temperature_c"]["max"] for p in minute["items"]) > 80
    _, hour = get(app, "/devices/dev-0002/readings?resolution=1h")
    assert sum(p["anomalies"] for p in hour["items"]) == sum(p["anomaly"] for p in raw["items"])


def test_anomalies_fleet_wide_and_per_device(app: APIGatewayRestResolver) -> None:
    _, fleet = get(app, "/anomalies")
    assert [a["device_id"] for a in fleet["items"]] == ["dev-0002"]
    assert get(app, "/anomalies?severity=warning")[1]["items"] == []
    assert get(app, "/devices/dev-0002/anomalies")[1]["items"] == fleet["items"]
    assert get(app, "/devices/dev-0001/anomalies")[1]["items"] == []


def test_line_summary(app: APIGatewayRestResolver) -> None:
    status, body = get(app, "/lines/line-1/summary")
    assert status == 200
    assert body["devices"] == 5 and body["health_bands"]["good"] == 4 and body["health_bands"]["critical"] == 1
    assert [a["device_id"] for a in body["open_alarms"]] == ["dev-0002"]
    assert body["anomalies_24h"] == 1 and body["worst"][0]["device_id"] == "dev-0002"


@pytest.mark.parametrize(
    ("target", "status", "names"),
    [
        ("/devices?limit=0", 400, "limit"),
        ("/devices?limit=abc", 400, "limit"),
        ("/devices?health_below=101", 400, "health_below"),
        ("/devices?site=%27%3B%20DROP", 400, "site"),
        ("/devices?next_token=not-ours", 400, "next_token"),
        ("/devices?next_token=eyJrIjoxfQ", 400, "next_token"),
        ("/devices/dev%200002", 400, "device_id"),
        ("/devices/dev-0002/readings?resolution=5m", 400, "resolution"),
        ("/devices/dev-0002/readings?from=yesterday", 400, "from"),
        ("/devices/dev-0002/readings?from=2026-09-21T15:00:00Z&to=2026-09-21T14:00:00Z", 400, "from"),
        ("/devices/dev-0002/readings?from=2026-01-01T00:00:00Z&to=2026-09-21T00:00:00Z", 400, "from"),
        ("/devices/dev-0002/readings?to=1850-01-01T00:00:00Z", 400, "to"),
        ("/devices/dev-0002/readings?metric=Temp%20C", 400, "metric"),
        ("/anomalies?since=1999-01-01T00:00:00Z", 400, "since"),
        ("/anomalies?severity=urgent", 400, "severity"),
        ("/devices/nope", 404, "nope"),
        ("/devices/nope/readings", 404, "nope"),
        ("/lines/line-9/summary", 404, "line-9"),
        ("/no/such/route", 404, "/no/such/route"),
    ],
)
def test_bad_requests_get_a_4xx_naming_the_problem(
    app: APIGatewayRestResolver, target: str, status: int, names: str
) -> None:
    got, body = get(app, target)
    assert got == status
    assert body["error"]["status"] == status and names in body["error"]["message"]


def test_openapi_served_and_committed_match_the_routes(app: APIGatewayRestResolver) -> None:
    status, served = get(app, "/openapi.json")
    assert status == 200
    assert served == json.loads(openapi_json(app))
    assert json.loads(OPENAPI.read_text()) == served, "run: iotpm api openapi --out src/iotpm/api/openapi.json"
    assert served["openapi"].startswith("3.")
    assert {"/devices", "/devices/{device_id}", "/devices/{device_id}/readings", "/devices/{device_id}/anomalies",
            "/anomalies", "/lines/{line}/summary", "/health"} <= set(served["paths"])  # fmt: skip
    assert served["components"]["securitySchemes"]["api_key"]["name"] == "x-api-key"

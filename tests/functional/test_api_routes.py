"""Each route module on its own: a Powertools ``Router`` that a bare resolver can include.

``build_app`` joins them; here each is included alone, so a route can be read and tested
without the others (and a path of another module is not found there).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from aws_lambda_powertools.event_handler import APIGatewayRestResolver
from aws_lambda_powertools.event_handler.api_gateway import Router

from iotpm.api.memory import MemoryQueries
from iotpm.api.routes import devices, fleet, meta, readings
from iotpm.api.server import proxy_event
from iotpm.service.in_memory import MemoryPipeline
from iotpm.service.samples import batch

T0 = 1_790_000_000_000
NOW = T0 + 600_000


@pytest.fixture(scope="module")
def queries(memory_pipeline: Callable[..., MemoryPipeline]) -> MemoryQueries:
    s = memory_pipeline()
    p = s.processor()
    for i in range(4):
        assert not p(batch(3, 60, start_ms=T0, first_seq=i * 60, faulty=[1], fault_from=100, seed=i), now_ms=NOW).errors
    return MemoryQueries(s.states, s.readings, s.anomalies, s.rollups)


def alone(router: Router) -> APIGatewayRestResolver:
    app = APIGatewayRestResolver(enable_validation=True)
    app.include_router(router)
    return app


def get(app: APIGatewayRestResolver, target: str) -> tuple[int, Any]:
    out = app.resolve(proxy_event("GET", target, {}, "127.0.0.1"), None)
    return out["statusCode"], out["body"]


def test_meta_alone_serves_health_and_the_document_it_is_given() -> None:
    app = alone(meta.build_router(lambda: NOW, lambda: '{"openapi": "x"}'))
    status, body = get(app, "/health")
    assert status == 200 and json.loads(body)["time"] == "2026-09-21T14:23:20Z"
    assert get(app, "/openapi.json") == (200, '{"openapi": "x"}')
    assert get(app, "/devices")[0] == 404


def test_devices_alone_lists_and_details_without_the_other_routes(queries: MemoryQueries) -> None:
    app = alone(devices.build_router(queries, lambda: NOW))
    status, body = get(app, "/devices")
    assert status == 200 and [d["device_id"] for d in json.loads(body)["items"]] == ["dev-0000", "dev-0001", "dev-0002"]
    detail = json.loads(get(app, "/devices/dev-0001")[1])
    assert detail["alarm_open"] is True and detail["open_alarm"]["kind"] == "raise"
    assert detail["limits"] is None and detail["alarm_state"] is None  # no operator given: not shown
    assert get(app, "/devices/dev-0001/readings")[0] == 404  # readings.py's route, not included
    assert get(app, "/health")[0] == 404


def test_readings_alone_pages_one_device(queries: MemoryQueries) -> None:
    app = alone(readings.build_router(queries, lambda: NOW))
    status, body = get(app, "/devices/dev-0000/readings?limit=7&metric=temperature_c")
    page = json.loads(body)
    assert status == 200 and len(page["items"]) == 7 and page["next_token"] is not None
    assert all(set(p["metrics"]) == {"temperature_c"} for p in page["items"])
    assert get(app, "/devices/dev-0000")[0] == 404


def test_fleet_alone_lists_alarms_and_line_summary(queries: MemoryQueries) -> None:
    app = alone(fleet.build_router(queries, lambda: NOW))
    items = json.loads(get(app, "/anomalies?since=2026-09-21T00:00:00Z")[1])["items"]
    assert {a["device_id"] for a in items} == {"dev-0001"} and any(a["kind"] == "raise" for a in items)
    summary = json.loads(get(app, "/lines/line-1/summary")[1])
    assert summary["devices"] == 3 and [a["device_id"] for a in summary["open_alarms"]] == ["dev-0001"]

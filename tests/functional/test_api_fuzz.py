"""No path, query string or header makes the API handler raise or answer 5xx.

Hypothesis builds requests from the routes' own parameter names with hostile values
(datetimes at the ends of datetime's range and offsets, huge and negative numbers,
unicode and control characters, repeated parameters, odd encodings) and sends them as
API Gateway proxy events through the Lambda handler over the in-memory read side filled
by the real processor. Every answer is a 2xx or a 4xx with a message.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from iotpm.api.memory import MemoryQueries
from iotpm.api.server import proxy_event
from iotpm.handlers.api import ApiHandler
from iotpm.service.in_memory import MemoryPipeline
from iotpm.service.samples import batch

T0 = 1_790_000_000_000
PATHS = [
    "/health",
    "/devices",
    "/devices/{id}",
    "/devices/{id}/readings",
    "/devices/{id}/anomalies",
    "/anomalies",
    "/lines/{line}/summary",
    "/openapi.json",
    "/{junk}",
]
PARAMS = ["from", "to", "since", "limit", "next_token", "metric", "resolution", "severity", "site", "line"]
PARAMS += ["health_below"]
EDGE_TIMES = [
    "0001-01-01T00:00:00Z",
    "0001-01-01T00:00:00+14:00",
    "9999-12-31T23:59:59-14:00",
    "9999-12-31T23:59:59.999999Z",
    "2026-09-21T14:00:00",
    "2026-09-21",
    "2026-02-30T00:00:00Z",
    "1790000000000",
    "-1",
    "now",
]
values = st.one_of(
    st.sampled_from(EDGE_TIMES),
    st.integers(min_value=-(10**30), max_value=10**30).map(str),
    st.sampled_from(["", " ", "NaN", "inf", "1e309", "raw", "1m", "1h", "critical", "line-1", "dev-0002", "%00"]),
    st.text(max_size=40),
)


@pytest.fixture(scope="module")
def handler(memory_pipeline: Callable[..., MemoryPipeline]) -> ApiHandler:
    s = memory_pipeline()
    p = s.processor()
    for i in range(4):
        p(batch(4, 60, start_ms=T0, first_seq=i * 60, faulty=[2], fault_from=150, seed=i), now_ms=T0 + 400_000)
    return ApiHandler(lambda: MemoryQueries(s.states, s.readings, s.anomalies, s.rollups))


def ask(handler: ApiHandler, target: str, headers: dict[str, str] | None = None) -> tuple[int, Any]:
    out = handler(proxy_event("GET", target, headers or {}, "127.0.0.1"), None)
    return out["statusCode"], json.loads(out["body"]) if out.get("body") else None


@given(
    path=st.sampled_from(PATHS),
    ident=st.one_of(st.sampled_from(["dev-0002", "dev-9999", "line-1"]), st.text(max_size=30)),
    query=st.lists(st.tuples(st.one_of(st.sampled_from(PARAMS), st.text(max_size=6)), values), max_size=5),
    header=st.one_of(st.none(), st.tuples(st.text(max_size=10), st.text(max_size=30))),
)
@settings(max_examples=400, deadline=None)
def test_any_request_is_answered_with_a_2xx_or_a_4xx(
    handler: ApiHandler, path: str, ident: str, query: list[tuple[str, str]], header: tuple[str, str] | None
) -> None:
    target = path.format(id=quote(ident, safe=""), line=quote(ident, safe=""), junk=quote(ident, safe=""))
    if query:
        target += "?" + "&".join(f"{quote(k, safe='')}={quote(v, safe='')}" for k, v in query)
    status, body = ask(handler, target, dict([header]) if header else None)
    assert 200 <= status < 500, (target, status, body)
    if status >= 400:
        assert body["error"]["message"], body


@pytest.mark.parametrize("when", EDGE_TIMES[:4])
@pytest.mark.parametrize("route", ["/devices/dev-0002/readings", "/devices/dev-0002/anomalies"])
def test_a_time_at_the_end_of_datetimes_range_is_a_400_that_names_the_parameter(
    handler: ApiHandler, route: str, when: str
) -> None:
    for name in ("from", "to"):
        status, body = ask(handler, f"{route}?{name}={quote(when)}")
        assert status == 400 and repr(name) in body["error"]["message"], body

"""The analytics API on tables the processor filled on the emulator, through the local server.

The same requests go to the API over DynamoDB and over the in-memory fakes filled with
the same batches: the answers must be identical (the fakes' contract). Then the local
server is driven over HTTP (API key checks) and by schemathesis from the committed
OpenAPI document: no 5xx, every response matches the schema.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from iotpm.adapters.registry import OperatorTables, create_operator_tables
from iotpm.api.app import build_app
from iotpm.api.memory import MemoryQueries
from iotpm.api.server import ApiServer, proxy_event
from iotpm.composition import build_operator, build_processor, build_queries, clients
from iotpm.handlers.api import ApiHandler
from iotpm.service import Processor
from iotpm.service.in_memory import MemoryPipeline
from iotpm.service.samples import batch

from .aws import Environment

T0 = 1_790_000_000_000
NOW = T0 + 600_000
KEY = "test-key-123"
OPENAPI = Path(__file__).resolve().parents[2] / "src" / "iotpm" / "api" / "openapi.json"
TARGETS = [
    "/devices?limit=2",
    "/devices?line=line-1&limit=3",
    "/devices?site=plant-1&health_below=90",
    "/devices/dev-0002",
    "/devices/dev-0001",
    "/devices/dev-0002/readings?limit=50",
    "/devices/dev-0002/readings?resolution=1m&metric=temperature_c",
    "/devices/dev-0002/readings?resolution=1h",
    "/devices/dev-0002/anomalies",
    "/anomalies",
    "/anomalies?severity=critical&line=line-1",
    "/lines/line-1/summary",
    "/devices/nope",
    "/devices?next_token=bm90LW91cnM",
]


def feed(p: Processor) -> None:
    for i in range(10):
        out = p(batch(5, 60, start_ms=T0, first_seq=i * 60, faulty=[2], fault_from=400, seed=i), now_ms=NOW)
        assert not out.errors


@pytest.fixture(scope="module")
def filled(endpoint: str) -> Environment:
    env = Environment(endpoint, timestream=False)
    # the operator's tables too, as Terraform makes them in every environment: their routes are in the contract
    tag = env.names.readings.removesuffix("-readings")
    ops = OperatorTables(f"{tag}-registry", f"{tag}-config", f"{tag}-audit")
    create_operator_tables(env.ddb, ops)
    env.settings = env.settings.model_copy(
        update={"registry_table": ops.registry, "config_table": ops.config, "audit_table": ops.audit}
    )
    feed(build_processor(env.settings, clients(env.settings)))
    return env


@pytest.fixture
def memory_queries(memory_pipeline: Callable[..., MemoryPipeline]) -> MemoryQueries:
    """The in-memory fakes, filled with the same batches."""
    s = memory_pipeline()
    feed(s.processor())
    return MemoryQueries(s.states, s.readings, s.anomalies, s.rollups)


def pages(app: Any, target: str) -> tuple[int, list[Any]]:
    """Status and every page's body (next_token dropped: each store words its own cursors)."""
    bodies, status = [], 0
    while True:
        out = app.resolve(proxy_event("GET", target, {}, "127.0.0.1"), None)
        status, body = out["statusCode"], json.loads(out["body"])
        token = body.pop("next_token", None) if isinstance(body, dict) else None
        bodies.append(body)
        if not token:
            return status, [b for b in bodies if b.get("items", True) != []] or bodies[:1]
        target = f"{target}{'&' if '?' in target else '?'}next_token={token}".replace(f"next_token={token}&", "")


def test_dynamo_and_memory_answer_every_request_the_same(filled: Environment, memory_queries: MemoryQueries) -> None:
    dynamo = build_app(build_queries(filled.settings, {"dynamodb": filled.ddb}), now_ms=lambda: NOW)
    memory = build_app(memory_queries, now_ms=lambda: NOW)
    for target in TARGETS:
        assert pages(dynamo, target) == pages(memory, target), target
    status, [detail] = pages(dynamo, "/devices/dev-0002")
    assert status == 200 and detail["alarm_open"] and detail["open_alarm"]["reasons"]


@pytest.fixture(scope="module")
def server(filled: Environment) -> Iterator[ApiServer]:
    aws = {"dynamodb": filled.ddb}
    handler = ApiHandler(
        lambda: build_queries(filled.settings, aws), operator=lambda q: build_operator(filled.settings, aws, q)
    )
    srv = ApiServer(handler, KEY).start()
    yield srv
    srv.stop()


def http(url: str, key: str | None) -> tuple[int, Any]:
    req = urllib.request.Request(url, headers={"x-api-key": key} if key else {})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_local_server_checks_the_api_key(server: ApiServer) -> None:
    assert http(f"{server.url}/devices", None)[0] == 403
    status, body = http(f"{server.url}/devices", "wrong")
    assert status == 403 and body["error"]["code"] == "forbidden"
    status, body = http(f"{server.url}/devices?limit=10", KEY)
    assert status == 200 and len(body["items"]) == 5
    assert http(f"{server.url}/devices/dev-0002/readings?limit=oops", KEY)[0] == 400


def test_openapi_contract_holds_against_the_local_server(server: ApiServer, tmp_path: Path) -> None:
    st = shutil.which("st", path=str(Path(sys.executable).parent)) or shutil.which("st")
    assert st, "schemathesis is a dev dependency: pip install -e '.[dev]'"
    checks = "not_a_server_error,response_schema_conformance,status_code_conformance,content_type_conformance"
    cmd = [st, "run", str(OPENAPI), "--url", server.url, "-H", f"x-api-key: {KEY}", "--checks", checks]
    cmd += ["--max-examples", "25", "--seed", "1", "--phases", "examples,coverage,fuzzing"]
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=tmp_path, check=False)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]

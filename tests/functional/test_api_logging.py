"""The API Lambda's logs: one JSON line per request with the request id and cold start,
an ERROR line for every 5xx, and the cause of a store failure with the request id."""

from __future__ import annotations

import io
import json
import uuid
from dataclasses import dataclass
from typing import Any

import pytest
from aws_lambda_powertools import Logger
from aws_lambda_powertools.logging import logger as powertools_logger

from iotpm.api.memory import MemoryQueries
from iotpm.api.server import proxy_event
from iotpm.handlers.api import ApiHandler
from iotpm.service.errors import StoreError


@dataclass(frozen=True)
class Context:
    """The fields of Lambda's context object the logger reads."""

    aws_request_id: str
    function_name: str = "iotpm-dev-api"
    memory_limit_in_mb: int = 512
    invoked_function_arn: str = "arn:aws:lambda:eu-west-1:123456789012:function:iotpm-dev-api"


class FailingQueries(MemoryQueries):
    """The read side with its table gone (throttled past botocore's retries, say)."""

    def device(self, device_id: str) -> Any:
        raise StoreError("ProvisionedThroughputExceededException: Rate of requests exceeds the allowed throughput")


class BrokenQueries(MemoryQueries):
    def device(self, device_id: str) -> Any:
        raise KeyError("a bug")


def handler_and_log(queries: MemoryQueries) -> tuple[ApiHandler, io.StringIO]:
    buf = io.StringIO()
    logger = Logger(service=f"iotpm-api-test-{uuid.uuid4().hex[:8]}", stream=buf)  # its own stdlib logger
    return ApiHandler(lambda: queries, logger), buf


def lines(buf: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in buf.getvalue().splitlines()]


@pytest.fixture
def cold(monkeypatch: pytest.MonkeyPatch) -> None:
    """A fresh Lambda environment: Powertools' cold-start flag is per process."""
    monkeypatch.setattr(powertools_logger, "is_cold_start", True)


@pytest.mark.usefixtures("cold")
def test_a_store_failure_logs_an_error_with_the_request_id() -> None:
    handler, buf = handler_and_log(FailingQueries())
    event = proxy_event("GET", "/devices/pump-0001", {}, "127.0.0.1")
    out = handler(event, Context("req-0001"))
    assert out["statusCode"] == 503
    errors = [line for line in lines(buf) if line["level"] == "ERROR"]
    cause, access = errors
    assert cause["message"] == "a table could not be read"
    assert "ProvisionedThroughputExceededException" in cause["exception"]
    assert cause["exception_name"] == "StoreError"
    for line in (cause, access):
        assert line["function_request_id"] == "req-0001"
        assert line["correlation_id"] == event["requestContext"]["requestId"]
        assert line["cold_start"] is True
        assert line["status"] == 503 and line["path"] == "/devices/pump-0001"
    assert access["message"] == "request failed" and access["method"] == "GET"


@pytest.mark.usefixtures("cold")
def test_every_request_logs_one_line_and_only_the_first_is_a_cold_start() -> None:
    handler, buf = handler_and_log(MemoryQueries())
    assert handler(proxy_event("GET", "/health", {}, "127.0.0.1"), Context("req-1"))["statusCode"] == 200
    assert handler(proxy_event("GET", "/devices/nope", {}, "127.0.0.1"), Context("req-2"))["statusCode"] == 404
    first, second = lines(buf)
    assert (first["level"], first["status"], first["cold_start"], first["function_request_id"]) == (
        "INFO", 200, True, "req-1",
    )  # fmt: skip
    assert (second["level"], second["status"], second["cold_start"], second["function_request_id"]) == (
        "INFO", 404, False, "req-2",
    )  # fmt: skip
    assert first["duration_ms"] >= 0 and first["service"].startswith("iotpm-api")


def test_an_unexpected_error_is_a_logged_500_in_the_error_body() -> None:
    handler, buf = handler_and_log(BrokenQueries())
    out = handler(proxy_event("GET", "/devices/pump-0001", {}, "127.0.0.1"), Context("req-9"))
    assert out["statusCode"] == 500
    assert json.loads(out["body"])["error"]["code"] == "internal"
    cause = next(line for line in lines(buf) if line["message"] == "unexpected error")
    assert cause["level"] == "ERROR" and cause["function_request_id"] == "req-9" and "KeyError" in cause["exception"]


def test_the_local_server_path_gets_a_request_id_too() -> None:
    handler, buf = handler_and_log(MemoryQueries())
    handler(proxy_event("GET", "/health", {}, "127.0.0.1"), None)  # what iotpm api serve passes
    (line,) = lines(buf)
    assert uuid.UUID(line["function_request_id"]) and line["function_name"] == "iotpm-api-local"

"""The analytics API's routes on Powertools' REST resolver (validation and OpenAPI from the code).

``build_app(queries)`` returns the resolver; the Lambda handler and the local server
both call ``app.resolve(event, context)`` on it. Every parameter is validated by
pydantic before a route runs, every failure leaves as ``{"error": {status, code,
message}}``, and a route never sees a value it has not validated.

A failure the client cannot fix (a store error: 503; anything unexpected: 500) is
logged at ERROR with its exception through Powertools' Logger, one JSON line that
carries the request id and cold start the handler appended (``iotpm.handlers.api``).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Annotated, Any, Literal

import numpy as np
import orjson
from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError
from aws_lambda_powertools.event_handler.openapi.models import APIKey, APIKeyIn
from aws_lambda_powertools.event_handler.openapi.params import Path, Query
from aws_lambda_powertools.event_handler.openapi.types import OpenAPIResponse
from pydantic import BaseModel

import iotpm
from iotpm.api.models import (
    Anomaly,
    AnomalyPage,
    DeviceDetail,
    DevicePage,
    DeviceSummary,
    EffectiveLimit,
    ErrorBody,
    ErrorDetail,
    Health,
    HealthBands,
    LineSummary,
    OpenAlarm,
    ReadingsPage,
    Trend,
    iso,
)
from iotpm.api.ports import AnomalyFilter, DeviceFilter, InvalidCursorError, Queries
from iotpm.api.routes import operator as operator_routes
from iotpm.models.metrics import METRIC_NAME_RE
from iotpm.models.readings import DEVICE_ID_PATTERN, NAME_PATTERN, epoch_ms
from iotpm.service.errors import StoreError
from iotpm.service.ports import AnomalyRow, DeviceRecord

if TYPE_CHECKING:
    from iotpm.operator.service import Operator

TITLE = "iotpm analytics API"
DAY = timedelta(days=1)
#: the longest time range each query may span (bounded reads)
MAX_SPAN = {
    "raw": timedelta(days=7),
    "1m": timedelta(days=7),
    "1h": timedelta(days=366),
    "anomalies": timedelta(days=92),
}
#: the API's structured logger (JSON on stdout; level from POWERTOOLS_LOG_LEVEL, default INFO)
LOGGER = Logger(service="iotpm-api")
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
LATEST = datetime(2100, 1, 1, tzinfo=UTC)

DeviceIdParam = Annotated[str, Path(pattern=DEVICE_ID_PATTERN, description="the device's id (its thing name)")]
NameQuery = Annotated[str | None, Query(pattern=NAME_PATTERN)]
TokenQuery = Annotated[str | None, Query(max_length=2048, pattern=r"^[A-Za-z0-9_-]+$", description="from next_token")]
TimeQuery = Annotated[datetime | None, Query(description="ISO 8601; UTC when no offset is given")]


class ApiError(Exception):
    """A client error with its status; raised by routes, shaped by the exception handler."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def error_response(status: int, code: str, message: str) -> Response[str]:
    body = ErrorBody(error=ErrorDetail(status=status, code=code, message=message))
    return Response(status, "application/json", body.model_dump_json())


_ERRORS: dict[int, OpenAPIResponse] = {
    status: {"description": text, "content": {"application/json": {"model": ErrorBody}}}
    for status, text in (
        (400, "a parameter is invalid (the message names it)"),
        (403, "missing or wrong API key"),
        (404, "no such device or route"),
        (500, "an unexpected error (logged with the request id)"),
        (503, "a table could not be read; retry"),
    )
}


def _responses(model: type[Any]) -> dict[int, OpenAPIResponse]:
    return {200: {"description": "OK", "content": {"application/json": {"model": model}}}, **_ERRORS}


def build_app(
    queries: Queries,
    now_ms: Callable[[], int] | None = None,
    logger: Logger | None = None,
    operator: Operator | None = None,
) -> APIGatewayRestResolver:
    """The resolver with every route bound to ``queries`` (and the operator's to ``operator``:
    without one they answer 503); failures logged to ``logger``."""
    app = APIGatewayRestResolver(enable_validation=True)
    clock = now_ms or (lambda: int(time.time() * 1000))
    _errors(app, logger or LOGGER)
    operator_routes.register_errors(app)
    app.include_router(operator_routes.build_router(operator, clock))

    @app.get("/health", responses=_responses(Health), summary="liveness", tags=["meta"])
    def health() -> Response[str]:
        return _json(Health(status="ok", version=iotpm.__version__, time=iso(clock())))

    @app.get("/openapi.json", summary="this contract", tags=["meta"], include_in_schema=False)
    def openapi() -> Response[str]:
        return Response(200, "application/json", openapi_json(app))

    @app.get("/dashboard", summary="the machine-health page", tags=["meta"], include_in_schema=False)
    def dashboard() -> Response[str]:
        from iotpm import dashboard  # a static page: API Gateway serves this route without the key

        return Response(200, "text/html; charset=utf-8", dashboard.page().decode(), headers=dashboard.headers())

    @app.get("/devices", responses=_responses(DevicePage), summary="devices, filtered", tags=["devices"])
    def devices(
        site: NameQuery = None,
        line: NameQuery = None,
        health_below: Annotated[float | None, Query(ge=0, le=100, description="health strictly below")] = None,
        limit: Annotated[int, Query(ge=1, le=500)] = 100,
        next_token: TokenQuery = None,
    ) -> Response[str]:
        page = queries.devices(DeviceFilter(site, line, health_below), limit, next_token)
        return _json(DevicePage(items=[_summary(r) for r in page.items], next_token=page.cursor))

    @app.get("/devices/<device_id>", responses=_responses(DeviceDetail), summary="one device", tags=["devices"])
    def device(device_id: DeviceIdParam) -> Response[str]:
        record = _known(queries, device_id)
        open_alarm = None
        if record.alarm_open and record.alarm_since_ms is not None:
            since = record.alarm_since_ms
            raises = queries.device_anomalies(device_id, since, since + 1, 2, None).items
            open_alarm = next((_anomaly(a) for a in raises if a.kind == "raise"), None)
        detail = DeviceDetail(
            **_summary(record).model_dump(),
            readings=record.readings,
            open_alarm=open_alarm,
            trend={name: _trend(t, record.last_ts_ms) for name, t in record.trend.items()},
        )
        if operator is not None:  # the limits in effect and the alarm's state (ISA-18.2)
            limits = {m: EffectiveLimit(low=s.limits.low, high=s.limits.high, source=s.source)
                      for m, s in operator.device_limits(record).items()}  # fmt: skip
            state = operator.controls(device_id).state(record, clock())
            shown = None if open_alarm is None else _with_state(open_alarm, record, state)
            detail = detail.model_copy(update={"limits": limits, "alarm_state": state, "open_alarm": shown})
        return _json(detail)

    @app.get("/devices/<device_id>/readings", responses=_responses(ReadingsPage), summary="readings", tags=["devices"])
    def readings(
        device_id: DeviceIdParam,
        from_: Annotated[datetime | None, Query(alias="from", description="ISO 8601; default: to - 24 h")] = None,
        to: TimeQuery = None,
        metric: Annotated[str | None, Query(pattern=METRIC_NAME_RE.pattern, max_length=64)] = None,
        resolution: Literal["raw", "1m", "1h"] = "raw",
        limit: Annotated[int, Query(ge=1, le=2000)] = 500,
        next_token: TokenQuery = None,
    ) -> Response[str]:
        start, end = _range(from_, to, MAX_SPAN[resolution], clock)
        _known(queries, device_id)
        if resolution == "raw":
            page = queries.readings(device_id, start, end, limit, next_token)
            raw = [
                {
                    "time": t,
                    "seq": r.seq,
                    "metrics": r.metrics if metric is None else {k: v for k, v in r.metrics.items() if k == metric},
                    "score": r.score,
                    "anomaly": r.anomaly,
                }
                for t, r in zip(iso_texts([r.ts_ms for r in page.items]), page.items, strict=True)
            ]
            return _page_json(device_id, resolution, raw, page.cursor)
        buckets = queries.buckets(device_id, resolution, start, end, limit, next_token)
        points = [
            {
                "time": t,
                "metrics": b.metrics if metric is None else {k: v for k, v in b.metrics.items() if k == metric},
                "anomalies": b.anomalies,
            }
            for t, b in zip(iso_texts([b.start_ms for b in buckets.items]), buckets.items, strict=True)
        ]
        return _page_json(device_id, resolution, points, buckets.cursor)

    @app.get("/devices/<device_id>/anomalies", responses=_responses(AnomalyPage), summary="alarms", tags=["devices"])
    def device_anomalies(
        device_id: DeviceIdParam,
        from_: Annotated[datetime | None, Query(alias="from", description="ISO 8601; default: to - 7 days")] = None,
        to: TimeQuery = None,
        limit: Annotated[int, Query(ge=1, le=500)] = 100,
        next_token: TokenQuery = None,
    ) -> Response[str]:
        start, end = _range(from_, to, MAX_SPAN["anomalies"], clock, default=7 * DAY)
        record = _known(queries, device_id)
        page = queries.device_anomalies(device_id, start, end, limit, next_token)
        items = [_anomaly(a) for a in page.items]
        if operator is not None:  # each raise's alarm state: the open alarm's, or cleared
            state = operator.controls(device_id).state(record, clock())
            items = [_with_state(a, record, state) for a in items]
        return _json(AnomalyPage(items=items, next_token=page.cursor))

    @app.get("/anomalies", responses=_responses(AnomalyPage), summary="fleet alarms, newest first", tags=["fleet"])
    def anomalies(
        since: Annotated[datetime | None, Query(description="ISO 8601; default: 24 h ago; at most 92 days")] = None,
        severity: Literal["warning", "critical"] | None = None,
        site: NameQuery = None,
        line: NameQuery = None,
        limit: Annotated[int, Query(ge=1, le=500)] = 100,
        next_token: TokenQuery = None,
    ) -> Response[str]:
        start, end = _range(since, None, MAX_SPAN["anomalies"], clock, names=("since", "now"))
        page = queries.anomalies(AnomalyFilter(start, end, severity, site, line), limit, next_token)
        return _json(AnomalyPage(items=[_anomaly(a) for a in page.items], next_token=page.cursor))

    @app.get("/lines/<line>/summary", responses=_responses(LineSummary), summary="a line at a glance", tags=["fleet"])
    def line_summary(line: Annotated[str, Path(pattern=NAME_PATTERN)]) -> Response[str]:
        records = queries.line_devices(line, 1000)
        if not records:
            raise ApiError(404, "not_found", f"line {line!r} has no devices")
        end = clock()
        raised = 0
        cursor: str | None = None
        for _ in range(20):  # at most 20 pages of 500: bounded
            page = queries.anomalies(AnomalyFilter(end - 86_400_000, end + 1, None, None, line), 500, cursor)
            raised += sum(1 for a in page.items if a.kind == "raise")
            cursor = page.cursor
            if cursor is None:
                break
        summary = LineSummary(
            line=line,
            devices=len(records),
            health_bands=HealthBands(
                good=sum(r.health >= 80 for r in records),
                watch=sum(50 <= r.health < 80 for r in records),
                critical=sum(r.health < 50 for r in records),
            ),
            open_alarms=[
                OpenAlarm(device_id=r.device_id, since=_iso_or_none(r.alarm_since_ms)) for r in records if r.alarm_open
            ],
            anomalies_24h=raised,
            worst=[_summary(r) for r in sorted(records, key=lambda r: (r.health, r.device_id))[:5]],
        )
        return _json(summary)

    return app


def _errors(app: APIGatewayRestResolver, logger: Logger) -> None:
    """One error body everywhere (registered by call: the decorator is untyped)."""

    def invalid(exc: RequestValidationError) -> Response[str]:
        problems = []
        for e in exc.errors():
            loc = [str(p) for p in e.get("loc", ())]
            where = f"{loc[0]} parameter {loc[1]!r}" if len(loc) >= 2 else ".".join(loc) or "request"
            problems.append(f"{where}: {e.get('msg', 'invalid')}")
        return error_response(400, "bad_request", "; ".join(problems))

    def bad_cursor(exc: InvalidCursorError) -> Response[str]:
        return error_response(400, "bad_request", f"query parameter 'next_token': {exc}")

    def api_error(exc: ApiError) -> Response[str]:
        return error_response(exc.status, exc.code, exc.message)

    def unavailable(exc: StoreError) -> Response[str]:
        logger.error("a table could not be read", exc_info=exc, extra={"status": 503, **_request(app)})
        return error_response(503, "unavailable", "the tables could not be read; retry")

    def unexpected(exc: Exception) -> Response[str]:
        logger.error("unexpected error", exc_info=exc, extra={"status": 500, **_request(app)})
        return error_response(500, "internal", "an unexpected error; it is logged with the request id")

    def not_found(exc: Exception) -> Response[str]:
        return error_response(404, "not_found", f"no route {app.current_event.http_method} {app.current_event.path}")

    app.exception_handler(RequestValidationError)(invalid)
    app.exception_handler(InvalidCursorError)(bad_cursor)
    app.exception_handler(ApiError)(api_error)
    app.exception_handler(StoreError)(unavailable)
    app.exception_handler(Exception)(unexpected)  # the most specific handler wins
    app.not_found(not_found)


def _request(app: APIGatewayRestResolver) -> dict[str, str]:
    return {"method": app.current_event.http_method, "path": app.current_event.path}


def openapi_json(app: APIGatewayRestResolver) -> str:
    """The OpenAPI document of ``app`` (committed as src/iotpm/api/openapi.json)."""
    doc = app.get_openapi_json_schema(
        title=TITLE,
        version=iotpm.__version__,
        description="Which machines need attention, and since when. Times are ISO 8601 in UTC.",
        security_schemes={
            "api_key": APIKey(name="x-api-key", in_=APIKeyIn.header),
            # writes: AWS_IAM in API Gateway, a SigV4-signed request (curl --aws-sigv4)
            "sigv4": APIKey(name="Authorization", in_=APIKeyIn.header, description="AWS SigV4 (IAM)"),
        },
        security=[{"api_key": []}],
    )
    return json.dumps(json.loads(doc), indent=2, sort_keys=True) + "\n"


def _json(body: BaseModel) -> Response[str]:
    """Serialised by pydantic-core (the resolver's own encoder walks the tree in Python: 10x slower)."""
    return Response(200, "application/json", body.model_dump_json())


def _page_json(device_id: str, resolution: str, items: list[dict[str, Any]], cursor: str | None) -> Response[str]:
    """A readings page (up to 2,000 points) of plain values in one orjson call, in the
    shape of :class:`ReadingsPage` (the contract test checks it). Building 1,440
    pydantic models per request would cost ten times the 5 ms budget.
    """
    page = {"device_id": device_id, "resolution": resolution, "items": items, "next_token": cursor}
    return Response(200, "application/json", orjson.dumps(page).decode())


def iso_texts(ts_ms: list[int]) -> list[str]:
    """Epoch ms as ISO 8601 UTC text, all at once in numpy (seconds, or ms when any has them)."""
    stamps = np.array(ts_ms, dtype="datetime64[ms]")
    texts = np.datetime_as_string(stamps, unit="s") if all(t % 1000 == 0 for t in ts_ms) else stamps.astype(str)
    return [text + "Z" for text in texts.tolist()]


def _known(queries: Queries, device_id: str) -> DeviceRecord:
    record = queries.device(device_id)
    if record is None:
        raise ApiError(404, "not_found", f"device {device_id!r} is not known")
    return record


def _range(
    start: datetime | None,
    end: datetime | None,
    span: timedelta,
    clock: Callable[[], int],
    *,
    default: timedelta = DAY,
    names: tuple[str, str] = ("from", "to"),
) -> tuple[int, int]:
    """[start, end) in epoch ms, checked: ordered, within 2000-2100, no longer than ``span``."""
    e = _bounded(names[1], end) if end is not None else iso(clock())
    s = _bounded(names[0], start) if start is not None else max(e - min(default, span), EARLIEST)
    if s >= e:
        raise ApiError(400, "bad_request", f"query parameter {names[0]!r}: must be before {names[1]!r}")
    if e - s > span:
        raise ApiError(400, "bad_request", f"query parameter {names[0]!r}: the range may span at most {span.days} days")
    return epoch_ms(s), epoch_ms(e) + (1 if end is None else 0)


def _bounded(name: str, t: datetime) -> datetime:
    """``t`` in UTC (naive means UTC), refused outside 2000-2100.

    Checked before any arithmetic: year 1 or 9999 with an offset leaves datetime's
    range when converted, which would raise OverflowError instead of answering 400.
    """
    try:
        value = (t if t.tzinfo is not None else t.replace(tzinfo=UTC)).astimezone(UTC)
        inside = EARLIEST <= value <= LATEST
    except (OverflowError, ValueError):
        inside = False
    if not inside:
        raise ApiError(400, "bad_request", f"query parameter {name!r}: must be between 2000 and 2100")
    return value


def _iso_or_none(ts_ms: int | None) -> datetime | None:
    return None if ts_ms is None else iso(ts_ms)


def _summary(r: DeviceRecord) -> DeviceSummary:
    return DeviceSummary(
        device_id=r.device_id,
        site=r.site,
        line=r.line,
        device_type=r.device_type,
        health=max(0.0, min(100.0, r.health)),
        alarm_open=r.alarm_open,
        alarm_since=_iso_or_none(r.alarm_since_ms),
        last_seen=iso(r.last_ts_ms),
        latest=r.latest,
    )


def _trend(t: dict[str, float | None], last_ts_ms: int) -> Trend:
    level, slope, limit, hours = (_finite(t.get(k)) for k in ("level", "slope_per_hour", "limit", "hours_to_limit"))
    crossing = None
    if hours is not None and last_ts_ms + hours * 3_600_000 < LATEST.timestamp() * 1000:
        crossing = iso(last_ts_ms + int(hours * 3_600_000))
    return Trend(level=level, slope_per_hour=slope, limit=limit, hours_to_limit=hours, predicted_crossing=crossing)


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def _with_state(a: Anomaly, record: DeviceRecord, state: str) -> Anomaly:
    """A raise with its alarm's state: the open alarm's (``state``), or cleared (another incident)."""
    if a.kind != "raise":
        return a
    open_now = record.alarm_open and record.alarm_since_ms is not None and epoch_ms(a.time) == record.alarm_since_ms
    return a.model_copy(update={"state": state if open_now and state != "normal" else "cleared"})


def _anomaly(a: AnomalyRow) -> Anomaly:
    return Anomaly(
        device_id=a.device_id,
        time=iso(a.ts_ms),
        kind=a.kind,
        severity=a.severity,
        score=a.score if math.isfinite(a.score) else 0.0,
        site=a.site,
        line=a.line,
        device_type=a.device_type,
        reasons=[dict(r) for r in a.reasons],
    )

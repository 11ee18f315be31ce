"""What every route shares: parameters, the error body, responses and the checked time range.

A failure the client can fix leaves as :class:`ApiError` (shaped into ``{"error": {status,
code, message}}`` by the handlers ``build_app`` registers); a route never sees a value it
has not validated.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import orjson
from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Path, Query
from aws_lambda_powertools.event_handler.openapi.types import OpenAPIResponse
from pydantic import BaseModel

from iotpm.api.models import ErrorBody, ErrorDetail, iso
from iotpm.api.ports import Queries
from iotpm.models.readings import DEVICE_ID_PATTERN, NAME_PATTERN, epoch_ms
from iotpm.service.ports import DeviceRecord

#: the server's clock in epoch ms (injected: tests pin it)
Clock = Callable[[], int]
DAY = timedelta(days=1)
#: the longest time range each query may span (bounded reads)
MAX_SPAN = {
    "raw": timedelta(days=7),
    "1m": timedelta(days=7),
    "1h": timedelta(days=366),
    "anomalies": timedelta(days=92),
}
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


def responses(model: type[Any]) -> dict[int, OpenAPIResponse]:
    """A read route's documented answers: ``model`` on 200, the error body otherwise."""
    return {200: {"description": "OK", "content": {"application/json": {"model": model}}}, **_ERRORS}


def json_response(body: BaseModel) -> Response[str]:
    """Serialised by pydantic-core (the resolver's own encoder walks the tree in Python: 10x slower)."""
    return Response(200, "application/json", body.model_dump_json())


def page_json(device_id: str, resolution: str, items: list[dict[str, Any]], cursor: str | None) -> Response[str]:
    """A readings page (up to 2,000 points) of plain values in one orjson call, in the
    shape of :class:`ReadingsPage` (the contract test checks it). Building 1,440
    pydantic models per request would cost ten times the 5 ms budget.
    """
    page = {"device_id": device_id, "resolution": resolution, "items": items, "next_token": cursor}
    return Response(200, "application/json", orjson.dumps(page).decode())


def known(queries: Queries, device_id: str) -> DeviceRecord:
    """The device's record, or 404."""
    record = queries.device(device_id)
    if record is None:
        raise ApiError(404, "not_found", f"device {device_id!r} is not known")
    return record


def time_range(
    start: datetime | None,
    end: datetime | None,
    span: timedelta,
    clock: Clock,
    *,
    default: timedelta = DAY,
    names: tuple[str, str] = ("from", "to"),
) -> tuple[int, int]:
    """[start, end) in epoch ms, checked: ordered, within 2000-2100, no longer than ``span``."""
    e = bounded(names[1], end) if end is not None else iso(clock())
    s = bounded(names[0], start) if start is not None else max(e - min(default, span), EARLIEST)
    if s >= e:
        raise ApiError(400, "bad_request", f"query parameter {names[0]!r}: must be before {names[1]!r}")
    if e - s > span:
        raise ApiError(400, "bad_request", f"query parameter {names[0]!r}: the range may span at most {span.days} days")
    return epoch_ms(s), epoch_ms(e) + (1 if end is None else 0)


def bounded(name: str, t: datetime) -> datetime:
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

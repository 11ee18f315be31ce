"""The analytics API on Powertools' REST resolver (validation and OpenAPI from the code).

``build_app(queries)`` joins the routes, one Powertools ``Router`` per resource in
:mod:`iotpm.api.routes`, and returns the resolver; the Lambda handler and the local server
both call ``app.resolve(event, context)`` on it. Every parameter is validated by pydantic
before a route runs, every failure leaves as ``{"error": {status, code, message}}``, and a
route never sees a value it has not validated.

A failure the client cannot fix (a store error: 503; anything unexpected: 500) is
logged at ERROR with its exception through Powertools' Logger, one JSON line that
carries the request id and cold start the handler appended (``iotpm.handlers.api``).
"""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING

from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError
from aws_lambda_powertools.event_handler.openapi.models import APIKey, APIKeyIn

import iotpm
from iotpm.api.http import ApiError, Clock, error_response
from iotpm.api.ports import InvalidCursorError, Queries
from iotpm.api.routes import devices, fleet, meta, readings
from iotpm.api.routes import operator as operator_routes
from iotpm.api.views import iso_texts
from iotpm.service.errors import StoreError

if TYPE_CHECKING:
    from iotpm.operator.service import Operator

__all__ = ["LOGGER", "TITLE", "ApiError", "build_app", "error_response", "iso_texts", "openapi_json"]

TITLE = "iotpm analytics API"
#: the API's structured logger (JSON on stdout; level from POWERTOOLS_LOG_LEVEL, default INFO)
LOGGER = Logger(service="iotpm-api")


def build_app(
    queries: Queries,
    now_ms: Clock | None = None,
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
    app.include_router(meta.build_router(clock, lambda: openapi_json(app)))
    app.include_router(devices.build_router(queries, clock, operator))
    app.include_router(readings.build_router(queries, clock))
    app.include_router(fleet.build_router(queries, clock, operator))
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

"""The meta routes: liveness, this API's own contract and the machine-health page."""

from __future__ import annotations

from collections.abc import Callable

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router

import iotpm
from iotpm.api.http import Clock, json_response, responses
from iotpm.api.models import Health, iso


def build_router(clock: Clock, document: Callable[[], str]) -> Router:
    """``/health`` on ``clock``; ``/openapi.json`` serves ``document()`` (the including app's contract)."""
    router = Router()  # type: ignore[no-untyped-call]  # Powertools' Router.__init__ is unannotated

    @router.get("/health", responses=responses(Health), summary="liveness", tags=["meta"])
    def health() -> Response[str]:
        return json_response(Health(status="ok", version=iotpm.__version__, time=iso(clock())))

    @router.get("/openapi.json", summary="this contract", tags=["meta"], include_in_schema=False)
    def openapi() -> Response[str]:
        return Response(200, "application/json", document())

    @router.get("/dashboard", summary="the machine-health page", tags=["meta"], include_in_schema=False)
    def dashboard() -> Response[str]:
        from iotpm import dashboard  # a static page: API Gateway serves this route without the key

        return Response(200, "text/html; charset=utf-8", dashboard.page().decode(), headers=dashboard.headers())

    return router

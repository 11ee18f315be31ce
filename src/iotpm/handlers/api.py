"""The analytics API Lambda: API Gateway proxy event in, response out (Powertools' resolver)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayRestResolver

from iotpm.api.app import build_app
from iotpm.api.ports import Queries

__all__ = ["ApiHandler", "build_app", "handler"]


class ApiHandler:
    """Callable Lambda handler over a lazily built resolver (the DynamoDB client is made on first use)."""

    def __init__(self, factory: Callable[[], Queries]) -> None:
        self._factory = factory
        self._app: APIGatewayRestResolver | None = None

    def __call__(self, event: Mapping[str, Any], context: Any = None) -> dict[str, Any]:
        if self._app is None:
            self._app = build_app(self._factory())
        return self._app.resolve(dict(event), context)


def _build() -> Queries:
    from iotpm.composition import build_queries  # boto3 loads on first invoke, not at import

    return build_queries()


handler = ApiHandler(_build)

"""The analytics API Lambda: API Gateway proxy event in, response out (Powertools' resolver).

Every request writes one structured JSON line (Powertools' Logger): method, path,
status and duration, with the Lambda request id, API Gateway's request id as the
correlation id, and whether the invocation was a cold start. It is INFO below 500 and
ERROR from 500 up, so every 5xx leaves an error line; the cause (a store error, an
unexpected exception) is logged just before it with its traceback.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import APIGatewayRestResolver

from iotpm.api.app import LOGGER, build_app
from iotpm.api.ports import Queries

if TYPE_CHECKING:
    from iotpm.operator.service import Operator

__all__ = ["ApiHandler", "LocalContext", "build_app", "handler"]


@dataclass(frozen=True)
class LocalContext:
    """What the local API server passes for Lambda's context (the fields the logger reads)."""

    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    function_name: str = "iotpm-api-local"
    memory_limit_in_mb: int = 0
    invoked_function_arn: str = "arn:aws:lambda:local:000000000000:function:iotpm-api-local"


class ApiHandler:
    """Callable Lambda handler over a lazily built resolver (the DynamoDB client is made on first use)."""

    def __init__(
        self,
        factory: Callable[[], Queries],
        logger: Logger | None = None,
        operator: Callable[[Queries], Operator | None] | None = None,
    ) -> None:
        """``operator``: builds the operator's controls over the queries (None: the routes answer 503)."""
        self._factory, self._operator = factory, operator
        self._logger = logger or LOGGER
        self._app: APIGatewayRestResolver | None = None
        # (the correlation id is set from the event directly: a JMESPath query per request costs more)
        self._handle = self._logger.inject_lambda_context(self._resolve)

    def __call__(self, event: Mapping[str, Any], context: Any = None) -> dict[str, Any]:
        out: dict[str, Any] = self._handle(dict(event), context if context is not None else LocalContext())
        return out

    def _resolve(self, event: dict[str, Any], context: Any) -> dict[str, Any]:
        t0 = time.perf_counter()
        context_of_request = event.get("requestContext")
        request_id = context_of_request.get("requestId") if isinstance(context_of_request, dict) else None
        self._logger.set_correlation_id(request_id if isinstance(request_id, str) else None)
        if self._app is None:
            queries = self._factory()
            operator = self._operator(queries) if self._operator is not None else None
            self._app = build_app(queries, logger=self._logger, operator=operator)
        out = self._app.resolve(event, context)
        status = int(out.get("statusCode", 0))
        fields: dict[str, object] = {
            "method": event.get("httpMethod"),
            "path": event.get("path"),
            "status": status,
            "duration_ms": round(1000 * (time.perf_counter() - t0), 2),
        }
        if status >= 500:
            self._logger.error("request failed", extra=fields)
        else:
            self._logger.info("request", extra=fields)
        return out


def _build() -> Queries:
    from iotpm.composition import build_queries  # boto3 loads on first invoke, not at import

    return build_queries()


def _operator(queries: Queries) -> Operator | None:
    from iotpm.composition import build_operator

    return build_operator(queries=queries)


handler = ApiHandler(_build, operator=_operator)

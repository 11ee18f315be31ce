"""The readings route: one device's raw readings or its 1-minute / 1-hour rollups."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Query

from iotpm.api.http import (
    MAX_SPAN,
    Clock,
    DeviceIdParam,
    TimeQuery,
    TokenQuery,
    known,
    page_json,
    responses,
    time_range,
)
from iotpm.api.models import ReadingsPage
from iotpm.api.ports import Queries
from iotpm.api.views import iso_texts
from iotpm.models.metrics import METRIC_NAME_RE


def build_router(queries: Queries, clock: Clock) -> Router:
    """``GET /devices/{device_id}/readings`` over ``queries``."""
    router = Router()  # type: ignore[no-untyped-call]  # Powertools' Router.__init__ is unannotated

    @router.get(
        "/devices/<device_id>/readings", responses=responses(ReadingsPage), summary="readings", tags=["devices"]
    )
    def readings(
        device_id: DeviceIdParam,
        from_: Annotated[datetime | None, Query(alias="from", description="ISO 8601; default: to - 24 h")] = None,
        to: TimeQuery = None,
        metric: Annotated[str | None, Query(pattern=METRIC_NAME_RE.pattern, max_length=64)] = None,
        resolution: Literal["raw", "1m", "1h"] = "raw",
        limit: Annotated[int, Query(ge=1, le=2000)] = 500,
        next_token: TokenQuery = None,
    ) -> Response[str]:
        start, end = time_range(from_, to, MAX_SPAN[resolution], clock)
        known(queries, device_id)
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
            return page_json(device_id, resolution, raw, page.cursor)
        buckets = queries.buckets(device_id, resolution, start, end, limit, next_token)
        points = [
            {
                "time": t,
                "metrics": b.metrics if metric is None else {k: v for k, v in b.metrics.items() if k == metric},
                "anomalies": b.anomalies,
            }
            for t, b in zip(iso_texts([b.start_ms for b in buckets.items]), buckets.items, strict=True)
        ]
        return page_json(device_id, resolution, points, buckets.cursor)

    return router

"""The fleet routes: alarms across the fleet, newest first, and a line at a glance."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Path, Query

from iotpm.api.http import MAX_SPAN, ApiError, Clock, NameQuery, TokenQuery, json_response, responses, time_range
from iotpm.api.models import AnomalyPage, HealthBands, LineSummary, OpenAlarm
from iotpm.api.ports import AnomalyFilter, Queries
from iotpm.api.views import anomaly, iso_or_none, summary
from iotpm.models.readings import NAME_PATTERN


def build_router(queries: Queries, clock: Clock) -> Router:
    """``GET /anomalies`` and ``GET /lines/{line}/summary`` over ``queries``."""
    router = Router()  # type: ignore[no-untyped-call]  # Powertools' Router.__init__ is unannotated

    @router.get("/anomalies", responses=responses(AnomalyPage), summary="fleet alarms, newest first", tags=["fleet"])
    def anomalies(
        since: Annotated[datetime | None, Query(description="ISO 8601; default: 24 h ago; at most 92 days")] = None,
        severity: Literal["warning", "critical"] | None = None,
        site: NameQuery = None,
        line: NameQuery = None,
        limit: Annotated[int, Query(ge=1, le=500)] = 100,
        next_token: TokenQuery = None,
    ) -> Response[str]:
        start, end = time_range(since, None, MAX_SPAN["anomalies"], clock, names=("since", "now"))
        page = queries.anomalies(AnomalyFilter(start, end, severity, site, line), limit, next_token)
        return json_response(AnomalyPage(items=[anomaly(a) for a in page.items], next_token=page.cursor))

    @router.get("/lines/<line>/summary", responses=responses(LineSummary), summary="a line at a glance", tags=["fleet"])
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
        result = LineSummary(
            line=line,
            devices=len(records),
            health_bands=HealthBands(
                good=sum(r.health >= 80 for r in records),
                watch=sum(50 <= r.health < 80 for r in records),
                critical=sum(r.health < 50 for r in records),
            ),
            open_alarms=[
                OpenAlarm(device_id=r.device_id, since=iso_or_none(r.alarm_since_ms)) for r in records if r.alarm_open
            ],
            anomalies_24h=raised,
            worst=[summary(r) for r in sorted(records, key=lambda r: (r.health, r.device_id))[:5]],
        )
        return json_response(result)

    return router

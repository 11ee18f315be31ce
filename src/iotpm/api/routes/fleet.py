"""The fleet routes: alarms across the fleet, newest first, and a line at a glance."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Literal

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Path, Query

from iotpm.api.http import MAX_SPAN, ApiError, Clock, NameQuery, TokenQuery, json_response, responses, time_range
from iotpm.api.models import Anomaly, AnomalyPage, HealthBands, LineSummary, OpenAlarm
from iotpm.api.ports import AnomalyFilter, Queries
from iotpm.api.views import anomaly, iso_or_none, summary, with_state
from iotpm.models.readings import NAME_PATTERN

if TYPE_CHECKING:
    from iotpm.operator.service import Operator


def build_router(queries: Queries, clock: Clock, operator: Operator | None = None) -> Router:
    """``GET /anomalies`` and ``GET /lines/{line}/summary`` over ``queries``; with ``operator``, each
    raise carries its alarm state."""
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
        items = [anomaly(a) for a in page.items]
        if operator is not None:  # each raise's alarm state, as on the device's own route
            items = _with_states(items, queries, operator, clock())
        return json_response(AnomalyPage(items=items, next_token=page.cursor))

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


def _with_states(items: list[Anomaly], queries: Queries, operator: Operator, now_ms: int) -> list[Anomaly]:
    """The page's raises with their alarm states: the open alarm's, or cleared.

    The records of the devices that raised in the page read together (the open alarm is the
    record's; BatchGetItem, 100 a call) and one read of their alarm controls together.
    """
    raised = sorted({a.device_id for a in items if a.kind == "raise"})
    if not raised:
        return items
    records = queries.device_records(raised)
    controls = operator.controls_many(raised)
    states = {d: controls[d].state(records.get(d), now_ms) for d in raised}
    return [with_state(a, records.get(a.device_id), states[a.device_id]) if a.kind == "raise" else a for a in items]

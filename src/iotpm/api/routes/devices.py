"""The device routes: the fleet's devices, one device in detail, and one device's alarms."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Annotated

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Query

from iotpm.api.http import (
    DAY,
    MAX_SPAN,
    Clock,
    DeviceIdParam,
    NameQuery,
    TimeQuery,
    TokenQuery,
    json_response,
    known,
    responses,
    time_range,
)
from iotpm.api.models import AnomalyPage, DeviceDetail, DevicePage, EffectiveDetector, EffectiveLimit
from iotpm.api.ports import DeviceFilter, Queries
from iotpm.api.views import anomaly, summary, trend, with_state

if TYPE_CHECKING:
    from iotpm.operator.service import Operator


def build_router(queries: Queries, clock: Clock, operator: Operator | None = None) -> Router:
    """The device routes over ``queries``; with ``operator``, the limits in effect and alarm states."""
    router = Router()  # type: ignore[no-untyped-call]  # Powertools' Router.__init__ is unannotated

    @router.get("/devices", responses=responses(DevicePage), summary="devices, filtered", tags=["devices"])
    def devices(
        site: NameQuery = None,
        line: NameQuery = None,
        health_below: Annotated[float | None, Query(ge=0, le=100, description="health strictly below")] = None,
        limit: Annotated[int, Query(ge=1, le=500)] = 100,
        next_token: TokenQuery = None,
    ) -> Response[str]:
        page = queries.devices(DeviceFilter(site, line, health_below), limit, next_token)
        return json_response(DevicePage(items=[summary(r) for r in page.items], next_token=page.cursor))

    @router.get("/devices/<device_id>", responses=responses(DeviceDetail), summary="one device", tags=["devices"])
    def device(device_id: DeviceIdParam) -> Response[str]:
        record = known(queries, device_id)
        open_alarm = None
        if record.alarm_open and record.alarm_since_ms is not None:
            since = record.alarm_since_ms
            raises = queries.device_anomalies(device_id, since, since + 1, 2, None).items
            open_alarm = next((anomaly(a) for a in raises if a.kind == "raise"), None)
        detail = DeviceDetail(
            **summary(record).model_dump(),
            readings=record.readings,
            open_alarm=open_alarm,
            trend={name: trend(t, record.last_ts_ms) for name, t in record.trend.items()},
        )
        if operator is not None:  # the limits in effect and the alarm's state (ISA-18.2)
            limits = {m: EffectiveLimit(low=s.limits.low, high=s.limits.high, source=s.source)
                      for m, s in operator.device_limits(record).items()}  # fmt: skip
            state = operator.controls(device_id).state(record, clock())
            shown = None if open_alarm is None else with_state(open_alarm, record, state)
            settings, source = operator.device_detector(record)
            detector = EffectiveDetector(settings=settings, source=source)
            update = {"limits": limits, "alarm_state": state, "open_alarm": shown, "detector": detector}
            detail = detail.model_copy(update=update)
        return json_response(detail)

    @router.get("/devices/<device_id>/anomalies", responses=responses(AnomalyPage), summary="alarms", tags=["devices"])
    def device_anomalies(
        device_id: DeviceIdParam,
        from_: Annotated[datetime | None, Query(alias="from", description="ISO 8601; default: to - 7 days")] = None,
        to: TimeQuery = None,
        limit: Annotated[int, Query(ge=1, le=500)] = 100,
        next_token: TokenQuery = None,
    ) -> Response[str]:
        start, end = time_range(from_, to, MAX_SPAN["anomalies"], clock, default=7 * DAY)
        record = known(queries, device_id)
        page = queries.device_anomalies(device_id, start, end, limit, next_token)
        items = [anomaly(a) for a in page.items]
        if operator is not None:  # each raise's alarm state: the open alarm's, or cleared
            state = operator.controls(device_id).state(record, clock())
            items = [with_state(a, record, state) for a in items]
        return json_response(AnomalyPage(items=items, next_token=page.cursor))

    return router

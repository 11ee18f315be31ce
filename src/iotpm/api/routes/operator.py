"""The operator's routes: registration, limits, the alarm workflow and the audit trail.

Reads keep the API key; writes are IAM-authorized in API Gateway, so a write reaches
here with the caller's IAM principal in the request context, and that principal is who
the audit trail names (locally the twin's server puts its operator credential there). A
write without a principal is refused (403) even so: the route does not trust the
gateway's configuration alone.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Body, Header, Path, Query
from aws_lambda_powertools.event_handler.openapi.types import OpenAPIResponse
from pydantic import BaseModel

from iotpm.api.models import ErrorBody, ErrorDetail, iso
from iotpm.api.operator_models import (
    AcknowledgeIn,
    AlarmOut,
    AuditItem,
    AuditPage,
    RebaselineIn,
    RegistrationIn,
    RegistrationOut,
    ShelveIn,
)
from iotpm.detection.config import ThresholdConfig
from iotpm.models.readings import DEVICE_ID_PATTERN, epoch_ms
from iotpm.operator.ports import Document, Registration
from iotpm.operator.service import AlarmControls, AlarmState, Operator, OperatorError, parse_if_match

DeviceIdParam = Annotated[str, Path(pattern=DEVICE_ID_PATTERN, description="the device's id (its thing name)")]
IfMatch = Annotated[str | None, Header(description='the version read, from ETag (e.g. "3")')]
TAGS = ["operator"]
#: the write routes' security scheme in the OpenAPI document (AWS_IAM in API Gateway)
WRITE_SECURITY: list[dict[str, list[str]]] = [{"sigv4": []}]
_STATUS_TEXT = {
    400: "the body or a parameter is invalid (the message says what; nothing was stored)",
    403: "missing or wrong credentials (writes: IAM; reads: the API key)",
    404: "no such device",
    409: "the alarm is not in a state that allows this",
    412: "If-Match names another version than the current one: read again",
    428: "If-Match is required to change an existing document",
    503: "a table could not be read or written; retry",
}


class OperatorUnavailableError(Exception):
    """This deployment has no operator stores (the report's in-process API, a read-only build)."""


def _responses(model: type[Any], *statuses: int) -> dict[int, OpenAPIResponse]:
    ok: dict[int, OpenAPIResponse] = {200: {"description": "OK", "content": {"application/json": {"model": model}}}}
    err: OpenAPIResponse = {"description": "", "content": {"application/json": {"model": ErrorBody}}}
    return ok | {s: {**err, "description": _STATUS_TEXT[s]} for s in (400, 403, *statuses, 503)}


def _json(body: BaseModel, headers: dict[str, str] | None = None) -> Response[str]:
    return Response(200, "application/json", body.model_dump_json(), headers=headers)


def _error(status: int, code: str, message: str) -> Response[str]:
    body = ErrorBody(error=ErrorDetail(status=status, code=code, message=message))
    return Response(status, "application/json", body.model_dump_json())


def register_errors(app: APIGatewayRestResolver) -> None:
    """Shape the operator service's refusals (registered by call: the decorator is untyped)."""

    def refused(exc: OperatorError) -> Response[str]:
        return _error(exc.status, exc.code, str(exc))

    def unavailable(exc: OperatorUnavailableError) -> Response[str]:
        return _error(503, "unavailable", str(exc))

    app.exception_handler(OperatorError)(refused)
    app.exception_handler(OperatorUnavailableError)(unavailable)


def principal(event: Any) -> str | None:
    """The caller's IAM principal as API Gateway's AWS_IAM authorization leaves it in the request context."""
    identity = event.request_context.identity
    return identity.user_arn or identity.caller or None


def registration_out(r: Registration) -> RegistrationOut:
    return RegistrationOut.model_validate(
        {
            **r.as_dict(),
            "device_id": r.device_id,
            "updated_at": iso(r.updated_ms) if r.updated_ms else None,
            "updated_by": r.updated_by,
        }
    )


def _at(ms: int | None) -> datetime | None:
    return None if ms is None else iso(ms)


def alarm_out(device_id: str, c: AlarmControls, state: AlarmState) -> AlarmOut:
    at = _at
    return AlarmOut(
        device_id=device_id, state=state, acknowledged_at=at(c.acknowledged_ms), acknowledged_by=c.acknowledged_by,
        note=c.note, shelved_until=at(c.shelved_until_ms), shelved_by=c.shelved_by, shelve_reason=c.shelve_reason,
        rebaseline_at=at(c.rebaseline_ms), rebaselined_by=c.rebaselined_by,
    )  # fmt: skip


class _Context:
    """What the operator routes share: the service (or 503), the writer (or 403), the clock."""

    def __init__(self, router: Router, operator: Operator | None, clock: Callable[[], int]) -> None:
        self.router, self.operator, self.clock = router, operator, clock

    def service(self) -> Operator:
        if self.operator is None:
            raise OperatorUnavailableError("the operator's tables are not configured in this deployment")
        return self.operator

    def who(self) -> str:
        found = principal(self.router.current_event)
        if not found:
            raise ForbiddenError("writes need IAM credentials (curl --aws-sigv4); an API key only reads")
        return found

    def limits_response(self, doc: Document) -> Response[str]:
        etag = {"ETag": f'"{doc.version}"'}
        return _json(ThresholdConfig.model_validate(dict(doc.body)), etag)

    def alarm(self, device_id: str, c: AlarmControls) -> Response[str]:
        record = self.service().device(device_id)
        return _json(alarm_out(device_id, c, c.state(record, self.clock())))


def build_router(operator: Operator | None, clock: Callable[[], int]) -> Router:
    """The operator routes bound to ``operator`` (None: they answer 503)."""
    router = Router()  # type: ignore[no-untyped-call]  # Powertools' Router.__init__ is unannotated
    ctx = _Context(router, operator, clock)
    for add in (_registration_routes, _config_routes, _alarm_routes, _audit_routes):
        add(router, ctx)
    return router


def _registration_routes(router: Router, ctx: _Context) -> None:
    """GET/PUT /devices/{device_id}/registration."""

    @router.get(
        "/devices/<device_id>/registration", responses=_responses(RegistrationOut, 404), summary="registration",
        tags=TAGS,
    )  # fmt: skip
    def get_registration(device_id: DeviceIdParam) -> Response[str]:
        held = ctx.service().registry.get(device_id)
        if held is None:
            return _error(404, "not_found", f"device {device_id!r} is not registered")
        return _json(registration_out(held))

    @router.put(
        "/devices/<device_id>/registration", responses=_responses(RegistrationOut), summary="register (IAM)",
        tags=TAGS,
        security=WRITE_SECURITY,
    )  # fmt: skip
    def put_registration(device_id: DeviceIdParam, body: Annotated[RegistrationIn, Body()]) -> Response[str]:
        reg = Registration(device_id, body.site, body.line, body.device_type, body.gateway,
                           {k: v.model_dump() for k, v in body.overrides.items()})  # fmt: skip
        return _json(registration_out(ctx.service().register(reg, ctx.who())))


def _config_routes(router: Router, ctx: _Context) -> None:
    """GET/PUT /config/limits and /config/detector (versioned: ETag, If-Match)."""

    @router.get("/config/limits", responses=_responses(ThresholdConfig), summary="limits (ETag: version)", tags=TAGS)
    def get_limits() -> Response[str]:
        return ctx.limits_response(ctx.service().limits())

    @router.put(
        "/config/limits", responses=_responses(ThresholdConfig, 412, 428), summary="replace the limits (IAM, If-Match)",
        tags=TAGS,
        security=WRITE_SECURITY,
    )  # fmt: skip
    def put_limits(body: Annotated[ThresholdConfig, Body()], if_match: IfMatch = None) -> Response[str]:
        user = ctx.who()
        return ctx.limits_response(
            ctx.service().put_limits(body.model_dump(mode="json"), parse_if_match(if_match), user)
        )

    @router.get(
        "/config/detector", responses=_responses(dict[str, Any]), summary="detector settings (ETag: version)", tags=TAGS
    )
    def get_detector() -> Response[str]:
        doc = ctx.service().detector()
        return Response(200, "application/json", json.dumps(dict(doc.body)), headers={"ETag": f'"{doc.version}"'})

    @router.put(
        "/config/detector",
        responses=_responses(dict[str, Any], 412, 428),
        summary="replace the detector settings (IAM, If-Match)",
        tags=TAGS,
        security=WRITE_SECURITY,
    )
    def put_detector(
        body: Annotated[dict[str, Any], Body(description="DetectorConfig's fields but thresholds (/config/limits)")],
        if_match: IfMatch = None,
    ) -> Response[str]:
        user = ctx.who()
        doc = ctx.service().put_detector(body, parse_if_match(if_match), user)
        return Response(200, "application/json", json.dumps(dict(doc.body)), headers={"ETag": f'"{doc.version}"'})


def _alarm_routes(router: Router, ctx: _Context) -> None:
    """The alarm workflow: acknowledge, shelve, re-baseline, and the alarm's state."""

    @router.post(
        "/devices/<device_id>/alarm/acknowledge", responses=_responses(AlarmOut, 404, 409), summary="acknowledge (IAM)",
        tags=TAGS,
        security=WRITE_SECURITY,
    )  # fmt: skip
    def acknowledge(device_id: DeviceIdParam, body: Annotated[AcknowledgeIn, Body()]) -> Response[str]:
        return ctx.alarm(device_id, ctx.service().acknowledge(device_id, ctx.who(), body.note))

    @router.post(
        "/devices/<device_id>/alarm/shelve", responses=_responses(AlarmOut, 404), summary="shelve (IAM)", tags=TAGS,
        security=WRITE_SECURITY,
    )  # fmt: skip
    def shelve(device_id: DeviceIdParam, body: Annotated[ShelveIn, Body()]) -> Response[str]:
        until = body.until if body.until.tzinfo is not None else body.until.replace(tzinfo=UTC)
        if not datetime(2000, 1, 1, tzinfo=UTC) < until < datetime(2100, 1, 1, tzinfo=UTC):
            return _error(400, "bad_request", "until: must be between 2000 and 2100")
        return ctx.alarm(device_id, ctx.service().shelve(device_id, ctx.who(), epoch_ms(until), body.reason))

    @router.post(
        "/devices/<device_id>/rebaseline", responses=_responses(AlarmOut, 404), summary="re-baseline (IAM)", tags=TAGS,
        security=WRITE_SECURITY,
    )  # fmt: skip
    def rebaseline(device_id: DeviceIdParam, body: Annotated[RebaselineIn, Body()]) -> Response[str]:
        return ctx.alarm(device_id, ctx.service().rebaseline(device_id, ctx.who(), body.note))

    @router.get("/devices/<device_id>/alarm", responses=_responses(AlarmOut, 404), summary="alarm state", tags=TAGS)
    def get_alarm(device_id: DeviceIdParam) -> Response[str]:
        s = ctx.service()
        record = s.device(device_id)
        if record is None:
            return _error(404, "not_found", f"device {device_id!r} is not known")
        c = s.controls(device_id)
        return _json(alarm_out(device_id, c, c.state(record, ctx.clock())))


def _audit_routes(router: Router, ctx: _Context) -> None:
    """GET /audit: every operator write, newest first."""

    @router.get("/audit", responses=_responses(AuditPage), summary="every operator write, newest first", tags=TAGS)
    def audit(
        since: Annotated[datetime | None, Query(description="ISO 8601; default: 30 days ago")] = None,
        until: Annotated[datetime | None, Query(description="ISO 8601; default: now")] = None,
        limit: Annotated[int, Query(ge=1, le=500)] = 100,
        next_token: Annotated[str | None, Query(max_length=2048, pattern=r"^[A-Za-z0-9_-]+$")] = None,
    ) -> Response[str]:
        end = epoch_ms(_utc(until)) if until is not None else ctx.clock() + 1
        start = epoch_ms(_utc(since)) if since is not None else end - int(timedelta(days=30).total_seconds() * 1000)
        if start >= end:
            return _error(400, "bad_request", "query parameter 'since': must be before 'until'")
        page = ctx.service().audit_page(start, end, limit, next_token)
        items = [
            AuditItem(
                time=iso(e.ts_ms),
                id=e.entry_id,
                who=e.who,
                action=e.action,
                subject=e.subject,
                before=None if e.before is None else dict(e.before),
                after=None if e.after is None else dict(e.after),
            )
            for e in page.items
        ]
        return _json(AuditPage(items=items, next_token=page.cursor))


class ForbiddenError(OperatorError):
    status, code = 403, "forbidden"


def _utc(t: datetime) -> datetime:
    value = t if t.tzinfo is not None else t.replace(tzinfo=UTC)
    if not datetime(2000, 1, 1, tzinfo=UTC) <= value <= datetime(2100, 1, 1, tzinfo=UTC):
        raise OutOfRangeError("query parameters 'since' and 'until': must be between 2000 and 2100")
    return value


class OutOfRangeError(OperatorError):
    pass

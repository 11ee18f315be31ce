"""The operator routes' request and response bodies (pydantic): the OpenAPI contract's schemas."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import Field

from iotpm.api.models import Body
from iotpm.models.readings import NAME_PATTERN


class LimitsIn(Body):
    low: float | None = None
    high: float | None = None


class RegistrationIn(Body):
    site: str = Field(pattern=NAME_PATTERN)
    line: str = Field(pattern=NAME_PATTERN)
    device_type: str = Field(pattern=NAME_PATTERN)
    gateway: str | None = Field(
        default=None,
        pattern=NAME_PATTERN,
        description='the gateway thing it publishes through: another registered device whose device_type is "gateway"',
    )
    overrides: dict[str, LimitsIn] = Field(
        default_factory=dict, description="the device's own limits by metric or quantity (they win over /config/limits)"
    )


class RegistrationOut(RegistrationIn):
    device_id: str
    version: int
    updated_at: datetime | None
    updated_by: str


class AcknowledgeIn(Body):
    note: str | None = Field(default=None, max_length=1000)


class ShelveIn(Body):
    until: datetime = Field(description="ISO 8601; the alarm un-shelves by itself then (at most 30 days ahead)")
    reason: str = Field(min_length=1, max_length=1000)


class RebaselineIn(Body):
    note: str | None = Field(default=None, max_length=1000)


class AlarmOut(Body):
    device_id: str
    state: Literal["normal", "unacknowledged", "acknowledged", "shelved"]
    acknowledged_at: datetime | None
    acknowledged_by: str | None
    note: str | None
    shelved_until: datetime | None
    shelved_by: str | None
    shelve_reason: str | None
    rebaseline_at: datetime | None = Field(description="the detector learns anew from its next reading after this")
    rebaselined_by: str | None


class AuditItem(Body):
    time: datetime
    id: str
    who: str = Field(description="the IAM principal (locally: the twin's operator credential)")
    action: Literal["registration", "configuration", "acknowledge", "shelve", "rebaseline"]
    subject: str = Field(description="the device id, or the configuration document's name")
    before: dict[str, Any] | None
    after: dict[str, Any] | None


class AuditPage(Body):
    items: list[AuditItem]
    next_token: str | None

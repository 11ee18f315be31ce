"""The operator's writes and what they mean: validation, versions, and an audit entry for each.

Every write names who made it (the API passes the IAM principal of the request) and
leaves one :class:`~iotpm.operator.ports.AuditEntry` with the subject before and after,
written in the same transaction as the change (both or neither).
The limits document is validated whole before it is stored (an invalid one is never
half applied) and written only over the version its writer read.
"""

from __future__ import annotations

import dataclasses
import json
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from iotpm.api.ports import Page
from iotpm.detection.config import DetectorConfig, Limits, ThresholdConfig
from iotpm.models.metrics import parse_metric
from iotpm.operator.ports import (
    DETECTOR,
    LIMITS,
    Audited,
    AuditEntry,
    AuditLog,
    Document,
    Documents,
    Registration,
    Registry,
    alarm_document,
    registrations_by_id,
)
from iotpm.service.errors import ConflictError
from iotpm.service.ports import DeviceRecord

#: the longest a shelve may last (ISA-18.2: shelving is time-limited)
MAX_SHELVE_MS = 30 * 86_400_000
#: the largest audit entry (its before and after as JSON): a DynamoDB item holds at most 400 KB,
#: and the entry is written in the change's own transaction, so a larger one would refuse the change
MAX_AUDIT_BYTES = 380_000
AlarmState = Literal["normal", "unacknowledged", "acknowledged", "shelved"]
#: the device type that makes a registered thing a gateway (as Terraform's ``things``)
GATEWAY_TYPE = "gateway"


class OperatorError(Exception):
    """A write the service refuses; ``status`` is the HTTP status the API answers with."""

    status = 400
    code = "bad_request"


class InvalidDocumentError(OperatorError):
    """The body is not a valid document (nothing was stored)."""


class InvalidRegistrationsError(InvalidDocumentError):
    """Registrations of an import refused (nothing was stored); ``problems``: why, by device id."""

    def __init__(self, problems: Mapping[str, str]) -> None:
        self.problems = dict(problems)
        super().__init__("; ".join(f"device {d!r}: {p}" for d, p in self.problems.items()))


class NotFoundError(OperatorError):
    status, code = 404, "not_found"


class PreconditionRequiredError(OperatorError):
    status, code = 428, "precondition_required"


class PreconditionFailedError(OperatorError):
    status, code = 412, "precondition_failed"


class StateConflictError(OperatorError):
    status, code = 409, "conflict"


class AlarmControls(BaseModel):
    """A device's alarm controls (the body of its ``alarm/<device id>`` document)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    acknowledged_ms: int | None = None  # server time, for the record
    acknowledged_by: str | None = None
    #: the acknowledged alarm's ``alarm_since_ms`` (the device's clock): which incident was
    #: acknowledged, compared with the open alarm's own time, never with server time
    alarm_since_ms: int | None = None
    note: str | None = None
    shelved_until_ms: int | None = None
    shelved_by: str | None = None
    shelve_reason: str | None = None
    rebaseline_ms: int | None = None
    rebaselined_by: str | None = None
    rebaseline_note: str | None = None  # e.g. what was repaired (kept in the audit trail)

    def shelved(self, now_ms: int) -> bool:
        """Shelved at ``now_ms``, server time (a shelve ends by itself at its ``until``)."""
        return self.shelved_until_ms is not None and now_ms < self.shelved_until_ms

    def acknowledged_for(self, since_ms: int) -> bool:
        """Whether the alarm open since ``since_ms`` (the device's clock) was acknowledged.

        An acknowledgement names the incident it was given for; one recorded before that was
        kept (no ``alarm_since_ms``) falls back to comparing its time.
        """
        if self.acknowledged_ms is None:
            return False
        if self.alarm_since_ms is not None:
            return self.alarm_since_ms == since_ms
        return self.acknowledged_ms >= since_ms

    def state(self, record: DeviceRecord | None, now_ms: int) -> AlarmState:
        """The alarm's state as ISA-18.2 names it (``normal``: no open alarm)."""
        if record is None or not record.alarm_open:
            return "normal"
        if self.shelved(now_ms):
            return "shelved"
        return "acknowledged" if self.acknowledged_for(record.alarm_since_ms or 0) else "unacknowledged"


@dataclass(frozen=True, slots=True)
class SourcedLimits:
    """The limits in effect for one metric and where they come from."""

    limits: Limits
    source: str  # registration, device:<id>, line:<line>, device_type:<type>, default


def detector_settings(config: DetectorConfig) -> dict[str, Any]:
    """A DetectorConfig's fields but its thresholds, as JSON (the detector settings document)."""
    return config.model_dump(mode="json", exclude={"thresholds"})


#: the sections of a detector settings document with per-type settings (a flat document is the defaults)
SETTINGS_SECTIONS = frozenset({"defaults", "device_types"})


@dataclass(frozen=True)
class DetectorSettings:
    """The detector settings document read: the defaults, each device type's partial override as
    stored, and each of those types' whole settings (the defaults with the override merged in)."""

    defaults: DetectorConfig
    overrides: dict[str, dict[str, Any]]
    by_type: dict[str, DetectorConfig]

    def document(self) -> dict[str, Any]:
        """The document as stored: flat when there is no per-type section (as before)."""
        flat = detector_settings(self.defaults)
        return {"defaults": flat, "device_types": self.overrides} if self.overrides else flat


def settings_of(body: Any) -> DetectorSettings:
    """The detector settings document ``{"defaults": {...}, "device_types": {"<type>": {...}}}`` (or a
    flat one: the defaults) validated whole: every type's merged settings, or :class:`InvalidDocumentError`
    naming what is wrong; nothing is half applied."""
    if not isinstance(body, dict):
        raise InvalidDocumentError("the detector settings must be an object")
    sectioned = bool(SETTINGS_SECTIONS & body.keys())
    if sectioned and body.keys() - SETTINGS_SECTIONS:
        raise InvalidDocumentError(
            f"unknown sections {sorted(body.keys() - SETTINGS_SECTIONS)}: defaults, device_types"
        )
    defaults_part = body.get("defaults") if sectioned else body
    if defaults_part is not None and not isinstance(defaults_part, dict):
        raise InvalidDocumentError("defaults: an object of the detector settings")
    flat = dict(defaults_part or {})
    overrides = (body.get("device_types") or {}) if sectioned else {}
    if not isinstance(overrides, dict) or not all(isinstance(v, dict) for v in overrides.values()):
        raise InvalidDocumentError("device_types: an object of each device type's settings")
    parts = [("defaults." if sectioned else "", flat), *((f"device_types.{t}.", v) for t, v in overrides.items())]
    for where, part in parts:
        if "thresholds" in part:
            raise InvalidDocumentError(f"{where}thresholds: the limits are /config/limits, not detector settings")
    defaults = _detector_config(flat, "the detector settings")
    base = detector_settings(defaults)
    by_type = {t: _detector_config(_merged(base, o), f"device_types.{t}") for t, o in sorted(overrides.items())}
    return DetectorSettings(defaults, {t: dict(overrides[t]) for t in sorted(overrides)}, by_type)


def _detector_config(body: dict[str, Any], what: str) -> DetectorConfig:
    try:
        return DetectorConfig.model_validate(body)
    except ValidationError as exc:
        raise InvalidDocumentError(f"{what} are invalid: {_problems(exc)}") from exc


def _merged(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """``override`` over ``base``, nested objects merged key by key."""
    out = dict(base)
    for k, v in override.items():
        out[k] = _merged(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def thresholds_of(document: Document | None) -> ThresholdConfig:
    """The limits document as a ThresholdConfig (the shipped defaults when there is none)."""
    return ThresholdConfig() if document is None else ThresholdConfig.model_validate(dict(document.body))


def with_registrations(config: ThresholdConfig, registrations: Iterable[Registration]) -> ThresholdConfig:
    """``config`` with each device's registration overrides over its ``device`` entry."""
    device = {k: dict(v) for k, v in config.device.items()}
    for reg in registrations:
        if reg.overrides:
            mine = {m: Limits.model_validate(dict(v)) for m, v in reg.overrides.items()}
            device[reg.device_id] = {**device.get(reg.device_id, {}), **mine}
    return config.model_copy(update={"device": device})


def sourced_limits(
    config: ThresholdConfig, metrics: Iterable[str], registration: Registration | None, device_id: str,
    line: str, device_type: str,
) -> dict[str, SourcedLimits]:  # fmt: skip
    """Per metric with a unit, the limits in effect and their source (the order ThresholdConfig.resolve uses)."""
    mine = registration.overrides if registration is not None else {}
    tables: list[tuple[Mapping[str, Any], str]] = [
        (mine, "registration"),
        (config.device.get(device_id, {}), f"device:{device_id}"),
        (config.line.get(line, {}), f"line:{line}"),
        (config.device_type.get(device_type, {}), f"device_type:{device_type}"),
        (config.defaults, "default"),
    ]
    out = {}
    for metric in sorted(metrics):
        unit = parse_metric(metric)
        if unit is None:
            continue
        for table, source in tables:
            key = next((k for k in (metric, unit.quantity) if k in table), None)
            if key is not None:
                out[metric] = SourcedLimits(Limits.model_validate(dict(table[key])), source)
                break
    return out


def parse_if_match(header: str | None) -> int | None:
    """The version an ``If-Match`` header names (``"3"``, ``W/"3"`` or ``3``); None without one."""
    if header is None:
        return None
    text = header.strip().removeprefix("W/").strip('"')
    if not text.isdigit():
        raise PreconditionFailedError(f"If-Match {header!r} is not a version this API issued")
    return int(text)


def gateway_problem(registration: Registration, gateway: Registration | None) -> str | None:
    """Why ``registration`` cannot name its gateway (None: it names none, or a registered gateway).

    ``gateway`` is the registration of the thing it names (None: not registered). As Terraform's
    ``things`` validation: a device's gateway is another registered thing whose device_type is
    ``gateway`` (the processor lets that thing publish the device's readings, and only it).
    """
    name = registration.gateway
    if name is None:
        return None
    if name == registration.device_id:
        return f"gateway: {name!r} cannot be its own gateway (leave gateway empty for a device that publishes itself)"
    if registration.device_type == GATEWAY_TYPE:
        return f"gateway: a gateway publishes itself; {registration.device_id!r} cannot be under gateway {name!r}"
    if gateway is None:
        return f"gateway: {name!r} is not a registered device (register it first, with device_type {GATEWAY_TYPE!r})"
    if gateway.device_type != GATEWAY_TYPE:
        return f"gateway: {name!r} is a {gateway.device_type!r}, not a gateway (device_type {GATEWAY_TYPE!r})"
    return None


def _problems(exc: ValidationError) -> str:
    return "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'document'}: {e['msg']}" for e in exc.errors())


class Operator:
    """The operator's writes over the registry, the documents and the audit log."""

    def __init__(
        self,
        registry: Registry,
        documents: Documents,
        audit: AuditLog,
        devices: Callable[[str], DeviceRecord | None],
        now_ms: Callable[[], int] | None = None,
    ) -> None:
        self.registry, self.documents, self.audit = registry, documents, audit
        self._devices = devices
        self._now = now_ms or (lambda: int(time.time() * 1000))

    # -- registry --------------------------------------------------------------------------------------------
    def register(self, registration: Registration, who: str) -> Registration:
        """Create or replace a device's registration (read, then written over the version read); 400 when
        it names a gateway that is not a registered gateway (see :func:`gateway_problem`)."""
        gw = registration.gateway
        problem = gateway_problem(registration, None if gw in (None, registration.device_id) else self.registry.get(gw))
        if problem is None and registration.device_type != GATEWAY_TYPE:
            problem = self._still_a_gateway(registration.device_id)
        if problem is not None:
            raise InvalidDocumentError(problem)
        return self._write(registration, who)

    def _still_a_gateway(self, device_id: str, moved: Mapping[str, Registration] | None = None) -> str | None:
        """Why a thing cannot stop being a gateway: devices are still registered under it (None: none;
        ``moved``: registrations an import writes, whose own gateway counts instead of the stored one)."""
        held = self.registry.get(device_id)
        if held is None or held.device_type != GATEWAY_TYPE:
            return None
        moved = moved or {}
        named = [d for d in self.registry.under(device_id, 3 + len(moved)) if d not in moved][:3]
        named += sorted(d for d, r in moved.items() if r.gateway == device_id)[: 3 - len(named)]
        if not named:
            return None
        return (
            f"device_type: {device_id!r} is the gateway of {', '.join(map(repr, named))}"
            f"{' and others' if len(named) == 3 else ''}; register those elsewhere first"
        )

    def _write(self, registration: Registration, who: str) -> Registration:
        held = self.registry.get(registration.device_id)
        expected = None if held is None else held.version
        new = Registration(**{**_fields(registration), "updated_ms": self._now(), "updated_by": who})
        after = dataclasses.replace(new, version=(expected or 0) + 1).as_dict()
        before = None if held is None else held.as_dict()
        entry = self._entry(who, "registration", registration.device_id, before, after)
        return self.registry.put(new, expected, entry)

    def import_registrations(self, registrations: Iterable[Registration], who: str) -> int:
        """Register each (an unchanged one is not written again); how many changed.

        Every gateway named is checked first, against the import's own registrations and the
        registry (:class:`InvalidRegistrationsError` naming each device refused: nothing is
        written); the import's gateways are written before the devices that name them.
        """
        regs = list(registrations)
        listed = registrations_by_id(regs)
        elsewhere = sorted({r.gateway for r in regs if r.gateway is not None and r.gateway not in listed})
        known = {**(self.registry.get_many(elsewhere) if elsewhere else {}), **listed}
        problems = {r.device_id: p for r in regs if (p := gateway_problem(r, known.get(r.gateway or ""))) is not None}
        retyped = [r.device_id for r in regs if r.device_type != GATEWAY_TYPE and r.device_id not in problems]
        for device_id, was in (self.registry.get_many(retyped) if retyped else {}).items():
            if was.device_type == GATEWAY_TYPE and (p := self._still_a_gateway(device_id, listed)) is not None:
                problems[device_id] = p  # a gateway retyped while devices still name it
        if problems:
            raise InvalidRegistrationsError(problems)
        changed = 0
        for reg in sorted(regs, key=lambda r: r.device_type != GATEWAY_TYPE):  # stable: the file's order otherwise
            held = self.registry.get(reg.device_id)
            if held is not None and held.as_dict() | {"version": 0} == reg.as_dict() | {"version": 0}:
                continue
            self._write(reg, who)
            changed += 1
        return changed

    # -- limits ----------------------------------------------------------------------------------------------
    def limits(self) -> Document:
        """The limits document (version 0: none stored yet, the shipped defaults)."""
        held = self.documents.get(LIMITS)
        return held or Document(LIMITS, ThresholdConfig().model_dump(mode="json"), 0)

    def put_limits(self, body: Any, if_match: int | None, who: str) -> Document:
        """Validate ``body`` whole, then store it over version ``if_match`` (412 on another, 428 without)."""
        try:
            config = ThresholdConfig.model_validate(body)
        except ValidationError as exc:
            raise InvalidDocumentError(f"the limits document is invalid: {_problems(exc)}") from exc
        return self._put_document(LIMITS, config.model_dump(mode="json"), if_match, who)

    def detector(self) -> Document:
        """The detector settings document (version 0: none stored yet, the shipped settings)."""
        held = self.documents.get(DETECTOR)
        return held or Document(DETECTOR, detector_settings(DetectorConfig()), 0)

    def put_detector(self, body: Any, if_match: int | None, who: str) -> Document:
        """Validate ``body`` whole (DetectorConfig's fields but ``thresholds``, which are /config/limits;
        per device type under ``device_types``, see :func:`settings_of`); store it."""
        return self._put_document(DETECTOR, settings_of(body).document(), if_match, who)

    def _put_document(self, name: str, body: dict[str, Any], if_match: int | None, who: str) -> Document:
        held = self.documents.get(name)
        if held is not None and if_match is None:
            raise PreconditionRequiredError(
                f"send If-Match with the version you read (the current one is {held.version})"
            )
        current = 0 if held is None else held.version
        if if_match is not None and if_match != current:
            raise PreconditionFailedError(f"{name} is at version {current}, not {if_match}: read it again")
        after = {"version": current + 1, "body": body}
        entry = self._entry(who, "configuration", name, None if held is None else _doc(held), after)
        try:
            return self.documents.put(name, body, _version(held), who, self._now(), entry)
        except ConflictError as exc:
            raise PreconditionFailedError(f"{name} changed while this was written: read it again") from exc

    def device_detector(self, record: DeviceRecord) -> tuple[dict[str, Any], str]:
        """The detector settings in effect for a device (its type's, or the defaults) and their source.

        A stored document that no longer validates (written before a field was removed): the
        processor keeps the last good settings it read, which the API cannot see; the shipped
        settings are shown with a source that says so.
        """
        reg = self.registry.get(record.device_id)
        kind = reg.device_type if reg is not None else record.device_type
        held = self.documents.get(DETECTOR)
        if held is None:
            return detector_settings(DetectorConfig()), "default"
        try:
            settings = settings_of(dict(held.body))
        except InvalidDocumentError:
            shipped = detector_settings(DetectorConfig())
            return shipped, f"document:v{held.version} is invalid: the processor keeps its last good settings"
        if kind in settings.by_type:
            return detector_settings(settings.by_type[kind]), f"device_type:{kind}"
        return detector_settings(settings.defaults), f"document:v{held.version}"

    def device_limits(self, record: DeviceRecord) -> dict[str, SourcedLimits]:
        """The limits in effect for a device's metrics and where each comes from."""
        reg = self.registry.get(record.device_id)
        line, kind = (reg.line, reg.device_type) if reg is not None else (record.line, record.device_type)
        metrics = set(record.latest) | set(record.trend)
        return sourced_limits(thresholds_of(self.documents.get(LIMITS)), metrics, reg, record.device_id, line, kind)

    # -- alarm -----------------------------------------------------------------------------------------------
    def controls(self, device_id: str) -> AlarmControls:
        return _controls_of(self.documents.get(alarm_document(device_id)))

    def controls_many(self, device_ids: Sequence[str]) -> dict[str, AlarmControls]:
        """Each device's alarm controls, read in one request."""
        docs = self.documents.get_many([alarm_document(d) for d in device_ids])
        return {d: _controls_of(docs.get(alarm_document(d))) for d in device_ids}

    def acknowledge(self, device_id: str, who: str, note: str | None) -> AlarmControls:
        """Acknowledge the device's open alarm (409 when none is open)."""
        record = self._known(device_id)
        if not record.alarm_open:
            raise StateConflictError(f"device {device_id!r} has no open alarm to acknowledge")
        return self._control(
            device_id, who, "acknowledge", acknowledged_ms=self._now(), acknowledged_by=who, note=note,
            alarm_since_ms=record.alarm_since_ms,
        )  # fmt: skip

    def shelve(self, device_id: str, who: str, until_ms: int, reason: str) -> AlarmControls:
        """Shelve the device's alarms until ``until_ms`` (recorded, not sent); at most 30 days ahead."""
        self._known(device_id)
        now = self._now()
        if not now < until_ms <= now + MAX_SHELVE_MS:
            raise InvalidDocumentError("until: must be in the future and at most 30 days ahead")
        return self._control(device_id, who, "shelve", shelved_until_ms=until_ms, shelved_by=who, shelve_reason=reason)

    def rebaseline(self, device_id: str, who: str, note: str | None = None) -> AlarmControls:
        """Ask the processor to let the device's detector learn anew from now (its next batch does)."""
        self._known(device_id)
        return self._control(
            device_id, who, "rebaseline", rebaseline_ms=self._now(), rebaselined_by=who, rebaseline_note=note
        )

    def audit_page(self, since_ms: int, until_ms: int, limit: int, cursor: str | None) -> Page[AuditEntry]:
        return self.audit.page(since_ms, until_ms, limit, cursor)

    def device(self, device_id: str) -> DeviceRecord | None:
        """The device's record as the processor keeps it (None: never seen)."""
        return self._devices(device_id)

    # -- internals -------------------------------------------------------------------------------------------
    def _known(self, device_id: str) -> DeviceRecord:
        record = self._devices(device_id)
        if record is None:
            raise NotFoundError(f"device {device_id!r} is not known")
        return record

    def _control(self, device_id: str, who: str, action: str, **change: Any) -> AlarmControls:
        name = alarm_document(device_id)
        held = self.documents.get(name)
        before = _controls_of(held)
        after = before.model_copy(update=change)
        body = after.model_dump(mode="json")
        entry = self._entry(who, action, device_id, before.model_dump(mode="json"), body)
        try:
            self.documents.put(name, body, _version(held), who, self._now(), entry)
        except ConflictError as exc:
            raise StateConflictError(f"device {device_id!r}'s alarm changed meanwhile: retry") from exc
        return after

    def _entry(self, who: str, action: str, subject: str, before: Mapping[str, Any] | None,
               after: Mapping[str, Any] | None) -> Audited:  # fmt: skip
        """The write's audit entry, for its store to write in the same transaction."""
        size = len(json.dumps([before, after], separators=(",", ":")))
        if size > MAX_AUDIT_BYTES:
            raise InvalidDocumentError(
                f"{subject}: too large to store with its audit entry ({size:,} bytes of before and after; "
                f"at most {MAX_AUDIT_BYTES:,})"
            )
        # the id sorts writes of one millisecond by the wall clock in ns, then a random tail
        entry_id = f"{time.time_ns():020d}{uuid.uuid4().hex[:4]}"
        return Audited(self.audit, AuditEntry(self._now(), entry_id, who, action, subject, before, after))


def _fields(r: Registration) -> dict[str, Any]:
    return {
        "device_id": r.device_id, "site": r.site, "line": r.line, "device_type": r.device_type,
        "gateway": r.gateway, "overrides": {k: dict(v) for k, v in r.overrides.items()},
    }  # fmt: skip


def _controls_of(held: Document | None) -> AlarmControls:
    return AlarmControls() if held is None else AlarmControls.model_validate(dict(held.body))


def _doc(d: Document) -> dict[str, Any]:
    return {"version": d.version, "body": dict(d.body)}


def _version(d: Document | None) -> int | None:
    return None if d is None else d.version

"""What the processor reads from the operator's stores, through a short cache.

The processor asks once a batch for its devices' registrations and alarm controls and
for the detector configuration; each is read again once it is older than ``ttl_s``
(30 s by default, at most 60), so a change an operator makes through the API applies
within a minute, without a redeploy or a cold start, at the cost of one BatchGetItem
per table per minute per batch's devices and one GetItem for the limits.

* identity: a registered device's site, line and type are its registration's (the
  authoritative source), whatever its payload or first message said;
* limits: the limits document (validated again: a document that does not validate
  keeps the last good configuration, logged) with each registered device's overrides
  over its ``device`` entry, on the detector settings document's other settings;
* shelve: an alarm event of a device shelved at processing time (the server's clock, which
  the shelve's ``until`` was set against: a device's own clock may be hours off) is recorded,
  not sent; once the shelve has ended, an alarm still standing whose alert the shelve held is
  announced, once (:meth:`OperatorCache.announce_unshelved`);
* re-baseline: a device drops its learned state and learns anew from its first reading
  processed once the cache has read the request (within ``ttl_s``); its record keeps which
  request it applied (``rebaselined_ms``), so each request applies once, however often the
  device reported while the cache still held the controls from before it.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

import msgspec
from pydantic import ValidationError

from iotpm.detection import DetectorConfig, DeviceState, FleetDetector
from iotpm.detection.state import layout_for
from iotpm.models import ReadingFields, Rejection, RejectReason
from iotpm.observability import log
from iotpm.operator.ports import DETECTOR, LIMITS, Document, Documents, Registration, Registry, alarm_document
from iotpm.operator.service import (
    AlarmControls,
    InvalidDocumentError,
    settings_of,
    thresholds_of,
    with_registrations,
)
from iotpm.service.errors import StoreError
from iotpm.service.ports import Alert, Alerts, AnomalyRow, AnomalyStore, DeviceRecord

MAX_TTL_S = 60.0
#: the most devices' controls a cache holds (a registered gateway naming invented devices cannot grow it
#: without bound; a fleet larger than this reads the controls it dropped again)
MAX_DEVICES = 50_000
#: where an unregistered device's readings go: its payload's site, line and type (the
#: bootstrap), ``unassigned`` site and line until it is registered, or to the quarantine
#: (``unregistered_device``)
Unregistered = Literal["payload", "unassigned", "quarantine"]
UNASSIGNED = "unassigned"


@dataclass(frozen=True, slots=True)
class DeviceControl:
    """A device's registration (None: not registered) and alarm controls."""

    registration: Registration | None = None
    alarm: AlarmControls = field(default_factory=AlarmControls)
    #: False: the tables could not be read and nothing was read before (the device keeps the
    #: identity its record or payload gives; it is not quarantined for an outage)
    read: bool = True


class OperatorCache:
    """The operator's stores as the processor reads them, each entry at most ``ttl_s`` old."""

    def __init__(
        self,
        registry: Registry,
        documents: Documents,
        base: DetectorConfig | None = None,
        *,
        ttl_s: float = 30.0,
        unregistered: Unregistered = "payload",
        clock: Callable[[], float] = time.monotonic,
        wall_ms: Callable[[], int] | None = None,
        max_devices: int = MAX_DEVICES,
    ) -> None:
        """``max_devices``: the most devices' controls held (those read longest ago are dropped first)."""
        if not 0 <= ttl_s <= MAX_TTL_S:
            raise ValueError(f"ttl_s must be within 0-{MAX_TTL_S:g} s (a change must apply within a minute)")
        self.registry, self.documents, self.base = registry, documents, base or DetectorConfig()
        self.ttl_s, self.unregistered, self._clock = ttl_s, unregistered, clock
        self.max_devices = max_devices
        self._devices: dict[str, tuple[float, DeviceControl]] = {}
        self._overridden: dict[str, Registration] = {}  # the registrations with limits of their own
        self._read_at: float | None = None  # when the limits document was last read
        self._version = -1  # the limits document's version in effect (0: none stored)
        self._thresholds = self.base.thresholds
        self._settings_version = -1  # the detector settings document's, likewise
        self._settings = self.base
        self._type_settings: dict[str, DetectorConfig] = {}  # per device type (the document's device_types)
        self._config = self.base
        self._type_configs: dict[str, DetectorConfig] = {}
        self._overrides_rev = 0  # moves on whenever a registration with overrides is read changed, or goes
        self._key: tuple[int, int, int] | None = None
        self._wall_ms = wall_ms or (lambda: int(time.time() * 1000))
        self._batch_ms: int | None = None  # the processing time of the batch being processed
        self._announced: set[tuple[str, int]] = set()  # (device, alarm since) announced after a shelve

    def devices(self, device_ids: Sequence[str], now_ms: int | None = None) -> dict[str, DeviceControl]:
        """Each device's control, the stale or missing ones read again in one request per table;
        ``now_ms`` is the batch's processing time (default: the wall clock when asked)."""
        self._batch_ms = now_ms
        now = self._clock()
        stale = [d for d in device_ids if d not in self._devices or now - self._devices[d][0] > self.ttl_s]
        if stale:
            try:
                regs = self.registry.get_many(stale)
            except StoreError as exc:  # the shard goes on: what was read last (else nothing) until it answers
                log("warning", "device registry unreadable; the last controls read stand", error=str(exc),
                    devices=len(stale))  # fmt: skip
                return {d: self._devices[d][1] if d in self._devices else DeviceControl(read=False) for d in device_ids}
            try:  # read apart: an outage of the alarm documents alone does not hide the registrations
                docs: dict[str, Document] | None = dict(self.documents.get_many([alarm_document(d) for d in stale]))
            except StoreError as exc:  # the last alarm controls read stand; read again next batch
                log("warning", "alarm controls unreadable; the last read stand", error=str(exc), devices=len(stale))
                docs = None
            for d in stale:
                last = self._devices.pop(d, None)  # re-inserted: the entries stay in the order they were read
                if docs is None:
                    alarm, at = (last[1].alarm, last[0]) if last is not None else (AlarmControls(), -math.inf)
                else:
                    alarm, at = self._alarm(d, docs.get(alarm_document(d)), last), now
                self._devices[d] = (at, DeviceControl(regs.get(d), alarm))
                reg = regs.get(d)
                if reg is not None and reg.overrides:  # kept apart: config() reads these, not the fleet
                    if self._overridden.get(d) != reg:
                        self._overridden[d] = reg
                        self._overrides_rev += 1
                elif self._overridden.pop(d, None) is not None:
                    self._overrides_rev += 1
            held = {d: self._devices[d][1] for d in device_ids}
            while len(self._devices) > self.max_devices:  # bounded: the entries read longest ago go first
                del self._devices[next(iter(self._devices))]
            return held
        return {d: self._devices[d][1] for d in device_ids}

    @staticmethod
    def _alarm(device_id: str, doc: Document | None, last: tuple[float, DeviceControl] | None = None) -> AlarmControls:
        """A device's alarm controls; a document that does not validate keeps the last read (never fails the batch)."""
        if doc is None:
            return AlarmControls()
        try:
            return AlarmControls.model_validate(dict(doc.body))
        except ValidationError as exc:  # the API never stores one; a hand-edited item or a newer writer might
            log("error", "alarm controls invalid; the last read stand", device_id=device_id, error=str(exc))
            return last[1].alarm if last is not None else AlarmControls()

    def config(self) -> DetectorConfig:
        """The detector configuration in effect (the same object until something in it changes)."""
        now = self._clock()
        if self._read_at is None or now - self._read_at > self.ttl_s:
            try:
                docs = self.documents.get_many([LIMITS, DETECTOR])
            except StoreError as exc:  # the configuration in effect stands; read again next batch
                log("warning", "configuration unreadable; the configuration in effect stands", error=str(exc))
                return self._config
            self._read_at = now
            self._read_limits(docs.get(LIMITS))
            self._read_settings(docs.get(DETECTOR))
        key = (self._version, self._settings_version, self._overrides_rev)
        if key != self._key:
            regs = list(self._overridden.values())
            merged = with_registrations(self._thresholds, regs)
            self._config = self._settings.model_copy(update={"thresholds": merged})
            self._type_configs = {
                t: c.model_copy(update={"thresholds": merged}) for t, c in self._type_settings.items()
            }
            self._key = key
        return self._config

    def config_for(self, device_type: str) -> DetectorConfig:
        """The detector configuration in effect for devices of ``device_type`` (its settings when the
        document has its own for it, else the defaults; the limits are the same merged ones)."""
        defaults = self.config()
        return self._type_configs.get(device_type, defaults)

    def configs(self) -> tuple[DetectorConfig, Mapping[str, DetectorConfig]]:
        """The configuration in effect and the device types' own, read together: one batch is scored
        under one configuration (a TTL expiring mid-batch does not split it)."""
        defaults = self.config()
        return defaults, self._type_configs

    def _read_limits(self, doc: Document | None) -> None:
        version = 0 if doc is None else doc.version
        if version != self._version:
            try:
                self._thresholds = self.base.thresholds if doc is None else thresholds_of(doc)
                self._version = version
            except (ValidationError, ValueError, TypeError) as exc:  # the API never stores one; a hand edit might
                log("error", "the stored limits document is invalid; the last good one stays", error=str(exc))

    def _read_settings(self, doc: Document | None) -> None:
        version = 0 if doc is None else doc.version
        if version != self._settings_version:
            try:
                read = None if doc is None else settings_of(dict(doc.body))
                self._settings = self.base if read is None else read.defaults
                self._type_settings = {} if read is None else read.by_type
                self._settings_version = version
            except (ValidationError, InvalidDocumentError, ValueError, TypeError) as exc:  # never fails the batch
                log("error", "the stored detector settings are invalid; the last good ones stay", error=str(exc))

    def admit(self, record: DeviceRecord, control: DeviceControl | None, fleet: FleetDetector) -> bool:
        """Give ``record`` its registered identity and re-baseline its state when asked (through
        ``fleet``); False when its readings go to the quarantine instead (unregistered, ``quarantine`` set)."""
        if control is not None and not control.read:
            return True
        reg = control.registration if control is not None else None
        if reg is None and self.unregistered == "quarantine":
            return False
        if reg is not None:
            record.site, record.line, record.device_type, record.identity = (
                reg.site, reg.line, reg.device_type, "registry",
            )  # fmt: skip
        elif self.unregistered == UNASSIGNED:
            record.site, record.line, record.identity = UNASSIGNED, UNASSIGNED, UNASSIGNED
        asked = control.alarm.rebaseline_ms if control is not None else None
        if asked is not None and asked > record.rebaselined_ms:
            # once per request, whenever the device reports after it: not by the record's last
            # update, which a batch processed on controls cached before the request moves past it
            if record.detector is not None:
                record.detector = _rebaselined(record, fleet)
                log("info", "re-baselined: the detector learns anew", device_id=record.device_id, asked_ms=asked)
            record.rebaselined_ms = asked  # written with the state it produced (a failed batch applies it again)
        return True

    @staticmethod
    def quarantined(
        device_id: str, readings: Sequence[ReadingFields], indices: Sequence[int]
    ) -> list[tuple[int, Rejection, Any]]:
        """The readings of a device the registry does not know, as quarantine entries (``unregistered_device``)."""
        why = f"device {device_id!r} is not registered (register it: PUT /devices/{device_id}/registration)"
        rejection = Rejection(RejectReason.UNREGISTERED_DEVICE, why, device_id)
        return [(i, rejection, msgspec.to_builtins(r)) for i, r in zip(indices, readings, strict=True)]

    def processing_ms(self) -> int:
        """The batch's processing time (server clock), which shelves are compared with."""
        return self._batch_ms if self._batch_ms is not None else self._wall_ms()

    def shelved(self, device_id: str, ts_ms: int | None = None) -> bool:
        """Whether the device's alarms are shelved now, at processing time (from this batch's read).

        ``ts_ms``, the reading's own time, is not used (accepted for callers that still pass
        it): a device's clock may be hours off the server's, against which ``until`` was set.
        """
        held = self._devices.get(device_id)
        return held is not None and held[1].alarm.shelved(self.processing_ms())

    def announce_unshelved(
        self, record: DeviceRecord, anomalies: AnomalyStore, alerts: Alerts, token: str, ttl_days: int
    ) -> bool:
        """Announce ``record``'s standing alarm once its shelve has ended, if the shelve held its alert;
        True when an alert was sent.

        The alarm's raise row says whether its alert went out: a raise recorded while shelved
        was never claimed, so it is claimed now by ``token`` and sent, once; a retry, a later
        batch or another instance finds it claimed and sends nothing. An alarm whose alert went
        out before the shelve, or that was acknowledged, is not announced again. A failed send
        releases the claim and raises (the batch is retried).
        """
        held = self._devices.get(record.device_id)
        since = record.alarm_since_ms
        if held is None or not record.alarm_open or since is None:
            return False
        alarm = held[1].alarm
        if alarm.shelved_until_ms is None or alarm.shelved(self.processing_ms()) or alarm.acknowledged_for(since):
            return False
        if (record.device_id, since) in self._announced:
            return False
        row = _standing_raise(record, ttl_days)
        if not (anomalies.record(row) and anomalies.claim(row, token)):
            self._announced.add((record.device_id, since))
            return False
        try:
            alerts.publish(_unshelved_alert(row, record, alarm.shelved_until_ms))
        except StoreError:
            anomalies.release(row, token)
            raise
        self._announced.add((record.device_id, since))
        log("info", "shelve ended: standing alarm announced", device_id=record.device_id, since_ms=since)
        return True


def _rebaselined(record: DeviceRecord, fleet: FleetDetector) -> dict[str, Any] | None:
    """The device's state after the detector's re-baseline: its statistics learn anew from the next
    reading, its alarm carries over and clears once its condition is gone (None: a state this
    release cannot read, which learns anew whole)."""
    try:
        state = DeviceState.from_dict(record.detector or {})
    except (ValueError, KeyError, TypeError):
        return None
    return fleet.rebaseline(state).to_dict()


def _standing_raise(record: DeviceRecord, ttl_days: int) -> AnomalyRow:
    """The raise row of ``record``'s open alarm (its key; the fields it would be written with
    if it is no longer there)."""
    since = record.alarm_since_ms or 0
    return AnomalyRow(
        device_id=record.device_id, ts_ms=since, kind="raise", severity=_severity(record), score=0.0,
        site=record.site, line=record.line, device_type=record.device_type, reasons=(),
        expires_at=since // 1000 + ttl_days * 86_400,
    )  # fmt: skip


def _severity(record: DeviceRecord) -> Literal["warning", "critical"]:
    """The open alarm's severity from the detector's state (warning when it cannot be read)."""
    try:
        state = DeviceState.from_dict(record.detector or {})
        critical = state.vector[layout_for(len(state.channels)).offsets["severity"].start] > 0
    except (ValueError, KeyError, TypeError, IndexError):
        return "warning"
    return "critical" if critical else "warning"


def _unshelved_alert(row: AnomalyRow, record: DeviceRecord, until_ms: int) -> Alert:
    """The alert of a standing alarm the shelve held: ``alarm_raised`` (so the routes for raises
    hear it), marked ``unshelved`` with when the shelve ended."""
    at = datetime.fromtimestamp(row.ts_ms / 1000, tz=UTC).isoformat().replace("+00:00", "Z")
    ended = datetime.fromtimestamp(until_ms / 1000, tz=UTC).isoformat().replace("+00:00", "Z")
    body = {
        "event": "alarm_raised", "unshelved": True, "shelved_until": ended, "device_id": row.device_id,
        "site": row.site, "line": row.line, "device_type": row.device_type, "time": at,
        "severity": row.severity, "health": record.health, "reading": dict(record.latest),
    }  # fmt: skip
    attributes = {"severity": row.severity, "site": row.site, "line": row.line, "device_id": row.device_id,
                  "event": "alarm_raised"}  # fmt: skip
    subject = f"[{row.severity.upper()}] {row.device_id} alarm standing after its shelve ended"[:100]
    return Alert(subject, body, attributes, f"{row.device_id}#{row.key}")

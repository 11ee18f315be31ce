"""The operator's stores as ports: the device registry, versioned documents, the audit log.

A document is a JSON object under a name (``limits``, ``alarm/<device id>``) with a
version that every write increments; a write names the version it read (``expected``),
or None for a document that must not exist yet, and a store refuses any other with
:class:`~iotpm.service.errors.ConflictError`, so two operators cannot overwrite each other.

A write given an :class:`Audited` entry stores the change and the entry in one
transaction: both land or neither does, so no change goes unaudited and no entry names a
change that was refused.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from iotpm.api.ports import Page

#: the name of the limits document (the ThresholdConfig JSON)
LIMITS: str = "limits"
#: the name of the detector settings document (DetectorConfig's fields but its thresholds)
DETECTOR: str = "detector"


def alarm_document(device_id: str) -> str:
    """The name of a device's alarm controls document (acknowledge, shelve, re-baseline)."""
    return f"alarm/{device_id}"


@dataclass(frozen=True, slots=True)
class Registration:
    """Where a device is and what it is: the authoritative source of its identity."""

    device_id: str
    site: str
    line: str
    device_type: str
    gateway: str | None = None
    #: the device's own limits, ``{metric or quantity: {"low": x, "high": y}}``: they win over
    #: the limits document's
    overrides: Mapping[str, Mapping[str, float | None]] = field(default_factory=dict)
    version: int = 0
    updated_ms: int = 0
    updated_by: str = ""

    def as_dict(self) -> dict[str, Any]:
        """What the audit trail records of it."""
        return {
            "site": self.site,
            "line": self.line,
            "device_type": self.device_type,
            "gateway": self.gateway,
            "overrides": {k: dict(v) for k, v in self.overrides.items()},
            "version": self.version,
        }


@dataclass(frozen=True, slots=True)
class Document:
    """A versioned JSON document."""

    name: str
    body: Mapping[str, Any]
    version: int
    updated_ms: int = 0
    updated_by: str = ""


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One write: who, when, what, and the subject before and after it."""

    ts_ms: int
    entry_id: str
    who: str
    action: str
    subject: str
    before: Mapping[str, Any] | None
    after: Mapping[str, Any] | None


@dataclass(frozen=True, slots=True)
class Audited:
    """The audit entry of a write and the log it goes to, written in the write's own transaction."""

    log: AuditLog
    entry: AuditEntry


class Registry(Protocol):
    """Devices' registrations, one item per device."""

    def get(self, device_id: str) -> Registration | None:
        """The device's registration, or None."""
        ...

    def get_many(self, device_ids: Sequence[str]) -> dict[str, Registration]:
        """The registrations of those of ``device_ids`` that are registered."""
        ...

    def under(self, gateway: str, limit: int = 10) -> list[str]:
        """Up to ``limit`` ids of the devices registered under ``gateway``, in id order (DynamoDB: the
        ``by_gateway`` index, eventually consistent)."""
        ...

    def put(self, registration: Registration, expected: int | None, audit: Audited | None = None) -> Registration:
        """Store it as version ``expected + 1`` (1 when ``expected`` is None: must be new); ConflictError else.
        With ``audit``, its entry is appended in the same transaction."""
        ...


class Documents(Protocol):
    """Versioned JSON documents by name."""

    def get(self, name: str) -> Document | None:
        """The document, or None."""
        ...

    def get_many(self, names: Sequence[str]) -> dict[str, Document]:
        """The documents of those names that exist."""
        ...

    def put(
        self, name: str, body: Mapping[str, Any], expected: int | None, who: str, now_ms: int,
        audit: Audited | None = None,
    ) -> Document:  # fmt: skip
        """Store ``body`` as version ``expected + 1`` (1 when None: must be new); ConflictError else.
        With ``audit``, its entry is appended in the same transaction."""
        ...


class AuditLog(Protocol):
    """Every operator write, newest first."""

    def append(self, entry: AuditEntry) -> None:
        """Record one write."""
        ...

    def page(self, since_ms: int, until_ms: int, limit: int, cursor: str | None) -> Page[AuditEntry]:
        """Entries in [since, until), newest first."""
        ...


def registrations_by_id(registrations: Iterable[Registration]) -> dict[str, Registration]:
    """``{device_id: registration}`` (the last one of an id wins)."""
    return {r.device_id: r for r in registrations}

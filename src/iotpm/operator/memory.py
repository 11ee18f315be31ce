"""In-memory fakes of the operator's stores (unit and functional tests, the Lambda smoke test).

They refuse, order and page as the DynamoDB adapters do; the contract tests run both.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Mapping, Sequence
from typing import Any

from iotpm.api.ports import InvalidCursorError, Page, decode_cursor, encode_cursor
from iotpm.operator.ports import Audited, AuditEntry, Document, Registration
from iotpm.service.errors import ConflictError


def _check(current: int | None, expected: int | None, what: str) -> None:
    if current != expected:
        found = "absent" if current is None else f"at version {current}"
        raise ConflictError(f"{what} is {found}, not {expected or 'absent'}", code="ConditionalCheckFailedException")


class MemoryRegistry:
    """:class:`~iotpm.operator.ports.Registry` in a dict."""

    def __init__(self) -> None:
        self.items: dict[str, Registration] = {}
        self._lock = threading.Lock()

    def get(self, device_id: str) -> Registration | None:
        return self.items.get(device_id)

    def get_many(self, device_ids: Sequence[str]) -> dict[str, Registration]:
        return {d: self.items[d] for d in device_ids if d in self.items}

    def under(self, gateway: str, limit: int = 10) -> list[str]:
        return sorted(d for d, r in self.items.items() if r.gateway == gateway)[:limit]

    def put(self, registration: Registration, expected: int | None, audit: Audited | None = None) -> Registration:
        with self._lock:
            held = self.items.get(registration.device_id)
            _check(None if held is None else held.version, expected, f"registration {registration.device_id}")
            stored = dataclasses.replace(registration, version=(expected or 0) + 1)
            _append(audit)  # checked first: both or neither
            self.items[registration.device_id] = stored
            return stored


class MemoryDocuments:
    """:class:`~iotpm.operator.ports.Documents` in a dict."""

    def __init__(self) -> None:
        self.items: dict[str, Document] = {}
        self._lock = threading.Lock()

    def get(self, name: str) -> Document | None:
        return self.items.get(name)

    def get_many(self, names: Sequence[str]) -> dict[str, Document]:
        return {n: self.items[n] for n in names if n in self.items}

    def put(
        self, name: str, body: Mapping[str, Any], expected: int | None, who: str, now_ms: int,
        audit: Audited | None = None,
    ) -> Document:  # fmt: skip
        with self._lock:
            held = self.items.get(name)
            _check(None if held is None else held.version, expected, f"document {name}")
            doc = Document(name, dict(body), (expected or 0) + 1, now_ms, who)
            _append(audit)
            self.items[name] = doc
            return doc


class MemoryAudit:
    """:class:`~iotpm.operator.ports.AuditLog` in a list."""

    def __init__(self) -> None:
        self.entries: list[AuditEntry] = []

    def append(self, entry: AuditEntry) -> None:
        if any(_key(e) == _key(entry) for e in self.entries):
            raise ConflictError(f"audit entry {_key(entry)} exists", code="ConditionalCheckFailedException")
        self.entries.append(entry)

    def page(self, since_ms: int, until_ms: int, limit: int, cursor: str | None) -> Page[AuditEntry]:
        rows = sorted((e for e in self.entries if since_ms <= e.ts_ms < until_ms), key=_key, reverse=True)
        after = decode_cursor(cursor, ["k"])
        if after is not None:
            if not isinstance(after["k"], str):
                raise InvalidCursorError("next_token is not a token this API issued")
            rows = [e for e in rows if _key(e) < after["k"]]
        items = rows[:limit]
        return Page(items, encode_cursor({"k": _key(items[-1])}) if len(rows) > limit else None)


def _append(audit: Audited | None) -> None:
    if audit is not None:
        audit.log.append(audit.entry)


def _key(e: AuditEntry) -> str:
    return f"{e.ts_ms:013d}#{e.entry_id}"

"""Alarm events: recorded as anomaly rows, and alerted once per event however often a batch is retried."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, TypeVar

from iotpm.detection import AlarmEvent, DetectionResult
from iotpm.models import ReadingFields
from iotpm.service.batch import DAY_S, Counts, Work
from iotpm.service.errors import StoreError
from iotpm.service.ports import Alert, Alerts, AnomalyRow, AnomalyStore, Failures

if TYPE_CHECKING:
    from iotpm.service.config_cache import OperatorCache

T = TypeVar("T")


class AlarmRecorder:
    """Records each device's alarm events and sends their alerts; configured with the stores."""

    def __init__(
        self, anomalies: AnomalyStore, alerts: Alerts, ttl_days: int, operator: OperatorCache | None = None
    ) -> None:
        self.anomalies, self.alerts, self.ttl_days, self.operator = anomalies, alerts, ttl_days, operator

    def __call__(self, work: Sequence[Work], counts: Counts, token: str, failures: Failures) -> Failures:
        """The events of every device not in ``failures``; the failures with the devices whose store failed."""
        failed: Failures = dict(failures)
        for w in work:
            if w.device_id in failed:
                continue
            try:
                for event in w.result.events:
                    self._event(event, w.fresh[event.index], w.result, counts, token)
                self._unshelved(w, counts, token)
            except StoreError as exc:
                failed[w.device_id] = exc
        return failed

    def _unshelved(self, w: Work, counts: Counts, token: str) -> None:
        """A standing alarm whose alert a shelve held, announced once the shelve has ended."""
        if self.operator is not None and self.operator.announce_unshelved(
            w.after, self.anomalies, self.alerts, token, self.ttl_days
        ):
            counts.alerts_sent += 1

    def _event(
        self, event: AlarmEvent, reading: ReadingFields, result: DetectionResult, counts: Counts, token: str
    ) -> None:
        row = _row(event, reading, self.ttl_days)
        if event.kind == "raise":
            counts.anomalies_raised += 1
        elif event.kind == "clear":
            counts.anomalies_cleared += 1
        # claimed before it is sent, by this attempt's token: a retry after a failure anywhere
        # later finds it claimed and sends nothing, so an alert goes out once per raise; a claim
        # whose outcome is unknown is asked again (idempotent for one token); a failed send
        # releases the claim
        if not self.anomalies.record(row):
            return
        if self.operator is not None and self.operator.shelved(row.device_id):
            counts.alerts_shelved += 1  # recorded, not sent
            return
        if _again(lambda: self.anomalies.claim(row, token)):
            try:
                self.alerts.publish(_alert(row, reading, result))
            except StoreError:
                _again(lambda: self.anomalies.release(row, token))
                raise
            counts.alerts_sent += 1


def _row(event: AlarmEvent, reading: ReadingFields, ttl_days: int) -> AnomalyRow:
    """The anomaly row of ``event``, at ``reading``."""
    return AnomalyRow(
        device_id=reading.device_id,
        ts_ms=event.ts_ms,
        kind=event.kind,
        severity=event.severity,
        score=round(event.score, 4),
        site=reading.site,
        line=reading.line,
        device_type=reading.device_type,
        reasons=tuple(
            {
                "detector": r.detector,
                "metric": r.metric,
                "observed": _finite(r.observed),
                "expected": _finite(r.expected),
                "score": _finite(r.score),
                "detail": r.detail,
            }
            for r in event.reasons
        ),
        expires_at=event.ts_ms // 1000 + ttl_days * DAY_S,
    )


def _finite(value: float) -> float | None:
    """A reason's number as stored and sent: rounded, or None (JSON null) where it is not a
    number (a metric that sent nothing at that reading, which a drift or CUSUM still scores):
    JSON has no NaN, and a client's parser refuses the body that holds one."""
    return round(value, 4) if math.isfinite(value) else None


def _alert(row: AnomalyRow, reading: ReadingFields, result: DetectionResult) -> Alert:
    at = datetime.fromtimestamp(row.ts_ms / 1000, tz=UTC).isoformat().replace("+00:00", "Z")
    top = row.reasons[0] if row.reasons else None
    why = f": {top['metric']} {top['detector']}" if top else ""
    # an escalation carries its new severity, so a route for critical alarms hears it
    verb = {"raise": "raised", "escalate": "escalated", "clear": "cleared"}[row.kind]
    subject = f"[{row.severity.upper()}] {row.device_id} alarm {verb}{why}"[:100]
    body = {
        "event": f"alarm_{verb}",
        "device_id": row.device_id,
        "site": row.site,
        "line": row.line,
        "device_type": row.device_type,
        "time": at,
        "severity": row.severity,
        "score": row.score,
        "health": result.health,
        "reasons": list(row.reasons),
        "reading": dict(reading.metrics),
    }
    attributes = {
        "severity": row.severity,
        "site": row.site,
        "line": row.line,
        "device_id": row.device_id,
        "event": f"alarm_{verb}",
    }
    return Alert(subject, body, attributes, f"{row.device_id}#{row.key}")


def _again(call: Callable[[], T], attempts: int = 3) -> T:
    """``call``, tried again on a retryable store error (it must be idempotent); the last error leaves."""
    for attempt in range(attempts):
        try:
            return call()
        except StoreError as exc:
            if not exc.retryable or attempt == attempts - 1:
                raise
    raise AssertionError("unreachable")

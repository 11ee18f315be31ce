"""One scheduled report run: build the report, store HTML and JSON, send the summary."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from iotpm.analytics.report import ReportOptions, build_report, handler_get
from iotpm.service.ports import Alert, Alerts


class ReportStore(Protocol):
    """Where the renderings go (:class:`iotpm.adapters.s3.S3Reports`)."""

    def put(self, scope: str, day: str, html: str, body: bytes) -> list[str]: ...


class NamedQueries(Protocol):
    """What runs the data-quality queries (Athena's adapter, DuckDB's database)."""

    def named(self, name: str, params: Sequence[Any]) -> list[dict[str, Any]]: ...


@dataclass
class ReportJob:
    """The report Lambda's work, over injected ports."""

    api: Callable[[Mapping[str, Any], Any], Mapping[str, Any]]
    queries: NamedQueries | None
    reports: ReportStore
    alerts: Alerts | None = None

    def __call__(self, options: ReportOptions) -> dict[str, Any]:
        report = build_report(handler_get(self.api), self.queries.named if self.queries else None, options)
        scope = "/".join(x for x in (options.site, options.line) if x) or "fleet"
        body = report.as_json()
        keys = self.reports.put(scope, options.until.date().isoformat(), report.html(),
                                json.dumps(body, indent=2).encode())  # fmt: skip
        if self.alerts is not None:
            attributes = {"event": "report", "severity": "info", "site": options.site or "", "line": options.line or ""}
            self.alerts.publish(Alert(f"iotpm report: {scope}", {"summary": report.summary(), "keys": keys},
                                      attributes, f"report#{scope}#{body['period']['until']}"))  # fmt: skip
        return {"keys": keys, "devices": body["devices"], "open_alarms": len(report.open_alarms),
                "summary": report.summary()}  # fmt: skip


def options_from(event: Mapping[str, Any], now: datetime) -> ReportOptions:
    """The Scheduler's input (``{"site": ..., "line": ..., "hours": 24}``) as options ending ``now``."""
    return ReportOptions(
        until=now,
        hours=float(event.get("hours", 24)),
        site=event.get("site") or None,
        line=event.get("line") or None,
    )

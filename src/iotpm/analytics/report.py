"""The fleet report: what a plant engineer reads each morning, as JSON and as HTML.

Built from the analytics API's own answers (the same contract curl and the
dashboard see) and from the archive's data-quality queries. Per site and line:
devices by health band, open alarms with their reasons, alarms raised in the period,
machines heading for a limit with the time left, and data quality (quarantine by
reason, silent devices, late data). The report Lambda builds it in-process over the
API handler and Athena; ``iotpm report`` over the local twin's API and DuckDB.
"""

from __future__ import annotations

import html
import json
import urllib.parse
import urllib.request
from collections import Counter, defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final, TypeAlias

#: one GET on the analytics API: path and query parameters in, the parsed JSON body out
ApiGet: TypeAlias = Callable[[str, Mapping[str, str]], Any]
#: a named query's rows by name and parameters (DuckDB locally, Athena in AWS)
RunQuery: TypeAlias = Callable[[str, list[Any]], list[dict[str, Any]]]

BANDS: Final = (("good", 80.0), ("watch", 50.0), ("critical", 0.0))  # as the API's line summary
PAGE: Final = "500"


def http_get(base: str, key: str) -> ApiGet:
    """:data:`ApiGet` over HTTP with the API key (the local twin, or a deployed stage)."""

    def get(path: str, params: Mapping[str, str]) -> Any:
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        req = urllib.request.Request(f"{base}{path}{query}", headers={"x-api-key": key})
        with urllib.request.urlopen(req, timeout=30) as resp:
            return json.loads(resp.read())

    return get


def handler_get(handler: Callable[[Mapping[str, Any], Any], Mapping[str, Any]]) -> ApiGet:
    """:data:`ApiGet` in-process: proxy events straight to the API handler (the report Lambda)."""
    from iotpm.api.server import proxy_event

    def get(path: str, params: Mapping[str, str]) -> Any:
        target = f"{urllib.parse.quote(path)}?{urllib.parse.urlencode(params)}" if params else urllib.parse.quote(path)
        out = handler(proxy_event("GET", target, {}, "127.0.0.1"), None)
        if int(out["statusCode"]) != 200:
            raise RuntimeError(f"GET {path}: {out['statusCode']} {out.get('body')}")
        return json.loads(str(out["body"]))

    return get


def _pages(get: ApiGet, path: str, params: Mapping[str, str]) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    query = dict(params)
    while True:
        body = get(path, query)
        items += body["items"]
        if not body.get("next_token"):
            return items
        query["next_token"] = body["next_token"]


@dataclass
class ReportOptions:
    """The period and scope of a report."""

    until: datetime
    hours: float = 24.0
    site: str | None = None
    line: str | None = None
    horizon_hours: float = 168.0  # "heading for a limit": crossing predicted within a week
    silent_minutes: float = 15.0
    late_seconds: float = 60.0

    @property
    def since(self) -> datetime:
        return self.until - timedelta(hours=self.hours)


@dataclass
class FleetReport:
    """The report's content (``as_json``) and its renderings."""

    options: ReportOptions
    lines: dict[str, dict[str, Any]] = field(default_factory=dict)
    open_alarms: list[dict[str, Any]] = field(default_factory=list)
    raised: list[dict[str, Any]] = field(default_factory=list)
    #: open alarms that got worse in the period (a limit crossed, a new cause): their new severity
    escalated: list[dict[str, Any]] = field(default_factory=list)
    heading: list[dict[str, Any]] = field(default_factory=list)
    quality: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        o = self.options
        return {
            "period": {"since": _iso(o.since), "until": _iso(o.until), "hours": o.hours},
            "scope": {"site": o.site, "line": o.line},
            "devices": sum(v["devices"] for v in self.lines.values()),
            "lines": self.lines,
            "open_alarms": self.open_alarms,
            "alarms_raised": self.raised,
            "alarms_escalated": self.escalated,
            "heading_for_limit": self.heading,
            "data_quality": self.quality,
        }

    def named_devices(self) -> set[str]:
        """Every device the report names (the healthy ones appear only in counts)."""
        sections = (self.open_alarms, self.raised, self.escalated, self.heading, self.quality.get("silent_devices", []))
        return {str(row["device_id"]) for section in sections for row in section}

    def summary(self) -> str:
        """A few lines for the alert routes (chat, email)."""
        o = self.options
        scope = "/".join(x for x in (o.site, o.line) if x) or "fleet"
        bands = Counter[str]()
        for v in self.lines.values():
            bands.update(v["health_bands"])
        alarms = ", ".join(f"{a['device_id']} ({a['why']})" for a in self.open_alarms[:5]) or "none"
        states = Counter(str(a["state"]) for a in self.open_alarms)
        quarantined = sum(int(r["messages"]) for r in self.quality.get("quarantine_reasons", []))
        return (
            f"iotpm {scope} report to {_iso(o.until)}: {sum(bands.values())} devices, "
            f"{bands['good']} good / {bands['watch']} watch / {bands['critical']} critical. "
            f"Open alarms: {alarms}; {states['unacknowledged']} unacknowledged, {states['shelved']} shelved. "
            f"{len(self.raised)} raised, {len(self.escalated)} escalated in {o.hours:g} h; "
            f"{len(self.heading)} heading for a limit; {quarantined} quarantined, "
            f"{len(self.quality.get('silent_devices', []))} silent."
        )

    def html(self) -> str:
        return render_html(self)


def build_report(get: ApiGet, run_query: RunQuery | None, options: ReportOptions) -> FleetReport:
    """Gather the report from the API (and the archive's data-quality queries when given)."""
    scope = {k: v for k, v in (("site", options.site), ("line", options.line)) if v}
    devices = _pages(get, "/devices", {**scope, "limit": PAGE})
    report = FleetReport(options)
    report.lines = _lines(devices)
    for d in devices:
        if not d["alarm_open"] and not _may_head_for_limit(d):
            continue
        detail = get(f"/devices/{d['device_id']}", {})
        if detail.get("open_alarm"):
            report.open_alarms.append(_open_alarm(detail))
        report.heading += _heading(detail, options.horizon_hours)
    raised = _pages(get, "/anomalies", {**scope, "since": _iso(options.since), "limit": PAGE})
    until = _iso(options.until)
    report.raised = [_raise(a) for a in raised if a["kind"] == "raise" and a["time"] <= until]
    report.escalated = [_raise(a) for a in raised if a["kind"] == "escalate" and a["time"] <= until]
    for alarm in report.open_alarms:  # an open alarm is as severe as it has become since its raise
        mine = [a for a in report.escalated if a["device_id"] == alarm["device_id"] and a["time"] >= alarm["since"]]
        if any(a["severity"] == "critical" for a in mine):
            alarm["severity"] = "critical"
    report.heading.sort(key=lambda h: h["hours_to_limit"])
    if run_query is not None:
        report.quality = _quality(run_query, options, {d["device_id"] for d in devices} if scope else None)
    return report


def _may_head_for_limit(device: Mapping[str, Any]) -> bool:
    """Only a device below full health can have a trend worth a detail call (1,000 devices, not 1,000 calls)."""
    return float(device["health"]) < 100.0


def _lines(devices: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = defaultdict(
        lambda: {"devices": 0, "health_bands": {name: 0 for name, _ in BANDS}, "open_alarms": 0}
    )
    for d in devices:
        entry = out[f"{d['site']}/{d['line']}"]
        entry["devices"] += 1
        entry["health_bands"][band(float(d["health"]))] += 1
        entry["open_alarms"] += int(bool(d["alarm_open"]))
    return dict(sorted(out.items()))


def band(health: float) -> str:
    """good (>= 80), watch (>= 50) or critical."""
    return next(name for name, floor in BANDS if health >= floor)


def _why(reasons: list[dict[str, Any]]) -> str:
    parts = [f"{r.get('detector')} on {r.get('metric')}" for r in reasons[:3]]
    return ", ".join(parts) or "unspecified"


def _open_alarm(detail: Mapping[str, Any]) -> dict[str, Any]:
    alarm = detail["open_alarm"]
    return {
        "device_id": detail["device_id"], "site": detail["site"], "line": detail["line"],
        "since": alarm["time"], "severity": alarm["severity"], "health": detail["health"],
        "why": _why(alarm["reasons"]), "reasons": alarm["reasons"],
        # acknowledged or shelved where the operator's controls are deployed (issue 29)
        "state": detail.get("alarm_state") or "unacknowledged",
    }  # fmt: skip


def _heading(detail: Mapping[str, Any], horizon_hours: float) -> list[dict[str, Any]]:
    out = []
    for metric, t in sorted(detail.get("trend", {}).items()):
        hours = t.get("hours_to_limit")
        if hours is not None and 0 <= hours <= horizon_hours:
            out.append({
                "device_id": detail["device_id"], "site": detail["site"], "line": detail["line"],
                "metric": metric, "level": t.get("level"), "limit": t.get("limit"),
                "hours_to_limit": round(float(hours), 2), "predicted_crossing": t.get("predicted_crossing"),
            })  # fmt: skip
    return out


def _raise(a: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "device_id": a["device_id"], "site": a["site"], "line": a["line"], "time": a["time"],
        "severity": a["severity"], "why": _why(a["reasons"]),
    }  # fmt: skip


def _quality(run_query: RunQuery, o: ReportOptions, devices: set[str] | None) -> dict[str, list[dict[str, Any]]]:
    days = (o.since.date().isoformat(), o.until.date().isoformat())
    out = {
        "quarantine_reasons": run_query("quarantine_reasons", [*days]),
        "silent_devices": run_query("silent_devices", [*days, o.silent_minutes]),
        "late_data": run_query("late_data", [*days, o.late_seconds]),
    }
    if devices is not None:  # a site or line report: only its devices
        out["silent_devices"] = [r for r in out["silent_devices"] if r["device_id"] in devices]
    if o.line:
        out["late_data"] = [r for r in out["late_data"] if r.get("line") == o.line]
    return {k: [_plain(r) for r in rows] for k, rows in out.items()}


def _plain(row: Mapping[str, Any]) -> dict[str, Any]:
    """JSON-ready values (DuckDB hands back Decimals for some sums)."""
    return {k: v if v is None or isinstance(v, str | int | float) else float(v) for k, v in row.items()}


def _iso(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# -- HTML ---------------------------------------------------------------------------

_STYLE: Final = """
body{font:14px/1.4 system-ui,sans-serif;margin:2rem;color:#1d2330}h1{font-size:1.4rem}
h2{font-size:1.1rem;margin-top:1.6rem;border-bottom:1px solid #ccd}table{border-collapse:collapse;margin:.4rem 0}
td,th{padding:.25rem .6rem;border-bottom:1px solid #e3e6ee;text-align:left}th{background:#f3f5f9}
.good{color:#17803d}.watch{color:#b26b00}.critical{color:#c0262d;font-weight:600}.muted{color:#667}
"""


def _table(rows: list[dict[str, Any]], columns: list[str], empty: str) -> str:
    if not rows:
        return f'<p class="muted">{html.escape(empty)}</p>'
    head = "".join(f"<th>{html.escape(c.replace('_', ' '))}</th>" for c in columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(_cell(r.get(c)))}</td>" for c in columns) + "</tr>" for r in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def _cell(v: Any) -> str:
    if v is None:
        return "-"
    return f"{v:.2f}" if isinstance(v, float) else str(v)


HEADING_COLUMNS: Final = ["device_id", "line", "metric", "level", "limit", "hours_to_limit", "predicted_crossing"]


def render_html(r: FleetReport) -> str:
    """One self-contained HTML page (inline style, no scripts)."""
    j = r.as_json()
    lines = [
        {"line": name, "devices": v["devices"], **v["health_bands"], "open_alarms": v["open_alarms"]}
        for name, v in r.lines.items()
    ]
    q = r.quality
    title = f"iotpm fleet report, {j['period']['since']} to {j['period']['until']}"
    parts = [
        f"<!doctype html><html lang=en><meta charset=utf-8><title>{html.escape(title)}</title><style>{_STYLE}</style>",
        f"<h1>{html.escape(title)}</h1><p>{html.escape(r.summary())}</p>",
        "<h2>Devices by health band</h2>",
        _table(lines, ["line", "devices", "good", "watch", "critical", "open_alarms"], "no devices"),
        "<h2>Open alarms</h2>",
        _table(r.open_alarms, ["device_id", "line", "severity", "state", "since", "health", "why"], "no open alarm"),
        "<h2>Machines heading for a limit</h2>",
        _table(r.heading, HEADING_COLUMNS, "no machine is heading for a limit"),
        "<h2>Alarms raised in the period</h2>",
        _table(r.raised, ["time", "device_id", "line", "severity", "why"], "no alarm raised"),
        "<h2>Alarms escalated in the period</h2>",
        _table(r.escalated, ["time", "device_id", "line", "severity", "why"], "no alarm escalated"),
        "<h2>Data quality</h2><h3>Quarantined messages</h3>",
        _table(q.get("quarantine_reasons", []), ["day", "reason", "messages", "devices"], "nothing quarantined"),
        "<h3>Silent devices</h3>",
        _table(q.get("silent_devices", []), ["device_id", "line", "silent_minutes"], "no silent device"),
        "<h3>Late data</h3>",
        _table(q.get("late_data", []), ["day", "line", "late_readings", "devices", "max_late_seconds"], "no late data"),
        "</html>",
    ]
    return "\n".join(parts)

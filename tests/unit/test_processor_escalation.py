"""An open alarm that gets worse is recorded and alerted as an escalation, once however often
its batch is delivered, with the severity a route for critical alarms filters on."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime

import numpy as np

from iotpm.analytics.report import ReportOptions, build_report, handler_get
from iotpm.api.app import build_app
from iotpm.api.memory import MemoryQueries
from iotpm.service import RawRecord
from iotpm.service.in_memory import MemoryPipeline
from iotpm.service.samples import BASE, NOISE, reading

T0 = 1_790_000_000_000
DEVICE = "dev-0007"


def records(temperatures: list[float], first: int) -> list[RawRecord]:
    rng = np.random.default_rng(first)
    out = []
    for k, temp in enumerate(temperatures, start=first):
        metrics = {m: round(BASE[m] + NOISE[m] * float(rng.normal()), 3) for m in BASE}
        metrics["temperature_c"] = temp
        body = json.dumps(reading(DEVICE, k, T0 + 1000 * k, metrics)).encode()
        out.append(RawRecord(f"{T0:013d}{k:08d}", DEVICE, body, T0 + 1000 * k + 50, "shardId-000000000000"))
    return out


def test_a_warning_that_crosses_its_limit_is_escalated_once_to_the_critical_route(
    memory_pipeline: Callable[..., MemoryPipeline],
) -> None:
    rng = np.random.default_rng(1)
    healthy = [round(55.0 + 0.5 * float(rng.normal()), 3) for _ in range(150)]
    hot = [65.0] * 5 + [95.0] * 10  # a warning first (no limit crossed), then over the 80 °C limit
    batches = [records(healthy, 0), records(hot, 150)]
    stores = memory_pipeline(timeseries=True)
    proc = stores.processor()
    alerts, anomalies = stores.alerts, stores.anomalies
    states, readings, rollups = stores.states, stores.readings, stores.rollups
    for _ in range(3):  # delivered three times: recorded and alerted once
        for batch in batches:
            assert proc(batch, now_ms=T0 + 400_000).failed_sequence_numbers == []
    kinds = [(a.attributes["event"], a.attributes["severity"]) for a in alerts.sent]
    assert kinds == [("alarm_raised", "warning"), ("alarm_escalated", "critical")]
    escalation = alerts.sent[1]
    assert escalation.body["time"].startswith("2026-09-21T") and "escalated" in escalation.subject
    why = {(r["detector"], r["metric"], r["detail"]) for r in escalation.body["reasons"]}
    assert ("threshold", "temperature_c", "above high limit") in why
    # the route for critical alarms (an SNS filter on the severity attribute) hears it
    assert [a.attributes["event"] for a in alerts.sent if a.attributes["severity"] == "critical"] == ["alarm_escalated"]
    rows = sorted((r.ts_ms, r.kind, r.severity) for r, _ in anomalies.items.values())
    assert rows == [(T0 + 150_000, "raise", "warning"), (T0 + 155_000, "escalate", "critical")]

    # the API lists it among the device's anomaly events, and the report shows it
    app = build_app(MemoryQueries(states, readings, anomalies, rollups), now_ms=lambda: T0 + 400_000)
    get = handler_get(lambda event, ctx: app.resolve(dict(event), ctx))
    listed = get(f"/devices/{DEVICE}/anomalies", {})["items"]
    in_time = sorted(listed, key=lambda a: str(a["time"]))
    assert [(a["kind"], a["severity"]) for a in in_time] == [("raise", "warning"), ("escalate", "critical")]
    report = build_report(get, None, ReportOptions(until=datetime.fromtimestamp((T0 + 400_000) / 1000, tz=UTC)))
    assert [(a["device_id"], a["severity"]) for a in report.escalated] == [(DEVICE, "critical")]
    assert report.open_alarms[0]["severity"] == "critical"  # as severe as it has become
    assert "1 raised, 1 escalated" in report.summary() and "Alarms escalated in the period" in report.html()

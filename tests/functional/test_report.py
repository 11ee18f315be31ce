"""The fleet report over the API handler (in-process, as the report Lambda builds it) and DuckDB."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from iotpm.analytics.duck import ArchiveDB
from iotpm.analytics.report import FleetReport, ReportOptions, band, build_report, handler_get
from iotpm.api.app import build_app
from iotpm.api.memory import MemoryQueries
from iotpm.service import memory as m
from iotpm.service.in_memory import MemoryPipeline
from iotpm.service.samples import batch
from iotpm.testing.archive import write_archive

T0 = 1_790_000_000_000
NOW = T0 + 600_000


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory, memory_pipeline: Callable[..., MemoryPipeline]) -> FleetReport:
    s = memory_pipeline()
    p = s.processor()
    for i in range(10):
        assert not p(batch(5, 60, start_ms=T0, first_seq=i * 60, faulty=[2], fault_from=400, seed=i), now_ms=NOW).errors
    folder = tmp_path_factory.mktemp("archive")
    write_archive(s.archive, folder)
    app = build_app(MemoryQueries(s.states, s.readings, s.anomalies, s.rollups), now_ms=lambda: NOW)
    get = handler_get(lambda event, ctx: app.resolve(dict(event), ctx))
    until = datetime.fromtimestamp(NOW / 1000, tz=UTC)
    return build_report(get, ArchiveDB(folder).named, ReportOptions(until=until, hours=24, silent_minutes=60))


def test_the_report_names_the_faulty_device_and_no_healthy_one(report: FleetReport) -> None:
    assert report.named_devices() == {"dev-0002"}
    (alarm,) = report.open_alarms
    assert "temperature_c" in alarm["why"] and alarm["reasons"]
    assert {a["device_id"] for a in report.raised} == {"dev-0002"}
    page = report.html()
    assert "dev-0002" in page and not any(f"dev-000{i}" in page for i in (0, 1, 3, 4))


def test_the_report_counts_every_device_in_a_band(report: FleetReport) -> None:
    body: dict[str, Any] = report.as_json()
    assert body["devices"] == 5 and list(body["lines"]) == ["plant-1/line-1"]
    bands = body["lines"]["plant-1/line-1"]["health_bands"]
    assert sum(bands.values()) == 5 and bands["good"] == 4
    assert body["data_quality"]["quarantine_reasons"] == [] and body["data_quality"]["silent_devices"] == []
    assert "Open alarms: dev-0002 (" in report.summary() and "5 devices, 4 good" in report.summary()


@pytest.mark.parametrize(
    ("health", "name"), [(100, "good"), (80, "good"), (79.9, "watch"), (50, "watch"), (0, "critical")]
)
def test_health_bands_match_the_api_line_summary(health: float, name: str) -> None:
    assert band(health) == name


def test_an_empty_fleet_makes_an_empty_report(tmp_path: Path) -> None:
    app = build_app(MemoryQueries(), now_ms=lambda: NOW)
    get = handler_get(lambda event, ctx: app.resolve(dict(event), ctx))
    r = build_report(get, ArchiveDB(tmp_path).named, ReportOptions(until=datetime.fromtimestamp(NOW / 1000, tz=UTC)))
    assert r.named_devices() == set() and r.as_json()["devices"] == 0 and "no open alarm" in r.html()


class Reports:
    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}

    def put(self, scope: str, day: str, html: str, body: bytes) -> list[str]:
        self.objects[f"reports/{scope}/{day}/report.html"] = html.encode()
        self.objects[f"reports/{scope}/{day}/report.json"] = body
        return sorted(self.objects)


def test_the_report_lambda_writes_both_renderings_and_sends_the_summary(
    tmp_path: Path, memory_pipeline: Callable[..., MemoryPipeline]
) -> None:
    import json

    from iotpm.analytics.job import ReportJob
    from iotpm.handlers.report import ReportHandler

    s = memory_pipeline()
    p = s.processor()
    for i in range(8):
        p(batch(4, 60, start_ms=T0, first_seq=i * 60, faulty=[1], fault_from=300, seed=i), now_ms=NOW)
    app = build_app(MemoryQueries(s.states, s.readings, s.anomalies, s.rollups), now_ms=lambda: NOW)
    reports, alerts = Reports(), m.MemoryAlerts()
    job = ReportJob(lambda e, c: app.resolve(dict(e), c), ArchiveDB(tmp_path), reports, alerts)
    handler = ReportHandler(lambda: job, now=lambda: datetime.fromtimestamp(NOW / 1000, tz=UTC))
    out = handler({"site": "plant-1", "line": "line-1", "hours": 24})  # the schedule's input
    assert out["devices"] == 4 and out["open_alarms"] == 1
    body = json.loads(reports.objects["reports/plant-1/line-1/2026-09-21/report.json"])
    assert body["scope"] == {"site": "plant-1", "line": "line-1"} and body["open_alarms"][0]["device_id"] == "dev-0001"
    (sent,) = alerts.sent
    assert sent.attributes["event"] == "report" and sent.attributes["line"] == "line-1"
    assert "dev-0001" in sent.body["summary"]


def test_the_report_shows_each_open_alarms_state_where_the_operators_controls_are(
    memory_pipeline: Callable[..., MemoryPipeline],
) -> None:
    from iotpm.operator.memory import MemoryAudit, MemoryDocuments, MemoryRegistry
    from iotpm.operator.service import Operator

    s = memory_pipeline()
    p = s.processor()
    for i in range(10):
        assert not p(batch(5, 60, start_ms=T0, first_seq=i * 60, faulty=[2], fault_from=400, seed=i), now_ms=NOW).errors
    queries = MemoryQueries(s.states, s.readings, s.anomalies, s.rollups)
    operator = Operator(MemoryRegistry(), MemoryDocuments(), MemoryAudit(), queries.device, lambda: NOW)
    operator.shelve("dev-0002", "alice", NOW + 3_600_000, "bearing swap")
    app = build_app(queries, now_ms=lambda: NOW, operator=operator)
    get = handler_get(lambda event, ctx: app.resolve(dict(event), ctx))
    until = datetime.fromtimestamp(NOW / 1000, tz=UTC)
    shelved = build_report(get, None, ReportOptions(until=until, hours=24, silent_minutes=60))
    assert [(a["device_id"], a["state"]) for a in shelved.open_alarms] == [("dev-0002", "shelved")]
    assert "0 unacknowledged, 1 shelved" in shelved.summary() and "<td>shelved</td>" in shelved.html()

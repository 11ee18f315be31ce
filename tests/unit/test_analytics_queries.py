"""The named queries (the SQL Athena runs) over archive objects the processor wrote, in DuckDB."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from iotpm.analytics.duck import ArchiveDB, Sources
from iotpm.analytics.queries import named_queries, render
from iotpm.service import RawRecord
from iotpm.service.in_memory import MemoryPipeline
from iotpm.service.memory import MemoryArchive
from iotpm.service.ports import RawLine
from iotpm.service.processor import ProcessorSettings, encode_lines
from iotpm.service.samples import batch
from iotpm.testing.archive import write_archive

T0 = 1_790_000_000_000  # 2026-09-21T14:13:20Z
DAY = "2026-09-21"


Process = Callable[[list[RawRecord], MemoryArchive], None]


@pytest.fixture
def process(memory_pipeline: Callable[..., MemoryPipeline]) -> Process:
    """``process(records, archive)``: a fresh processor and stores over ``records``, archiving into ``archive``."""

    def run(records: list[RawRecord], archive: MemoryArchive) -> None:
        memory_pipeline(timeseries=True).processor(archive=archive)(records)

    return run


@pytest.fixture
def db(tmp_path: Path, process: Process) -> ArchiveDB:
    archive = MemoryArchive()
    records = batch(4, 30, start_ms=T0, faulty=[2], fault_from=10)
    process(records[:80], archive)
    process(records[60:], archive)  # a retry from record 60 on: a second object overlapping the first
    late = RawRecord("9" * 20, "dev-0001", records[1].data, records[1].arrival_ms + 600_000, records[1].shard_id)
    bad = RawRecord("9" * 21, "dev-0009", b'{"device_id": "dev-0009", "ts": 1}', T0 + 700_000, records[0].shard_id)
    process([late, bad], archive)
    write_archive(archive, tmp_path)
    assert len(archive.objects) == 4  # two overlapping raw objects, one more, one quarantine
    return ArchiveDB(tmp_path)


def run(db: ArchiveDB, name: str, *params: object) -> list[dict[str, object]]:
    return db.query(named_queries()[name].template, params).records()


def test_every_named_query_names_its_parameters_and_runs(db: ArchiveDB) -> None:
    values = {"device_id": "dev-0000", "from_day": DAY, "to_day": DAY, "silent_minutes": 1, "late_seconds": 60}
    queries = named_queries()
    assert set(queries) >= {"device_readings", "limit_breaches_per_line_per_day", "quarantine_reasons",
                            "silent_devices", "late_data"}  # fmt: skip
    for q in queries.values():
        assert q.description and q.render().count("?") == len(q.params), q.name
        assert "${" not in q.render()
        db.query(q.template, [values[p] for p in q.params])


def test_readings_are_counted_once_across_overlapping_objects(db: ArchiveDB) -> None:
    rows = run(db, "device_readings", "dev-0000", DAY, DAY)
    assert len(rows) == 30  # 80 + 60 records archived, 120 distinct, 30 per device
    assert [json.loads(str(r["metrics"]))["temperature_c"] > 0 for r in rows] == [True] * 30
    assert db.query("SELECT count(*) FROM raw_records").rows == [(80 + 60 + 2,)]


def test_limit_breaches_name_the_hot_device_only(db: ArchiveDB) -> None:
    rows = {(r["site"], r["line"]): r for r in run(db, "limit_breaches_per_line_per_day", DAY, DAY)}
    (row,) = rows.values()  # the record the processor quarantined (in raw_records too) is left out
    assert (row["day"], row["site"], row["line"]) == (DAY, "plant-1", "line-1")
    assert row["temperature_breaches"] == 20 and row["devices_in_breach"] == 1  # dev-0002 at 85 °C from reading 10
    assert row["pressure_breaches"] == row["vibration_breaches"] == 0


def test_quarantine_late_and_silent(db: ArchiveDB) -> None:
    reasons = run(db, "quarantine_reasons", DAY, DAY)
    assert [(r["messages"], r["devices"]) for r in reasons] == [(1, 1)] and reasons[0]["reason"]
    late = run(db, "late_data", DAY, DAY, 60)
    # dev-0001's record re-sent 10 minutes late; the quarantined record (ts=1) is not a reading
    assert {(r["line"], r["late_readings"], r["devices"]) for r in late} == {("line-1", 1, 1)}
    silent = {r["device_id"] for r in run(db, "silent_devices", DAY, DAY, 5)}
    assert silent == {"dev-0000", "dev-0002", "dev-0003"}  # dev-0001's late copy arrived last


def test_readings_belong_to_the_thing_that_published_them(tmp_path: Path, process: Process) -> None:
    """Issue 27: keyed by the partition key (the publishing thing), the processor's rejections left out."""
    archive = MemoryArchive()
    records = batch(2, 5, start_ms=T0)
    foreign = json.loads(records[0].data) | {"device_id": "dev-0001", "seq": 99, "line": "line-2"}
    spoof = RawRecord("8" * 20, "dev-0000", json.dumps(foreign).encode(), T0 + 9_000, records[0].shard_id)
    process([*records, spoof], archive)  # dev-0000 publishes a reading naming dev-0001: quarantined
    write_archive(archive, tmp_path)
    # a line the processor never judged (an archive from before the device check): the thing's, not the payload's
    lines = [RawLine(T0 + 9_500, json.dumps(foreign), "dev-0000", "7" * 20, records[0].shard_id)]
    hand = tmp_path / "raw" / "year=2026" / "month=09" / "day=21" / "hour=14" / "by-hand.jsonl.gz"
    hand.write_bytes(encode_lines(lines))
    db = ArchiveDB(tmp_path)
    assert db.query("SELECT count(*) FROM raw_records").rows == [(12,)]
    assert len(run(db, "device_readings", "dev-0001", DAY, DAY)) == 5  # neither the spoof nor the hand-written line
    own = run(db, "device_readings", "dev-0000", DAY, DAY)
    assert len(own) == 6 and [r["line"] for r in own if r["arrival_ms"] == T0 + 9_500] == ["line-2"]
    assert [r["reason"] for r in run(db, "quarantine_reasons", DAY, DAY)] == ["device_mismatch"]


def test_a_record_partly_refused_is_still_a_reading(
    tmp_path: Path, memory_pipeline: Callable[..., MemoryPipeline]
) -> None:
    """Names past the channel cap are quarantined (partial); the record's stored metrics still count."""
    records = batch(1, 4, start_ms=T0)
    wide = json.loads(records[3].data)
    wide["metrics"] |= {f"extra_{i}": 1.0 for i in range(4)}
    records[3] = RawRecord(records[3].sequence_number, "dev-0000", json.dumps(wide).encode(), records[3].arrival_ms,
                           records[3].shard_id)  # fmt: skip
    stores = memory_pipeline()
    stores.processor(settings=ProcessorSettings(max_channels=4))(records)
    write_archive(stores.archive, tmp_path)
    db = ArchiveDB(tmp_path)
    assert db.query("SELECT count(*) FROM quarantine_records WHERE partial").rows == [(1,)]
    assert len(run(db, "device_readings", "dev-0000", DAY, DAY)) == 4  # the wide record too


def test_an_empty_archive_answers_with_no_rows(tmp_path: Path) -> None:
    db = ArchiveDB(tmp_path)
    for q in named_queries().values():
        assert db.query(q.template, ["x" if p.endswith(("id", "day")) else 1 for p in q.params]).rows == []


@settings(max_examples=25, deadline=None)
@given(copies=st.lists(st.integers(min_value=0, max_value=9), min_size=1, max_size=30))
def test_dedup_keeps_one_row_per_archive_key(copies: list[int]) -> None:
    """However many times a record is archived, ``${readings}`` has it once (keyed on shard and sequence)."""
    db = ArchiveDB(sources=Sources())  # the other views, empty
    db.con.execute("DROP VIEW raw_records")
    rows = [(T0 + i, json.dumps({"device_id": f"d{k}", "ts": T0}), "p", f"{k:05d}", "s", "2026", "09", "21", "14")
            for i, k in enumerate(copies)]  # fmt: skip
    columns = "arrival_ms BIGINT, data VARCHAR, partition_key VARCHAR, sequence_number VARCHAR, shard_id VARCHAR"
    db.con.execute(f"CREATE TABLE raw_records ({columns}, year VARCHAR, month VARCHAR, day VARCHAR, hour VARCHAR)")
    db.con.executemany("INSERT INTO raw_records VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
    got = db.con.execute(f"SELECT sequence_number, arrival_ms FROM {render('${readings}')} r").fetchall()
    first = {f"{k:05d}": T0 + copies.index(k) for k in copies}
    assert sorted(got) == sorted(first.items())


def test_the_sql_files_mean_the_same_to_terraform_and_python() -> None:
    """Terraform's templatefile reads ``${...}`` and ``%{...}``; Python's Template only ``$name``/``${name}``.

    So the files may hold no ``%{`` and no ``${`` other than the two subqueries (and
    ``readings.sql`` its one part), and then both render them to the same text.
    """
    import re

    sql = Path(__file__).resolve().parents[2] / "src" / "iotpm" / "analytics" / "sql"
    texts = {q.name: (q.template, {"readings", "quarantine"}) for q in named_queries().values()}
    texts["readings"] = ((sql / "readings.sql").read_text(), {"raw_pending", "compacted_recent"})
    texts["quarantine"] = ((sql / "quarantine.sql").read_text(), set())
    for part in (sql / "parts").glob("*.sql"):
        texts[part.stem] = (part.read_text(), set())
    for name, (text, allowed) in texts.items():
        assert "%{" not in text and "$$" not in text, name
        assert set(re.findall(r"\$\{(\w+)\}", text)) <= allowed, name

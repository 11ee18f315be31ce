"""Parquet compaction: compacted hours plus raw ones answer every named query as the raw archive alone does."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from iotpm.analytics.compaction import CompactionSettings, Compactor, FolderFiles, compact_folder, partition
from iotpm.analytics.duck import STATE_KEY, ArchiveDB
from iotpm.analytics.queries import named_queries
from iotpm.service.ports import RawLine
from iotpm.service.processor import encode_lines

H0 = 1_790_042_400_000  # 2026-09-22T00:00:00Z: the first archive hour
HOUR = 3_600_000
SETTINGS = CompactionSettings(grace_s=600, window_h=3)


def hour_of(offset: int) -> str:
    from iotpm.analytics.compaction import hour_at

    return hour_at(H0 + offset * HOUR)


def put(root: Path, prefix: str, offset: int, name: str, lines: Sequence[RawLine | dict[str, Any]]) -> None:
    target = root / prefix / partition(hour_of(offset)) / f"{name}.jsonl.gz"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(encode_lines(lines))


record = st.fixed_dictionaries(
    {
        "hour": st.integers(0, 4),  # the partition of its first copy
        "device": st.integers(0, 2),
        "shard": st.sampled_from(["shardId-000000000000", "shardId-000000000001"]),
        "late_s": st.sampled_from([0, 5, 90, 7200]),  # its timestamp this far before it arrived
        "temp": st.floats(0, 100, allow_nan=False).map(lambda t: round(t, 2)),
        "names_other": st.booleans(),  # the payload names another device than the publishing thing
        "rejected": st.booleans(),  # the processor quarantined it
        "copies": st.lists(st.integers(0, 2), max_size=2),  # a retry archived it again, this many hours later
        "shape": st.sampled_from(["object", "object", "object", "array", "legacy"]),
    }
)


def plain(**fields: Any) -> dict[str, Any]:
    """One record of :data:`record`'s shape: an accepted canonical reading unless ``fields`` say otherwise."""
    base = {"hour": 0, "device": 0, "shard": "shardId-000000000000", "late_s": 0, "temp": 40.0,
            "names_other": False, "rejected": False, "copies": [], "shape": "object"}  # fmt: skip
    return base | fields


def write_archive(root: Path, records: list[dict[str, Any]]) -> None:
    objects: dict[tuple[int, str], list[RawLine]] = {}
    quarantine: dict[int, list[dict[str, Any]]] = {}
    for i, r in enumerate(records):
        arrival = H0 + r["hour"] * HOUR + 60_000 * (i % 50) + 7
        thing, named = (
            f"dev-{r['device']}",
            f"dev-{(r['device'] + 1) % 3}" if r["names_other"] else f"dev-{r['device']}",
        )
        metrics = {"temperature_c": r["temp"], "pressure_psi": 90.0, "vibration_mm_s": 1.5}
        body: Any = {"device_id": named, "ts": arrival - 1000 * r["late_s"], "seq": i, "site": "plant-1",
                     "line": f"line-{r['device'] % 2}", "metrics": metrics}  # fmt: skip
        if r["shape"] == "array":
            body = [body]
        elif r["shape"] == "legacy":
            body = {"sensor_id": named, "production_line": "line-9", "type": "temperature", "value": r["temp"]}
        line = RawLine(arrival, json.dumps(body), thing, f"{49_000 + i:012d}", r["shard"])
        objects.setdefault((r["hour"], r["shard"]), []).append(line)
        for n, lag in enumerate(r["copies"]):
            objects.setdefault((r["hour"] + lag, f"{r['shard']}-retry{n}"), []).append(line)
        if r["rejected"]:
            q = {"reason": "schema_violation", "detail": "x", "device_id": named, "payload": body,
                 "sequence_number": line.sequence_number, "partition_key": thing, "arrival_ms": arrival}  # fmt: skip
            quarantine.setdefault(r["hour"], []).append(q)
    for (offset, name), lines in objects.items():
        put(root, "raw", offset, name, lines)
    for offset, qlines in quarantine.items():
        put(root, "quarantine", offset, "q", qlines)


def answers(root: Path) -> dict[str, list[tuple[Any, ...]]]:
    db = ArchiveDB(root)
    days = ("2026-09-21", "2026-09-23")
    values = {"device_id": "dev-1", "from_day": days[0], "to_day": days[1], "silent_minutes": 30, "late_seconds": 60}
    out = {q.name: db.query(q.template, [values[p] for p in q.params]).rows for q in named_queries().values()}
    out["readings"] = db.query(
        "SELECT device_id, site, line, device_type, ts_ms, arrival_ms, metrics, temperature_c, pressure_psi,"
        " vibration_mm_s, shard_id, sequence_number, dt, hour FROM ${readings} r ORDER BY shard_id, sequence_number"
    ).rows
    db.close()
    return out


def copy_tree(src: Path, dst: Path) -> Path:
    import shutil

    shutil.copytree(src, dst)
    return dst


@settings(max_examples=15, deadline=None)
@given(records=st.lists(record, min_size=1, max_size=30), steps=st.lists(st.integers(0, 8), min_size=1, max_size=2))
def test_compacted_and_raw_answer_as_raw_alone(records: list[dict[str, Any]], steps: list[int]) -> None:
    """Whatever hours are compacted (in one run or several), every named query answers the same."""
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "raw-only"
        write_archive(raw, records)
        expected = answers(raw)
        compacted = copy_tree(raw, Path(tmp) / "compacted")
        for closed in sorted(steps):  # each run: the hours before H0 + closed hours are closed
            compact_folder(compacted, H0 + closed * HOUR + SETTINGS.grace_s * 1000, SETTINGS)
        assert answers(compacted) == expected


def test_readings_of_a_compacted_hour_come_from_parquet(tmp_path: Path) -> None:
    """The mark moves past closed hours; raw objects of compacted hours are no longer read."""
    records = [plain(hour=h, temp=50.0 + h) for h in range(3)]
    write_archive(tmp_path, records)
    result = compact_folder(tmp_path, H0 + 2 * HOUR + SETTINGS.grace_s * 1000, SETTINGS)  # hours 0 and 1 closed
    assert result.hours == [hour_of(0), hour_of(1)] and result.rows == 2 and result.through_hour == hour_of(2)
    assert json.loads((tmp_path / STATE_KEY).read_text()) == {
        "through_hour": hour_of(2),
        "window_from_hour": hour_of(-1),
    }
    for offset in (0, 1):  # the raw objects of compacted hours changed under the queries: they are not read
        put(tmp_path, "raw", offset, "shardId-000000000000", [])
    temps = [r["metrics"] for r in ArchiveDB(tmp_path).named("device_readings", ["dev-0", "2026-09-22", "2026-09-22"])]
    assert [json.loads(m)["temperature_c"] for m in temps] == [50.0, 51.0, 52.0]
    again = Compactor(FolderFiles(tmp_path), SETTINGS)(H0 + 2 * HOUR + SETTINGS.grace_s * 1000)
    assert again.hours == [] and again.through_hour == hour_of(2)  # nothing new is closed


def test_a_run_compacts_at_most_max_hours_and_the_next_goes_on(tmp_path: Path) -> None:
    records = [plain(hour=h, device=1, rejected=h == 1) for h in range(4)]
    write_archive(tmp_path, records)
    small = CompactionSettings(grace_s=600, window_h=3, max_hours=2)
    now = H0 + 10 * HOUR
    first = compact_folder(tmp_path, now, small)
    assert first.hours == [hour_of(0), hour_of(1)] and first.rows == 1  # hour 1's only record was rejected
    assert first.through_hour == hour_of(2)
    second = compact_folder(tmp_path, now, small)
    assert second.hours == [hour_of(2), hour_of(3)] and second.through_hour == hour_of(4)
    assert compact_folder(tmp_path, now, small).through_hour == hour_of(10 - 1)  # empty closed hours: passed


def test_a_catch_up_run_keeps_one_hour_of_files_on_disk_at_a_time(tmp_path: Path) -> None:
    """A Lambda's /tmp is 512 MB: an hour's downloads and Parquet are removed before the next hour's."""
    archive = tmp_path / "archive"
    write_archive(archive, [plain(hour=h, temp=50.0 + h) for h in range(4)])
    compactor = Compactor(FolderFiles(archive), CompactionSettings(grace_s=600, window_h=3, max_hours=10))
    seen: list[int] = []
    real = compactor._hour

    def counting(hour: str, work: Path, result: Any) -> None:
        seen.append(sum(1 for _ in work.parent.iterdir()))  # hour folders present as this hour starts
        real(hour, work, result)

    compactor._hour = counting  # type: ignore[method-assign]
    result = compactor(H0 + 10 * HOUR)
    assert len(result.hours) == 4 and seen == [0, 0, 0, 0]

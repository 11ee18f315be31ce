"""The compact columns give back exactly the readings and entries they were made of."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from iotpm.adapters.dynamodb import chunk_item, chunk_rows, log_entries, log_items
from iotpm.models import ReadingFields
from iotpm.service.ports import (
    CHUNK_ROWS,
    BatchRows,
    DeviceRecord,
    DeviceRows,
    LogDevice,
    LogEntry,
    ReadingRow,
    chunks_of,
    reading_key,
)
from iotpm.service.rows import log_device, reading_rows

names = st.sampled_from(["temperature_c", "vibration_mm_s", "pressure_psi", "rpm", "x"])
values = st.floats(allow_nan=False, allow_infinity=False, width=64)
metrics = st.dictionaries(names, values, min_size=1, max_size=5)
seqs = st.one_of(st.none(), st.integers(0, 2**63 - 1))
places = st.sampled_from([("plant-1", "line-1", "pump"), ("plant-1", "line-2", "pump"), ("p", "l", "fan")])


@st.composite
def device_rows(draw: st.DrawFn) -> list[ReadingRow]:
    n = draw(st.integers(1, 30))
    ts0 = draw(st.integers(0, 2**41))
    first = draw(st.integers(0, 10**9))
    ttl = draw(st.integers(0, 400 * 86_400))
    rows = []
    ordinal = first
    for i in range(n):
        ts = ts0 + draw(st.integers(-3_600_000, 3_600_000))
        seq, m = draw(seqs), draw(metrics)
        site, line, kind = draw(places)
        expires = ts // 1000 + (ttl if draw(st.booleans()) or i == 0 else draw(st.integers(0, 10**6)))
        rows.append(ReadingRow("dev-1", ts, reading_key(ts, seq, m), seq, site, line, kind, m,
                               draw(values), draw(st.booleans()), expires, ordinal))  # fmt: skip
        ordinal += draw(st.sampled_from([1, 1, 1, 2, 7]))
    return rows


@settings(max_examples=200, deadline=None)
@given(device_rows())
def test_a_chunk_reads_back_as_the_rows_it_was_made_of(rows: list[ReadingRow]) -> None:
    for key, chunk in chunks_of(rows).items():
        assert chunk_rows(chunk_item(key, chunk)) == chunk


@settings(max_examples=200, deadline=None)
@given(st.lists(device_rows(), min_size=1, max_size=4), st.integers(1, 2**40),
       st.text("0123456789", min_size=1, max_size=60))  # fmt: skip
def test_a_log_entry_reads_back_as_it_was_written(groups: list[list[ReadingRow]], written: int, seq: str) -> None:
    devices = []
    for k, rows in enumerate(groups):
        site, line, kind = rows[-1].site, rows[-1].line, rows[-1].device_type
        devices.append(LogDevice(
            f"dev-{k}", site, line, kind, seq[: len(seq) // 2] + str(k), 87.5 - k, k % 2 == 0,
            None if k % 2 else written, max(r.ts_ms for r in rows) + (k % 3 == 2), 1000 + k,
            rows[0].ordinal, [r.ts_ms for r in rows], [r.seq for r in rows], [dict(r.metrics) for r in rows],
            [r.score for r in rows], [r.anomaly for r in rows],
        ))  # fmt: skip
    entry = LogEntry(f"{len(seq):03d}{seq}", written, 90 * 86_400, devices)
    (got,) = list(log_entries(log_items("shard-1", entry)))
    assert got == entry


@st.composite
def device_columns(draw: st.DrawFn) -> list[DeviceRows]:
    """A batch's devices as the processor hands them over: each its readings, scores, flags, first
    ordinal and TTL; times within a device in order, over an hour's edge, or out of hour order; and
    more readings than a chunk holds."""
    parts = []
    ttl = draw(st.integers(0, 400 * 86_400))
    for k in range(draw(st.integers(1, 4))):
        n = draw(st.sampled_from([1, 5, 30, CHUNK_ROWS + 3]))
        hour = draw(st.integers(0, 2**20)) * 3_600_000
        spread = draw(st.sampled_from(["one hour", "in order", "any order"]))
        if spread == "one hour":
            ts = sorted(hour + draw(st.integers(0, 3_599_999)) for _ in range(n))
        else:
            ts = [hour + draw(st.integers(-5_000_000, 5_000_000)) for _ in range(n)]
            ts = sorted(ts) if spread == "in order" else ts
        fresh = []
        for t in ts:
            site, line, kind = draw(places)
            m = draw(metrics)
            fresh.append(ReadingFields(f"dev-{k}", t, m, site=site, line=line, device_type=kind, seq=draw(seqs)))
        scores = [draw(values) for _ in ts]
        flags = [draw(st.booleans()) for _ in ts]
        parts.append(DeviceRows(fresh, scores, flags, draw(st.integers(0, 10**9)), ttl))
    return parts


@settings(max_examples=60, deadline=None)
@given(device_columns())
def test_columns_chunk_and_pack_as_the_rows_they_stand_for(parts: list[DeviceRows]) -> None:
    """The processor's columns (DeviceRows) cut into the chunks, pack into the items (byte for byte)
    and log as the entries that the same readings as ReadingRow structs give."""
    rows = [r for part in parts for r in part.rows()]
    assert [r.ordinal for r in parts[0].rows()] == list(range(parts[0].first, parts[0].first + len(parts[0])))
    by_columns, by_rows = chunks_of(BatchRows(parts)), chunks_of(rows)
    assert list(by_columns) == list(by_rows) and by_columns == by_rows
    for key, chunk in by_columns.items():
        assert chunk_item(key, chunk) == chunk_item(key, list(chunk))
        assert chunk_rows(chunk_item(key, chunk)) == list(chunk)
    for part in parts:  # a device whose hours come one after another is cut without building a row
        runs = part.chunks()
        assert runs is None or all(isinstance(by_columns[key], DeviceRows) for key in runs)
        after = DeviceRecord(part.fresh[0].device_id, "s", "l", "pump", health=90.0, readings=part.first + len(part))
        after.ingest = {"pos": {"shard-1": "49" + "0" * 50}}
        work: Any = SimpleNamespace(after=after)
        assert log_device(work, part) == log_device(work, list(part))


@settings(max_examples=60, deadline=None)
@given(device_columns(), st.integers(0, 3))
def test_the_batchs_hours_found_at_once_cut_the_chunks_each_devices_own_times_cut(
    parts: list[DeviceRows], empty_at: int
) -> None:
    """reading_rows finds each device's one hour for the whole batch in one pass: a device whose
    readings fall in one hour gets it, any other none (nor one with no fresh readings), and the
    chunks are those the devices' own times give."""
    parts = [*parts[:empty_at], DeviceRows([], [], [], 7, 0), *parts[empty_at:]]
    work: Any = [
        SimpleNamespace(
            fresh=p.fresh,
            result=SimpleNamespace(score=np.clip(p.scores, -1e6, 1e6), is_anomaly=np.asarray(p.flags)),
            device=SimpleNamespace(device_id=p.fresh[0].device_id if p.fresh else "dev-empty"),
            record=SimpleNamespace(readings=p.first),
        )
        for p in parts
    ]
    got = reading_rows(work, ttl_days=3)
    for p in parts:
        mine = got[p.fresh[0].device_id if p.fresh else "dev-empty"]
        hours = {r.ts_ms - r.ts_ms % 3_600_000 for r in p.fresh}
        assert mine.hour == (hours.pop() if len(hours) == 1 else None)
    rows = [r for p in got.values() for r in p.rows()]
    by_columns = chunks_of(BatchRows(list(got.values())))
    assert list(by_columns) == list(chunks_of(rows)) and by_columns == chunks_of(rows)
    # the same chunks as without the hour: each device's own times
    unhinted = [DeviceRows(p.fresh, p.scores, p.flags, p.first, p.ttl_s) for p in got.values()]
    assert all(u.hour is None for u in unhinted)
    assert list(chunks_of(BatchRows(unhinted))) == list(by_columns)

"""Replay and repeat marks: the batch-wide identities are the per-reading ones, bit for bit, and the
common device's shortcut decides exactly what the reading-by-reading test decides."""

from __future__ import annotations

import zlib

import hypothesis.strategies as st
import numpy as np
from hypothesis import given, settings

from iotpm.models import ReadingFields
from iotpm.service.batch import Counts, DeviceReadings, RawRecord
from iotpm.service.fresh import (
    _CONTENT_BITS,
    BatchMarks,
    _by_names,
    _each_fresh,
    _identity,
    _unpack,
    _vectorised,
    fresh_readings,
    identities,
)
from iotpm.service.ports import DeviceRecord

T0 = 1_790_000_000_000
finite = st.floats(allow_nan=False, allow_infinity=False) | st.sampled_from([0.0, -0.0, 1.0, -1.0, 0.5, 2.0**61])
names = st.sampled_from(["temperature_c", "vibration_mm_s", "pressure_psi", "rpm", "a"])
reading = st.builds(
    ReadingFields,
    device_id=st.just("dev-1"),
    ts_ms=st.integers(T0, T0 + 10_000),
    metrics=st.dictionaries(names, finite, min_size=1, max_size=4),
    seq=st.none() | st.integers(0, 2**63 - 1),
)


@settings(max_examples=200, deadline=None)
@given(st.lists(reading, min_size=1, max_size=40))
def test_the_batch_identities_are_the_per_reading_ones_bit_for_bit(readings: list[ReadingFields]) -> None:
    want = []
    for r in readings:
        key, content = _identity(r, zlib.crc32("\x00".join(r.metrics).encode()))
        want.append(key << _CONTENT_BITS | content)
    assert _vectorised(readings, _by_names([r.metrics for r in readings])).tolist() == want  # numpy's
    times = np.array([r.ts_ms for r in readings], dtype=np.int64)  # the batch's times, as BatchMarks has them
    assert _vectorised(readings, _by_names([r.metrics for r in readings]), None, times).tolist() == want
    assert identities(readings).tolist() == want  # numpy's or, for many name sets, one by one


def _records(n: int, first: int) -> list[RawRecord]:
    return [RawRecord(str(10**20 + first + i), "dev-1", b"{}", T0, "shardId-000000000000") for i in range(n)]


@settings(max_examples=200, deadline=None)
@given(
    st.lists(reading, min_size=1, max_size=30),
    st.lists(reading, min_size=0, max_size=20),
    st.integers(0, 40),
    st.booleans(),
)
def test_the_common_devices_shortcut_decides_as_reading_by_reading(
    earlier: list[ReadingFields], batch: list[ReadingFields], floor: int, repeat: bool
) -> None:
    """Whatever the device's marks (position and recent identities) and the batch (repeats of
    earlier readings, readings twice in it, records at or below the position), the answer is the
    reading-by-reading test's."""
    first = fresh_readings(DeviceReadings("dev-1", 0, earlier, list(range(len(earlier)))),
                           _records(len(earlier), 0), DeviceRecord("dev-1", "s", "l", "t"), Counts())  # fmt: skip
    record = DeviceRecord("dev-1", "s", "l", "t")
    record.ingest = first.ingest
    readings = batch + (earlier[: len(earlier) // 2] if repeat else [])
    if not readings:
        return
    records = _records(len(readings), floor)  # numbered from ``floor``: some at or below the position
    device = DeviceReadings("dev-1", 0, readings, list(range(len(readings))), list(range(len(readings))))
    marks = BatchMarks.of(records, readings)
    got_counts, want_counts = Counts(), Counts()
    got = fresh_readings(device, records, record, got_counts, marks)
    positions = dict(record.ingest["pos"])
    recent = _unpack(record.ingest["recent"])
    want = _each_fresh(device, records, marks, positions, recent, marks.entries.tolist(), want_counts)
    assert got.readings == want.readings
    assert got.indices == want.indices
    assert got.ingest == want.ingest
    assert [(i, r.reason) for i, r, _ in got.conflicts] == [(i, r.reason) for i, r, _ in want.conflicts]
    assert got_counts == want_counts


def test_the_batch_columns_give_the_detector_what_the_readings_give() -> None:
    """Times and values in channel order from the batch's columns, NaN for a channel the readings lack,
    exactly as reading by reading; none when the readings' names differ."""
    from iotpm.service.detect import _values

    metrics = [{"vibration_mm_s": 2.0 + i, "pressure_psi": -1e-3 * i, "temperature_c": 55.5} for i in range(6)]
    readings = [ReadingFields("dev-1", T0 + 1000 * (5 - i), m, seq=i) for i, m in enumerate(metrics)]
    records = _records(len(readings), 0)
    device = DeviceReadings("dev-1", 0, readings, list(range(6)), list(range(6)))
    marks = BatchMarks.of(records, readings)
    fresh = fresh_readings(device, records, DeviceRecord("dev-1", "s", "l", "t"), Counts(), marks)
    assert fresh.rows == [5, 4, 3, 2, 1, 0]  # in time order
    channels = ("pressure_psi", "rpm", "temperature_c", "vibration_mm_s")
    columns = marks.columns(fresh, channels)
    assert columns is not None
    ts, x = columns
    assert ts.tolist() == [r.ts_ms for r in fresh.readings]
    np.testing.assert_array_equal(x, _values(fresh.readings, channels))
    mixed = [*readings[:5], ReadingFields("dev-1", T0, {"temperature_c": 1.0, "rpm": 2.0}, seq=9)]
    device = DeviceReadings("dev-1", 0, mixed, list(range(6)), list(range(6)))
    marks = BatchMarks.of(records, mixed)
    fresh = fresh_readings(device, records, DeviceRecord("dev-1", "s", "l", "t"), Counts(), marks)
    assert marks.names is None and marks.columns(fresh, channels) is None

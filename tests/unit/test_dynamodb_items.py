"""The DynamoDB items of the packed layout: what goes in comes out, and items of the layout before still read."""

from __future__ import annotations

import base64
import json
from typing import Any

import msgspec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from iotpm.adapters.dynamodb import block_item, block_of_item, chunk_item, chunk_rows, device_item, device_record
from iotpm.service.ports import BucketAgg, DeviceRecord, MetricStats, ReadingRow, RollupBlock, reading_key

finite = st.floats(allow_nan=False, allow_infinity=False)
texts = st.one_of(
    st.text(max_size=40),
    st.binary(min_size=0, max_size=200).map(lambda b: base64.b64encode(b).decode()),  # the detector's arrays
)
detectors = st.one_of(
    st.none(),
    st.dictionaries(
        st.text(min_size=1, max_size=8), st.one_of(texts, st.booleans(), st.integers(-9, 9), finite), max_size=6
    ),
)
trends = st.dictionaries(
    st.text(min_size=1, max_size=8), st.dictionaries(st.text(max_size=8), st.none() | finite, max_size=4), max_size=4
)


@settings(max_examples=50, suppress_health_check=[HealthCheck.too_slow])  # a loaded CI machine
@given(detector=detectors, trend=trends)
def test_a_device_record_comes_back_as_it_went_in(detector: dict[str, Any] | None, trend: Any) -> None:
    record = DeviceRecord("dev-1", "plant-1", "line-1", "pump", detector=detector, trend=trend, version=3)
    back = device_record(device_item(record, 4))
    assert back.detector == detector and back.trend == trend and back.version == 4


def test_a_device_item_of_the_layout_before_packing_still_reads() -> None:
    item = device_item(DeviceRecord("dev-1", "plant-1", "line-1", "pump", version=1), 1)
    del item["state"]
    item["detector"] = {"S": json.dumps({"v": 2, "state": "AAAA"})}
    item["trend"] = {"S": json.dumps({"temperature_c": {"level": 1.5}})}
    back = device_record(item)
    assert back.detector == {"v": 2, "state": "AAAA"} and back.trend == {"temperature_c": {"level": 1.5}}


readings = st.builds(
    ReadingRow,
    device_id=st.just("dev-1"),
    ts_ms=st.integers(0, 2**41),
    key=st.text(max_size=30),
    seq=st.none() | st.integers(0, 2**63 - 1),
    site=st.text(max_size=10),
    line=st.text(max_size=10),
    device_type=st.text(max_size=10),
    metrics=st.dictionaries(st.text(min_size=1, max_size=12), finite, max_size=5),
    score=finite,
    anomaly=st.booleans(),
    expires_at=st.integers(0, 2**33),
    ordinal=st.integers(0, 2**40),
)


@settings(max_examples=50, suppress_health_check=[HealthCheck.too_slow])  # a loaded CI machine
@given(rows=st.lists(readings, min_size=1, max_size=20))
def test_a_chunk_holds_its_readings_exactly(rows: list[ReadingRow]) -> None:
    # a stored reading's key is made of its time, sequence number and metric names (the chunk derives it)
    rows = [msgspec.structs.replace(r, key=reading_key(r.ts_ms, r.seq, r.metrics)) for r in rows]
    assert chunk_rows(chunk_item(("dev-1", 0, 7), rows)) == rows


stats = st.builds(MetricStats, st.integers(0, 10**6), finite, finite, finite)
buckets = st.dictionaries(
    st.integers(0, 2**41),
    st.builds(BucketAgg, st.dictionaries(st.text(min_size=1, max_size=8), stats), st.integers(0, 99)),
)


@settings(max_examples=50, suppress_health_check=[HealthCheck.too_slow])  # a loaded CI machine
@given(base=buckets, last=buckets, ordinal=st.integers(-1, 2**40))
def test_a_block_holds_its_buckets_exactly(base: Any, last: Any, ordinal: int) -> None:
    block = RollupBlock(base, last, ordinal)
    assert block_of_item(block_item(("dev-1", "1m", 0), block, 1)) == block

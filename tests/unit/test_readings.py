"""Decoding and validation: canonical and legacy shapes, each bad input's typed reason."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from iotpm.models import (
    FastDecoder,
    Reading,
    ReadingFields,
    Rejection,
    RejectReason,
    ValidationLimits,
    decode,
    epoch_ms,
    utc_from_ms,
)

NOW = int(datetime(2025, 11, 23, 13, 0, tzinfo=UTC).timestamp() * 1000)


def canonical(**overrides: object) -> dict[str, object]:
    msg: dict[str, object] = {
        "schema_version": 1,
        "device_id": "pump-001",
        "ts": NOW - 1000,
        "seq": 42,
        "site": "plant-a",
        "line": "line-1",
        "device_type": "pump",
        "metrics": {"temperature_c": 41.5, "vibration_mm_s": 2.2, "pressure_psi": 88.0},
    }
    msg.update(overrides)
    return msg


def test_canonical_message_decodes_with_units_in_metric_names() -> None:
    reading = decode(json.dumps(canonical()).encode(), NOW)
    assert isinstance(reading, Reading)
    assert reading.device_id == "pump-001"
    assert reading.ts_ms == NOW - 1000
    assert reading.metrics["vibration_mm_s"] == 2.2
    assert reading.dedup_key == ("pump-001", 42)


def test_iso_timestamp_is_accepted_and_naive_means_utc() -> None:
    aware = decode(canonical(ts="2025-11-23T12:53:00Z"), NOW)
    naive = decode(canonical(ts="2025-11-23T12:53:00"), NOW)
    assert isinstance(aware, Reading) and isinstance(naive, Reading)
    assert aware.ts_ms == naive.ts_ms


def test_legacy_sensor_shape_is_normalised() -> None:
    legacy = {
        "sensor_id": "s-17",
        "production_line": "line-2",
        "type": "temperature",
        "value": 71.2,
        "timestamp": "2025-11-23T12:50:00Z",
    }
    reading = decode(json.dumps(legacy), NOW)
    assert isinstance(reading, Reading)
    assert (reading.device_id, reading.line, reading.metrics) == ("s-17", "line-2", {"temperature_c": 71.2})
    assert reading.seq is None


def test_legacy_device_shape_takes_the_ingest_time() -> None:
    reading = decode({"deviceId": "m-9", "sensorType": "vibration", "value": 3.1}, NOW)
    assert isinstance(reading, Reading)
    assert reading.metrics == {"vibration_mm_s": 3.1}
    assert reading.ts_ms == NOW


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"{not json", RejectReason.MALFORMED_JSON),
        (b"[1, 2]", RejectReason.UNKNOWN_SHAPE),
        (json.dumps({"hello": 1}).encode(), RejectReason.UNKNOWN_SHAPE),
        (json.dumps(canonical(schema_version=2)).encode(), RejectReason.UNKNOWN_SCHEMA_VERSION),
        (json.dumps(canonical(schema_version=[1])).encode(), RejectReason.UNKNOWN_SCHEMA_VERSION),  # was a crash
        (json.dumps(canonical(schema_version=True)).encode(), RejectReason.UNKNOWN_SCHEMA_VERSION),
        (json.dumps(canonical(device_id="bad id with spaces")).encode(), RejectReason.INVALID_DEVICE_ID),
        (json.dumps(canonical(device_id="x" * 200)).encode(), RejectReason.INVALID_DEVICE_ID),
        (b'{"device_id": "p-1", "ts": 1, "metrics": {"temperature_c": NaN}}', RejectReason.NON_FINITE_VALUE),
        (b'{"device_id": "p-1", "ts": 1, "metrics": {"temperature_c": Infinity}}', RejectReason.NON_FINITE_VALUE),
        (b'{"device_id": "p-1", "ts": 1, "metrics": {"temperature_c": "NaN"}}', RejectReason.NON_FINITE_VALUE),
        (b'{"device_id": "p-1", "ts": 1, "metrics": {"temperature_c": "1e999"}}', RejectReason.NON_FINITE_VALUE),
        (json.dumps(canonical(ts=NOW + 3_600_000)).encode(), RejectReason.TIMESTAMP_IN_FUTURE),
        (json.dumps(canonical(ts=NOW - 30 * 86_400_000)).encode(), RejectReason.TIMESTAMP_TOO_OLD),
        (json.dumps(canonical(ts="yesterday")).encode(), RejectReason.INVALID_TIMESTAMP),
        (json.dumps(canonical(metrics={})).encode(), RejectReason.SCHEMA_VIOLATION),
        (json.dumps(canonical(metrics={"temperature_c": "hot"})).encode(), RejectReason.SCHEMA_VIOLATION),
        (json.dumps(canonical(seq=-1)).encode(), RejectReason.SCHEMA_VIOLATION),
        (json.dumps(canonical(extra_field=1)).encode(), RejectReason.SCHEMA_VIOLATION),
        (
            json.dumps({"sensor_id": "s1", "type": "humidity", "value": 1, "timestamp": NOW}).encode(),
            RejectReason.SCHEMA_VIOLATION,
        ),
    ],
)
def test_bad_input_is_rejected_with_its_typed_reason(payload: bytes, reason: RejectReason) -> None:
    result = decode(payload, NOW)
    assert isinstance(result, Rejection)
    assert result.reason is reason
    assert result.detail


def test_oversize_message_is_rejected_before_parsing() -> None:
    big = json.dumps(canonical(site="a")).encode() + b" " * 20_000
    result = decode(big, NOW, ValidationLimits(max_bytes=16 * 1024))
    assert isinstance(result, Rejection) and result.reason is RejectReason.OVERSIZE


def test_rejection_names_the_device_when_the_id_is_valid() -> None:
    result = decode(json.dumps(canonical(ts=NOW + 10**9)).encode(), NOW)
    assert isinstance(result, Rejection) and result.device_id == "pump-001"


def test_thing_name_from_the_topic_must_match_the_device() -> None:
    now = 1_790_000_000_000
    msg = {"schema_version": 1, "device_id": "pump-1", "ts": now, "metrics": {"temperature_c": 50.0}}
    ok = decode({**msg, "thing_name": "pump-1"}, now)
    assert not isinstance(ok, Rejection) and ok.device_id == "pump-1"
    bad = decode({**msg, "thing_name": "pump-2"}, now)
    assert isinstance(bad, Rejection) and bad.reason is RejectReason.DEVICE_MISMATCH
    assert "pump-2" in bad.detail


# -- the processor's fast decoder agrees with decode() -------------------------------

_fields = st.sampled_from(["schema_version", "device_id", "ts", "seq", "site", "line", "device_type", "metrics"])
_text = st.one_of(
    st.sampled_from(["pump-001", "plant-a", "line 1", "", "a\n", "x" * 65, "-bad", "temperature_c", "Temp_C"]),
    st.text(max_size=8),
)
_number = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([NOW - 1000, NOW + 10**9, NOW - 10**10, 1_700_000_000, True, 1.0, 0, -1]),
)
_value = st.one_of(_text, _number, st.none(), st.lists(_number, max_size=2))
_metrics = st.dictionaries(
    st.one_of(st.sampled_from(["temperature_c", "vibration_mm_s", "pressure_psi", "x" * 70, "Bad"]), _text),
    st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-5, 5), _text),
    max_size=4,
)


@settings(max_examples=400, deadline=None)
@given(
    base=st.booleans(),
    changes=st.dictionaries(_fields, st.one_of(_value, _metrics), max_size=3),
    drop=st.lists(_fields, max_size=2),
    extra=st.dictionaries(st.sampled_from(["thing_name", "unexpected"]), _text, max_size=1),
)
def test_fast_decoder_accepts_only_what_decode_accepts_and_agrees_on_it(
    base: bool, changes: dict[str, object], drop: list[str], extra: dict[str, object]
) -> None:
    msg: dict[str, object] = canonical() if base else {}
    msg.update(changes)
    msg.update(extra)
    for name in drop:
        msg.pop(name, None)
    data = json.dumps(msg).encode()  # NaN and Infinity literals included
    fast = FastDecoder()(data, NOW)
    slow = decode(data, NOW)
    if fast is not None:
        assert isinstance(slow, Reading), slow
        assert fast == [ReadingFields.of(slow)]
    # the whole-batch path takes a batch with this message exactly when the per-record path takes it
    good = decode(canonical(seq=7), NOW)
    assert isinstance(good, Reading)
    pair = FastDecoder().batch([json.dumps(canonical(seq=7)).encode(), data], [NOW, NOW])
    assert pair == (None if fast is None else [ReadingFields.of(good), *fast])


def test_fast_decoder_batch_takes_a_batch_of_single_readings_or_leaves_it_record_by_record() -> None:
    datas = [
        json.dumps(canonical(device_id=f"pump-{i:03d}", seq=i, thing_name=f"pump-{i:03d}")).encode() for i in range(5)
    ]
    arrivals = [NOW + i for i in range(5)]
    fast = FastDecoder()
    expected = [r for data, at in zip(datas, arrivals, strict=True) for r in FastDecoder()(data, at) or []]
    assert len(expected) == 5 and fast.batch(datas, arrivals) == expected
    assert all(r.thing_name is None for r in expected)
    assert fast.batch([], []) == []
    for odd in (
        json.dumps([canonical(), canonical(seq=43)]),  # an array: the record-by-record path splits it
        json.dumps(canonical(thing_name="pump-002")),  # published by another thing
        json.dumps(canonical(ts=NOW + 3_600_000)),  # beyond the window of its own record's arrival
        json.dumps(canonical(device_id="bad id")),
        json.dumps(canonical(site="bad site!")),
        json.dumps(canonical(metrics={"Temp C": 1.0})),
        json.dumps(canonical(metrics={"temperature_c": float("nan")})),
        "{not json",
    ):
        assert FastDecoder().batch([*datas, odd.encode()], [*arrivals, NOW]) is None, odd
    # the window is each record's own: a reading 10 minutes ahead of the batch's first
    # arrival is fine when its record arrived with it
    late = json.dumps(canonical(ts=NOW + 600_000)).encode()
    assert FastDecoder().batch([datas[0], late], [NOW, NOW + 600_000]) is not None
    assert FastDecoder().batch([datas[0], late], [NOW, NOW]) is None


def test_fast_decoder_takes_the_common_message_and_leaves_the_rest_to_decode() -> None:
    fast = FastDecoder()
    reading = decode(canonical(), NOW)
    assert isinstance(reading, Reading)
    assert fast(json.dumps(canonical()).encode(), NOW) == [ReadingFields.of(reading)]
    assert fast(json.dumps(canonical(thing_name="pump-001")).encode(), NOW) == [ReadingFields.of(reading)]
    pair = json.dumps([canonical(), canonical(seq=43)]).encode()
    assert [r.seq for r in fast(pair, NOW) or []] == [42, 43]
    for other in (
        canonical(ts="2025-11-23T12:53:00Z"),  # ISO time: decode parses it
        canonical(thing_name="pump-002"),  # published by another thing
        canonical(metrics={"temperature_c": float("nan")}),
        canonical(ts=NOW + 3_600_000),
        {"sensor_id": "s-1", "type": "temperature", "value": 40.0, "timestamp": NOW},
        [canonical(), canonical(device_id="bad id")],  # one bad message: decode judges each
    ):
        assert fast(json.dumps(other).encode(), NOW) is None


@given(st.integers(946_684_800_000, 4_102_444_799_999))
def test_an_iso_timestamp_with_milliseconds_decodes_to_exactly_those_milliseconds(ms: int) -> None:
    """A float round trip (``timestamp() * 1000``) loses a millisecond on some values
    (2038-02-01T00:00:00.015Z came out ...014); numpy's calendar arithmetic is the oracle."""
    text = str(np.datetime64(ms, "ms")) + "Z"
    reading = decode(json.dumps(canonical(ts=text)).encode(), ms)
    assert isinstance(reading, Reading), reading
    assert reading.ts_ms == ms
    assert epoch_ms(utc_from_ms(ms)) == ms
    assert utc_from_ms(ms).isoformat(timespec="milliseconds") == text.replace("Z", "+00:00")

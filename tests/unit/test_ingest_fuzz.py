"""Whatever a record holds, the processor stores it, counts it a duplicate, or quarantines it.

Generators, not examples: hypothesis builds arbitrary JSON values, bytes and Kinesis
events; :mod:`iotpm.testing.fuzz` builds a fleet's stream with hostile records mixed in
and knows every good reading in it. The invariants: the handler never raises, input
never causes a batch item failure, ``received == stored + duplicates + quarantined``,
every good reading is stored, a replay changes nothing, every stored number fits
DynamoDB, and nothing a spoofing device sends is stored. ``benchmarks/fuzz.py`` runs
the same over a million records.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import random
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from iotpm.models import Reading, Rejection, decode
from iotpm.service.processor import RawRecord
from iotpm.service.samples import kinesis_event
from iotpm.testing.fuzz import Harness, Stream, odd_event

T0 = 1_790_000_000_000
FIELDS = ["schema_version", "device_id", "ts", "seq", "site", "line", "device_type", "metrics", "thing_name"]
LEGACY_FIELDS = ["sensor_id", "production_line", "type", "value", "timestamp", "deviceId", "sensorType"]

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([2**63 - 1, 2**63, 2**64, -1, 0, 10**40]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([1e308, 5e-324, 1e-131, 9.99e125, 1e126, -0.0]),
    st.text(max_size=20),
    st.sampled_from(["dev\n", "dev\x00", "\u202edev", "🛠️", "a" * 200, "temperature_c", "2026-01-01T00:00:00Z"]),
)
json_values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.one_of(st.sampled_from(FIELDS + LEGACY_FIELDS), st.text(max_size=8)), inner, max_size=6),
    ),
    max_leaves=25,
)


def quiet() -> contextlib.AbstractContextManager[Any]:
    """The handler's EMF lines go to stdout, as in Lambda; not into the test log."""
    return contextlib.redirect_stdout(io.StringIO())


def good(device: str, seq: int, ts: int) -> bytes:
    return json.dumps(
        {"device_id": device, "ts": ts, "seq": seq, "metrics": {"temperature_c": 50.0 + seq % 7, "pressure_psi": 90.0}}
    ).encode()


@given(json_values)
@settings(max_examples=300, deadline=None)
def test_decode_answers_a_reading_or_a_reason_for_any_value(value: Any) -> None:
    for payload in (value, json.dumps(value, allow_nan=True).encode()):
        out = decode(payload, T0)
        assert isinstance(out, Reading | Rejection)
        if isinstance(out, Reading):
            assert all(math.isfinite(v) for v in out.metrics.values())


def _data(value: Any, how: int, rng: random.Random) -> bytes:
    text = json.dumps(value, allow_nan=True).encode("utf-8", "surrogatepass")
    if how == 0:
        return text
    if how == 1:
        return text[: rng.randrange(0, len(text) + 1)]
    if how == 2:
        return b"[" + text + b"]"
    return bytes(rng.randrange(256) for _ in range(rng.randrange(0, 40)))


@given(st.lists(st.tuples(json_values, st.integers(0, 3)), min_size=1, max_size=30), st.integers(0, 2**32))
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_any_record_among_good_ones_leaves_the_good_ones_stored(values: list[tuple[Any, int]], seed: int) -> None:
    rng = random.Random(seed)
    harness, records, n = Harness(**MODES[("through", "behind, compacting every batch")[seed % 2]]), [], 10**20
    for i, (value, how) in enumerate(values):
        records.append(RawRecord(str(n + 2 * i), "dev-good", good("dev-good", i, T0 + i * 1000), T0 + 60_000))
        records.append(RawRecord(str(n + 2 * i + 1), "dev-good", _data(value, how, rng), T0 + 60_000))
    with quiet():
        response, raised = harness.send(kinesis_event(records))
    assert raised is None and response == {"batchItemFailures": []}
    c = harness.last_counts
    assert c.received == c.stored + c.duplicates + c.quarantined and c.failed == 0
    stored = {r.seq for r in harness.visible() if r.device_id == "dev-good" and r.seq is not None}
    assert set(range(len(values))) <= stored
    assert harness.consistency() == []


#: written through, write-behind as deployed, and write-behind compacting after every batch
MODES: dict[str, dict[str, Any]] = {
    "through": {},
    "behind": {"write_behind": True},
    "behind, compacting every batch": {"write_behind": True, "compact_interval_s": 0},
}


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("seed", range(4))
def test_a_fleet_stream_with_hostile_records_keeps_every_invariant(seed: int, mode: str) -> None:
    """Three batches of 400 records (30 % hostile) and each replayed three times."""
    harness, stream = Harness(**MODES[mode]), Stream(seed)
    with quiet():
        for _ in range(3):
            corpus = stream.batch(400)
            out = harness.run(corpus, kinesis_event(corpus.records), exact=True)
            assert out.violations == [], corpus.kinds
            before = harness.totals()
            for _ in range(3):
                again = harness.run(corpus, kinesis_event(corpus.records), exact=False)
                assert again.violations == [] and again.counts.stored == 0
            assert harness.totals() == before
    assert harness.consistency() == []
    assert len(harness.visible()) > 500  # the good readings were stored, not only counted


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("seed", range(3))
def test_odd_kinesis_events_never_raise_and_keep_the_counts(seed: int, mode: str) -> None:
    harness, stream, rng = Harness(**MODES[mode]), Stream(100 + seed), random.Random(seed)
    with quiet():
        for _ in range(3):
            corpus = stream.batch(300)
            out = harness.run(corpus, odd_event(corpus.records, rng), exact=False)
            assert out.violations == []
    assert harness.consistency() == []


@given(
    st.one_of(
        st.none(),
        st.integers(),
        st.text(),
        st.lists(st.none()),
        st.dictionaries(st.sampled_from(["Records", "records", "x"]), json_values, max_size=2),
    )
)
@settings(max_examples=100, deadline=None)
def test_an_event_of_any_shape_is_answered(event: Any) -> None:
    harness = Harness()
    with quiet():
        response, raised = harness.send(event if isinstance(event, dict) else {"Records": event})
    assert raised is None and response == {"batchItemFailures": []}

"""What real devices do, end to end through the handler: nothing is lost, nothing applied twice.

A restart (sequence numbers from 1 again), a gateway's late and out-of-order readings,
legacy single-sensor messages of one instant, a device changing its message shape:
every reading is stored and visible through the API's read side. A Lambda retry or a
replay of the stream three times changes nothing. With one store call in ten failing
(before or after it took effect), Lambda's retries end with every reading stored once
and one alert per raise. A store error that retrying cannot fix quarantines the
device's readings instead of blocking the shard.
"""

from __future__ import annotations

import contextlib
import io
import json
import random
from collections.abc import Callable, Sequence
from typing import Any

import pytest

from iotpm.service import Processor, RawRecord, StoreError
from iotpm.service import memory as m
from iotpm.service.in_memory import MemoryPipeline
from iotpm.service.ports import Failures
from iotpm.service.samples import batch, kinesis_event, reading
from iotpm.testing.fuzz import Harness, Planted

T0 = 1_790_000_000_000
SHARD = "shardId-000000000000"
METRICS = {"temperature_c": 55.0, "vibration_mm_s": 2.0, "pressure_psi": 90.0}


class Numbered:
    """Kinesis sequence numbers of one shard: decimal, increasing."""

    def __init__(self) -> None:
        self.n = 49_000_000_000_000_000_000

    def record(self, device: str, body: object, arrival_ms: int) -> RawRecord:
        self.n += 7
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        return RawRecord(str(self.n), device, data, arrival_ms, SHARD)


#: the processor written through, write-behind as deployed (no compaction within a test),
#: and write-behind compacting after every batch (log and tables read together at every step)
MODES: dict[str, dict[str, Any]] = {
    "through": {},
    "behind": {"write_behind": True},
    "behind, compacting every batch": {"write_behind": True, "compact_interval_s": 0},
}


def view(h: Harness, device: str) -> Any:
    """The device's record as the API shows it (with write-behind, its log entries added)."""
    record = h.queries.device(device)
    assert record is not None
    return record


def send(h: Harness, records: Sequence[RawRecord]) -> Any:
    with contextlib.redirect_stdout(io.StringIO()):
        response, raised = h.send(kinesis_event(records))
    assert raised is None and response == {"batchItemFailures": []}
    return h.last_counts


def run_of(device: str, first_seq: int, start_ms: int, n: int, step_ms: int = 1000) -> list[dict[str, object]]:
    return [reading(device, first_seq + i, start_ms + i * step_ms, dict(METRICS)) for i in range(n)]


@pytest.mark.parametrize("mode", MODES)
def test_a_restarted_device_keeps_every_reading_of_both_runs(mode: str) -> None:
    h, ks = Harness(**MODES[mode]), Numbered()
    first = run_of("pump-1", 1, T0, 300)
    second = run_of("pump-1", 1, T0 + 400_000, 300)  # restarted: seq from 1 again
    for body in first + second:
        send(h, [ks.record("pump-1", body, int(str(body["ts"])) + 50)])
    planted = [Planted("pump-1", int(str(b["ts"])), int(str(b["seq"])), tuple(sorted(METRICS))) for b in first + second]
    assert h.stored_all(planted) == []
    assert view(h, "pump-1").readings == 600


@pytest.mark.parametrize("mode", MODES)
def test_a_huge_sequence_number_does_not_silence_the_device(mode: str) -> None:
    h, ks = Harness(**MODES[mode]), Numbered()
    c = send(h, [ks.record("pump-1", reading("pump-1", 2**63 - 1, T0, dict(METRICS)), T0)])
    assert c.stored == 1
    c = send(h, [ks.record("pump-1", b, T0 + 5000) for b in run_of("pump-1", 1, T0 + 1000, 3)])
    assert c.stored == 3
    c = send(h, [ks.record("pump-1", reading("pump-1", 2**63, T0 + 9000, dict(METRICS)), T0 + 9000)])
    assert (c.stored, c.quarantine_reasons) == (0, {"schema_violation": 1})


@pytest.mark.parametrize("mode", MODES)
def test_a_gateways_late_and_out_of_order_readings_are_stored(mode: str) -> None:
    h, ks = Harness(**MODES[mode]), Numbered()
    send(h, [ks.record("pump-1", b, T0 + 200_000) for b in run_of("pump-1", 100, T0 + 100_000, 100)])
    buffered = run_of("pump-1", 1, T0, 99)  # what the gateway held during an outage, shuffled
    random.Random(3).shuffle(buffered)
    c = send(h, [ks.record("pump-1", b, T0 + 210_000) for b in buffered])
    assert c.stored == 99 and c.duplicates == 0
    planted = [Planted("pump-1", T0 + i * 1000, 1 + i, tuple(sorted(METRICS))) for i in range(99)]
    assert h.stored_all(planted) == []
    record = view(h, "pump-1")
    assert record.last_ts_ms == T0 + 100_000 + 99_000  # the device's view is its newest reading
    assert record.readings == 199


@pytest.mark.parametrize("mode", MODES)
def test_legacy_single_sensor_messages_of_one_instant_are_each_stored(mode: str) -> None:
    h, ks = Harness(**MODES[mode]), Numbered()
    for k in range(20):
        ts = T0 + k * 5000
        for kind, value in (("temperature", 55.0), ("vibration", 2.0), ("pressure", 90.0)):
            body = {"sensor_id": "press-7", "production_line": "line-2", "type": kind, "value": value, "timestamp": ts}
            send(h, [ks.record("press-7", body, ts + 100)])
    assert view(h, "press-7").readings == 60
    for name in METRICS:
        assert h.stored_all([Planted("press-7", T0 + k * 5000, None, (name,)) for k in range(20)]) == []


@pytest.mark.parametrize("mode", MODES)
def test_a_device_changing_message_shape_keeps_every_reading(mode: str) -> None:
    h, ks = Harness(**MODES[mode]), Numbered()
    legacy = [
        {"sensor_id": "pump-9", "type": "temperature", "value": 50.0 + i, "timestamp": T0 + i * 1000} for i in range(50)
    ]
    canonical = run_of("pump-9", 1, T0 + 50_000, 50)
    send(h, [ks.record("pump-9", b, T0 + 120_000) for b in legacy + canonical])
    planted = [Planted("pump-9", T0 + i * 1000, None, ("temperature_c",)) for i in range(50)]
    planted += [Planted("pump-9", T0 + 50_000 + i * 1000, 1 + i, tuple(sorted(METRICS))) for i in range(50)]
    assert h.stored_all(planted) == []


@pytest.mark.parametrize("mode", MODES)
def test_replaying_the_stream_three_times_changes_nothing(mode: str) -> None:
    h = Harness(**MODES[mode])
    batches = [batch(10, 50, start_ms=T0, first_seq=s, seed=s) for s in (0, 50, 100)]
    batches.append(batch(10, 50, start_ms=T0, first_seq=150, faulty=[3], fault_from=160, seed=9))
    for records in batches:
        send(h, records)
    before = h.totals()
    assert before["alerts"] >= 1
    for _ in range(3):
        for records in batches:
            c = send(h, records)
            assert c.stored == 0 and c.duplicates == c.received
    assert h.totals() == before


# -- failures: what Lambda's retries must make good ------------------------------------------


class Flaky:
    """Every store call fails with probability ``p``: before it takes effect, or after (the
    response lost), as a timeout does. A bulk write fails for some of its devices (so Lambda
    retries from a record in the middle of the batch, and the retry carries newer readings of
    the failed devices); SNS does not fail."""

    def __init__(self, rng: random.Random, p: float) -> None:
        self.rng, self.p = rng, p

    def wrap(self, call: Callable[..., Any], devices: Callable[..., set[str]] | None = None) -> Callable[..., Any]:
        def flaky(*args: Any) -> Any:
            roll = self.rng.random()
            if roll < self.p / 2:  # nothing written: every device of the call fails
                return self._fail(devices, args, some=False)
            out = call(*args)
            if roll < self.p:  # written, but the answer says some of it failed
                return self._fail(devices, args, some=True)
            return out

        return flaky

    def _fail(self, devices: Callable[..., set[str]] | None, args: tuple[Any, ...], some: bool) -> Failures:
        error = StoreError("injected: throttled", code="ProvisionedThroughputExceededException")
        if devices is None:
            raise error
        involved = sorted(devices(*args))
        if some:
            involved = [d for d in involved if self.rng.random() < 0.5] or involved[-1:]
        return dict.fromkeys(involved, error)


def flaky_processor(h: Harness, rng: random.Random, p: float) -> Processor:
    f = Flaky(rng, p)
    ids: Callable[..., set[str]] = lambda items: {i.device_id for i in items}  # noqa: E731
    for store, name, devices in (
        (h.states, "get_many", None),
        (h.states, "put_many", ids),
        (h.readings, "put_many", ids),
        (h.rollups, "apply", ids),
        (h.anomalies, "record", None),
        (h.anomalies, "claim", None),
        (h.anomalies, "release", None),
        (h.archive, "put", None),
    ):
        setattr(store, name, f.wrap(getattr(store, name), devices))
    return h.processor


def lambda_delivers(handler: Callable[..., Any], stream: list[RawRecord], batch_size: int, limit: int = 500) -> int:
    """As the event source mapping reads a shard: up to ``batch_size`` records from the shard's
    position; a reported failure moves the position back to that record, so the retry carries
    the records after it too, newer ones included. Answers how many retries there were."""
    at, calls = 0, 0
    while at < len(stream):
        calls += 1
        assert calls <= limit, "the shard never got through"
        pending = stream[at : at + batch_size]
        with contextlib.redirect_stdout(io.StringIO()):
            out = handler(kinesis_event(pending))
        failed = [f["itemIdentifier"] for f in out["batchItemFailures"]]
        at += next(i for i, r in enumerate(pending) if r.sequence_number == failed[0]) if failed else len(pending)
    return calls - -(-len(stream) // batch_size)


@pytest.mark.parametrize("seed", range(5))
def test_with_one_store_call_in_ten_failing_every_reading_is_stored_once_and_alerted_once(seed: int) -> None:
    clean, flaky = Harness(), Harness()
    flaky_processor(flaky, random.Random(seed), 0.1)
    batches = [batch(8, 20, start_ms=T0, first_seq=s, seed=s) for s in range(0, 160, 20)]
    hot = {"faulty": [2, 5], "fault_from": 170}
    batches += [batch(8, 20, start_ms=T0, first_seq=s, seed=s, **hot) for s in range(160, 240, 20)]  # type: ignore[arg-type]
    for records in batches:
        send(clean, records)
    retried = lambda_delivers(flaky.handler, [r for records in batches for r in records], batch_size=100)
    assert retried > 0  # the failures did make Lambda retry, with newer records in the retried batches
    assert flaky.readings.items.keys() == clean.readings.items.keys()
    raises = [row for row, _ in flaky.anomalies.items.values() if row.kind == "raise"]
    assert raises and len(flaky.alerts.sent) == len(flaky.anomalies.items)  # one alert per raise and clear
    assert sorted(a.dedup_id for a in flaky.alerts.sent) == sorted(a.dedup_id for a in clean.alerts.sent)
    counted = {d: r.readings for d, r in flaky.states.items.items()}
    assert counted == {d: r.readings for d, r in clean.states.items.items()}
    assert flaky.totals()["buckets"] == clean.totals()["buckets"]  # rollups exact, retries with newer readings


class Refusing(m.MemoryReadings):
    """Refuses one device's rows: for good (an item too large) or for now (throttled)."""

    def __init__(self, device: str, retryable: bool) -> None:
        super().__init__()
        self.device, self.retryable = device, retryable

    def put_many(self, rows: Sequence[Any]) -> Failures:
        super().put_many([r for r in rows if r.device_id != self.device])
        if any(r.device_id == self.device for r in rows):
            return {self.device: StoreError("refused", retryable=self.retryable, code="ValidationException")}
        return {}


@pytest.mark.parametrize("retryable", [False, True])
def test_a_store_error_quarantines_when_retrying_cannot_fix_it_and_retries_when_it_can(retryable: bool) -> None:
    stores = MemoryPipeline(readings=Refusing("dev-0001", retryable))
    records = batch(3, 10, start_ms=T0)
    out = stores.processor()(records, now_ms=T0 + 60_000)
    c = out.counts
    assert c.received == c.stored + c.quarantined + c.duplicates + c.failed
    if retryable:
        assert out.failed_sequence_numbers == [records[1].sequence_number] and c.failed == 10
    else:
        assert out.failed_sequence_numbers == [] and c.quarantine_reasons == {"store_rejected": 10}
        lines = [line for k, o in stores.archive.objects.items() if "quarantine" in k for line in o.lines]
        assert {line["device_id"] for line in lines} == {"dev-0001"}  # type: ignore[index]
        assert all("ValidationException" in line["detail"] for line in lines)  # type: ignore[index]
    assert c.stored == 20

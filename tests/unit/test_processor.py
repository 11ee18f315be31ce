"""The processing service over in-memory fakes: storage, idempotency, quarantine, failures."""

from __future__ import annotations

import base64
import copy
import gc
import gzip
import time
from collections.abc import Callable, Sequence
from dataclasses import replace

import orjson
import pytest

from iotpm.detection import STATE_VERSION, native
from iotpm.handlers.processor import ProcessorHandler, collector_paused, parse_event
from iotpm.service import BatchOutcome, Processor, RawRecord, StoreError
from iotpm.service.in_memory import MemoryPipeline
from iotpm.service.memory import MemoryReadings
from iotpm.service.ports import Failures, ReadingRow
from iotpm.service.processor import encode_lines
from iotpm.service.samples import batch, kinesis_event

T0 = 1_790_000_000_000


def snapshot(stores: MemoryPipeline) -> object:
    """What the stores hold, to compare two runs."""
    return copy.deepcopy(
        (
            stores.readings.items,
            {k: (v.version, v.detector, v.last_mark) for k, v in stores.states.items.items()},
            stores.anomalies.items,
            stores.rollups.items,
            sorted(stores.archive.objects),
            len(stores.alerts.sent),
        )
    )


def warm_then_fault(stores: MemoryPipeline) -> list[list[RawRecord]]:
    """Batches of 10 devices: 150 healthy readings each, then device 3 runs hot."""
    batches = [batch(10, 50, start_ms=T0, first_seq=s, seed=s) for s in (0, 50, 100)]
    batches.append(batch(10, 50, start_ms=T0, first_seq=150, faulty=[3], fault_from=160, seed=9))
    return batches


def test_a_batch_is_stored_with_state_rollups_and_archive(memory_pipeline: Callable[..., MemoryPipeline]) -> None:
    stores = memory_pipeline(timeseries=True)
    out = stores.processor()(batch(5, 120, start_ms=T0), now_ms=T0 + 200_000)
    assert out.failed_sequence_numbers == []
    assert out.counts.received == out.counts.stored == 600
    assert len(stores.readings.items) == 600
    assert {r.device_id for r in stores.readings.items.values()} == {f"dev-{d:04d}" for d in range(5)}
    state = stores.states.items["dev-0002"]
    assert state.version == 1 and state.last_mark == 120 and state.readings == 120
    assert state.detector is not None and state.detector["ready"]  # 120 readings > warm-up of 100
    minute = [v for (dev, res, _), v in stores.rollups.items.items() if dev == "dev-0002" and res == "1m"]
    assert sum(r.metrics["temperature_c"].count for r in minute) == 120
    assert [k.split("/")[0] for k in stores.archive.objects] == ["raw"]
    assert len(stores.timeseries.rows) == 600


def test_a_hot_machine_raises_one_alert_with_reasons(memory_pipeline: Callable[..., MemoryPipeline]) -> None:
    stores = memory_pipeline(timeseries=True)
    proc = stores.processor()
    for records in warm_then_fault(stores):
        out = proc(records, now_ms=T0 + 300_000)
        assert out.failed_sequence_numbers == []
    assert len(stores.alerts.sent) == 1
    alert = stores.alerts.sent[0]
    assert alert.attributes["device_id"] == "dev-0003" and alert.attributes["severity"] == "critical"
    assert alert.body["reasons"][0]["metric"] == "temperature_c"
    assert "dev-0003" in alert.subject and "raised" in alert.subject
    record = stores.states.items["dev-0003"]
    assert record.alarm_open and record.alarm_since_ms == T0 + 160_000
    assert record.health <= 40.0
    assert not stores.states.items["dev-0004"].alarm_open


def test_replaying_batches_changes_nothing(memory_pipeline: Callable[..., MemoryPipeline]) -> None:
    stores = memory_pipeline(timeseries=True)
    proc = stores.processor()
    batches = warm_then_fault(stores)
    for records in batches:
        proc(records, now_ms=T0 + 300_000)
    before = snapshot(stores)
    readings_before = {k: v for k, v in stores.readings.items.items()}
    for _ in range(3):
        for records in batches:
            out = proc(records, now_ms=T0 + 300_000)
            assert out.counts.duplicates == out.counts.received and out.counts.stored == 0
    after = snapshot(stores)
    states_before, states_after = before[1], after[1]  # type: ignore[index]
    assert {k: v[1:] for k, v in states_before.items()} == {k: v[1:] for k, v in states_after.items()}
    assert before[0] == after[0] == readings_before  # type: ignore[index]
    assert before[2:] == after[2:]  # type: ignore[index]


def test_malformed_records_are_quarantined_and_counts_reconcile(memory_pipeline: Callable[..., MemoryPipeline]) -> None:
    stores = memory_pipeline(timeseries=True)
    records = batch(4, 25, start_ms=T0)
    bad = [
        b"{not json",
        b'{"device_id": "x y", "ts": 1, "metrics": {"temperature_c": 1}}',
        b"[]",
        b'{"schema_version": 9, "device_id": "d", "ts": 1, "metrics": {}}',
        b'{"sensor_id": "s1", "type": "humidity", "value": 3, "timestamp": 1}',
        b'{"device_id": "dev-0001", "ts": 1790000000000, "seq": 900, "metrics": {"temperature_c": "NaN"}}',
        b"\xff\xfe",
        b'"a string"',
        b'{"device_id": "dev-1", "ts": 4102444800000, "metrics": {"pressure_psi": 1}}',
        b'{"device_id": "dev-1", "ts": 1790000000000, "metrics": {"pressure_psi": 1}, "extra": true}',
    ]
    mixed = list(records)
    for i, body in enumerate(bad):
        mixed.insert(i * 9, RawRecord(f"bad{i:04d}", "x", body, T0 + 10))
    out = stores.processor()(mixed, now_ms=T0 + 200_000)
    c = out.counts
    assert out.failed_sequence_numbers == []
    assert c.received == 110 and c.quarantined == 10 and c.stored == 100
    assert c.received == c.stored + c.quarantined + c.duplicates + c.failed
    quarantine = [o for k, o in stores.archive.objects.items() if k.startswith("quarantine/")]
    assert len(quarantine) == 1 and len(quarantine[0].lines) == 10
    reasons = {line["reason"] for line in quarantine[0].lines}
    assert {"malformed_json", "invalid_device_id", "unknown_schema_version", "unknown_shape"} <= reasons
    assert sum(c.quarantine_reasons.values()) == 10
    assert all(line["detail"] for line in quarantine[0].lines)


class FlakyReadings(MemoryReadings):
    """Fails the writes of chosen devices until told otherwise."""

    def __init__(self, failing: set[str]) -> None:
        super().__init__()
        self.failing = failing

    def put_many(self, rows: Sequence[ReadingRow]) -> Failures:
        failing = {r.device_id for r in rows} & self.failing
        super().put_many([r for r in rows if r.device_id not in failing])
        return {d: StoreError("throttled", code="ProvisionedThroughputExceededException") for d in failing}


def test_a_failing_device_is_retried_from_its_first_record_and_nothing_is_lost(
    memory_pipeline: Callable[..., MemoryPipeline],
) -> None:
    stores = memory_pipeline(timeseries=True)
    stores.readings = FlakyReadings({"dev-0002"})
    proc = stores.processor()
    records = batch(4, 30, start_ms=T0)
    out = proc(records, now_ms=T0 + 100_000)
    first_of_dev2 = next(r.sequence_number for r in records if r.partition_key == "dev-0002")
    assert out.failed_sequence_numbers == [first_of_dev2]
    assert out.counts.failed == 30 and out.counts.stored == 90
    assert "dev-0002" not in stores.states.items
    # Lambda retries from the reported record on; the others are recognised as applied
    stores.readings.failing.clear()
    retry = records[[r.sequence_number for r in records].index(first_of_dev2) :]
    out = proc(retry, now_ms=T0 + 100_000)
    assert out.failed_sequence_numbers == []
    assert out.counts.stored == 30 and out.counts.duplicates == len(retry) - 30
    assert len(stores.readings.items) == 120
    minute = [v for (dev, res, _), v in stores.rollups.items.items() if res == "1m"]
    assert sum(r.metrics["pressure_psi"].count for r in minute) == 120


def test_a_concurrent_state_write_is_a_retry_not_a_loss(memory_pipeline: Callable[..., MemoryPipeline]) -> None:
    stores = memory_pipeline(timeseries=True)
    proc = stores.processor()
    proc(batch(2, 10, start_ms=T0), now_ms=T0)
    real_get = stores.states.get_many

    def stale(ids: Sequence[str]) -> dict[str, object]:
        got = real_get(ids)
        return {k: replace(v, version=v.version - 1) for k, v in got.items()}

    stores.states.get_many = stale  # type: ignore[method-assign,assignment]
    out = proc(batch(2, 10, start_ms=T0, first_seq=10), now_ms=T0)
    assert len(out.failed_sequence_numbers) == 1 and out.counts.failed == 20
    assert all(s.last_mark == 10 and s.readings == 10 for s in stores.states.items.values())


def test_empty_batch_does_nothing(memory_pipeline: Callable[..., MemoryPipeline]) -> None:
    stores = memory_pipeline(timeseries=True)
    out = stores.processor()([], now_ms=T0)
    assert out.counts.records == 0 and not stores.archive.objects


def test_a_record_may_carry_an_array_of_readings(memory_pipeline: Callable[..., MemoryPipeline]) -> None:
    stores = memory_pipeline(timeseries=True)
    body = (
        b'[{"device_id": "a", "ts": 1790000000000, "seq": 1, "metrics": {"temperature_c": 20}},'
        b' {"device_id": "a", "ts": 1790000001000, "seq": 2, "metrics": {"temperature_c": 21}}]'
    )
    out = stores.processor()([RawRecord("1", "a", body, T0)], now_ms=T0)
    assert out.counts.stored == 2 and set(stores.states.items) == {"a"}


def test_an_array_with_one_bad_reading_keeps_the_good_ones_and_quarantines_the_bad_one(
    memory_pipeline: Callable[..., MemoryPipeline],
) -> None:
    stores = memory_pipeline(timeseries=True)
    body = (
        b'[{"device_id": "a", "ts": 1790000000000, "seq": 1, "metrics": {"temperature_c": 20.5}},'
        b' {"device_id": "not an id", "ts": 1790000000000, "seq": 1, "metrics": {"temperature_c": 21.0}},'
        b' {"sensor_id": "a", "type": "pressure", "value": 22, "timestamp": 1790000000000}]'
    )
    out = stores.processor()([RawRecord("1", "a", body, T0)], now_ms=T0)
    c = out.counts
    assert (c.received, c.stored, c.quarantined) == (3, 2, 1)
    assert set(stores.states.items) == {"a"}
    assert c.quarantine_reasons == {"invalid_device_id": 1}
    assert stores.states.items["a"].latest == {"pressure_psi": 22.0}


@pytest.mark.parametrize("wrap", [False, True])
def test_a_reading_for_another_device_is_quarantined_in_any_shape(
    wrap: bool, memory_pipeline: Callable[..., MemoryPipeline]
) -> None:
    """The record's partition key is the publishing thing (the rule's topic(2)): a reading
    naming another device is refused whether it comes alone or inside an array."""
    stores = memory_pipeline(timeseries=True)
    victim = b'{"device_id": "victim", "ts": 1790000000000, "seq": 1, "metrics": {"temperature_c": 500.0}}'
    body = b"[" + victim + b"]" if wrap else victim
    out = stores.processor()([RawRecord("1", "attacker", body, T0)], now_ms=T0)
    assert out.counts.stored == 0 and out.counts.quarantine_reasons == {"device_mismatch": 1}
    assert not stores.states.items and not stores.alerts.sent


def test_the_handler_parses_the_event_and_pauses_the_cycle_collector_only_for_the_batch(
    memory_pipeline: Callable[..., MemoryPipeline],
) -> None:
    stores = memory_pipeline(timeseries=True)
    inner = stores.processor()
    seen: list[tuple[bool, int]] = []

    class Watching(Processor):
        def __call__(self, records: Sequence[RawRecord], now_ms: int | None = None) -> BatchOutcome:
            seen.append((gc.isenabled(), len(records)))
            return inner(records, now_ms=T0 + 100_000)

    watching = Watching(states=stores.states, readings=stores.readings, anomalies=stores.anomalies,
                        rollups=stores.rollups, archive=stores.archive, alerts=stores.alerts)  # fmt: skip
    event = kinesis_event(batch(3, 5, start_ms=T0))
    event["Records"].append({"eventID": "shardId-1:9", "kinesis": {"sequenceNumber": "9", "data": "!!not base64"}})  # type: ignore[attr-defined]
    assert gc.isenabled()
    response = ProcessorHandler(lambda: watching)(event)
    assert gc.isenabled() and seen == [(False, 16)]
    assert response == {"batchItemFailures": []}
    assert len(stores.readings.items) == 15
    quarantined = next(o for k, o in stores.archive.objects.items() if k.startswith("quarantine/"))
    assert [line["payload"] for line in quarantined.lines] == ["!!not base64"]


def test_parse_event_takes_a_well_formed_event_at_once_and_an_odd_one_record_by_record() -> None:
    event = kinesis_event(batch(2, 3, start_ms=T0))
    whole = parse_event(event)
    assert [r.data for r in whole] == [base64.b64decode(r["kinesis"]["data"]) for r in event["Records"]]
    assert {r.shard_id for r in whole} == {"shardId-000000000000"}
    assert [r.arrival_ms for r in whole] == [
        int(r["kinesis"]["approximateArrivalTimestamp"] * 1000) for r in event["Records"]
    ]
    odd_records = [
        {"kinesis": {"data": "%%", "approximateArrivalTimestamp": None}},
        {"kinesis": {"data": "", "approximateArrivalTimestamp": "1790000000.5"}},  # a number as text
    ]
    odd = {"Records": [*event["Records"], *odd_records]}
    before = int(time.time() * 1000)
    one_by_one = parse_event(odd)
    assert one_by_one[:-2] == whole
    unreadable, texted = one_by_one[-2:]
    assert unreadable.data == b"%%" and unreadable.shard_id == "shard"
    assert before <= unreadable.arrival_ms <= time.time() * 1000  # no arrival time: counted as now
    assert texted.arrival_ms == 1_790_000_000_500


def test_quarantined_messages_are_archived_as_strict_json_lines(memory_pipeline: Callable[..., MemoryPipeline]) -> None:
    stores = memory_pipeline(timeseries=True)
    nan = b'{"device_id": "dev-1", "ts": 1790000000000, "metrics": {"temperature_c": NaN}}'
    accented = '{"device_id": "café", "ts": 1790000000000, "metrics": {"temperature_c": 1.5}}'.encode()
    out = stores.processor()([RawRecord("1", "k", nan, T0), RawRecord("2", "k", accented, T0)], now_ms=T0)
    assert out.counts.quarantined == 2
    (lines,) = [o.lines for k, o in stores.archive.objects.items() if k.startswith("quarantine/")]
    # NaN has no JSON form: the message is kept as the text it arrived as
    assert [line["payload"] for line in lines] == [nan.decode(), orjson.loads(accented)]
    body = gzip.decompress(encode_lines(lines))
    assert [orjson.loads(text) for text in body.splitlines()] == list(lines)
    assert encode_lines(lines) == encode_lines(copy.deepcopy(lines))  # a replay writes the same bytes


def test_a_device_whose_detector_state_is_from_another_release_is_relearned(
    memory_pipeline: Callable[..., MemoryPipeline],
) -> None:
    stores = memory_pipeline(timeseries=True)
    processor = stores.processor()
    processor(batch(2, 30, start_ms=T0), now_ms=T0 + 100_000)
    old = stores.states.items["dev-0000"]
    old.detector = {**(old.detector or {}), "v": 1}  # as an earlier release stored it
    out = processor(batch(2, 30, start_ms=T0 + 30_000, first_seq=30), now_ms=T0 + 200_000)
    assert out.failed_sequence_numbers == [] and out.counts.stored == 60
    relearned, kept = stores.states.items["dev-0000"], stores.states.items["dev-0001"]
    assert relearned.detector is not None and kept.detector is not None
    assert relearned.detector["v"] == kept.detector["v"] == STATE_VERSION
    assert relearned.readings == kept.readings == 60


def test_without_the_c_kernel_the_processor_says_so_and_gives_the_same_results(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], memory_pipeline: Callable[..., MemoryPipeline]
) -> None:
    native_stores = memory_pipeline(timeseries=True)
    native_stores.processor()(batch(5, 150, start_ms=T0), now_ms=T0 + 200_000)
    assert "C kernel not loaded" not in capsys.readouterr().err
    monkeypatch.setattr(native, "load", lambda: None)  # a zip built without a compiler for its machine
    numpy_stores = memory_pipeline(timeseries=True)
    numpy_stores.processor()(batch(5, 150, start_ms=T0), now_ms=T0 + 200_000)
    assert "detector C kernel not loaded" in capsys.readouterr().err
    assert snapshot(numpy_stores) == snapshot(native_stores)


def test_overlapping_batches_of_two_handlers_get_the_collector_back_when_the_last_ends() -> None:
    first, second = collector_paused(), collector_paused()  # the twin runs a handler per shard
    assert gc.isenabled()
    first.__enter__()
    second.__enter__()
    first.__exit__(None, None, None)
    assert not gc.isenabled()  # the second batch is still running
    second.__exit__(None, None, None)
    assert gc.isenabled()

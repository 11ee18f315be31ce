"""One device cannot hurt the others: a record costs its own size, caps hold, failures are charged to their device.

Unit checks of each rule over the in-memory stores (the batch log, where it matters, behind
a stand-in table that refuses items over DynamoDB's 400 KB as DynamoDB does), then property
tests: hostile devices of every kind beside good ones, written through and write-behind, and
every good device's readings stored whatever the others send.
"""

from __future__ import annotations

import contextlib
import io
import json
import random
from collections.abc import Mapping, Sequence
from typing import Any

import pytest
from botocore.exceptions import ClientError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from iotpm.adapters.dynamodb import DynamoLog, log_entries, log_items
from iotpm.detection import DeviceState
from iotpm.service import ProcessorSettings, RawRecord, StoreError
from iotpm.service.memory import MemoryLog
from iotpm.service.ports import Failures, LogDevice, LogEntry, RawLine
from iotpm.service.processor import encode_lines
from iotpm.service.samples import kinesis_event
from iotpm.testing.fuzz import Harness

T0 = 1_790_000_000_000
SHARD = "shardId-000000000001"
ITEM_MAX = 400 * 1024


def quiet() -> contextlib.AbstractContextManager[Any]:
    return contextlib.redirect_stdout(io.StringIO())


def msg(device: str, seq: int, ts: int, metrics: dict[str, float] | None = None, **extra: Any) -> dict[str, Any]:
    return {"device_id": device, "ts": ts, "seq": seq, "metrics": metrics or {"temperature_c": 50.0 + seq % 5}, **extra}


class Batch:
    """Records of one shard with increasing sequence numbers."""

    def __init__(self, start: int = 10**20) -> None:
        self.n = start
        self.records: list[RawRecord] = []

    def add(self, thing: str, body: Any, *, raw: bytes | None = None) -> Batch:
        self.n += 1
        data = raw if raw is not None else json.dumps(body).encode()
        self.records.append(RawRecord(str(self.n), thing, data, T0 + 60_000, SHARD))
        return self


def quarantined(h: Harness) -> list[dict[str, Any]]:
    out = []
    for key, obj in h.archive.objects.items():
        if key.startswith("quarantine"):
            out += [dict(line) for line in obj.lines if isinstance(line, Mapping)]
    return out


def quarantine_bytes(h: Harness) -> int:
    return sum(len(encode_lines(o.lines)) for k, o in h.archive.objects.items() if k.startswith("quarantine"))


def stored_seqs(h: Harness, device: str) -> set[int]:
    return {r.seq for r in h.visible() if r.device_id == device and r.seq is not None}


MODES: dict[str, dict[str, Any]] = {"through": {}, "behind": {"write_behind": True}}


# -- a record costs its own size ----------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_readings_for_other_devices_are_quarantined_each_as_itself(mode: str) -> None:
    h = Harness(**MODES[mode])
    elements = [msg(f"victim-{i:03d}", i + 1, T0 + i) for i in range(600)]
    b = Batch().add("hostile-1", elements).add("good-1", msg("good-1", 1, T0))
    with quiet():
        response, raised = h.send(kinesis_event(b.records))
    assert raised is None and response == {"batchItemFailures": []}
    lines = quarantined(h)
    assert len(lines) == 600 and {line["reason"] for line in lines} == {"device_mismatch"}
    assert {line["payload"]["device_id"] for line in lines} == {f"victim-{i:03d}" for i in range(600)}
    # each line holds its element, not the 40 KB record: the object is about the input's size
    assert quarantine_bytes(h) <= 2 * len(b.records[0].data)
    assert h.last_counts.refused == {"hostile-1": {"device_mismatch": 600}}
    assert stored_seqs(h, "good-1") == {1} and not any(r.device_id.startswith("victim") for r in h.visible())


def test_a_record_of_more_readings_than_the_cap_is_refused_once_whole() -> None:
    h = Harness()
    b = Batch().add("dev-1", [msg("dev-1", i + 1, T0 + i) for i in range(1001)])
    b.add("dev-1", [msg("dev-1", 2000 + i, T0 + 5000 + i) for i in range(1000)])  # at the cap: stored
    with quiet():
        h.send(kinesis_event(b.records))
    (line,) = quarantined(h)
    assert line["reason"] == "too_many_readings" and line["sequence_number"] == b.records[0].sequence_number
    assert line["payload"] == b.records[0].data.decode() and line["count"] == 1
    c = h.last_counts
    assert c.quarantined == 1 and c.stored == 1000 and c.refused == {"dev-1": {"too_many_readings": 1}}


def test_a_records_text_goes_to_quarantine_once_however_many_of_its_messages_fail() -> None:
    h = Harness()
    # NaN literals: only the standard library parses the record, so its messages have no JSON form of their own
    elements = ",".join(
        f'{{"device_id": "dev-1", "ts": {T0 + i}, "seq": {i}, "metrics": {{"t_c": NaN}}}}' for i in range(300)
    )
    b = Batch().add("dev-1", None, raw=f"[{elements}]".encode())
    with quiet():
        h.send(kinesis_event(b.records))
    (line,) = quarantined(h)
    assert line["count"] == 300 and line["reasons"] == {"non_finite_value": 300}
    assert h.last_counts.quarantined == 300 and h.last_counts.quarantine_reasons == {"non_finite_value": 300}


# -- the channel cap ----------------------------------------------------------------------------


def channels(h: Harness, device: str) -> tuple[str, ...]:
    record = h.snapshots.get(SHARD).records.get(device) or h.states.items[device]
    assert record.detector is not None
    return DeviceState.from_dict(record.detector).channels


def capped(cap: int = 8, by_type: dict[str, int] | None = None, **kw: Any) -> Harness:
    h = Harness(**kw)
    h.processor.settings = ProcessorSettings(max_channels=cap, max_channels_by_type=by_type or {})
    return h


@pytest.mark.parametrize("mode", MODES)
def test_a_devices_channel_set_stops_at_its_cap_and_keeps_its_known_metrics(mode: str) -> None:
    h = capped(8, **MODES[mode])
    known = {"temperature_c": 50.0, "pressure_psi": 90.0}
    b = Batch()
    for i in range(20):  # each reading: the two known metrics and 4 names never seen before
        b.add("dev-1", msg("dev-1", i + 1, T0 + i * 1000, {**known, **{f"n{i}x{j}_c": 1.0 for j in range(4)}}))
    with quiet():
        response, _ = h.send(kinesis_event(b.records))
    assert response == {"batchItemFailures": []}
    got = channels(h, "dev-1")
    assert len(got) == 8 and {"temperature_c", "pressure_psi"} <= set(got)
    rows = [r for r in h.visible() if r.device_id == "dev-1"]
    assert len(rows) == 20 and all(set(r.metrics) <= set(got) and known.items() <= r.metrics.items() for r in rows)
    lines = quarantined(h)
    # the first reading's 6 names fit, 2 of the second's; the 2 others and every later reading's 4 are refused
    assert {line["reason"] for line in lines} == {"too_many_metrics"} and len(lines) == 19
    assert all(not set(line["payload"]["metrics"]) & set(got) for line in lines)  # only what was refused
    assert all(line["partial"] for line in lines)  # each reading kept its two known metrics
    c = h.last_counts
    assert c.stored == 20 and c.quarantined == 0 and c.refused == {"dev-1": {"too_many_metrics": 19}}
    # the next batch's new names are refused too: the set does not move
    more = Batch(b.n).add("dev-1", msg("dev-1", 99, T0 + 60_000, {"other_c": 1.0, "temperature_c": 51.0}))
    with quiet():
        h.send(kinesis_event(more.records))
    assert channels(h, "dev-1") == got and h.last_counts.quarantine_reasons == {"too_many_metrics": 1}


def test_a_reading_with_only_names_past_the_cap_is_refused_whole_and_the_cap_is_per_device_type() -> None:
    h = capped(64, {"pump": 2})
    b = Batch()
    b.add("pump-1", msg("pump-1", 1, T0, {"a_c": 1.0, "b_c": 2.0}, device_type="pump"))
    b.add("pump-1", msg("pump-1", 2, T0 + 1000, {"c_c": 3.0}, device_type="pump"))
    b.add("fan-1", msg("fan-1", 1, T0, {f"m{j}_c": 1.0 for j in range(10)}, device_type="fan"))
    with quiet():
        h.send(kinesis_event(b.records))
    assert channels(h, "pump-1") == ("a_c", "b_c") and len(channels(h, "fan-1")) == 10
    c = h.last_counts
    assert c.stored == 2 and c.quarantined == 1 and c.quarantine_reasons == {"too_many_metrics": 1}
    (line,) = quarantined(h)
    assert "partial" not in line and line["payload"]["metrics"] == {"c_c": 3.0}  # refused whole, as itself


# -- identity: the record's, not the payload's --------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_a_payload_cannot_move_its_device_to_another_line(mode: str) -> None:
    h = Harness(**MODES[mode])
    first = Batch().add("dev-1", msg("dev-1", 1, T0, site="plant-1", line="line-1", device_type="pump"))
    with quiet():
        h.send(kinesis_event(first.records))
    assert h.last_counts.identities_bootstrapped == 1
    hot = {"temperature_c": 140.0}
    later = Batch(first.n).add("dev-1", [msg("dev-1", i + 2, T0 + (i + 1) * 1000, hot, site="plant-9", line="line-2",
                                               device_type="valve") for i in range(5)])  # fmt: skip
    with quiet():
        h.send(kinesis_event(later.records))
    c = h.last_counts
    assert c.identity_mismatches == 5 and c.identities_bootstrapped == 0 and c.stored == 5
    view = h.queries.device("dev-1")
    assert view is not None and (view.site, view.line, view.device_type) == ("plant-1", "line-1", "pump")
    assert {(r.site, r.line, r.device_type) for r in h.visible()} == {("plant-1", "line-1", "pump")}
    assert [r.metrics["temperature_c"] for r in h.visible()][1:] == [140.0] * 5  # its own data is kept
    assert h.alerts.sent and {a.attributes["line"] for a in h.alerts.sent} == {"line-1"}
    assert all(a.body["site"] == "plant-1" for a in h.alerts.sent)
    record = h.snapshots.get(SHARD).records.get("dev-1") or h.states.items["dev-1"]
    assert record.identity == "payload"  # the bootstrap: its first message's, marked


# -- failures charged to their own device -------------------------------------------------------


class SizedTable:
    """The batch log's table: BatchWriteItem fails whole (ValidationException) when an item passes 400 KB."""

    def __init__(self) -> None:
        self.items: dict[tuple[str, str], dict[str, Any]] = {}

    def batch_write_item(self, RequestItems: dict[str, Any]) -> dict[str, Any]:  # noqa: N803 - boto3's names
        ((_, requests),) = RequestItems.items()
        if any(len(r["PutRequest"]["Item"]["data"]["B"]) > ITEM_MAX for r in requests):
            error = {"Code": "ValidationException", "Message": "Item size has exceeded the maximum allowed size"}
            raise ClientError({"Error": error, "ResponseMetadata": {"HTTPStatusCode": 400}}, "BatchWriteItem")
        for r in requests:
            item = r["PutRequest"]["Item"]
            self.items[(item["device_id"]["S"], item["sk"]["S"])] = item
        return {}

    def query(self, **kw: Any) -> dict[str, Any]:
        values = kw["ExpressionAttributeValues"]
        part, low = values[":d"]["S"], values[":k"]["S"]
        keys = sorted((sk for p, sk in self.items if p == part and sk > low), reverse=not kw["ScanIndexForward"])
        return {"Items": [self.items[(part, sk)] for sk in keys]}


def burst(rng: random.Random, n: int, start: int = 0) -> list[dict[str, Any]]:
    """``n`` readings of 16 raw doubles each: what compresses least."""
    return [
        msg("burst-1", start + i + 1, T0 - 3_600_000 + (start + i) * 100,
            {f"b{j}_temperature_c": 55 + rng.gauss(0, 1) for j in range(16)})
        for i in range(n)
    ]  # fmt: skip


def test_a_burst_beside_an_innocent_device_is_logged_in_items_under_400_kb_and_both_are_stored() -> None:
    table = SizedTable()
    h = Harness(write_behind=True, batch_log=DynamoLog(table, "readings"))
    rng, b = random.Random(1), Batch()
    for m in range(22):
        b.add("burst-1", burst(rng, 200, m * 200))
    for s in range(3):
        b.add("innocent-1", msg("innocent-1", s + 1, T0 + s * 1000))
    with quiet():
        response, raised = h.send(kinesis_event(b.records))
    assert raised is None and response == {"batchItemFailures": []}
    assert len(table.items) > 2  # one device's readings over several items
    assert stored_seqs(h, "innocent-1") == {1, 2, 3} and stored_seqs(h, "burst-1") == set(range(1, 4401))
    assert h.last_counts.stored == 4403 and quarantined(h) == []


def test_a_devices_readings_split_over_items_read_back_whole() -> None:
    rng = random.Random(2)
    n = 6000
    device = LogDevice("burst-1", "s", "l", "pump", "123", 99.5, False, None, T0 + n, 7000, 1000,
                       [T0 + i for i in range(n)], [i for i in range(n)],
                       [{f"m{j}_c": rng.random() for j in range(16)} for _ in range(n)],
                       [rng.random() for _ in range(n)], [i % 97 == 0 for i in range(n)])  # fmt: skip
    small = LogDevice("other-1", "s", "l", "fan", "124", 100.0, False, None, T0, 3, 2, [T0], [None], [{"a_c": 1.0}],
                      [0.0], [False])  # fmt: skip
    entry = LogEntry("021" + "1" * 21, T0, 3600, [device, small])
    items = log_items("shard-1", entry)
    assert len(items) > 2 and all(len(it["data"]["B"]) <= 350_000 for it in items)
    for order in (items, items[::-1]):  # oldest first or newest first, as the API reads
        (got,) = list(log_entries(order))
        assert sorted(got.devices, key=lambda d: d.device_id) == [device, small]


class PartlyFailingLog(MemoryLog):
    """A log whose items of one device fail (with ``error``); the rest of the entry is stored."""

    def __init__(self, device: str, error: StoreError) -> None:
        super().__init__()
        self.device, self.error, self.failing = device, error, True

    def append(self, shard: str, entry: LogEntry) -> Failures:
        if not self.failing or all(d.device_id != self.device for d in entry.devices):
            return super().append(shard, entry)
        rest = [d for d in entry.devices if d.device_id != self.device]
        super().append(shard, LogEntry(entry.key, entry.written_ms, entry.ttl_s, rest))
        return {self.device: self.error}


@pytest.mark.parametrize("retryable", [True, False])
def test_a_log_failure_is_charged_to_its_own_device_and_the_others_commit(retryable: bool) -> None:
    error = StoreError(
        "refused", retryable=retryable, code="ThrottlingException" if retryable else "ValidationException"
    )
    log = PartlyFailingLog("dev-2", error)
    h = Harness(write_behind=True, batch_log=log)
    b = Batch()
    for i in range(5):
        for d in (1, 2, 3):
            b.add(f"dev-{d}", msg(f"dev-{d}", i + 1, T0 + i * 1000))
    with quiet():
        response, _ = h.send(kinesis_event(b.records))
    assert response is not None
    assert stored_seqs(h, "dev-1") == stored_seqs(h, "dev-3") == {1, 2, 3, 4, 5}
    failed = [f["itemIdentifier"] for f in response["batchItemFailures"]]
    if retryable:  # Lambda retries from the device's first record; the others' come again as duplicates
        assert failed == [b.records[1].sequence_number] and h.last_counts.failed == 5
        log.failing = False
        first = next(i for i, r in enumerate(b.records) if r.sequence_number == failed[0])
        with quiet():
            again, _ = h.send(kinesis_event(b.records[first:]))
        assert again == {"batchItemFailures": []} and stored_seqs(h, "dev-2") == {1, 2, 3, 4, 5}
        assert h.last_counts.stored == 5
    else:  # retrying cannot fix it: quarantined, never retried
        assert failed == [] and h.last_counts.quarantine_reasons == {"store_rejected": 5}
        assert stored_seqs(h, "dev-2") == set()


def test_the_handler_names_each_refused_device_in_a_metric_and_a_log_line() -> None:
    h = Harness()
    b = Batch().add("hostile-1", [msg("victim-1", 1, T0)]).add("hostile-2", [msg("h2", i, T0 + i) for i in range(1001)])
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        h.send(kinesis_event(b.records))
    docs = [json.loads(line) for line in out.getvalue().splitlines()]
    (batch_doc,) = [d for d in docs if "ReadingsRefused" in d]
    assert batch_doc["ReadingsRefused"] == 2
    named = {d["DeviceId"]: d for d in docs if "DeviceReadingsRefused" in d}
    assert set(named) == {"hostile-1", "hostile-2"}
    assert named["hostile-2"]["reasons"] == {"too_many_readings": 1}
    assert named["hostile-1"]["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [["DeviceId", "Environment", "Function"]]
    logged = [json.loads(line) for line in err.getvalue().splitlines()]
    assert {d["device_id"] for d in logged if d["message"].startswith("device refused")} == {"hostile-1", "hostile-2"}


# -- property: hostile devices beside good ones -------------------------------------------------


def hostile_records(kind: str, thing: str, rng: random.Random, at: int) -> list[bytes]:
    """What one hostile device publishes, as records' data (each at most ~128 KB, IoT Core's limit)."""
    if kind == "foreign_ids":
        return [json.dumps([msg(f"good-{i % 3}", 10_000 + i, T0 + i) for i in range(rng.randrange(1, 1500))]).encode()]
    if kind == "new_names":
        return [json.dumps([msg(thing, at + r, T0 + r * 100, {f"x{at}n{r}m{j}_c": 1.0 for j in range(32)})
                            for r in range(40)]).encode() for _ in range(rng.randrange(1, 4))]  # fmt: skip
    if kind == "burst":
        return [json.dumps(burst_of(thing, rng, 400, at + m * 400)).encode() for m in range(rng.randrange(1, 12))]
    if kind == "too_many":
        return [json.dumps([msg(thing, at + i, T0 + i) for i in range(1001 + rng.randrange(500))]).encode()]
    if kind == "identity":
        return [json.dumps(msg(thing, at, T0 + 500, line="line-9", site="elsewhere", device_type="valve")).encode()]
    if kind == "non_finite_array":
        body = ",".join(
            f'{{"device_id": "{thing}", "ts": {T0 + i}, "seq": {i}, "metrics": {{"a_c": NaN}}}}' for i in range(200)
        )
        return [f"[{body}]".encode()]
    raise AssertionError(kind)


def burst_of(thing: str, rng: random.Random, n: int, start: int) -> list[dict[str, Any]]:
    return [
        msg(
            thing,
            start + i + 1,
            T0 - 3_600_000 + (start + i) * 100,
            {f"b{j}_c": 55 + rng.gauss(0, 1) for j in range(8)},
        )
        for i in range(n)
    ]


KINDS = ["foreign_ids", "new_names", "burst", "too_many", "identity", "non_finite_array"]


def run_fleet(kinds: Sequence[str], seed: int, mode: str) -> tuple[Harness, dict[str, set[int]]]:
    rng = random.Random(seed)
    table = SizedTable()
    h = Harness(write_behind=mode == "behind", batch_log=DynamoLog(table, "readings") if mode == "behind" else None)
    h.processor.settings = ProcessorSettings(max_channels=16)
    b, sent = Batch(), {f"good-{g}": set[int]() for g in range(3)}
    hostile = [(kind, f"hostile-{i}") for i, kind in enumerate(kinds)]
    queue: list[tuple[str, bytes]] = []
    for kind, thing in hostile:
        queue += [(thing, data) for data in hostile_records(kind, thing, rng, 1 + 5000 * len(queue))]
    for g, good in enumerate(sent):
        for s in range(1, 6):
            queue.append((good, json.dumps(msg(good, s, T0 + g * 10 + s * 1000, line="line-1")).encode()))
            sent[good].add(s)
    rng.shuffle(queue)
    for thing, data in queue:
        b.add(thing, None, raw=data)
    with quiet(), contextlib.redirect_stderr(io.StringIO()):
        response, raised = h.send(kinesis_event(b.records))
    assert raised is None and response == {"batchItemFailures": []}
    return h, sent


@given(st.lists(st.sampled_from(KINDS), min_size=1, max_size=4), st.integers(0, 2**16), st.sampled_from(list(MODES)))
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_every_good_devices_readings_are_stored_whatever_hostile_devices_send(
    kinds: list[str], seed: int, mode: str
) -> None:
    h, sent = run_fleet(kinds, seed, mode)
    c = h.last_counts
    assert c.received == c.stored + c.duplicates + c.quarantined + c.failed and c.failed == 0
    for good, seqs in sent.items():
        assert stored_seqs(h, good) == seqs, (good, kinds)
        rows = [r for r in h.visible() if r.device_id == good]
        assert {r.line for r in rows} == {"line-1"}  # a hostile payload moved no one
    for i, kind in enumerate(kinds):
        if kind == "new_names":  # the channel set stopped at its cap
            assert len(channels(h, f"hostile-{i}")) == 16


@pytest.mark.parametrize("mode", MODES)
def test_quarantine_grows_with_the_input_not_its_square(mode: str) -> None:
    h, _ = run_fleet(["foreign_ids", "too_many", "non_finite_array", "new_names"], seed=3, mode=mode)
    archived = [o for k, o in h.archive.objects.items() if k.startswith("raw")]
    size = sum(len(line.data) for o in archived for line in o.lines if isinstance(line, RawLine))
    assert 0 < quarantine_bytes(h) <= 10 * size

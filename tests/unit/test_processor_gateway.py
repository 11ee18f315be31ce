"""Gateways: a thing may publish readings for the devices the registry puts under it (issue 29 item 6).

The rule keys each Kinesis record by the thing that published it. A reading for device D in a
record of thing T is the device's when the registry puts D under gateway T, or when D is T and
has no gateway (a device under a gateway publishes through it only: one partition key, one
shard); otherwise it is ``device_mismatch`` and costs that reading only. One gateway message
(``{"readings": [...]}``, or a plain array) may carry readings of several devices; each is
counted, stored and scored as its own device's. A registry that cannot be read for a gateway's
readings fails the batch (retried), never quarantines them. Without a registry, a thing
publishes only its own readings (the rule before).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Sequence

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from iotpm.models import FastDecoder, ReadingFields, ValidationLimits, decode
from iotpm.operator.memory import MemoryDocuments, MemoryRegistry
from iotpm.operator.ports import Document, Registration
from iotpm.service import ProcessorSettings, RawRecord, StoreError
from iotpm.service.config_cache import OperatorCache
from iotpm.service.in_memory import MemoryPipeline
from iotpm.service.samples import batch, reading

T0 = 1_790_000_000_000
SHARD = "shardId-000000000000"
BEHIND = [f"dev-{i:02d}" for i in range(10)]  # registered under gw-1
OTHERS = ["dev-90", "dev-91"]  # registered under gw-2
LONE = "dev-99"  # registered, no gateway


def registry() -> OperatorCache:
    reg = MemoryRegistry()
    for device in BEHIND:
        reg.put(Registration(device, "plant-1", "line-1", "pump", gateway="gw-1"), None)
    for device in OTHERS:
        reg.put(Registration(device, "plant-1", "line-2", "pump", gateway="gw-2"), None)
    reg.put(Registration(LONE, "plant-1", "line-3", "pump"), None)
    for gw in ("gw-1", "gw-2"):
        reg.put(Registration(gw, "plant-1", "line-1", "gateway"), None)
    return OperatorCache(reg, MemoryDocuments())


def records(
    messages: Sequence[tuple[str, object]], first: int = 0, arrival_ms: int = T0 + 60_000, shard: str = SHARD
) -> list[RawRecord]:
    """One record per (publishing thing, message), in order, on one shard."""
    return [
        RawRecord(f"{49_600_000_000 + (first + i) * 7:056d}", thing, json.dumps(body).encode(), arrival_ms, shard)
        for i, (thing, body) in enumerate(messages)
    ]


def envelope(readings: list[dict[str, object]]) -> dict[str, object]:
    """A gateway's message as it publishes it, stamped by the rule with the gateway's name."""
    return {"readings": readings, "thing_name": "gw-1"}


def metrics(i: int) -> dict[str, float]:
    return {"temperature_c": 55.0 + (i % 5) * 0.1, "vibration_mm_s": 2.0, "pressure_psi": 90.0}


def stored_per_device(pipe: MemoryPipeline) -> Counter[str]:
    return Counter(device for device, _ in pipe.readings.items)


@pytest.mark.parametrize("behind", [False, True], ids=["write-through", "write-behind"])
def test_a_gateway_publishes_for_its_10_devices_and_a_device_not_under_it_is_refused(
    memory_pipeline: Callable[..., MemoryPipeline], behind: bool
) -> None:
    pipe = memory_pipeline(behind=behind)
    proc = pipe.processor(operator=registry())
    # 6 messages of the gateway (envelopes, and plain arrays), each the 10 devices' readings at one
    # instant, one also carrying a reading of a device under another gateway
    bodies = [[reading(d, k, T0 + k * 1000, metrics(k)) for d in BEHIND] for k in range(6)]
    bodies[2].insert(4, reading("dev-90", 2, T0 + 2000, metrics(2)))
    messages: list[tuple[str, object]] = [("gw-1", envelope(b) if k % 2 else b) for k, b in enumerate(bodies)]
    messages += [(d, reading(d, 6, T0 + 6000, metrics(6))) for d in BEHIND[:3]]  # under a gateway: not themselves
    out = proc(records(messages), now_ms=T0 + 60_000)
    c = out.counts
    assert out.failed_sequence_numbers == [] and not out.errors
    assert c.received == 6 * 10 + 1 + 3 == c.stored + c.quarantined + c.duplicates + c.failed
    assert c.stored == 60 and c.quarantine_reasons == {"device_mismatch": 4}
    assert c.refused == {t: {"device_mismatch": 1} for t in ("gw-1", *BEHIND[:3])}
    if not behind:  # write-behind holds the readings in its log until a compaction
        assert stored_per_device(pipe) == dict.fromkeys(BEHIND, 6)
    for d in BEHIND:  # each device's record counts its own readings, under its own id and registered identity
        record = proc.storage.open(SHARD).records([d])[d]
        assert (record.readings, record.line, record.identity) == (6, "line-1", "registry")
    assert "dev-90" not in pipe.states.items
    assert pipe.snapshots is None or "dev-90" not in pipe.snapshots.get(SHARD).records
    lines = [line for o in pipe.archive.objects.values() if o.key.startswith("quarantine/") for line in o.lines]
    assert sorted((line["device_id"], line["partition_key"]) for line in lines) == [  # type: ignore[index]
        ("dev-00", "dev-00"), ("dev-01", "dev-01"), ("dev-02", "dev-02"), ("dev-90", "gw-1")
    ]  # fmt: skip


def test_a_device_under_a_gateway_lives_on_its_gateways_shard_only(
    memory_pipeline: Callable[..., MemoryPipeline],
) -> None:
    """Kinesis places a record by its key: a device publishing itself too would have two shards."""
    pipe = memory_pipeline(behind=True)
    proc = pipe.processor(operator=registry())
    other = "shardId-000000000001"
    for k in range(4):
        own = records([("dev-00", [reading("dev-00", 10 * k, T0 + 10_000 * k, metrics(k))])], 2 * k, shard=other)
        out = proc(own, now_ms=T0 + 60_000 + k)
        assert out.counts.stored == 0 and out.counts.quarantine_reasons == {"device_mismatch": 1}
        sent = envelope([reading("dev-00", 10 * k + 1, T0 + 10_000 * k + 1000, metrics(k))])
        assert proc(records([("gw-1", sent)], 2 * k + 1), now_ms=T0 + 60_000 + k).counts.stored == 1
    assert pipe.snapshots is not None and "dev-00" not in pipe.snapshots.get(other).records
    assert pipe.snapshots.get(SHARD).records["dev-00"].readings == 4


class Down(MemoryRegistry):
    """A registry that cannot be read (throttled, unreachable)."""

    def get_many(self, device_ids: Sequence[str]) -> dict[str, Registration]:
        raise StoreError("throttled", code="ProvisionedThroughputExceededException")


def test_a_registry_outage_fails_a_gateways_batch_for_a_retry_and_keeps_devices_publishing_themselves(
    memory_pipeline: Callable[..., MemoryPipeline],
) -> None:
    pipe = memory_pipeline()
    proc = pipe.processor(operator=OperatorCache(Down(), MemoryDocuments()))
    sent = [("gw-1", envelope([reading(d, k, T0 + k * 1000, metrics(k)) for d in BEHIND])) for k in range(3)]
    with pytest.raises(StoreError):  # the handler reports the whole batch: Lambda retries it
        proc(records(sent), now_ms=T0 + 60_000)
    assert not pipe.readings.items and not pipe.states.items
    out = proc(records([(LONE, reading(LONE, 1, T0, metrics(1)))], 10), now_ms=T0 + 60_000)
    assert out.counts.stored == 1 and not out.counts.quarantine_reasons


def test_an_empty_or_oversized_gateway_message_is_refused_whole(
    memory_pipeline: Callable[..., MemoryPipeline],
) -> None:
    pipe = memory_pipeline()
    proc = pipe.processor(operator=registry(), settings=ProcessorSettings(limits=ValidationLimits(max_readings=8)))
    out = proc(records([("gw-1", envelope([])), ("gw-1", {"readings": "dev-00"})]), now_ms=T0 + 60_000)
    assert out.counts.quarantine_reasons == {"unknown_shape": 2} and out.counts.stored == 0
    ten = envelope([reading(d, 1, T0, metrics(1)) for d in BEHIND])
    out = proc(records([("gw-1", ten)], 5), now_ms=T0 + 60_000)
    assert out.counts.quarantine_reasons == {"too_many_readings": 1} and out.counts.stored == 0


def test_without_a_registry_a_thing_publishes_only_its_own_readings(
    memory_pipeline: Callable[..., MemoryPipeline],
) -> None:
    pipe = memory_pipeline()
    out = pipe.processor()(records([("gw-1", [reading(d, 1, T0, metrics(1)) for d in BEHIND[:4]])]), now_ms=T0)
    assert out.counts.stored == 0 and out.counts.quarantine_reasons == {"device_mismatch": 4}


def test_a_gateways_device_is_scored_as_itself_its_neighbours_unaffected(
    memory_pipeline: Callable[..., MemoryPipeline],
) -> None:
    """The samples' fleet of 10 repacked as the gateway sends it: one array per instant."""
    pipe = memory_pipeline()
    proc = pipe.processor(operator=registry())
    per_device = [batch(10, 60, start_ms=T0 + k * 60_000, first_seq=k * 60, faulty=[3], fault_from=90, seed=k)
                  for k in range(4)]  # fmt: skip
    for k, recs in enumerate(per_device):
        by_ts: dict[int, list[dict[str, object]]] = {}
        for rec in recs:
            body = json.loads(rec.data)
            body["device_id"] = BEHIND[int(body["device_id"].split("-")[1])]
            by_ts.setdefault(body["ts"], []).append(body)
        now = T0 + (k + 1) * 60_000
        out = proc(records([("gw-1", by_ts[ts]) for ts in sorted(by_ts)], k * 100, now), now_ms=now)
        assert out.counts.stored == 600 and out.counts.quarantined == 0
    raised = {a.body["device_id"] for a in pipe.alerts.sent if a.body["event"] == "alarm_raised"}
    assert raised == {"dev-03"}
    assert stored_per_device(pipe) == dict.fromkeys(BEHIND, 240)


THINGS = ["gw-1", "gw-2", *BEHIND[:2], "dev-90", LONE, "dev-77"]
DEVICES = [*BEHIND, *OTHERS, LONE, "dev-77"]  # dev-77: not registered at all


def admitted(device: str, thing: str) -> bool:
    gateway = "gw-1" if device in BEHIND else "gw-2" if device in OTHERS else None
    return thing == gateway if gateway is not None else thing == device


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.lists(
        st.tuples(st.sampled_from(THINGS), st.lists(st.sampled_from(DEVICES), min_size=1, max_size=12)),
        min_size=1,
        max_size=12,
    )
)
def test_each_reading_is_its_devices_exactly_when_its_publisher_may_send_it(
    memory_pipeline: Callable[..., MemoryPipeline], messages: list[tuple[str, list[str]]]
) -> None:
    pipe = memory_pipeline()
    bodies, expected = [], Counter[str]()
    for m, (thing, devices) in enumerate(messages):
        # each reading of a device at its own instant (a reading's key is its time and sequence number)
        bodies.append(
            (thing, [reading(d, m * 20 + j, T0 + m * 20_000 + j * 1000, metrics(j)) for j, d in enumerate(devices)])
        )
        expected.update(d for d in devices if admitted(d, thing))
    refused = sum(len(devices) for _, devices in messages) - sum(expected.values())
    out = pipe.processor(operator=registry())(records(bodies, arrival_ms=T0 + 600_000), now_ms=T0 + 600_000)
    c = out.counts
    assert stored_per_device(pipe) == expected and c.stored == sum(expected.values())
    assert c.quarantine_reasons.get("device_mismatch", 0) == refused == c.quarantined
    assert c.received == c.stored + c.quarantined + c.duplicates + c.failed
    assert sum(n for per in c.refused.values() for n in per.values()) == refused


def test_a_single_message_the_rule_stamped_with_the_gateways_name_is_its_devices(
    memory_pipeline: Callable[..., MemoryPipeline],
) -> None:
    """An object message gets the rule's ``thing_name`` (the topic's thing): the registry judges it too."""
    pipe = memory_pipeline()
    stamped = [reading(d, 1, T0, metrics(1)) | {"thing_name": "gw-1"} for d in ("dev-00", "dev-90")]
    recs = [RawRecord(f"{i + 1:056d}", "gw-1", json.dumps(body).encode(), T0, SHARD) for i, body in enumerate(stamped)]
    out = pipe.processor(operator=registry())(recs, now_ms=T0)
    assert out.counts.stored == 1 and out.counts.quarantine_reasons == {"device_mismatch": 1}
    assert stored_per_device(pipe) == {"dev-00": 1}


def test_an_envelope_takes_the_fast_decoder_and_gives_what_the_full_decoder_gives() -> None:
    """Same readings from ``{"readings": [...]}`` whether the fast decoder or :func:`decode` reads it."""
    body = [reading(d, k, T0 + k * 1000, metrics(k)) for k in range(3) for d in BEHIND[:4]]
    fast = FastDecoder()(json.dumps(envelope(body)).encode(), T0 + 60_000)
    assert fast is not None and len(fast) == 12
    full = [decode(b, T0 + 60_000) for b in body]
    assert fast == [ReadingFields.of(r) for r in full]  # type: ignore[arg-type]


class Flaky(MemoryRegistry):
    """A registry that records what it was asked for and can be taken down."""

    def __init__(self) -> None:
        super().__init__()
        self.down = False
        self.asked: list[str] = []

    def get_many(self, device_ids: Sequence[str]) -> dict[str, Registration]:
        if self.down:
            raise StoreError("throttled", code="ProvisionedThroughputExceededException")
        self.asked += device_ids
        return super().get_many(device_ids)


def flaky() -> tuple[Flaky, OperatorCache]:
    reg = Flaky()
    for device in (*BEHIND, LONE, "dev-98"):
        reg.put(Registration(device, "plant-1", "line-1", "pump", gateway="gw-1" if device in BEHIND else None), None)
    reg.put(Registration("gw-1", "plant-1", "line-1", "gateway"), None)
    return reg, OperatorCache(reg, MemoryDocuments(), ttl_s=0)


def test_in_a_registry_outage_a_plain_devices_stray_reading_costs_itself_not_the_batch(
    memory_pipeline: Callable[..., MemoryPipeline],
) -> None:
    """A device that is not a gateway (a copied configuration) naming another id: device_mismatch,
    whatever the registry's state; the others' readings of the batch are stored."""
    reg, cache = flaky()
    proc = memory_pipeline().processor(operator=cache)
    own = [(d, reading(d, k, T0 + k * 1000, metrics(k))) for k in range(3) for d in (LONE, "dev-98")]
    assert proc(records(own), now_ms=T0 + 60_000).counts.stored == 6
    reg.down = True
    later = [(d, reading(d, k, T0 + k * 1000, metrics(k))) for k in range(3, 6) for d in (LONE, "dev-98")]
    out = proc(records([*later, ("dev-98", reading("dev-0x8", 9, T0 + 9000, metrics(9)))], 10), now_ms=T0 + 61_000)
    assert out.failed_sequence_numbers == [] and out.counts.stored == 6
    assert out.counts.quarantine_reasons == {"device_mismatch": 1}


def test_the_ids_a_thing_that_is_not_a_gateway_names_are_never_looked_up_nor_held(
    memory_pipeline: Callable[..., MemoryPipeline],
) -> None:
    reg, cache = flaky()
    proc = memory_pipeline().processor(operator=cache)
    invented = [reading(f"fake-{i:04d}", 1, T0, metrics(1)) for i in range(1000)]
    out = proc(records([(LONE, invented), (LONE, reading(LONE, 1, T0, metrics(1)))]), now_ms=T0 + 60_000)
    assert out.counts.stored == 1 and out.counts.quarantine_reasons == {"device_mismatch": 1000}
    assert not [d for d in reg.asked if d.startswith("fake-")]
    assert not [d for d in cache.devices([LONE]) if d.startswith("fake-")]
    assert cache.devices(["fake-0001"])["fake-0001"].registration is None  # read now, asked directly


def test_the_controls_held_are_bounded_whatever_ids_a_gateway_names(
    memory_pipeline: Callable[..., MemoryPipeline],
) -> None:
    reg, _ = flaky()
    cache = OperatorCache(reg, MemoryDocuments(), max_devices=300)
    proc = memory_pipeline().processor(operator=cache)
    for k in range(5):
        invented = [reading(f"fake-{k}-{i:03d}", 1, T0, metrics(1)) for i in range(200)]
        ours = [reading(d, k, T0 + k * 1000, metrics(k)) for d in BEHIND]
        out = proc(records([("gw-1", invented + ours)], k), now_ms=T0 + 60_000 + k)
        assert out.counts.stored == 10 and out.counts.quarantine_reasons == {"device_mismatch": 200}
        assert len(cache._devices) <= 300


def test_a_publisher_that_is_no_longer_a_gateway_cannot_carry_its_old_devices(
    memory_pipeline: Callable[..., MemoryPipeline],
) -> None:
    """Re-registered as a pump while devices still name it: their readings through it are refused."""
    reg, cache = flaky()
    reg.put(Registration("gw-1", "plant-1", "line-1", "pump"), 1)
    out = memory_pipeline().processor(operator=cache)(
        records([("gw-1", envelope([reading(d, 1, T0, metrics(1)) for d in BEHIND]))]), now_ms=T0 + 60_000
    )
    assert out.counts.stored == 0 and out.counts.quarantine_reasons == {"device_mismatch": 10}
    assert not set(BEHIND) & set(reg.asked)


class DocumentsDown(MemoryDocuments):
    def get_many(self, names: Sequence[str]) -> dict[str, Document]:
        if any(n.startswith("alarm") for n in names):
            raise StoreError("throttled", code="ProvisionedThroughputExceededException")
        return super().get_many(names)


def test_an_outage_of_the_alarm_documents_alone_does_not_fail_a_gateways_batch(
    memory_pipeline: Callable[..., MemoryPipeline],
) -> None:
    reg, _ = flaky()
    proc = memory_pipeline().processor(operator=OperatorCache(reg, DocumentsDown()))
    sent = envelope([reading(d, 1, T0, metrics(1)) for d in BEHIND])
    out = proc(records([("gw-1", sent)]), now_ms=T0 + 60_000)
    assert out.failed_sequence_numbers == [] and out.counts.stored == 10 and not out.counts.quarantine_reasons

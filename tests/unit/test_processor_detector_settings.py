"""Detector settings per device type (issue 29 item 2): the /config/detector document's
``device_types`` sections, validated whole, applied by the processor to that type's devices only,
within the operator cache's TTL, without a redeploy."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import pytest

from iotpm.operator.memory import MemoryAudit, MemoryDocuments, MemoryRegistry
from iotpm.operator.ports import DETECTOR, Document, Registration
from iotpm.operator.service import InvalidDocumentError, Operator, settings_of
from iotpm.service.config_cache import OperatorCache
from iotpm.service.in_memory import MemoryPipeline
from iotpm.service.samples import batch

T0 = 1_790_000_000_000
SLOW = {"alarm": {"min_duration": 10_000}}  # an alarm must hold for 10,000 readings: none raises here


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def test_a_sectioned_document_merges_each_types_override_into_the_defaults() -> None:
    read = settings_of({"defaults": {"warmup": 200}, "device_types": {"compressor": SLOW}})
    assert read.defaults.warmup == 200 and read.defaults.alarm.min_duration == 1
    compressor = read.by_type["compressor"]
    assert compressor.warmup == 200 and compressor.alarm.min_duration == 10_000
    assert compressor.alarm.clear_duration == read.defaults.alarm.clear_duration  # nested: merged key by key
    assert read.document() == {"defaults": read.document()["defaults"], "device_types": {"compressor": SLOW}}
    flat = settings_of({"warmup": 200})  # today's flat document: the defaults
    assert flat.by_type == {} and flat.document()["warmup"] == 200 and "device_types" not in flat.document()


@pytest.mark.parametrize(
    ("body", "named"),
    [
        ({"device_types": {"compressor": {"alarm": {"min_duration": 0}}}}, "device_types.compressor"),
        ({"device_types": {"pump": {"thresholds": {}}}}, "device_types.pump.thresholds"),
        ({"device_types": {"pump": 3}}, "device_types"),
        ({"defaults": {}, "limits": {}}, "unknown sections"),
        ({"defaults": "abc"}, "defaults"),
        ({"defaults": 5}, "defaults"),
        ({"defaults": [["warmup", 200]]}, "defaults"),
    ],
)
def test_an_invalid_per_type_document_is_refused_whole_and_nothing_is_stored(body: object, named: str) -> None:
    documents = MemoryDocuments()
    operator = Operator(MemoryRegistry(), documents, MemoryAudit(), lambda _: None, now_ms=lambda: T0)
    with pytest.raises(InvalidDocumentError, match=named):
        operator.put_detector(body, None, "alice")
    assert documents.get(DETECTOR) is None


def test_a_compressor_override_applies_to_compressors_only_within_the_cache_ttl(
    memory_pipeline: Callable[..., MemoryPipeline],
) -> None:
    registry, documents, clock = MemoryRegistry(), MemoryDocuments(), Clock()
    registry.put(Registration("dev-0001", "plant-1", "line-1", "compressor"), None)
    registry.put(Registration("dev-0002", "plant-1", "line-1", "pump"), None)
    cache = OperatorCache(registry, documents, clock=clock, ttl_s=30)
    stores = memory_pipeline()
    proc = stores.processor(operator=cache)
    assert proc(batch(3, 150, start_ms=T0), now_ms=T0 + 160_000).counts.anomalies_raised == 0  # learned
    body = settings_of({"device_types": {"compressor": SLOW}}).document()
    documents.put(DETECTOR, body, None, "alice", T0)
    clock.t += 31  # past the cache's TTL: the next batch reads the document
    out = proc(batch(3, 60, start_ms=T0, first_seq=150, faulty=[1, 2], fault_from=150), now_ms=T0 + 220_000)
    raised = {a.body["device_id"] for a in stores.alerts.sent if a.body["event"] == "alarm_raised"}
    assert raised == {"dev-0002"} and out.counts.anomalies_raised == 1  # the pump raises, the compressor waits


class Counted(MemoryDocuments):
    """Counts the reads of the configuration documents."""

    reads = 0

    def get_many(self, names: Sequence[str]) -> dict[str, Document]:
        self.reads += DETECTOR in names
        return super().get_many(names)


def test_a_batch_is_scored_under_one_configuration_read_once(
    memory_pipeline: Callable[..., MemoryPipeline],
) -> None:
    """However many devices and types a batch has, and even when the cache's TTL runs out while it is
    processed (a clock that moves 31 s each time it is read), the configuration is read once a batch."""
    registry, documents, clock = MemoryRegistry(), Counted(), Clock()
    for i in range(1, 41):
        kind = "compressor" if i % 2 else "pump"
        registry.put(Registration(f"dev-{i:04d}", "p", "l", kind, overrides={"temperature_c": {"high": 90.0}}), None)
    documents.put(DETECTOR, settings_of({"device_types": {"compressor": SLOW}}).document(), None, "alice", T0)

    def ticking() -> float:
        clock.t += 31
        return clock.t

    cache = OperatorCache(registry, documents, clock=ticking, ttl_s=30)
    proc = memory_pipeline().processor(operator=cache)
    for k in range(3):
        before = documents.reads
        out = proc(batch(40, 5, start_ms=T0, first_seq=5 * k), now_ms=T0 + 60_000 + k)
        assert out.counts.stored == 200 and documents.reads == before + 1


@pytest.mark.parametrize("stored", [{"defaults": "abc"}, {"defaults": [1, 2]}, {"device_types": {"pump": 3}}])
def test_a_stored_settings_document_that_is_not_valid_keeps_the_last_good_settings(
    memory_pipeline: Callable[..., MemoryPipeline], stored: dict[str, object]
) -> None:
    """A hand-edited item (the API never stores one) does not stop the processor: logged, the last good stay."""
    documents, clock = MemoryDocuments(), Clock()
    documents.put(DETECTOR, settings_of({"defaults": {"warmup": 200}}).document(), None, "alice", T0)
    cache = OperatorCache(MemoryRegistry(), documents, clock=clock, ttl_s=30)
    proc = memory_pipeline().processor(operator=cache)
    assert proc(batch(2, 5, start_ms=T0), now_ms=T0 + 10_000).counts.stored == 10
    documents.put(DETECTOR, stored, 1, "hand-edit", T0)
    clock.t += 31
    out = proc(batch(2, 5, start_ms=T0, first_seq=5), now_ms=T0 + 20_000)
    assert out.counts.stored == 10 and cache.config().warmup == 200

"""The processor under the operator's controls (service/config_cache.py), over in-memory stores.

Samples: devices at 55 °C (the shipped high limit is 80 °C); a faulty one runs 30 °C hotter.
"""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from iotpm.adapters.dynamodb import device_item, device_record
from iotpm.detection import DeviceState
from iotpm.operator.memory import MemoryDocuments, MemoryRegistry
from iotpm.operator.ports import LIMITS, Registration, alarm_document
from iotpm.service import memory as m
from iotpm.service.config_cache import OperatorCache
from iotpm.service.errors import StoreError
from iotpm.service.in_memory import MemoryPipeline
from iotpm.service.ports import Alert, DeviceRecord
from iotpm.service.samples import batch

T0 = 1_790_000_000_000
SHARD = "shardId-000000000000"  # the samples' shard
MIN = 60_000


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


class Rig:
    def __init__(self, unregistered: str = "payload", *, behind: bool = False) -> None:
        self.registry, self.documents, self.clock = MemoryRegistry(), MemoryDocuments(), Clock()
        self.now = T0  # the batch's processing time (the server's clock), which shelves are compared with
        self.cache = OperatorCache(self.registry, self.documents, clock=self.clock, unregistered=unregistered,  # type: ignore[arg-type]
                                   wall_ms=lambda: self.now)  # fmt: skip
        self.pipe = MemoryPipeline.build(behind=behind)
        self.states, self.anomalies, self.alerts = self.pipe.states, self.pipe.anomalies, self.pipe.alerts
        self.p = self.pipe.processor(operator=self.cache)
        self.round = 0
        self.device_skew_ms = 0  # added to the devices' clocks

    def run(self, devices: int = 3, per: int = 60, faulty: tuple[int, ...] = ()) -> m.Counts:  # type: ignore[name-defined]
        seq = self.round * per
        self.now = T0 + (seq + per) * 1000 + 100
        start = T0 + self.device_skew_ms
        out = self.p(batch(devices, per, start_ms=start, first_seq=seq, faulty=faulty, seed=self.round),
                     now_ms=self.now)  # fmt: skip
        assert not out.errors, out.errors
        self.round += 1
        self.clock.t += 61.0  # past any TTL: the next batch reads the stores again
        return out.counts

    def record(self, device_id: str) -> DeviceRecord:
        """The device's record as the devices table holds it (write-behind: after a compaction)."""
        if self.pipe.snapshots is not None:
            self.p.storage.compact_all(SHARD)  # type: ignore[attr-defined]
        return self.states.items[device_id]

    def kinds(self, device_id: str) -> list[str]:
        rows = sorted((r for (d, _), (r, _) in self.anomalies.items.items() if d == device_id), key=lambda r: r.ts_ms)
        return [r.kind for r in rows]


def register(rig: Rig, device_id: str, **kw: object) -> None:
    fields: dict[str, object] = {"site": "plant-2", "line": "line-9", "device_type": "compressor"} | kw
    rig.registry.put(Registration(device_id, **fields), None)  # type: ignore[arg-type]


def test_a_registered_device_takes_its_identity_from_the_registry_not_the_payload() -> None:
    rig = Rig()
    register(rig, "dev-0001")
    rig.run(faulty=(1,))
    rig.run(faulty=(1,))
    rec = rig.states.items["dev-0001"]
    assert (rec.site, rec.line, rec.device_type, rec.identity) == ("plant-2", "line-9", "compressor", "registry")
    other = rig.states.items["dev-0000"]
    assert (other.line, other.identity) == ("line-1", "payload")
    raised = [a for a in rig.alerts.sent if a.body["device_id"] == "dev-0001"]
    assert raised and {(a.body["line"], a.body["device_type"]) for a in raised} == {("line-9", "compressor")}


def test_an_unregistered_device_is_unassigned_when_the_setting_says_so() -> None:
    rig = Rig(unregistered="unassigned")
    register(rig, "dev-0000")
    rig.run()
    assert (rig.states.items["dev-0000"].line, rig.states.items["dev-0001"].line) == ("line-9", "unassigned")
    assert rig.states.items["dev-0001"].identity == "unassigned"


def test_a_tightened_limit_applies_to_the_next_batch_after_the_cache_expires_without_a_new_processor() -> None:
    rig = Rig()
    for _ in range(3):
        rig.run()
    assert not rig.alerts.sent  # 55 °C under the shipped 80 °C
    fleet = rig.p.fleet
    rig.documents.put(LIMITS, {"line": {"line-1": {"temperature": {"high": 50.0}}}}, None, "alice", T0)
    rig.clock.t -= 61.0  # still within the TTL: the old limits
    rig.run()
    assert not rig.alerts.sent and rig.p.fleet is fleet
    rig.run()
    assert rig.p.fleet is not fleet and rig.p.fleet.config.thresholds.line["line-1"]["temperature"].high == 50.0
    assert {a.body["device_id"] for a in rig.alerts.sent} == {"dev-0000", "dev-0001", "dev-0002"}


def test_a_registration_override_is_a_limit_of_that_device_only() -> None:
    rig = Rig()
    register(rig, "dev-0002", line="line-1", overrides={"temperature": {"high": 50.0}})
    for _ in range(3):
        rig.run()
    assert {a.body["device_id"] for a in rig.alerts.sent} == {"dev-0002"}


def test_a_shelved_device_records_its_alarm_but_sends_nothing_until_the_shelve_ends() -> None:
    rig = Rig()
    rig.run()
    body = {"shelved_until_ms": T0 + 3 * MIN, "shelved_by": "alice", "shelve_reason": "repair"}
    rig.documents.put(alarm_document("dev-0001"), body, None, "alice", T0)
    counts = rig.run(faulty=(1,))  # readings 60-119 s: hot and shelved
    assert rig.kinds("dev-0001")[:1] == ["raise"] and counts.alerts_shelved >= 1
    assert not [a for a in rig.alerts.sent if a.body["device_id"] == "dev-0001"]
    for _ in range(4):  # hot until 300 s, then normal: the clear comes after the shelve ended
        rig.run(faulty=(1,) if rig.round < 5 else ())
    for _ in range(12):
        rig.run()
    assert "clear" in rig.kinds("dev-0001")
    assert [a.body["event"] for a in rig.alerts.sent if a.body["device_id"] == "dev-0001"][-1:] == ["alarm_cleared"]


def test_a_rebaseline_learns_anew_once_and_the_alarm_clears_at_the_new_level() -> None:
    rig = Rig()
    for _ in range(2):
        rig.run(faulty=(1,))
    assert rig.states.items["dev-0001"].alarm_open
    assert DeviceState.from_dict(rig.states.items["dev-0001"].detector or {}).ready
    asked = rig.states.items["dev-0001"].updated_ms + 1
    rig.documents.put(alarm_document("dev-0001"), {"rebaseline_ms": asked}, None, "alice", asked)
    rig.run()  # after the repair the machine runs at its new normal (the samples' 55 °C)
    state = DeviceState.from_dict(rig.states.items["dev-0001"].detector or {})
    assert not state.ready  # learning its baseline again (a warm-up of 100 readings)
    rig.run()
    assert DeviceState.from_dict(rig.states.items["dev-0001"].detector or {}).ready  # not re-baselined again
    for _ in range(10):  # the alarm carried over clears once its condition has been gone 10 minutes
        rig.run()
    assert not rig.states.items["dev-0001"].alarm_open and rig.kinds("dev-0001")[-1] == "clear"
    assert [a.body["event"] for a in rig.alerts.sent if a.body["device_id"] == "dev-0001"][-1] == "alarm_cleared"


@pytest.mark.parametrize("behind", [False, True], ids=["write-through", "write-behind"])
def test_a_rebaseline_asked_while_the_cache_holds_the_controls_from_before_is_applied_once(behind: bool) -> None:
    rig = Rig(behind=behind)
    for _ in range(2):
        rig.run(faulty=(1,))
    asked = rig.record("dev-0001").updated_ms + 1  # the operator asks (server time)
    rig.documents.put(alarm_document("dev-0001"), {"rebaseline_ms": asked}, None, "alice", asked)
    rig.clock.t -= 61.0 - 10.0  # the cache was read 10 s ago (TTL 30 s): this batch runs on the controls before
    rig.run()  # the device reports: its record's updated_ms moves past the request, which is not read yet
    before = rig.record("dev-0001")
    assert before.updated_ms > asked and DeviceState.from_dict(before.detector or {}).ready
    rig.run()  # the cache reads the request
    record = rig.record("dev-0001")
    assert not DeviceState.from_dict(record.detector or {}).ready and record.rebaselined_ms == asked
    rig.run()  # warmed up again (100 readings), and not re-baselined a second time
    assert DeviceState.from_dict(rig.record("dev-0001").detector or {}).ready
    again = rig.record("dev-0001").updated_ms + 1  # a second request applies too, once
    rig.documents.put(alarm_document("dev-0001"), {"rebaseline_ms": again}, 1, "alice", again)
    rig.run()
    assert not DeviceState.from_dict(rig.record("dev-0001").detector or {}).ready
    assert rig.record("dev-0001").rebaselined_ms == again
    assert all(rig.record(d).rebaselined_ms == 0 for d in ("dev-0000", "dev-0002"))  # nothing asked for them


def test_the_applied_rebaseline_is_kept_in_the_devices_item_and_an_item_from_before_counts_its_last_write() -> None:
    record = DeviceRecord("dev-1", "plant-1", "line-1", "pump", updated_ms=T0, rebaselined_ms=T0 - MIN)
    assert device_record(device_item(record, 1)).rebaselined_ms == T0 - MIN
    old = device_item(record, 1)
    del old["rebaselined"]  # written before it: a request older than its last write was applied then
    assert device_record(old).rebaselined_ms == T0


def test_the_ttl_is_at_most_a_minute() -> None:
    with pytest.raises(ValueError, match="within a minute"):
        OperatorCache(MemoryRegistry(), MemoryDocuments(), ttl_s=61)


def test_a_stored_limits_document_that_does_not_validate_keeps_the_last_good_one() -> None:
    registry, documents, clock = MemoryRegistry(), MemoryDocuments(), Clock()
    cache = OperatorCache(registry, documents, clock=clock)
    documents.put(LIMITS, {"line": {"line-1": {"temperature": {"high": 50.0}}}}, None, "alice", T0)
    good = cache.config()
    assert good.thresholds.line["line-1"]["temperature"].high == 50.0 and cache.config() is good
    documents.put(LIMITS, {"line": {"line-1": {"temperature": {"low": 90.0, "high": 50.0}}}}, 1, "hand-edit", T0)
    clock.t += 31.0
    assert cache.config() is good


def test_the_processor_gets_the_cache_only_with_the_operator_tables() -> None:
    from iotpm.composition import Settings, _operator_cache

    base = {"readings_table": "r", "devices_table": "d", "anomalies_table": "a", "rollups_table": "u",
            "archive_bucket": "b", "alerts_topic_arn": "arn:aws:sns:eu-west-1:1:t"}  # fmt: skip
    assert _operator_cache(Settings(**base), object()) is None
    assert _operator_cache(Settings(**base, registry_table="reg", config_table="cfg"), object()) is None
    full = Settings(**base, registry_table="reg", config_table="cfg", audit_table="aud", operator_cache_ttl_s=12,
                    unregistered_devices="unassigned")  # fmt: skip
    cache = _operator_cache(full, object())
    assert cache is not None and (cache.ttl_s, cache.unregistered) == (12, "unassigned")


def test_an_unregistered_device_is_quarantined_when_the_setting_says_so() -> None:
    rig = Rig(unregistered="quarantine")
    register(rig, "dev-0000", line="line-1")
    counts = rig.run()
    assert set(rig.states.items) == {"dev-0000"}
    assert counts.quarantine_reasons == {"unregistered_device": 120} and counts.stored == 60
    register(rig, "dev-0001", line="line-1")  # registered: its next readings are stored
    rig.run()
    assert set(rig.states.items) == {"dev-0000", "dev-0001"}


def test_the_detector_settings_document_sets_the_other_knobs_and_keeps_the_limits() -> None:
    registry, documents, clock = MemoryRegistry(), MemoryDocuments(), Clock()
    cache = OperatorCache(registry, documents, clock=clock)
    documents.put(LIMITS, {"line": {"line-1": {"temperature": {"high": 50.0}}}}, None, "alice", T0)
    documents.put("detector", {"alarm": {"min_duration": 3}, "warmup": 200}, None, "alice", T0)
    config = cache.config()
    assert (config.alarm.min_duration, config.warmup) == (3, 200)
    assert config.thresholds.line["line-1"]["temperature"].high == 50.0


def test_a_registration_losing_its_overrides_drops_them_from_the_limits_on_the_next_read() -> None:
    registry, documents, clock = MemoryRegistry(), MemoryDocuments(), Clock()
    cache = OperatorCache(registry, documents, clock=clock)
    registry.put(Registration("dev-1", "p", "line-1", "pump", None, {"temperature": {"high": 50.0}}), None)
    cache.devices(["dev-1"])
    assert cache.config().thresholds.device["dev-1"]["temperature"].high == 50.0
    registry.put(Registration("dev-1", "p", "line-1", "pump"), 1)
    cache.devices(["dev-1"])
    assert cache.config().thresholds.device["dev-1"]["temperature"].high == 50.0  # within the TTL
    clock.t += 31.0
    cache.devices(["dev-1"])
    assert "dev-1" not in cache.config().thresholds.device


class Unreadable(MemoryRegistry):
    """A registry whose table does not answer (throttled, an outage)."""

    def __init__(self) -> None:
        super().__init__()
        self.down = True

    def get_many(self, device_ids: Sequence[str]) -> dict[str, Registration]:
        if self.down:
            raise StoreError("BatchGetItem registry: ProvisionedThroughputExceededException", retryable=True)
        return super().get_many(device_ids)


def test_an_unreadable_registry_does_not_hold_up_the_shard_nor_quarantine_for_it() -> None:
    rig = Rig(unregistered="quarantine")
    registry = Unreadable()
    rig.cache.registry = registry
    registry.put(Registration("dev-0000", "plant-2", "line-9", "compressor"), None)
    counts = rig.run()  # the table is down: stored under the payload's identity, nothing quarantined
    assert counts.stored == 180 and not counts.quarantine_reasons
    assert rig.states.items["dev-0000"].line == "line-1"
    registry.down = False
    counts = rig.run()  # back: the registry's identity, the unregistered quarantined
    assert rig.states.items["dev-0000"].line == "line-9" and counts.quarantine_reasons == {"unregistered_device": 120}


def test_an_alarm_document_that_does_not_validate_keeps_the_last_controls_and_fails_no_batch() -> None:
    """A hand-edited item, or one a newer API wrote with a field this processor does not know."""
    rig = Rig()
    rig.documents.put(
        alarm_document("dev-0001"), {"shelved_until_ms": T0 + 10**9, "shelved_by": "bob"}, None, "bob", T0
    )
    rig.run()
    assert rig.cache.devices(["dev-0001"])["dev-0001"].alarm.shelved_by == "bob"
    rig.documents.put(alarm_document("dev-0001"), {"shelved_by": "bob", "from_a_newer_api": 1}, 1, "hand", T0)
    rig.documents.put(alarm_document("dev-0002"), {"unknown": True}, None, "hand", T0)
    rig.run()  # asserts the batch has no errors
    controls = rig.cache.devices(["dev-0001", "dev-0002"])
    assert controls["dev-0001"].alarm.shelved_by == "bob"  # the last good read stands
    assert controls["dev-0002"].alarm.shelved_until_ms is None  # never read well: no controls


@pytest.mark.parametrize("skew_h", [5, -5])
def test_a_shelve_holds_by_server_time_whatever_the_devices_clock(skew_h: int) -> None:
    """The devices' clocks are hours off the server's: the shelve's until (server time) is compared
    with processing time, so it holds while it should and ends when it should."""
    rig = Rig()
    rig.device_skew_ms = skew_h * 3_600_000
    rig.run()
    until = rig.now + 3 * MIN  # as the API sets it: server time
    rig.documents.put(alarm_document("dev-0001"), {"shelved_until_ms": until}, None, "alice", rig.now)
    counts = rig.run(faulty=(1,))  # hot and shelved
    assert "raise" in rig.kinds("dev-0001") and counts.alerts_shelved >= 1
    assert not [a for a in rig.alerts.sent if a.body["device_id"] == "dev-0001"]
    for _ in range(4):
        rig.run(faulty=(1,) if rig.round < 5 else ())
    assert rig.now > until
    for _ in range(12):
        rig.run()
    assert "clear" in rig.kinds("dev-0001")  # the clear comes after the shelve ended: it is sent
    assert [a.body["event"] for a in rig.alerts.sent if a.body["device_id"] == "dev-0001"][-1:] == ["alarm_cleared"]


class BrokenAlerts(m.MemoryAlerts):
    def publish(self, alert: Alert) -> None:
        raise StoreError("SNS is down")


def test_a_standing_alarm_the_shelve_held_is_announced_once_when_it_ends() -> None:
    rig = Rig()
    rig.run()
    until = rig.now + 2 * MIN
    rig.documents.put(alarm_document("dev-0001"), {"shelved_until_ms": until}, None, "alice", rig.now)
    rig.run(faulty=(1,))  # raised while shelved: recorded, not sent
    record = rig.states.items["dev-0001"]
    assert record.alarm_open and not [a for a in rig.alerts.sent if a.body["device_id"] == "dev-0001"]
    assert not rig.cache.announce_unshelved(record, rig.anomalies, rig.alerts, "t0", 90)  # still shelved
    rig.cache.devices(["dev-0001"], until + 1)  # the next batch, processed after the shelve ended
    with pytest.raises(StoreError):  # the send fails: the claim is released, the batch retried
        rig.cache.announce_unshelved(record, rig.anomalies, BrokenAlerts(), "t1", 90)
    assert rig.cache.announce_unshelved(record, rig.anomalies, rig.alerts, "t2", 90)
    [alert] = [a for a in rig.alerts.sent if a.body["device_id"] == "dev-0001"]
    assert alert.body["event"] == "alarm_raised" and alert.body["unshelved"] is True
    assert alert.attributes["event"] == "alarm_raised" and alert.body["time"].startswith("2026-09-21T")
    assert not rig.cache.announce_unshelved(record, rig.anomalies, rig.alerts, "t3", 90)  # a retry, a later batch
    cold = OperatorCache(rig.registry, rig.documents)  # another instance
    cold.devices(["dev-0001"], until + 1)
    assert not cold.announce_unshelved(record, rig.anomalies, rig.alerts, "t4", 90)
    assert len([a for a in rig.alerts.sent if a.body["device_id"] == "dev-0001"]) == 1


def test_an_alarm_sent_before_its_shelve_or_acknowledged_is_not_announced_again() -> None:
    rig = Rig()
    rig.run(faulty=(1,))  # raised and sent
    sent = len(rig.alerts.sent)
    record = rig.states.items["dev-0001"]
    body = {"shelved_until_ms": rig.now + MIN}
    rig.documents.put(alarm_document("dev-0001"), body, None, "alice", rig.now)
    rig.run(faulty=(1,))
    rig.cache.devices(["dev-0001"], rig.now + 2 * MIN)
    assert not rig.cache.announce_unshelved(record, rig.anomalies, rig.alerts, "t1", 90)
    assert len(rig.alerts.sent) == sent
    acked = Rig()
    acked.run()
    until = acked.now + MIN
    acked.documents.put(alarm_document("dev-0001"), {"shelved_until_ms": until}, None, "alice", acked.now)
    acked.run(faulty=(1,))
    standing = acked.states.items["dev-0001"]
    ack = {"shelved_until_ms": until, "acknowledged_ms": acked.now, "alarm_since_ms": standing.alarm_since_ms}
    acked.documents.put(alarm_document("dev-0001"), ack, 1, "alice", acked.now)
    acked.clock.t += 61.0
    acked.cache.devices(["dev-0001"], until + 1)
    assert not acked.cache.announce_unshelved(standing, acked.anomalies, acked.alerts, "t1", 90)


def test_through_the_processor_a_shelve_ending_announces_the_standing_alarm_once() -> None:
    rig = Rig()
    rig.run()
    until = rig.now + 2 * MIN
    rig.documents.put(alarm_document("dev-0001"), {"shelved_until_ms": until}, None, "alice", rig.now)
    for _ in range(5):  # hot throughout: raised while shelved, still standing after the shelve ends
        rig.run(faulty=(1,))
    assert rig.now > until and rig.states.items["dev-0001"].alarm_open
    mine = [a for a in rig.alerts.sent if a.body["device_id"] == "dev-0001"]
    assert [(a.body["event"], a.body.get("unshelved")) for a in mine] == [("alarm_raised", True)]
    assert rig.kinds("dev-0001")[:1] == ["raise"]

"""The local twin's parts that need no broker or emulator: the rule's enrichment, the
event source poller's retry semantics, and the simulator's faults."""

from __future__ import annotations

import base64
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from iotpm.emulator import pidfile
from iotpm.local.bridge import RULE_SQL, THING_SEGMENT, enrich
from iotpm.local.broker import telemetry_rule, telemetry_topic
from iotpm.local.certs import LocalCA, write_private
from iotpm.local.poller import Poller
from iotpm.local.processes import Processes
from iotpm.local.terraform import TerraformState
from iotpm.local.twin import Twin
from iotpm.simulator.fleet import Fault, Fleet, ground_truth


def test_the_bridge_enriches_as_the_terraform_topic_rule_does() -> None:
    """The bridge stands in for the rule: its SQL and the topic level of the thing name
    must be the ones Terraform deploys (a change to one without the other fails here)."""
    main = (Path(__file__).resolve().parents[2] / "terraform" / "modules" / "iot" / "main.tf").read_text()
    sql = re.search(r'^\s*sql\s*=\s*"([^"]+)"', main, re.M)
    key = re.search(r'^\s*partition_key\s*=\s*"\$\$\{topic\((\d+)\)\}"', main, re.M)
    assert sql is not None and key is not None
    assert sql.group(1).replace("${var.topic_prefix}", "{prefix}") == RULE_SQL
    assert int(key.group(1)) == THING_SEGMENT and f"topic({THING_SEGMENT}) AS thing_name" in RULE_SQL


def test_devices_publish_through_basic_ingest_to_the_terraform_rule() -> None:
    """The twin's topic is the one the iot module's policy allows: its rule name derived as
    Terraform derives it, and the bridge sees the topic as the rule does (without the prefix)."""
    main = (Path(__file__).resolve().parents[2] / "terraform" / "modules" / "iot" / "main.tf").read_text()
    assert re.search(r'rule_name\s*=\s*replace\("\$\{var\.name\}_telemetry", "-", "_"\)', main)
    allowed = ":topic/$aws/rules/${local.rule_name}/${var.topic_prefix}/$${iot:Connection.Thing.ThingName}/telemetry"
    assert allowed in main
    rule = telemetry_rule("iotpm-local")
    assert rule == "iotpm_local_telemetry"
    topic = telemetry_topic("iotpm", "pump-7", rule)
    assert topic == "$aws/rules/iotpm_local_telemetry/iotpm/pump-7/telemetry"
    assert enrich(topic, b"{}") == ("pump-7", b'{"thing_name":"pump-7"}')
    assert telemetry_topic("iotpm", "pump-7", None) == "iotpm/pump-7/telemetry"  # no rule: the plain topic


def test_an_array_is_keyed_by_the_publishing_thing_and_passed_unchanged() -> None:
    body = b'[{"device_id": "victim", "metrics": {}}]'
    assert enrich("iotpm/attacker/telemetry", body) == ("attacker", body)


def test_enrich_adds_the_publishing_thing_and_keys_by_it() -> None:
    key, data = enrich("iotpm/pump-7/telemetry", b'{"device_id": "pump-7", "metrics": {}}')
    assert key == "pump-7"
    assert json.loads(data) == {"device_id": "pump-7", "metrics": {}, "thing_name": "pump-7"}
    assert enrich("iotpm/pump-7/telemetry", b"not json") == ("pump-7", b"not json")  # the processor quarantines it


@pytest.mark.parametrize(
    "body",
    [
        b'{"device_id": "pump-7", "metrics": {"t": 1.5}}',
        b'{"a":1}\n \t',  # whitespace after the object
        b"{}",
        b'{"thing_name": "pump-9", "a": 1}',  # a field the rule overwrites
        b'{"a": NaN}',  # JSON to Python's json, not to msgspec
        b'{"a": "\xc3\xa9", "b": [1, {"c": null}]}',
        b'{"a": 1',
        b"",
    ],
)
def test_enrich_gives_what_parsing_and_writing_the_whole_object_gives(body: bytes) -> None:
    key, data = enrich("$aws/rules/r/iotpm/pump-7/telemetry", body)
    assert key == "pump-7"
    try:
        expected = json.loads(body)
    except ValueError:
        assert data == body  # not JSON: passed on for the processor to quarantine
        return
    expected["thing_name"] = "pump-7"
    assert json.loads(data) == expected
    assert list(json.loads(data)) == list(expected)  # the fields in the order the rule writes them


class FakeKinesis:
    """One shard holding ``n`` records; iterators are positions."""

    def __init__(self, n: int) -> None:
        self.records = [
            {
                "SequenceNumber": f"{i:05d}",
                "PartitionKey": f"d{i % 3}",
                "Data": b"{}",
                "ApproximateArrivalTimestamp": None,
            }
            for i in range(n)
        ]

    def describe_stream(self, StreamName: str) -> dict[str, Any]:  # noqa: N803 - boto3's names
        return {"StreamDescription": {"StreamARN": "arn:aws:kinesis:::stream/s", "Shards": [{"ShardId": "shard-0"}]}}

    def get_shard_iterator(self, **kw: Any) -> dict[str, str]:
        if kw["ShardIteratorType"] == "TRIM_HORIZON":
            return {"ShardIterator": "0"}
        return {"ShardIterator": str(int(kw["StartingSequenceNumber"]) + 1)}

    def get_records(self, ShardIterator: str, Limit: int) -> dict[str, Any]:  # noqa: N803
        i = int(ShardIterator)
        return {"Records": self.records[i : i + Limit], "NextShardIterator": str(min(i + Limit, len(self.records)))}


class FakeSqs:
    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []

    def send_message(self, QueueUrl: str, MessageBody: str) -> None:  # noqa: N803
        self.bodies.append(json.loads(MessageBody))


def run_poller(kinesis: FakeKinesis, handler: Any, sqs: FakeSqs | None = None, **kw: Any) -> Poller:
    poller = Poller(kinesis, "s", handler, idle_s=0.01, sqs=sqs, on_failure_queue_url="q" if sqs else "", **kw).start()
    deadline = time.monotonic() + 10
    shard = poller.shards["shard-0"]
    while time.monotonic() < deadline and shard.records + shard.sent_to_dlq < len(kinesis.records):
        time.sleep(0.01)
    poller.stop()
    return poller


def test_poller_retries_from_the_reported_failure_and_keeps_order() -> None:
    seen: list[str] = []
    failed_once: set[str] = set()

    def handler(event: Mapping[str, Any], context: Any) -> dict[str, Any]:
        for r in event["Records"]:
            seq = r["kinesis"]["sequenceNumber"]
            if seq == "00005" and seq not in failed_once:  # one transient failure
                failed_once.add(seq)
                return {"batchItemFailures": [{"itemIdentifier": seq}]}
            seen.append(seq)
            assert base64.b64decode(r["kinesis"]["data"]) == b"{}" and r["eventID"] == f"shard-0:{seq}"
        return {"batchItemFailures": []}

    poller = run_poller(FakeKinesis(12), handler, batch_size=4)
    assert seen == [f"{i:05d}" for i in range(12)]  # every record once, in order, 5 after its retry
    assert poller.shards["shard-0"].retries == 1 and poller.shards["shard-0"].records == 12


def test_poller_gives_up_after_max_retries_and_says_where() -> None:
    sqs = FakeSqs()

    def handler(event: Mapping[str, Any], context: Any) -> dict[str, Any]:
        first = event["Records"][0]["kinesis"]["sequenceNumber"]
        return {"batchItemFailures": [{"itemIdentifier": first}] if first == "00004" else []}

    poller = run_poller(FakeKinesis(8), handler, sqs, batch_size=4, max_retries=2)
    info = sqs.bodies[0]["KinesisBatchInfo"]
    assert (info["startSequenceNumber"], info["endSequenceNumber"], info["batchSize"]) == ("00004", "00007", 4)
    assert poller.shards["shard-0"].sent_to_dlq == 4 and poller.shards["shard-0"].retries == 3


def gather_time(arrived_s_ago: float, window_s: float) -> float:
    """Seconds the poller gathers one shard's waiting records (fewer than a batch) before invoking."""
    kinesis = FakeKinesis(5)
    arrival = datetime.fromtimestamp(time.time() - arrived_s_ago, tz=UTC)
    for r in kinesis.records:
        r["ApproximateArrivalTimestamp"] = arrival
    poller = Poller(kinesis, "s", lambda e, c: {}, batch_size=100, batching_window_s=window_s)
    started = time.monotonic()
    assert len(poller._gather("0").records) == 5
    return time.monotonic() - started


def test_the_batching_window_counts_from_the_first_records_arrival() -> None:
    # records that waited out the window in the stream (they came in while the function
    # ran) are invoked at once; fresh ones are held the window, as the mapping does
    assert gather_time(arrived_s_ago=10.0, window_s=3.0) < 1.5
    assert gather_time(arrived_s_ago=0.0, window_s=1.0) >= 0.9


class SlowKinesis(FakeKinesis):
    """A shard whose reads take ``read_s``; its records arrive as the test says (``arrive``)."""

    def __init__(self, read_s: float) -> None:
        super().__init__(0)
        self.read_s, self.reads_at = read_s, []

    def get_records(self, ShardIterator: str, Limit: int) -> dict[str, Any]:  # noqa: N803
        self.reads_at.append(time.monotonic())
        time.sleep(self.read_s)
        return super().get_records(ShardIterator, Limit)

    def arrive(self, n: int) -> None:
        now = datetime.fromtimestamp(time.time(), tz=UTC)
        self.records += [{"SequenceNumber": f"{len(self.records) + i:05d}", "PartitionKey": "d", "Data": b"{}",
                          "ApproximateArrivalTimestamp": now} for i in range(n)]  # fmt: skip


def test_the_last_read_of_a_window_starts_a_read_before_it_closes_so_the_batch_is_invoked_when_it_closes() -> None:
    kinesis = SlowKinesis(read_s=0.3)
    kinesis.arrive(5)
    poller = Poller(kinesis, "s", lambda e, c: {}, batch_size=100, batching_window_s=1.0)
    started = time.monotonic()
    arriving = threading.Timer(0.5, kinesis.arrive, (7,))  # while the window is open
    arriving.start()
    gathered = poller._gather("0")
    took = time.monotonic() - started
    arriving.join()
    # the first records arrived at 0 s: the window closes at 1 s, the last read (0.3 s, as the first
    # took) began at 0.7 s, so the batch is ready at 1 s, not a read later; it has what came at 0.5 s
    assert 0.9 <= took < 1.2
    assert [round(t - started, 1) for t in kinesis.reads_at] == [0.0, 0.7]
    assert len(gathered.records) == 12 and gathered.reads == 2


def test_a_backlog_drains_in_full_batches_however_long_it_waited() -> None:
    # records that waited in the stream (a backlog behind a stall or an overload): every
    # invocation but the last carries a full batch, at once, with no window waited
    kinesis = FakeKinesis(5_500)
    arrival = datetime.fromtimestamp(time.time() - 120, tz=UTC)
    for r in kinesis.records:
        r["ApproximateArrivalTimestamp"] = arrival
    sizes: list[int] = []

    def handler(event: Mapping[str, Any], context: Any) -> dict[str, Any]:
        sizes.append(len(event["Records"]))
        return {"batchItemFailures": []}

    poller = run_poller(kinesis, handler, batch_size=1_000, batching_window_s=5.0)
    shard = poller.shards["shard-0"]
    assert sizes == [1_000] * 5 + [500] and shard.records == 5_500
    assert [b.records for b in shard.recent] == sizes and all(b.failed_at is None for b in shard.recent)
    assert all(b.reads == 1 and b.window_s == 0.0 for b in shard.recent)  # one read each, no window waited


def test_the_poller_records_where_a_failed_invocation_stopped() -> None:
    def handler(event: Mapping[str, Any], context: Any) -> dict[str, Any]:
        seqs = [r["kinesis"]["sequenceNumber"] for r in event["Records"]]
        return {"batchItemFailures": [{"itemIdentifier": "00003"}] if "00003" in seqs and seqs[0] != "00003" else []}

    poller = run_poller(FakeKinesis(6), handler, batch_size=6)
    assert [(b.records, b.failed_at) for b in poller.shards["shard-0"].recent] == [(6, 3), (3, None)]


def test_each_shard_gets_its_own_handler_instance_when_the_poller_has_a_factory() -> None:
    made: list[Any] = []
    seen: dict[int, set[str]] = {}

    def instance() -> Any:
        index = len(made)

        def handler(event: Mapping[str, Any], context: Any) -> dict[str, Any]:
            seen.setdefault(index, set()).update(r["eventID"].split(":")[0] for r in event["Records"])
            return {"batchItemFailures": []}

        made.append(handler)
        return handler

    kinesis = TwoShards(6)
    poller = Poller(kinesis, "s", lambda e, c: {}, instances=instance, idle_s=0.01, batching_window_s=0).start()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and sum(s.records for s in poller.shards.values()) < 12:
        time.sleep(0.01)
    poller.stop()
    assert len(made) == 2 and sorted(map(sorted, seen.values())) == [["shard-0"], ["shard-1"]]


class TwoShards(FakeKinesis):
    """Two shards of ``n`` records each; an iterator is ``shard:position``."""

    def describe_stream(self, StreamName: str) -> dict[str, Any]:  # noqa: N803
        shards = [{"ShardId": "shard-0"}, {"ShardId": "shard-1"}]
        return {"StreamDescription": {"StreamARN": "arn:aws:kinesis:::stream/s", "Shards": shards}}

    def get_shard_iterator(self, **kw: Any) -> dict[str, str]:
        start = 0 if kw["ShardIteratorType"] == "TRIM_HORIZON" else int(kw["StartingSequenceNumber"]) + 1
        return {"ShardIterator": f"{kw['ShardId']}:{start}"}

    def get_records(self, ShardIterator: str, Limit: int) -> dict[str, Any]:  # noqa: N803
        shard, _, at = ShardIterator.rpartition(":")
        i = int(at)
        got = self.records[i : i + Limit]
        return {"Records": got, "NextShardIterator": f"{shard}:{min(i + Limit, len(self.records))}"}


def series(fleet: Fleet, device: str, metric: str, seconds: int, start_ms: int = 1_790_000_000_000) -> np.ndarray:
    m = next(x for x in fleet.machines if x.device_id == device)
    out = []
    for t in range(seconds):
        r = m.reading(float(t), start_ms + t * 1000)
        out.append(np.nan if r is None else r["metrics"][metric])
    return np.array(out)


def test_faults_change_their_metric_from_their_start_only() -> None:
    fleet = Fleet(
        6, seed=1, faults=[Fault("pump-0003", "overheating", 60.0), Fault("motor-0004", "pressure_leak", 60.0)]
    )
    hot, healthy = series(fleet, "pump-0003", "temperature_c", 120), series(fleet, "pump-0000", "temperature_c", 120)
    assert abs(hot[:60].mean() - healthy[:60].mean()) < 10 and hot[100:].min() > 80  # past the 80 C limit
    leak = series(fleet, "motor-0004", "pressure_psi", 120)
    assert leak[:60].min() > 50 and leak[100:].max() < 30  # below the 30 psi limit


def test_stuck_sensor_and_dropout() -> None:
    fleet = Fleet(4, seed=2, faults=[Fault("pump-0000", "stuck_sensor", 10.0), Fault("motor-0001", "dropout", 10.0)])
    stuck = series(fleet, "pump-0000", "temperature_c", 30)
    assert np.unique(stuck[10:]).size == 1 and np.unique(stuck[:10]).size == 10
    assert np.isnan(series(fleet, "motor-0001", "temperature_c", 30)[10:]).all()


def test_scenario_spares_a_healthy_device_and_the_truth_has_absolute_times() -> None:
    fleet = Fleet(20, seed=3)
    faults = fleet.scenario(["overheating", "pressure_leak"], 30.0)
    assert "pump-0000" not in {f.device_id for f in faults} and len({f.device_id for f in faults}) == 2
    truth = ground_truth(faults, 1_000_000)
    assert [t["start_ms"] for t in truth] == [1_030_000, 1_030_000]
    assert [t["metric"] for t in truth] == ["temperature_c", "pressure_psi"]


# -- starting from any state: pid files, the Terraform state, private files -------------------


def _sleeper(procs: Processes, name: str) -> int:
    return procs.spawn(name, [sys.executable, "-c", "import time; time.sleep(60)"])


def test_a_pid_file_names_its_process_and_never_a_stranger_that_got_its_pid(tmp_path: Path) -> None:
    """After a reboot the recorded pid may belong to another process: it must not count as ours, nor be signalled."""
    procs = Processes(tmp_path)
    pid = _sleeper(procs, "services")
    try:
        assert procs.pid("services") == pid and procs.stale() == {}
        me = pidfile.read(tmp_path / "services.pid")
        assert me is not None and me.start is not None and me.boot == pidfile.boot_id()
        (tmp_path / "services.pid").write_text(f"{pid} {me.start} another-boot\n")  # the same pid, after a reboot
        assert procs.pid("services") is None and procs.stale() == {"services": pid}
        assert procs.stop("services") is False  # nothing signalled...
        assert pidfile.running(me)  # ...the process that has the pid runs on
        (tmp_path / "services.pid").write_text(f"{pid} {me.start + 1} {me.boot}\n")  # same boot, a later process
        assert procs.pid("services") is None
        (tmp_path / "services.pid").write_text(f"{pid}\n")  # a file of an older release: the pid is all it says
        assert procs.pid("services") == pid
    finally:
        os.kill(pid, signal.SIGKILL)


def test_an_ended_process_leaves_a_stale_pid_file_that_clean_removes(tmp_path: Path) -> None:
    procs = Processes(tmp_path)
    pid = _sleeper(procs, "bridge")
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while procs.pid("bridge") is not None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert procs.running() == {} and procs.stale() == {"bridge": pid}
    assert procs.clean() == ["bridge"] and procs.stale() == {} and not (tmp_path / "bridge.pid").exists()


def _state(folder: Path, resources: int = 1, text: str | None = None) -> TerraformState:
    folder.mkdir(parents=True, exist_ok=True)
    body = {"version": 4, "outputs": {"api_key_id": {"value": "k1"}, "region": {"value": "eu-west-1"}},
            "resources": [{"type": "aws_kinesis_stream"}] * resources}  # fmt: skip
    (folder / "terraform.tfstate").write_text(json.dumps(body) if text is None else text)
    return TerraformState(folder)


def test_a_state_is_kept_while_its_emulator_runs_and_stale_once_it_ends(tmp_path: Path) -> None:
    state = _state(tmp_path / "terraform")
    alive = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        state.claim("http://127.0.0.1:4566", pidfile.identify(alive.pid))
        assert state.stale("http://127.0.0.1:4566") is None
        assert "not http://127.0.0.1:4567" in str(state.stale("http://127.0.0.1:4567"))  # another emulator
    finally:
        alive.kill()
        alive.wait()
    assert "no longer runs" in str(state.stale("http://127.0.0.1:4566"))
    (tmp_path / "terraform" / ".terraform").mkdir()
    state.discard()
    assert state.read() is None and state.owner() is None and (tmp_path / "terraform" / ".terraform").is_dir()


def test_states_that_cannot_be_trusted_are_stale_and_empty_ones_are_not(tmp_path: Path) -> None:
    assert TerraformState(tmp_path / "none").stale() is None  # nothing applied yet
    assert _state(tmp_path / "empty", resources=0).stale() is None  # nothing to lose
    assert "unreadable" in str(_state(tmp_path / "cut", text="").stale())  # an interrupted apply's 0-byte file
    assert "older iotpm" in str(_state(tmp_path / "old").stale())  # no emulator recorded
    foreign = _state(tmp_path / "foreign")
    foreign.claim("http://127.0.0.1:4566", None)  # an emulator iotpm did not start: the caller asks it
    assert foreign.stale("http://127.0.0.1:4566") is None


def test_status_names_what_an_earlier_run_left_and_down_removes_it(tmp_path: Path) -> None:
    """After a kill or a reboot: pid files of ended processes and the Terraform state of an emulator that is gone."""
    twin = Twin(tmp_path)
    ended = subprocess.Popen([sys.executable, "-c", "pass"])
    ended.wait()
    pidfile.write(twin.procs.folder / "broker.pid", os.getpid())
    (twin.procs.folder / "broker.pid").write_text(f"{ended.pid} 1 {pidfile.boot_id()}\n")
    state = _state(twin.home / "terraform")
    state.claim("http://127.0.0.1:4566", pidfile.Recorded(ended.pid, 1, pidfile.boot_id()))
    stale = twin.status()["stale"]
    assert set(stale) >= {"pid files", "state"}, stale
    assert "broker" in stale["pid files"] and "no longer runs" in stale["state"]
    done = twin.down()
    assert done.stopped == []
    assert any("pid files" in r for r in done.removed) and any("Terraform state" in r for r in done.removed)
    assert Twin(tmp_path).stale().keys() <= {"broker files"}  # only other twins' leftovers, if any, remain
    assert state.read() is None


def test_the_twins_folder_is_private_even_if_it_was_not(tmp_path: Path) -> None:
    (tmp_path / "local").mkdir(mode=0o755)
    (tmp_path / "local").chmod(0o755)
    twin = Twin(tmp_path)
    assert twin.home.stat().st_mode & 0o777 == 0o700


def test_a_secret_is_never_readable_by_others_whatever_the_umask(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        target = tmp_path / "summary.json"
        target.write_text("old")
        target.chmod(0o644)
        before = target.stat().st_ino
        write_private(target, "key")
        assert target.read_text() == "key" and target.stat().st_mode & 0o777 == 0o600
        assert target.stat().st_ino != before  # replaced whole, never rewritten in place
        LocalCA(tmp_path / "pki").issue("pump-0001")
        keys = sorted((tmp_path / "pki").glob("*.key"))
        assert keys and all(k.stat().st_mode & 0o777 == 0o600 for k in keys)
    finally:
        os.umask(old)


def test_an_aws_issued_private_key_is_created_private(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`iotpm devices provision` writes the key AWS returns: created 0600, never first with the umask's mode."""
    from iotpm.adapters import iot

    class FakeIot:
        def describe_thing(self, thingName: str) -> None:  # noqa: N803 - boto3's names
            return None

        def create_keys_and_certificate(self, setAsActive: bool) -> dict[str, Any]:  # noqa: N803
            return {"certificateArn": "arn:c", "certificatePem": "CERT", "keyPair": {"PrivateKey": "KEY"}}

        def attach_policy(self, **_: Any) -> None:
            return None

        def attach_thing_principal(self, **_: Any) -> None:
            return None

    created: list[tuple[str, int]] = []
    real_open = os.open

    def spy(path: Any, flags: int, mode: int = 0o777, *args: Any, **kwargs: Any) -> int:
        created.append((str(path), mode))
        return real_open(path, flags, mode, *args, **kwargs)

    monkeypatch.setattr(iot.os, "open", spy)
    old = os.umask(0)
    try:
        iot.provision(FakeIot(), ["pump-1"], "policy", tmp_path / "certs")
    finally:
        os.umask(old)
    key = tmp_path / "certs" / "pump-1.key"
    assert key.read_text() == "KEY" and key.stat().st_mode & 0o777 == 0o600
    assert [mode for path, mode in created if "pump-1.key" in path] == [0o600]


def test_the_poller_builds_the_same_event_from_raw_records_as_from_botocores_parsed_ones(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The poller's reader leaves data as base64 text and arrivals as numbers (:func:`raw_records_client`):
    the handler must get the event a default client's bytes and datetimes give, byte for byte."""
    import boto3
    from moto import mock_aws

    from iotpm.local.poller import raw_records_client

    for name in [k for k in os.environ if k.startswith("AWS_ENDPOINT_URL")]:
        monkeypatch.delenv(name)  # in-process moto here, not the integration tests' emulator
    creds = {"region_name": "eu-west-1", "aws_access_key_id": "t", "aws_secret_access_key": "t"}
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "t")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "t")
    with mock_aws():
        kinesis = boto3.client("kinesis", **creds)
        kinesis.create_stream(StreamName="s", ShardCount=1)
        data = [b"{}", b'{"a":1}', bytes(range(256)), b""]
        kinesis.put_records(StreamName="s", Records=[{"PartitionKey": f"d{i}", "Data": d} for i, d in enumerate(data)])
        events = []
        for client in (kinesis, raw_records_client()):
            poller = Poller(client, "s", handler=lambda e, c: {})
            desc = client.describe_stream(StreamName="s")["StreamDescription"]
            poller.arn = desc["StreamARN"]
            shard = desc["Shards"][0]["ShardId"]
            it = client.get_shard_iterator(StreamName="s", ShardId=shard, ShardIteratorType="TRIM_HORIZON")
            records = client.get_records(ShardIterator=it["ShardIterator"])["Records"]
            events.append([poller._record(shard, r) for r in records])
    assert isinstance(records[0]["Data"], str)  # the raw client's: base64 text as the answer held it
    assert events[0] == events[1]
    assert [base64.b64decode(r["kinesis"]["data"]) for r in events[1]] == data

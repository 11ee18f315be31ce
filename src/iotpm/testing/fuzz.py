"""What real devices, gateways and AWS put on the stream, good and bad, with the answer known.

A seeded generator of Kinesis records (and the odd Kinesis event) that mixes what a
plant's devices really send (canonical readings, arrays, the legacy single-sensor
shapes, restarts, a gateway's late readings, the same message delivered twice) with
what breaks decoders (random bytes, truncations, scalars, nested and deep arrays,
extreme and non-finite numbers, huge integers, control characters and odd unicode in
ids, wrong types, spoofed devices). Each good reading it plants is listed, so a test
can check that every one was stored; :func:`check` states the invariants.

Used by the property tests (``tests/unit/test_ingest_fuzz.py``) and the larger run
(``benchmarks/fuzz.py``). Not imported by the Lambda handlers.
"""

from __future__ import annotations

import base64
import json
import math
import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

from iotpm.models.validation import MAX_ABS_VALUE, MIN_ABS_VALUE, RejectReason
from iotpm.service.ports import BatchLog, ReadingRow
from iotpm.service.processor import RawRecord

SHARD = "shardId-000000000007"
METRICS = ("temperature_c", "vibration_mm_s", "pressure_psi")
LEGACY = {"temperature_c": "temperature", "vibration_mm_s": "vibration", "pressure_psi": "pressure"}
#: what DynamoDB's number type holds: |x| in [1e-130, 9.99...e125] or 0, 38 significant digits
DYNAMO_MAX, DYNAMO_MIN = 9.9999999999999999999999999999999999999e125, 1e-130

Json = Any
#: the value a spoofing device reports for its victim: never stored
SPOOFED = 500.0
#: a hostile thing of its own, beside the fleet: what it sends costs it alone
ATTACKER = "fz-attacker"


@dataclass(frozen=True, slots=True)
class Planted:
    """A good reading the stream carries: it must be stored (once)."""

    device_id: str
    ts_ms: int
    seq: int | None
    metrics: tuple[str, ...]


@dataclass
class Corpus:
    """One batch of records, the good readings in it, and how many are planted repeats."""

    records: list[RawRecord] = field(default_factory=list)
    planted: list[Planted] = field(default_factory=list)
    repeats: int = 0  # planted good messages delivered a second time (must count as duplicates)
    kinds: dict[str, int] = field(default_factory=dict)


class Stream:
    """A fleet's stream over time: call :meth:`batch` for each Lambda batch.

    Devices keep a clock and a sequence counter across batches (restarts reset the
    counter), Kinesis sequence numbers grow across batches as on a real shard.
    """

    def __init__(self, seed: int, devices: int = 20, *, start_ms: int = 1_790_000_000_000) -> None:
        self.rng = random.Random(seed)
        self.ids = [f"fz-{seed % 1000:03d}-{d:03d}" for d in range(devices)]
        self.clock = {d: start_ms + self.rng.randrange(0, 1000) for d in self.ids}
        self.seq = dict.fromkeys(self.ids, 0)
        self.number = 10**20 + seed * 10**9  # Kinesis sequence numbers: decimal, increasing per shard
        self.now_ms = start_ms
        self.sent: list[tuple[str, bytes, int]] = []  # good messages and their reading counts, for repeats
        self.queue: list[tuple[str, str, bytes]] = []  # messages that follow the one just made
        self.names = 0  # the attacker's new metric names so far

    # -- the batch ------------------------------------------------------------------------

    def batch(self, size: int, junk: float = 0.3) -> Corpus:
        """``size`` records: about ``1 - junk`` of them what devices send, the rest hostile."""
        corpus = Corpus()
        while len(corpus.records) < size or self.queue:  # a message's followers stay in its batch
            if self.queue:
                kind, key, data = self.queue.pop(0)
            elif self.rng.random() < junk:
                kind, key, data = self._junk()
            else:
                kind, key, data = self._good(corpus)
            corpus.kinds[kind] = corpus.kinds.get(kind, 0) + 1
            self.number += self.rng.randrange(1, 5)
            corpus.records.append(RawRecord(str(self.number), key, data, self.now_ms + 20, SHARD))
        return corpus

    def _tick(self, device: str) -> tuple[int, int]:
        self.clock[device] += self.rng.choice((1000, 1000, 1000, 5000, 250))
        self.seq[device] += 1
        self.now_ms = max(self.now_ms, self.clock[device])  # Kinesis receives it after it was measured
        return self.clock[device], self.seq[device]

    def _metrics(self, names: Sequence[str] = METRICS) -> dict[str, float]:
        base = {"temperature_c": 55.0, "vibration_mm_s": 2.0, "pressure_psi": 90.0}
        return {m: round(base[m] + self.rng.gauss(0, 1), 4) for m in names}

    def _good(self, corpus: Corpus) -> tuple[str, str, bytes]:
        device = self.rng.choice(self.ids)
        roll = self.rng.random()
        if roll < 0.05 and self.sent:  # the same message again (a rule retry, a QoS 1 resend)
            key, data, readings = self.rng.choice(self.sent[-50:])
            corpus.repeats += readings
            return "repeat", key, data
        if roll < 0.08:  # the device restarted: its counter starts again
            self.seq[device] = 0
        ts, seq = self._tick(device)
        if roll < 0.14:  # legacy single-sensor messages of one instant (no seq), one record each
            messages = [
                {"sensor_id": device, "production_line": "line-1", "type": LEGACY[m], "value": v, "timestamp": ts}
                for m, v in self._metrics().items()
            ]
            corpus.planted += [Planted(device, ts, None, (m,)) for m in METRICS]
            first, *rest = (self._remember(device, json.dumps(m).encode(), 1) for m in messages)
            self.queue += [("legacy", device, data) for data in rest]
            return "legacy", device, first
        if roll < 0.2:  # a gateway forwarding what it buffered: an hour or two old
            late = ts - self.rng.randrange(3_600_000, 7_200_000)
            body = _canonical(device, late, seq, self._metrics())
            corpus.planted.append(Planted(device, late, seq, METRICS))
            return "late", device, self._remember(device, json.dumps(body).encode(), 1)
        if roll < 0.3:  # an array of readings (a device batching its publishes)
            items = [_canonical(device, ts, seq, self._metrics())]
            corpus.planted.append(Planted(device, ts, seq, METRICS))
            for _ in range(self.rng.randrange(1, 5)):
                t, s = self._tick(device)
                items.append(_canonical(device, t, s, self._metrics()))
                corpus.planted.append(Planted(device, t, s, METRICS))
            return "array", device, self._remember(device, json.dumps(items).encode(), len(items))
        names = METRICS if roll < 0.9 else tuple(self.rng.sample(METRICS, 2))  # a change of shape
        body = _canonical(device, ts, seq, self._metrics(names))
        corpus.planted.append(Planted(device, ts, seq, names))
        return "canonical", device, self._remember(device, json.dumps(body).encode(), 1)

    def _remember(self, key: str, data: bytes, readings: int) -> bytes:
        self.sent.append((key, data, readings))
        return data

    # -- hostile records ----------------------------------------------------------------------

    def _junk(self) -> tuple[str, str, bytes]:
        device = self.rng.choice(self.ids)
        ts = self.clock[device]
        kinds: list[tuple[str, Callable[[], Json | bytes]]] = [
            ("random_bytes", lambda: self.rng.randbytes(self.rng.randrange(0, 300))),
            (
                "truncated",
                lambda: json.dumps(_canonical(device, ts, 1, self._metrics())).encode()[: self.rng.randrange(1, 60)],
            ),
            ("scalar", lambda: self.rng.choice([1, None, True, False, "x", 1.5, -0.0, 10**400, ""])),
            ("scalar_array", lambda: [self.rng.choice([1, None, True, "x", [], {}])] * self.rng.randrange(1, 4)),
            (
                "nested_array",
                lambda: [[{}]] if self.rng.random() < 0.5 else [[_canonical(device, ts, 1, self._metrics())]],
            ),
            ("deep", self._deep_array),
            ("deep_object", self._deep_object),
            ("extreme_number", lambda: _canonical(device, ts, 1, {"temperature_c": self._extreme()})),
            ("non_finite", lambda: self._non_finite(device, ts)),
            ("huge_seq", lambda: _canonical(device, ts, self.rng.choice([2**63, 2**64, -1, 10**40]), self._metrics())),
            ("odd_id", lambda: _canonical(self._odd_id(), ts, 1, self._metrics())),
            ("odd_metric", lambda: _canonical(device, ts, 1, {self._odd_id(): 1.0})),
            ("many_metrics", lambda: _canonical(device, ts, 1, {f"m{i}_c": 1.0 for i in range(33)})),
            ("wrong_types", lambda: self._wrong_types(device, ts)),
            (
                "bad_time",
                lambda: _canonical(
                    device, self.rng.choice([0, -1, 10**15, ts + 10**9, "yesterday", True]), 1, self._metrics()
                ),
            ),
            ("spoof", lambda: _canonical(self.ids[0], ts, 1, {"temperature_c": SPOOFED})),
            # a hostile device of its own (ATTACKER, not one of the fleet's): many readings
            # naming the fleet's devices, a record past the readings cap, endless new names
            (
                "hostile_foreign_ids",
                lambda: [_canonical(self.rng.choice(self.ids), ts, i, {"temperature_c": SPOOFED}) for i in range(600)],
            ),
            ("hostile_too_many", lambda: [_canonical(ATTACKER, ts + i, i, self._metrics()) for i in range(1001)]),
            ("hostile_new_names", lambda: self._new_names(ts)),
            ("spoof_array", lambda: [_canonical(self.ids[0], ts, 1, {"temperature_c": SPOOFED})]),
            ("thing_mismatch", lambda: {**_canonical(device, ts, 1, self._metrics()), "thing_name": "someone-else"}),
            ("mixed_array", lambda: [_canonical(device, ts, 1, self._metrics()), 7, "x", None, {"device_id": device}]),
            (
                "schema",
                lambda: {
                    **_canonical(device, ts, 1, self._metrics()),
                    "schema_version": self.rng.choice([2, "1", None, 1.0]),
                },
            ),
            ("unknown_shape", lambda: {"hello": "world", "n": [1, 2]}),
            ("invalid_utf8", lambda: b'{"device_id": "\xff\xfe", "ts": 1, "metrics": {}}'),
            ("empty", lambda: self.rng.choice([b"", b" ", b"{}", b"[]", b"\x00"])),
            # Kinesis takes records up to 1 MiB; one message may be 16 KiB
            ("oversize", lambda: b'{"device_id": "' + device.encode() + b'", "pad": "' + b"x" * 1_000_000 + b'"}'),
        ]
        kind, make = self.rng.choice(kinds)
        if kind == "oversize" and self.rng.random() < 0.9:  # 1 MB records: rare, they cost time
            kind, make = kinds[0]
        value = make()
        data = value if isinstance(value, bytes) else json.dumps(value, allow_nan=True).encode("utf-8", "surrogatepass")
        key = self.ids[1] if kind.startswith("spoof") else device  # the attacker publishes as ids[1]
        return kind, ATTACKER if kind.startswith("hostile") else key, data

    def _new_names(self, ts: int) -> Json:
        """40 readings of the attacker, each with 32 metric names never sent before (past any channel cap)."""
        out = []
        for r in range(40):
            self.names += 1
            metrics = {f"n{self.names}x{j}_c": 1.0 for j in range(32)}
            out.append(_canonical(ATTACKER, ts - 40_000 + r * 1000, self.names, metrics))
        return out

    def _deep_array(self) -> bytes:
        return ("[" * self.rng.randrange(900, 5000) + "]" * 10).encode()

    def _deep_object(self) -> bytes:
        return ('{"a":' * self.rng.randrange(900, 3000) + "1" + "}" * 3000).encode()

    def _extreme(self) -> float:
        return self.rng.choice(
            [1e308, -1e308, 1e-320, 5e-324, 9.99e125, 1e126, 1e-131, -1e-131, MAX_ABS_VALUE * 1.01, MIN_ABS_VALUE / 2]
        )

    def _non_finite(self, device: str, ts: int) -> bytes:
        literal = self.rng.choice(["NaN", "Infinity", "-Infinity", "1e999", '"NaN"', '"inf"'])
        return f'{{"device_id": "{device}", "ts": {ts}, "seq": 1, "metrics": {{"temperature_c": {literal}}}}}'.encode()

    def _odd_id(self) -> str:
        return self.rng.choice(
            ["", " ", "dev\n", "dev\x00x", "dev-1\n", "\u202edev", "dév", "🛠️", "a" * 129, "a/b", "-lead", "x\u2028y"]
        )

    def _wrong_types(self, device: str, ts: int) -> Json:
        base = _canonical(device, ts, 1, self._metrics())
        key = self.rng.choice(["device_id", "ts", "seq", "metrics", "site", "line", "device_type"])
        base[key] = self.rng.choice([None, [], {}, True, 1.5, "1", [1], {"a": 1}, 10**30])
        return base


def _canonical(device: str, ts: object, seq: object, metrics: Mapping[str, object]) -> dict[str, Any]:
    return {
        "schema_version": 1,
        "device_id": device,
        "ts": ts,
        "seq": seq,
        "site": "plant-1",
        "line": "line-1",
        "device_type": "pump",
        "metrics": dict(metrics),
    }


def odd_event(records: Sequence[RawRecord], rng: random.Random) -> dict[str, Any]:
    """A Kinesis event carrying ``records``, some of its records' fields out of shape."""
    out: list[Any] = []
    for r in records:
        rec: dict[str, Any] = {
            "eventID": f"{r.shard_id}:{r.sequence_number}",
            "eventSource": "aws:kinesis",
            "kinesis": {
                "sequenceNumber": r.sequence_number,
                "partitionKey": r.partition_key,
                "data": base64.b64encode(r.data).decode(),
                "approximateArrivalTimestamp": r.arrival_ms / 1000,
            },
        }
        if rng.random() < 0.05:
            field_name = rng.choice(["data", "sequenceNumber", "partitionKey", "approximateArrivalTimestamp"])
            rec["kinesis"][field_name] = rng.choice([None, 7, "not base64 !", [], {}, "NaN", 1e300, True])
        if rng.random() < 0.01:
            odd: list[Any] = [None, 1, "x", [], {"kinesis": None}, {"eventID": 5, "kinesis": {}}]
            out.append(rng.choice(odd))
            continue
        out.append(rec)
    return {"Records": out}


def dynamo_number_ok(value: object) -> bool:
    """Whether DynamoDB's number type could store ``value`` (its range; precision is rounded)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    if isinstance(value, float) and not math.isfinite(value):
        return False
    size = abs(value)
    return size == 0 or DYNAMO_MIN <= size <= DYNAMO_MAX


REASONS = frozenset(r.value for r in RejectReason) - {RejectReason.DECODER_ERROR.value}


# -- running a corpus through the real handler, and what must hold ------------------------------


@dataclass
class Outcome:
    """What one batch did, and every invariant it broke (empty when all held)."""

    counts: Any
    failed_items: int
    exception: str | None
    violations: list[str]
    seconds: float = 0.0  # the handler's time alone


class Harness:
    """The processor Lambda handler over in-memory stores, and the API's read side over them.

    ``write_behind`` gives the processor a batch log and snapshots (as the pipeline
    module deploys it by default), compacting every ``compact_interval_s`` of wall time
    (0: every batch). The checks read what the API shows, log included.
    """

    def __init__(
        self, *, write_behind: bool = False, compact_interval_s: int = 600, batch_log: BatchLog | None = None
    ) -> None:
        from iotpm.api.memory import MemoryQueries
        from iotpm.handlers.processor import ProcessorHandler
        from iotpm.service import Processor, ProcessorSettings
        from iotpm.service import memory as m

        self.states, self.readings, self.anomalies = m.MemoryStates(), m.MemoryReadings(), m.MemoryAnomalies()
        self.rollups, self.archive, self.alerts = m.MemoryRollups(), m.MemoryArchive(), m.MemoryAlerts()
        self.log: BatchLog = batch_log or m.MemoryLog()
        self.snapshots = m.MemorySnapshots()
        seen: list[Any] = [None]

        class Counting(Processor):
            def __call__(self, records: Sequence[RawRecord], now_ms: int | None = None) -> Any:
                outcome = super().__call__(records, now_ms)
                seen[0] = outcome.counts
                return outcome

        self._seen = seen
        self.processor = Counting(
            states=self.states,
            readings=self.readings,
            anomalies=self.anomalies,
            rollups=self.rollups,
            archive=self.archive,
            alerts=self.alerts,
            settings=ProcessorSettings(compact_interval_s=compact_interval_s),
            batch_log=self.log if write_behind else None,
            snapshots=self.snapshots if write_behind else None,
        )
        self.handler = ProcessorHandler(lambda: self.processor)
        # MemoryQueries reads the log through the BatchLog port only (a DynamoLog over a stand-in table works)
        log = cast("m.MemoryLog", self.log)
        self.queries = MemoryQueries(self.states, self.readings, self.anomalies, self.rollups, log)

    @property
    def last_counts(self) -> Any:
        return self._seen[0]

    def send(self, event: Mapping[str, Any]) -> tuple[dict[str, Any] | None, str | None]:
        try:
            return self.handler(event), None
        except Exception as exc:  # the invariant under test: nothing raises
            return None, f"{type(exc).__name__}: {exc}"[:300]

    def run(self, corpus: Corpus, event: Mapping[str, Any], *, exact: bool) -> Outcome:
        """Send ``event`` (carrying ``corpus``); check the invariants (``exact``: an event in shape)."""
        archived = set(self.archive.objects)
        self._seen[0] = None
        started = time.perf_counter()
        response, exception = self.send(event)
        seconds = time.perf_counter() - started
        violations: list[str] = [] if exception is None else [f"handler raised {exception}"]
        failed = len(response["batchItemFailures"]) if response else 0
        if failed:
            violations.append(f"{failed} batch item failures for input alone")
        c = self.last_counts
        if c is not None:
            if c.received != c.stored + c.duplicates + c.quarantined + c.failed:
                violations.append(f"counts do not add up: {c}")
            if exact and c.duplicates != corpus.repeats:
                violations.append(f"{c.duplicates} duplicates counted, {corpus.repeats} planted")
        violations += self._quarantine_lines(archived)
        if exact:
            violations += self.stored_all(corpus.planted)
        return Outcome(c, failed, exception, violations, seconds)

    def _quarantine_lines(self, before: set[str]) -> list[str]:
        out = []
        for key in set(self.archive.objects) - before:
            if not key.startswith("quarantine"):
                continue
            for line in self.archive.objects[key].lines:
                reason = line.get("reason") if isinstance(line, Mapping) else None
                if reason not in REASONS:
                    out.append(f"quarantined with reason {reason!r}: {str(line)[:200]}")
                try:
                    json.dumps(line, allow_nan=False)
                except (TypeError, ValueError) as exc:
                    out.append(f"quarantine line is not strict JSON ({exc}): {str(line)[:200]}")
        return out

    def stored_all(self, planted: Sequence[Planted]) -> list[str]:
        """Every planted reading visible through the API's read side, with its metrics."""
        by_device: dict[str, list[Planted]] = {}
        for p in planted:
            by_device.setdefault(p.device_id, []).append(p)
        missing = []
        for device, items in by_device.items():
            lo, hi = min(p.ts_ms for p in items), max(p.ts_ms for p in items) + 1
            seen = {(r.ts_ms, r.seq, tuple(sorted(r.metrics))) for r in self._readings(device, lo, hi)}
            missing += [p for p in items if (p.ts_ms, p.seq, tuple(sorted(p.metrics))) not in seen]
        return [f"{len(missing)} planted readings not stored, e.g. {missing[0]}"] if missing else []

    def visible(self) -> list[ReadingRow]:
        """Every reading the API shows, of every device (the tables, and the log not yet compacted)."""
        return [r for device in sorted(self.states.items) for r in self._readings(device, 0, 2**62)]

    def _readings(self, device: str, start_ms: int, end_ms: int) -> list[ReadingRow]:
        """The device's readings in [start_ms, end_ms) through the API's read side, every page."""
        out: list[ReadingRow] = []
        cursor: str | None = None
        while True:
            page = self.queries.readings(device, start_ms, end_ms, 2000, cursor)
            out += page.items
            cursor = page.cursor
            if cursor is None:
                return out

    def totals(self) -> dict[str, Any]:
        """What a replay must leave unchanged: readings, rollup counts and sums, anomalies, alerts."""
        readings = len(self.visible())
        buckets: dict[tuple[str, str], tuple[int, float]] = {}
        for device in sorted(self.states.items):
            for resolution in ("1m", "1h"):
                page = self.queries.buckets(device, resolution, 0, 2**62, 100_000, None)
                for b in page.items:
                    for name, s in b.metrics.items():
                        count, total = buckets.get((resolution, name), (0, 0.0))
                        buckets[(resolution, name)] = (count + s["count"], total + s["mean"] * s["count"])
        return {
            "readings": readings,
            "buckets": {f"{r}/{n}": (c, round(t, 3)) for (r, n), (c, t) in sorted(buckets.items())},
            "anomalies": len(self.anomalies.items),
            "alerts": len(self.alerts.sent),
            "devices": {d: v.readings for d in sorted(self.states.items) if (v := self.queries.device(d)) is not None},
        }

    def consistency(self) -> list[str]:
        """Rollups agree with the readings; every stored number fits DynamoDB; no spoofed value stored."""
        out = []
        per_metric: dict[str, int] = {}
        for row in self.visible():
            for name, value in row.metrics.items():
                per_metric[name] = per_metric.get(name, 0) + 1
                if not dynamo_number_ok(value):
                    out.append(f"reading value {value!r} does not fit DynamoDB")
            if not dynamo_number_ok(row.score):
                out.append(f"score {row.score!r} does not fit DynamoDB")
            if row.metrics.get("temperature_c") == SPOOFED:
                out.append(f"a spoofed reading was stored for {row.device_id}")
        rolled = {n.split("/")[1]: c for n, (c, _) in self.totals()["buckets"].items() if n.startswith("1m/")}
        if rolled != per_metric:
            out.append(f"1m rollup counts {rolled} differ from the stored readings {per_metric}")
        for key, value in self.totals()["buckets"].items():
            if not dynamo_number_ok(value[1]):
                out.append(f"rollup sum {key} = {value[1]!r} does not fit DynamoDB")
        return out[:20]

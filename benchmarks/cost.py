"""What each environment costs a month, and per million readings, at a stated fleet: computed, not guessed.

Reads each environment's ``terraform/environments/<env>/terraform.tfvars`` (and the
pipeline module's defaults for what it does not set), prices from one table
(``benchmarks/aws_prices.json``: per region, every price with its source page), and
the counts the other benchmarks measure:

- message bytes: a canonical reading as the simulator sends it, plus the rule's
  ``thing_name`` (measured here); IoT meters messages in 5 KB steps, Kinesis on demand
  bills every record as at least 1 KB;
- batches: one Lambda invocation per shard and batching window (or full batch); every
  per-batch cost (Lambda requests and GB-s, the raw archive PUT, the snapshot's GET and
  PUT, the batch-log write, X-Ray traces, log lines) multiplies by the shard count,
  and on-demand Kinesis starts at 4 shards;
- Lambda GB-s: the processor benchmark's per-record time (``benchmarks/processor.py``,
  ``--processor-ms-per-10k``) plus a per-batch wait for its AWS calls (an assumption,
  ``--batch-io-ms``), times the function's memory;
- DynamoDB write units: the batch log's item(s) of a batch of the environment's size, sized here
  with the adapters' own encoder (``log_items``) by DynamoDB's rules (``item_size``), and
  ``benchmarks/storage_cost.py``'s measured compaction writes per device and interval (its chunk,
  rollup blocks and record); the readings table holds a reading in its chunk and in the batch log;
- archive bytes: the processor's own encoder on a batch of the environment's size
  (measured here); the lifecycle does not move objects under 128 KB;
- X-Ray: Lambda's default sampling rule (1 trace a second, then 5 %), per function, or the API
  stage's own rule (``api_xray_sampling_rate``: a fixed rate, no reservoir);
- interface endpoints x availability zones x hours; log volume; point-in-time recovery.

Whether devices publish through IoT Basic Ingest (no messaging charge; rules and actions
still billed) is read from the iot module's device policy (``terraform/modules/iot/main.tf``):
it allows only the ``$aws/rules/<rule>/...`` topic, so every environment uses it.

How the fleet publishes is an input (``--readings-per-message``, printed first and in the
headline): through gateways packing 10 devices' readings a message as stated, or 1 for devices
publishing their own; the JSON says whether the $0.50 target is met either way.

Levers (computed by the same model on prod, each with what it trades): IoT Basic Ingest,
provisioned Kinesis shards sized from the fleet's rate, the batching window, X-Ray
pass-through on the processor and sampling on the API, two AZs for the endpoints, gateways
packing several readings per message, an archive in objects large enough for the lifecycle
(the Parquet compaction), the batch log's own 7-day expiry (with the idle-shard compaction),
a device item under 1 KB. Levers that weaken a guarantee (shorter
stream retention, endpoints in one AZ, a shorter DynamoDB window, slower compaction, a
60 s window) are a table of their own, never in the headline.

Prints the tables; ``--write-docs`` rewrites the marked cost block of docs/cost.md. The last
line is one JSON object with ``usd_per_million_readings`` for prod.
"""

from __future__ import annotations

import argparse
import json
import math
import re
from dataclasses import dataclass, field, replace
from functools import lru_cache
from pathlib import Path
from typing import Any

from iotpm.adapters.dynamodb import LOG_TTL_S, block_item, chunk_item, item_size, log_items, write_units
from iotpm.service.ports import (
    RESOLUTION_MS,
    ROLLUP_BLOCK_MS,
    LogDevice,
    LogEntry,
    RawLine,
    ReadingRow,
    RollupBlock,
    block_of,
    buckets_of_rows,
    log_key,
    reading_key,
)
from iotpm.service.processor import encode_lines
from iotpm.service.samples import reading

ROOT = Path(__file__).resolve().parents[1]
ENVIRONMENTS = ("dev", "staging", "prod")
BEGIN, END = "<!-- cost.py:begin -->", "<!-- cost.py:end -->"
README_BEGIN, README_END = "<!-- cost.py:summary:begin -->", "<!-- cost.py:summary:end -->"
KB, GB = 1024, 1024**3
MONTH_MIN = 730 * 60
MAX_BATCH_BYTES = 6 * 1000**2  # a Lambda invocation's payload


# -- the environment, as Terraform would build it ------------------------------------


def hcl_values(text: str) -> dict[str, str]:
    """Top-level ``name = value`` lines of a tfvars file (scalars and one-line lists)."""
    out = {}
    for raw in text.splitlines():
        m = re.match(r"^([a-z_0-9]+)\s*=\s*(.+?)\s*(#.*)?$", raw)
        if m:
            out[m.group(1)] = m.group(2)
    return out


def module_defaults() -> dict[str, str]:
    text = (ROOT / "terraform" / "modules" / "pipeline" / "variables.tf").read_text()
    out = {}
    for name, body in re.findall(r'variable "(\w+)" \{(.*?)\n\}', text, re.S):
        m = re.search(r"^\s*default\s*=\s*(.+)$", body, re.M)
        if m:
            out[name] = m.group(1).strip()
    return out


@dataclass(frozen=True)
class Environment:
    """What the model needs from an environment's tfvars."""

    name: str
    region: str
    azs: int
    stream_mode: str
    shard_count: int
    retention_h: int
    memory_mb: int
    batch_size: int
    window_s: float
    arch: str
    log_retention_days: int
    compact_interval_s: int
    readings_ttl_days: int
    archive_expiration_days: int
    interface_endpoints: int
    processor_tracing: str = "Active"  # processor_tracing: Active or PassThrough
    api_sampling: float | None = None  # api_xray_sampling_rate: the API stage's traced fraction (None: X-Ray's default)
    endpoint_azs: int = 0  # endpoint_az_count: AZs holding the interface endpoints (0: all of azs)
    basic_ingest: bool = False  # the iot module's policy lets devices publish only through Basic Ingest
    report_in_vpc: bool = True  # report_in_vpc: the report function in the VPC (then an Athena endpoint)
    log_ttl_days: int = 0  # days a batch-log item is kept (write-behind: the adapters'); 0: the readings' TTL

    @classmethod
    def load(cls, name: str) -> Environment:
        v = module_defaults() | hcl_values(
            (ROOT / "terraform" / "environments" / name / "terraform.tfvars").read_text()
        )

        def num(key: str) -> float:
            return float(v[key].strip('"'))

        # sns (the processor), athena (only the report calls it: only while the report runs in the VPC),
        # timestream when on
        report_in_vpc = v.get("report_in_vpc", "true") == "true"
        endpoints = 1 + report_in_vpc + (1 if v.get("enable_timestream", "false") == "true" else 0)
        endpoints += len(re.findall(r'"[^"]+"', v.get("extra_interface_endpoints", "[]")))
        azs = len(re.findall(r'"[^"]+"', v["availability_zones"]))
        endpoint_azs = v.get("endpoint_az_count", "null")
        sampling = v.get("api_xray_sampling_rate", "null")
        readings_ttl = int(num("readings_ttl_days"))
        write_behind = v.get("write_behind", "true") == "true"
        return cls(
            name=name, region=v["region"].strip('"'), azs=azs,
            processor_tracing=v.get("processor_tracing", '"Active"').strip('"'),
            api_sampling=None if sampling == "null" else float(sampling),
            endpoint_azs=azs if endpoint_azs == "null" else int(float(endpoint_azs)),
            stream_mode=v["stream_mode"].strip('"'), shard_count=int(num("shard_count")),
            retention_h=int(num("stream_retention_hours")), memory_mb=int(num("processor_memory_mb")),
            batch_size=int(num("batch_size")), window_s=num("batching_window_s"),
            arch=v["lambda_architecture"].strip('"'), log_retention_days=int(num("log_retention_days")),
            compact_interval_s=int(num("compact_interval_s")), readings_ttl_days=readings_ttl,
            archive_expiration_days=int(num("archive_expiration_days")), interface_endpoints=endpoints,
            basic_ingest=uses_basic_ingest(), report_in_vpc=report_in_vpc,
            log_ttl_days=min(LOG_TTL_DAYS, readings_ttl) if write_behind else readings_ttl,
        )  # fmt: skip


def uses_basic_ingest() -> bool:
    """True when the iot module's device policy allows publishing only through Basic Ingest."""
    text = (ROOT / "terraform" / "modules" / "iot" / "main.tf").read_text()
    publish = re.search(r'Action\s*=\s*"iot:Publish"\s*\n\s*Resource\s*=\s*"([^"]+)"', text)
    if publish is None:
        raise SystemExit("terraform/modules/iot/main.tf: no iot:Publish statement found in the device policy")
    return ":topic/$aws/rules/" in publish.group(1)


# -- the fleet and what the other benchmarks measured --------------------------------


#: how the stated fleet publishes: through gateways, each packing its devices' readings of an instant
#: in one message (``--readings-per-message``; 1: every device publishes its own readings)
STATED_READINGS_PER_MESSAGE = 10
TARGET_USD_PER_MILLION = 0.50  # issue 30
#: a batch-log item's own expiry (the adapters' LOG_TTL_S): compaction has copied it into its chunk long
#: before, by a batch every compact_interval_s or, for a shard no batch compacts, the hourly idle-shard job
LOG_TTL_DAYS = LOG_TTL_S // 86_400
E2E_BUDGET_S = 5.0  # the original requirement: end-to-end under 5 s (docs/ARCHITECTURE: scale targets)
#: assumed, not measured in AWS: the IoT rule, the Kinesis put and the event source mapping's poll
#: (it polls each shard about once a second) before the batching window starts to count
INGEST_ALLOWANCE_S = 1.0


@dataclass(frozen=True)
class Fleet:
    devices: int = 500
    interval_s: float = 5.0
    readings_per_message: int = STATED_READINGS_PER_MESSAGE  # a gateway packing its devices' readings

    @property
    def publishes(self) -> str:
        """How the fleet publishes, as the headline says it."""
        if self.readings_per_message == 1:
            return "one reading a message (each device publishes its own)"
        return (f"through gateways, {self.readings_per_message} readings a message (a gateway packs its "
                f"{self.readings_per_message} devices' readings of an instant)")  # fmt: skip

    @property
    def readings_per_s(self) -> float:
        return self.devices / self.interval_s

    @property
    def messages_per_s(self) -> float:
        return self.readings_per_s / self.readings_per_message

    @property
    def connections(self) -> float:
        """Clients connected to IoT Core: every device, or one gateway per ``readings_per_message`` devices."""
        return self.devices / self.readings_per_message


@dataclass(frozen=True)
class Measured:
    """Counts from the other benchmarks (defaults: their README figures, each with its source)."""

    processor_ms_per_10k: float = 126.0  # benchmarks/processor.py, 10,000-record batch (2026-12-07, quiet machine)
    batch_io_ms: float = 60.0  # assumption: the archive PUT beside decode, snapshot GET, log PUT, snapshot PUT
    # Per device and compaction (write-behind; the batch log's items are sized here, per batch, by
    # log_write, ~15 % above what storage_cost measured on its fleet): benchmarks/storage_cost.py split by
    # item kind, 500 devices on 1 shard, compaction every 600 s, windows 2 and 10 s alike (2026-12-07):
    # a chunk of a device's ~120 readings 2 units (1,716 B), its rollup blocks 2.7 units, its record
    # 2 units: the device item is 1,147 B there, 1,180-1,280 B with an alarm open and Kinesis's own
    # sequence numbers (the detector's state ~650 B deflated, 16 replay identities 128 B), over 1 KB
    # The chunk and rollup-block units are computed for the environment's compaction interval by
    # compaction_write (the adapters' encoders), its bytes calibrated on the measured chunk at 600 s
    # (storage_cost: 2 units there, rollup blocks 2.7).
    chunk_bytes_600s: float = 1716.0
    device_item_wru: int = 2
    # a shard's snapshot (write-behind), per device: 348 KB for 500 devices (reviewA, 2026-12-07, the
    # processor's encoder); each batch leaves the one before as a noncurrent version, kept a day
    snapshot_bytes_per_device: float = 700.0
    log_bytes_per_invocation: int = 1000  # assumption: START/END/REPORT lines and one EMF line
    custom_metrics: int = 12  # assumption: the processor's EMF metrics per environment
    alarms: int = 12
    api_requests_per_month: float = 1_000_000  # assumption: dashboards and tooling
    rru_per_api_request: float = 8.0  # assumption
    flow_log_gb_per_month: float = 1.0  # assumption: VPC flow logs of the functions' ENIs
    athena_scanned_gb_per_month: float = 30.0  # the daily report's named queries over a day (JSON) x 30
    sources: dict[str, str] = field(default_factory=dict)


@lru_cache(maxsize=64)
def log_write(devices: int, per_device: int) -> tuple[int, int, int]:
    """One batch's log entry as the adapters write it (``log_items``): its write units, bytes and items,
    for ``devices`` devices of ``per_device`` readings each (deterministic readings of the simulator's
    three metrics at their simulator precision, scores to 4 decimals as the detector gives them, 56-digit
    sequence numbers)."""
    seq0 = 49_620_000_000_000_000_000_000_000_000_000_000_000_000_000_000_000_000_000_000_000
    out = []
    for d in range(devices):
        ts = [1_790_000_000_000 + 5000 * k + d for k in range(per_device)]
        metrics = [{"temperature_c": 55 + (d * 7919 + k * 104729) % 1000 / 100,
                    "vibration_mm_s": 2 + (d * 31 + k * 17) % 1000 / 1000,
                    "pressure_psi": 90 + (d * 15485863 + k * 7) % 1000 / 100} for k in range(per_device)]  # fmt: skip
        score = [round((d * 2654435761 + k * 40503) % 10**6 / 10**6 * math.pi, 4) for k in range(per_device)]
        newest = str(seq0 + 7_919_000_000 * (d + 1) * per_device)
        out.append(LogDevice(f"pump-{d:06d}", "plant-1", f"line-{d % 10}", "pump", newest, 97.5, False, None,
                             ts[-1], 1000 + per_device, 1000, ts, list(range(1000, 1000 + per_device)), metrics,
                             score, [False] * per_device))  # fmt: skip
    entry = LogEntry(log_key(str(seq0 + 10**12), None), 1_790_000_000_000, 90 * 86_400, out)
    items = log_items("shardId-000000000000", entry)
    return sum(write_units(item_size(i)) for i in items), sum(item_size(i) for i in items), len(items)


@lru_cache(maxsize=32)
def compaction_write(compact_s: int, interval_s: float, scale: float = 1.0) -> tuple[float, float, float]:
    """One device's compaction as the adapters write it (``chunk_item``, ``block_item``), averaged over the
    compactions of two hours (at least four): its readings chunk(s) (one per hour it spans) and its rollup
    blocks (an hour of minute buckets, rewritten whole with the hour's earlier buckets, and the hour's bucket),
    in write units by DynamoDB's rules, and the chunk bytes per reading (for storage). Synthetic readings of the
    simulator's three metrics at its precision, as :func:`log_write`; every item's bytes times ``scale`` before
    DynamoDB's whole-kilobyte rounding (:func:`compaction_scale`: calibrated on storage_cost's measured chunk)."""
    hour, step = 3_600_000, int(compact_s * 1000)
    t0 = 1_789_999_200_000  # an hour boundary
    count = max(4, math.ceil(7_200_000 / step))
    per = max(1, round(compact_s / interval_s))
    chunk_wru = block_wru = chunk_bytes = 0
    held: dict[tuple[str, int], list[ReadingRow]] = {}  # (resolution, block) -> rows compacted into it before
    ordinal = 0
    for c in range(count):
        rows = []
        for k in range(per):
            ts = t0 + c * step + int(k * interval_s * 1000)
            metrics = {"temperature_c": 55 + (ordinal * 104729) % 1000 / 100,
                       "vibration_mm_s": 2 + (ordinal * 17) % 1000 / 1000,
                       "pressure_psi": 90 + (ordinal * 7) % 1000 / 100}  # fmt: skip
            score = round((ordinal * 40503) % 10**6 / 10**6 * math.pi, 4)
            rows.append(ReadingRow("pump-000123", ts, reading_key(ts, 1000 + ordinal, metrics), 1000 + ordinal,
                                   "plant-1", "line-3", "pump", metrics, score, False, ts // 1000 + 90 * 86_400,
                                   ordinal))  # fmt: skip
            ordinal += 1
        by_hour: dict[int, list[ReadingRow]] = {}
        for r in rows:
            by_hour.setdefault(r.ts_ms - r.ts_ms % hour, []).append(r)
        for at, members in by_hour.items():
            size = item_size(chunk_item(("pump-000123", at, members[0].ordinal), members)) * scale
            chunk_wru += write_units(round(size))
            chunk_bytes += size
        for resolution, width in RESOLUTION_MS.items():
            blocks: dict[int, list[ReadingRow]] = {}
            for r in rows:
                blocks.setdefault(block_of(r.ts_ms, ROLLUP_BLOCK_MS[resolution]), []).append(r)
            for start, members in blocks.items():
                before = held.setdefault((resolution, start), [])
                block = RollupBlock(buckets_of_rows(before, width), buckets_of_rows(members, width),
                                    members[-1].ordinal)  # fmt: skip
                block_wru += write_units(
                    round(item_size(block_item(("pump-000123", resolution, start), block, 0)) * scale)
                )
                before.extend(members)
    return chunk_wru / count, block_wru / count, chunk_bytes / (count * per)


def compaction_scale(m: Measured, interval_s: float) -> float:
    """storage_cost's measured chunk (``chunk_bytes_600s``: a device's 600 s of readings, simulator data) over
    the synthetic one of :func:`compaction_write` for the same 600 s: the synthetic readings compress less."""
    synthetic = compaction_write(600, interval_s)[2] * round(600 / interval_s)
    return m.chunk_bytes_600s / synthetic


def message_bytes(fleet: Fleet) -> int:
    """A canonical reading as the simulator publishes it, with the rule's thing_name added; a
    gateway's message is a JSON array of readings, which the rule passes through unchanged."""
    metrics = {"temperature_c": 61.234, "vibration_mm_s": 2.1234, "pressure_psi": 95.12}
    one = reading("pump-000123", 123456, 1_790_000_000_000, metrics)
    body = (
        one | {"thing_name": "pump-000123"} if fleet.readings_per_message == 1 else [one] * fleet.readings_per_message
    )
    return len(json.dumps(body, separators=(",", ":")))


def topic_bytes() -> int:
    """The Basic Ingest topic a device or gateway publishes on (terraform/modules/iot: the policy's topic),
    for prod's rule and a thing name of the simulator's length; IoT meters it with the payload."""
    return len("$aws/rules/iotpm_prod_telemetry/iotpm/pump-000123/telemetry")


def archive_bytes_per_reading(readings_per_batch: int) -> float:
    """The processor's own encoder on a batch of this size (gzip JSON Lines)."""
    n = max(1, min(readings_per_batch, 10_000))
    lines = []
    for i in range(n):
        msg = reading(f"pump-{i % 500:06d}", 1000 + i, 1_790_000_000_000 + 5000 * i,
                      {"temperature_c": 60 + (i * 7919 % 1000) / 100, "vibration_mm_s": 2 + (i * 104729 % 100) / 1000,
                       "pressure_psi": 90 + (i * 15485863 % 1000) / 100})  # fmt: skip
        lines.append(RawLine(1_790_000_000_040 + 5000 * i, json.dumps(msg), f"pump-{i % 500:06d}",
                             f"4962{i:052d}", "shardId-000000000000"))  # fmt: skip
    return len(encode_lines(lines)) / n


# -- the model ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Levers:
    """A change to prod; None keeps what its tfvars (or the fleet) says."""

    basic_ingest: bool = False
    provisioned_shards: int | None = None  # Kinesis provisioned mode at this many shards
    processor_tracing: str | None = (
        None  # "Active" or "PassThrough" (no traces for stream-invoked batches); None: the tfvars'
    )
    azs: int | None = None  # interface endpoints in this many AZs; None: the tfvars' endpoint_az_count
    large_archive_objects: bool = False  # the archive in objects >= 128 KB (compaction): the lifecycle acts
    readings_per_message: int | None = None  # None: the fleet's
    api_sampling: float | None = None  # the API stage's traced fraction; None: the tfvars'
    window_s: float | None = None  # the batching window; None: the tfvars'
    retention_h: int | None = None  # Kinesis retention; None: the tfvars'
    readings_ttl_days: int | None = None  # days readings stay in DynamoDB; None: the tfvars'
    compact_interval_s: int | None = None  # write-behind compaction; None: the tfvars'
    device_item_wru: int | None = None  # write units of a device item; None: the measured
    log_ttl_days: int | None = None  # days a batch-log item is kept; None: the environment's
    report_in_vpc: bool | None = None  # the report function in the VPC (an Athena endpoint); None: the tfvars'


@dataclass
class Line:
    group: str
    item: str
    basis: str
    usd: float


class Prices:
    def __init__(self, table: dict[str, Any], region: str) -> None:
        if region not in table["regions"]:
            raise SystemExit(f"no prices for {region} in the table (regions: {', '.join(table['regions'])})")
        self.p = table["regions"][region]

    def __call__(self, key: str) -> float:
        return float(self.p[key]["usd"])


def xray_traces_per_s(rate: float) -> float:
    """Lambda's default sampling rule: the first request each second, then 5 % of the rest."""
    return min(rate, 1.0) + 0.05 * max(rate - 1.0, 0.0)


def model(env: Environment, fleet: Fleet, table: dict[str, Any], m: Measured, lv: Levers) -> list[Line]:
    price = Prices(table, env.region)
    month_s = table["hours_per_month"] * 3600

    def given(lever: Any, held: Any) -> Any:  # a lever set (0 included) replaces what prod holds
        return held if lever is None else lever

    fleet = replace(fleet, readings_per_message=given(lv.readings_per_message, fleet.readings_per_message))
    env = replace(
        env, window_s=given(lv.window_s, env.window_s), retention_h=given(lv.retention_h, env.retention_h),
        readings_ttl_days=given(lv.readings_ttl_days, env.readings_ttl_days),
        compact_interval_s=given(lv.compact_interval_s, env.compact_interval_s),
        api_sampling=given(lv.api_sampling, env.api_sampling),
    )  # fmt: skip
    readings = fleet.readings_per_s * month_s
    messages = fleet.messages_per_s * month_s
    size = message_bytes(fleet)
    iot_units = math.ceil((size + topic_bytes()) / (5 * 1000))  # IoT meters payload and topic in 5 KB steps
    out: list[Line] = []

    def add(group: str, item: str, basis: str, usd: float) -> None:
        out.append(Line(group, item, basis, usd))

    # IoT Core
    who = (f"{fleet.devices} devices" if fleet.readings_per_message == 1
           else f"{fleet.connections:,.0f} gateways of {fleet.readings_per_message} devices")  # fmt: skip
    add("IoT Core", "connectivity", f"{who} always connected",
        fleet.connections * MONTH_MIN / 1e6 * price("iot_connectivity_per_million_minutes"))  # fmt: skip
    if not (lv.basic_ingest or env.basic_ingest):
        add("IoT Core", "messaging", f"{messages / 1e6:,.1f} M messages x {iot_units} (5 KB steps)",
            messages * iot_units / 1e6 * price("iot_messages_per_million"))  # fmt: skip
    add("IoT Core", "rule + Kinesis action", f"{messages / 1e6:,.1f} M rules triggered and actions x {iot_units} "
        f"(5 KB steps of {size + topic_bytes():,} B: payload and topic)",
        messages * iot_units / 1e6 * (price("iot_rules_triggered_per_million")
                                      + price("iot_actions_executed_per_million")))  # fmt: skip

    # Kinesis
    mb_per_s = fleet.messages_per_s * size / 1e6
    if lv.provisioned_shards is not None or env.stream_mode == "PROVISIONED":
        shards = given(lv.provisioned_shards, env.shard_count)
        add("Kinesis", "shard-hours", f"{shards} provisioned shard(s)", shards * 730 * price("kinesis_shard_hour"))
        add("Kinesis", "PUT payload units", f"{messages / 1e6:,.1f} M records x {math.ceil(size / 25_000)} (25 KB)",
            messages * math.ceil(size / 25_000) / 1e6 * price("kinesis_put_payload_units_per_million"))  # fmt: skip
        if env.retention_h > 24:
            add("Kinesis", "extended retention", f"{env.retention_h} h", shards * 730 *
                price("kinesis_extended_retention_shard_hour"))  # fmt: skip
    else:
        shards = max(4, math.ceil(mb_per_s), math.ceil(fleet.messages_per_s / 1000))
        billed_gb = messages * math.ceil(size / KB) * KB / GB
        add("Kinesis", "on-demand stream-hours", "one stream", 730 * price("kinesis_on_demand_stream_hour"))
        add("Kinesis", "data in", f"{billed_gb:,.0f} GB: {size} B records billed as {math.ceil(size / KB)} KB",
            billed_gb * price("kinesis_on_demand_ingest_per_gb"))  # fmt: skip
        add("Kinesis", "data out", f"{messages * size / GB:,.0f} GB to the processor",
            messages * size / GB * price("kinesis_on_demand_retrieval_per_gb"))  # fmt: skip
        if env.retention_h > 24:
            stored = billed_gb * (min(env.retention_h, 168) - 24) / 730
            add("Kinesis", "extended retention", f"{stored:,.0f} GB-month ({env.retention_h} h)",
                stored * price("kinesis_on_demand_extended_retention_per_gb_month"))  # fmt: skip

    # batches: one invocation per shard and window, or sooner when a batch fills
    per_shard = fleet.messages_per_s / shards
    full_s = min(env.batch_size, MAX_BATCH_BYTES / size) / per_shard
    every_s = max(0.2, min(max(env.window_s, 1.0), full_s))
    batches = shards * month_s / every_s
    per_batch = fleet.readings_per_s / shards * every_s
    batch_s = (m.batch_io_ms + per_batch * m.processor_ms_per_10k / 10_000) / 1000
    gb_s = batches * batch_s * env.memory_mb / 1024
    add("Lambda", "processor requests", f"{batches / 1e6:,.2f} M batches ({shards} shards, one every {every_s:g} s)",
        batches / 1e6 * price("lambda_requests_per_million"))  # fmt: skip
    add("Lambda", "processor duration", f"{gb_s / 1e6:,.2f} M GB-s ({batch_s * 1000:.0f} ms x {env.memory_mb} MB, "
        f"{per_batch:,.0f} readings a batch)", gb_s * price(f"lambda_gb_second_{env.arch}"))  # fmt: skip
    api_gb_s = m.api_requests_per_month * 0.05 * 0.5
    add("Lambda", "API and report", f"{m.api_requests_per_month / 1e6:g} M API requests x 50 ms x 512 MB",
        m.api_requests_per_month / 1e6 * price("lambda_requests_per_million") +
        api_gb_s * price(f"lambda_gb_second_{env.arch}"))  # fmt: skip

    # S3: the raw archive's PUT per batch, the shard snapshot's GET and PUT per batch
    add("S3 requests", "raw archive PUTs", f"{batches / 1e6:,.2f} M (one per batch)",
        batches / 1e3 * price("s3_put_per_thousand"))  # fmt: skip
    add("S3 requests", "snapshot PUTs + GETs", f"{batches / 1e6:,.2f} M each (write-behind: one of each per batch)",
        batches / 1e3 * (price("s3_put_per_thousand") + price("s3_get_per_thousand")))  # fmt: skip
    compaction_gets = batches + 730 * 10  # every raw object read once, plus the quarantine and recent hours
    add("S3 requests", "Parquet compaction", f"{compaction_gets / 1e6:,.2f} M GETs, 730 runs",
        compaction_gets / 1e3 * price("s3_get_per_thousand")
        + 730 * 4 / 1e3 * price("s3_put_per_thousand"))  # fmt: skip
    # the idle-shard job: hourly, a LIST of the snapshots and a GET of each shard's; ~1 s of the function.
    # A shard it claims (a plant stopped) adds a PUT or two and its wait (the processor's timeout + 30 s)
    idle_runs = 730
    add("Lambda", "idle-shard compaction", f"{idle_runs} runs: a LIST and {shards} snapshot GETs, ~1 s x 2048 MB",
        idle_runs / 1e3 * (price("s3_put_per_thousand") + shards * price("s3_get_per_thousand"))
        + idle_runs / 1e6 * price("lambda_requests_per_million")
        + idle_runs * 2.0 * price(f"lambda_gb_second_{env.arch}"))  # fmt: skip
    arch_b = archive_bytes_per_reading(round(per_batch))
    months_kept = 12 if env.archive_expiration_days == 0 else min(12, env.archive_expiration_days / 30)
    held_gb = readings * arch_b / GB * months_kept
    if lv.large_archive_objects:  # Standard for 30 days, IA to 90, Glacier after (storage module defaults)
        stored = readings * arch_b / GB
        mix = (min(months_kept, 1) * price("s3_standard_gb_month")
               + max(0.0, min(months_kept, 3) - 1) * price("s3_standard_ia_gb_month")
               + max(0.0, months_kept - 3) * price("s3_glacier_flexible_gb_month"))  # fmt: skip
        add("S3 storage", "archive", f"{held_gb:,.0f} GB after a year, tiered (objects >= 128 KB)", stored * mix)
    else:
        add("S3 storage", "archive", f"{held_gb:,.0f} GB after a year ({arch_b:.0f} B a reading), all Standard: "
            "objects under 128 KB never transition", held_gb * price("s3_standard_gb_month"))  # fmt: skip

    # each batch leaves the shard's snapshot before it as a noncurrent version: kept a day, and the lifecycle
    # runs once a day, so held 1-2 days
    snap_gb = batches / (month_s / 86_400) * fleet.devices / shards * m.snapshot_bytes_per_device * 1.5 / GB
    add("S3 storage", "previous snapshots", f"{snap_gb:,.1f} GB ({fleet.devices / shards:,.0f} devices a shard, "
        "a noncurrent version per batch held 1-2 days)", snap_gb * price("s3_standard_gb_month"))  # fmt: skip

    # DynamoDB (write-behind)
    compactions = fleet.devices * month_s / env.compact_interval_s
    in_batch = min(fleet.devices / shards, per_batch)  # devices in a shard's batch
    log_wru, log_bytes, log_n = log_write(max(1, round(in_batch)), max(1, round(per_batch / in_batch)))
    device_wru = given(lv.device_item_wru, m.device_item_wru)
    chunk_wru, rollup_wru, chunk_bytes = compaction_write(
        env.compact_interval_s, fleet.interval_s, compaction_scale(m, fleet.interval_s)
    )
    per_compaction = chunk_wru + rollup_wru + device_wru
    wru = batches * log_wru + compactions * per_compaction
    wru_basis = (f"{wru / 1e6:,.1f} M WRU ({wru / readings * 1000:.0f} per 1,000 readings: the batch log "
                 f"{log_wru} a batch; per device every {env.compact_interval_s} s its chunk {chunk_wru:.1f}, "
                 f"rollup blocks {rollup_wru:.1f}, record {device_wru})")  # fmt: skip
    add("DynamoDB", "writes", wru_basis,
        wru / 1e6 * price("dynamodb_write_request_units_per_million"))  # fmt: skip
    rru = m.api_requests_per_month * m.rru_per_api_request
    add(
        "DynamoDB",
        "reads",
        f"{rru / 1e6:,.1f} M RRU (API)",
        rru / 1e6 * price("dynamodb_read_request_units_per_million"),
    )
    # the readings table holds a reading twice: in its chunk for the readings' TTL, and in the batch log it
    # came in for the log item's own expiry (a week: the adapters' LOG_TTL_S)
    log_days = min(given(lv.log_ttl_days, env.log_ttl_days or env.readings_ttl_days), env.readings_ttl_days)
    per_reading = (
        chunk_bytes
        + 100 / max(1.0, env.compact_interval_s / fleet.interval_s)
        + (log_bytes + 100 * log_n) / max(1.0, per_batch) * log_days / env.readings_ttl_days
    )
    table_gb = readings * per_reading * env.readings_ttl_days / 30 / 1e9 * 1.15
    add("DynamoDB", "storage", f"{table_gb:,.0f} GB ({env.readings_ttl_days} days of readings, the batch log "
        f"{log_days} days, + 15 % other tables)",
        table_gb * price("dynamodb_storage_gb_month"))  # fmt: skip
    add("DynamoDB", "point-in-time recovery", f"{table_gb:,.0f} GB", table_gb * price("dynamodb_pitr_gb_month"))

    # X-Ray: processor, API (stage and function, one trace), report
    tracing = given(lv.processor_tracing, env.processor_tracing)
    processor_traces = 0.0 if tracing == "PassThrough" else xray_traces_per_s(batches / month_s) * month_s
    if env.api_sampling is None:  # X-Ray's default rule
        api_traces = xray_traces_per_s(m.api_requests_per_month / month_s) * month_s
    else:  # the stage's own rule: a fixed rate, no reservoir
        api_traces = m.api_requests_per_month * env.api_sampling
    traces = processor_traces + api_traces + 30
    api_rule = "X-Ray's default rule" if env.api_sampling is None else f"{env.api_sampling:.0%} sampled"
    add("X-Ray", "traces", f"{traces / 1e6:,.2f} M (processor {processor_traces / 1e6:,.2f} M: "
        f"{tracing}; API {api_traces / 1e6:,.2f} M: {api_rule})",
        traces / 1e6 * price("xray_traces_recorded_per_million"))  # fmt: skip

    # network
    azs = lv.azs if lv.azs is not None else env.endpoint_azs or env.azs
    endpoints = env.interface_endpoints
    if lv.report_in_vpc is not None and lv.report_in_vpc != env.report_in_vpc:
        endpoints += 1 if lv.report_in_vpc else -1  # the Athena endpoint serves only the report
    in_vpc = (
        "the report in the VPC"
        if (env.report_in_vpc if lv.report_in_vpc is None else lv.report_in_vpc)
        else ("the report outside the VPC: no Athena endpoint")
    )
    add("VPC", "interface endpoints", f"{endpoints} x {azs} AZs x 730 h ({in_vpc})",
        endpoints * azs * 730 * price("vpc_interface_endpoint_az_hour"))  # fmt: skip

    # CloudWatch
    log_gb = (batches + m.api_requests_per_month) * m.log_bytes_per_invocation / GB + m.flow_log_gb_per_month
    kept = log_gb * min(env.log_retention_days, 365) / 30
    add("CloudWatch", "logs", f"{log_gb:,.1f} GB a month in, {kept:,.0f} GB held ({env.log_retention_days} days)",
        log_gb * price("cloudwatch_logs_ingest_per_gb") + kept * price("cloudwatch_logs_storage_gb_month"))  # fmt: skip
    add("CloudWatch", "metrics, alarms, dashboard", f"{m.custom_metrics} metrics, {m.alarms} alarms, 1 dashboard",
        m.custom_metrics * price("cloudwatch_metric_month") + m.alarms * price("cloudwatch_alarm_month")
        + price("cloudwatch_dashboard_month"))  # fmt: skip

    # the rest
    add("Other", "API Gateway", f"{m.api_requests_per_month / 1e6:g} M REST requests",
        m.api_requests_per_month / 1e6 * price("api_gateway_rest_per_million"))  # fmt: skip
    add("Other", "Athena", f"{m.athena_scanned_gb_per_month:g} GB scanned",
        m.athena_scanned_gb_per_month / 1024 * price("athena_per_tb_scanned"))  # fmt: skip
    kms_requests = batches * 0.01 + 500_000
    add("Other", "KMS", f"1 key, {kms_requests / 1e6:.1f} M requests (bucket keys, cached data keys)",
        price("kms_key_month") + kms_requests / 1e4 * price("kms_requests_per_10k"))  # fmt: skip
    return out


def e2e_worst_s(env: Environment, fleet: Fleet, m: Measured, window_s: float) -> float:
    """A reading's worst end-to-end time at this window: the ingest allowance, the whole window, then its
    batch's processing (the processor benchmark's per-record time and the per-batch I/O, as the model bills)."""
    shards = env.shard_count if env.stream_mode == "PROVISIONED" else max(4, math.ceil(fleet.messages_per_s / 1000))
    per_batch = fleet.readings_per_s / shards * max(window_s, 1.0)
    batch_s = (m.batch_io_ms + min(per_batch, env.batch_size) * m.processor_ms_per_10k / 10_000) / 1000
    return INGEST_ALLOWANCE_S + window_s + batch_s


def summary(lines: list[Line], fleet: Fleet, table: dict[str, Any]) -> tuple[float, float]:
    total = sum(line.usd for line in lines)
    readings = fleet.readings_per_s * table["hours_per_month"] * 3600
    return total, total / (readings / 1e6)


# -- output -------------------------------------------------------------------------------


def usd(total: float, per_m: float, base: float | None = None) -> dict[str, float]:
    out = {"usd_per_month": round(total, 2), "usd_per_million_readings": round(per_m, 4)}
    if base is not None:
        out["saves_usd_per_month"] = round(base - total, 2)
    return out


def lever_rows(levers: dict[str, Any]) -> list[str]:
    return [
        "| lever | trades | USD / month | saves | USD / million readings |",
        "|---|---|---:|---:|---:|",
        *[
            f"| {name} | {v['trades']} | {v['usd_per_month']:,.0f} | {v['saves_usd_per_month']:,.0f} | "
            f"{v['usd_per_million_readings']:.2f} |"
            for name, v in levers.items()
        ],
    ]


def markdown(env: Environment, fleet: Fleet, table: dict[str, Any], lines: list[Line], out: dict[str, Any]) -> str:
    total, per_m = summary(lines, fleet, table)
    one = out["at_one_reading_a_message"]
    chosen = (f"{env.stream_mode.lower().replace('_', '-')} Kinesis"
              + (f" ({env.shard_count} shard(s))" if env.stream_mode == "PROVISIONED" else "")
              + f", a {env.window_s:g} s batching window, the processor's X-Ray {env.processor_tracing}, the API's "
              + ("X-Ray default rule" if env.api_sampling is None else f"X-Ray sampled at {env.api_sampling:.0%}")
              + f", interface endpoints in {env.endpoint_azs} of {env.azs} AZs")  # fmt: skip
    readings = fleet.readings_per_s * table["hours_per_month"] * 3600
    met = out["target_met"]
    only_packed = met and not out["target_met_at_one_reading_a_message"]
    rule = out["prod_items"]["IoT Core: rule + Kinesis action"] / (readings / 1e6) * fleet.readings_per_message
    verdict = (f"**${TARGET_USD_PER_MILLION:.2f} per million readings is reached only with packed messages**: "
               if only_packed else "")  # fmt: skip
    windows = out["batching_windows"]
    text = [
        f"Computed by `python benchmarks/cost.py` for **{fleet.devices} devices at one reading every "
        f"{fleet.interval_s:g} s, publishing {fleet.publishes}** ({readings / 1e6:,.0f} M readings a month of "
        f"{table['hours_per_month']} h; `--readings-per-message` states how the fleet publishes), region "
        f"**{env.region}**, list prices as of {table['as_of']} (`benchmarks/aws_prices.json`, each with its source "
        "page), each environment as its `terraform.tfvars` configures it.",
        "",
        "| environment | USD / month | USD / million readings |",
        "|---|---:|---:|",
        *[
            f"| {name} | {e['usd_per_month']:,.0f} | {e['usd_per_million_readings']:.2f} |"
            for name, e in out["environments"].items()
        ],
        "",
        f"Prod, item by item (${total:,.0f} a month, **${per_m:.2f} per million readings**; the target is "
        f"${TARGET_USD_PER_MILLION:.2f}, {'met' if met else 'not met'}"
        + (
            f" for a plant whose devices publish through gateways of {fleet.readings_per_message}; prod's tfvars "
            "register no things, the fleet is each plant's own"
            if fleet.readings_per_message > 1
            else ""
        )
        + "):",
        "",
        "| service | item | basis | USD / month |",
        "|---|---|---|---:|",
        *[f"| {x.group} | {x.item} | {x.basis} | {x.usd:,.2f} |" for x in lines],
        "",
        f"{verdict}with every device publishing its own readings (one reading a message) prod costs "
        f"${one['usd_per_month']:,.0f} a month, **${one['usd_per_million_readings']:.2f} per million readings**, "
        f"of which the IoT rule and its Kinesis action alone are ${rule:.2f} per million (they bill per message).",
        "",
        f"Prod's `terraform.tfvars` chooses {chosen}; devices publish "
        + (
            "through IoT Basic Ingest (the iot module's policy allows only that topic). "
            if env.basic_ingest
            else "on the plain topic, through the message broker. "
        )
        + "With the plain topic, on-demand Kinesis, a 1 s window, Active tracing, X-Ray's default rule and "
        f"endpoints in every AZ (the variables' defaults) prod would cost "
        f"${out['prod_with_variable_defaults']['usd_per_month']:,.0f} a month, "
        f"${out['prod_with_variable_defaults']['usd_per_million_readings']:.2f} per million readings.",
        "",
        "What each lever saves on prod, with the same job and guarantees (the same model, one lever at a time; a "
        "lever in place saves what prod would cost without it, the others what they would save):",
        "",
        *lever_rows(out["levers"]),
        "",
        "Levers that **weaken a guarantee** (not in prod, not in the figures above; each from prod as it is):",
        "",
        *lever_rows(out["weaker_guarantees"]),
        "",
        "The batching window (prod's tfvars: `batching_window_s`) trades cost for alert latency: a reading "
        "waits up to the window before the processor sees it, so every alert leaves up to that much later "
        "(half of it on average).",
        "",
        f"The original requirement is end-to-end under {E2E_BUDGET_S:g} s. A reading's worst case is the "
        f"ingest (the IoT rule, the Kinesis put and the mapping's poll: {INGEST_ALLOWANCE_S:g} s assumed, not "
        "measured in AWS), the whole window, then its batch's processing (the processor benchmark's time for the "
        f"batch, plus {Measured.batch_io_ms:g} ms of AWS calls). A window that takes it past the budget weakens "
        "that guarantee, so prod keeps "
        f"{env.window_s:g} s and longer windows are in the table above.",
        "",
        "| batching window | USD / month | USD / million readings | alerts leave up to | worst end-to-end | "
        f"under {E2E_BUDGET_S:g} s |",
        "|---:|---:|---:|---|---:|---|",
        *[
            f"| {w['window_s']:g} s{' (prod)' if w['window_s'] == env.window_s else ''} | {w['usd_per_month']:,.0f} | "
            f"{w['usd_per_million_readings']:.2f} | {w['window_s']:g} s later | {w['e2e_worst_s']:.1f} s | "
            f"{'yes' if w['e2e_worst_s'] < E2E_BUDGET_S else '**no**'} |"
            for w in windows
        ],
    ]
    return "\n".join(text)


def verdict(per_m: float, one_m: float, packing: int) -> str:
    """Whether the $0.50 target is met, saying at which fleet (prod's tfvars register no gateways)."""
    target = f"${TARGET_USD_PER_MILLION:.2f} per million readings"
    if packing > 1 and per_m <= TARGET_USD_PER_MILLION < one_m:
        return (f"target met only with packed messages: {target} is met for a plant whose devices publish through "
                f"gateways of {packing} readings a message (${per_m:.2f}), not at one reading a message "
                f"(${one_m:.2f})")  # fmt: skip
    if one_m <= TARGET_USD_PER_MILLION:
        return f"target met at one reading a message (${one_m:.2f}), so with packed messages too"
    if packing == 1:
        return f"target not met at one reading a message (${one_m:.2f})"
    return f"target not met at {packing} readings a message (${per_m:.2f}) nor at one (${one_m:.2f})"


def measure_processor() -> float:
    """``benchmarks/processor.py``'s median time for its 10,000-record batch, run now."""
    import subprocess
    import sys

    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "processor.py")], check=True,
                          capture_output=True, text=True)  # fmt: skip
    ms = float(json.loads(done.stdout.strip().splitlines()[-1])["batch_ms_median"])
    print(f"benchmarks/processor.py, measured now: {ms:.1f} ms per 10,000-record batch")
    return ms


def readme_summary(out: dict[str, Any]) -> str:
    """The README's cost table: each environment at the stated fleet, its region and how it publishes."""
    rows = "\n".join(
        f"| {name} | {e['usd_per_month']:,.0f} | {e['usd_per_million_readings']:.2f} |"
        for name, e in out["environments"].items()
    )
    one = out["at_one_reading_a_message"]
    return (
        f"Computed by `python benchmarks/cost.py` for {out['devices']} devices at one reading every "
        f"{out['interval_s']:g} s, publishing {out['publishes']}, in {out['region']} at list prices:\n\n"
        "| environment | USD / month | USD / million readings |\n|---|---:|---:|\n"
        f"{rows}\n\n"
        f"At one reading a message, prod costs ${one['usd_per_month']:,.0f} a month, "
        f"${one['usd_per_million_readings']:.2f} per million. {out['verdict'][:1].upper()}{out['verdict'][1:]}."
    )


def _rewrite(path: Path, begin: str, end: str, block: str) -> None:
    text = path.read_text()
    if begin not in text or end not in text:
        raise SystemExit(f"{path.relative_to(ROOT)} has no {begin} ... {end} block to rewrite")
    head, rest = text.split(begin, 1)
    _, tail = rest.split(end, 1)
    path.write_text(f"{head}{begin}\n{block}\n{end}{tail}")


def write_readme(block: str, summary: str) -> None:
    _rewrite(ROOT / "docs" / "cost.md", BEGIN, END, block)
    _rewrite(ROOT / "README.md", README_BEGIN, README_END, summary)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=500)
    parser.add_argument("--interval", type=float, default=5.0, help="seconds between a device's readings")
    parser.add_argument("--readings-per-message", "--gateway-readings", type=int, default=STATED_READINGS_PER_MESSAGE,
                        help="how the fleet publishes: readings a message (1: each device its own; N: gateways "
                             "packing N devices' readings)")  # fmt: skip
    parser.add_argument("--prices", type=Path, default=Path(__file__).with_name("aws_prices.json"))
    parser.add_argument("--processor-ms-per-10k", type=float, default=Measured.processor_ms_per_10k,
                        help="benchmarks/processor.py's batch_ms_median (10,000 records)")  # fmt: skip
    parser.add_argument("--batch-io-ms", type=float, default=Measured.batch_io_ms,
                        help="per-batch wait for the processor's AWS calls (assumed)")  # fmt: skip
    parser.add_argument("--measure-processor", action="store_true",
                        help="run benchmarks/processor.py first and take its batch time (about a minute)")  # fmt: skip
    parser.add_argument("--write-docs", "--write-readme", dest="write_readme", action="store_true",
                        help="rewrite the cost block of docs/cost.md")  # fmt: skip
    args = parser.parse_args()
    table = json.loads(args.prices.read_text())
    fleet = Fleet(args.devices, args.interval, args.readings_per_message)
    per_10k = measure_processor() if args.measure_processor else args.processor_ms_per_10k
    m = Measured(processor_ms_per_10k=per_10k, batch_io_ms=args.batch_io_ms)
    print(f"fleet: {fleet.devices} devices at one reading every {fleet.interval_s:g} s, publishing {fleet.publishes}")

    def cost(env: Environment, lv: Levers = Levers()) -> tuple[float, float]:
        return summary(model(env, fleet, table, m, lv), fleet, table)

    envs: dict[str, Any] = {}
    for name in ENVIRONMENTS:
        env = Environment.load(name)
        total, per_m = cost(env)
        envs[name] = usd(total, per_m) | {"region": env.region, "stream_mode": env.stream_mode, "azs": env.azs}
        print(f"{name:<8} {env.region}: ${total:,.0f} a month, ${per_m:.2f} per million readings")
    prod = Environment.load("prod")
    lines = model(prod, fleet, table, m, Levers())
    base, base_per_m = summary(lines, fleet, table)
    rate = fleet.readings_per_s * message_bytes(fleet) / 1e6 / fleet.readings_per_message
    shards = max(1, math.ceil(2 * max(fleet.messages_per_s / 1000, rate)))  # twice the fleet's rate

    def in_place(name: str, where: str, trades: str, off: Environment, lv: Levers = Levers()) -> tuple[str, Any]:
        t = cost(off, lv)[0]
        return f"{name} (in {where})", usd(base, base_per_m) | {"saves_usd_per_month": round(t - base, 2),
                                                                "trades": trades}  # fmt: skip

    def would(name: str, trades: str, lv: Levers) -> tuple[str, Any]:
        return name, usd(*cost(prod, lv), base) | {"trades": trades}

    packing = fleet.readings_per_message
    rows = [
        in_place(
            "IoT Basic Ingest (no messaging charge)",
            "the iot module's policy",
            "nothing: the rule still authorizes and routes each message",
            replace(prod, basic_ingest=False),
        ),
        in_place(
            f"Kinesis provisioned, {prod.shard_count} shard(s) ({shards} at 2x the fleet's rate)",
            "prod's tfvars",
            "capacity is sized by hand (docs below); on demand scales by itself",
            replace(prod, stream_mode="ON_DEMAND"),
        ),
        in_place(
            "X-Ray pass-through on the processor",
            "prod's tfvars",
            "no traces of batches; metrics, logs and alarms unchanged",
            replace(prod, processor_tracing="Active"),
        ),
        in_place(
            f"X-Ray on the API sampled at {prod.api_sampling:.0%}",
            "prod's tfvars",
            f"a slow request has a trace 1 time in {1 / prod.api_sampling:.0f}; access logs and metrics see "
            "every request",
            replace(prod, api_sampling=None),
        )
        if prod.api_sampling
        else would(
            "X-Ray on the API sampled at 5%",
            "a slow request has a trace 1 time in 20; access logs and metrics see every request",
            Levers(api_sampling=0.05),
        ),
        in_place(
            "the report function outside the VPC (no Athena endpoint)",
            "prod's tfvars",
            "a security-posture choice, not a delivery guarantee: the report reaches Athena, S3, DynamoDB and SNS "
            "over AWS's public endpoints (IAM, TLS) and has no path into the VPC",
            replace(prod, report_in_vpc=True, interface_endpoints=prod.interface_endpoints + 1),
        )
        if not prod.report_in_vpc
        else would(
            "the report function outside the VPC (no Athena endpoint)",
            "a security-posture choice: the report reaches AWS's public endpoints (IAM, TLS), no path into the VPC",
            Levers(report_in_vpc=False),
        ),
        in_place(
            f"interface endpoints in {prod.endpoint_azs} AZs",
            "prod's tfvars",
            "still up through the loss of one AZ; Lambdas in the third cross AZs",
            replace(prod, endpoint_azs=prod.azs),
        ),
    ]
    if prod.log_ttl_days < prod.readings_ttl_days:
        rows.append(in_place(
            f"batch-log items kept {prod.log_ttl_days} days, not {prod.readings_ttl_days}",
            "the adapters, with the hourly idle-shard compaction",
            f"nothing: a batch compacts its shard's log into chunks every {prod.compact_interval_s // 60} min, and "
            "the compaction function's hourly job compacts a shard no batch compacted for an hour (a plant "
            "stopped), long before its log expires",
            replace(prod, log_ttl_days=prod.readings_ttl_days),
        ))  # fmt: skip
    if packing > 1:
        rows.append(in_place(f"gateways, {packing} readings a message", "the stated fleet",
                             "a gateway publishes for its devices (a registered gateway thing)", prod,
                             Levers(readings_per_message=1)))  # fmt: skip
    else:
        rows.append(would("gateways, 10 readings a message", "a gateway publishes for its devices",
                          Levers(readings_per_message=10)))  # fmt: skip
    rows += [
        would("archive in objects >= 128 KB (lifecycle acts)", "nothing (the Parquet compaction's objects)",
              Levers(large_archive_objects=True)),
        would("device item under 1 KB (1 write unit, not 2)", "nothing; needs the detector state or the replay "
              "identities smaller (docs/cost.md)", Levers(device_item_wru=1)),
    ]  # fmt: skip
    weaker = [
        would(
            "Kinesis retention 24 h (168 h now)",
            "an outage longer than a day loses readings (the stream replays 1 day, not 7)",
            Levers(retention_h=24),
        ),
        would(
            "interface endpoints in 1 AZ",
            "the loss of that AZ cuts the in-VPC Lambdas off SNS"
            + (" and Athena" if prod.report_in_vpc else " (the processor's alerts)"),
            Levers(azs=1),
        ),
        would(
            "readings in DynamoDB 30 days (90 now)",
            "the API answers 30 days; older readings only in the archive (Athena)",
            Levers(readings_ttl_days=30),
        ),
        would(
            "compaction every 30 min (10 now)",
            "the fleet list's values up to 30 min old (a device's own endpoint stays current)",
            Levers(compact_interval_s=1800),
        ),
        *[
            would(
                f"batching window {w:g} s ({prod.window_s:g} s now)",
                f"a reading waits up to {w:g} s before the processor sees it: end-to-end over the original "
                f"requirement's {E2E_BUDGET_S:g} s",
                Levers(window_s=w),
            )
            for w in (5.0, 10.0)
            if w > prod.window_s
        ],
        would(
            "batching window 60 s",
            "alerts leave up to 60 s after their reading: the whole of the 'abrupt faults within 60 s' budget",
            Levers(window_s=60),
        ),
    ]
    weaker.append(
        would(
            "all of these, together",
            "all of the above",
            Levers(retention_h=24, azs=1, readings_ttl_days=30, compact_interval_s=1800, window_s=60),
        )
    )
    one_t, one_m = cost(prod, Levers(readings_per_message=1))
    unlevered = replace(prod, stream_mode="ON_DEMAND", processor_tracing="Active", endpoint_azs=prod.azs,
                        basic_ingest=False, api_sampling=None, window_s=1.0, report_in_vpc=True,
                        interface_endpoints=prod.interface_endpoints + (not prod.report_in_vpc))  # fmt: skip
    windows = [
        {"window_s": w, "e2e_worst_s": round(e2e_worst_s(prod, fleet, m, w), 2)} | usd(*cost(prod, Levers(window_s=w)))
        for w in (1.0, 2.0, 5.0, 10.0, 20.0, 60.0)
    ]
    out: dict[str, Any] = {
        "devices": fleet.devices, "interval_s": fleet.interval_s, "region": prod.region,
        "readings_per_message": packing, "publishes": fleet.publishes,
        **usd(base, base_per_m),
        "target_usd_per_million_readings": TARGET_USD_PER_MILLION,
        "target_met": base_per_m <= TARGET_USD_PER_MILLION,
        "at_one_reading_a_message": usd(one_t, one_m),
        "target_met_at_one_reading_a_message": one_m <= TARGET_USD_PER_MILLION,
        "verdict": verdict(base_per_m, one_m, packing),
        "prod_with_variable_defaults": usd(*cost(unlevered, Levers(readings_per_message=1))),
        "environments": envs, "levers": dict(rows), "weaker_guarantees": dict(weaker), "batching_windows": windows,
        "prod_items": {f"{x.group}: {x.item}": round(x.usd, 2) for x in lines},
    }  # fmt: skip
    print(f"verdict: {out['verdict']}")
    block = markdown(prod, fleet, table, lines, out)
    print()
    print(block)
    if args.write_readme:
        write_readme(block, readme_summary(out))
        print("\ndocs/cost.md: cost block rewritten; README.md: cost summary rewritten")
    print(json.dumps(out))


if __name__ == "__main__":
    main()

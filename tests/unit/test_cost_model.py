"""``benchmarks/cost.py``: what it reads from the environments, its levers, and the block in docs/cost.md."""

from __future__ import annotations

import importlib.util
import json
import sys
from dataclasses import replace
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def cost() -> ModuleType:
    spec = importlib.util.spec_from_file_location("cost_model", ROOT / "benchmarks" / "cost.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["cost_model"] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def prices() -> dict[str, Any]:
    return dict(json.loads((ROOT / "benchmarks" / "aws_prices.json").read_text()))


def items(lines: list[Any]) -> dict[str, float]:
    return {f"{x.group}: {x.item}": x.usd for x in lines}


def test_every_price_names_its_source(prices: dict[str, Any]) -> None:
    regions = prices["regions"]
    assert set(regions["eu-west-1"]) == set(regions["us-east-1"])
    for region in regions.values():
        for key, entry in region.items():
            assert entry["usd"] > 0 and entry["source"].startswith("https://aws.amazon.com/"), key


def test_the_environments_are_read_from_their_tfvars(cost: ModuleType) -> None:
    prod = cost.Environment.load("prod")
    text = (ROOT / "terraform" / "environments" / "prod" / "terraform.tfvars").read_text()
    assert prod.azs == text.split("availability_zones")[1].split("\n")[0].count('"') // 2
    values = cost.hcl_values(text)
    assert prod.stream_mode == values["stream_mode"].strip('"') and prod.retention_h == 168
    assert prod.window_s == float(values["batching_window_s"])
    sampling = values.get("api_xray_sampling_rate")
    assert prod.api_sampling == (None if sampling is None else float(sampling))
    assert prod.processor_tracing == values.get("processor_tracing", '"Active"').strip('"')
    assert prod.endpoint_azs == int(values.get("endpoint_az_count", str(prod.azs)))
    dev = cost.Environment.load("dev")
    assert (dev.stream_mode, dev.shard_count) == ("PROVISIONED", 1)
    # what a tfvars leaves out is the pipeline module's default: tracing Active, endpoints in every AZ,
    # X-Ray's default rule on the API
    assert (dev.processor_tracing, dev.endpoint_azs, dev.api_sampling) == ("Active", dev.azs, None)


def test_the_tfvars_levers_reach_the_model(cost: ModuleType, prices: dict[str, Any]) -> None:
    prod, fleet, m = cost.Environment.load("prod"), cost.Fleet(), cost.Measured()
    plain = replace(
        prod, stream_mode="ON_DEMAND", processor_tracing="Active", endpoint_azs=prod.azs, basic_ingest=False
    )
    chosen = replace(plain, processor_tracing="PassThrough", endpoint_azs=2)
    a, b = (
        items(cost.model(plain, fleet, prices, m, cost.Levers())),
        items(cost.model(chosen, fleet, prices, m, cost.Levers())),
    )
    assert b["VPC: interface endpoints"] == pytest.approx(a["VPC: interface endpoints"] * 2 / prod.azs)
    xray = next(x for x in cost.model(chosen, fleet, prices, m, cost.Levers()) if x.group == "X-Ray")
    assert "processor 0.00 M: PassThrough" in xray.basis
    assert b["X-Ray: traces"] < a["X-Ray: traces"]
    provisioned = items(
        cost.model(replace(plain, stream_mode="PROVISIONED", shard_count=1), fleet, prices, m, cost.Levers())
    )
    assert "Kinesis: shard-hours" in provisioned and "Kinesis: shard-hours" not in a


def test_kinesis_on_demand_bills_each_record_as_a_kilobyte_and_starts_at_four_shards(
    cost: ModuleType, prices: dict[str, Any]
) -> None:
    prod, fleet = replace(cost.Environment.load("prod"), stream_mode="ON_DEMAND"), cost.Fleet(500, 5.0, 1)
    lines = {f"{x.group}: {x.item}": x for x in cost.model(prod, fleet, prices, cost.Measured(), cost.Levers())}
    month = fleet.readings_per_s * 730 * 3600
    assert cost.message_bytes(fleet) < 1024  # a reading is ~240 bytes, billed as 1 KB
    per_gb = prices["regions"]["eu-west-1"]["kinesis_on_demand_ingest_per_gb"]["usd"]
    assert lines["Kinesis: data in"].usd == pytest.approx(month * 1024 / 1024**3 * per_gb)
    assert "4 shards" in lines["Lambda: processor requests"].basis


def test_each_lever_changes_only_what_it_names(cost: ModuleType, prices: dict[str, Any]) -> None:
    prod, fleet, m = cost.Environment.load("prod"), cost.Fleet(), cost.Measured()
    # prod as the variables' defaults would build it, so each lever has something to change
    prod = replace(prod, stream_mode="ON_DEMAND", processor_tracing="Active", endpoint_azs=prod.azs, basic_ingest=False)
    base = items(cost.model(prod, fleet, prices, m, cost.Levers()))
    ingest = items(cost.model(prod, fleet, prices, m, cost.Levers(basic_ingest=True)))
    assert (
        "IoT Core: messaging" not in ingest and {k: v for k, v in base.items() if k != "IoT Core: messaging"} == ingest
    )
    azs = items(cost.model(prod, fleet, prices, m, cost.Levers(azs=2)))
    assert azs["VPC: interface endpoints"] == pytest.approx(base["VPC: interface endpoints"] * 2 / 3)
    one = items(cost.model(prod, fleet, prices, m, cost.Levers(provisioned_shards=1)))
    # a quarter of the batches: every per-batch cost falls with the shard count
    assert one["S3 requests: raw archive PUTs"] == pytest.approx(base["S3 requests: raw archive PUTs"] / 4)
    east = items(cost.model(replace(prod, region="us-east-1"), fleet, prices, m, cost.Levers()))
    assert east["VPC: interface endpoints"] < base["VPC: interface endpoints"]  # the region's own price


def test_basic_ingest_is_read_from_the_iot_modules_device_policy(cost: ModuleType, prices: dict[str, Any]) -> None:
    """The policy allows only the Basic Ingest topic, so no environment pays IoT messaging;
    the rule and its Kinesis action are still billed per message."""
    main = (ROOT / "terraform" / "modules" / "iot" / "main.tf").read_text()
    assert cost.uses_basic_ingest() == (":topic/$aws/rules/${local.rule_name}/" in main)
    for name in cost.ENVIRONMENTS:
        env = cost.Environment.load(name)
        lines = items(cost.model(env, cost.Fleet(), prices, cost.Measured(), cost.Levers()))
        assert ("IoT Core: messaging" in lines) != env.basic_ingest and "IoT Core: rule + Kinesis action" in lines
        plain = items(
            cost.model(replace(env, basic_ingest=False), cost.Fleet(), prices, cost.Measured(), cost.Levers())
        )
        assert plain["IoT Core: messaging"] > 0


def test_a_gateway_packing_readings_divides_what_is_billed_per_message(
    cost: ModuleType, prices: dict[str, Any]
) -> None:
    prod, m = replace(cost.Environment.load("prod"), basic_ingest=False), cost.Measured()
    fleet = cost.Fleet(readings_per_message=1)
    one = items(cost.model(prod, fleet, prices, m, cost.Levers()))
    ten = items(cost.model(prod, fleet, prices, m, cost.Levers(readings_per_message=10)))
    for item in ("IoT Core: rule + Kinesis action", "IoT Core: messaging", "IoT Core: connectivity",
                 "Kinesis: PUT payload units"):  # fmt: skip
        assert ten[item] == pytest.approx(one[item] / 10), item  # 10 readings fit one 5 KB / 25 KB unit
    assert ten["Kinesis: shard-hours"] == one["Kinesis: shard-hours"]  # per shard, not per message
    assert cost.message_bytes(cost.Fleet(readings_per_message=10)) < 10 * cost.message_bytes(fleet)


def test_the_docs_block_is_what_the_script_prints(cost: ModuleType) -> None:
    page = (ROOT / "docs" / "cost.md").read_text()
    block = page.split(cost.BEGIN)[1].split(cost.END)[0].strip()
    assert block, "docs/cost.md has no cost block"
    fleet = block.split("**")[1]
    assert fleet.startswith("500 devices at one reading every 5 s")
    table = json.loads((ROOT / "benchmarks" / "aws_prices.json").read_text())
    lines = cost.model(cost.Environment.load("prod"), cost.Fleet(), table, cost.Measured(), cost.Levers())
    per_m = cost.summary(lines, cost.Fleet(), table)[1]
    assert f"**${per_m:.2f} per million readings**" in block, "run python benchmarks/cost.py --write-docs"


def test_the_readmes_cost_table_is_what_the_script_prints(cost: ModuleType) -> None:
    readme = (ROOT / "README.md").read_text()
    block = readme.split(cost.README_BEGIN)[1].split(cost.README_END)[0].strip()
    table = json.loads((ROOT / "benchmarks" / "aws_prices.json").read_text())
    for name in ("dev", "staging", "prod"):
        lines = cost.model(cost.Environment.load(name), cost.Fleet(), table, cost.Measured(), cost.Levers())
        usd, per_m = cost.summary(lines, cost.Fleet(), table)
        assert f"| {name} | {usd:,.0f} | {per_m:.2f} |" in block, "run python benchmarks/cost.py --write-docs"
    assert "500 devices at one reading every 5 s" in block and "eu-west-1" in block


def test_the_api_sampling_rule_sets_the_apis_traces(cost: ModuleType, prices: dict[str, Any]) -> None:
    prod, fleet, m = cost.Environment.load("prod"), cost.Fleet(), cost.Measured()
    default = replace(prod, api_sampling=None, processor_tracing="PassThrough")
    traced = {
        rate: next(x for x in cost.model(replace(default, api_sampling=rate), fleet, prices, m, cost.Levers())
                   if x.group == "X-Ray")
        for rate in (0.05, 0.5)
    }  # fmt: skip
    by_default = next(x for x in cost.model(default, fleet, prices, m, cost.Levers()) if x.group == "X-Ray")
    per_trace = prices["regions"]["eu-west-1"]["xray_traces_recorded_per_million"]["usd"] / 1e6
    # a fixed rate and no reservoir: that fraction of the API's requests (+30 report traces)
    assert traced[0.05].usd == pytest.approx((m.api_requests_per_month * 0.05 + 30) * per_trace)
    assert traced[0.5].usd == pytest.approx((m.api_requests_per_month * 0.5 + 30) * per_trace)
    # X-Ray's default rule traces the first request each second: nearly all of a quiet API's
    assert by_default.usd > 0.9 * m.api_requests_per_month * per_trace and "default rule" in by_default.basis


def test_a_longer_batching_window_divides_every_per_batch_cost(cost: ModuleType, prices: dict[str, Any]) -> None:
    prod, fleet, m = cost.Environment.load("prod"), cost.Fleet(), cost.Measured()
    two, ten = (items(cost.model(replace(prod, window_s=w), fleet, prices, m, cost.Levers())) for w in (2.0, 10.0))
    for item in ("S3 requests: raw archive PUTs", "S3 requests: snapshot PUTs + GETs", "Lambda: processor requests"):
        assert ten[item] == pytest.approx(two[item] / 5), item
    # the batch log's item grows with the batch, but fewer of them cost fewer units: whole kilobytes
    assert ten["DynamoDB: writes"] < two["DynamoDB: writes"]
    assert ten["Kinesis: shard-hours"] == two["Kinesis: shard-hours"]


def test_the_batch_log_is_sized_with_the_adapters_encoder(cost: ModuleType) -> None:
    small, large = cost.log_write(100, 1), cost.log_write(500, 2)
    for units, size, count in (small, large):
        assert count >= 1 and size / 1024 <= units <= size / 1024 + count  # a started kilobyte per item
    assert large[1] > 3 * small[1]  # ten times the readings: more bytes, not ten times (columns, deflate)
    assert large[1] < 10 * small[1]


def run_script(*args: str) -> dict[str, Any]:
    import subprocess

    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "cost.py"), *args], check=True,
                          capture_output=True, text=True)  # fmt: skip
    out: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    assert done.stdout.startswith(f"fleet: 500 devices at one reading every 5 s, publishing {out['publishes']}")
    return out


def test_the_headline_says_how_the_fleet_publishes_and_whether_only_packing_meets_the_target() -> None:
    stated, one = run_script(), run_script("--readings-per-message", "1")
    assert one["readings_per_message"] == 1 and one["publishes"].startswith("one reading a message")
    assert stated["at_one_reading_a_message"] == {k: one[k] for k in ("usd_per_month", "usd_per_million_readings")}
    for out in (stated, one):
        assert out["target_met"] == (out["usd_per_million_readings"] <= out["target_usd_per_million_readings"])
    if stated["readings_per_message"] > 1:
        assert stated["usd_per_million_readings"] < one["usd_per_million_readings"]
        assert stated["target_met_at_one_reading_a_message"] == one["target_met"]


def test_levers_that_weaken_a_guarantee_stay_out_of_the_headline(cost: ModuleType, prices: dict[str, Any]) -> None:
    out = run_script()
    prod, fleet = cost.Environment.load("prod"), cost.Fleet()
    headline = cost.summary(cost.model(prod, fleet, prices, cost.Measured(), cost.Levers()), fleet, prices)[0]
    assert out["usd_per_month"] == pytest.approx(headline, abs=0.01)
    weaker = out["weaker_guarantees"]
    assert {"Kinesis retention 24 h (168 h now)", "interface endpoints in 1 AZ"} <= set(weaker)
    for name, row in weaker.items():
        assert row["saves_usd_per_month"] > 0 and row["usd_per_month"] < out["usd_per_month"], name
        assert row["trades"], name
    assert all(row["trades"] for row in out["levers"].values())


def test_prod_keeps_end_to_end_under_5_s_and_longer_windows_weaken_it(cost: ModuleType) -> None:
    out = run_script()
    prod, fleet, m = cost.Environment.load("prod"), cost.Fleet(), cost.Measured()
    assert cost.e2e_worst_s(prod, fleet, m, prod.window_s) < cost.E2E_BUDGET_S
    over = [w["window_s"] for w in out["batching_windows"] if w["e2e_worst_s"] >= cost.E2E_BUDGET_S]
    assert over, "the windows table shows no window past the budget"
    assert not any("batching window" in name for name in out["levers"])  # never a same-guarantee lever
    weaker = " ".join(out["weaker_guarantees"])
    for w in over:
        if w in (5.0, 10.0, 60.0):
            assert f"batching window {w:g} s" in weaker
    # the worst case grows with the window by the window itself (plus its batch's larger processing)
    times = [w["e2e_worst_s"] for w in out["batching_windows"]]
    assert times == sorted(times)


def test_a_lever_of_zero_is_applied_not_ignored(cost: ModuleType, prices: dict[str, Any]) -> None:
    prod, fleet, m = cost.Environment.load("prod"), cost.Fleet(), cost.Measured()
    held = items(cost.model(prod, fleet, prices, m, cost.Levers()))
    assert "Kinesis: extended retention" in held  # prod keeps 168 h
    none = items(cost.model(prod, fleet, prices, m, cost.Levers(retention_h=0)))
    assert "Kinesis: extended retention" not in none
    free = items(cost.model(prod, fleet, prices, m, cost.Levers(device_item_wru=0)))
    assert free["DynamoDB: writes"] < held["DynamoDB: writes"]


def test_the_compactions_items_are_sized_for_its_interval(cost: ModuleType) -> None:
    m = cost.Measured()
    scale = cost.compaction_scale(m, 5.0)
    ten, thirty = cost.compaction_write(600, 5.0, scale), cost.compaction_write(1800, 5.0, scale)
    # calibrated on the measured chunk at 600 s: ~1,716 B, 2 write units
    assert ten[0] == 2.0 and ten[2] * 120 == pytest.approx(m.chunk_bytes_600s)
    # three times the readings a chunk: more units a compaction (whole kilobytes), fewer bytes a reading
    assert thirty[0] >= 2 * ten[0] and thirty[2] < ten[2]
    # the minute block is rewritten with the hour's earlier buckets: at least as large a write at 30 min
    assert thirty[1] >= ten[1] >= 2  # the minute block and the hour block, a unit at least each


def test_iot_rules_and_actions_are_counted_per_5_kb(cost: ModuleType, prices: dict[str, Any]) -> None:
    prod, m = cost.Environment.load("prod"), cost.Measured()
    per_rule = sum(prices["regions"]["eu-west-1"][k]["usd"] for k in
                   ("iot_rules_triggered_per_million", "iot_actions_executed_per_million")) / 1e6  # fmt: skip
    for packing in (10, 50):
        fleet = cost.Fleet(readings_per_message=packing)
        line = items(cost.model(prod, fleet, prices, m, cost.Levers()))["IoT Core: rule + Kinesis action"]
        steps = -(-(cost.message_bytes(fleet) + cost.topic_bytes()) // 5000)
        messages = fleet.messages_per_s * prices["hours_per_month"] * 3600
        assert line == pytest.approx(messages * steps * per_rule)
        assert steps == (1 if packing == 10 else 3)


def test_previous_snapshots_are_held_per_batch(cost: ModuleType, prices: dict[str, Any]) -> None:
    prod, fleet, m = cost.Environment.load("prod"), cost.Fleet(), cost.Measured()
    two, ten = (items(cost.model(replace(prod, window_s=w), fleet, prices, m, cost.Levers())) for w in (2.0, 10.0))
    assert two["S3 storage: previous snapshots"] == pytest.approx(5 * ten["S3 storage: previous snapshots"])
    assert two["S3 storage: previous snapshots"] > 0


def test_a_shorter_log_expiry_changes_only_what_the_table_holds(cost: ModuleType, prices: dict[str, Any]) -> None:
    prod, fleet, m = cost.Environment.load("prod"), cost.Fleet(), cost.Measured()
    held = items(cost.model(prod, fleet, prices, m, cost.Levers(log_ttl_days=prod.readings_ttl_days)))
    short = items(cost.model(prod, fleet, prices, m, cost.Levers()))
    changed = {k for k in held if held[k] != pytest.approx(short[k])}
    assert changed == {"DynamoDB: storage", "DynamoDB: point-in-time recovery"}
    assert short["DynamoDB: storage"] < held["DynamoDB: storage"]
    longer = items(cost.model(prod, fleet, prices, m, cost.Levers(log_ttl_days=900)))  # never past the readings'
    assert longer["DynamoDB: storage"] == pytest.approx(held["DynamoDB: storage"])


def test_the_log_expiry_is_the_adapters_and_in_prod(cost: ModuleType) -> None:
    """The model's log expiry is the one the DynamoDB adapter writes, for every write-behind environment,
    and the lever is in place (the idle-shard job makes it safe), not proposed."""
    from iotpm.adapters.dynamodb import LOG_TTL_S

    for name in cost.ENVIRONMENTS:
        env = cost.Environment.load(name)
        assert env.log_ttl_days == min(LOG_TTL_S // 86_400, env.readings_ttl_days)
    out = run_script()
    (row,) = [k for k in out["levers"] if k.startswith("batch-log items kept")]
    assert "(in the adapters" in row and "proposed" not in row
    assert out["levers"][row]["saves_usd_per_month"] > 5
    assert out["prod_items"]["Lambda: idle-shard compaction"] < 0.5  # the job itself costs next to nothing


def test_the_json_names_the_fleet_it_is_for() -> None:
    out = run_script()
    assert out["readings_per_message"] == 10 and "gateways" in out["publishes"]
    if out["target_met"] and not out["target_met_at_one_reading_a_message"]:
        assert out["verdict"].startswith("target met only with packed messages")
    one = run_script("--readings-per-message", "1")
    assert ("one reading a message" in one["verdict"]) and (
        one["target_met"] == one["verdict"].startswith("target met")
    )

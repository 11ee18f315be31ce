"""Terraform and the code agree: terraform/environments/local is applied to the emulator once,
and the handlers run with what it created.

- Each handler runs with the environment Terraform set on its function, read back with
  Lambda GetFunctionConfiguration (not settings built here), in the environment's region.
- The tables Terraform created have the keys, indexes and TTL attribute the code expects.
- Every AWS operation the handlers call (recorded from botocore while they run) is allowed by
  the policy Terraform attached to that function's role, and every service they call is
  reachable from the VPC through an endpoint.
"""

from __future__ import annotations

import fnmatch
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.awsrequest import AWSResponse

from iotpm.adapters.dynamodb import TableNames, all_items, table_specs
from iotpm.api.server import proxy_event
from iotpm.composition import (
    ReportSettings,
    Settings,
    TableSettings,
    build_operator,
    build_processor,
    build_queries,
    build_report_job,
    clients,
)
from iotpm.handlers.api import ApiHandler
from iotpm.handlers.processor import ProcessorHandler
from iotpm.handlers.report import ReportHandler
from iotpm.local.terraform import LocalTerraform, handler_environment, repo_root
from iotpm.local.webhook import WebhookReceiver
from iotpm.service import RawRecord
from iotpm.service.samples import batch, kinesis_event

from .aws import REGION, client

ROOT = repo_root(Path(__file__).resolve().parent)
T0 = (int(time.time()) - 3600) * 1000  # within the API's default windows (the last 24 h)
#: IAM actions whose name is not the API operation's (the service authorises another action)
ACTION_OF = {
    ("s3", "HeadObject"): "s3:GetObject",
    ("s3", "ListObjectsV2"): "s3:ListBucket",
    # IAM authorizes a transaction by its items' own actions; the operator's audited writes are Puts
    ("dynamodb", "TransactWriteItems"): "dynamodb:PutItem",
}
#: VPC endpoint service names whose name is not the IAM prefix
ENDPOINT_OF = {"timestream": "timestream.ingest-cell1"}

Calls = set[tuple[str, str]]


@pytest.fixture(scope="module")
def applied(endpoint: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """terraform apply of the local environment on the test emulator (its http routes to a
    webhook receiver, as the twin's); its outputs."""
    if os.environ.get("IOTPM_SKIP_TERRAFORM") == "1":
        pytest.skip("IOTPM_SKIP_TERRAFORM=1 (a quick local run; CI applies Terraform)")
    out = ROOT / "lambda_build" / "out"
    missing = [fn for fn in ("processor", "api", "compaction") if not (out / f"{fn}-x86_64.zip").exists()]
    if missing:
        build = [sys.executable, str(ROOT / "lambda_build" / "build.py"), *missing, "--arch", "x86_64"]
        subprocess.run(build, check=True, stdout=subprocess.DEVNULL)
    folder = tmp_path_factory.mktemp("terraform")
    hooks = WebhookReceiver(folder / "hooks.jsonl").start()
    try:
        tf = LocalTerraform(ROOT, folder, endpoint)
        tf.init()
        # the optional sink covered too
        tf.apply(lambda done, total, addr: None, {"enable_timestream": "true", "local_webhook_url": hooks.url})
        yield tf.outputs()
    finally:
        hooks.stop()


def recording(aws: dict[str, Any], calls: Calls) -> dict[str, Any]:
    """The clients, each recording (IAM prefix, operation) of every call it makes."""

    def record(model: Any, **_: Any) -> None:
        calls.add((model.service_model.signing_name, model.name))

    for c in aws.values():
        c.meta.events.register("before-call", record)
    return aws


@pytest.fixture(scope="module")
def run(applied: dict[str, Any], endpoint: str) -> dict[str, Any]:
    """The handlers over a batch with an alarm and bad records, every API route, then the fleet report."""
    lam = client("lambda", endpoint)
    region = applied["region"]
    penv = handler_environment(lam, applied["processor_function_name"], region)
    aenv = handler_environment(lam, applied["api_function_name"], region)
    psettings, asettings = Settings.from_environment(penv), TableSettings.from_environment(aenv)
    pcalls: Calls = set()
    acalls: Calls = set()
    paws = recording(clients(psettings), pcalls)
    aaws = recording(clients(asettings, ("dynamodb",)), acalls)
    processor = ProcessorHandler(lambda: build_processor(psettings, paws))
    learn = [batch(4, 50, start_ms=T0, first_seq=s, seed=s) for s in (0, 50, 100)]
    hot = batch(4, 40, start_ms=T0, first_seq=150, faulty=[2], fault_from=160, seed=7)
    bad = [RawRecord("x1", "x", b"{oops", T0), RawRecord("x2", "x", b"[]", T0)]
    responses = [processor(kinesis_event(records), None) for records in [*learn, hot + bad]]
    api = ApiHandler(lambda: build_queries(asettings, aaws), operator=lambda q: build_operator(asettings, aaws, q))
    device = "/devices/dev-0002"
    routes = ["/devices", device, f"{device}/readings?resolution=1m", f"{device}/readings", f"{device}/anomalies",
              "/anomalies", "/lines/line-1/summary", "/config/limits", "/audit"]  # fmt: skip
    answers = {r: api(proxy_event("GET", r, {}, "127.0.0.1"), None) for r in routes}
    # the operator's writes, as an IAM principal (the API's policy must allow each call they make)
    who, limits = (
        "arn:aws:iam::000000000000:user/operator",
        json.dumps({"line": {"line-1": {"temperature": {"high": 70}}}}),
    )
    registration = '{"site": "plant-1", "line": "line-1", "device_type": "pump"}'
    writes = [("PUT", f"{device}/registration", registration), ("PUT", "/config/limits", limits),
              ("POST", f"{device}/alarm/acknowledge", '{"note": "on it"}')]  # fmt: skip
    answers |= {f"{m} {r}": api(proxy_event(m, r, {}, "127.0.0.1", b, who), None) for m, r, b in writes}
    rsettings = ReportSettings.from_environment(handler_environment(lam, function_name(applied, "report"), region))
    rcalls: Calls = set()
    raws = recording(clients(rsettings, ("dynamodb", "athena", "s3", "sns")), rcalls)
    raws["athena"].meta.events.register("before-send", athena_answers)  # the emulator cannot serve boto3's Athena
    report = ReportHandler(lambda: build_report_job(rsettings, raws))({"hours": 24}, None)
    return {
        "responses": responses,
        "answers": answers,
        "report": report,
        "calls": {"processor": pcalls, "api": acalls, "report": rcalls},
        "clients": [*paws.values(), *aaws.values(), *raws.values()],
        "settings": psettings,
    }


def athena_answers(request: Any, **kwargs: Any) -> AWSResponse:
    """Athena's answers to the report, without the network (the emulator's moto speaks Athena's
    JSON 1.1 protocol and botocore now sends rest-json): an empty result for every query. The
    calls are recorded before they are sent, so the policy check still sees each one."""
    operation = str(kwargs.get("event_name", "")).rsplit(".", 1)[-1]
    body = {
        "StartQueryExecution": {"QueryExecutionId": "q-1"},
        "GetQueryExecution": {"QueryExecution": {"QueryExecutionId": "q-1", "Status": {"State": "SUCCEEDED"}}},
        "GetQueryResults": {"ResultSet": {"Rows": [], "ResultSetMetadata": {"ColumnInfo": []}}},
    }[operation]
    return AWSResponse(request.url, 200, {"Content-Type": "application/json"}, _Raw(json.dumps(body).encode()))


class _Raw:
    def __init__(self, body: bytes) -> None:
        self.body = body

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self.body


def function_name(applied: dict[str, Any], function: str) -> str:
    """The Lambda Terraform made for ``function`` (processor, api, report), from its outputs."""
    if function == "report":
        return str(applied["analytics"]["report_function"])
    return str(applied[f"{function}_function_name"])


def test_terraform_deploys_to_a_region_other_than_us_east_1(applied: dict[str, Any]) -> None:
    assert applied["region"] == REGION != "us-east-1"


def test_handlers_run_with_the_environment_read_back_from_the_functions(run: dict[str, Any]) -> None:
    assert all(r == {"batchItemFailures": []} for r in run["responses"])
    assert {c.meta.region_name for c in run["clients"]} == {REGION}
    assert all(a["statusCode"] == 200 for a in run["answers"].values()), run["answers"]
    devices = json.loads(run["answers"]["/devices"]["body"])["items"]
    assert len(devices) == 4
    anomalies = json.loads(run["answers"]["/anomalies"]["body"])["items"]
    assert [a["device_id"] for a in anomalies] == ["dev-0002"]


def test_the_processor_reaches_every_store_terraform_created(run: dict[str, Any], endpoint: str) -> None:
    s: Settings = run["settings"]
    assert s.timestream_enabled  # applied with the optional sink on: its permissions and calls are covered too
    s3 = client("s3", endpoint)
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=s.archive_bucket)["Contents"]]
    assert any(k.startswith("raw/") for k in keys) and any(k.startswith("quarantine/") for k in keys)
    assert ("sns", "Publish") in run["calls"]["processor"]
    assert ("timestream", "WriteRecords") in run["calls"]["processor"]


def test_tables_have_the_keys_indexes_and_ttl_the_code_expects(
    applied: dict[str, Any], run: dict[str, Any], endpoint: str
) -> None:
    ddb = client("dynamodb", endpoint)
    t = applied["tables"]
    expected = {
        spec["TableName"]: spec
        for spec in table_specs(TableNames(t["readings"], t["devices"], t["anomalies"], t["rollups"]))
    }
    for name, spec in expected.items():
        got = ddb.describe_table(TableName=name)["Table"]
        assert got["KeySchema"] == spec["KeySchema"], name
        assert _attrs(got["AttributeDefinitions"]) == _attrs(spec["AttributeDefinitions"]), name
        assert _indexes(got.get("GlobalSecondaryIndexes", [])) == _indexes(spec.get("GlobalSecondaryIndexes", [])), name
    for role in ("readings", "anomalies", "rollups"):
        ttl = ddb.describe_time_to_live(TableName=t[role])["TimeToLiveDescription"]
        assert ttl["TimeToLiveStatus"] == "ENABLED", role
        items = all_items(ddb, t[role])
        assert items and all(ttl["AttributeName"] in it for it in items), f"{role} items lack {ttl['AttributeName']}"


def test_the_operators_tables_have_the_keys_and_indexes_the_code_expects(run: dict[str, Any], endpoint: str) -> None:
    from iotpm.adapters.registry import OperatorTables, operator_table_specs

    settings, ddb = run["settings"], client("dynamodb", endpoint)
    names = OperatorTables(settings.registry_table, settings.config_table, settings.audit_table)
    for spec in operator_table_specs(names):
        got = ddb.describe_table(TableName=spec["TableName"])["Table"]
        assert got["KeySchema"] == spec["KeySchema"], spec["TableName"]
        assert _attrs(got["AttributeDefinitions"]) == _attrs(spec["AttributeDefinitions"]), spec["TableName"]
        assert _indexes(got.get("GlobalSecondaryIndexes", [])) == _indexes(spec.get("GlobalSecondaryIndexes", []))


def _attrs(defs: list[dict[str, str]]) -> set[tuple[str, str]]:
    return {(d["AttributeName"], d["AttributeType"]) for d in defs}


def _indexes(gsis: list[dict[str, Any]]) -> dict[str, Any]:
    return {g["IndexName"]: (g["KeySchema"], g["Projection"]["ProjectionType"]) for g in gsis}


def test_the_registry_is_seeded_from_the_things_and_the_operator_writes_landed(run: dict[str, Any]) -> None:
    from iotpm.adapters.registry import DynamoAudit, DynamoRegistry

    settings, ddb = run["settings"], client("dynamodb", os.environ["AWS_ENDPOINT_URL"])
    seeded = DynamoRegistry(ddb, settings.registry_table).get("compressor-0002")  # terraform/environments/local
    assert seeded is not None and (seeded.line, seeded.device_type, seeded.updated_by) == (
        "line-2",
        "compressor",
        "terraform",
    )
    entries = DynamoAudit(ddb, settings.audit_table).page(0, 4_000_000_000_000, 10, None).items
    assert sorted(e.action for e in entries) == ["acknowledge", "configuration", "registration"]


@pytest.mark.parametrize("function", ["processor", "api", "report"])
def test_every_call_a_handler_makes_is_allowed_by_its_terraform_policy(
    applied: dict[str, Any], run: dict[str, Any], endpoint: str, function: str
) -> None:
    calls: Calls = run["calls"][function]
    assert calls, "the handler made no AWS calls: nothing was checked"
    allowed = role_actions(endpoint, function_name(applied, function))
    assert denied(calls, allowed) == [], (
        f"the {function} calls what its role's policy (terraform/modules/{function}) does not allow"
    )


def test_the_policy_check_fails_when_a_permission_is_removed(
    applied: dict[str, Any], run: dict[str, Any], endpoint: str
) -> None:
    allowed = role_actions(endpoint, applied["processor_function_name"])
    assert "dynamodb:PutItem" in allowed and ("dynamodb", "PutItem") in run["calls"]["processor"]
    assert denied(run["calls"]["processor"], [a for a in allowed if a != "dynamodb:PutItem"]) == ["dynamodb:PutItem"]


def test_the_report_runs_and_reads_the_fleet_by_key(run: dict[str, Any]) -> None:
    assert run["report"]["devices"] == 4, run["report"]
    assert ("dynamodb", "BatchGetItem") in run["calls"]["report"]  # its role lacked it (issue 27)
    assert {("athena", "StartQueryExecution"), ("s3", "PutObject")} <= run["calls"]["report"]


@pytest.mark.parametrize("function", ["processor", "api", "report"])
def test_no_function_role_has_a_managed_policy(applied: dict[str, Any], endpoint: str, function: str) -> None:
    """AWSLambdaVPCAccessExecutionRole (logs:* on every log group) is replaced by a scoped ENI policy."""
    lam, iam = client("lambda", endpoint), client("iam", endpoint)
    role = lam.get_function_configuration(FunctionName=function_name(applied, function))["Role"].rsplit("/", 1)[1]
    assert iam.list_attached_role_policies(RoleName=role)["AttachedPolicies"] == []
    assert "vpc-interfaces" in iam.list_role_policies(RoleName=role)["PolicyNames"]


def denied(calls: Calls, allowed: list[str]) -> list[str]:
    """The IAM actions of ``calls`` that no allowed action (wildcards included) grants."""
    return sorted({a for a in (ACTION_OF.get(c, f"{c[0]}:{c[1]}") for c in calls) if not _allowed(a, allowed)})


def test_every_service_the_handlers_call_has_a_vpc_endpoint(
    applied: dict[str, Any], run: dict[str, Any], endpoint: str
) -> None:
    """Every service an in-VPC function calls (a function outside the VPC, e.g. the report with
    report_in_vpc false, reaches AWS's public endpoints and needs none)."""
    ec2, lam = client("ec2", endpoint), client("lambda", endpoint)
    names = {e["ServiceName"].split(f".{REGION}.", 1)[1] for e in ec2.describe_vpc_endpoints()["VpcEndpoints"]}
    in_vpc = {
        fn
        for fn in run["calls"]
        if lam.get_function_configuration(FunctionName=function_name(applied, fn)).get("VpcConfig", {}).get("SubnetIds")
    }
    assert in_vpc, "no function runs in the VPC: nothing was checked"
    called = {ENDPOINT_OF.get(svc, svc) for fn in in_vpc for svc, _ in run["calls"][fn]}
    assert called - names == set(), "the Lambdas run without internet egress: add the endpoint in terraform"


def role_actions(endpoint: str, function_name: str) -> list[str]:
    """Every action an Allow statement of the function's role grants (inline and attached)."""
    lam, iam = client("lambda", endpoint), client("iam", endpoint)
    role = lam.get_function_configuration(FunctionName=function_name)["Role"].rsplit("/", 1)[1]
    docs = [
        iam.get_role_policy(RoleName=role, PolicyName=p)["PolicyDocument"]
        for p in iam.list_role_policies(RoleName=role)["PolicyNames"]
    ]
    for att in iam.list_attached_role_policies(RoleName=role)["AttachedPolicies"]:
        version = iam.get_policy(PolicyArn=att["PolicyArn"])["Policy"]["DefaultVersionId"]
        docs.append(iam.get_policy_version(PolicyArn=att["PolicyArn"], VersionId=version)["PolicyVersion"]["Document"])
    actions: list[str] = []
    for doc in docs:
        for st in _listed((json.loads(doc) if isinstance(doc, str) else doc)["Statement"]):
            if st["Effect"] == "Allow":
                actions += _listed(st["Action"])
    return actions


def _listed(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _allowed(action: str, allowed: list[str]) -> bool:
    return any(fnmatch.fnmatchcase(action.lower(), a.lower()) for a in allowed)

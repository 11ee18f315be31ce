"""The emulator's moto patches: pinned to the tested release, and a clear error when an internal is missing."""

from __future__ import annotations

import contextlib
import json
import os
import re
import time
import tomllib
from collections.abc import Callable, Iterator
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from iotpm.emulator import server

ROOT = Path(__file__).resolve().parents[2]


def test_the_installed_moto_has_every_internal_the_emulator_patches() -> None:
    assert server.missing_internals() == [], "moto changed: update src/iotpm/emulator/server.py and its pin"


def test_moto_is_pinned_to_the_release_the_patches_were_tested_with() -> None:
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    pins = [d for deps in extras.values() for d in deps if d.startswith("moto")]
    assert pins == [f"moto[server]=={server.TESTED_MOTO}"]
    assert version("moto") == server.TESTED_MOTO


@pytest.mark.parametrize("target", sorted(server.PATCHED))
def test_a_missing_internal_stops_the_emulator_with_its_name(monkeypatch: pytest.MonkeyPatch, target: str) -> None:
    import importlib

    module, _, attrs = target.partition(":")
    *path, last = attrs.split(".")
    owner = importlib.import_module(module)
    for attr in path:
        owner = getattr(owner, attr)
    monkeypatch.delattr(owner, last)
    with pytest.raises(RuntimeError, match=re.escape(target)) as err:
        server.check_moto()
    assert f"moto[server]=={server.TESTED_MOTO}" in str(err.value)


def test_every_patch_names_what_it_works_around() -> None:
    assert all(len(why.split()) >= 3 for why in server.PATCHED.values())
    source = Path(server.__file__).read_text()
    for target in server.PATCHED:
        assert target.rpartition(".")[2].split(":")[-1] in source, f"{target} is listed but never patched"


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from("abc"), inner, max_size=3),
    max_leaves=8,
)
bodies = st.one_of(
    st.none(),
    json_values.map(json.dumps),
    json_values.map(lambda v: json.dumps(v).encode()),
    st.text(max_size=8),  # not JSON at all
)


@settings(max_examples=300, deadline=None)
@given(
    body=bodies,
    query=st.dictionaries(st.sampled_from("ab"), st.lists(st.text(max_size=2), min_size=1, max_size=2), max_size=2),
    uri=st.none() | st.dictionaries(st.sampled_from("bc"), st.integers(), max_size=2),
    names=st.lists(st.sampled_from("abcd"), min_size=1, max_size=4),
)
def test_the_body_parsed_once_answers_every_parameter_as_stock_moto_does(
    body: Any, query: dict[str, list[str]], uri: dict[str, int] | None, names: list[str]
) -> None:
    from moto.core.responses import BaseResponse

    stock = BaseResponse._get_param
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(BaseResponse, "_get_param", stock)  # restored after the test
        server._json_body_parsed_once()
        once = BaseResponse._get_param
        response = BaseResponse("kinesis")
        response.body, response.querystring = body, query
        setattr(response, "uri_match", uri)  # noqa: B010 - None when no path parameters, which moto's type leaves out
        for name in names:  # repeated reads hit the parsed body
            assert once(response, name, "absent") == stock(response, name, "absent")
        response.body = json.dumps({"a": "replaced"})  # a handler that sets a new body is read anew
        assert once(response, "a") == stock(response, "a")


@contextlib.contextmanager
def in_process_moto(owner: Any, names: tuple[str, ...], patch: Callable[[], None] | None) -> Iterator[None]:
    """In-process moto, with ``patch`` applied (if any) and ``owner``'s ``names`` restored afterwards."""
    from moto import mock_aws

    with pytest.MonkeyPatch.context() as mp, mock_aws():
        for name in [k for k in os.environ if k.startswith("AWS_ENDPOINT_URL")]:
            mp.delenv(name)  # the integration tests' emulator: in-process moto here
        for name in names:
            mp.setattr(owner, name, getattr(owner, name))
        if patch is not None:
            patch()
        yield


def in_process_client(service: str) -> Any:
    import boto3

    return boto3.client(service, region_name="eu-west-1", aws_access_key_id="t", aws_secret_access_key="t")


def _kinesis_round_trip(records: list[tuple[str, bytes]], direct: bool) -> tuple[Any, Any]:
    """What botocore parses from PutRecords and GetRecords on a fresh in-process moto."""
    from moto.kinesis.responses import KinesisResponse

    with in_process_moto(
        KinesisResponse, ("put_records", "get_records"), server._direct_kinesis_answers if direct else None
    ):
        kinesis = in_process_client("kinesis")
        kinesis.create_stream(StreamName="s", ShardCount=2)
        put = kinesis.put_records(StreamName="s", Records=[{"PartitionKey": k, "Data": d} for k, d in records])
        got = []
        for shard in kinesis.describe_stream(StreamName="s")["StreamDescription"]["Shards"]:
            iterator = kinesis.get_shard_iterator(
                StreamName="s", ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
            )["ShardIterator"]
            answer = kinesis.get_records(ShardIterator=iterator, Limit=1000)
            for r in answer["Records"]:
                assert r.pop("ApproximateArrivalTimestamp").tzinfo is not None  # a time, as botocore parses it
            after = kinesis.get_records(ShardIterator=answer["NextShardIterator"])["Records"]  # it reads on
            got.append((answer["Records"], answer["MillisBehindLatest"], after))
        put.pop("ResponseMetadata")
        return put, got


@settings(max_examples=10, deadline=None)
@given(st.lists(st.tuples(st.text(min_size=1, max_size=6), st.binary(max_size=40)), min_size=1, max_size=25))
def test_direct_kinesis_answers_parse_as_stock_motos_do(records: list[tuple[str, bytes]]) -> None:
    assert _kinesis_round_trip(records, direct=True) == _kinesis_round_trip(records, direct=False)


def _queries(items: list[tuple[str, str]], asks: list[tuple[str, str, int | None, bool]], partition: bool) -> Any:
    """Every page of each query, on a fresh in-process moto, with or without the partition patch."""
    from moto.dynamodb.models.table import Table

    with in_process_moto(Table, ("query", "all_items"), server._dynamodb_partition_queries if partition else None):
        ddb = in_process_client("dynamodb")
        ddb.create_table(
            TableName="t",
            KeySchema=[{"AttributeName": "p", "KeyType": "HASH"}, {"AttributeName": "s", "KeyType": "RANGE"}],
            AttributeDefinitions=[{"AttributeName": a, "AttributeType": "S"} for a in ("p", "s", "g")],
            GlobalSecondaryIndexes=[
                {
                    "IndexName": "by-g",
                    "KeySchema": [{"AttributeName": "g", "KeyType": "HASH"}],
                    "Projection": {"ProjectionType": "KEYS_ONLY"},
                }
            ],
            BillingMode="PAY_PER_REQUEST",
        )
        for p, sk in items:
            ddb.put_item(TableName="t", Item={"p": {"S": p}, "s": {"S": sk}, "g": {"S": sk[:1]}})
        out = []
        for p, low, limit, forward in asks:
            for kwargs in (
                {
                    "KeyConditionExpression": "p = :p AND s > :k",
                    "ExpressionAttributeValues": {":p": {"S": p}, ":k": {"S": low}},
                },
                {
                    "IndexName": "by-g",
                    "KeyConditionExpression": "g = :g",
                    "ExpressionAttributeValues": {":g": {"S": low[:1] or "a"}},
                },
            ):
                pages, start = [], None
                while True:
                    extra = ({"Limit": limit} if limit else {}) | ({"ExclusiveStartKey": start} if start else {})
                    got = ddb.query(TableName="t", ScanIndexForward=forward, **kwargs, **extra)
                    pages.append((got["Items"], got["Count"]))
                    start = got.get("LastEvaluatedKey")
                    if not start:
                        break
                out.append(pages)
        return out


keys = st.text(alphabet="abc", min_size=1, max_size=3)


@settings(max_examples=15, deadline=None)
@given(
    st.lists(st.tuples(st.sampled_from(["p1", "p2", "~log#0"]), keys), max_size=25, unique=True),
    st.lists(
        st.tuples(st.sampled_from(["p1", "p2", "~log#0", "none"]), keys, st.none() | st.integers(1, 4), st.booleans()),
        min_size=1,
        max_size=4,
    ),
)
def test_a_query_reading_one_partition_answers_as_stock_moto(
    items: list[tuple[str, str]], asks: list[tuple[str, str, int | None, bool]]
) -> None:
    assert _queries(items, asks, partition=True) == _queries(items, asks, partition=False)


@contextlib.contextmanager
def _rules_moto(patched: bool) -> Iterator[None]:
    """In-process moto with (or without) the rule-retry patch, stock moto's methods restored after."""
    from moto.ec2.models.security_groups import SecurityGroupBackend, SecurityGroupRule

    names = ("authorize_security_group_egress", "authorize_security_group_ingress")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(SecurityGroupRule, "__init__", SecurityGroupRule.__init__)  # the patch wraps it
        with in_process_moto(SecurityGroupBackend, names, server._rule_create_retries_answered if patched else None):
            yield


def _rule_requests(patched: bool, ages_s: tuple[float, ...]) -> list[str]:
    """Each egress request's outcome on a fresh in-process moto: the rule id it answered, or the error code.

    The first request creates a rule; each later one repeats it after ``ages_s`` seconds
    (the clock the patch reads is moved on, not slept).
    """
    from botocore.exceptions import ClientError

    outcomes = []
    with _rules_moto(patched), pytest.MonkeyPatch.context() as mp:
        ec2 = in_process_client("ec2")
        vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
        group = ec2.create_security_group(GroupName="g", Description="d", VpcId=vpc)["GroupId"]
        rule = {"IpProtocol": "tcp", "FromPort": 443, "ToPort": 443,
                "IpRanges": [{"CidrIp": "10.0.0.0/16", "Description": "HTTPS"}]}  # fmt: skip
        clock = [1000.0]
        mp.setattr("time.monotonic", lambda: clock[0])
        for age in (0.0, *ages_s):
            clock[0] = 1000.0 + age
            try:
                answer = ec2.authorize_security_group_egress(GroupId=group, IpPermissions=[rule])
                outcomes.append(answer["SecurityGroupRules"][0]["SecurityGroupRuleId"])
            except ClientError as err:
                outcomes.append(err.response["Error"]["Code"])
        listed = ec2.describe_security_group_rules(Filters=[{"Name": "group-id", "Values": [group]}])
        held = [r["SecurityGroupRuleId"] for r in listed["SecurityGroupRules"] if r["IsEgress"]]
        assert len(set(held)) == len(held)
        outcomes.append(f"rules held: {len(held)}")
    return outcomes


def test_a_retried_rule_create_is_answered_with_the_rule_its_first_attempt_made() -> None:
    first, retry, held = _rule_requests(True, (2.0,))
    assert retry == first and held == "rules held: 2"  # the default allow-all egress rule and this one


def test_a_rule_repeated_after_the_retry_window_is_a_duplicate_as_on_aws() -> None:
    assert _rule_requests(True, (server.RULE_RETRY_WINDOW_S + 1,))[1] == "InvalidPermission.Duplicate"
    assert _rule_requests(False, (2.0,))[1] == "InvalidPermission.Duplicate"  # stock moto, the failure seen


def test_a_rule_that_differs_only_in_its_description_is_still_a_duplicate() -> None:
    from botocore.exceptions import ClientError

    with _rules_moto(True):
        ec2 = in_process_client("ec2")
        vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
        group = ec2.create_security_group(GroupName="g", Description="d", VpcId=vpc)["GroupId"]
        rule = {"IpProtocol": "tcp", "FromPort": 443, "ToPort": 443, "IpRanges": [{"CidrIp": "10.1.0.0/16"}]}
        ec2.authorize_security_group_ingress(GroupId=group, IpPermissions=[rule])
        assert ec2.authorize_security_group_ingress(GroupId=group, IpPermissions=[rule])["Return"]
        rule["IpRanges"] = [{"CidrIp": "10.1.0.0/16", "Description": "another"}]
        with pytest.raises(ClientError, match=r"InvalidPermission\.Duplicate"):
            ec2.authorize_security_group_ingress(GroupId=group, IpPermissions=[rule])


def _vpcs_after(attempts: list[tuple[str | None, str]], patched: bool) -> tuple[list[str], int]:
    """Each CreateVpc's answer on moto's server app (in process), and how many such VPCs exist after."""
    import uuid

    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
    from werkzeug.test import Client

    cidr = f"10.{uuid.uuid4().int % 200 + 20}.0.0/16"  # moto's state is process-wide: a block of this test's own
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(DomainDispatcherApplication, "__call__", DomainDispatcherApplication.__call__)
        if patched:
            server._retried_requests_answered_once()
        app = Client(DomainDispatcherApplication(create_backend_app))
        auth = "AWS4-HMAC-SHA256 Credential=t/20261207/eu-south-2/ec2/aws4_request, SignedHeaders=host, Signature=x"
        base = {"Authorization": auth, "Content-Type": "application/x-www-form-urlencoded"}
        answers = []
        for call, attempt in attempts:
            headers = base | ({"amz-sdk-invocation-id": call, "amz-sdk-request": attempt} if call else {})
            got = app.post("/", data=f"Action=CreateVpc&CidrBlock={cidr}&Version=2016-11-15", headers=headers)
            answers.append(re.sub(r"<requestId>.*?</requestId>", "", got.get_data(as_text=True)))
        query = f"Action=DescribeVpcs&Filter.1.Name=cidr&Filter.1.Value.1={cidr}&Version=2016-11-15"
        listed = app.post("/", data=query, headers=base).get_data(as_text=True)
    return answers, listed.count("<vpcId>")


def test_a_retried_call_gets_its_first_answer_and_has_one_effect() -> None:
    """The SDK lost attempt 1's answer and sent attempt 2 (same invocation id): one VPC, the same answer."""
    answers, made = _vpcs_after([("call-1", "attempt=1; max=2"), ("call-1", "attempt=2; max=2")], patched=True)
    assert answers[0] == answers[1] and made == 1
    _, stock = _vpcs_after([("call-2", "attempt=1; max=2"), ("call-2", "attempt=2; max=2")], patched=False)
    assert stock == 2  # stock moto runs it twice: the flake's cause


def test_new_calls_and_calls_without_an_invocation_id_each_run() -> None:
    calls = [("call-3", "attempt=1; max=2"), ("call-4", "attempt=1; max=2"), (None, ""), (None, "")]
    answers, made = _vpcs_after(calls, patched=True)
    assert made == 4 and len(set(answers)) == 4


def test_the_get_records_answers_kept_stay_bounded_however_many_records_are_read(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from moto.kinesis.responses import KinesisResponse

    kept = server.RecentAnswers(limit=300)
    monkeypatch.setattr(server, "KINESIS_RECORD_JSON", kept)
    with in_process_moto(KinesisResponse, ("put_records", "get_records"), server._direct_kinesis_answers):
        kinesis = in_process_client("kinesis")
        kinesis.create_stream(StreamName="s", ShardCount=1)
        shard = kinesis.describe_stream(StreamName="s")["StreamDescription"]["Shards"][0]["ShardId"]
        iterator = kinesis.get_shard_iterator(StreamName="s", ShardId=shard, ShardIteratorType="TRIM_HORIZON")
        following, read, sizes = iterator["ShardIterator"], [], []
        for n in range(12):  # 2,400 records in all, 8 times what is kept
            batch = [{"PartitionKey": "d", "Data": f"{n}-{i}".encode()} for i in range(200)]
            kinesis.put_records(StreamName="s", Records=batch)
            got = kinesis.get_records(ShardIterator=following, Limit=1000)
            read += [r["Data"] for r in got["Records"]]
            following = got["NextShardIterator"]
            sizes.append(len(kept))
        again = kinesis.get_shard_iterator(StreamName="s", ShardId=shard, ShardIteratorType="TRIM_HORIZON")
        first = kinesis.get_records(ShardIterator=again["ShardIterator"], Limit=250)["Records"]  # long dropped
    assert read == [f"{n}-{i}".encode() for n in range(12) for i in range(200)]
    assert sizes[:2] == [200, 300] and max(sizes) == 300  # it fills up to its limit, then stays there
    assert [r["Data"] for r in first] == read[:250]  # records whose answer was dropped are written anew
    assert len(kept) == 300


def _puts(patched: bool) -> list[Any]:
    """Where PutRecords puts records on a fresh in-process moto, with or without the shard lookup patch."""
    from moto.kinesis.models import Shard, Stream

    with pytest.MonkeyPatch.context() as mp:
        for name in ("get_records", "get_max_sequence_number", "get_min_sequence_number", "put_record"):
            mp.setattr(Shard, name, getattr(Shard, name))  # restored after the test
        with in_process_moto(Stream, ("put_record",), server._fast_kinesis_shards if patched else None):
            kinesis = in_process_client("kinesis")
            kinesis.create_stream(StreamName="s", ShardCount=4)
            out = []
            for n in range(3):
                keys = [f"device-{i % 37}" for i in range(n * 100, n * 100 + 100)]
                records: list[Any] = [{"PartitionKey": k, "Data": k.encode()} for k in keys]
                records += [{"PartitionKey": "x", "ExplicitHashKey": str(2**126 * h), "Data": b"e"} for h in range(4)]
                out.append(kinesis.put_records(StreamName="s", Records=records)["Records"])
            kinesis.update_shard_count(StreamName="s", TargetShardCount=2, ScalingType="UNIFORM_SCALING")
            out.append(
                kinesis.put_records(StreamName="s", Records=[{"PartitionKey": "device-1", "Data": b"d"}])["Records"]
            )
            return out


def test_a_put_finds_the_shard_stock_moto_finds_for_each_key_and_after_a_reshard() -> None:
    got = _puts(patched=True)
    assert got == _puts(patched=False)
    assert len({r["ShardId"] for r in got[0]}) == 4  # the keys spread over every shard


def _shard_records(patched: bool) -> tuple[list[dict[str, Any]], float, float]:
    """Every record's attributes in the shards after two puts, with or without the patched put, and when
    the puts began and ended (epoch seconds)."""
    from moto.kinesis.models import Shard, Stream
    from moto.kinesis.models import kinesis_backends as backends

    with pytest.MonkeyPatch.context() as mp:
        for name in ("get_records", "get_max_sequence_number", "get_min_sequence_number", "put_record"):
            mp.setattr(Shard, name, getattr(Shard, name))
        with in_process_moto(Stream, ("put_record",), server._fast_kinesis_shards if patched else None):
            kinesis = in_process_client("kinesis")
            kinesis.create_stream(StreamName="s", ShardCount=2)
            began = time.time()
            for n in range(2):
                kinesis.put_records(StreamName="s", Records=[{"PartitionKey": f"k{i}", "Data": f"{n}{i}".encode()}
                                                             for i in range(20)])  # fmt: skip
            ended = time.time()
            stream = backends["123456789012"]["eu-west-1"].streams["s"]
            records = [vars(r).copy() for shard in stream.shards.values() for r in shard.records.values()]
            return records, began, ended


def test_a_record_put_holds_what_stock_motos_holds_with_its_arrival_read_once() -> None:
    from moto.core.utils import unix_time

    got, began, ended = _shard_records(patched=True)
    stock, _, _ = _shard_records(patched=False)
    for r in got:  # the arrival: a naive UTC datetime and its epoch seconds, within the puts
        assert r["created_at_datetime"].tzinfo is None
        assert unix_time(r.pop("created_at_datetime")) == pytest.approx(r["created_at"], abs=1e-6)
        assert began - 0.001 <= r.pop("created_at") <= ended + 0.001
    for r in stock:
        del r["created_at_datetime"], r["created_at"]
    assert got == stock and len(got) == 40


def _item_actions(direct: bool) -> list[Any]:
    """What botocore parses from every DynamoDB item action on a fresh in-process moto, with or without
    the direct answers; items hold every attribute type."""
    from moto.dynamodb.responses import DynamoHandler

    with in_process_moto(DynamoHandler, ("serialized",), server._direct_dynamodb_answers if direct else None):
        ddb = in_process_client("dynamodb")
        ddb.create_table(
            TableName="t",
            KeySchema=[{"AttributeName": "p", "KeyType": "HASH"}, {"AttributeName": "s", "KeyType": "RANGE"}],
            AttributeDefinitions=[{"AttributeName": a, "AttributeType": "S"} for a in ("p", "s")],
            BillingMode="PAY_PER_REQUEST",
        )
        every: dict[str, Any] = {
            "str": {"S": "é"}, "num": {"N": "1.50"}, "bin": {"B": bytes(range(5))}, "yes": {"BOOL": True},
            "nil": {"NULL": True}, "list": {"L": [{"N": "2"}, {"M": {"x": {"S": "y"}}}]},
            "map": {"M": {"b": {"B": b"\x00"}, "ss": {"SS": ["a", "b"]}}}, "ss": {"SS": ["q"]},
            "ns": {"NS": ["1", "2.5"]}, "bs": {"BS": [b"x", b"\xff"]},
        }  # fmt: skip
        cap = {"ReturnConsumedCapacity": "TOTAL"}
        out: list[Any] = []
        for i in range(5):
            key = {"p": {"S": "a"}, "s": {"S": f"{i}"}}
            out.append(ddb.put_item(TableName="t", Item={**key, **every}, ReturnValues="ALL_OLD", **cap))
        out.append(ddb.put_item(TableName="t", Item={**key, "str": {"S": "z"}}, ReturnValues="ALL_OLD"))
        values = {":n": {"N": "3"}}
        out.append(ddb.update_item(TableName="t", Key=key, UpdateExpression="SET num = :n",
                                   ExpressionAttributeValues=values, ReturnValues="ALL_NEW", **cap))  # fmt: skip
        out.append(ddb.get_item(TableName="t", Key={"p": {"S": "a"}, "s": {"S": "0"}}, **cap))
        out.append(ddb.get_item(TableName="t", Key={"p": {"S": "none"}, "s": {"S": "0"}}))
        out.append(
            ddb.batch_get_item(RequestItems={"t": {"Keys": [{"p": {"S": "a"}, "s": {"S": f"{i}"}} for i in range(3)]}})
        )
        start = None
        while True:  # pages, each with its LastEvaluatedKey
            extra = {"ExclusiveStartKey": start} if start else {}
            page = ddb.query(TableName="t", KeyConditionExpression="p = :p", Limit=2,
                             ExpressionAttributeValues={":p": {"S": "a"}}, **extra, **cap)  # fmt: skip
            out.append(page)
            if not (start := page.get("LastEvaluatedKey")):
                break
        out.append(ddb.query(TableName="t", KeyConditionExpression="p = :p", Select="COUNT",
                             ExpressionAttributeValues={":p": {"S": "a"}}))  # fmt: skip
        out.append(ddb.scan(TableName="t", ProjectionExpression="bs, #m.b", ExpressionAttributeNames={"#m": "map"}))
        writes = [{"DeleteRequest": {"Key": key}}, {"PutRequest": {"Item": {**key, **every}}}]
        out.append(ddb.batch_write_item(RequestItems={"t": writes}, **cap))
        out.append(ddb.delete_item(TableName="t", Key=key, ReturnValues="ALL_OLD"))
        with pytest.raises(ddb.exceptions.ConditionalCheckFailedException) as failed:  # errors: as stock moto
            ddb.put_item(TableName="t", Item={**key, "s": {"S": "0"}}, ConditionExpression="attribute_not_exists(p)",
                         ReturnValuesOnConditionCheckFailure="ALL_OLD")  # fmt: skip
        out.append(failed.value.response.get("Item"))
        for answer in out:
            if isinstance(answer, dict):
                answer.pop("ResponseMetadata", None)
        return out


def test_direct_dynamodb_answers_parse_as_stock_motos_do() -> None:
    got = _item_actions(direct=True)
    assert got == _item_actions(direct=False)
    assert got[7]["Item"]["bin"] == {"B": bytes(range(5))} and got[7]["ConsumedCapacity"]["TableName"] == "t"

"""The emulator as the twin uses it: connections kept between calls, and a backlog read in full batches."""

from __future__ import annotations

import http.client
import logging
from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from iotpm.emulator import control

REGION = "eu-west-1"


@pytest.fixture(scope="module")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The project's emulator (python -m iotpm.emulator.server) on a free port, stopped afterwards."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("IOTPM_HOME", str(tmp_path_factory.mktemp("iotpm-home")))
        port = control.free_port()
        url = control.start(port).url
        try:
            yield url
        finally:
            control.stop(port)


def client(service: str, url: str) -> Any:
    return boto3.client(service, endpoint_url=url, region_name=REGION, aws_access_key_id="t", aws_secret_access_key="t")


class Connections(logging.Handler):
    """Counts the connections urllib3 opens (each new one, or one reopened after the server closed it)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.opened = 0

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        self.opened += message.startswith(("Starting new HTTP connection", "Resetting dropped connection"))


@pytest.fixture
def connections() -> Iterator[Connections]:
    pool = logging.getLogger("urllib3.connectionpool")
    counter, level = Connections(), pool.level
    pool.addHandler(counter)
    pool.setLevel(logging.DEBUG)
    try:
        yield counter
    finally:
        pool.removeHandler(counter)
        pool.setLevel(level)


def test_one_connection_carries_a_clients_calls_errors_and_bodies_included(
    emulator: str, connections: Connections
) -> None:
    kinesis, s3 = client("kinesis", emulator), client("s3", emulator)
    kinesis.create_stream(StreamName="kept", ShardCount=1)
    for i in range(5):
        kinesis.put_records(StreamName="kept", Records=[{"PartitionKey": f"d{i}", "Data": b"x" * 100}])
    with pytest.raises(kinesis.exceptions.ResourceNotFoundException):  # an error answer leaves it usable
        kinesis.describe_stream(StreamName="absent")
    assert kinesis.describe_stream(StreamName="kept")["StreamDescription"]["StreamName"] == "kept"
    s3.create_bucket(Bucket="kept-bucket", CreateBucketConfiguration={"LocationConstraint": REGION})
    s3.put_object(Bucket="kept-bucket", Key="k", Body=b"y" * 50_000)
    assert s3.get_object(Bucket="kept-bucket", Key="k")["Body"].read() == b"y" * 50_000
    assert connections.opened == 2  # one per client: every call after the first reused it


def test_a_chunked_body_and_an_http_1_0_request_are_answered_and_closed_as_before(emulator: str) -> None:
    host, port = emulator.removeprefix("http://").split(":")
    target = {"X-Amz-Target": "Kinesis_20131202.ListStreams", "Content-Type": "application/x-amz-json-1.1"}
    sign = {"Authorization": "AWS4-HMAC-SHA256 Credential=t/20260101/eu-west-1/kinesis/aws4_request, "
                             "SignedHeaders=host, Signature=0"}  # fmt: skip
    chunked = http.client.HTTPConnection(host, int(port), timeout=30)
    chunked.request("POST", "/", body=iter([b"{", b"}"]), headers={**target, **sign}, encode_chunked=True)
    answer = chunked.getresponse()
    assert answer.status == 200 and "StreamNames" in answer.read().decode()
    assert answer.getheader("Connection") == "close"
    old = http.client.HTTPConnection(host, int(port), timeout=30)
    old._http_vsn, old._http_vsn_str = 10, "HTTP/1.0"  # type: ignore[attr-defined]
    old.request("POST", "/", body=b"{}", headers={**target, **sign})
    answer = old.getresponse()
    assert answer.status == 200 and answer.getheader("Connection") == "close"


def test_a_backlog_is_read_a_full_limit_at_a_time_and_the_same_again_on_a_retry(emulator: str) -> None:
    kinesis = client("kinesis", emulator)
    kinesis.create_stream(StreamName="backlog", ShardCount=1)
    for start in range(0, 2_500, 500):
        kinesis.put_records(
            StreamName="backlog",
            Records=[{"PartitionKey": "d", "Data": f"{i:05d}".encode()} for i in range(start, start + 500)],
        )
    shard = kinesis.describe_stream(StreamName="backlog")["StreamDescription"]["Shards"][0]["ShardId"]
    iterator = kinesis.get_shard_iterator(StreamName="backlog", ShardId=shard, ShardIteratorType="TRIM_HORIZON")
    at = iterator["ShardIterator"]
    sizes, data = [], []
    while True:
        got = kinesis.get_records(ShardIterator=at, Limit=1_000)
        again = kinesis.get_records(ShardIterator=at, Limit=1_000)  # a retry from the same place
        assert again["Records"] == got["Records"]
        if not got["Records"]:
            break
        sizes.append(len(got["Records"]))
        data += [r["Data"] for r in got["Records"]]
        at = got["NextShardIterator"]
    assert sizes == [1_000, 1_000, 500]
    assert data == [f"{i:05d}".encode() for i in range(2_500)]


@pytest.mark.parametrize(
    "body",
    ['{"Records": [], "MillisBehindLatest": 0}', "<R><RequestId>old</RequestId><x/></R>", "", b"\x00binary"],
)
def test_an_answer_is_enriched_as_stock_moto_does_it_without_a_scan_of_bodies_that_hold_no_request_id(
    monkeypatch: pytest.MonkeyPatch, body: str | bytes
) -> None:
    from moto.core.responses import BaseResponse

    from iotpm.emulator import server

    monkeypatch.setattr(BaseResponse, "_enrich_response", BaseResponse.__dict__["_enrich_response"])  # put back after
    stock = BaseResponse._enrich_response
    server._request_id_regex_only_on_xml()
    patched = BaseResponse._enrich_response
    assert patched is not stock
    (stock_headers, stock_body), (headers, answer) = stock({"status": 200}, body), patched({"status": 200}, body)
    assert headers.keys() == stock_headers.keys() and headers["status"] == "200"
    ids = stock_headers["x-amzn-requestid"], headers["x-amzn-requestid"]
    expected = stock_body.replace(*ids) if isinstance(stock_body, str) else stock_body
    assert answer == expected  # the XML's RequestId is the answer's own; anything else unchanged

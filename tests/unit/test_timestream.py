"""The Timestream writer's requests: valid for the service's model, one record per reading."""

from __future__ import annotations

from typing import Any

import boto3
from botocore.awsrequest import AWSResponse
from botocore.config import Config
from botocore.validate import validate_parameters
from hypothesis import given, settings
from hypothesis import strategies as st

from iotpm.adapters.timestream import MEASURE_NAME, TimestreamWriter
from iotpm.service.ports import ReadingRow


class _Body:
    def __init__(self, data: bytes) -> None:
        self.data = data

    def stream(self, **_: Any) -> Any:
        yield self.data


def _answer(request: Any, **_: Any) -> AWSResponse:
    """What Timestream answers, without a network: its endpoint for discovery, else success."""
    target = str(request.headers.get("X-Amz-Target", ""))
    endpoints = b'{"Endpoints":[{"Address":"ingest.example.com","CachePeriodInMinutes":1}]}'
    body = endpoints if "Describe" in target else b"{}"
    response = AWSResponse(request.url, 200, {}, _Body(body))
    response._content = body
    return response


def writer() -> tuple[TimestreamWriter, list[dict[str, Any]]]:
    # the processor's client skips botocore's own validation, so this test does it
    client = boto3.client(
        "timestream-write",
        region_name="eu-west-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
        config=Config(parameter_validation=False),
    )
    calls: list[dict[str, Any]] = []
    client.meta.events.register("before-send", _answer)
    client.meta.events.register(
        "provide-client-params.timestream-write.WriteRecords", lambda params, **_: calls.append(params)
    )
    return TimestreamWriter(client, "db", "readings", workers=3), calls


rows = st.builds(
    ReadingRow,
    device_id=st.sampled_from(["pump-0001", "motor-7", "compressor-0002"]),
    ts_ms=st.integers(1_700_000_000_000, 1_900_000_000_000),
    key=st.just("k"),
    seq=st.none(),
    site=st.just("plant-1"),
    line=st.sampled_from(["line-1", "line-2"]),
    device_type=st.sampled_from(["pump", "motor"]),
    metrics=st.dictionaries(
        st.sampled_from(["temperature", "vibration", "pressure"]),
        st.floats(-1e6, 1e6, allow_nan=False),
        min_size=1,
    ),
    score=st.floats(0, 1e3, allow_nan=False),
    anomaly=st.booleans(),
    expires_at=st.just(0),
)


@settings(max_examples=40, deadline=None)
@given(st.lists(rows, max_size=350))
def test_every_reading_is_one_valid_record_with_the_calls_common_attributes(batch: list[ReadingRow]) -> None:
    ts, calls = writer()
    assert ts.write(batch) == (0, {})
    shape = ts.client.meta.service_model.operation_model("WriteRecords").input_shape
    sent = []
    for params in calls:
        validate_parameters(params, shape)  # raises on anything AWS's model refuses
        assert 1 <= len(params["Records"]) <= 100
        sent += [{**params["CommonAttributes"], **r} for r in params["Records"]]  # as Timestream merges them
    assert len(sent) == len(batch)
    assert {(r["MeasureName"], r["MeasureValueType"], r["TimeUnit"]) for r in sent} <= {
        (MEASURE_NAME, "MULTI", "MILLISECONDS")
    }

    def sent_as(record: dict[str, Any]) -> tuple[Any, ...]:
        dims = {d["Name"]: d["Value"] for d in record["Dimensions"]}
        values = {m["Name"]: float(m["Value"]) for m in record["MeasureValues"]}
        return int(record["Time"]), dims, sorted(values.items())

    def expected(row: ReadingRow) -> tuple[Any, ...]:
        dims = {"device_id": row.device_id, "site": row.site, "line": row.line, "device_type": row.device_type}
        return row.ts_ms, dims, sorted({**row.metrics, "anomaly_score": row.score}.items())

    assert sorted(map(sent_as, sent), key=repr) == sorted(map(expected, batch), key=repr)

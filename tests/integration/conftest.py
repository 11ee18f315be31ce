"""The AWS endpoint for integration tests: ``AWS_ENDPOINT_URL`` if it answers (e.g. a real
LocalStack), otherwise the project's own emulator, started here and stopped afterwards."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config

from iotpm.adapters.dynamodb import TableNames, create_tables
from iotpm.composition import Settings
from iotpm.emulator import control

# Not us-east-1 (botocore's and many tools' fallback), so a region taken from anywhere but
# the runtime shows up as a wrong endpoint or a missing resource here.
REGION = "eu-west-1"


@pytest.fixture(scope="session")
def endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    given = os.environ.get("AWS_ENDPOINT_URL")
    if given and control.answering(given):
        yield given
        return
    os.environ["IOTPM_HOME"] = str(tmp_path_factory.mktemp("iotpm-home"))
    port = control.free_port()
    st = control.start(port)
    os.environ["AWS_ENDPOINT_URL"] = st.url
    try:
        yield st.url
    finally:
        control.stop(port)
        os.environ.pop("AWS_ENDPOINT_URL", None)


@pytest.fixture(scope="session", autouse=True)
def _credentials() -> None:
    for key, value in {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test"}.items():
        os.environ.setdefault(key, value)
    # As the Lambda runtime sets them (AWS_REGION is the one the code must follow).
    os.environ["AWS_REGION"] = os.environ["AWS_DEFAULT_REGION"] = REGION
    os.environ.pop("IOTPM_REGION", None)


def client(service: str, endpoint: str, attempts: int = 4) -> Any:
    config = Config(region_name=REGION, retries={"mode": "standard", "max_attempts": attempts})
    return boto3.client(service, endpoint_url=endpoint, config=config)  # type: ignore[call-overload]


class Environment:
    """One test's resources on the endpoint, with unique names."""

    def __init__(self, endpoint: str, timestream: bool = True) -> None:
        self.endpoint = endpoint
        tag = uuid.uuid4().hex[:8]
        self.names = TableNames(f"t{tag}-readings", f"t{tag}-devices", f"t{tag}-anomalies", f"t{tag}-rollups")
        self.ddb, self.s3, self.sns, self.sqs = (client(s, endpoint) for s in ("dynamodb", "s3", "sns", "sqs"))
        create_tables(self.ddb, self.names)
        self.bucket = f"iotpm-test-{tag}"
        # Outside us-east-1 S3 needs the region named (as Terraform names it for the archive).
        self.s3.create_bucket(Bucket=self.bucket, CreateBucketConfiguration={"LocationConstraint": REGION})
        self.topic = self.sns.create_topic(Name=f"alerts-{tag}")["TopicArn"]
        queue = self.sqs.create_queue(QueueName=f"alerts-{tag}")["QueueUrl"]
        arn = self.sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        self.sns.subscribe(
            TopicArn=self.topic, Protocol="sqs", Endpoint=arn, Attributes={"RawMessageDelivery": "false"}
        )
        self.queue = queue
        self.ts_db, self.ts_table = f"db{tag}", "readings"
        if timestream:
            self.ts = client("timestream-write", endpoint)
            self.ts.create_database(DatabaseName=self.ts_db)
            self.ts.create_table(DatabaseName=self.ts_db, TableName=self.ts_table)
        self.settings = Settings(
            readings_table=self.names.readings,
            devices_table=self.names.devices,
            anomalies_table=self.names.anomalies,
            rollups_table=self.names.rollups,
            archive_bucket=self.bucket,
            alerts_topic_arn=self.topic,
            timestream_enabled=timestream,
            timestream_database=self.ts_db,
            timestream_table=self.ts_table,
        )


@pytest.fixture
def env(endpoint: str) -> Environment:
    return Environment(endpoint)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.integration)

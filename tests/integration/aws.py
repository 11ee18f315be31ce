"""What the integration tests build on the endpoint: clients in the test region and one test's resources.

Imported by the tier's tests and its ``conftest.py`` (which holds the fixtures only).
"""

from __future__ import annotations

import uuid
from typing import Any

import boto3
from botocore.config import Config

from iotpm.adapters.dynamodb import TableNames, create_tables
from iotpm.composition import Settings

# Not us-east-1 (botocore's and many tools' fallback), so a region taken from anywhere but
# the runtime shows up as a wrong endpoint or a missing resource here.
REGION = "eu-west-1"
#: the DynamoDB backends of the adapters' tests: the emulator and AWS's own engine
DYNAMODB_BACKENDS = ("moto", "dynamodb-local")


def client(service: str, endpoint: str, attempts: int = 4) -> Any:
    config = Config(region_name=REGION, retries={"mode": "standard", "max_attempts": attempts})
    return boto3.client(service, endpoint_url=endpoint, config=config)  # type: ignore[call-overload]


class Environment:
    """One test's resources on the endpoint, with unique names."""

    def __init__(self, endpoint: str, timestream: bool = True, dynamodb: str | None = None) -> None:
        """``dynamodb``: DynamoDB's endpoint when it is not ``endpoint`` (DynamoDB Local)."""
        self.endpoint = endpoint
        tag = uuid.uuid4().hex[:8]
        self.names = TableNames(f"t{tag}-readings", f"t{tag}-devices", f"t{tag}-anomalies", f"t{tag}-rollups")
        self.s3, self.sns, self.sqs = (client(s, endpoint) for s in ("s3", "sns", "sqs"))
        self.ddb = client("dynamodb", dynamodb or endpoint)
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

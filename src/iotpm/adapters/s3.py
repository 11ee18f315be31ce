"""The S3 archive: raw records and quarantined ones as gzip JSON Lines."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from iotpm.adapters.errors import aws_call
from iotpm.service.ports import ArchiveObject
from iotpm.service.processor import encode_lines


class S3Archive:
    """:class:`~iotpm.service.ports.Archive` on one bucket (keys carry Hive partitions)."""

    def __init__(self, client: Any, bucket: str) -> None:
        self.client, self.bucket = client, bucket

    def put(self, obj: ArchiveObject) -> None:
        body = encode_lines(obj.lines)
        with aws_call(f"PutObject s3://{self.bucket}/{obj.key}"):
            self.client.put_object(
                Bucket=self.bucket,
                Key=obj.key,
                Body=body,
                ContentType="application/x-ndjson",
                ContentEncoding="gzip",
            )

    def download(self, dest: Path, prefixes: Sequence[str] = ("raw/", "quarantine/")) -> int:
        """Copy the archive's objects under ``prefixes`` into ``dest`` (same keys); objects already there are kept.

        An archive key names its batch (shard, first and last sequence number), so a
        key present with the same size is the same object. Returns how many were fetched.
        """
        fetched = 0
        for prefix in prefixes:
            with aws_call(f"ListObjectsV2 s3://{self.bucket}/{prefix}"):
                pages = list(self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix))
            for page in pages:
                for obj in page.get("Contents", []):
                    target = dest / obj["Key"]
                    if target.exists() and target.stat().st_size == obj["Size"]:
                        continue
                    target.parent.mkdir(parents=True, exist_ok=True)
                    with aws_call(f"GetObject s3://{self.bucket}/{obj['Key']}"):
                        body = self.client.get_object(Bucket=self.bucket, Key=obj["Key"])["Body"].read()
                    tmp = target.with_suffix(".part")
                    tmp.write_bytes(body)
                    tmp.replace(target)
                    fetched += 1
        return fetched


class S3Reports:
    """The fleet reports: ``<prefix>/<scope>/<day>/report.{html,json}`` in one bucket."""

    def __init__(self, client: Any, bucket: str, prefix: str = "reports") -> None:
        self.client, self.bucket, self.prefix = client, bucket, prefix

    def put(self, scope: str, day: str, html: str, body: bytes) -> list[str]:
        """Write both renderings; their keys."""
        keys = []
        for name, data, kind in (("report.html", html.encode(), "text/html; charset=utf-8"),
                                 ("report.json", body, "application/json")):  # fmt: skip
            key = f"{self.prefix}/{scope}/{day}/{name}"
            with aws_call(f"PutObject s3://{self.bucket}/{key}"):
                self.client.put_object(Bucket=self.bucket, Key=key, Body=data, ContentType=kind)
            keys.append(key)
        return keys

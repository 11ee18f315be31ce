"""S3: the archive bucket as files, for the compaction job (:class:`iotpm.analytics.compaction.ArchiveFiles`)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from iotpm.adapters.errors import aws_call
from iotpm.analytics.compaction import partition
from iotpm.analytics.duck import PARTITIONS, hour_key
from iotpm.service.errors import StoreError

if TYPE_CHECKING:
    from mypy_boto3_s3.client import S3Client


class S3ArchiveFiles:
    """Lists the Hive partitions level by level (never every key), fetches one hour at a time."""

    def __init__(self, client: S3Client, bucket: str) -> None:
        self.client, self.bucket = client, bucket

    def _prefixes(self, prefix: str) -> list[str]:
        out: list[str] = []
        with aws_call(f"ListObjectsV2 s3://{self.bucket}/{prefix}"):
            for page in self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=prefix, Delimiter="/"
            ):
                out += [p["Prefix"] for p in page.get("CommonPrefixes", [])]
        return out

    def hours(self, prefix: str, since: str | None) -> list[str]:
        """Partitions from ``since`` on: a level's values before ``since``'s are not listed further."""
        level = [f"{prefix}/"]
        for depth in range(len(PARTITIONS)):
            width = 4 + 2 * depth  # YYYY, YYYYMM, YYYYMMDD, YYYYMMDDHH
            found = [p for parent in level for p in self._prefixes(parent)]
            level = [p for p in found if since is None or hour_key(p)[:width] >= since[:width]]
        return sorted(h for h in (hour_key(p) for p in level) if len(h) == 10)

    def fetch(self, prefix: str, hour: str, dest: Path, suffix: str = ".jsonl.gz") -> list[Path]:
        folder = f"{prefix}/{partition(hour)}/"
        paths = []
        with aws_call(f"ListObjectsV2 s3://{self.bucket}/{folder}"):
            keys = [o["Key"] for page in self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=folder) for o in page.get("Contents", [])]  # fmt: skip
        for key in sorted(k for k in keys if k.endswith(suffix)):
            name = key.rsplit("/", 1)[-1]
            if name in ("", ".", "..") or "\\" in name:
                continue  # a key that would leave the folder is not fetched
            target = dest / folder / name
            target.parent.mkdir(parents=True, exist_ok=True)
            with aws_call(f"GetObject s3://{self.bucket}/{key}"):
                target.write_bytes(self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read())
            paths.append(target)
        return paths

    def put_file(self, key: str, path: Path) -> None:
        with aws_call(f"PutObject s3://{self.bucket}/{key}"):
            self.client.put_object(Bucket=self.bucket, Key=key, Body=path.read_bytes(),
                                   ContentType="application/vnd.apache.parquet")  # fmt: skip

    def get_text(self, key: str) -> str | None:
        # listed first: without s3:ListBucket on the key itself (the role lists by prefix only), S3 answers a
        # missing key with 403 AccessDenied rather than 404, and the first run, before any state, would fail
        with aws_call(f"ListObjectsV2 s3://{self.bucket}/{key}"):
            listed = self.client.list_objects_v2(Bucket=self.bucket, Prefix=key, MaxKeys=1)
        if not any(o.get("Key") == key for o in listed.get("Contents", [])):
            return None
        try:
            with aws_call(f"GetObject s3://{self.bucket}/{key}"):
                return str(self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read().decode())
        except StoreError as exc:
            if exc.code in ("NoSuchKey", "404"):
                return None
            raise

    def put_text(self, key: str, text: str) -> None:
        with aws_call(f"PutObject s3://{self.bucket}/{key}"):
            self.client.put_object(Bucket=self.bucket, Key=key, Body=text.encode(), ContentType="application/json")

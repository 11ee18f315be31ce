"""The S3 archive: raw records and quarantined ones as gzip JSON Lines."""

from __future__ import annotations

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

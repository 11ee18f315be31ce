"""S3: the archive (raw records and quarantined ones as gzip JSON Lines) and the shard snapshots."""

from __future__ import annotations

import logging
import zlib
from collections.abc import Sequence
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

import msgspec
from botocore.exceptions import BotoCoreError, ClientError

from iotpm.adapters.dynamodb import device_item, device_record
from iotpm.adapters.errors import aws_call, translate
from iotpm.service.errors import ConflictError
from iotpm.service.ports import ArchiveObject, Snapshot
from iotpm.service.processor import encode_lines

if TYPE_CHECKING:
    from mypy_boto3_s3.client import S3Client
    from mypy_boto3_s3.type_defs import PutObjectRequestTypeDef

LOGGER = logging.getLogger(__name__)


class S3Archive:
    """:class:`~iotpm.service.ports.Archive` on one bucket (keys carry Hive partitions)."""

    def __init__(self, client: S3Client, bucket: str) -> None:
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
        key present with the same size is the same object. A key that would land outside
        ``dest`` (``..`` segments, an absolute path, through a symlink) is refused: logged
        and left out, the other objects are fetched. Returns how many were fetched.
        """
        fetched = 0
        root = dest.resolve()
        for prefix in prefixes:
            with aws_call(f"ListObjectsV2 s3://{self.bucket}/{prefix}"):
                pages = list(self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix))
            for page in pages:
                for obj in page.get("Contents", []):
                    if obj["Key"].endswith("/"):
                        continue  # a console "folder" marker: nothing to copy
                    target = _inside(root, obj["Key"])
                    if target is None:
                        LOGGER.warning(
                            "archive key %r in s3://%s leaves %s: not downloaded", obj["Key"], self.bucket, dest
                        )
                        continue
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


def _inside(root: Path, key: str) -> Path | None:
    """Where ``key`` goes under ``root`` (resolved), or None when it would land anywhere else."""
    parts = PurePosixPath(key).parts
    if not parts or key.startswith("/") or ".." in parts:
        return None
    target = root.joinpath(*parts)
    real = target.resolve()  # a symlink already in the folder may point out of it
    return target if real != root and real.is_relative_to(root) else None


class S3Reports:
    """The fleet reports: ``<prefix>/<scope>/<day>/report.{html,json}`` in one bucket."""

    def __init__(self, client: S3Client, bucket: str, prefix: str = "reports") -> None:
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


def encode_snapshot(snapshot: Snapshot) -> bytes:
    """A snapshot as deflated msgpack: its records as their devices-table items."""
    items = [device_item(r, r.version) for r in snapshot.records.values()]
    body = [items, snapshot.last_key, snapshot.compacted_key, snapshot.compacted_ms]
    return zlib.compress(msgspec.msgpack.encode(body), 6)


def decode_snapshot(data: bytes, tag: str | None) -> Snapshot:
    """Inverse of :func:`encode_snapshot`."""
    items, last_key, compacted_key, compacted_ms = msgspec.msgpack.decode(zlib.decompress(data))
    records = {r.device_id: r for r in (device_record(it) for it in items)}
    return Snapshot(records, last_key, compacted_key, compacted_ms, tag)


class S3Snapshots:
    """:class:`~iotpm.service.ports.SnapshotStore`: one object per shard, written with ``If-Match``.

    The object read last is kept: a GET with ``If-None-Match`` answers 304 while this
    container is the shard's writer, so a batch reads no body. The bucket is not the
    archive's (Object Lock would keep every version of an object rewritten each batch).
    """

    def __init__(self, client: S3Client, bucket: str, prefix: str = "snapshots/") -> None:
        self.client, self.bucket, self.prefix = client, bucket, prefix
        self._held: dict[str, tuple[str, bytes]] = {}

    def _key(self, shard: str) -> str:
        return f"{self.prefix}{shard}.msgpack.z"

    def get(self, shard: str) -> Snapshot:
        held = self._held.get(shard)
        kwargs: dict[str, Any] = {"Bucket": self.bucket, "Key": self._key(shard)}
        if held is not None:
            kwargs["IfNoneMatch"] = held[0]
        try:
            got = self.client.get_object(**kwargs)
        except ClientError as exc:
            status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if held is not None and (status == 304 or code in ("304", "NotModified")):
                return decode_snapshot(held[1], held[0])
            if code in ("NoSuchKey", "404"):
                self._held.pop(shard, None)
                return Snapshot()
            raise translate(exc, f"GetObject s3://{self.bucket}/{self._key(shard)}") from exc
        except BotoCoreError as exc:
            raise translate(exc, f"GetObject s3://{self.bucket}/{self._key(shard)}") from exc
        body, tag = got["Body"].read(), str(got["ETag"])
        self._held[shard] = (tag, body)
        return decode_snapshot(body, tag)

    def shards(self) -> list[str]:
        """The shards that have a snapshot (ListObjectsV2 under the prefix)."""
        out: list[str] = []
        suffix = ".msgpack.z"
        paginator = self.client.get_paginator("list_objects_v2")
        with aws_call(f"ListObjectsV2 s3://{self.bucket}/{self.prefix}"):
            for page in paginator.paginate(Bucket=self.bucket, Prefix=self.prefix):
                for obj in page.get("Contents", []):
                    name = obj["Key"][len(self.prefix) :]
                    if name.endswith(suffix) and "/" not in name:
                        out.append(name[: -len(suffix)])
        return out

    def put(self, shard: str, snapshot: Snapshot) -> None:
        body = encode_snapshot(snapshot)
        request: PutObjectRequestTypeDef = {"Bucket": self.bucket, "Key": self._key(shard), "Body": body}
        if snapshot.tag is not None:
            request["IfMatch"] = snapshot.tag
        else:
            request["IfNoneMatch"] = "*"
        try:
            got = self.client.put_object(**request)
        except ClientError as exc:
            self._held.pop(shard, None)
            code = str(exc.response.get("Error", {}).get("Code", ""))
            error = translate(exc, f"PutObject s3://{self.bucket}/{self._key(shard)}")
            if code in ("PreconditionFailed", "ConditionalRequestConflict"):
                raise ConflictError(str(error), code=code) from exc
            raise error from exc
        except BotoCoreError as exc:
            self._held.pop(shard, None)
            raise translate(exc, f"PutObject s3://{self.bucket}/{self._key(shard)}") from exc
        snapshot.tag = str(got["ETag"])
        self._held[shard] = (snapshot.tag, body)

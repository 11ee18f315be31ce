"""The IoT topic rule's failed messages, and putting them back on the stream.

A message the rule's Kinesis action could not deliver (throttled, the stream or its key
refused) is written by the rule's S3 error action (terraform/modules/iot) as AWS IoT writes
every error action's message: JSON with ``ruleName``, ``topic``, ``clientId``,
``base64OriginalPayload`` and ``failures``. :class:`RuleErrors` lists and reads them and moves
a replayed one under ``replayed/``; :class:`StreamWriter` puts records on the stream.
:func:`rule_record` makes the record the rule would have made (``SELECT *, topic(2) AS
thing_name``, partition key ``${topic(2)}``), so a replayed message reaches the processor as
it would have the first time; the processor's replay protection makes a message replayed
twice count once.
"""

from __future__ import annotations

import base64
import binascii
import json
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from iotpm.adapters.errors import aws_call
from iotpm.service.errors import StoreError

if TYPE_CHECKING:
    from mypy_boto3_kinesis.client import KinesisClient
    from mypy_boto3_kinesis.type_defs import PutRecordsRequestEntryTypeDef
    from mypy_boto3_s3.client import S3Client

#: where the rule's error action writes (terraform/modules/iot: local.error_prefix)
ERROR_PREFIX = "errors/"
#: where a replayed message is moved (same lifecycle: it expires with the bucket's rule)
REPLAYED_PREFIX = "replayed/"
#: the Basic Ingest prefix (``$aws/rules/<rule>/``), which the rule does not see in the topic
BASIC_INGEST = "$aws/rules/"
#: the topic level holding the thing name: the rule's ``topic(2)``, its partition key
THING_SEGMENT = 2
#: the field the rule's SQL adds (iotpm.models.validation.THING_KEY)
THING_FIELD = "thing_name"
#: Kinesis PutRecords limits: records and bytes (data and partition keys) per call
MAX_RECORDS, MAX_BYTES = 500, 5 * 1024 * 1024


class UnreadableMessageError(ValueError):
    """An object under the error prefix that is not an IoT error action message."""


@dataclass(frozen=True, slots=True)
class FailedMessage:
    """One message the rule could not deliver, as its error action kept it."""

    key: str
    topic: str
    payload: bytes
    failures: tuple[str, ...]

    def record(self) -> tuple[str, bytes]:
        """(partition key, data) as the rule makes them for this message."""
        return rule_record(self.topic, self.payload)


def rule_record(topic: str, payload: bytes) -> tuple[str, bytes]:
    """(partition key, record data) for one MQTT message, as the topic rule makes them.

    The same as the local bridge's ``enrich`` (a unit test holds the two together): the thing
    from the topic is the partition key, and is added to a JSON object; anything else goes
    through unchanged (the processor quarantines what it cannot read). A message published
    through Basic Ingest (``$aws/rules/<rule>/...``) is seen by the rule without that prefix.
    """
    if topic.startswith(BASIC_INGEST):
        topic = topic[len(BASIC_INGEST) :].partition("/")[2]
    parts = topic.split("/")
    thing = parts[THING_SEGMENT - 1] if len(parts) > THING_SEGMENT else topic
    try:
        obj = json.loads(payload)
    except (ValueError, UnicodeDecodeError):
        return thing, payload
    if not isinstance(obj, dict):
        return thing, payload
    obj[THING_FIELD] = thing
    return thing, json.dumps(obj, separators=(",", ":")).encode()


def parse_error_message(key: str, body: bytes) -> FailedMessage:
    """The failed message in one error action object; :class:`UnreadableMessageError` if it is none."""
    try:
        doc = json.loads(body)
        topic, encoded = doc["topic"], doc["base64OriginalPayload"]
        payload = base64.b64decode(encoded, validate=True)
    except (ValueError, KeyError, TypeError, binascii.Error) as exc:
        raise UnreadableMessageError(f"{key}: not an IoT rule error message ({exc})") from exc
    if not isinstance(topic, str) or not topic:
        raise UnreadableMessageError(f"{key}: no topic")
    failures = tuple(str(f.get("errorMessage", "")) for f in doc.get("failures") or [] if isinstance(f, dict))
    return FailedMessage(key, topic, payload, failures)


class RuleErrors:
    """The rule-errors bucket: the messages waiting under ``prefix``, oldest first."""

    def __init__(self, client: S3Client, bucket: str, prefix: str = ERROR_PREFIX) -> None:
        self.client, self.bucket, self.prefix = client, bucket, prefix

    def keys(self) -> list[str]:
        """Every waiting object's key, in the order the rule wrote them (then by key)."""
        objects: list[tuple[Any, str]] = []
        with aws_call(f"ListObjectsV2 s3://{self.bucket}/{self.prefix}"):
            for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=self.prefix):
                objects += [(o["LastModified"], o["Key"]) for o in page.get("Contents", [])]
        return [key for _, key in sorted(objects)]

    def read(self, key: str) -> FailedMessage:
        with aws_call(f"GetObject s3://{self.bucket}/{key}"):
            body = self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read()
        return parse_error_message(key, body)

    def messages(self, keys: Sequence[str]) -> Iterator[FailedMessage | UnreadableMessageError]:
        """Each key's message, or the error saying why it is not one."""
        for key in keys:
            try:
                yield self.read(key)
            except UnreadableMessageError as exc:
                yield exc

    def mark_replayed(self, key: str) -> str:
        """Move a replayed message under ``replayed/`` (kept for audit until it expires); its new key."""
        target = REPLAYED_PREFIX + key.removeprefix(self.prefix)
        with aws_call(f"CopyObject s3://{self.bucket}/{key}"):
            self.client.copy_object(Bucket=self.bucket, Key=target, CopySource={"Bucket": self.bucket, "Key": key})
        with aws_call(f"DeleteObject s3://{self.bucket}/{key}"):
            self.client.delete_object(Bucket=self.bucket, Key=key)
        return target


class StreamWriter:
    """PutRecords to one stream, resending exactly the records Kinesis reports as failed."""

    def __init__(
        self, client: KinesisClient, stream: str, attempts: int = 5, sleep: Callable[[float], None] = time.sleep
    ) -> None:
        self.client, self.stream, self.attempts, self.sleep = client, stream, attempts, sleep

    def put(self, records: Sequence[tuple[str, bytes]]) -> list[bool]:
        """Put ``(partition key, data)`` records; whether each one was put (after bounded retries)."""
        done = [False] * len(records)
        for chunk in _chunks(list(range(len(records))), records):
            pending = chunk
            for attempt in range(self.attempts):
                pending = self._put_once(pending, records, done)
                if not pending:
                    break
                self.sleep(min(0.1 * 2**attempt, 2.0))
        return done

    def _put_once(self, indices: list[int], records: Sequence[tuple[str, bytes]], done: list[bool]) -> list[int]:
        entries: list[PutRecordsRequestEntryTypeDef] = [
            {"PartitionKey": records[i][0], "Data": records[i][1]} for i in indices
        ]
        try:
            with aws_call(f"PutRecords {self.stream}"):
                got = self.client.put_records(StreamName=self.stream, Records=entries)["Records"]
        except StoreError as exc:
            if exc.retryable:  # throttled or a 5xx: the whole call again
                return indices
            raise
        failed = []
        for i, result in zip(indices, got, strict=True):
            if "ErrorCode" in result:
                failed.append(i)
            else:
                done[i] = True
        return failed


def _chunks(indices: list[int], records: Sequence[tuple[str, bytes]]) -> Iterator[list[int]]:
    """Runs of ``indices`` within PutRecords' limits, in order."""
    chunk: list[int] = []
    size = 0
    for i in indices:
        n = len(records[i][0].encode()) + len(records[i][1])
        if chunk and (len(chunk) == MAX_RECORDS or size + n > MAX_BYTES):
            yield chunk
            chunk, size = [], 0
        chunk.append(i)
        size += n
    if chunk:
        yield chunk


def connect(
    bucket: str, stream: str, prefix: str = ERROR_PREFIX, region: str | None = None, endpoint_url: str | None = None
) -> tuple[RuleErrors, StreamWriter]:
    """The bucket and the stream through boto3 clients (``AWS_ENDPOINT_URL`` is honoured, as everywhere)."""
    import boto3

    session = boto3.session.Session(region_name=region)
    s3 = session.client("s3", endpoint_url=endpoint_url)
    kinesis = session.client("kinesis", endpoint_url=endpoint_url)
    return RuleErrors(s3, bucket, prefix), StreamWriter(kinesis, stream)

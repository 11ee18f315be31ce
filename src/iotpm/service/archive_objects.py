"""The archive's objects of a batch: the raw records as received, and what was quarantined.

Both are gzip JSON Lines under a Hive-style hour partition, named by the batch's shard
and first and last sequence numbers (a retried batch writes the same key).
"""

from __future__ import annotations

import base64
import gzip
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Final

import msgspec

from iotpm.models.validation import DEVICE_REFUSALS
from iotpm.service.batch import Counts, RawRecord, Rejected
from iotpm.service.ports import ArchiveObject, RawLine


def raw_object(prefix: str, records: Sequence[RawRecord]) -> ArchiveObject:
    """The batch's records as received, one line each."""
    return ArchiveObject(archive_key(prefix, records), _raw_lines(records))


def quarantine_object(
    prefix: str, records: Sequence[RawRecord], rejected: Sequence[Rejected], counts: Counts
) -> ArchiveObject:
    """One line per rejection, with what was refused (tallied in ``counts``): a message as
    itself, a record's text once per record (its line counts the record's other rejections
    without a payload), so the object grows with the input's size, never with its square."""
    lines: list[dict[str, Any]] = []
    whole: dict[int, dict[str, Any]] = {}  # record index -> its line carrying the record's text
    for index, rejection, payload in rejected:
        rec, reason = records[index], rejection.reason.value
        counts.quarantine_reasons[reason] = counts.quarantine_reasons.get(reason, 0) + 1
        counts.quarantined += not rejection.part
        if rejection.reason in DEVICE_REFUSALS:  # charged to the thing that published it
            per = counts.refused.setdefault(rec.partition_key[:128], {})
            per[reason] = per.get(reason, 0) + 1
        if payload is None and index in whole:
            line = whole[index]
            line["count"] += 1
            line["reasons"][reason] = line["reasons"].get(reason, 0) + 1
            continue
        line = {
            "reason": reason,
            "detail": rejection.detail,
            "device_id": rejection.device_id,
            "sequence_number": rec.sequence_number,
            "partition_key": rec.partition_key,
            "arrival_ms": rec.arrival_ms,
            "payload": payload if payload is not None else text_of(rec.data),
        }
        if payload is None:
            line.update(count=1, reasons={reason: 1})
            whole[index] = line
        if rejection.part:  # the rest of the message was stored: readers must not leave the record out
            line["partial"] = True
        lines.append(line)
    return ArchiveObject(archive_key(prefix, records), lines)


def archive_key(prefix: str, records: Sequence[RawRecord]) -> str:
    """``prefix/year=/month=/day=/hour=/<shard>-<first>-<last>.jsonl.gz`` of the batch's first arrival."""
    first, last = records[0], records[-1]
    try:
        at = datetime.fromtimestamp(first.arrival_ms / 1000, tz=UTC)
    except (OverflowError, OSError, ValueError):
        at = datetime.fromtimestamp(0, tz=UTC)
    part = f"year={at:%Y}/month={at:%m}/day={at:%d}/hour={at:%H}"
    name = "-".join(_safe(v) for v in (first.shard_id, first.sequence_number, last.sequence_number))
    return f"{prefix}/{part}/{name}.jsonl.gz"


def _raw_lines(records: Sequence[RawRecord]) -> list[RawLine]:
    try:  # the common batch is all UTF-8: decoded in one comprehension, not a call per record
        texts = [r.data.decode("utf-8") for r in records]
    except UnicodeDecodeError:
        texts = [text_of(r.data) for r in records]
    return [
        RawLine(r.arrival_ms, text, r.partition_key, r.sequence_number, r.shard_id)
        for r, text in zip(records, texts, strict=True)
    ]


def _safe(value: str) -> str:
    """A key part from a Kinesis field: what S3 and Hive paths take plainly (an odd event's field may be anything)."""
    cleaned = "".join(ch if ch.isascii() and (ch.isalnum() or ch in "_.-") else "_" for ch in value[:96])
    return cleaned or "none"


def text_of(data: bytes) -> str:
    """A record's data as text: UTF-8, else ``base64:`` and its bytes in base64."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return "base64:" + base64.b64encode(data).decode()


_LINES: Final = msgspec.json.Encoder(order="sorted")


def encode_lines(lines: Sequence[RawLine | Mapping[str, Any]]) -> bytes:
    """gzip JSON Lines (sorted keys, UTF-8), byte-for-byte reproducible (no timestamp in the header).

    Level 6, zlib's default: for a 10,000-record batch (4 MB of lines) it takes a
    quarter of the time of level 9 for a tenth more bytes; msgspec writes the lines
    ten times faster than :func:`json.dumps`.
    """
    return gzip.compress(_LINES.encode_lines(lines), compresslevel=6, mtime=0)

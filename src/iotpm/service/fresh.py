"""Fresh readings: what in a batch is new for a device, and its replay marks after them."""

from __future__ import annotations

import base64
import binascii
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from operator import itemgetter
from typing import Any, Final

import msgspec
import numpy as np

from iotpm.models import ReadingFields, Rejection, RejectReason
from iotpm.service.batch import Counts, DeviceReadings, RawRecord, Rejected
from iotpm.service.ports import DeviceRecord

#: how many recent reading identities a device record keeps (a message delivered again
#: in another record: an IoT rule retry, a device resending after a reconnect)
RECENT_IDENTITIES: Final = 16
#: how many shards' positions a device record keeps (a reshard moves a device to a child shard)
POSITION_SHARDS: Final = 8


@dataclass(frozen=True, slots=True)
class Fresh:
    """A device's readings not applied yet, in time order, and its ingest marks after them."""

    readings: list[ReadingFields]
    indices: list[int]
    ingest: dict[str, Any]
    conflicts: list[Rejected]  # same time and sequence number as a reading applied, other values


def fresh_readings(device: DeviceReadings, records: Sequence[RawRecord], record: DeviceRecord, counts: Counts) -> Fresh:
    """The device's readings that are not replays nor repeats, and its ingest marks after them.

    Replay protection keys on what Kinesis guarantees: a record at or below the device's
    applied position on its shard (a Lambda retry, a replay of the stream) was applied
    already. Nothing the device supplies orders its readings: a restart (``seq`` from 1
    again), a gateway's late readings and a change of message shape are all new. A reading
    with the same time, sequence number and metric names as one of the device's recent
    ones, delivered in another record, is a repeat when its values are the same too, and a
    conflict (quarantined) when they differ: the readings table holds one reading per key.
    """
    ingest = record.ingest
    positions: dict[str, str] = dict(ingest.get("pos") or {})
    applied = {shard: seqnum(value) for shard, value in positions.items()}
    recent = _unpack(ingest.get("recent"))
    seen = {entry >> _CONTENT_BITS: entry & _CONTENT_MASK for entry in recent}
    fresh: list[tuple[int, int, ReadingFields]] = []
    conflicts: list[Rejected] = []
    newest: dict[str, int] = {}
    names_of: dict[str, int] = {}  # a device's readings mostly share their metric names: one CRC each
    for reading, index in zip(device.readings, device.indices, strict=True):
        rec = records[index]
        text, shard = rec.sequence_number, rec.shard_id
        # seqnum(), inlined: 10,000 readings a batch
        number = int(text) if 0 < len(text) <= 128 and text.isascii() and text.isdigit() else None
        floor = applied.get(shard)
        if number is not None and floor is not None and number <= floor:
            counts.duplicates += 1
            continue
        joined = "\x00".join(reading.metrics)
        names = names_of.get(joined)
        if names is None:
            names = names_of[joined] = zlib.crc32(joined.encode())
        key, content = _identity(reading, names)
        known = seen.get(key)
        if known is not None:
            if known == content:
                counts.duplicates += 1
            else:
                why = f"ts {reading.ts_ms} seq {reading.seq} was applied with other values"
                rejection = Rejection(RejectReason.DUPLICATE_SEQUENCE, why, reading.device_id)
                conflicts.append((index, rejection, msgspec.to_builtins(reading)))
            continue
        seen[key] = content
        recent.append(key << _CONTENT_BITS | content)
        fresh.append((reading.ts_ms, index, reading))
        if number is not None and number > newest.get(shard, -1):
            newest[shard] = number
    fresh.sort(key=itemgetter(0))  # stable: one instant's readings keep their arrival order
    for shard, number in newest.items():
        positions[shard] = str(number)
    if len(positions) > POSITION_SHARDS:  # the newest shards: sequence numbers grow across a reshard
        keep = sorted(positions, key=lambda k: seqnum(positions[k]) or -1)[-POSITION_SHARDS:]
        positions = {k: positions[k] for k in keep}
    marks = {"pos": positions, "recent": _pack(recent[-RECENT_IDENTITIES:])}
    return Fresh([r for _, _, r in fresh], [i for _, i, _ in fresh], marks, conflicts)


def seqnum(value: object) -> int | None:
    """A Kinesis sequence number as an int (they are decimal strings), or None if it is not one."""
    if isinstance(value, str) and 0 < len(value) <= 128 and value.isascii() and value.isdigit():
        return int(value)
    return None


#: a recent identity packs the reading's key (40 bits) above a digest of its values (23 bits)
_CONTENT_BITS: Final = 23
_CONTENT_MASK: Final = (1 << _CONTENT_BITS) - 1


def _identity(r: ReadingFields, names: int) -> tuple[int, int]:
    """(key, content) digests: the reading's key as the readings table has it (time and sequence
    number, or time and metric names without one), and its metrics; ``names`` is the CRC-32 of
    its metric names joined by NUL.

    Built from ints and floats only (CPython hashes those the same in every process and
    release; strings it salts), names through CRC-32.
    """
    key = hash((r.ts_ms, -1, names) if r.seq is None else (r.ts_ms, r.seq)) & 0xFF_FFFF_FFFF
    return key, hash((names, *r.metrics.values())) & _CONTENT_MASK


def _pack(keys: list[int]) -> str:
    return base64.b64encode(np.array(keys, dtype="<i8").tobytes()).decode()


def _unpack(text: object) -> list[int]:
    if not isinstance(text, str) or not text:
        return []
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return []
    keys: list[int] = np.frombuffer(raw[: len(raw) - len(raw) % 8], dtype="<i8").tolist()
    return keys

"""Fresh readings: what in a batch is new for a device, and its replay marks after them."""

from __future__ import annotations

import base64
import binascii
import struct
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from itertools import chain, islice
from operator import itemgetter, le
from typing import Any, Final

import msgspec
import numpy as np
import numpy.typing as npt

from iotpm.models import ReadingFields, Rejection, RejectReason
from iotpm.service.batch import Counts, DeviceReadings, RawRecord, Rejected
from iotpm.service.ports import DeviceRecord

#: how many recent reading identities a device record keeps (a message delivered again
#: in another record: an IoT rule retry, a device resending after a reconnect, a producer
#: that resends a PutRecords call it does not know was taken). 32: twice the most of one
#: partition key's messages the twin's rule bridge puts in one call (``MAX_PER_KEY``), so a
#: bridge that dies between PutRecords and its acknowledgements, with one call in flight and
#: the previous call's acknowledgements not yet written, has every message it puts again
#: recognised (16 recognised 16 of 40 a reviewer resent); 8 bytes each in the device item
#: (256 B: the item stays in 2 write units)
RECENT_IDENTITIES: Final = 32
#: how many shards' positions a device record keeps (a reshard moves a device to a child shard)
POSITION_SHARDS: Final = 8

Entries = npt.NDArray[np.int64]


@dataclass(frozen=True, slots=True)
class Fresh:
    """A device's readings not applied yet, in time order, and its ingest marks after them."""

    readings: list[ReadingFields]
    indices: list[int]
    ingest: dict[str, Any]
    conflicts: list[Rejected]  # same time and sequence number as a reading applied, other values
    #: each reading's row in the batch's columns (:class:`BatchMarks`); None: not known
    rows: list[int] | None = None
    #: the device's slice of the batch grouped by device (:class:`Grouped`), when the readings are
    #: that slice's, in its order; None: not
    slot: int | None = None


@dataclass(frozen=True, slots=True)
class BatchMarks:
    """What the replay and repeat tests need of the whole batch, worked out once for it: each
    record's Kinesis sequence number as an int (None: not one), the shard when every record is of
    one (as Kinesis sends a batch), and the recent-identity entry of each decoded reading (a
    device's readings' ``positions`` index them)."""

    texts: list[str]  # each record's sequence number as sent
    shard: str | None
    entries: Entries
    readings: Sequence[ReadingFields]
    #: the metric names (in their order) of every reading when they are all alike, the common
    #: batch, and then each reading's time and values (in that order) as columns; else None
    names: tuple[str, ...] | None = None
    ts: npt.NDArray[np.int64] | None = None
    values: npt.NDArray[np.float64] | None = None
    _ordered: dict[tuple[str, ...], npt.NDArray[np.float64]] = field(default_factory=dict)
    _numbers: list[list[int | None]] = field(default_factory=list)  # worked out when first asked

    @classmethod
    def of(cls, records: Sequence[RawRecord], readings: Sequence[ReadingFields]) -> BatchMarks:
        """The marks of a batch's ``records`` and decoded ``readings`` (in the batch's order: at
        once, in the order they sit in memory, rather than device by device)."""
        texts = [r.sequence_number for r in records]
        shards = {r.shard_id for r in records}
        shard = next(iter(shards)) if len(shards) == 1 else None
        groups = _by_names([r.metrics for r in readings]) if readings else {}
        if len(groups) == 1 and None in groups.values():  # every reading with the same names
            (names,) = groups
            values = _values([r.metrics for r in readings], names)
            ts = np.array([r.ts_ms for r in readings], dtype=np.int64)
            return cls(texts, shard, identities(readings, groups, values, ts), readings, names, ts, values)
        return cls(texts, shard, identities(readings, groups), readings)

    @property
    def numbers(self) -> list[int | None]:
        """Each record's Kinesis sequence number as an int (None: not one)."""
        if not self._numbers:
            self._numbers.append(_numbers(self.texts))
        return self._numbers[0]

    def ordered(self, channels: tuple[str, ...]) -> npt.NDArray[np.float64] | None:
        """Every reading's values in ``channels`` order (NaN where the batch's names lack one), once
        a batch for each order; None when the readings' names differ."""
        if self.names is None or self.values is None:
            return None
        x = self._ordered.get(channels)
        if x is None:
            at = {name: j for j, name in enumerate(self.names)}
            x = np.full((len(self.values), len(channels)), np.nan)
            for k, ch in enumerate(channels):
                if ch in at:
                    x[:, k] = self.values[:, at[ch]]
            self._ordered[channels] = x
        return x

    def rows_of(self, device: DeviceReadings) -> list[int] | None:
        """The device's readings' rows in the batch's columns; None when they are not the batch's."""
        positions, readings = device.positions, device.readings
        mine = self.readings
        if (
            readings
            and len(positions) == len(readings)
            and min(positions) >= 0
            and max(positions) < len(mine)
            and mine[positions[0]] is readings[0]
            and mine[positions[-1]] is readings[-1]
        ):
            return positions
        return None

    def columns(
        self, fresh: Fresh, channels: tuple[str, ...]
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]] | None:
        """The fresh readings' times and (n, c) values in ``channels`` order (NaN where a reading
        lacks a metric), from the batch's columns; None when those do not hold them."""
        x = self.ordered(channels)
        if fresh.rows is None or self.ts is None or x is None:
            return None
        rows = np.array(fresh.rows, dtype=np.intp)
        return self.ts[rows], x[rows]


@dataclass(frozen=True, slots=True)
class Grouped:
    """The common batch's readings grouped by device, filled once: each device's readings (in
    arrival order) a slice of the same arrays, and the devices whose slice the one-pass test may
    settle (:meth:`fresh`); every other device goes through :func:`fresh_readings`.

    A device has a slot (``slots``) when its readings' identities differ from one another, its
    readings come in time order and its records in the batch's order, and the batch's records'
    sequence numbers rise (decimals of one length, in order: a device's first record has its
    lowest number and its last its highest)."""

    marks: BatchMarks
    slots: dict[str, int]  # device id -> its slice (bounds[k]:bounds[k + 1])
    bounds: list[int]
    rows: npt.NDArray[np.intp]  # each grouped reading's row in the batch's columns
    ts: npt.NDArray[np.int64]  # the readings' times, grouped
    entries: list[int]  # their recent-identity entries, grouped
    keys: list[int]  # those entries' keys
    earliest: list[int]  # each slice's earliest time
    #: devices whose readings name more than one (site, line, device type)
    mixed: frozenset[str]
    _ordered: dict[tuple[str, ...], npt.NDArray[np.float64]] = field(default_factory=dict)

    @classmethod
    def of(cls, marks: BatchMarks, devices: Sequence[DeviceReadings]) -> Grouped | None:
        """``devices`` (their readings the whole of the batch's decoded ones, with one metric-name
        set) grouped; None when the batch is not that (another shape, several shards, odd numbers)."""
        readings, ts = marks.readings, marks.ts
        n = len(readings)
        if marks.shard is None or ts is None or not devices or len(devices) >= 1 << 23 or not _rising(marks.texts):
            return None
        sizes = [len(d.positions) for d in devices]
        if (
            sum(sizes) != n
            or min(sizes) == 0
            or any(len(d.indices) != k or len(d.readings) != k for d, k in zip(devices, sizes, strict=True))
        ):
            return None
        rows = np.fromiter(chain.from_iterable(d.positions for d in devices), np.intp, n)
        if rows.min() < 0 or rows.max() >= n:
            return None
        index = np.fromiter(chain.from_iterable(d.indices for d in devices), np.intp, n)
        ends = np.cumsum(sizes)
        starts = (ends - sizes).astype(np.intp)
        owner = np.repeat(np.arange(len(devices), dtype=np.int64), sizes)
        entries = marks.entries[rows]
        keys = entries >> _CONTENT_BITS
        grouped_ts = ts[rows]
        odd = np.zeros(len(devices), dtype=bool)
        same = owner[1:] == owner[:-1]
        odd[owner[1:][same & ((grouped_ts[1:] < grouped_ts[:-1]) | (index[1:] < index[:-1]))]] = True
        pairs = np.sort(owner << 40 | keys)  # keys are 40 bits: a repeat is a pair met twice
        odd[pairs[1:][pairs[1:] == pairs[:-1]] >> 40] = True
        flags = odd.tolist()
        slots = {
            d.device_id: k
            for k, d in enumerate(devices)
            if not flags[k]
            and readings[d.positions[0]] is d.readings[0]
            and readings[d.positions[-1]] is d.readings[-1]
        }
        mixed: frozenset[str] = frozenset()
        if (
            len({r.site for r in readings}) > 1
            or len({r.line for r in readings}) > 1
            or len({r.device_type for r in readings}) > 1
        ):
            who = {(r.device_id, r.site, r.line, r.device_type) for r in readings}
            mixed = frozenset() if len(who) == len(devices) else frozenset(_several(w[0] for w in who))
        return cls(
            marks, slots, [0, *ends.tolist()], rows, grouped_ts, entries.tolist(), keys.tolist(),
            np.minimum.reduceat(grouped_ts, starts).tolist(), mixed,
        )  # fmt: skip

    def fresh(self, slot: int, device: DeviceReadings, record: DeviceRecord) -> Fresh | None:
        """What :func:`fresh_readings` gives for a device every reading of which is fresh (its records
        past its position on the batch's shard, no identity one of its recent ones); else None."""
        shard = self.marks.shard
        assert shard is not None
        texts, ingest = self.marks.texts, record.ingest
        positions: dict[str, str] = dict(ingest.get("pos") or {})
        floor = seqnum(positions.get(shard))
        if floor is not None and int(texts[device.indices[0]]) <= floor:
            return None
        lo, hi = self.bounds[slot], self.bounds[slot + 1]
        recent = _unpack(ingest.get("recent"))
        if recent and not {entry >> _CONTENT_BITS for entry in recent}.isdisjoint(self.keys[lo:hi]):
            return None
        positions[shard] = str(int(texts[device.indices[-1]]))
        kept = (recent + self.entries[lo:hi])[-RECENT_IDENTITIES:]
        ingest = _marks(positions, kept)
        return Fresh(list(device.readings), list(device.indices), ingest, [], list(device.positions), slot)

    def columns(self, slot: int, channels: tuple[str, ...]) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]:
        """The slot's times and (n, c) values in ``channels`` order (NaN where the batch lacks a name)."""
        x = self._ordered.get(channels)
        if x is None:
            values = self.marks.ordered(channels)
            assert values is not None  # the batch has one name set (see of)
            x = self._ordered[channels] = values[self.rows]
        lo, hi = self.bounds[slot], self.bounds[slot + 1]
        return self.ts[lo:hi], x[lo:hi]


def _several(ids: Iterable[str]) -> set[str]:
    """The ids met more than once."""
    seen: set[str] = set()
    twice: set[str] = set()
    for i in ids:
        (twice if i in seen else seen).add(i)
    return twice


def _rising(texts: list[str]) -> bool:
    """Whether every text is a Kinesis sequence number (see :func:`seqnum`), all of one length (so
    they compare as their numbers do) and in non-decreasing order."""
    if not texts or not 0 < len(texts[0]) <= 128 or set(map(len, texts)) != {len(texts[0])}:
        return False
    joined = "".join(texts)  # bytes' isdigit: ASCII's digits only, and several times str's speed
    return joined.isascii() and joined.encode().isdigit() and all(map(le, texts, islice(texts, 1, None)))


def fresh_readings(
    device: DeviceReadings,
    records: Sequence[RawRecord],
    record: DeviceRecord,
    counts: Counts,
    marks: BatchMarks | None = None,
) -> Fresh:
    """The device's readings that are not replays nor repeats, and its ingest marks after them.

    Replay protection keys on what Kinesis guarantees: a record at or below the device's
    applied position on its shard (a Lambda retry, a replay of the stream) was applied
    already. Nothing the device supplies orders its readings: a restart (``seq`` from 1
    again), a gateway's late readings and a change of message shape are all new. A reading
    with the same time, sequence number and metric names as one of the device's recent
    ones, delivered in another record, is a repeat when its values are the same too, and a
    conflict (quarantined) when they differ: the readings table holds one reading per key.

    ``marks``: the batch's, worked out once for all its devices (else for this device alone).
    The common device (every record past its position, no identity met before) is settled
    with a few set operations; any other reading by reading.
    """
    rows = None
    if marks is None:
        marks = BatchMarks.of(records, device.readings)
        entries = marks.entries
    else:
        rows = marks.rows_of(device)
        entries = marks.entries[rows] if rows is not None else identities(device.readings)
    ingest = record.ingest
    positions: dict[str, str] = dict(ingest.get("pos") or {})
    recent = _unpack(ingest.get("recent"))
    fresh = _all_fresh(device, marks, positions, recent, entries, rows)
    if fresh is None:
        fresh = _each_fresh(device, records, marks, positions, recent, entries.tolist(), counts, rows)
    return fresh


def _all_fresh(
    device: DeviceReadings,
    marks: BatchMarks,
    positions: dict[str, str],
    recent: list[int],
    entries: Entries,
    rows: list[int] | None,
) -> Fresh | None:
    """Every reading fresh (all its records past the device's position on the batch's one shard, no
    identity met twice nor one of its recent ones), with the marks after them; else None."""
    shard = marks.shard
    if shard is None:
        return None
    numbers = list(map(marks.numbers.__getitem__, device.indices))
    if None in numbers:
        return None
    newest: int = max(numbers)  # type: ignore[type-var,assignment]
    floor = seqnum(positions.get(shard))
    if floor is not None and min(numbers) <= floor:  # type: ignore[type-var,operator]
        return None
    keys = (entries >> _CONTENT_BITS).tolist()
    known = {entry >> _CONTENT_BITS for entry in recent}
    if len(set(keys)) != len(keys) or not known.isdisjoint(keys):
        return None
    readings, indices = device.readings, device.indices
    ts = [r.ts_ms for r in readings]
    if ts != sorted(ts):  # stable: one instant's readings keep their arrival order
        order = sorted(range(len(ts)), key=ts.__getitem__)
        readings, indices = [readings[i] for i in order], [indices[i] for i in order]
        rows = None if rows is None else [rows[i] for i in order]
    positions[shard] = str(newest)
    kept = [*recent, *entries.tolist()][-RECENT_IDENTITIES:]
    return Fresh(list(readings), list(indices), _marks(positions, kept), [], None if rows is None else list(rows))


def _each_fresh(
    device: DeviceReadings,
    records: Sequence[RawRecord],
    marks: BatchMarks,
    positions: dict[str, str],
    recent: list[int],
    entries: list[int],
    counts: Counts,
    rows: list[int] | None = None,
) -> Fresh:
    """Reading by reading: replays and repeats counted as duplicates, conflicts refused."""
    applied = {shard: seqnum(value) for shard, value in positions.items()}
    seen = {entry >> _CONTENT_BITS: entry & _CONTENT_MASK for entry in recent}
    fresh: list[tuple[int, int, ReadingFields, int]] = []
    conflicts: list[Rejected] = []
    newest: dict[str, int] = {}
    places = rows if rows is not None else [-1] * len(entries)
    for reading, index, entry, row in zip(device.readings, device.indices, entries, places, strict=True):
        shard, number = records[index].shard_id, marks.numbers[index]
        floor = applied.get(shard)
        if number is not None and floor is not None and number <= floor:
            counts.duplicates += 1
            continue
        key, content = entry >> _CONTENT_BITS, entry & _CONTENT_MASK
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
        recent.append(entry)
        fresh.append((reading.ts_ms, index, reading, row))
        if number is not None and number > newest.get(shard, -1):
            newest[shard] = number
    fresh.sort(key=itemgetter(0))  # stable: one instant's readings keep their arrival order
    for shard, number in newest.items():
        positions[shard] = str(number)
    kept = None if rows is None else [row for *_, row in fresh]
    return Fresh([f[2] for f in fresh], [f[1] for f in fresh], _marks(positions, recent), conflicts, kept)


def _marks(positions: dict[str, str], recent: list[int]) -> dict[str, Any]:
    """The ingest marks: the newest shards' positions (sequence numbers grow across a reshard) and
    the recent identities."""
    if len(positions) > POSITION_SHARDS:
        keep = sorted(positions, key=lambda k: seqnum(positions[k]) or -1)[-POSITION_SHARDS:]
        positions = {k: positions[k] for k in keep}
    return {"pos": positions, "recent": _pack(recent[-RECENT_IDENTITIES:])}


def _numbers(texts: list[str]) -> list[int | None]:
    """:func:`seqnum` of each (the common batch checked at once)."""
    if texts and min(map(len, texts)) > 0 and max(map(len, texts)) <= 128:
        joined = "".join(texts)
        if joined.isascii() and joined.isdigit():
            return list(map(int, texts))
    return [seqnum(t) for t in texts]


def seqnum(value: object) -> int | None:
    """A Kinesis sequence number as an int (they are decimal strings), or None if it is not one."""
    if isinstance(value, str) and 0 < len(value) <= 128 and value.isascii() and value.isdigit():
        return int(value)
    return None


#: a recent identity packs the reading's key (40 bits) above a digest of its values (23 bits)
_CONTENT_BITS: Final = 23
_CONTENT_MASK: Final = (1 << _CONTENT_BITS) - 1
_KEY_MASK: Final = 0xFF_FFFF_FFFF


def _identity(r: ReadingFields, names: int) -> tuple[int, int]:
    """(key, content) digests: the reading's key as the readings table has it (time and sequence
    number, or time and metric names without one), and its metrics; ``names`` is the CRC-32 of
    its metric names joined by NUL.

    Built from ints and floats only (CPython hashes those the same in every process and
    release; strings it salts), names through CRC-32. :func:`identities` computes the same
    for a batch at once.
    """
    key = hash((r.ts_ms, -1, names) if r.seq is None else (r.ts_ms, r.seq)) & _KEY_MASK
    return key, hash((names, *r.metrics.values())) & _CONTENT_MASK


def identities(
    readings: Sequence[ReadingFields],
    groups: dict[tuple[str, ...], list[int] | None] | None = None,
    values: npt.NDArray[np.float64] | None = None,
    ts: npt.NDArray[np.int64] | None = None,
) -> Entries:
    """Each reading's recent-identity entry (``key << 23 | content``, as :func:`_identity` gives),
    for many readings at once: CPython's hashes of ints, floats and tuples of them computed in
    numpy (they are fixed by the language: see :func:`_tuple_hash`), bit for bit. ``groups``:
    :func:`_by_names` of them, if known; ``values``: those of the one group, if known.

    Readings of many different metric-name sets (a few readings each) are hashed one by one:
    numpy's work is per set, so a hostile batch costs no more per reading than before."""
    if not readings:
        return np.zeros(0, dtype=np.int64)
    groups = _by_names([r.metrics for r in readings]) if groups is None else groups
    if len(readings) >= _VECTOR_MIN and len(groups) <= max(8, len(readings) // 16):
        try:
            return _vectorised(readings, groups, values, ts)
        except (ValueError, OverflowError, TypeError):  # a number validation would not let through
            pass
    names_of: dict[str, int] = {}
    out = []
    for r in readings:
        joined = "\x00".join(r.metrics)
        names = names_of.get(joined)
        if names is None:
            names = names_of[joined] = zlib.crc32(joined.encode())
        key, content = _identity(r, names)
        out.append(key << _CONTENT_BITS | content)
    return np.array(out, dtype=np.int64)


#: fewer readings than this are hashed one by one (numpy's fixed cost a call is a few readings' worth)
_VECTOR_MIN: Final = 32


def _vectorised(
    readings: Sequence[ReadingFields],
    groups: dict[tuple[str, ...], list[int] | None],
    known: npt.NDArray[np.float64] | None = None,
    times: npt.NDArray[np.int64] | None = None,
) -> Entries:
    n = len(readings)
    if times is None:
        ts = _ints([r.ts_ms for r in readings])
    elif len(times) and times.min() < 0:
        raise ValueError("identities are of non-negative 64-bit ints")  # validation keeps them so
    else:
        ts = times.astype(np.uint64) % np.uint64(_P)
    seq = [r.seq for r in readings]
    names, content = np.zeros(n, dtype=np.uint64), np.zeros(n, dtype=np.uint64)
    for metric_names, rows in groups.items():
        crc = zlib.crc32("\x00".join(metric_names).encode())
        if rows is None and known is not None:
            values = known
        else:
            values = _values([readings[i].metrics for i in rows] if rows is not None else [r.metrics for r in readings],
                             metric_names)  # fmt: skip
        lanes = [
            np.full(len(values), crc, dtype=np.uint64),
            *(_float_lanes(values[:, j]) for j in range(len(metric_names))),
        ]
        at = slice(None) if rows is None else rows
        names[at], content[at] = crc, _tuple_hash(lanes)
    if None in seq:
        has = np.array([s is not None for s in seq])
        with_seq = _tuple_hash([ts, _ints([0 if s is None else s for s in seq])])
        without = _tuple_hash([ts, np.full(n, _MINUS_ONE_LANE, dtype=np.uint64), names])
        key = np.where(has, with_seq, without)
    else:
        key = _tuple_hash([ts, _ints(seq)])  # type: ignore[arg-type]  # no None in it
    entries = ((key & np.uint64(_KEY_MASK)) << np.uint64(_CONTENT_BITS)) | (content & np.uint64(_CONTENT_MASK))
    return entries.view(np.int64)


def _by_names(metrics: list[dict[str, float]]) -> dict[tuple[str, ...], list[int] | None]:
    """The readings' positions by their metric names in their order (None: all of them, the common batch)."""
    names = list(map(tuple, metrics))
    if names.count(names[0]) == len(names):
        return {names[0]: None}
    groups: dict[tuple[str, ...], list[int] | None] = {}
    for i, key in enumerate(names):
        groups.setdefault(key, []).append(i)  # type: ignore[union-attr]
    return groups


def _values(metrics: list[dict[str, float]], names: tuple[str, ...]) -> npt.NDArray[np.float64]:
    """(n, len(names)) values of readings whose metrics are ``names``."""
    n, k = len(metrics), len(names)
    if k == 0:
        return np.zeros((n, 0))
    get = itemgetter(*names)
    flat = map(get, metrics) if k == 1 else chain.from_iterable(map(get, metrics))
    return np.fromiter(flat, np.float64, count=n * k).reshape(n, k)


#: CPython's hash of a number is its value modulo this prime (sys.hash_info.modulus, 64-bit builds)
_P: Final = (1 << 61) - 1
#: CPython's tuple hash (xxHash's round, Objects/tupleobject.c since 3.8)
_XX1, _XX2, _XX5 = np.uint64(11400714785074694791), np.uint64(14029467366897019727), np.uint64(2870177450012600261)
_MINUS_ONE_LANE: Final = np.uint64(2**64 - 2)  # hash(-1) is -2
_ALL_ONES: Final = np.uint64(2**64 - 1)


def _ints(values: list[int]) -> npt.NDArray[np.uint64]:
    """hash() of each non-negative int, as unsigned 64-bit lanes."""
    if min(values) < 0 or max(values) >= 2**64:
        raise ValueError("identities are of non-negative 64-bit ints")  # validation keeps them so
    return np.array(values, dtype=np.uint64) % np.uint64(_P)


def _float_lanes(x: npt.NDArray[np.float64]) -> npt.NDArray[np.uint64]:
    """hash() of each finite float: its value as m * 2**e (m a 53-bit integer) modulo ``_P``, which
    is m rotated left by e mod 61 within 61 bits (2**61 is 1 modulo ``_P``); negated for a negative
    value, and -1 made -2."""
    m, e = np.frexp(np.abs(x))
    mant = (m * 2.0**53).astype(np.uint64)
    k = np.mod(e.astype(np.int64) - 53, 61).astype(np.uint64)
    h = ((mant << k) & np.uint64(_P)) | (mant >> (np.uint64(61) - k))
    h = np.where(x < 0, np.uint64(0) - h, h)
    return np.where(h == _ALL_ONES, _MINUS_ONE_LANE, h)


def _tuple_hash(lanes: Sequence[npt.NDArray[np.uint64]]) -> npt.NDArray[np.uint64]:
    """hash() of tuples whose items hash to ``lanes`` (one array per position)."""
    acc = np.full(len(lanes[0]), _XX5, dtype=np.uint64)
    for lane in lanes:
        acc += lane * _XX2
        acc = (acc << np.uint64(31)) | (acc >> np.uint64(33))
        acc *= _XX1
    acc += np.uint64(len(lanes) ^ (2870177450012600261 ^ 3527539))
    return np.where(acc == _ALL_ONES, np.uint64(1546275796), acc)


def _pack(keys: list[int]) -> str:
    """The entries as stored: little-endian signed 64-bit, base64 (struct: a fifth of numpy's cost for 16)."""
    return base64.b64encode(struct.pack(f"<{len(keys)}q", *keys)).decode()


def _unpack(text: object) -> list[int]:
    if not isinstance(text, str) or not text:
        return []
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return []
    return list(struct.unpack(f"<{len(raw) // 8}q", raw[: len(raw) - len(raw) % 8]))

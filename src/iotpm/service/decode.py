"""Decode: a batch's records into each device's readings, and what was refused, with why.

A batch whose every record is one canonical reading is checked as a whole; otherwise a
record of canonical messages with epoch-ms timestamps takes the fast decoder, and
anything else goes through :func:`~iotpm.models.decode`, which accepts the legacy shapes
and names what is wrong.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import msgspec
import orjson

from iotpm.models import FastDecoder, ReadingFields, Rejection, RejectReason, ValidationLimits, decode
from iotpm.models.validation import THING_KEY
from iotpm.observability import log
from iotpm.service.batch import Counts, DeviceReadings, RawRecord, Rejected


@dataclass(frozen=True, slots=True)
class Decoded:
    """The batch's valid readings grouped by device, and its rejections (to quarantine)."""

    devices: dict[str, DeviceReadings]
    rejected: list[Rejected]
    #: every reading decoded, in the batch's order (a device's ``positions`` index it): what is
    #: worked out for all readings at once is worked out in the order they sit in memory
    readings: list[ReadingFields]


#: a gateway's message: ``{"readings": [<reading>, ...]}`` (an object, which the IoT rule stamps with
#: the gateway's ``thing_name`` in a well-defined way; the readings carry their own ``device_id``)
ENVELOPE: Final = "readings"


@dataclass(frozen=True, slots=True)
class Registered:
    """The registry's answer for a batch: the gateway each device is registered under (None: none,
    or unknown), and which of the publishers are registered gateways (``device_type`` "gateway")."""

    gateway_of: Mapping[str, str | None]
    gateways: frozenset[str]


#: asked with the devices that published themselves and, for each thing that published readings of
#: other devices, the devices it named; only a publisher that is a registered gateway has the devices
#: it names looked up (a registry that cannot say for those, or for the publisher, raises StoreError)
Gateways = Callable[[Sequence[str], Mapping[str, Sequence[str]]], Registered]


class BatchDecoder:
    """Turns a batch's records into :class:`Decoded`; configured with the validation limits."""

    def __init__(self, limits: ValidationLimits, gateways: Gateways | None = None) -> None:
        """``gateways``: the registry's gateway of each device (None: a thing publishes only its own)."""
        self.limits, self.gateways = limits, gateways
        self._fast = FastDecoder(limits)

    def __call__(self, records: Sequence[RawRecord], counts: Counts) -> Decoded:
        """Group the valid readings by device; the rest, with their reasons, to quarantine."""
        devices: dict[str, DeviceReadings] = {}
        rejected: list[Rejected] = []
        foreign: list[tuple[int, int, ReadingFields]] = []  # readings for another device than the thing that sent them
        max_bytes = self.limits.max_bytes * 1000  # a record may carry an array of readings
        datas = [rec.data for rec in records]
        whole = (
            self._fast.batch(datas, [rec.arrival_ms for rec in records]) if max(map(len, datas)) <= max_bytes else None
        )
        if whole is not None and [f.device_id for f in whole] == [rec.partition_key for rec in records]:
            devices = _own(whole)  # the common batch: one reading a record, each its publisher's own
            if self.gateways is not None:
                rejected += self._judged(records, [], devices)
            counts.received += sum(len(d.readings) for d in devices.values()) + len(rejected)
            return Decoded(devices, rejected, whole)
        # one accepted reading per record, some of them published by another thing; otherwise record by record
        pairs = enumerate(whole) if whole is not None else self._each(records, max_bytes, rejected)
        readings: list[ReadingFields] = whole if whole is not None else []
        for position, (index, fields) in enumerate(pairs):
            if whole is None:
                readings.append(fields)
            if fields.device_id != records[index].partition_key:  # the rule keys a record by the thing that sent it
                if self.gateways is None:  # quarantined as itself, not as its record: it costs its own size
                    rejected.append(_mismatch(fields, records[index].partition_key, index))
                else:
                    foreign.append((position, index, fields))
                continue
            device = devices.get(fields.device_id)  # inline: 10,000 readings a batch
            if device is None:
                device = devices[fields.device_id] = DeviceReadings(fields.device_id, index)
            device.readings.append(fields)
            device.indices.append(index)
            device.positions.append(position)
        if self.gateways is not None:
            rejected += self._judged(records, foreign, devices)
        # each rejection is one message (or one unreadable record)
        counts.received += sum(len(d.readings) for d in devices.values()) + len(rejected)
        return Decoded(devices, rejected, readings)

    def _judged(
        self,
        records: Sequence[RawRecord],
        foreign: list[tuple[int, int, ReadingFields]],
        devices: dict[str, DeviceReadings],
    ) -> list[Rejected]:
        """With a registry: a reading is its device's when it comes through the gateway the device is
        registered under (a publisher registered as a gateway), or from the device itself when it has
        none. A device under a gateway publishes through it only (one partition key: its readings on
        one shard). The others are ``device_mismatch``, each costing only itself; the devices a
        publisher that is not a registered gateway names are not looked up.

        Raises a retryable :class:`StoreError` when the registry cannot say for a reading a registered
        gateway sent, or whether a thing that sent other devices' readings is a gateway (an outage is
        retried, never quarantined); a device's own readings go on meanwhile.
        """
        assert self.gateways is not None
        named: dict[str, set[str]] = {}
        for _, index, fields in foreign:
            named.setdefault(records[index].partition_key, set()).add(fields.device_id)
        registered = self.gateways(sorted(devices), {thing: sorted(ids) for thing, ids in sorted(named.items())})
        gateway_of, gateways = registered.gateway_of, registered.gateways
        rejected: list[Rejected] = []
        for device_id in [d for d in devices if gateway_of.get(d) is not None]:
            own = devices.pop(device_id)
            why = f"{device_id!r} is registered under gateway {gateway_of[device_id]!r}: it publishes through it only"
            rejected += [_mismatch(r, device_id, i, why) for r, i in zip(own.readings, own.indices, strict=True)]
        for position, index, fields in foreign:
            thing = records[index].partition_key
            if thing not in gateways or gateway_of.get(fields.device_id) != thing:
                rejected.append(_mismatch(fields, thing, index))
            else:
                _group(devices, position, index, fields)
        return rejected

    def _each(
        self, records: Sequence[RawRecord], max_bytes: int, rejected: list[Rejected]
    ) -> Iterator[tuple[int, ReadingFields]]:
        """Each record's index with each of its readings: the fast decoder's, else :func:`decode`'s."""
        most = self.limits.max_readings
        for index, rec in enumerate(records):
            try:
                readings = self._fast(rec.data, rec.arrival_ms) if len(rec.data) <= max_bytes else None
                if readings is not None and len(readings) > most:
                    rejected.append((index, _too_many(len(readings), most, rec), None))
                    continue
                if readings is None:
                    readings = self._slow(index, rec, max_bytes, rejected)
            except Exception as exc:  # a decoder bug must not block the shard: quarantined, counted, logged
                log("error", "decoder failed on a record", sequence_number=rec.sequence_number, error=repr(exc)[:300])
                detail = f"{type(exc).__name__}: {exc}"[:300]
                rejected.append((index, Rejection(RejectReason.DECODER_ERROR, detail), None))
                continue
            for fields in readings:
                yield index, fields

    def _unstamped(self, payload: Any, rec: RawRecord) -> Any:
        """The message without the thing name the rule stamps on it, when the registry judges the
        publisher (the batch's rule, against the record's partition key: the same thing)."""
        if self.gateways is None or type(payload) is not dict or payload.get(THING_KEY) != rec.partition_key:
            return payload
        return {k: v for k, v in payload.items() if k != THING_KEY}

    def _slow(self, index: int, rec: RawRecord, max_bytes: int, rejected: list[Rejected]) -> list[ReadingFields]:
        """A record the fast decoder did not take: each message judged by :func:`decode`."""
        parsed = _payloads(rec.data, max_bytes)
        if isinstance(parsed, Rejection):
            rejected.append((index, parsed, None))
            return []
        out = []
        strict, payloads = parsed
        if len(payloads) > self.limits.max_readings:
            rejected.append((index, _too_many(len(payloads), self.limits.max_readings, rec), None))
            return []
        for payload in payloads:
            result = decode(self._unstamped(payload, rec), rec.arrival_ms, self.limits)
            if isinstance(result, Rejection):
                # what only the standard library could parse (NaN literals, say) has no
                # JSON form: it is archived as the record's text, exactly as received (once
                # per record, however many of its messages are refused: see quarantine_object)
                rejected.append((index, result, payload if strict else None))
            else:
                out.append(ReadingFields.of(result))
        return out


def _own(readings: list[ReadingFields]) -> dict[str, DeviceReadings]:
    """Readings one a record, each published by its own device, grouped by device (a reading's
    record index is its position)."""
    places: dict[str, list[int]] = {}
    for i, fields in enumerate(readings):
        mine = places.get(fields.device_id)
        if mine is None:
            places[fields.device_id] = [i]
        else:
            mine.append(i)
    return {
        device: DeviceReadings(device, at[0], [readings[i] for i in at], at, list(at)) for device, at in places.items()
    }


def _group(devices: dict[str, DeviceReadings], position: int, index: int, fields: ReadingFields) -> None:
    """``fields`` added to its device's readings."""
    device = devices.get(fields.device_id)
    if device is None:
        device = devices[fields.device_id] = DeviceReadings(fields.device_id, index)
    device.readings.append(fields)
    device.indices.append(index)
    device.positions.append(position)


def _mismatch(fields: ReadingFields, thing: str, index: int, why: str | None = None) -> Rejected:
    """A reading for another device than the thing that published it may publish for."""
    why = why or f"reading for {fields.device_id!r} published by thing {thing[:128]!r}"
    return index, Rejection(RejectReason.DEVICE_MISMATCH, why, fields.device_id), msgspec.to_builtins(fields)


def _too_many(n: int, most: int, rec: RawRecord) -> Rejection:
    """A record of more readings than a record may carry: refused whole, once."""
    why = f"{n} readings in one record; at most {most}"
    return Rejection(RejectReason.TOO_MANY_READINGS, why, rec.partition_key[:128] or None)


def _payloads(data: bytes, max_bytes: int) -> tuple[bool, list[Any]] | Rejection:
    """The messages in one record (an object, or each element of a JSON array), or why none.

    orjson parses; the standard library gets a second look at what orjson refuses
    (``NaN`` literals, integers past 64 bits), so those reach validation and are
    rejected with their own reason rather than as malformed JSON. The flag says
    whether the record was strict JSON (parsed by orjson).
    """
    if len(data) > max_bytes:
        return Rejection(RejectReason.OVERSIZE, f"record of {len(data)} bytes")
    strict = True
    try:
        obj = orjson.loads(data)
    except orjson.JSONDecodeError:
        strict = False
        try:
            obj = json.loads(data)
        except RecursionError:
            return Rejection(RejectReason.MALFORMED_JSON, "nested too deeply")
        except (ValueError, UnicodeDecodeError) as exc:
            return Rejection(RejectReason.MALFORMED_JSON, str(exc)[:200])
    if type(obj) is list:
        return (strict, obj) if obj else Rejection(RejectReason.UNKNOWN_SHAPE, "empty array")
    if type(obj) is dict and ENVELOPE in obj and "device_id" not in obj:  # a gateway's message
        inner = obj[ENVELOPE]
        if type(inner) is not list or not inner:
            return Rejection(RejectReason.UNKNOWN_SHAPE, f"a gateway message's {ENVELOPE!r} must be a non-empty array")
        return strict, inner
    return strict, [obj]

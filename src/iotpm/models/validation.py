"""Decode and validate raw messages into :class:`Reading` or a typed rejection.

Nothing here raises on bad input: every rule that a message can break has a
:class:`RejectReason`, and the caller quarantines the message with it.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from itertools import chain
from typing import Annotated, Any, Final, Literal

import msgspec
from pydantic import ValidationError

from iotpm.models.metrics import LEGACY_TYPES, METRIC_NAME_RE
from iotpm.models.readings import (
    DEVICE_ID_PATTERN,
    NAME_PATTERN,
    SCHEMA_VERSION,
    SUPPORTED_SCHEMA_VERSIONS,
    Reading,
    utc_from_ms,
)

_DEVICE_ID_RE: Final = re.compile(DEVICE_ID_PATTERN)
_NAME_RE: Final = re.compile(NAME_PATTERN)
#: epoch numbers above this are milliseconds, below it seconds (year 5138 in seconds).
_EPOCH_MS_CUTOFF: Final = 100_000_000_000


class RejectReason(StrEnum):
    """Why a message was not accepted. Stable strings: they are stored and counted."""

    OVERSIZE = "oversize"
    MALFORMED_JSON = "malformed_json"
    UNKNOWN_SHAPE = "unknown_shape"
    UNKNOWN_SCHEMA_VERSION = "unknown_schema_version"
    INVALID_DEVICE_ID = "invalid_device_id"
    NON_FINITE_VALUE = "non_finite_value"
    INVALID_TIMESTAMP = "invalid_timestamp"
    TIMESTAMP_IN_FUTURE = "timestamp_in_future"
    TIMESTAMP_TOO_OLD = "timestamp_too_old"
    SCHEMA_VIOLATION = "schema_violation"
    DUPLICATE_SEQUENCE = "duplicate_sequence"
    DEVICE_MISMATCH = "device_mismatch"
    VALUE_OUT_OF_RANGE = "value_out_of_range"
    #: a store refused the reading for good (a validation error, an item too large)
    STORE_REJECTED = "store_rejected"
    #: the decoder itself failed on the record: a bug to fix, caught so it cannot block a shard
    DECODER_ERROR = "decoder_error"
    #: a record carrying more readings than :attr:`ValidationLimits.max_readings` (refused once, whole)
    TOO_MANY_READINGS = "too_many_readings"
    #: metric names past the device's channel cap (the reading's other metrics are stored)
    TOO_MANY_METRICS = "too_many_metrics"
    #: a device the registry does not know, where the environment quarantines those (issue 29)
    UNREGISTERED_DEVICE = "unregistered_device"


#: refusals that a device's own sending causes and that cost the pipeline (a pipeline alarm
#: names the publishing device): caps, and readings published for another device
DEVICE_REFUSALS: Final = frozenset(
    {RejectReason.TOO_MANY_READINGS, RejectReason.TOO_MANY_METRICS, RejectReason.DEVICE_MISMATCH}
)


#: added by the IoT topic rule (and the local bridge): the thing whose certificate published
THING_KEY: Final = "thing_name"
#: the largest sequence number a device may send (DynamoDB and numpy hold it as a signed 64-bit int)
MAX_SEQ: Final = 2**63 - 1
#: metric values outside these magnitudes are refused: no sensor measures them, and their
#: rollup sums would leave DynamoDB's number range (|x| <= 9.99e125, >= 1e-130)
MAX_ABS_VALUE: Final = 1e18
MIN_ABS_VALUE: Final = 1e-30


@dataclass(frozen=True, slots=True)
class Rejection:
    """A message that cannot become a reading, with the rule it broke."""

    reason: RejectReason
    detail: str
    device_id: str | None = None
    #: only part of the message was refused (metrics past a cap); the rest was stored, so
    #: the rejection is not a reading of its own in the counts
    part: bool = False


@dataclass(frozen=True, slots=True)
class ValidationLimits:
    """Bounds a message must respect. Defaults suit one reading per second or slower."""

    max_bytes: int = 16 * 1024
    #: readings in one record (a JSON array of messages): more is refused whole, once. An IoT
    #: Core message (128 KB) holds at most ~1,700 of the smallest readings; a gateway's buffer
    #: flushed in one message is a few hundred
    max_readings: int = 1000
    max_future_ms: int = 5 * 60 * 1000
    max_age_ms: int = 7 * 24 * 3600 * 1000


def decode(
    payload: object,
    received_at_ms: int,
    limits: ValidationLimits = ValidationLimits(),
) -> Reading | Rejection:
    """Turn one message (JSON bytes, text, or an already parsed value) into a reading.

    ``received_at_ms`` is the ingest time: it bounds timestamps and stands in for
    the legacy ``{deviceId, sensorType, value}`` shape, which carries none. Any
    value is accepted as input: what is not an object is rejected with its shape.
    """
    if isinstance(payload, bytes | bytearray | str):
        size = len(payload.encode("utf-8", "surrogatepass") if isinstance(payload, str) else payload)
        if size > limits.max_bytes:
            return Rejection(RejectReason.OVERSIZE, f"{size} bytes > {limits.max_bytes}")
        try:
            obj: object = json.loads(payload)
        except RecursionError:
            return Rejection(RejectReason.MALFORMED_JSON, "nested too deeply")
        except (ValueError, UnicodeDecodeError) as exc:
            return Rejection(RejectReason.MALFORMED_JSON, str(exc)[:200])
    else:
        obj = payload
    if not isinstance(obj, Mapping):
        return Rejection(RejectReason.UNKNOWN_SHAPE, f"expected an object, got {type(obj).__name__}")
    thing = obj.get(THING_KEY)
    if thing is not None:
        obj = {k: v for k, v in obj.items() if k != THING_KEY}
    normalised = normalise(obj, received_at_ms)
    if isinstance(normalised, Rejection):
        return normalised
    if thing is not None and normalised.get("device_id") != thing:
        device = _device_of(normalised.get("device_id"))
        return Rejection(RejectReason.DEVICE_MISMATCH, f"reading for {device!r} published by thing {thing!r}", device)
    return _validate(normalised, received_at_ms, limits)


def normalise(obj: Mapping[str, Any], received_at_ms: int) -> dict[str, Any] | Rejection:
    """Map the canonical or a legacy shape onto the canonical field names."""
    if "schema_version" in obj or "metrics" in obj:
        version = obj.get("schema_version", 1)
        if type(version) is not int or version not in SUPPORTED_SCHEMA_VERSIONS:
            return Rejection(
                RejectReason.UNKNOWN_SCHEMA_VERSION,
                f"schema_version {version!r} is not one of {sorted(SUPPORTED_SCHEMA_VERSIONS)}",
                _device_of(obj.get("device_id")),
            )
        return dict(obj)
    if "sensor_id" in obj:
        return _from_legacy(obj, "sensor_id", "type", obj.get("timestamp"), obj.get("production_line"))
    if "deviceId" in obj:
        return _from_legacy(obj, "deviceId", "sensorType", received_at_ms, None)
    return Rejection(RejectReason.UNKNOWN_SHAPE, f"unrecognised keys {sorted(obj)[:8]}")


def _from_legacy(
    obj: Mapping[str, Any], id_key: str, type_key: str, ts: object, line: object
) -> dict[str, Any] | Rejection:
    kind = obj.get(type_key)
    metric = LEGACY_TYPES.get(str(kind).lower()) if isinstance(kind, str) else None
    if metric is None:
        return Rejection(
            RejectReason.SCHEMA_VIOLATION,
            f"{type_key} {kind!r} is not one of {sorted(LEGACY_TYPES)}",
            _device_of(obj.get(id_key)),
        )
    out: dict[str, Any] = {"device_id": obj.get(id_key), "ts": ts, "metrics": {metric: obj.get("value")}}
    if line is not None:
        out["line"] = line
    return out


def _device_of(value: object) -> str | None:
    return value if isinstance(value, str) and _DEVICE_ID_RE.fullmatch(value) else None


def _validate(obj: dict[str, Any], received_at_ms: int, limits: ValidationLimits) -> Reading | Rejection:
    device = obj.get("device_id")
    if not isinstance(device, str) or not _DEVICE_ID_RE.fullmatch(device):
        return Rejection(RejectReason.INVALID_DEVICE_ID, f"device id {str(device)[:80]!r} is malformed")
    bad = _non_finite(obj.get("metrics"))
    if bad is not None:
        return Rejection(RejectReason.NON_FINITE_VALUE, f"metric {bad!r} is not a finite number", device)
    seq = obj.get("seq")
    if type(seq) is int and not 0 <= seq <= MAX_SEQ:
        return Rejection(RejectReason.SCHEMA_VIOLATION, f"seq {str(seq)[:40]} is outside 0..2^63-1", device)
    ts = parse_timestamp(obj.get("ts"))
    if ts is None:
        return Rejection(RejectReason.INVALID_TIMESTAMP, f"ts {str(obj.get('ts'))[:64]!r}", device)
    obj["ts"] = ts
    try:
        reading = Reading.model_validate(obj)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        return Rejection(RejectReason.SCHEMA_VIOLATION, f"{where}: {first['msg']}", device)
    coerced = next((name for name, value in reading.metrics.items() if not math.isfinite(value)), None)
    if coerced is not None:  # a numeric string such as "NaN" or "1e999"
        return Rejection(RejectReason.NON_FINITE_VALUE, f"metric {coerced!r} is not a finite number", device)
    extreme = out_of_range(reading.metrics)
    if extreme is not None:
        return Rejection(
            RejectReason.VALUE_OUT_OF_RANGE,
            f"metric {extreme!r} = {reading.metrics[extreme]!r}: size outside {MIN_ABS_VALUE:g}..{MAX_ABS_VALUE:g}",
            device,
        )
    return _check_time(reading, received_at_ms, limits)


def out_of_range(metrics: Mapping[str, float]) -> str | None:
    """The first metric whose magnitude no sensor reports (see :data:`MAX_ABS_VALUE`), or None."""
    for name, value in metrics.items():
        size = abs(value)
        if size > MAX_ABS_VALUE or (size and size < MIN_ABS_VALUE):
            return name
    return None


def _non_finite(metrics: object) -> str | None:
    if not isinstance(metrics, Mapping):
        return None  # the schema check names this
    for name, value in metrics.items():
        if isinstance(value, float) and not math.isfinite(value):
            return str(name)
    return None


def _check_time(reading: Reading, received_at_ms: int, limits: ValidationLimits) -> Reading | Rejection:
    skew = reading.ts_ms - received_at_ms
    if skew > limits.max_future_ms:
        return Rejection(RejectReason.TIMESTAMP_IN_FUTURE, f"{skew} ms ahead of ingest", reading.device_id)
    if -skew > limits.max_age_ms:
        return Rejection(RejectReason.TIMESTAMP_TOO_OLD, f"{-skew} ms before ingest", reading.device_id)
    return reading


def parse_timestamp(value: object) -> datetime | None:
    """ISO 8601 text (naive means UTC) or epoch seconds/milliseconds; None if neither."""
    if isinstance(value, bool):
        return None
    try:
        if isinstance(value, int | float):
            if not math.isfinite(value):
                return None
            ms = value if abs(value) >= _EPOCH_MS_CUTOFF else value * 1000
            return utc_from_ms(int(ms))
        if isinstance(value, str):
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
            return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    except (ValueError, OverflowError, OSError):
        return None
    return None


_MAX_METRICS: Final = 32
_MAX_METRIC_NAME: Final = 64
# What the message's types can say is checked by msgspec in C while it parses: epoch
# milliseconds, a non-negative sequence number, one to 32 metrics with names of at
# most 64 characters and finite values (the bounds refuse the infinities that a
# literal such as 1e999 parses to), and the schema version.
_EpochMs = Annotated[int, msgspec.Meta(ge=_EPOCH_MS_CUTOFF)]
_Seq = Annotated[int, msgspec.Meta(ge=0, le=MAX_SEQ)]
_Finite = Annotated[float, msgspec.Meta(ge=-MAX_ABS_VALUE, le=MAX_ABS_VALUE)]
_Metrics = Annotated[
    dict[Annotated[str, msgspec.Meta(max_length=_MAX_METRIC_NAME)], _Finite],
    msgspec.Meta(min_length=1, max_length=_MAX_METRICS),
]


class ReadingFields(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    """A canonical reading message as plain fields: what the processor carries per reading.

    The wire shape (``ts`` is read into ``ts_ms``), decoded and type-checked in C by
    :class:`FastDecoder`, or built from a validated :class:`Reading` by :meth:`of`.
    ``thing_name`` is what the topic rule adds; once checked against ``device_id`` it is
    dropped. Not a pydantic model: the processor holds 10,000 of these per batch, and
    building a model instance costs more than everything else it does with a reading.
    """

    device_id: str
    ts_ms: _EpochMs = msgspec.field(name="ts")
    metrics: _Metrics
    seq: _Seq | None = None
    site: str = "default"
    line: str = "default"
    device_type: str = "generic"
    schema_version: Literal[1] = SCHEMA_VERSION
    thing_name: str | None = None

    @classmethod
    def of(cls, reading: Reading) -> ReadingFields:
        """The fields of a validated :class:`Reading`."""
        return cls(
            device_id=reading.device_id,
            ts_ms=reading.ts_ms,
            metrics=dict(reading.metrics),
            seq=reading.seq,
            site=reading.site,
            line=reading.line,
            device_type=reading.device_type,
        )


class _Envelope(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    """A gateway's message: its devices' readings, and the thing name the topic rule adds."""

    readings: list[ReadingFields]
    thing_name: str | None = None


class FastDecoder:
    """Decodes a record holding canonical readings without building pydantic models.

    msgspec parses the JSON and checks every field's type in C (an object, or an array
    of them); the rules types cannot say (id and name patterns, finite values, the
    time window, the thing that published) are checked here. It answers None for
    anything it does not plainly accept (a legacy shape, an ISO or seconds timestamp,
    any rule broken, JSON it cannot parse); :func:`decode` then gives the reading or
    the typed rejection. For every message it accepts it gives exactly the fields
    :func:`decode` would, and it accepts nothing that :func:`decode` rejects
    (tests/unit/test_readings.py holds the two together).

    Ids and names already matched against their patterns are remembered (up to
    ``memory`` of each), so a fleet's few hundred ids cost one regex each.
    """

    def __init__(self, limits: ValidationLimits = ValidationLimits(), memory: int = 100_000) -> None:
        self.limits = limits
        self.memory = memory
        self._decode = msgspec.json.Decoder(ReadingFields | list[ReadingFields]).decode
        self._decode_one = msgspec.json.Decoder(ReadingFields).decode
        self._decode_envelope = msgspec.json.Decoder(_Envelope).decode
        self._ids: set[str] = set()
        self._names: set[str] = set()
        self._metrics: set[str] = set()

    def __call__(self, data: bytes, received_at_ms: int) -> list[ReadingFields] | None:
        """The record's readings, or None when :func:`decode` must judge its messages.

        A gateway's message ``{"readings": [...]}`` (the processor checks which devices its
        publisher may send for) is read as its array of readings."""
        try:
            got = self._decode(data)
        except (msgspec.DecodeError, msgspec.ValidationError, RecursionError):
            try:
                got = self._decode_envelope(data).readings
            except (msgspec.DecodeError, msgspec.ValidationError, RecursionError):
                return None
        readings = got if isinstance(got, list) else [got]
        return readings if readings and self._accept(readings, [received_at_ms] * len(readings)) else None

    def batch(self, datas: Sequence[bytes], arrivals_ms: Sequence[int]) -> list[ReadingFields] | None:
        """Each record's reading, when every record is one canonical reading this accepts; else None.

        The common batch in one call rather than one per record: the same rules as
        :meth:`__call__`, at about a third of its cost. None sends the caller record by
        record, which finds the odd one.
        """
        decode = self._decode_one
        try:
            readings = [decode(data) for data in datas]
        except (msgspec.DecodeError, msgspec.ValidationError, RecursionError):
            return None
        return readings if self._accept(readings, arrivals_ms) else None

    def _accept(self, readings: list[ReadingFields], arrivals_ms: Sequence[int]) -> bool:
        """The rules types cannot say, each checked once over all the readings.

        Each reading's time within the window of its record's arrival and its thing
        (dropped once it matches), then ids, names and metrics as sets: each new one
        matched against its pattern once, then known; then no value of a tiny non-zero
        magnitude, over all the values in one numpy pass.
        """
        age, future = self.limits.max_age_ms, self.limits.max_future_ms
        for r, arrival in zip(readings, arrivals_ms, strict=True):
            if not arrival - age <= r.ts_ms <= arrival + future:
                return False
            if r.thing_name is not None:
                if r.thing_name != r.device_id:
                    return False
                r.thing_name = None
        ids, names, metrics = self._ids, self._names, self._metrics
        new = {r.device_id for r in readings} - ids
        if new and not self._learn(ids, new, _DEVICE_ID_RE):
            return False
        new = ({r.site for r in readings} | {r.line for r in readings} | {r.device_type for r in readings}) - names
        if new and not self._learn(names, new, _NAME_RE):
            return False
        maps = [r.metrics for r in readings]
        new = set().union(*maps) - metrics
        if new and not self._learn(metrics, new, METRIC_NAME_RE):
            return False
        # the largest magnitude is bounded by the type; the smallest non-zero one is not.
        # numpy imported here: the bridge and the CLI import models without it
        import numpy as np

        size = np.abs(np.fromiter(chain.from_iterable(map(dict.values, maps)), np.float64, sum(map(len, maps))))
        return not bool(((size < MIN_ABS_VALUE) & (size != 0.0)).any())

    def _learn(self, seen: set[str], values: Iterable[str], pattern: re.Pattern[str]) -> bool:
        """Whether all ``values`` match ``pattern``; those that do are remembered."""
        for value in values:
            if pattern.fullmatch(value) is None:
                return False
            if len(seen) < self.memory:
                seen.add(value)
        return True

"""Detect: each device's fresh readings through the fleet detector, and its record after them.

Per device: what is fresh (not a replay nor a repeat), the registry's say (identity,
re-baseline, an unregistered device quarantined where so set), the channel cap, then one
call of the fleet detector for every device at once (one per device type with detector
settings of its own). Readings older than the device's
last scored one are stored and rolled up, not scored: the detector's state has moved
past them (a gateway forwarding what it buffered).
"""

from __future__ import annotations

import binascii
import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from operator import attrgetter, itemgetter
from typing import TYPE_CHECKING, Any, Final

import msgspec
import numpy as np
import numpy.typing as npt

from iotpm.detection import DetectionResult, DetectorConfig, DeviceInput, DeviceState, FleetDetector
from iotpm.detection.state import FloatArray
from iotpm.models import ReadingFields, Rejection, RejectReason
from iotpm.observability import log
from iotpm.service.batch import Counts, DeviceReadings, ProcessorSettings, RawRecord, Rejected, Work
from iotpm.service.fresh import BatchMarks, Fresh, Grouped, fresh_readings
from iotpm.service.ports import DeviceRecord

if TYPE_CHECKING:
    from iotpm.service.config_cache import DeviceControl, OperatorCache


@dataclass(frozen=True, slots=True)
class Detected:
    """The batch's work (one per device with fresh readings) and the readings refused on the way."""

    work: list[Work]
    rejected: list[Rejected]


@dataclass(frozen=True, slots=True)
class _Pending:
    """A device ready for the detector: its readings as input, and the on-time part to score (None: none)."""

    device: DeviceReadings
    record: DeviceRecord
    fresh: Fresh
    whole: DeviceInput
    scored: DeviceInput | None
    fleet: FleetDetector  # the detector on its device type's settings


class BatchDetector:
    """Scores a batch's devices; configured with the detector's settings and the operator's controls."""

    #: the common batch grouped by device and its plain devices settled on slices of it (False: every
    #: device through the general path, as the equivalence tests compare)
    columnar: bool = True
    #: each scored device's state kept for the next batch with the detector dict it was stored as, and
    #: taken when the record read next holds that dict again (False: every state from its dict)
    reuse_states: bool = True
    #: at most this many states kept (a shard's devices; the oldest dropped past it)
    kept_states: int = 20_000

    def __init__(
        self, config: DetectorConfig | None, settings: ProcessorSettings, operator: OperatorCache | None = None
    ) -> None:
        self.fleet = FleetDetector(config)
        if self.fleet.native is None:  # the zip was built without a compiler for this machine
            log("warning", "detector C kernel not loaded; the numpy kernel runs (same results, slower)")
        self.settings, self.operator = settings, operator
        self._by_type: dict[str, FleetDetector] = {}  # device types with settings of their own
        self._type_configs: Mapping[str, DetectorConfig] = {}  # their configurations, read once a batch
        self._kept: dict[str, tuple[dict[str, Any], DeviceState]] = {}  # see reuse_states

    def __call__(
        self,
        devices: Mapping[str, DeviceReadings],
        records: Sequence[RawRecord],
        stored: Mapping[str, DeviceRecord],
        counts: Counts,
        now: int,
        readings: Sequence[ReadingFields] | None = None,
    ) -> Detected:
        """Each device's fresh readings through the detector, late ones stored without a score;
        ``readings``: the batch's decoded readings, which the devices' ``positions`` index."""
        rejected: list[Rejected] = []
        pending: list[_Pending] = []
        new: list[str] = []
        order = sorted(devices)
        controls = self._controls(order)
        # the replay and repeat tests' numbers for every reading at once, in the batch's order, when
        # every reading decoded is a device's (else device by device: a hostile record's readings,
        # refused, are not hashed)
        whole = readings is not None and sum(len(d.readings) for d in devices.values()) == len(readings)
        marks = BatchMarks.of(records, readings if whole and readings is not None else [])
        # the common batch grouped by device once: its plain devices settled on slices of it
        grouped = Grouped.of(marks, [devices[d] for d in order]) if whole and self.columnar else None
        for device_id in order:
            record = stored.get(device_id)
            if record is None:  # the bootstrap: its first message's site, line and type (see DeviceRecord.identity)
                first = devices[device_id].readings[0]
                record = DeviceRecord(device_id, first.site, first.line, first.device_type)
                new.append(device_id)
            elif self.operator is not None:  # its controls set identity and state on this batch's own copy
                record = _copy(record)
            item = self._prepare(
                devices[device_id], records, record, controls.get(device_id), counts, rejected, marks, grouped
            )
            if item is not None:
                pending.append(item)
        if new:
            counts.identities_bootstrapped += len(new)
            log("info", "devices seen for the first time: site, line and type from their payload",
                devices=new[:20], count=len(new))  # fmt: skip
        return Detected(self._score(pending, counts, now), rejected)

    def _prepare(
        self,
        device: DeviceReadings,
        records: Sequence[RawRecord],
        record: DeviceRecord,
        control: DeviceControl | None,
        counts: Counts,
        rejected: list[Rejected],
        marks: BatchMarks,
        grouped: Grouped | None = None,
    ) -> _Pending | None:
        """The device's fresh readings as the detector's input; None when none is left to store."""
        slot = grouped.slots.get(device.device_id) if grouped is not None else None
        fresh = None
        if slot is not None:
            assert grouped is not None
            fresh = grouped.fresh(slot, device, record)
        if fresh is None:
            fresh = fresh_readings(device, records, record, counts, marks)
        rejected += fresh.conflicts
        # the registry's identity, a re-baseline; an unregistered device quarantined where so set
        if self.operator is not None and not self.operator.admit(record, control, self._fleet(record.device_type)):
            rejected += self.operator.quarantined(device.device_id, fresh.readings, fresh.indices)
            return None
        if not fresh.readings:
            return None
        first = fresh.readings[0]
        if (
            fresh.slot is None
            or grouped is None
            or device.device_id in grouped.mixed
            or (first.site, first.line, first.device_type) != (record.site, record.line, record.device_type)
        ):  # else every reading names its record's site, line and type (a grouped device names one)
            fresh = _identified(record, fresh, counts)
        state = self._state(record)
        names = marks.names if fresh.rows is not None else None  # every fresh reading's metric names
        cap = self.settings.channel_cap(record.device_type)
        fresh, refused = _capped(fresh, state.channels if state else (), cap, names)
        rejected += refused
        if not fresh.readings:
            return None
        channels, state = _channels(state, fresh.readings, names if fresh.rows is not None else None)
        if fresh.slot is not None and grouped is not None:  # the device's slice of the grouped batch
            ts, x = grouped.columns(fresh.slot, channels)
            late = grouped.earliest[fresh.slot] < record.last_ts_ms
        else:
            columns = marks.columns(fresh, channels)  # the batch's columns, else reading by reading
            if columns is not None:
                ts, x = columns
            else:
                ts = np.array([r.ts_ms for r in fresh.readings], dtype=np.int64)
                x = _values(fresh.readings, channels)
            late = True  # not known: looked at below
        last = fresh.readings[-1]
        whole = DeviceInput(device.device_id, channels, ts, x, state, last.line, last.device_type)
        scored: DeviceInput | None = whole
        on_time = ts >= record.last_ts_ms if late else None
        if on_time is not None and not on_time.all():
            scored = (
                DeviceInput(device.device_id, channels, ts[on_time], x[on_time], state, last.line, last.device_type)
                if on_time.any()
                else None
            )
        return _Pending(device, record, fresh, whole, scored, self._fleet(record.device_type))

    def _score(self, pending: list[_Pending], counts: Counts, now: int) -> list[Work]:
        """One detector call for every device, and each device's work with its record after the batch."""
        groups: dict[int, tuple[FleetDetector, list[DeviceInput]]] = {}  # one call per detector
        for p in pending:
            if p.scored is not None:
                groups.setdefault(id(p.fleet), (p.fleet, []))[1].append(p.scored)
        results = {key: iter(fleet.update(inputs)) for key, (fleet, inputs) in groups.items()}
        work = []
        for p in pending:
            detector = p.record.detector
            if p.scored is None:
                result = _unscored(p.whole, p.record)
            else:
                result, state = next(results[id(p.fleet)])
                detector = state.to_dict()
                if self.reuse_states:
                    self._keep(p.device.device_id, detector, state)
                if p.scored is not p.whole:
                    result = _scatter(result, np.flatnonzero(p.whole.ts >= p.record.last_ts_ms), len(p.whole.ts))
            counts.stored += len(p.fresh.readings)
            after = _after(p.record, p.fresh, result, detector, now)
            work.append(Work(p.device, p.record, after, p.fresh.readings, p.whole, result, p.fresh.indices))
        return work

    def _state(self, record: DeviceRecord) -> DeviceState | None:
        """The device's detector state: the one this detector left it in when its record still holds
        what that state was stored as, else read from the record (:func:`_state`).

        The two are the same state: the stored dict is the kept state's own ``to_dict()``, which
        :meth:`DeviceState.from_dict` reads back bit for bit (tests/unit/test_processor_state_reuse.py).
        A kept state is handed out once (popped): the detector advances it in place, and it is kept
        again only with the dict of where it got to, so a batch that fails after detecting, and is
        retried from the record before it, reads that record's state anew.
        """
        kept = self._kept.pop(record.device_id, None)
        if kept is not None and record.detector is not None and kept[0] == record.detector:
            return kept[1]
        return _state(record)

    def _keep(self, device_id: str, detector: dict[str, Any], state: DeviceState) -> None:
        kept = self._kept
        kept[device_id] = (detector, state)
        if len(kept) > self.kept_states:
            del kept[next(iter(kept))]

    def _fleet(self, device_type: str) -> FleetDetector:
        """The detector on the settings in effect for ``device_type`` (one per type with its own)."""
        if self.operator is None:
            return self.fleet
        config = self._type_configs.get(device_type, self.fleet.config)  # this batch's (see _controls)
        if config is self.fleet.config:
            return self.fleet
        fleet = self._by_type.get(device_type)
        if fleet is None or fleet.config is not config:
            fleet = self._by_type[device_type] = FleetDetector(config)
        return fleet

    def _controls(self, device_ids: list[str]) -> dict[str, DeviceControl]:
        """The batch's devices' registrations and alarm controls; the detector on the limits in effect."""
        if self.operator is None:
            return {}
        controls = self.operator.devices(device_ids)
        config, self._type_configs = self.operator.configs()  # once a batch: the whole batch under one
        if config is not self.fleet.config:
            self.fleet = FleetDetector(config)  # the limits changed: applied from this batch on
        return controls


def _after(
    record: DeviceRecord, fresh: Fresh, result: DetectionResult, detector: dict[str, Any] | None, now: int
) -> DeviceRecord:
    """The device's record after the batch's readings (the one read is left as it was)."""
    after = _copy(record)
    last = fresh.readings[-1]
    after.detector, after.ingest = detector, fresh.ingest
    after.readings = record.readings + len(fresh.readings)
    after.last_mark = after.readings  # the last reading's mark: the count of applied readings
    after.updated_ms = now
    if last.ts_ms < record.last_ts_ms:  # every reading late: the device's current view stays
        return after
    after.last_ts_ms = last.ts_ms
    after.latest = dict(last.metrics)
    after.health = result.health
    after.alarm_open = result.alarm_open
    raises = [e for e in result.events if e.kind == "raise"]
    if raises:
        after.alarm_since_ms = raises[-1].ts_ms
    if not result.alarm_open:
        after.alarm_since_ms = None
    after.trend = _trend(result)
    return after


def _trend(result: DetectionResult) -> dict[str, dict[str, float | None]]:
    """``_shown(result.trend_table())`` in one pass over the result's trend array, without the table's
    generator and dicts in between (500 devices a batch; tests/unit/test_processor_state_reuse.py holds
    the two equal on the detector's results)."""
    out: dict[str, dict[str, float | None]] = {}
    for name, (level, slope, limit, hours) in zip(result.channels, result.trend.tolist(), strict=True):
        if math.isnan(level):  # no trend before the baseline is learned
            continue
        out[name] = {
            "level": float(f"{level:.7g}"),
            "slope_per_hour": float(f"{slope:.7g}"),
            "limit": float(f"{limit:.7g}") if math.isfinite(limit) else None,
            "hours_to_limit": float(f"{hours:.7g}") if math.isfinite(hours) else None,
        }
    return out


def _copy(record: DeviceRecord) -> DeviceRecord:
    """A shallow copy of ``record`` (a fifth of :func:`copy.copy`'s cost; two a device a batch)."""
    out = object.__new__(DeviceRecord)
    out.__dict__.update(record.__dict__)
    return out


def _shown(trend: Mapping[str, Mapping[str, float | None]]) -> dict[str, dict[str, float | None]]:
    """The trend table as it is shown and stored: 7 significant digits (the devices table keeps it as text)."""
    return {m: {k: None if v is None else float(f"{v:.7g}") for k, v in row.items()} for m, row in trend.items()}


def _scatter(result: DetectionResult, keep: npt.NDArray[np.intp], n: int) -> DetectionResult:
    """A result for the on-time subset ``keep`` of ``n`` readings, spread back over all ``n``.

    The late readings get no score, no flag and no expected value; events point at the
    reading they belong to.
    """
    m = len(keep)
    changes: dict[str, Any] = {}
    for f in dataclasses.fields(result):
        value = getattr(result, f.name)
        if f.name != "trend" and isinstance(value, np.ndarray) and value.ndim and value.shape[0] == m:
            fill: Any = False if value.dtype == np.bool_ else (np.nan if f.name in _UNKNOWN_WHEN_LATE else 0)
            full = np.full((n, *value.shape[1:]), fill, dtype=value.dtype)
            full[keep] = value
            changes[f.name] = full
    changes["events"] = [dataclasses.replace(e, index=int(keep[e.index])) for e in result.events]
    return dataclasses.replace(result, **changes)


_UNKNOWN_WHEN_LATE: Final = frozenset({"expected", "scale"})


def _unscored(whole: DeviceInput, record: DeviceRecord) -> DetectionResult:
    """The result for a chunk of late readings only: nothing scored, the device's view unchanged."""
    n, c = whole.values.shape
    return DetectionResult(
        channels=whole.channels,
        score=np.zeros(n),
        is_anomaly=np.zeros(n, dtype=bool),
        events=[],
        channel_scores=np.zeros((n, c, 0)),
        device_scores=np.zeros((n, 0)),
        expected=np.full((n, c), np.nan),
        scale=np.full((n, c), np.nan),
        health=record.health,
        alarm_open=record.alarm_open,
        trend=np.full((c, 4), np.nan),
        in_alarm=np.zeros(n, dtype=bool),
    )


def _capped(
    fresh: Fresh, known: tuple[str, ...], cap: int, names: tuple[str, ...] | None = None
) -> tuple[Fresh, list[Rejected]]:
    """The channel set grown by the fresh readings' new names up to ``cap``, no further: what is
    kept, and what is refused.

    Names are taken in time order (a reading's own in sorted order) while the set has room;
    a reading's metrics past it are refused (``too_many_metrics``) and quarantined as
    themselves, its other metrics kept; a reading left with none is refused whole. A set
    already past ``cap`` (a lower cap set later) keeps its channels and takes no new one.
    ``names``: every reading's metric names, when they are known to be all alike.
    """
    admitted = set(known)
    if len(admitted.union(names if names is not None else set().union(*[r.metrics for r in fresh.readings]))) <= max(
        cap, len(known)
    ):
        return fresh, []  # the common batch: every name fits
    refused: list[Rejected] = []
    readings, indices = [], []
    for r, index in zip(fresh.readings, fresh.indices, strict=True):
        for name in sorted(r.metrics):
            if len(admitted) >= cap:
                break
            admitted.add(name)
        extra = {m: v for m, v in r.metrics.items() if m not in admitted}
        if extra:
            part = len(extra) < len(r.metrics)
            why = f"{len(extra)} metric names past the {cap} channels a {r.device_type!r} device may have"
            payload = {"device_id": r.device_id, "ts": r.ts_ms, "seq": r.seq, "metrics": extra}
            refused.append((index, Rejection(RejectReason.TOO_MANY_METRICS, why, r.device_id, part=part), payload))
            if not part:
                continue
            kept = {m: v for m, v in r.metrics.items() if m in admitted}
            readings.append(msgspec.structs.replace(r, metrics=kept))
        else:
            readings.append(r)
        indices.append(index)
    return dataclasses.replace(fresh, readings=readings, indices=indices, rows=None, slot=None), refused


def _state(record: DeviceRecord) -> DeviceState | None:
    """The device's detector state, or None when it has none (or one this release cannot read)."""
    if record.detector is None:
        return None
    try:
        return DeviceState.from_dict(record.detector)
    except (ValueError, KeyError, TypeError, binascii.Error) as exc:
        # a state from another release (or damaged): the device learns its
        # baseline again rather than holding up the shard
        log("warning", "detector state unusable; relearning", device_id=record.device_id, error=str(exc))
        return None


def _channels(
    state: DeviceState | None, fresh: list[ReadingFields], names: tuple[str, ...] | None = None
) -> tuple[tuple[str, ...], DeviceState | None]:
    """The detector's channels for the fresh readings, and the state to continue from (None: learn
    anew); ``names``: every reading's metric names, when they are known to be all alike."""
    seen = set(names) if names is not None else set().union(*[r.metrics for r in fresh])
    if state is None:
        return tuple(sorted(seen)), None
    if seen.issubset(state.channels):
        return state.channels, state
    # a new metric: the detector relearns the device with the wider set
    return tuple(sorted(seen.union(state.channels))), None


_IDENTITY: Final = attrgetter("site", "line", "device_type")


def _identified(record: DeviceRecord, fresh: Fresh, counts: Counts) -> Fresh:
    """The readings with their device's site, line and type as its record has them.

    A device's identity is its record's, not what its payload says: a reading that names
    another site, line or type is counted and logged and stored under the record's, so
    it cannot move the device to another line's routes (alerts' message attributes) or
    summaries. Its own data (time, sequence number, metrics) is kept as sent.
    """
    own = (record.site, record.line, record.device_type)
    if set(map(_IDENTITY, fresh.readings)) == {own}:
        return fresh  # the common device: every reading names its record's
    differ = [r for r in fresh.readings if (r.site, r.line, r.device_type) != own]
    counts.identity_mismatches += len(differ)
    said = differ[0]
    log("warning", "payload names another site, line or type than the device's record; the record's is kept",
        device_id=record.device_id, record=list(own), payload=[said.site, said.line, said.device_type],
        readings=len(differ))  # fmt: skip
    site, line, device_type = own
    readings = [
        r
        if (r.site, r.line, r.device_type) == own
        else msgspec.structs.replace(r, site=site, line=line, device_type=device_type)
        for r in fresh.readings
    ]
    return dataclasses.replace(fresh, readings=readings)


def _values(fresh: list[ReadingFields], channels: tuple[str, ...]) -> FloatArray:
    """(n, c) metric values in channel order; NaN where a reading lacks a metric."""
    get = itemgetter(*channels)
    try:
        rows: list[Any] = [get(r.metrics) for r in fresh]
    except KeyError:
        rows = [[r.metrics.get(ch, np.nan) for ch in channels] for r in fresh]
    return np.array(rows, dtype=np.float64).reshape(len(fresh), len(channels))

"""The write plan's rows: each device's reading rows and rollup deltas, and its part of a log entry."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from iotpm.service.batch import DAY_S, ProcessorSettings, Work
from iotpm.service.fresh import seqnum
from iotpm.service.ports import (
    CHUNK_MS,
    RESOLUTION_MS,
    DeviceRows,
    LogDevice,
    MetricStats,
    ReadingRow,
    RollupDelta,
    block_of,
    buckets_of_rows,
)


def reading_rows(work: Sequence[Work], ttl_days: int) -> dict[str, DeviceRows]:
    """Each device's reading rows with the detector's score and flag on each (as columns: see
    :class:`~iotpm.service.ports.DeviceRows`)."""
    ttl_s = ttl_days * DAY_S
    # rounded and flagged for the whole batch at once: two numpy calls, not two per device
    scores = np.round(np.concatenate([w.result.score for w in work]), 4).tolist() if work else []
    flags = np.concatenate([w.result.is_anomaly for w in work]).tolist() if work else []
    hours = _one_hour(work)
    out, at = {}, 0
    for w, hour in zip(work, hours, strict=True):
        end = at + len(w.fresh)
        # the device's stored readings before this batch: the first new one's ordinal
        out[w.device.device_id] = DeviceRows(
            w.fresh, scores[at:end], flags[at:end], w.record.readings, ttl_s, hour=hour
        )
        at = end
    return out


def _one_hour(work: Sequence[Work]) -> list[int | None]:
    """Each device's chunk hour when all its fresh readings fall in one (None otherwise, or when
    it has none): the batch's times in one numpy pass, not a min and max a device."""
    lengths = [len(w.fresh) for w in work]
    try:
        ts = np.array([r.ts_ms for w in work for r in w.fresh], dtype=np.int64)
    except OverflowError:  # a time past int64: each device reads its own
        return [None] * len(work)
    hours = ts - ts % CHUNK_MS
    starts = np.cumsum([0, *lengths[:-1]], dtype=np.int64)
    some = np.asarray(lengths) > 0
    out: list[int | None] = [None] * len(work)
    if some.any():
        lo = np.minimum.reduceat(hours, starts[some])
        hi = np.maximum.reduceat(hours, starts[some])
        for i, low, high in zip(np.flatnonzero(some).tolist(), lo.tolist(), hi.tolist(), strict=True):
            out[i] = low if low == high else None
    return out


def rollups(work: Sequence[Work], settings: ProcessorSettings) -> list[RollupDelta]:
    """Each device's 1-minute and 1-hour buckets for this batch, computed per channel set at once."""
    deltas: list[RollupDelta] = []
    ttl_s = settings.rollups_ttl_days * DAY_S
    groups: dict[tuple[str, ...], list[Work]] = {}
    for w in work:
        groups.setdefault(w.input.channels, []).append(w)
    for channels, members in groups.items():
        sizes = [len(w.fresh) for w in members]
        owner = np.repeat(np.arange(len(members)), sizes)
        ts = np.concatenate([w.input.ts for w in members])
        # each reading's ordinal (see ReadingRow): the device's count before the batch, plus its place in it
        ordinals = np.arange(len(owner), dtype=np.int64) - np.repeat(np.cumsum(sizes) - sizes, sizes)
        ordinals += np.repeat(np.array([w.record.readings for w in members], dtype=np.int64), sizes)
        x = np.concatenate([w.input.values for w in members])
        flags = np.concatenate([w.result.is_anomaly for w in members]).astype(np.int64)
        present = np.isfinite(x)
        filled = np.where(present, x, 0.0)
        for resolution, width in RESOLUTION_MS.items():
            bucket = ts - ts % width
            order = np.lexsort((bucket, owner))
            b, o = bucket[order], owner[order]
            starts = np.flatnonzero(np.r_[True, (b[1:] != b[:-1]) | (o[1:] != o[:-1])])
            count = np.add.reduceat(present[order].astype(np.int64), starts).tolist()
            low = np.fmin.reduceat(x[order], starts).tolist()
            high = np.fmax.reduceat(x[order], starts).tolist()
            total = np.add.reduceat(filled[order], starts).tolist()
            first = np.minimum.reduceat(ordinals[order], starts).tolist()
            anomalies = np.add.reduceat(flags[order], starts).tolist()
            for k, (at, who) in enumerate(zip(b[starts].tolist(), o[starts].tolist(), strict=True)):
                stats = {
                    name: MetricStats(count[k][j], low[k][j], high[k][j], total[k][j])
                    for j, name in enumerate(channels)
                    if count[k][j]
                }
                deltas.append(
                    RollupDelta(
                        device_id=members[who].device.device_id,
                        resolution=resolution,
                        bucket_ms=at,
                        first_ordinal=first[k],
                        metrics=stats,
                        anomalies=anomalies[k],
                        expires_at=at // 1000 + ttl_s,
                    )
                )
    return deltas


def last_sequence(work: Sequence[Work], shard: str) -> str:
    """The newest sequence number on ``shard`` among the devices' fresh readings (their ingest positions)."""
    best, text = -1, "0"
    for w in work:
        value = (w.after.ingest.get("pos") or {}).get(shard)
        number = seqnum(value)
        if number is not None and number > best:
            best, text = number, str(value)
    return text


def log_device(w: Work, rows: Sequence[ReadingRow]) -> LogDevice:
    r = w.after  # the device's view after the batch
    pos = r.ingest.get("pos") or {}
    if isinstance(rows, DeviceRows):  # its columns as they are, no row built
        return LogDevice(
            r.device_id, r.site, r.line, r.device_type,
            str(max(pos.values(), key=lambda v: seqnum(v) or -1, default="")), float(r.health), r.alarm_open,
            r.alarm_since_ms, r.last_ts_ms, r.readings, rows.first_ordinal if len(rows) else 0, rows.ts(),
            rows.seqs(), [dict(m) for m in rows.metric_maps()], rows.score_list(), rows.flag_list(),
        )  # fmt: skip
    return LogDevice(
        r.device_id, r.site, r.line, r.device_type, str(max(pos.values(), key=lambda v: seqnum(v) or -1, default="")),
        float(r.health), r.alarm_open, r.alarm_since_ms, r.last_ts_ms, r.readings, rows[0].ordinal if rows else 0,
        [x.ts_ms for x in rows], [x.seq for x in rows], [dict(x.metrics) for x in rows], [x.score for x in rows],
        [x.anomaly for x in rows],
    )  # fmt: skip


def row_rollups(rows: Sequence[ReadingRow], settings: ProcessorSettings) -> list[RollupDelta]:
    """The 1-minute and 1-hour deltas of stored rows (a compaction's), per device and bucket."""
    ttl_s = settings.rollups_ttl_days * DAY_S
    deltas: list[RollupDelta] = []
    for resolution, width in RESOLUTION_MS.items():
        groups: dict[tuple[str, int], list[ReadingRow]] = {}
        for r in rows:
            groups.setdefault((r.device_id, block_of(r.ts_ms, width)), []).append(r)
        for (device, at), members in groups.items():
            ((_, agg),) = buckets_of_rows(members, width).items()
            first = min(r.ordinal for r in members)
            deltas.append(RollupDelta(device, resolution, at, first, agg.metrics, agg.anomalies, at // 1000 + ttl_s))
    return deltas

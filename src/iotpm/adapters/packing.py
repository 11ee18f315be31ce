"""Compact columns for a device's readings: what a readings chunk and a batch-log entry hold.

DynamoDB bills writes per started kilobyte of an item, so the bytes of a reading are
its cost. A row-per-reading msgpack repeats every metric name, the device's site, line
and type, its key and TTL; these columns store each once: times as offsets from the
first, values as their shortest decimal text (``repr``, exact on the way back; a
device's 55.23 is 5 characters where a double is 9 bytes), sequence numbers as
offsets from the previous, ordinals only where they are not consecutive. Keys and TTLs
are derived (:func:`~iotpm.service.ports.reading_key`; ``ts // 1000 + ttl_s``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from iotpm.service.ports import DeviceRows, LogDevice, LogEntry, ReadingRow, reading_key

Columns = list[Any]


def _numbers(values: Sequence[float]) -> str:
    return ",".join(map(repr, values))


def _floats(text: str) -> list[float]:
    return [float(v) for v in text.split(",")] if text else []


def columns(
    ts: Sequence[int], seq: Sequence[int | None], metrics: Sequence[dict[str, float]], score: Sequence[float],
    anomaly: Sequence[bool],
) -> Columns:  # fmt: skip
    """Readings of one device as columns (see the module's docstring)."""
    names = sorted(set().union(*metrics)) if metrics else []
    base = ts[0] if ts else 0
    values = ";".join(",".join(repr(m[n]) if n in m else "" for n in names) for m in metrics)
    seqs: list[int | None] = []
    last = 0
    for s in seq:
        if s is None:
            seqs.append(None)
        else:
            seqs.append(s - last)
            last = s
    flagged = [i for i, a in enumerate(anomaly) if a]
    return [base, [t - base for t in ts], seqs, names, values, _numbers(score), flagged]


def uncolumns(
    cols: Columns,
) -> tuple[list[int], list[int | None], list[dict[str, float]], list[float], list[bool]]:
    """Inverse of :func:`columns`: ts, seq, metrics, score, anomaly."""
    base, deltas, seqs, names, values, scores, flagged = cols
    ts = [base + d for d in deltas]
    seq: list[int | None] = []
    last = 0
    for s in seqs:
        if s is None:
            seq.append(None)
        else:
            last += s
            seq.append(last)
    metrics: list[dict[str, float]] = [{} for _ in ts] if not names else []
    for row in values.split(";") if deltas and names else []:
        metrics.append({n: float(v) for n, v in zip(names, row.split(","), strict=True) if v != ""})
    flags = [False] * len(ts)
    for i in flagged:
        flags[i] = True
    return ts, seq, metrics, _floats(scores), flags


def chunk_columns(rows: Sequence[ReadingRow]) -> Columns:
    """One chunk's rows (one device) as columns, with their sites, ordinals and TTLs.

    Rows given as :class:`~iotpm.service.ports.DeviceRows` are packed from their columns (no
    row built), into the same columns."""
    if isinstance(rows, DeviceRows):
        return _run_columns(rows)
    places: list[tuple[str, str, str]] = []
    where = []
    for r in rows:
        place = (r.site, r.line, r.device_type)
        if not places or places[-1] != place:
            places.append(place)
        where.append(len(places) - 1)
    first = rows[0].ordinal
    steps = [r.ordinal - first - i for i, r in enumerate(rows)]
    ttl = {r.expires_at - r.ts_ms // 1000 for r in rows}
    cols = columns([r.ts_ms for r in rows], [r.seq for r in rows], [dict(r.metrics) for r in rows],
                   [r.score for r in rows], [r.anomaly for r in rows])  # fmt: skip
    return [
        rows[0].device_id,
        [list(p) for p in places],
        where if len(places) > 1 else [],
        first,
        steps if any(steps) else [],
        ttl.pop() if len(ttl) == 1 else [r.expires_at for r in rows],
        cols,
    ]


def _run_columns(run: DeviceRows) -> Columns:
    """:func:`chunk_columns` of a run of rows: consecutive ordinals, one TTL (``ttl_s`` after each reading)."""
    readings = run.readings()
    places: list[tuple[str, str, str]] = []
    where = []
    for r in readings:
        place = (r.site, r.line, r.device_type)
        if not places or places[-1] != place:
            places.append(place)
        where.append(len(places) - 1)
    cols = columns([r.ts_ms for r in readings], [r.seq for r in readings], [dict(r.metrics) for r in readings],
                   run.score_list(), run.flag_list())  # fmt: skip
    return [readings[0].device_id, [list(p) for p in places], where if len(places) > 1 else [], run.first_ordinal,
            [], run.ttl_s, cols]  # fmt: skip


def chunk_uncolumns(data: Columns) -> list[ReadingRow]:
    """Inverse of :func:`chunk_columns`."""
    device, places, where, first, steps, ttl, cols = data
    ts, seq, metrics, score, anomaly = uncolumns(cols)
    out = []
    for i, t in enumerate(ts):
        site, line, kind = places[where[i] if where else 0]
        expires = ttl[i] if isinstance(ttl, list) else t // 1000 + ttl
        ordinal = first + i + (steps[i] if steps else 0)
        out.append(ReadingRow(device, t, reading_key(t, seq[i], metrics[i]), seq[i], site, line, kind, metrics[i],
                              score[i], anomaly[i], expires, ordinal))  # fmt: skip
    return out


def _suffix(value: str, key: str) -> list[Any]:
    """``value`` as the length it shares with ``key`` and the rest (sequence numbers of one shard share most)."""
    n = 0
    for a, b in zip(value, key, strict=False):
        if a != b:
            break
        n += 1
    return [n, value[n:]]


def entry_columns(entry: LogEntry) -> Columns:
    """A log entry as columns: its devices' views and readings."""
    digits = entry.key[3:]
    devices = [
        [
            d.device_id, d.site, d.line, d.device_type, _suffix(d.newest, digits), repr(d.health), d.alarm_open,
            d.alarm_since_ms, None if d.ts and d.last_ts_ms == max(d.ts) else d.last_ts_ms,
            d.readings - d.first_ordinal - len(d.ts), d.first_ordinal,
            columns(d.ts, d.seq, d.metrics, d.score, d.anomaly),
        ]
        for d in entry.devices
    ]  # fmt: skip
    return [entry.key, entry.written_ms, entry.ttl_s, devices]


def entry_uncolumns(data: Columns) -> LogEntry:
    """Inverse of :func:`entry_columns`."""
    key, written, ttl_s, devices = data
    digits = key[3:]
    out = []
    for device, site, line, kind, (n, rest), health, alarm, since, last_ts, extra, first, cols in devices:
        ts, seq, metrics, score, anomaly = uncolumns(cols)
        out.append(LogDevice(device, site, line, kind, digits[:n] + rest, float(health), alarm, since,
                             max(ts) if last_ts is None else last_ts, first + len(ts) + extra, first, ts, seq,
                             metrics, score, anomaly))  # fmt: skip
    return LogEntry(key, written, ttl_s, out)

"""Parquet compaction of the raw archive: each closed hour's readings as one Parquet object.

The processor archives every batch as a small gzip JSON Lines object (one per shard
and batch, ~2 KB to a few hundred KB): a day of a plant is thousands of objects that
every query reads and parses whole, and objects under 128 KB are never moved to
cheaper storage classes by the lifecycle. The job reads an hour's raw objects once and
writes ``compacted/readings/year=/month=/day=/hour=/part-00000.parquet``: the rows of
``${readings}`` itself (``sql/readings.sql``, run by DuckDB over the hour's objects and
the quarantine around it), so a compacted hour answers exactly as its raw objects did:
keyed by the publishing thing, de-duplicated on (shard, sequence number), rejected
records left out, metrics parsed once. Then it moves the mark
(``compacted/_state/state.json``, ``through_hour``): the queries read Parquet before
the mark and raw objects from it on.

An hour is closed ``grace_s`` after it ends: a batch is archived under its first
record's arrival hour, and the stream may hold a record up to the event source
mapping's maximum record age before the processor archives it. Hours are compacted in
order, ``max_hours`` per run (a Lambda's time is bounded; the next run goes on). A rerun
writes the same keys, so a run that fails half way is simply done again.

The same code runs in the compaction Lambda (:mod:`iotpm.handlers.compaction`, S3
through :class:`iotpm.adapters.s3_files.S3ArchiveFiles`) and locally over a folder
copy of the archive (:class:`FolderFiles`).
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Final, Protocol

from iotpm.analytics.duck import (
    COMPACTED_COLUMNS,
    COMPACTED_PREFIX,
    LISTED,
    QUARANTINE_PREFIX,
    RAW_PREFIX,
    STATE_KEY,
    ArchiveDB,
    Mark,
    Sources,
    hour_key,
)
from iotpm.analytics.queries import render

HOUR_MS: Final = 3_600_000


class ArchiveFiles(Protocol):
    """The archive's objects as files: an S3 bucket, or a folder copy of one."""

    def hours(self, prefix: str, since: str | None) -> list[str]:
        """The hours (``YYYYMMDDHH``, sorted) with objects under ``prefix``, from ``since`` on."""
        ...

    def fetch(self, prefix: str, hour: str, dest: Path, suffix: str = ".jsonl.gz") -> list[Path]:
        """Local paths of the hour's objects under ``prefix`` (copied into ``dest`` when remote)."""
        ...

    def put_file(self, key: str, path: Path) -> None: ...

    def get_text(self, key: str) -> str | None: ...

    def put_text(self, key: str, text: str) -> None: ...


def partition(hour: str) -> str:
    """``year=YYYY/month=MM/day=DD/hour=HH`` of an hour key."""
    return f"year={hour[:4]}/month={hour[4:6]}/day={hour[6:8]}/hour={hour[8:10]}"


def hour_at(epoch_ms: int) -> str:
    return f"{datetime.fromtimestamp(epoch_ms / 1000, tz=UTC):%Y%m%d%H}"


def shift(hour: str, hours: int) -> str:
    at = datetime.strptime(hour, "%Y%m%d%H").replace(tzinfo=UTC) + timedelta(hours=hours)
    return f"{at:%Y%m%d%H}"


class FolderFiles:
    """:class:`ArchiveFiles` over a folder that mirrors the bucket's keys."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def hours(self, prefix: str, since: str | None) -> list[str]:
        found = {hour_key(p.relative_to(self.root)) for p in (self.root / prefix).glob("year=*/month=*/day=*/hour=*")}
        return sorted(h for h in found if len(h) == 10 and (since is None or h >= since))

    def fetch(self, prefix: str, hour: str, dest: Path, suffix: str = ".jsonl.gz") -> list[Path]:
        return sorted((self.root / prefix / partition(hour)).glob(f"*{suffix}"))

    def put_file(self, key: str, path: Path) -> None:
        target = self.root / key
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(target.name + ".part")
        shutil.copyfile(path, tmp)
        tmp.replace(target)

    def get_text(self, key: str) -> str | None:
        try:
            return (self.root / key).read_text()
        except FileNotFoundError:
            return None

    def put_text(self, key: str, text: str) -> None:
        target = self.root / key
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(target.name + ".part")
        tmp.write_text(text)
        tmp.replace(target)


@dataclass(frozen=True, slots=True)
class CompactionSettings:
    """When an hour counts as closed, how far around it rejections are looked up, how much one run does."""

    #: seconds after an hour ends before it is compacted (>= the mapping's maximum record age)
    grace_s: int = 7200
    #: how many hours a retry's copy of a record can lag the first copy's partition
    #: (the mapping's maximum record age, rounded up, plus one): duplicates and
    #: rejections are looked up this far around an hour
    window_h: int = 3
    #: hours compacted per run at most
    max_hours: int = 48
    #: Parquet compression (Athena reads ZSTD and SNAPPY)
    compression: str = "zstd"


@dataclass(slots=True)
class CompactionResult:
    """What one run did."""

    hours: list[str] = field(default_factory=list)
    rows: int = 0
    parquet_bytes: int = 0
    raw_objects: int = 0
    through_hour: str | None = None

    def as_dict(self) -> dict[str, object]:
        return {"hours": self.hours, "rows": self.rows, "parquet_bytes": self.parquet_bytes,
                "raw_objects": self.raw_objects, "through_hour": self.through_hour}  # fmt: skip


class Compactor:
    """Compacts the closed hours after the mark, in order; see the module's docstring."""

    def __init__(self, files: ArchiveFiles, settings: CompactionSettings | None = None) -> None:
        self.files = files
        self.settings = settings or CompactionSettings()

    def through(self) -> str | None:
        mark = Mark.parse(self.files.get_text(STATE_KEY))
        return mark.through_hour if mark else None

    def __call__(self, now_ms: int) -> CompactionResult:
        s = self.settings
        through = self.through()
        last_closed = hour_at(now_ms - s.grace_s * 1000 - HOUR_MS)
        due = [h for h in self.files.hours(RAW_PREFIX, through) if h <= last_closed][: s.max_hours]
        result = CompactionResult(through_hour=through)
        with tempfile.TemporaryDirectory(prefix="iotpm-compact-") as tmp:
            for hour in due:
                try:
                    self._hour(hour, Path(tmp) / hour, result)
                finally:  # a catch-up run covers many hours: /tmp (512 MB in Lambda) holds one at a time
                    shutil.rmtree(Path(tmp) / hour, ignore_errors=True)
                result.hours.append(hour)
                self._mark(result, shift(hour, 1))
        end = shift(last_closed, 1)
        if len(due) < s.max_hours and (result.through_hour is None or end > result.through_hour):
            self._mark(result, end)  # every closed hour is done: past the closed hours without objects too
        return result

    def _mark(self, result: CompactionResult, through: str) -> None:
        self.files.put_text(STATE_KEY, Mark(through, shift(through, -self.settings.window_h)).as_json())
        result.through_hour = through

    def _hour(self, hour: str, work: Path, result: CompactionResult) -> None:
        work.mkdir(parents=True, exist_ok=True)
        raw = self.files.fetch(RAW_PREFIX, hour, work)
        w = self.settings.window_h
        quarantine = [p for h in range(-w, w + 1) for p in self.files.fetch(QUARANTINE_PREFIX, shift(hour, h), work)]
        # the hours just compacted: a record they hold is not this hour's (the earliest copy counts)
        recent = [p for h in range(-w, 0) for p in self.files.fetch(COMPACTED_PREFIX, shift(hour, h), work, ".parquet")]
        db = ArchiveDB(sources=Sources(raw=raw, pending=raw, recent=recent, quarantine=quarantine))
        out = work / "part-00000.parquet"
        try:
            rows = compact_rows(db, out, self.settings.compression)
        finally:
            db.close()
        result.raw_objects += len(raw)
        if rows:
            self.files.put_file(f"{COMPACTED_PREFIX}/{partition(hour)}/part-00000.parquet", out)
            result.rows += rows
            result.parquet_bytes += out.stat().st_size


def compact_rows(db: ArchiveDB, out: Path, compression: str = "zstd") -> int:
    """Write ``${readings}`` over ``db``'s sources to ``out`` as Parquet, by device and time; the rows written."""
    columns = ", ".join(COMPACTED_COLUMNS)
    readings = render("${readings}", LISTED)
    select = f"SELECT {columns} FROM {readings} r ORDER BY device_id, ts_ms, sequence_number"
    target = str(out).replace("'", "''")
    options = f"FORMAT parquet, COMPRESSION {compression}, ROW_GROUP_SIZE 122880"
    (count,) = db.con.execute(f"COPY ({select}) TO '{target}' ({options})").fetchone() or (0,)
    return int(count)


def compact_folder(root: Path, now_ms: int, settings: CompactionSettings | None = None) -> CompactionResult:
    """Compact a folder copy of the archive in place (what ``iotpm query --compact`` runs)."""
    return Compactor(FolderFiles(root), settings)(now_ms)


__all__: Sequence[str] = (
    "ArchiveFiles",
    "CompactionResult",
    "CompactionSettings",
    "Compactor",
    "FolderFiles",
    "compact_folder",
    "compact_rows",
)

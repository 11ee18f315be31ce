"""The named queries run locally: DuckDB over a folder holding a copy of the archive.

The folder mirrors the bucket (``raw/year=/month=/day=/hour=/*.jsonl.gz``,
``quarantine/...`` and what the compaction job wrote: ``compacted/readings/...`` as
Parquet and ``compacted/_state/state.json``); :meth:`iotpm.adapters.s3.S3Archive.download`
fills it from the emulator or from AWS. Views stand in for the Glue tables
(``raw_records``, ``quarantine_records``, ``compacted_readings``, ``compaction_state``:
same columns, partition columns as text) and a few macros give DuckDB the Trino
functions the SQL uses, so the files run unchanged. One difference: the raw records of
the hours not yet compacted are a view of their own files (``raw_pending``), listed
here, because DuckDB reads every file of a view whose partitions are compared with a
joined value.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from iotpm.analytics.queries import render

#: Trino functions the named queries use, as DuckDB macros
TRINO_MACROS: Final = (
    "CREATE MACRO json_extract_scalar(j, p) AS json_extract_string(j, p)",
    "CREATE MACRO json_format(j) AS CAST(j AS VARCHAR)",
)
PARTITIONS: Final = ("year", "month", "day", "hour")
#: the Glue tables' columns (terraform/modules/analytics/main.tf), in DuckDB types
RAW_COLUMNS: Final = {
    "arrival_ms": "BIGINT",
    "data": "VARCHAR",
    "partition_key": "VARCHAR",
    "sequence_number": "VARCHAR",
    "shard_id": "VARCHAR",
}
QUARANTINE_COLUMNS: Final = {
    "reason": "VARCHAR",
    "detail": "VARCHAR",
    "device_id": "VARCHAR",
    "sequence_number": "VARCHAR",
    "partition_key": "VARCHAR",
    "arrival_ms": "BIGINT",
    "payload": "JSON",
    "partial": "BOOLEAN",
}
#: the compaction job's Parquet columns (``${readings}`` less its partition columns)
COMPACTED_COLUMNS: Final = {
    "device_id": "VARCHAR",
    "site": "VARCHAR",
    "line": "VARCHAR",
    "device_type": "VARCHAR",
    "ts_ms": "BIGINT",
    "arrival_ms": "BIGINT",
    "metrics": "VARCHAR",
    "temperature_c": "DOUBLE",
    "pressure_psi": "DOUBLE",
    "vibration_mm_s": "DOUBLE",
    "shard_id": "VARCHAR",
    "sequence_number": "VARCHAR",
}
RAW_PREFIX: Final = "raw"
QUARANTINE_PREFIX: Final = "quarantine"
COMPACTED_PREFIX: Final = "compacted/readings"
STATE_KEY: Final = "compacted/_state/state.json"


def hour_key(path: Path | str) -> str:
    """``YYYYMMDDHH`` of an archive key's Hive partition (``.../year=2026/month=11/day=30/hour=07/x``)."""
    parts = {k: v for k, _, v in (p.partition("=") for p in str(path).split("/")) if k in PARTITIONS}
    return "".join(parts.get(p, "") for p in PARTITIONS)


@dataclass(frozen=True, slots=True)
class Mark:
    """The compaction job's state: hours before ``through_hour`` are compacted; a retry's copy
    of a pending hour's record can be in the compacted hours from ``window_from_hour`` on."""

    through_hour: str
    window_from_hour: str

    @classmethod
    def parse(cls, text: str | None) -> Mark | None:
        try:
            state = json.loads(text or "")
            return cls(str(state["through_hour"]), str(state["window_from_hour"]))
        except (ValueError, KeyError, TypeError):
            return None

    def as_json(self) -> str:
        return json.dumps({"through_hour": self.through_hour, "window_from_hour": self.window_from_hour}) + "\n"


def read_mark(root: Path) -> Mark | None:
    """The compaction job's mark in a folder copy (None: nothing is compacted)."""
    try:
        return Mark.parse((root / STATE_KEY).read_text())
    except OSError:
        return None


@dataclass(frozen=True, slots=True)
class Sources:
    """The files behind each view; what :meth:`of_folder` finds, or what the compaction job picks."""

    raw: Sequence[Path] = ()
    pending: Sequence[Path] = ()
    compacted: Sequence[Path] = ()
    recent: Sequence[Path] = ()
    quarantine: Sequence[Path] = ()
    mark: Mark | None = None
    #: raw_records over a glob (the whole folder) rather than a list
    raw_glob: Path | None = field(default=None)

    @classmethod
    def of_folder(cls, root: Path) -> Sources:
        """A folder copy of the archive: Parquet before the state's mark, raw objects from it on."""
        mark = read_mark(root)
        through = mark.through_hour if mark else ""
        raw = _files(root, RAW_PREFIX, "*.jsonl.gz")
        compacted = [p for p in _files(root, COMPACTED_PREFIX, "*.parquet") if hour_key(p) < through]
        return cls(
            raw=raw,
            pending=[p for p in raw if hour_key(p) >= through],
            compacted=compacted,
            recent=[p for p in compacted if mark and hour_key(p) >= mark.window_from_hour],
            quarantine=_files(root, QUARANTINE_PREFIX, "*.jsonl.gz"),
            mark=mark,
            raw_glob=root / RAW_PREFIX / "year=*" / "month=*" / "day=*" / "hour=*" / "*.jsonl.gz" if raw else None,
        )


def _files(root: Path, prefix: str, pattern: str) -> list[Path]:
    return sorted((root / prefix).glob(f"year=*/month=*/day=*/hour=*/{pattern}"))


@dataclass(frozen=True, slots=True)
class Result:
    """A query's column names and rows."""

    columns: list[str]
    rows: list[tuple[Any, ...]]

    def records(self) -> list[dict[str, Any]]:
        """The rows as dicts by column name."""
        return [dict(zip(self.columns, row, strict=True)) for row in self.rows]


class ArchiveDB:
    """An in-memory DuckDB with an archive's files as the Glue tables' views.

    ``ArchiveDB(root)`` reads a folder copy of the archive; ``sources`` picks the files
    (the compaction job runs ``${readings}`` over one hour's objects this way).
    """

    def __init__(self, root: Path | None = None, *, sources: Sources | None = None) -> None:
        try:
            import duckdb
        except ImportError as exc:  # the analytics extra is not installed
            raise RuntimeError("the local queries need DuckDB: pip install 'iotpm[analytics]'") from exc

        if sources is None:
            if root is None:
                raise ValueError("ArchiveDB needs a folder or its sources")
            sources = Sources.of_folder(root)
        self.root, self.sources = root, sources
        self.con = duckdb.connect(":memory:")
        for macro in TRINO_MACROS:
            self.con.execute(macro)
        self._json_view("raw_records", sources.raw_glob or sources.raw, RAW_COLUMNS)
        self._json_view("raw_pending", sources.pending, RAW_COLUMNS)
        self._json_view("quarantine_records", sources.quarantine, QUARANTINE_COLUMNS)
        self._parquet_view("compacted_readings", sources.compacted)
        self._parquet_view("compacted_recent", sources.recent)
        mark = sources.mark
        through, since = (_literal(mark.through_hour), _literal(mark.window_from_hour)) if mark else ("NULL", "NULL")
        self.con.execute(f"CREATE VIEW compaction_state AS SELECT CAST({through} AS VARCHAR) AS through_hour, "
                         f"CAST({since} AS VARCHAR) AS window_from_hour WHERE {through} IS NOT NULL")  # fmt: skip

    def _json_view(self, name: str, files: Path | Sequence[Path], columns: dict[str, str]) -> None:
        picked = ", ".join("CAST(payload AS VARCHAR) AS payload" if c == "payload" else c for c in columns)
        if isinstance(files, Path) or files:
            cols = "{" + ", ".join(f"'{c}': '{t}'" for c, t in columns.items()) + "}"
            source = (
                f"read_json({_paths(files)}, format = 'newline_delimited', columns = {cols}, "
                f"hive_partitioning = true, hive_types = {_HIVE_TYPES}, compression = 'gzip')"
            )
        else:  # no objects: an empty table, not an error
            source = _empty(columns)
        self.con.execute(f"CREATE VIEW {name} AS SELECT {picked}, {', '.join(PARTITIONS)} FROM {source}")

    def _parquet_view(self, name: str, files: Sequence[Path]) -> None:
        picked = ", ".join([*COMPACTED_COLUMNS, *PARTITIONS])
        if files:
            source = f"read_parquet({_paths(files)}, hive_partitioning = true, hive_types = {_HIVE_TYPES})"
        else:
            source = _empty(COMPACTED_COLUMNS)
        self.con.execute(f"CREATE VIEW {name} AS SELECT {picked} FROM {source}")

    def query(self, sql: str, params: Sequence[Any] = ()) -> Result:
        """Run ``sql`` (``${readings}``/``${quarantine}`` substituted) with positional parameters."""
        cur = self.con.execute(render(sql, LISTED), list(params))
        columns = [d[0] for d in cur.description or []]
        return Result(columns, [tuple(r) for r in cur.fetchall()])

    def named(self, name: str, params: Sequence[Any]) -> list[dict[str, Any]]:
        """A named query's rows (a :data:`iotpm.analytics.report.RunQuery`)."""
        from iotpm.analytics.queries import named_queries

        return self.query(named_queries()[name].template, params).records()

    def close(self) -> None:
        self.con.close()


#: the subqueries' parts as this database's views of listed files
LISTED: Final = {"raw_pending": "raw_pending", "compacted_recent": "compacted_recent"}
_HIVE_TYPES: Final = "{" + ", ".join(f"'{p}': 'VARCHAR'" for p in PARTITIONS) + "}"


def _empty(columns: dict[str, str]) -> str:
    nulls = ", ".join(f"CAST(NULL AS {'VARCHAR' if t == 'JSON' else t}) AS {c}" for c, t in columns.items())
    return f"(SELECT {nulls}, {', '.join(f'CAST(NULL AS VARCHAR) AS {p}' for p in PARTITIONS)} WHERE false)"


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _paths(files: Path | Iterable[Path]) -> str:
    if isinstance(files, Path):
        return _literal(str(files))
    return "[" + ", ".join(_literal(str(p)) for p in files) + "]"

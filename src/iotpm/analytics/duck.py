"""The named queries run locally: DuckDB over a folder holding a copy of the archive.

The folder mirrors the bucket (``raw/year=/month=/day=/hour=/*.jsonl.gz`` and
``quarantine/...``); :meth:`iotpm.adapters.s3.S3Archive.download` fills it from the
emulator or from AWS. Two views stand in for the Glue tables (``raw_records``,
``quarantine_records``, same columns, partition columns as text) and a few macros
give DuckDB the Trino functions the SQL uses, so the files run unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from iotpm.analytics.queries import render

#: Trino functions the named queries use, as DuckDB macros
TRINO_MACROS: Final = (
    "CREATE MACRO json_extract_scalar(j, p) AS json_extract_string(j, p)",
    "CREATE MACRO json_format(j) AS CAST(j AS VARCHAR)",
)
PARTITIONS: Final = ("year", "month", "day", "hour")
#: the Glue tables' columns (terraform/modules/analytics/tables.tf), in DuckDB types
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
}


@dataclass(frozen=True, slots=True)
class Result:
    """A query's column names and rows."""

    columns: list[str]
    rows: list[tuple[Any, ...]]

    def records(self) -> list[dict[str, Any]]:
        """The rows as dicts by column name."""
        return [dict(zip(self.columns, row, strict=True)) for row in self.rows]


class ArchiveDB:
    """An in-memory DuckDB with the archive folder ``root`` as ``raw_records`` and ``quarantine_records``."""

    def __init__(self, root: Path) -> None:
        try:
            import duckdb
        except ImportError as exc:  # the analytics extra is not installed
            raise RuntimeError("the local queries need DuckDB: pip install 'iotpm[analytics]'") from exc

        self.root = root
        self.con = duckdb.connect(":memory:")
        for macro in TRINO_MACROS:
            self.con.execute(macro)
        self._view("raw_records", "raw", RAW_COLUMNS)
        self._view("quarantine_records", "quarantine", QUARANTINE_COLUMNS)

    def _view(self, name: str, prefix: str, columns: dict[str, str]) -> None:
        pattern = self.root / prefix / "year=*" / "month=*" / "day=*" / "hour=*" / "*.jsonl.gz"
        payload = "CAST(payload AS VARCHAR) AS payload" if "payload" in columns else None
        picked = ", ".join(payload if c == "payload" and payload else c for c in columns)
        parts = ", ".join(PARTITIONS)
        if any(self.root.glob(str(pattern.relative_to(self.root)))):
            cols = "{" + ", ".join(f"'{c}': '{t}'" for c, t in columns.items()) + "}"
            types = "{" + ", ".join(f"'{p}': 'VARCHAR'" for p in PARTITIONS) + "}"
            source = (
                f"read_json('{_quoted(pattern)}', format = 'newline_delimited', columns = {cols}, "
                f"hive_partitioning = true, hive_types = {types}, compression = 'gzip')"
            )
        else:  # an empty archive is an empty table, not an error
            nulls = ", ".join(f"CAST(NULL AS {'VARCHAR' if t == 'JSON' else t}) AS {c}" for c, t in columns.items())
            source = f"(SELECT {nulls}, {', '.join(f'CAST(NULL AS VARCHAR) AS {p}' for p in PARTITIONS)} WHERE false)"
        self.con.execute(f"CREATE VIEW {name} AS SELECT {picked}, {parts} FROM {source}")

    def query(self, sql: str, params: Sequence[Any] = ()) -> Result:
        """Run ``sql`` (``${readings}``/``${quarantine}`` substituted) with positional parameters."""
        cur = self.con.execute(render(sql), list(params))
        columns = [d[0] for d in cur.description or []]
        return Result(columns, [tuple(r) for r in cur.fetchall()])

    def named(self, name: str, params: Sequence[Any]) -> list[dict[str, Any]]:
        """A named query's rows (a :data:`iotpm.analytics.report.RunQuery`)."""
        from iotpm.analytics.queries import named_queries

        return self.query(named_queries()[name].template, params).records()

    def close(self) -> None:
        self.con.close()


def _quoted(path: Path) -> str:
    return str(path).replace("'", "''")

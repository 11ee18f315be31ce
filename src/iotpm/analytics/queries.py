"""The named queries over the archive: one set of SQL files for Athena and DuckDB.

Each ``sql/<name>.sql`` file is a Trino (Athena engine 3) query with positional ``?``
parameters; its header says what it answers and which parameters it takes. The
queries read the archive through two subqueries, ``${readings}`` and
``${quarantine}`` (``sql/readings.sql``, ``sql/quarantine.sql``), which are
substituted in before a query runs: Terraform does it with ``templatefile`` for the
Athena named queries, :func:`render` does it here, with the same ``${name}`` syntax.
The subqueries de-duplicate the archive on its key, (shard_id, sequence_number).
``readings.sql`` has parts of its own (``sql/parts/``, outside the folder Terraform makes
named queries of): ``${raw_pending}``, the raw records of the hours not yet compacted to
Parquet, and ``${compacted_recent}``, the compacted hours just before them. DuckDB hands
its own relations for both (their hours' files, listed), since it cannot prune
partitions on a joined value.
"""

from __future__ import annotations

import functools
import re
import string
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from typing import Final

#: the subqueries the named queries are written over (substituted, not named queries)
SUBQUERIES: Final = ("readings", "quarantine")
#: the subqueries' own parts (``sql/parts/<name>.sql``), substituted into them first
PARTS: Final = ("raw_pending", "compacted_recent")
_HEADER = re.compile(r"^-- (name|description|params): ?(.*)$", re.MULTILINE)


@dataclass(frozen=True, slots=True)
class NamedQuery:
    """One named query: its name, what it answers, its parameters and its SQL (with placeholders)."""

    name: str
    description: str
    params: tuple[str, ...]
    template: str

    def render(self) -> str:
        """The runnable SQL: the archive's subqueries substituted in."""
        return render(self.template)


@functools.cache
def _sql_text(*path: str) -> str:
    return resources.files("iotpm.analytics").joinpath("sql", *path).read_text(encoding="utf-8").strip()


def render(sql: str, parts: Mapping[str, str] | None = None) -> str:
    """``sql`` with ``${readings}`` and ``${quarantine}`` replaced by the archive's subqueries.

    ``parts`` replaces a subquery's part (``raw_pending``) with another relation that
    holds the same rows. ``safe_substitute``: JSON paths (``'$.metrics'``) are not placeholders.
    """
    inner = {name: _sql_text("parts", f"{name}.sql") for name in PARTS} | dict(parts or {})
    subs = {name: string.Template(_sql_text(f"{name}.sql")).safe_substitute(inner) for name in SUBQUERIES}
    return string.Template(sql).safe_substitute(subs)


def named_queries() -> dict[str, NamedQuery]:
    """Every named query shipped in ``sql/``, by name."""
    out: dict[str, NamedQuery] = {}
    for entry in sorted(resources.files("iotpm.analytics").joinpath("sql").iterdir(), key=lambda e: e.name):
        stem = entry.name.removesuffix(".sql")
        if not entry.name.endswith(".sql") or stem in SUBQUERIES:
            continue
        text = entry.read_text(encoding="utf-8")
        header = dict(_HEADER.findall(text))
        params = tuple(p.strip() for p in header.get("params", "").split(",") if p.strip())
        out[stem] = NamedQuery(header.get("name", stem), header.get("description", ""), params, text)
    return out

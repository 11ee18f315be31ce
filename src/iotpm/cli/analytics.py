"""``iotpm query`` and ``iotpm report``: the analytics layer from the command line.

``query`` runs a named query (the SQL Athena runs, ``src/iotpm/analytics/sql``) or any
SQL with DuckDB over a folder copy of the archive: the running twin's by default
(fetched from the emulator's bucket), or ``--archive DIR``.
"""

from __future__ import annotations

import json
import sys
import time
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

console = Console(soft_wrap=True)
err = Console(stderr=True)


def register(app: typer.Typer) -> None:
    """Add ``query`` and ``report`` to the ``iotpm`` app."""
    app.command("query")(query)
    app.command("report")(report)


def _today() -> str:
    return datetime.now(UTC).date().isoformat()


def _archive_folder(archive: Path | None) -> Path:
    from iotpm.local.endpoints import TwinEndpoints, TwinNotRunningError

    if archive is not None:
        return archive
    try:
        folder, fetched = TwinEndpoints.load().sync_archive()
    except TwinNotRunningError as exc:
        err.print(f"[red]error:[/red] {exc} (or pass --archive DIR, a folder copy of an archive bucket)")
        raise typer.Exit(2) from exc
    err.print(f"archive: {folder} ({fetched} new objects fetched from the twin)")
    return folder


def _params(names: tuple[str, ...], given: dict[str, Any], extra: list[str]) -> list[Any]:
    values = dict(given)
    for item in extra:
        key, sep, value = item.partition("=")
        if not sep:
            raise typer.BadParameter(f"--param takes name=value, not {item!r}")
        values[key] = value
    missing = [n for n in names if values.get(n) is None]
    if missing:
        raise typer.BadParameter(f"this query needs {', '.join(missing)} (options or --param name=value)")
    return [values[n] for n in names]


def query(
    name: Annotated[str | None, typer.Argument(help="a named query (see --list); omit with --sql")] = None,
    sql: Annotated[str | None, typer.Option(help="any SQL over raw_records/quarantine_records, ${readings}")] = None,
    device: Annotated[str | None, typer.Option(help="device_id parameter")] = None,
    day: Annotated[str | None, typer.Option(help="one day (YYYY-MM-DD, UTC); default today")] = None,
    from_day: Annotated[str | None, typer.Option("--from", help="first day of a range")] = None,
    to_day: Annotated[str | None, typer.Option("--to", help="last day of a range")] = None,
    silent_minutes: Annotated[float, typer.Option(help="silent_devices: minutes without a reading")] = 15.0,
    late_seconds: Annotated[float, typer.Option(help="late_data: seconds between a reading's time and arrival")] = 60,
    param: Annotated[list[str] | None, typer.Option(help="name=value for a query parameter (repeatable)")] = None,
    archive: Annotated[Path | None, typer.Option(help="a folder copy of the archive (default: the twin's)")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON lines instead of a table")] = False,
    list_queries: Annotated[bool, typer.Option("--list", help="list the named queries and exit")] = False,
    compact: Annotated[
        bool, typer.Option("--compact", help="first compact the copy's closed hours to Parquet (as the job does)")
    ] = False,
) -> None:
    """Run a named query (the Athena workgroup's) or any SQL over the archive with DuckDB.

    It reads the Parquet the compaction job wrote plus the raw objects of the hours not
    compacted yet, as Athena does.
    """
    from iotpm.analytics.duck import ArchiveDB
    from iotpm.analytics.queries import named_queries

    queries = named_queries()
    if list_queries:
        for q in queries.values():
            console.print(f"[bold]{q.name}[/bold] ({', '.join(q.params)}): {q.description}")
        return
    if (name is None) == (sql is None):
        err.print("[red]error:[/red] give a query name or --sql (see --list)")
        raise typer.Exit(2)
    if name is not None and name not in queries:
        err.print(f"[red]error:[/red] no query {name!r}; named queries: {', '.join(queries)}")
        raise typer.Exit(2)
    first = from_day or day or _today()
    given = {"device_id": device, "from_day": first, "to_day": to_day or day or first,
             "silent_minutes": silent_minutes, "late_seconds": late_seconds}  # fmt: skip
    for d in (given["from_day"], given["to_day"]):
        date.fromisoformat(str(d))  # a wrong day fails here, not as an empty result
    text, names = (queries[name].template, queries[name].params) if name else (str(sql), ())
    values = _params(names, given, param or [])
    folder = _archive_folder(archive)
    if compact:
        from iotpm.analytics.compaction import compact_folder

        done = compact_folder(folder, int(time.time() * 1000))
        err.print(f"compacted {len(done.hours)} hours ({done.rows:,} readings); raw from {done.through_hour} on")
    db = ArchiveDB(folder)
    started = time.perf_counter()
    result = db.query(text, values)
    elapsed = time.perf_counter() - started
    if as_json:
        for record in result.records():
            sys.stdout.write(json.dumps(record, default=str) + "\n")
    else:
        table = Table(title=name or "query")
        for col in result.columns:
            table.add_column(col)
        for row in result.rows:
            table.add_row(*("" if v is None else str(v) for v in row))
        console.print(table)
    err.print(f"{len(result.rows)} rows in {elapsed:.2f} s")


def report(
    out: Annotated[Path, typer.Option(help="folder for report.html and report.json")] = Path("report"),
    hours: Annotated[float, typer.Option(min=0.1, help="the period: the last N hours")] = 24.0,
    site: Annotated[str | None, typer.Option(help="only this site")] = None,
    line: Annotated[str | None, typer.Option(help="only this line")] = None,
    archive: Annotated[Path | None, typer.Option(help="a folder copy of the archive (default: the twin's)")] = None,
    api_url: Annotated[str | None, typer.Option(envvar="IOTPM_API_URL", help="the API (default: the twin's)")] = None,
    api_key: Annotated[str | None, typer.Option(envvar="IOTPM_API_KEY", help="its key")] = None,
) -> None:
    """The fleet report (what the scheduled report Lambda writes) from the local twin."""
    from iotpm.analytics.duck import ArchiveDB
    from iotpm.analytics.report import ReportOptions, build_report, http_get
    from iotpm.local.endpoints import TwinEndpoints, TwinNotRunningError

    if api_url is None or api_key is None:
        try:
            twin = TwinEndpoints.load()
        except TwinNotRunningError as exc:
            err.print(f"[red]error:[/red] {exc} (or pass --api-url and --api-key)")
            raise typer.Exit(2) from exc
        api_url, api_key = twin.api_url, twin.api_key
    db = ArchiveDB(_archive_folder(archive))
    started = time.perf_counter()
    opts = ReportOptions(until=datetime.now(UTC), hours=hours, site=site, line=line)
    built = build_report(http_get(api_url, api_key), db.named, opts)
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.json").write_text(json.dumps(built.as_json(), indent=2))
    (out / "report.html").write_text(built.html())
    console.print(built.summary())
    err.print(f"wrote {out / 'report.html'} and {out / 'report.json'} in {time.perf_counter() - started:.2f} s")

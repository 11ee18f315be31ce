"""``iotpm detect``: the options, their checks and the summary (the engine is :mod:`iotpm.cli.detect`)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import IO, Annotated, Any, Literal

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from iotpm.cli.errors import fail, needs, stderr

console = Console(soft_wrap=True)
Summary = Literal["table", "json"]
OutFormat = Literal["json", "csv"]


def register(app: typer.Typer) -> None:
    """Add ``detect`` to the ``iotpm`` app."""
    app.command("detect")(detect)


def detect(
    file: Annotated[
        str, typer.Argument(metavar="FILE", help="CSV with a timestamp column and metric columns; - reads stdin.")
    ],
    timestamp_column: Annotated[str | None, typer.Option(help="Timestamp column (default: detected).")] = None,
    device_column: Annotated[str | None, typer.Option(help="Column naming the device, if any.")] = None,
    line_column: Annotated[str | None, typer.Option(help="Column naming the device's line (for line limits).")] = None,
    type_column: Annotated[
        str | None, typer.Option(help="Column naming the device type (for device-type limits).")
    ] = None,
    metrics: Annotated[str | None, typer.Option(help="Comma-separated metric columns (default: all numeric).")] = None,
    warmup: Annotated[
        int | None,
        typer.Option(
            min=10,
            help="Rows per device fitted as a label-free warm-up before scoring (at least 10, fewer than the "
            "device's rows). Default: the detector learns from its first readings as it scores them.",
        ),
    ] = None,
    config: Annotated[
        Path | None, typer.Option(help="Detector settings, JSON shaped like DetectorConfig (any subset).")
    ] = None,
    limits: Annotated[
        Path | None,
        typer.Option(help="Limits, JSON shaped like ThresholdConfig: defaults, device_type, line, device."),
    ] = None,
    limit: Annotated[
        list[str] | None,
        typer.Option(help="METRIC=LOW:HIGH (either side may be empty), e.g. temperature_c=10:85; repeatable."),
    ] = None,
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", help="A detector setting KEY=VALUE, e.g. spike_z=7 or alarm.min_duration=3; repeatable."),
    ] = None,
    out: Annotated[str | None, typer.Option(help="Write each alarm raise here; - is stdout.")] = None,
    out_format: Annotated[
        OutFormat | None, typer.Option(help="Format of --out (default: by its suffix; json for -).")
    ] = None,
    plot: Annotated[
        str | None, typer.Option(help="Draw metrics, limits, baseline band and alarms to a PNG; - is stdout.")
    ] = None,
    summary: Annotated[Summary, typer.Option("--format", help="The summary: a table, or JSON for scripts.")] = "table",
    progress: Annotated[
        bool | None, typer.Option("--progress/--no-progress", help="A progress bar on stderr (default: on a terminal).")
    ] = None,
    chunk_rows: Annotated[int, typer.Option(min=1, help="Rows read and scored at a time (memory per chunk).")] = 50_000,
) -> None:
    """Run the shipped detector over historical data and report what it would have raised.

    The file is read in chunks, so memory does not grow with its length. Rows of a device
    must come in time order across chunks; a row older than one already analysed is skipped
    (and counted). Times in the output are ISO 8601 UTC, as the API gives them.
    """
    from iotpm.cli.detect import AlarmWriter, CsvError, CsvSource, run_detection

    to_stdout = _stdout_users(out, plot, summary)
    cfg = _detector_config(config, limits, limit or [], set_ or [])
    alarm_out = _open_text(out, "--out") if out is not None else None
    if plot is not None and plot != "-":
        _check_writable(Path(plot), "--plot")
    fmt: OutFormat = out_format or ("csv" if out not in (None, "-") and str(out).lower().endswith(".csv") else "json")
    try:
        chosen = metrics.split(",") if metrics else None
        source = CsvSource(file, timestamp_column, device_column, chosen, chunk_rows, line_column, type_column)
    except CsvError as exc:
        fail(str(exc))
    writer = AlarmWriter(alarm_out, fmt) if alarm_out is not None else None
    try:
        with _progress_bar(progress, source.total_bytes) as step:
            report = run_detection(source, cfg, warmup, writer, plot is not None, step)
    except CsvError as exc:
        fail(str(exc))
    finally:
        source.close()
        if writer is not None:
            writer.close()
        if alarm_out is not None and alarm_out is not sys.stdout:
            alarm_out.close()
    _check_report(report, warmup)
    if summary == "json":
        typer.echo(json.dumps(report.to_json(), indent=2))
    else:
        _print_detect_summary(report, stderr if to_stdout else console)
    if writer is not None and out != "-":
        stderr.print(f"wrote {writer.count} alarm raises to {out}")
    if plot is not None:
        _write_plot(report, cfg, plot)


def _stdout_users(out: str | None, plot: str | None, summary: str) -> list[str]:
    """The options that write to stdout; at most one may."""
    users = [name for name, value in (("--out", out), ("--plot", plot)) if value == "-"]
    if summary == "json":
        users.append("--format json")
    if len(users) > 1:
        fail(f"{' and '.join(users)} both write to stdout; send one of them to a file")
    return users


def _check_report(report: Any, warmup: int | None) -> None:
    """Warnings on stderr; a warm-up that left nothing to analyse is bad input (exit 2)."""
    for warning in report.warnings:
        stderr.print(f"[yellow]warning:[/yellow] {escape(warning)}")
    if warmup is not None and not any(r.analysed for r in report.runs):
        longest = max(r.rows for r in report.runs)
        fail(f"--warmup {warmup} leaves nothing to analyse: it must be shorter than the input (longest device: "
             f"{longest} rows)")  # fmt: skip


def _detector_config(config: Path | None, limits: Path | None, limit: list[str], settings: list[str]) -> Any:
    """DetectorConfig from a file, then limits from a file, then --limit and --set on top."""
    from pydantic import ValidationError

    from iotpm.detection import DetectorConfig, Limits, ThresholdConfig

    try:
        data: dict[str, Any] = _read_json(config, "--config") if config is not None else {}
        cfg = DetectorConfig.model_validate(data)
        if limits is not None:
            cfg = cfg.model_copy(update={"thresholds": ThresholdConfig.model_validate(_read_json(limits, "--limits"))})
        if limit:
            defaults = dict(cfg.thresholds.defaults)
            for spec in limit:
                metric, low, high = _limit_spec(spec)
                defaults[metric] = Limits(low=low, high=high)
            cfg = cfg.model_copy(update={"thresholds": cfg.thresholds.model_copy(update={"defaults": defaults})})
        if settings:
            dumped = cfg.model_dump()
            for spec in settings:
                key, sep, text = spec.partition("=")
                if not sep or not key:
                    fail(f"--set {spec!r}: expected KEY=VALUE, e.g. spike_z=7")
                _set_path(dumped, key.strip(), _json_or_text(text))
            cfg = DetectorConfig.model_validate(dumped)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'config'}: {e['msg']}" for e in exc.errors())
        fail(f"detector settings: {problems}")
    return cfg


def _read_json(path: Path, option: str) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        fail(f"{option} {path}: {exc.strerror or exc}")
    except json.JSONDecodeError as exc:
        fail(f"{option} {path}: not JSON ({exc})")
    if not isinstance(data, dict):
        fail(f"{option} {path}: expected a JSON object")
    return data


def _limit_spec(spec: str) -> tuple[str, float | None, float | None]:
    metric, sep, bounds = spec.partition("=")
    low_text, colon, high_text = bounds.partition(":")
    if not sep or not colon or not metric.strip():
        fail(f"--limit {spec!r}: expected METRIC=LOW:HIGH, e.g. temperature_c=10:85 or vibration_mm_s=:4.5")
    try:
        low = float(low_text) if low_text.strip() else None
        high = float(high_text) if high_text.strip() else None
    except ValueError:
        fail(f"--limit {spec!r}: LOW and HIGH must be numbers")
    return metric.strip(), low, high


def _set_path(data: dict[str, Any], key: str, value: Any) -> None:
    *parents, leaf = key.split(".")
    node = data
    for part in parents:
        child = node.get(part)
        if not isinstance(child, dict):
            fail(f"--set {key}: {part!r} is not a group of settings")
        node = child
    if leaf not in node:
        fail(f"--set {key}: no such detector setting (see DetectorConfig)")
    node[leaf] = value


def _json_or_text(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def _open_text(target: str, option: str) -> IO[str]:
    """Opened before any work, so an unwritable path fails in a line, not after the run."""
    if target == "-":
        return sys.stdout
    try:
        return Path(target).open("w", encoding="utf-8", newline="")
    except OSError as exc:
        fail(f"{option} {target}: cannot write ({exc.strerror or exc})")


def _check_writable(path: Path, option: str) -> None:
    import os

    parent = path.parent if str(path.parent) else Path()
    if path.is_dir():
        fail(f"{option} {path}: is a folder")
    if not parent.is_dir():
        fail(f"{option} {path}: no folder {parent}")
    existed = path.exists()
    try:  # tried, not asked (os.access says yes to root where the filesystem says no)
        with path.open("a" if existed else "x"):
            pass
    except OSError as exc:
        fail(f"{option} {path}: cannot write ({exc.strerror or exc})")
    if not existed:
        os.unlink(path)


class _NoBar:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


def _progress_bar(enabled: bool | None, total: int | None) -> Any:
    """A context giving ``step(bytes, rows)``: a rich bar on stderr, or None when off."""
    from contextlib import contextmanager

    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeElapsedColumn

    show = stderr.is_terminal if enabled is None else enabled
    if not show:
        return _NoBar()

    @contextmanager
    def bar() -> Any:
        console_ = Console(stderr=True, force_terminal=True) if enabled else stderr
        columns = (TextColumn("detect"), BarColumn(), DownloadColumn(), TextColumn("{task.fields[rows]:,} rows"),
                   TimeElapsedColumn())  # fmt: skip
        with Progress(*columns, console=console_, transient=False) as p:
            task = p.add_task("detect", total=total, rows=0)

            def step(done: int, rows: int) -> None:
                p.update(task, completed=done, rows=rows)

            yield step
            p.update(task, completed=total or 0)

    return bar()


def _print_detect_summary(report: Any, where: Console) -> None:
    table = Table(title=f"iotpm detect {report.source}")
    for col in ("device", "rows", "analysed", "alarms", "anomalous readings", "health", "top reason", "first", "last"):
        table.add_column(col)
    for run in report.runs:
        s = run.summary()
        table.add_row(
            s["device_id"],
            f"{s['rows']:,}",
            f"{s['analysed']:,}",
            str(s["alarms"]),
            f"{s['anomalous_readings']:,}",
            "-" if s["health"] is None else f"{s['health']:.0f}",
            s["top_reason"] or "-",
            s["first"] or "-",
            s["last"] or "-",
        )
    # piped, the table keeps its columns readable (rich assumes 80 columns off a terminal)
    wide = where if where.is_terminal else Console(stderr=where.stderr, width=160)
    wide.print(table)


def _write_plot(report: Any, cfg: Any, target: str) -> None:
    from iotpm.cli.plot import plot_runs

    with needs("detect --plot", "matplotlib"):
        if target == "-":
            plot_runs(report.runs, report.metrics, cfg, sys.stdout.buffer)
            return
        with Path(target).open("wb") as fh:
            panels = plot_runs(report.runs, report.metrics, cfg, fh)
    stderr.print(f"plot of {panels} panels written to {target}")

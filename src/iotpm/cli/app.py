"""``iotpm`` commands. ``iotpm detect`` runs the detector over a CSV of history."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import IO, Annotated, Any, Literal

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

import iotpm
from iotpm.cli.analytics import register as register_analytics
from iotpm.cli.devices import register as register_devices
from iotpm.cli.errors import FAILED, fail, needs, requires, stderr
from iotpm.cli.replay import register as register_replay

app = typer.Typer(help="iotpm: industrial IoT predictive maintenance.", no_args_is_help=True)
console = Console(soft_wrap=True)
register_analytics(app)  # iotpm query, iotpm report (cli/analytics.py)
register_replay(app)  # iotpm replay (cli/replay.py)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"iotpm {iotpm.__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """iotpm: industrial IoT predictive maintenance.

    Exit codes: 0 done, 1 the work failed, 2 a usage error or bad input. Errors go to stderr.
    """


Summary = Literal["table", "json"]
OutFormat = Literal["json", "csv"]


@app.command()
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


emulator = typer.Typer(help="The local AWS emulator (moto server with iotpm's fixes).", no_args_is_help=True)
app.add_typer(emulator, name="emulator")
PortOption = Annotated[int, typer.Option(help="TCP port on 127.0.0.1.", envvar="IOTPM_EMULATOR_PORT")]


@emulator.command("start")
@requires("emulator start", "moto")
def emulator_start(port: PortOption = 4566) -> None:
    """Start the emulator in the background (no-op when it already answers)."""
    from iotpm.emulator import control

    try:
        st = control.start(port)
    except RuntimeError as exc:
        fail(str(exc), FAILED)
    console.print(f"emulator answering at {st.url}" + (f" (pid {st.pid})" if st.pid else " (not started by iotpm)"))
    console.print(f"use it with: export AWS_ENDPOINT_URL={st.url}")


@emulator.command("stop")
def emulator_stop(port: PortOption = 4566) -> None:
    """Stop the emulator started by ``iotpm emulator start``."""
    from iotpm.emulator import control

    console.print("stopped" if control.stop(port) else "no emulator started by iotpm on that port")


@emulator.command("status")
def emulator_status(port: PortOption = 4566) -> None:
    """Show whether the emulator runs and answers."""
    from iotpm.emulator import control

    st = control.status(port)
    state = "answering" if st.answering else "not answering"
    console.print(f"{st.url}: {state}; pid {st.pid if st.pid else '-'}")
    if not st.answering:
        raise typer.Exit(1)


api = typer.Typer(help="The analytics API: local server and contract.", no_args_is_help=True)
app.add_typer(api, name="api")


@api.command("serve")
@requires("api serve", "aws_lambda_powertools", "boto3", "pydantic_settings")
def api_serve(
    port: Annotated[int, typer.Option(help="TCP port on 127.0.0.1.", envvar="IOTPM_API_PORT")] = 8080,
    api_key: Annotated[str, typer.Option(help="the key clients send as x-api-key", envvar="IOTPM_API_KEY")] = "",
    operator_key: Annotated[
        str,
        typer.Option(
            help="the credential writes need (-u operator:KEY); empty: no writes", envvar="IOTPM_OPERATOR_KEY"
        ),
    ] = "",
) -> None:
    """Serve the API handler over HTTP with API Gateway's proxy events (tables from IOTPM_*_TABLE)."""
    from pydantic import ValidationError

    from iotpm.api.server import ApiServer
    from iotpm.handlers.api import ApiHandler

    if not api_key:
        fail("give --api-key or set IOTPM_API_KEY (clients send it as x-api-key)")
    from iotpm.composition import TableSettings, build_operator, build_queries

    try:
        settings = TableSettings()
    except ValidationError as exc:
        missing = ", ".join(f"IOTPM_{str(e['loc'][0]).upper()}" for e in exc.errors())
        fail(f"set {missing} (the Terraform outputs of the environment)")
    handler = ApiHandler(lambda: build_queries(settings), operator=lambda q: build_operator(settings, queries=q))
    server = ApiServer(handler, api_key, port, operator_key=operator_key)
    console.print(f"API at {server.url} (x-api-key required); Ctrl-C stops it")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        server.stop()


@api.command("openapi")
@requires("api openapi", "aws_lambda_powertools", "orjson")
def api_openapi(
    out: Annotated[str | None, typer.Option(help="write here instead of stdout (- is stdout)")] = None,
) -> None:
    """Print (or write) the OpenAPI document generated from the routes."""
    from iotpm.api.app import build_app, openapi_json
    from iotpm.api.memory import MemoryQueries

    doc = openapi_json(build_app(MemoryQueries()))
    if out is None or out == "-":
        typer.echo(doc, nl=False)
    else:
        try:
            Path(out).write_text(doc)
        except OSError as exc:
            fail(f"--out {out}: cannot write ({exc.strerror or exc})")
        stderr.print(f"written {out}")


local = typer.Typer(help="The local twin: the whole pipeline on this machine, no AWS account.", no_args_is_help=True)
app.add_typer(local, name="local")


@local.command("up")
@requires("local up", "cryptography", "boto3", "moto", "awscrt", "awsiot", "aws_lambda_powertools")
def local_up(
    devices: Annotated[int, typer.Option(min=2, help="simulated devices")] = 20,
    duration: Annotated[float, typer.Option(min=5, help="seconds of simulated publishing")] = 60.0,
    rate: Annotated[float, typer.Option(min=0.1, help="readings per second per device")] = 5.0,
    faults: Annotated[str, typer.Option(help="faults to inject, comma-separated")] = "overheating,pressure_leak",
    fault_at: Annotated[float, typer.Option(help="seconds into the run when the faults begin")] = 30.0,
    restart_at: Annotated[
        float | None, typer.Option(min=0, help="seconds into the run when every device restarts (seq from 1 again)")
    ] = None,
    emulator_port: Annotated[int, typer.Option(envvar="IOTPM_EMULATOR_PORT")] = 4566,
    broker_port: Annotated[int, typer.Option(envvar="IOTPM_BROKER_PORT")] = 8883,
    api_port: Annotated[int, typer.Option(envvar="IOTPM_API_PORT")] = 8080,
    summary_json: Annotated[Path | None, typer.Option(help="also write the run's summary here")] = None,
) -> None:
    """Bring the pipeline up locally, run the simulator with faults, and show what it caught."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from iotpm.local.twin import Twin, UpOptions, fault_list

    try:
        kinds = fault_list(faults)
    except ValueError as exc:
        fail(str(exc))
    if fault_at >= duration:
        fail("--fault-at must be inside the run (less than --duration)")
    if restart_at is not None and restart_at >= duration:
        fail("--restart-at must be inside the run (less than --duration)")
    opts = UpOptions(
        devices=devices,
        duration_s=duration,
        rate_hz=rate,
        faults=kinds,
        fault_at_s=fault_at,
        restart_at_s=restart_at,
        emulator_port=emulator_port,
        broker_port=broker_port,
        api_port=api_port,
    )
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[extra]}"))
    with Progress(*columns, console=stderr, transient=False) as bar:  # stdout carries only the summary
        tasks: dict[str, Any] = {}

        def progress(what: str, done: int, total: int) -> None:
            if what not in tasks:
                tasks[what] = bar.add_task(what, total=total, extra="")
            extra = f"acked {done:,} of {total:,} sent" if what == "simulate" else ""
            bar.update(tasks[what], completed=done, total=max(total, 1), extra=extra)

        try:
            summary = Twin().up(opts, lambda text: stderr.print(f"[bold]==>[/bold] {text}"), progress)
        except (RuntimeError, TimeoutError, OSError) as exc:
            me = _self_command()
            stderr.print(f"[red]error:[/red] {exc}")
            stderr.print(f"what runs is listed by `{me} local status`; `{me} local down` stops it")
            raise typer.Exit(1) from exc
    _print_summary(summary)
    if summary_json is not None:
        summary_json.write_text(json.dumps(summary, indent=2))


def _print_summary(s: dict[str, Any]) -> None:
    table = Table(title="local twin run", show_header=False)
    for label, value in (
        ("devices", s["devices"]),
        ("readings published (acknowledged by the broker)", f"{s['published']:,}"),
        ("stored", f"{s['stored']:,}"),
        ("quarantined", f"{s['quarantined']:,}"),
        ("lost (published - stored - quarantined)", s["lost"]),
        ("alerts raised", s["alerts_raised"]),
        ("false alarms (on healthy devices)", s["false_alarms"]),
    ):
        table.add_row(label, str(value))
    console.print(table)
    faults = Table(title="injected faults")
    for col in ("device", "fault", "injected", "detected", "delay", "why"):
        faults.add_column(col)
    for f in s["faults"]:
        why = ", ".join(f"{r['detector']}:{r['metric']}" for r in f["reasons"][:3])
        delay = "-" if f["delay_s"] is None else f"{f['delay_s']} s"
        faults.add_row(f["device_id"], f["fault"], f["injected"], "yes" if f["detected"] else "NO", delay, why)
    console.print(faults)
    api, key = s["api_url"], s["api_key"]
    first = s["faults"][0]["device_id"] if s["faults"] else "pump-0000"
    console.print("\n[bold]curl it:[/bold]")
    for path in ("/devices?health_below=80", f"/devices/{first}", f"/devices/{first}/anomalies", "/anomalies",
                 f"/devices/{first}/readings?resolution=1m&metric=temperature_c", "/lines/line-1/summary"):  # fmt: skip
        console.print(f"  curl -s -H 'x-api-key: {key}' '{api}{path}'")
    console.print(f"\nstop everything with: {_self_command()} local down")


def _self_command() -> str:
    """How the user can call this command again: ``iotpm`` when it is on PATH, else its path (.venv/bin/iotpm)."""
    import os
    import shutil
    import sys

    if shutil.which("iotpm"):
        return "iotpm"
    return os.path.relpath(sys.argv[0]) if sys.argv[0].endswith("iotpm") else f"{sys.executable} -m iotpm"


@local.command("down")
@requires("local down", "cryptography", "boto3", "moto", "awscrt", "awsiot", "aws_lambda_powertools")
def local_down() -> None:
    """Stop everything `iotpm local up` started (by pid)."""
    from iotpm.local.twin import Twin

    done = Twin().down()
    console.print("stopped: " + (", ".join(done.stopped) if done.stopped else "nothing was running"))
    for item in done.removed:
        console.print(f"removed {item}")


@local.command("status")
@requires("local status", "cryptography", "boto3", "moto", "awscrt", "awsiot", "aws_lambda_powertools")
def local_status() -> None:
    """Show what the local twin runs and its counters."""
    from iotpm.local.twin import Twin

    st = Twin().status()
    for kind, why in st["stale"].items():
        stderr.print(f"stale {kind}: {why} (`{_self_command()} local down` removes it; `local up` starts afresh)")
    if not st["running"]:
        stderr.print("nothing runs")
        raise typer.Exit(FAILED)
    for name, pid in st["running"].items():
        console.print(f"{name:10s} pid {pid}")
    if st["api_url"]:
        console.print(f"API at {st['api_url']}")
    if st["counters"]:
        console.print_json(data={k: st["counters"][k] for k in ("bridge", "poller")})


@app.command("simulate")
@requires("simulate", "awscrt", "awsiot", "cryptography")
def simulate_cmd(
    endpoint: Annotated[str, typer.Option(help="MQTT host: the iot_endpoint output, or 127.0.0.1 for the twin")],
    certs: Annotated[Path, typer.Option(help="folder with <device>.pem and <device>.key per device")],
    ca: Annotated[Path, typer.Option(help="CA that signed the broker (AmazonRootCA1.pem for AWS)")],
    port: Annotated[int, typer.Option(help="8883 (or 443 with ALPN in AWS)")] = 8883,
    devices: Annotated[int, typer.Option(min=2)] = 20,
    rate: Annotated[float, typer.Option(min=0.1, help="readings per second per device")] = 1.0,
    duration: Annotated[float, typer.Option(min=1)] = 60.0,
    faults: Annotated[str, typer.Option(help="faults to inject, comma-separated")] = "bearing_wear,overheating",
    fault_at: Annotated[float, typer.Option()] = 30.0,
    restart_at: Annotated[
        float | None, typer.Option(min=0, help="seconds into the run when every device restarts (seq from 1 again)")
    ] = None,
    topic_prefix: Annotated[str, typer.Option()] = "iotpm",
    rule: Annotated[
        str | None,
        typer.Option(
            help="publish through IoT Basic Ingest to this topic rule: <name_prefix>_telemetry with - as _ "
            "(terraform output name_prefix; the IoT policy allows only that topic); empty: the plain topic"
        ),
    ] = None,
    gateway: Annotated[
        str | None,
        typer.Option(
            help="the devices sit behind this gateway thing: it alone connects (its certificate in --certs) "
            "and publishes every device's reading of a tick in one message on its own topic"
        ),
    ] = None,
    truth: Annotated[Path, typer.Option(help="where to write the ground truth")] = Path("ground_truth.json"),
) -> None:
    """Publish a simulated fleet with injected faults (to AWS IoT Core or the local broker)."""
    from iotpm.local.broker import Broker
    from iotpm.local.certs import Identity
    from iotpm.local.run import simulate
    from iotpm.local.twin import fault_list
    from iotpm.simulator.fleet import Fleet, ground_truth

    fleet = Fleet(devices, seed=7)
    try:
        kinds = fault_list(faults)
    except ValueError as exc:
        fail(str(exc))
    injected = fleet.scenario(kinds, fault_at)
    missing = [d for d in ([gateway] if gateway else fleet.ids) if not (certs / f"{d}.pem").exists()]
    if missing:
        fail(f"no certificate for {', '.join(missing[:5])} in {certs}")

    from rich.live import Live

    broker = Broker(endpoint, port, ca, topic_prefix, rule or None)
    with Live(console=stderr, refresh_per_second=4) as live:

        def show(sent: int, acked: int, failed: int) -> None:
            live.update(f"sent {sent:,}  acknowledged {acked:,}  failed {failed:,}")

        identity = lambda d: Identity(certs / f"{d}.pem", certs / f"{d}.key")  # noqa: E731
        run = simulate(fleet, identity, broker, duration, rate, show, restart_at_s=restart_at, gateway=gateway)
    truth.write_text(json.dumps(ground_truth(injected, run.start_ms), indent=2))
    console.print(f"sent {run.sent:,}, acknowledged {run.acked:,}, failed {run.failed:,}; ground truth in {truth}")


devices_app = typer.Typer(help="Devices in AWS IoT Core.", no_args_is_help=True)
app.add_typer(devices_app, name="devices")
register_devices(devices_app)  # iotpm devices import (cli/devices.py)


@devices_app.command("provision")
@requires("devices provision", "boto3")
def devices_provision(
    things: Annotated[str, typer.Option(help="thing names, comma-separated (terraform output: the things variable)")],
    policy: Annotated[str, typer.Option(help="the iot_policy_name output of the environment")],
    out: Annotated[Path, typer.Option(help="folder for <thing>.pem and <thing>.key")] = Path("certs"),
) -> None:
    """Create a certificate per thing, attach the device policy and the thing (files for `iotpm simulate`)."""
    import boto3

    from iotpm.adapters.iot import provision
    from iotpm.service.errors import StoreError

    names = [t.strip() for t in things.split(",") if t.strip()]
    try:
        done = provision(boto3.client("iot"), names, policy, out)
    except StoreError as exc:
        fail(str(exc), FAILED)
    for p in done:
        console.print(f"{p.thing}: " + (p.certificate_arn or "certificate already in " + str(out)))

"""``iotpm`` commands. ``iotpm detect`` runs the detector over a CSV of history."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from iotpm.cli.analytics import register as register_analytics
from iotpm.cli.detect import CsvError, detect_file, load_csv, write_anomalies

app = typer.Typer(help="iotpm: industrial IoT predictive maintenance.", no_args_is_help=True)
console = Console(soft_wrap=True)
register_analytics(app)  # iotpm query, iotpm report (cli/analytics.py)


@app.callback()
def _root() -> None:
    """iotpm: industrial IoT predictive maintenance."""


@app.command()
def detect(
    file: Annotated[Path, typer.Argument(help="CSV with a timestamp column and metric columns.")],
    timestamp_column: Annotated[str | None, typer.Option(help="Timestamp column (default: detected).")] = None,
    device_column: Annotated[str | None, typer.Option(help="Column naming the device, if any.")] = None,
    metrics: Annotated[str | None, typer.Option(help="Comma-separated metric columns (default: all numeric).")] = None,
    warmup: Annotated[int, typer.Option(help="Rows per device fitted as the label-free warm-up (0: streaming).")] = 0,
    out: Annotated[Path | None, typer.Option(help="Write anomalies here (.csv or .json).")] = None,
    plot: Annotated[Path | None, typer.Option(help="Draw metrics, limits, baseline band and alarms to a PNG.")] = None,
) -> None:
    """Run the shipped detector over historical data and report what it would have raised."""
    try:
        table = load_csv(file, timestamp_column, device_column, metrics.split(",") if metrics else None)
    except CsvError as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from exc
    runs = detect_file(table, warmup)
    summary = Table(title=f"iotpm detect {file.name}")
    for col in ("device", "readings", "alarms", "anomalous readings", "health", "top reason"):
        summary.add_column(col)
    for run in runs:
        raises = [e for e in run.result.events if e.kind == "raise"]
        top = raises[0].reasons[0] if raises and raises[0].reasons else None
        summary.add_row(
            run.device,
            str(len(run.ts)),
            str(len(raises)),
            str(int(run.result.is_anomaly.sum())),
            f"{run.result.health:.0f}",
            f"{top.detector} on {top.metric}" if top else "-",
        )
    console.print(summary)
    if out is not None:
        count = write_anomalies(runs, out)
        console.print(f"wrote {count} alarm raises to {out}")
    if plot is not None:
        from iotpm.cli.plot import plot_runs

        plot_runs(runs, plot)
        console.print(f"plot written to {plot}")


emulator = typer.Typer(help="The local AWS emulator (moto server with iotpm's fixes).", no_args_is_help=True)
app.add_typer(emulator, name="emulator")
PortOption = Annotated[int, typer.Option(help="TCP port on 127.0.0.1.", envvar="IOTPM_EMULATOR_PORT")]


@emulator.command("start")
def emulator_start(port: PortOption = 4566) -> None:
    """Start the emulator in the background (no-op when it already answers)."""
    from iotpm.emulator import control

    try:
        st = control.start(port)
    except RuntimeError as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from exc
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
def api_serve(
    port: Annotated[int, typer.Option(help="TCP port on 127.0.0.1.", envvar="IOTPM_API_PORT")] = 8080,
    api_key: Annotated[str, typer.Option(help="the key clients send as x-api-key", envvar="IOTPM_API_KEY")] = "",
) -> None:
    """Serve the API handler over HTTP with API Gateway's proxy events (tables from IOTPM_*_TABLE)."""
    from pydantic import ValidationError

    from iotpm.api.server import ApiServer
    from iotpm.handlers.api import ApiHandler

    if not api_key:
        console.print("[red]error:[/red] give --api-key or set IOTPM_API_KEY (clients send it as x-api-key)")
        raise typer.Exit(2)
    from iotpm.composition import TableSettings, build_queries

    try:
        settings = TableSettings()
    except ValidationError as exc:
        missing = ", ".join(f"IOTPM_{str(e['loc'][0]).upper()}" for e in exc.errors())
        console.print(f"[red]error:[/red] set {missing} (the Terraform outputs of the environment)")
        raise typer.Exit(2) from exc
    server = ApiServer(ApiHandler(lambda: build_queries(settings)), api_key, port)
    console.print(f"API at {server.url} (x-api-key required); Ctrl-C stops it")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        server.stop()


@api.command("openapi")
def api_openapi(
    out: Annotated[Path | None, typer.Option(help="write here instead of stdout")] = None,
) -> None:
    """Print (or write) the OpenAPI document generated from the routes."""
    from iotpm.api.app import build_app, openapi_json
    from iotpm.api.memory import MemoryQueries

    doc = openapi_json(build_app(MemoryQueries()))
    if out is None:
        typer.echo(doc, nl=False)
    else:
        out.write_text(doc)
        console.print(f"written {out}")


local = typer.Typer(help="The local twin: the whole pipeline on this machine, no AWS account.", no_args_is_help=True)
app.add_typer(local, name="local")


@local.command("up")
def local_up(
    devices: Annotated[int, typer.Option(min=2, help="simulated devices")] = 20,
    duration: Annotated[float, typer.Option(min=5, help="seconds of simulated publishing")] = 60.0,
    rate: Annotated[float, typer.Option(min=0.1, help="readings per second per device")] = 5.0,
    faults: Annotated[str, typer.Option(help="faults to inject, comma-separated")] = "overheating,pressure_leak",
    fault_at: Annotated[float, typer.Option(help="seconds into the run when the faults begin")] = 30.0,
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
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from exc
    if fault_at >= duration:
        console.print("[red]error:[/red] --fault-at must be inside the run (less than --duration)")
        raise typer.Exit(2)
    opts = UpOptions(
        devices=devices,
        duration_s=duration,
        rate_hz=rate,
        faults=kinds,
        fault_at_s=fault_at,
        emulator_port=emulator_port,
        broker_port=broker_port,
        api_port=api_port,
    )
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[extra]}"))
    with Progress(*columns, console=console, transient=False) as bar:
        tasks: dict[str, Any] = {}

        def progress(what: str, done: int, total: int) -> None:
            if what not in tasks:
                tasks[what] = bar.add_task(what, total=total, extra="")
            extra = f"acked {done:,} of {total:,} sent" if what == "simulate" else ""
            bar.update(tasks[what], completed=done, total=max(total, 1), extra=extra)

        try:
            summary = Twin().up(opts, lambda text: console.print(f"[bold]==>[/bold] {text}"), progress)
        except (RuntimeError, TimeoutError, OSError) as exc:
            console.print(f"[red]error:[/red] {exc}")
            me = _self_command()
            console.print(f"what runs is listed by `{me} local status`; `{me} local down` stops it")
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
def local_down() -> None:
    """Stop everything `iotpm local up` started (by pid)."""
    from iotpm.local.twin import Twin

    stopped = Twin().down()
    console.print("stopped: " + (", ".join(stopped) if stopped else "nothing was running"))


@local.command("status")
def local_status() -> None:
    """Show what the local twin runs and its counters."""
    from iotpm.local.twin import Twin

    st = Twin().status()
    if not st["running"]:
        console.print("nothing runs")
        raise typer.Exit(1)
    for name, pid in st["running"].items():
        console.print(f"{name:10s} pid {pid}")
    if st["api_url"]:
        console.print(f"API at {st['api_url']}")
    if st["counters"]:
        console.print_json(data={k: st["counters"][k] for k in ("bridge", "poller")})


@app.command("simulate")
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
    topic_prefix: Annotated[str, typer.Option()] = "iotpm",
    truth: Annotated[Path, typer.Option(help="where to write the ground truth")] = Path("ground_truth.json"),
) -> None:
    """Publish a simulated fleet with injected faults (to AWS IoT Core or the local broker)."""
    from iotpm.local.broker import Broker
    from iotpm.local.certs import Identity
    from iotpm.local.run import simulate
    from iotpm.local.twin import fault_list
    from iotpm.simulator.fleet import Fleet, ground_truth

    fleet = Fleet(devices, seed=7)
    injected = fleet.scenario(fault_list(faults), fault_at)
    missing = [d for d in fleet.ids if not (certs / f"{d}.pem").exists()]
    if missing:
        console.print(f"[red]error:[/red] no certificate for {', '.join(missing[:5])} in {certs}")
        raise typer.Exit(2)

    from rich.live import Live

    broker = Broker(endpoint, port, ca, topic_prefix)
    with Live(console=console, refresh_per_second=4) as live:

        def show(sent: int, acked: int, failed: int) -> None:
            live.update(f"sent {sent:,}  acknowledged {acked:,}  failed {failed:,}")

        identity = lambda d: Identity(certs / f"{d}.pem", certs / f"{d}.key")  # noqa: E731
        run = simulate(fleet, identity, broker, duration, rate, show)
    truth.write_text(json.dumps(ground_truth(injected, run.start_ms), indent=2))
    console.print(f"sent {run.sent:,}, acknowledged {run.acked:,}, failed {run.failed:,}; ground truth in {truth}")


devices_app = typer.Typer(help="Devices in AWS IoT Core.", no_args_is_help=True)
app.add_typer(devices_app, name="devices")


@devices_app.command("provision")
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
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from exc
    for p in done:
        console.print(f"{p.thing}: " + (p.certificate_arn or "certificate already in " + str(out)))

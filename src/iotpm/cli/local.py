"""``iotpm local up|down|status``: the local twin, the whole pipeline on this machine, no AWS account."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from iotpm.cli.errors import FAILED, fail, requires, stderr

console = Console(soft_wrap=True)
local = typer.Typer(help="The local twin: the whole pipeline on this machine, no AWS account.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    """Add the ``local`` group to the ``iotpm`` app."""
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

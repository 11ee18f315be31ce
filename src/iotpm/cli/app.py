"""``iotpm`` commands. ``iotpm detect`` runs the detector over a CSV of history."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from iotpm.cli.detect import CsvError, detect_file, load_csv, write_anomalies

app = typer.Typer(help="iotpm: industrial IoT predictive maintenance.", no_args_is_help=True)
console = Console(soft_wrap=True)


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

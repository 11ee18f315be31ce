"""The ``iotpm`` command: the root app, with each command group registered from its own module.

Every module under ``iotpm.cli`` adds its commands with ``register(app)``; the order below
is the order ``iotpm --help`` lists them in.
"""

from __future__ import annotations

from typing import Annotated

import typer

import iotpm
from iotpm.cli import analytics, api, detect_command, devices, emulator, local, replay, simulate

app = typer.Typer(help="iotpm: industrial IoT predictive maintenance.", no_args_is_help=True)
analytics.register(app)  # iotpm query, iotpm report
replay.register(app)  # iotpm replay
detect_command.register(app)  # iotpm detect
emulator.register(app)  # iotpm emulator start|stop|status
api.register(app)  # iotpm api serve|openapi
local.register(app)  # iotpm local up|down|status
simulate.register(app)  # iotpm simulate
devices.register(app)  # iotpm devices provision|import


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

"""``iotpm emulator start|stop|status``: the local AWS emulator (moto server with iotpm's fixes)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console

from iotpm.cli.errors import FAILED, fail, requires

console = Console(soft_wrap=True)
emulator = typer.Typer(help="The local AWS emulator (moto server with iotpm's fixes).", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    """Add the ``emulator`` group to the ``iotpm`` app."""
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

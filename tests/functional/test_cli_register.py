"""Each command group comes from its own module: ``register(app)`` adds it to any Typer app."""

from __future__ import annotations

from types import ModuleType

import pytest
import typer
from typer.testing import CliRunner

from iotpm.cli import analytics, api, detect_command, devices, emulator, local, simulate


def _help(app: typer.Typer, *args: str) -> str:
    out = CliRunner().invoke(app, [*args, "--help"], env={"COLUMNS": "200"})
    assert out.exit_code == 0, out.output
    return out.output


@pytest.mark.parametrize(
    ("module", "group", "commands"),
    [
        (emulator, "emulator", ("start", "stop", "status")),
        (api, "api", ("serve", "openapi")),
        (local, "local", ("up", "down", "status")),
        (devices, "devices", ("import", "provision")),
    ],
)
def test_a_group_registers_alone(module: ModuleType, group: str, commands: tuple[str, ...]) -> None:
    app = typer.Typer()
    app.callback()(lambda: None)  # a root with a callback keeps single commands as subcommands
    module.register(app)
    root = _help(app)
    assert group in root
    listed = _help(app, group)
    assert all(f" {c} " in listed for c in commands)


@pytest.mark.parametrize(
    ("module", "commands"),
    [(detect_command, ("detect",)), (simulate, ("simulate",)), (analytics, ("query", "report"))],
)
def test_a_command_registers_alone(module: ModuleType, commands: tuple[str, ...]) -> None:
    app = typer.Typer()
    app.callback()(lambda: None)
    module.register(app)
    root = _help(app)
    assert all(f" {c} " in root for c in commands)
    assert "emulator" not in root  # only what the module registers

"""``iotpm api serve|openapi``: the analytics API as a local server, and its contract."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from iotpm.cli.errors import fail, requires, stderr

console = Console(soft_wrap=True)
api = typer.Typer(help="The analytics API: local server and contract.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    """Add the ``api`` group to the ``iotpm`` app."""
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

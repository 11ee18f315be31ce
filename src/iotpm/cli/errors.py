"""How the ``iotpm`` command fails: one line on stderr and an exit code a script can test.

Exit codes: 0 done; 1 the work failed (a service, the network, a missing optional
dependency); 2 a usage error or bad input (an option out of range, a file that
cannot be read or written, a CSV that cannot be used).
"""

from __future__ import annotations

import functools
import importlib.util
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, NoReturn, TypeVar, cast

import typer
from rich.console import Console
from rich.markup import escape

#: where messages meant for people go (stdout carries only results)
stderr = Console(stderr=True, soft_wrap=True)

USAGE = 2
FAILED = 1
F = TypeVar("F", bound=Callable[..., Any])

#: the extra of pyproject.toml that installs each optional top-level module
EXTRA_OF = {
    "boto3": "aws",
    "botocore": "aws",
    "pydantic_settings": "aws",
    "orjson": "aws",
    "aws_lambda_powertools": "api",
    "awscrt": "device",
    "awsiot": "device",
    "cryptography": "local",
    "moto": "local",
}

#: extras that pull in others (pyproject.toml: local = aws, api, cli, device; api = aws)
_INCLUDES = {"local": ("aws", "api", "cli", "device"), "api": ("aws",)}


def fail(message: str, code: int = USAGE) -> NoReturn:
    """Print ``error: message`` on stderr and exit with ``code``."""
    stderr.print(f"[red]error:[/red] {escape(message)}")
    raise typer.Exit(code)


def install_hint(command: str, modules: list[str]) -> str:
    """``iotpm X needs the [e] extra (m is not installed): pip install 'iotpm[e]'``."""
    wanted = {EXTRA_OF.get(m, "local") for m in modules}
    names = ",".join(sorted(e for e in wanted if not any(e in _INCLUDES.get(o, ()) for o in wanted)))
    return (
        f"`iotpm {command}` needs the [{names}] extra ({', '.join(modules)} not installed): "
        f"pip install 'iotpm[{names}]'"
    )


@contextmanager
def needs(command: str, *modules: str) -> Iterator[None]:
    """Check the optional modules ``command`` imports before it runs, and turn any other
    missing optional module met on the way into the same one-line hint (exit 1)."""
    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if missing:
        fail(install_hint(command, missing), FAILED)
    try:
        yield
    except ModuleNotFoundError as exc:
        root = (exc.name or "").partition(".")[0]
        if not root or root == "iotpm":
            raise
        fail(install_hint(command, [root]), FAILED)


def requires(command: str, *modules: str) -> Callable[[F], F]:
    """Decorate a command with :func:`needs` (one line above it; the body stays as it is)."""

    def wrap(func: F) -> F:
        @functools.wraps(func)
        def run(*args: Any, **kwargs: Any) -> Any:
            with needs(command, *modules):
                return func(*args, **kwargs)

        return cast(F, run)

    return wrap

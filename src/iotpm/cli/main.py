"""The ``iotpm`` command."""

from __future__ import annotations


def main() -> None:
    """Entry point of the console script."""
    from iotpm.cli.app import app

    app()

"""The machine-health dashboard: one static page (index.html) over the analytics API, no backend of its own."""

from __future__ import annotations

from importlib import resources


def page() -> bytes:
    """The dashboard's HTML (scripts and styles inline: one file to serve or upload)."""
    return resources.files("iotpm.dashboard").joinpath("index.html").read_bytes()

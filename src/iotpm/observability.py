"""Structured JSON logs and CloudWatch embedded-metric-format (EMF) lines.

EMF is one JSON object per line on stdout that CloudWatch turns into metrics; it is
written by hand here (a dozen lines) to keep the Lambda's cold start free of a
metrics library.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Mapping
from typing import Any, TextIO

NAMESPACE = "iotpm"


def emf(
    metrics: Mapping[str, tuple[float, str]],
    dimensions: Mapping[str, str],
    *,
    namespace: str = NAMESPACE,
    properties: Mapping[str, Any] | None = None,
    out: TextIO | None = None,
) -> dict[str, Any]:
    """Write one EMF line: ``metrics`` maps a name to (value, unit). Returns the object."""
    doc: dict[str, Any] = {
        "_aws": {
            "Timestamp": int(time.time() * 1000),
            "CloudWatchMetrics": [
                {
                    "Namespace": namespace,
                    "Dimensions": [sorted(dimensions)],
                    "Metrics": [{"Name": name, "Unit": unit} for name, (_, unit) in metrics.items()],
                }
            ],
        },
        **dimensions,
        **{name: value for name, (value, _) in metrics.items()},
        **(properties or {}),
    }
    print(json.dumps(doc, separators=(",", ":"), default=str), file=out or sys.stdout, flush=True)
    return doc


def log(level: str, message: str, out: TextIO | None = None, **fields: Any) -> None:
    """One structured JSON log line."""
    line = {"level": level, "message": message, "time": int(time.time() * 1000), **fields}
    print(json.dumps(line, separators=(",", ":"), default=str), file=out or sys.stderr, flush=True)

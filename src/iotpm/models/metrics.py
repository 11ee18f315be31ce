"""Metric names carry their unit: ``<quantity>_<unit>`` (``temperature_c``).

The detector uses the quantity to pick static limits; a name whose unit is not
known here gets the statistical detectors only.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

METRIC_NAME_RE: Final = re.compile(r"^[a-z][a-z0-9]*(?:_[a-z0-9]+)*$")

#: unit suffix -> (quantity, unit symbol). Longest suffix wins (``mm_s`` before ``s``).
KNOWN_UNITS: Final[dict[str, tuple[str, str]]] = {
    "c": ("temperature", "°C"),
    "psi": ("pressure", "psi"),
    "mm_s": ("vibration", "mm/s"),
}

#: legacy sensor type -> canonical metric name (the legacy shapes carry no unit;
#: the original requirements state °C, PSI and mm/s).
LEGACY_TYPES: Final[dict[str, str]] = {
    "temperature": "temperature_c",
    "temp": "temperature_c",
    "pressure": "pressure_psi",
    "vibration": "vibration_mm_s",
}


@dataclass(frozen=True, slots=True)
class MetricUnit:
    """The physical quantity and unit encoded in a metric name."""

    quantity: str
    unit: str


def parse_metric(name: str) -> MetricUnit | None:
    """Return the quantity and unit of ``name``, or None when its unit is unknown.

    >>> parse_metric("vibration_mm_s")
    MetricUnit(quantity='vibration', unit='mm/s')
    >>> parse_metric("value") is None
    True
    """
    for suffix in sorted(KNOWN_UNITS, key=len, reverse=True):
        quantity, unit = KNOWN_UNITS[suffix]
        if name == f"{quantity}_{suffix}":
            return MetricUnit(quantity, unit)
    return None

"""Reading models, metric names and message validation."""

from iotpm.models.metrics import KNOWN_UNITS, LEGACY_TYPES, MetricUnit, parse_metric
from iotpm.models.readings import SCHEMA_VERSION, Reading, epoch_ms, utc_from_ms
from iotpm.models.validation import (
    FastDecoder,
    ReadingFields,
    Rejection,
    RejectReason,
    ValidationLimits,
    decode,
    parse_timestamp,
)

__all__ = [
    "KNOWN_UNITS",
    "LEGACY_TYPES",
    "SCHEMA_VERSION",
    "FastDecoder",
    "MetricUnit",
    "Reading",
    "ReadingFields",
    "RejectReason",
    "Rejection",
    "ValidationLimits",
    "decode",
    "epoch_ms",
    "parse_metric",
    "parse_timestamp",
    "utc_from_ms",
]

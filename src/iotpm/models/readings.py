"""The canonical reading message (schema version 1) and its legacy shapes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from functools import cached_property
from typing import Annotated, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from iotpm.models.metrics import METRIC_NAME_RE

SCHEMA_VERSION: Final = 1
SUPPORTED_SCHEMA_VERSIONS: Final = frozenset({SCHEMA_VERSION})

#: Device ids double as MQTT client ids, IoT thing names and DynamoDB keys.
DEVICE_ID_PATTERN: Final = r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$"
NAME_PATTERN: Final = r"^[A-Za-z0-9][A-Za-z0-9 _.:/-]{0,63}$"

DeviceId = Annotated[str, StringConstraints(pattern=DEVICE_ID_PATTERN)]
Name = Annotated[str, StringConstraints(pattern=NAME_PATTERN)]
MetricName = Annotated[str, StringConstraints(pattern=METRIC_NAME_RE.pattern, max_length=64)]


class Reading(BaseModel):
    """One device's measurements at one instant.

    ``metrics`` maps a unit-carrying name (``temperature_c``) to a finite float.
    ``seq`` is the device's own monotonically increasing sequence number; legacy
    messages have none, and are de-duplicated on (timestamp, metrics) instead.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    schema_version: Literal[1] = SCHEMA_VERSION
    device_id: DeviceId
    ts: datetime
    seq: Annotated[int, Field(ge=0, le=2**63 - 1)] | None = None
    site: Name = "default"
    line: Name = "default"
    device_type: Name = "generic"
    metrics: Annotated[dict[MetricName, float], Field(min_length=1, max_length=32)]

    @cached_property
    def ts_ms(self) -> int:
        """The timestamp as integer epoch milliseconds (UTC); computed once (the processor asks often)."""
        return epoch_ms(self.ts)

    @property
    def dedup_key(self) -> tuple[str, int | str]:
        """What makes two deliveries of this reading the same reading."""
        if self.seq is not None:
            return (self.device_id, self.seq)
        return (self.device_id, f"{self.ts_ms}:{','.join(sorted(self.metrics))}")


_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_MS: Final = timedelta(milliseconds=1)


def epoch_ms(ts: datetime) -> int:
    """Integer epoch milliseconds of ``ts`` (naive: local time, as ``timestamp()`` reads it).

    Exact: ``int(ts.timestamp() * 1000)`` goes through a float and can come out one
    millisecond early (2038-02-01T00:00:00.015Z as ...014).
    """
    aware = ts if ts.tzinfo is not None else ts.astimezone()
    return (aware - _EPOCH) // _MS


def utc_from_ms(ms: int) -> datetime:
    """An aware UTC datetime from epoch milliseconds (exact)."""
    return _EPOCH + ms * _MS

"""A processor over the in-memory stores, and the stores: what tests and benchmarks build.

One factory, so a test reads what it changes (a flaky store, write-behind, a cap) and not
the wiring: ``MemoryPipeline.build(behind=True).processor(settings=...)``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from iotpm.service.memory import (
    MemoryAlerts,
    MemoryAnomalies,
    MemoryArchive,
    MemoryLog,
    MemoryReadings,
    MemoryRollups,
    MemorySnapshots,
    MemoryStates,
    MemoryTimeSeries,
)
from iotpm.service.processor import Processor


@dataclass
class MemoryPipeline:
    """The in-memory stores a processor writes to (write-behind when ``log`` and ``snapshots`` are set)."""

    states: MemoryStates = field(default_factory=MemoryStates)
    readings: MemoryReadings = field(default_factory=MemoryReadings)
    anomalies: MemoryAnomalies = field(default_factory=MemoryAnomalies)
    rollups: MemoryRollups = field(default_factory=MemoryRollups)
    archive: MemoryArchive = field(default_factory=MemoryArchive)
    alerts: MemoryAlerts = field(default_factory=MemoryAlerts)
    timeseries: MemoryTimeSeries | None = None
    log: MemoryLog | None = None
    snapshots: MemorySnapshots | None = None

    @classmethod
    def build(cls, *, behind: bool = False, timeseries: bool = False) -> MemoryPipeline:
        """Fresh stores; ``behind``: with a batch log and snapshots; ``timeseries``: with a time-series copy."""
        return cls(
            timeseries=MemoryTimeSeries() if timeseries else None,
            log=MemoryLog() if behind else None,
            snapshots=MemorySnapshots() if behind else None,
        )

    def processor(self, **overrides: Any) -> Processor:
        """A processor over these stores, as a fresh container builds it (nothing held from before).

        ``overrides``: any of :class:`Processor`'s arguments (``settings``, ``detector``,
        ``operator``, or a port in place of one of these stores, a flaky wrapper say).
        """
        ports: dict[str, Any] = {
            "states": self.states,
            "readings": self.readings,
            "anomalies": self.anomalies,
            "rollups": self.rollups,
            "archive": self.archive,
            "alerts": self.alerts,
            "timeseries": self.timeseries,
            "batch_log": self.log,
            "snapshots": self.snapshots,
        }
        return Processor(**(ports | overrides))

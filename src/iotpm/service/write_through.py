"""Write-through: every batch writes its readings, rollups and device records to the tables.

Bulk writes in dependency order; a device that fails a step skips the rest. Device
state goes last: until it is written, a retry reprocesses the device from its previous
state and every earlier write repeats idempotently.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from iotpm.service.batch import Counts, Work
from iotpm.service.ports import BatchRows, DeviceRecord, Failures
from iotpm.service.rows import reading_rows, rollups
from iotpm.service.storage import Tables


class WriteThrough:
    """The :class:`~iotpm.service.storage.Storage` that writes each batch to the tables."""

    per_shard = False

    def __init__(self, tables: Tables) -> None:
        self.tables = tables

    def open(self, shard: str) -> WriteThrough:
        """Every shard's batch reads and writes the tables alike."""
        return self

    def records(self, device_ids: Sequence[str]) -> dict[str, DeviceRecord]:
        """The devices' records from the devices table."""
        return self.tables.states.get_many(list(device_ids))

    def write(self, work: Sequence[Work], now: int, counts: Counts) -> Failures:
        """Readings (and the time-series copy), events, rollups, then the device records."""
        if not work:
            return {}
        t = self.tables
        token = uuid.uuid4().hex  # this attempt's claim on the alerts it sends
        rows = reading_rows(work, t.settings.readings_ttl_days)
        failures: Failures = dict(t.readings.put_many(BatchRows(list(rows.values()))))
        if t.timeseries is not None:
            rejected, failed = t.timeseries.write([r for d, rs in rows.items() if d not in failures for r in rs])
            counts.timeseries_rejected += rejected
            failures.update(failed)
        failures = t.alarms(work, counts, token, failures)
        failures.update(t.rollups.apply(rollups([w for w in work if w.device_id not in failures], t.settings)))
        failures.update(t.states.put_many([w.after for w in work if w.device_id not in failures]))
        return failures

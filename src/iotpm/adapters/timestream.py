"""Timestream for LiveAnalytics: multi-measure records, 100 per WriteRecords call.

Optional (new AWS accounts cannot create Timestream databases); nothing reads from
it. Rejected records (e.g. outside the memory store window) are counted, not retried.
What every record of a call shares (measure name, type, time unit) is sent once, as
the call's ``CommonAttributes``: fewer bytes to AWS, and less for botocore to build.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Final

from iotpm.adapters.errors import translate
from iotpm.service.ports import Failures, ReadingRow

if TYPE_CHECKING:
    from mypy_boto3_timestream_write.client import TimestreamWriteClient
    from mypy_boto3_timestream_write.type_defs import MeasureValueTypeDef, RecordTypeDef

_PER_CALL: Final = 100
MEASURE_NAME: Final = "reading"


#: what every record shares, sent once per call (a record's own attributes would override them)
COMMON: Final[RecordTypeDef] = {"MeasureName": MEASURE_NAME, "MeasureValueType": "MULTI", "TimeUnit": "MILLISECONDS"}


def record(row: ReadingRow) -> RecordTypeDef:
    """One multi-measure record: the metrics plus the detector's score (with :data:`COMMON`)."""
    measures: list[MeasureValueTypeDef] = [
        {"Name": k, "Value": repr(float(v)), "Type": "DOUBLE"} for k, v in sorted(row.metrics.items())
    ]
    measures.append({"Name": "anomaly_score", "Value": repr(float(row.score)), "Type": "DOUBLE"})
    return {
        "Dimensions": [
            {"Name": "device_id", "Value": row.device_id},
            {"Name": "site", "Value": row.site},
            {"Name": "line", "Value": row.line},
            {"Name": "device_type", "Value": row.device_type},
        ],
        "MeasureValues": measures,
        "Time": str(row.ts_ms),
    }


class TimestreamWriter:
    """:class:`~iotpm.service.ports.TimeSeries` on one database table."""

    def __init__(self, client: TimestreamWriteClient, database: str, table: str, workers: int = 8) -> None:
        self.client, self.database, self.table, self.workers = client, database, table, workers

    def write(self, rows: Sequence[ReadingRow]) -> tuple[int, Failures]:
        """The rows in calls of 100, up to ``workers`` at once (a batch of 10,000 is 100 calls: in
        series they would take seconds)."""
        chunks = [rows[i : i + _PER_CALL] for i in range(0, len(rows), _PER_CALL)]
        if len(chunks) <= 1:
            outcomes = [self._write(c) for c in chunks]
        else:
            with ThreadPoolExecutor(max_workers=min(self.workers, len(chunks))) as pool:
                outcomes = list(pool.map(self._write, chunks))
        rejected, failures = 0, {}
        for n, failed in outcomes:
            rejected += n
            failures.update(failed)
        return rejected, failures

    def _write(self, chunk: Sequence[ReadingRow]) -> tuple[int, Failures]:
        try:
            self.client.write_records(
                DatabaseName=self.database,
                TableName=self.table,
                CommonAttributes=COMMON,
                Records=[record(r) for r in chunk],
            )
        except Exception as exc:
            code = getattr(exc, "response", {}).get("Error", {}).get("Code", "")
            if code == "RejectedRecordsException":
                return len(getattr(exc, "response", {}).get("RejectedRecords", [])) or len(chunk), {}
            error = translate(exc, f"WriteRecords {self.database}.{self.table}")
            return 0, {r.device_id: error for r in chunk}
        return 0, {}

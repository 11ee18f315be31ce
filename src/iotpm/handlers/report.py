"""The report Lambda: an EventBridge Scheduler invocation in, the fleet report written to S3 out."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from iotpm.analytics.job import ReportJob, options_from


class ReportHandler:
    """Callable Lambda handler over a lazily built job (clients are made on first use)."""

    def __init__(self, factory: Callable[[], ReportJob], now: Callable[[], datetime] | None = None) -> None:
        self._factory = factory
        self._now = now or (lambda: datetime.now(UTC))
        self._job: ReportJob | None = None

    def __call__(self, event: Mapping[str, Any], context: Any = None) -> dict[str, Any]:
        if self._job is None:
            self._job = self._factory()
        return self._job(options_from(event or {}, self._now()))


def _build() -> ReportJob:
    from iotpm.composition import build_report_job  # boto3 loads on first invoke, not at import

    return build_report_job()


handler = ReportHandler(_build)

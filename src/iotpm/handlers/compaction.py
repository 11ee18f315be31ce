"""The compaction Lambda: an EventBridge Scheduler invocation in, the archive's closed hours as Parquet out.

The Scheduler's input may override the settings for one run (``{"max_hours": 6}``);
the result says which hours were compacted and where the mark stands.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

from iotpm.analytics.compaction import CompactionSettings, Compactor


class CompactionHandler:
    """Callable Lambda handler over a lazily built compactor (clients are made on first use)."""

    def __init__(self, factory: Callable[[], Compactor], now_ms: Callable[[], int] | None = None) -> None:
        self._factory = factory
        self._now_ms = now_ms or (lambda: int(time.time() * 1000))
        self._job: Compactor | None = None

    def __call__(self, event: Mapping[str, Any] | None, context: Any = None) -> dict[str, object]:
        if self._job is None:
            self._job = self._factory()
        job, given = self._job, event or {}
        s = job.settings
        knobs = replace(
            s,
            grace_s=int(given.get("grace_s", s.grace_s)),
            window_h=int(given.get("window_h", s.window_h)),
            max_hours=int(given.get("max_hours", s.max_hours)),
        )
        if knobs != s:
            job = Compactor(job.files, knobs)
        return job(self._now_ms()).as_dict()


def _build() -> Compactor:
    from iotpm.composition import build_compactor  # boto3 loads on first invoke, not at import

    return build_compactor()


handler = CompactionHandler(_build)


__all__ = ["CompactionHandler", "CompactionSettings", "handler"]

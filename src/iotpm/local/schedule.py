"""The twin's EventBridge Scheduler for the idle-shard job: the compaction function's ``{"job": "idle_shards"}``.

Where the processor writes behind, AWS invokes the compaction function hourly with that
event (terraform/modules/compaction: its second schedule). It compacts the batch log of
the shards no batch compacted for ``IOTPM_IDLE_AFTER_S`` (a plant stopped), so their
logged readings keep the readings' TTL when the log's items expire a week after they were
written. The twin runs the same handler in its pipeline process, with the variables
Terraform set on the compaction function (read back from the emulator, as the processor's
and the API's are), every hour from the pipeline's start (:data:`EVERY_S`; the services
config's ``idle_shards_every_s`` overrides it). A run that fails is logged and counted and
the next runs on time, as a scheduled invocation's failure does not stop its schedule.
Write-through environments (no ``IOTPM_STATE_BUCKET`` on the function) have no such job.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from typing import Any

log = logging.getLogger("iotpm.schedule")
#: the compaction module's idle-shard schedule runs hourly
EVERY_S = 3600.0
#: the event the schedule sends
IDLE_SHARDS_EVENT = {"job": "idle_shards"}


class Every:
    """Calls ``job`` every ``every_s`` seconds in a background thread, the first ``every_s`` after :meth:`start`."""

    def __init__(self, name: str, job: Callable[[], Mapping[str, Any]], every_s: float) -> None:
        if every_s <= 0:
            raise ValueError(f"every_s must be positive, not {every_s}")
        self.name, self._job, self.every_s = name, job, every_s
        self.runs = self.failures = 0
        self.last: dict[str, Any] | None = None  # the last run's result, or its error
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=f"iotpm-{name}", daemon=True)

    def start(self) -> Every:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def counters(self) -> dict[str, Any]:
        return {"runs": self.runs, "failures": self.failures, "last": self.last}

    def _loop(self) -> None:
        while not self._stop.wait(self.every_s):
            try:
                self.last = dict(self._job())
            except Exception as exc:  # the next run goes on, as the schedule's next invocation would
                self.failures += 1
                self.last = {"error": f"{type(exc).__name__}: {exc}"}
                log.exception("%s failed", self.name)
            else:
                log.info("%s: %s", self.name, self.last)
            self.runs += 1


def idle_shards_job(environment: Mapping[str, str]) -> Callable[[], Mapping[str, Any]] | None:
    """The compaction function's idle-shard invocation with ``environment`` (the function's variables
    and its region), or None where the processor writes through (no state bucket: no job)."""
    if not environment.get("IOTPM_STATE_BUCKET"):
        return None
    from iotpm.handlers.compaction import CompactionHandler, IdleShardsSettings, build_idle_shards

    known = {f"IOTPM_{name.upper()}" for name in IdleShardsSettings.model_fields}
    # the function's archive-compaction variables are not the idle job's settings
    own = {k: v for k, v in environment.items() if k in known or not k.startswith("IOTPM_")}

    def archive() -> Any:
        raise RuntimeError("the twin schedules the idle-shard job only")

    handler = CompactionHandler(
        archive, idle_factory=lambda: build_idle_shards(IdleShardsSettings.from_environment(own))
    )
    return lambda: handler(IDLE_SHARDS_EVENT)

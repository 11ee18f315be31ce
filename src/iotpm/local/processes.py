"""Background processes the local twin starts, tracked by pid files so ``down`` stops exactly them.

A pid file names its process by pid, start time and boot (:mod:`iotpm.emulator.pidfile`):
after a reboot or a kill, a file whose process is gone is *stale* (``stale()`` lists
them, ``clean()`` removes them) and its pid is never signalled, whoever has it now.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

from iotpm.emulator import pidfile


class Processes:
    """Pid files and logs of named background processes in ``folder``."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)

    def log_path(self, name: str) -> Path:
        return self.folder / f"{name}.log"

    def _pid_path(self, name: str) -> Path:
        return self.folder / f"{name}.pid"

    def spawn(self, name: str, argv: Sequence[str], env: dict[str, str] | None = None) -> int:
        """Start ``argv`` in its own session (so a stop reaches its children), logging to ``<name>.log``."""
        if (pid := self.pid(name)) is not None:
            return pid
        with self.log_path(name).open("ab") as log:
            proc = subprocess.Popen(list(argv), stdout=log, stderr=subprocess.STDOUT, start_new_session=True, env=env)
        pidfile.write(self._pid_path(name), proc.pid)
        return proc.pid

    def pid(self, name: str) -> int | None:
        """The pid of ``name`` if it runs (the very process started, not another with its pid)."""
        return pidfile.live_pid(self._pid_path(name))

    def running(self) -> dict[str, int]:
        """Every tracked process that still runs, by name."""
        names = sorted(p.stem for p in self.folder.glob("*.pid"))
        return {n: pid for n in names if (pid := self.pid(n)) is not None}

    def stale(self) -> dict[str, int]:
        """Pid files whose process is gone (killed, crashed, or the machine rebooted), by name."""
        out = {}
        for path in sorted(self.folder.glob("*.pid")):
            rec = pidfile.read(path)
            if rec is None or not pidfile.running(rec):
                out[path.stem] = rec.pid if rec is not None else 0
        return out

    def clean(self) -> list[str]:
        """Remove the stale pid files; their names."""
        gone = list(self.stale())
        for name in gone:
            self._pid_path(name).unlink(missing_ok=True)
        return gone

    def stop(self, name: str, timeout_s: float = 10.0) -> bool:
        """SIGTERM the process group, SIGKILL after ``timeout_s``; False if it was not running."""
        rec = pidfile.read(self._pid_path(name))
        if rec is None or not pidfile.running(rec):
            self._pid_path(name).unlink(missing_ok=True)
            return False
        me = pidfile.identify(rec.pid)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(rec.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        while pidfile.running(me) and time.monotonic() < deadline:
            time.sleep(0.1)
        if pidfile.running(me):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(rec.pid, signal.SIGKILL)
        self._pid_path(name).unlink(missing_ok=True)
        return True

"""Background processes the local twin starts, tracked by pid files so ``down`` stops exactly them."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path


class Processes:
    """Pid files and logs of named background processes in ``folder``."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)

    def log_path(self, name: str) -> Path:
        return self.folder / f"{name}.log"

    def spawn(self, name: str, argv: Sequence[str], env: dict[str, str] | None = None) -> int:
        """Start ``argv`` in its own session (so a stop reaches its children), logging to ``<name>.log``."""
        if (pid := self.pid(name)) is not None:
            return pid
        with self.log_path(name).open("ab") as log:
            proc = subprocess.Popen(list(argv), stdout=log, stderr=subprocess.STDOUT, start_new_session=True, env=env)
        (self.folder / f"{name}.pid").write_text(str(proc.pid))
        return proc.pid

    def pid(self, name: str) -> int | None:
        """The pid of ``name`` if it runs."""
        path = self.folder / f"{name}.pid"
        if not path.exists():
            return None
        pid = int(path.read_text())
        if _alive(pid):
            return pid
        path.unlink(missing_ok=True)
        return None

    def running(self) -> dict[str, int]:
        """Every tracked process that still runs, by name."""
        names = sorted(p.stem for p in self.folder.glob("*.pid"))
        return {n: pid for n in names if (pid := self.pid(n)) is not None}

    def stop(self, name: str, timeout_s: float = 10.0) -> bool:
        """SIGTERM the process group, SIGKILL after ``timeout_s``; False if it was not running."""
        pid = self.pid(name)
        if pid is None:
            return False
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        if _alive(pid):
            os.killpg(pid, signal.SIGKILL)
        (self.folder / f"{name}.pid").unlink(missing_ok=True)
        return True


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    try:  # a zombie (exited, not yet reaped by its parent) is not running
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return True

"""Pid files that name one process: its pid, when it started, and the boot it started in.

A pid alone does not name a process: after a reboot (or once the process is gone long
enough) the number belongs to some other process, and stopping "it" would signal a
stranger. So a pid file holds ``<pid> <start> <boot id>`` (the start in clock ticks since
boot, from ``/proc/<pid>/stat``; the boot from ``/proc/sys/kernel/random/boot_id``), and
a process counts as the recorded one only while all three match. A file of an older
release holds the pid alone: it counts while that pid lives, as it did then.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, slots=True)
class Recorded:
    """A process as a pid file names it (``start``/``boot`` are None in an old file)."""

    pid: int
    start: int | None
    boot: str | None


def boot_id() -> str | None:
    """This boot's id (changes at every reboot); None where /proc does not tell."""
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return None


def start_ticks(pid: int) -> int | None:
    """When ``pid`` started, in clock ticks since boot; None when it does not run (or is a zombie)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rpartition(")")[2].split()  # the command name may hold spaces and ')'
    if fields[0] == "Z":  # exited, not yet reaped by its parent: not running
        return None
    return int(fields[19])  # field 22 of stat: starttime (fields after the name start at 3)


def identify(pid: int) -> Recorded:
    """The process ``pid`` as it runs now."""
    return Recorded(pid, start_ticks(pid), boot_id())


def write(path: Path, pid: int) -> None:
    """Record the running process ``pid`` in ``path``."""
    me = identify(pid)
    path.write_text(f"{pid} {me.start if me.start is not None else '-'} {me.boot or '-'}\n")


def read(path: Path) -> Recorded | None:
    """What ``path`` records; None when there is no such file or it is unreadable."""
    try:
        parts = path.read_text().split()
        pid = int(parts[0])
    except (OSError, ValueError, IndexError):
        return None
    start = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else None
    boot = parts[2] if len(parts) > 2 and parts[2] != "-" else None
    return Recorded(pid, start, boot)


def running(rec: Recorded) -> bool:
    """True while the recorded process itself still runs (not another one that got its pid)."""
    now = start_ticks(rec.pid)
    if now is None:
        return False
    if rec.start is None:  # an old file: the pid is all it says
        return True
    return now == rec.start and (rec.boot is None or rec.boot == boot_id())


def live_pid(path: Path) -> int | None:
    """The pid recorded in ``path`` if that process still runs."""
    rec = read(path)
    return rec.pid if rec is not None and running(rec) else None

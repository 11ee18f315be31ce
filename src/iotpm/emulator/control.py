"""Start, stop and query the emulator process (by pid file), and wait for it."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from iotpm.emulator import pidfile


@dataclass(frozen=True, slots=True)
class EmulatorStatus:
    """What runs: the pid from the pid file (if alive), and whether the endpoint answers."""

    pid: int | None
    url: str
    answering: bool


def state_dir() -> Path:
    """Where pid and log files live (``IOTPM_HOME``, default ``./.iotpm``), private to its owner.

    It holds the local twin's Terraform state and files with the API key: created 0700, and
    made 0700 again if an older release left it open.
    """
    path = Path(os.environ.get("IOTPM_HOME", ".iotpm"))
    private_dir(path)
    return path


def private_dir(path: Path) -> Path:
    """``path`` as a folder only its owner can read (created 0700, tightened to 0700 if it exists)."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    if path.stat().st_mode & 0o077 and path.stat().st_uid == os.geteuid():
        path.chmod(0o700)
    return path


def answering(url: str, timeout: float = 1.0) -> bool:
    """True when an AWS-compatible endpoint answers at ``url``."""
    try:
        with urllib.request.urlopen(f"{url}/moto-api/data.json", timeout=timeout):
            return True
    except urllib.error.HTTPError:
        return True  # something HTTP answered (e.g. LocalStack has no moto-api)
    except (OSError, ValueError):
        return False


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def _pid_file(port: int) -> Path:
    return state_dir() / f"emulator-{port}.pid"


def status(port: int = 4566, host: str = "127.0.0.1") -> EmulatorStatus:
    """The emulator on ``port``: its pid if we started it and it lives, and if it answers."""
    url = f"http://{host}:{port}"
    pid_file = _pid_file(port)
    pid = pidfile.live_pid(pid_file)
    if pid is None:
        pid_file.unlink(missing_ok=True)  # it ended (or the machine rebooted): the pid may be another's now
    return EmulatorStatus(pid, url, answering(url))


def recorded(port: int = 4566) -> pidfile.Recorded | None:
    """The emulator process iotpm started on ``port`` (it may have ended since), as its pid file names it."""
    return pidfile.read(_pid_file(port))


def start(port: int = 4566, host: str = "127.0.0.1", wait_s: float = 30.0) -> EmulatorStatus:
    """Start the emulator in the background unless it already runs; wait until it answers."""
    current = status(port, host)
    if current.answering:
        return current
    log = (state_dir() / f"emulator-{port}.log").open("ab")
    proc = subprocess.Popen(
        [sys.executable, "-m", "iotpm.emulator.server", "--host", host, "--port", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    pidfile.write(_pid_file(port), proc.pid)
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"emulator exited with {proc.returncode}; see {log.name}")
        if answering(current.url, timeout=0.5):
            return EmulatorStatus(proc.pid, current.url, True)
        time.sleep(0.2)
    stop(port, host)
    raise RuntimeError(f"emulator did not answer on {current.url} within {wait_s:.0f} s; see {log.name}")


def stop(port: int = 4566, host: str = "127.0.0.1") -> bool:
    """Stop the emulator we started on ``port``; False when none was running."""
    current = status(port, host)
    if current.pid is None:
        return False
    me = pidfile.identify(current.pid)
    os.killpg(current.pid, signal.SIGTERM)
    deadline = time.monotonic() + 10
    while pidfile.running(me) and time.monotonic() < deadline:
        time.sleep(0.1)
    if pidfile.running(me):
        os.killpg(current.pid, signal.SIGKILL)
    _pid_file(port).unlink(missing_ok=True)
    return True

"""The local IoT Core: Debian's mosquitto with mutual TLS and an ACL mirroring the IoT policy.

Devices authenticate with certificates from the local CA; the certificate's CN is the
username (``use_identity_as_username``) and the client id (``use_username_as_clientid``:
a device cannot connect as another and knock it off), and the ACL lets each name publish
only to ``<prefix>/<its name>/telemetry`` — what the iot module's policy does with
``${iot:Connection.Thing.ThingName}``. The bridge alone may read every device's topic.

The broker never runs as root: started by root it drops to Debian's ``mosquitto`` user,
and its files (server key, CA certificate, ACL) are then copied into a folder of that
user's, since the twin's own folder may be private to root.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from iotpm.local.certs import LocalCA, write_private
from iotpm.local.processes import Processes

BRIDGE_CLIENT = "iotpm-bridge"


@dataclass(frozen=True, slots=True)
class Broker:
    """Where the broker listens and the files a client needs."""

    host: str
    port: int
    ca: Path
    topic_prefix: str

    def topic(self, device_id: str) -> str:
        return f"{self.topic_prefix}/{device_id}/telemetry"

    @property
    def topic_filter(self) -> str:
        return f"{self.topic_prefix}/+/telemetry"


def mosquitto_path() -> str:
    """The mosquitto binary (Debian installs it in /usr/sbin, often not on a user's PATH)."""
    found = shutil.which("mosquitto") or next(
        (p for p in ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto") if os.access(p, os.X_OK)), None
    )
    if found is None:
        raise RuntimeError("mosquitto is not installed: sudo apt-get install mosquitto (scripts/local-up.sh does it)")
    return found


def write_config(folder: Path, ca: LocalCA, port: int, topic_prefix: str) -> Path:
    """mosquitto.conf and its ACL, with the server key where the broker's user can read it."""
    server = ca.issue("localhost", server=True)
    home, user = _runtime_folder(folder)
    files = {"ca.pem": ca.cert_path, "server.pem": server.cert, "server.key": server.key}
    for name, source in files.items():
        write_private(home / name, source.read_bytes())
    acl = home / "acl"
    write_private(
        acl,
        "# the rule bridge reads every device's telemetry (the topic rule)\n"
        f"user {BRIDGE_CLIENT}\n"
        f"topic read {topic_prefix}/+/telemetry\n\n"
        "# a device writes only to its own topic (the IoT policy's ${iot:Connection.Thing.ThingName})\n"
        f"pattern write {topic_prefix}/%u/telemetry\n",
    )
    if user is not None:
        for path in (home, *home.iterdir()):
            os.chown(path, user.pw_uid, user.pw_gid)
    conf = folder / "mosquitto.conf"
    conf.write_text(
        (f"user {user.pw_name}\n" if user is not None else "") + "per_listener_settings false\n"
        "allow_anonymous false\n"
        f"acl_file {acl}\n"
        "persistence false\n"
        "max_queued_messages 100000\n"
        "log_dest stderr\n"
        "log_type error\nlog_type warning\nlog_type notice\n"
        f"listener {port} 127.0.0.1\n"
        f"cafile {home / 'ca.pem'}\n"
        f"certfile {home / 'server.pem'}\n"
        f"keyfile {home / 'server.key'}\n"
        "require_certificate true\n"
        "use_identity_as_username true\n"
        "use_username_as_clientid true\n"
        "tls_version tlsv1.2\n"
    )
    return conf


def _runtime_folder(folder: Path) -> tuple[Path, pwd.struct_passwd | None]:
    """Where the broker's files go, and the user it drops to (None: it runs as the caller).

    As root, a fresh 0700 folder under the system temp dir, owned by ``mosquitto`` (which
    can traverse /tmp but not a root-only home); as anyone else, the twin's folder.
    """
    if os.geteuid() != 0:
        home = folder / "broker"
        home.mkdir(mode=0o700, exist_ok=True)
        return home, None
    try:
        user = pwd.getpwnam("mosquitto")
    except KeyError as exc:
        raise RuntimeError("no 'mosquitto' user to run the broker as: apt-get install mosquitto") from exc
    return Path(tempfile.mkdtemp(prefix="iotpm-broker-")), user


def start(processes: Processes, folder: Path, ca: LocalCA, port: int, topic_prefix: str) -> Broker:
    """Start the broker (unless it runs) and wait until it accepts TCP connections."""
    conf = write_config(folder, ca, port, topic_prefix)
    processes.spawn("broker", [mosquitto_path(), "-c", str(conf)])
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return Broker("127.0.0.1", port, ca.cert_path, topic_prefix)
        except OSError:
            if processes.pid("broker") is None:
                break
            time.sleep(0.1)
    raise RuntimeError(f"mosquitto did not start; see {processes.log_path('broker')}")

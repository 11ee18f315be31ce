"""The local IoT Core: Debian's mosquitto with mutual TLS and an ACL mirroring the IoT policy.

Devices authenticate with certificates from the local CA; the certificate's CN is the
username (``use_identity_as_username``), and the ACL lets each name publish only to
``<prefix>/<its name>/telemetry`` — what the iot module's policy does with
``${iot:Connection.Thing.ThingName}``. The bridge alone may read every device's topic.
"""

from __future__ import annotations

import os
import shutil
import socket
import time
from dataclasses import dataclass
from pathlib import Path

from iotpm.local.certs import LocalCA
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
    """mosquitto.conf and its ACL in ``folder``; the server key made readable by the broker's user."""
    server = ca.issue("localhost", server=True)
    acl = folder / "acl"
    acl.write_text(
        "# the rule bridge reads every device's telemetry (the topic rule)\n"
        f"user {BRIDGE_CLIENT}\n"
        f"topic read {topic_prefix}/+/telemetry\n\n"
        "# a device writes only to its own topic (the IoT policy's ${iot:Connection.Thing.ThingName})\n"
        f"pattern write {topic_prefix}/%u/telemetry\n"
    )
    conf = folder / "mosquitto.conf"
    # Started as root, mosquitto would switch to its own user and then fail to read the
    # twin's files in private folders (a 0700 home or temp dir): a loopback-only dev
    # broker stays the user that started it. As any other user it is that user anyway.
    run_as = "user root\n" if os.geteuid() == 0 else ""
    conf.write_text(
        run_as + "per_listener_settings false\n"
        "allow_anonymous false\n"
        f"acl_file {acl}\n"
        "persistence false\n"
        "max_queued_messages 100000\n"
        "log_dest stderr\n"
        "log_type error\nlog_type warning\nlog_type notice\n"
        f"listener {port} 127.0.0.1\n"
        f"cafile {ca.cert_path}\n"
        f"certfile {server.cert}\n"
        f"keyfile {server.key}\n"
        "require_certificate true\n"
        "use_identity_as_username true\n"
        "tls_version tlsv1.2\n"
    )
    return conf


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

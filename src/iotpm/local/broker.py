"""The local IoT Core: Debian's mosquitto with mutual TLS and an ACL mirroring the IoT policy.

Devices authenticate with certificates from the local CA; the certificate's CN is the
username (``use_identity_as_username``) and the client id (``use_username_as_clientid``:
a device cannot connect as another and knock it off), and the ACL lets each name publish
only to its own telemetry topic — what the iot module's policy does with
``${iot:Connection.Thing.ThingName}``. The bridge alone may read every device's topic.

Devices publish through IoT Basic Ingest, as in AWS: ``$aws/rules/<rule>/<prefix>/<thing>/telemetry``
(:meth:`Broker.topic`), which goes straight to the topic rule. MQTT's ``#`` and ``+`` never
match a first level starting with ``$``, so the bridge subscribes to that rule's filter by
name (:attr:`Broker.topic_filter`). A broker without a rule name (``rule_name=None``) uses
the plain topic ``<prefix>/<thing>/telemetry`` of earlier releases.

The broker never runs as root: started by root it drops to Debian's ``mosquitto`` user,
and its files (server key, CA certificate, ACL) are then copied into a folder of that
user's (``/tmp/iotpm-broker-*``, 0700), since the twin's own folder is private to root.
That folder holds a server key: it is recorded in the twin's folder and removed when the
broker stops (:func:`remove_files`); :func:`stale_files` finds those no running broker
uses (left by a killed run or a release that did not remove them).

Messages are limited as IoT Core limits them: a payload over 128 KB is refused.
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

from iotpm.emulator import pidfile
from iotpm.local.certs import LocalCA, write_private
from iotpm.local.processes import Processes

BRIDGE_CLIENT = "iotpm-bridge"
#: IoT Core's limit on a message's payload (AWS IoT Core quotas: 128 KB)
MAX_PAYLOAD_BYTES = 128 * 1024
#: room in a packet for what comes with the payload (a topic of up to 256 bytes, properties)
PACKET_HEADROOM = 1024
RUNTIME_PREFIX = "iotpm-broker-"
#: where the twin's folder records the broker's runtime folder (when it has one)
RUNTIME_RECORD = "broker-files"


@dataclass(frozen=True, slots=True)
class Broker:
    """Where the broker listens and the files a client needs."""

    host: str
    port: int
    ca: Path
    topic_prefix: str
    #: the telemetry topic rule devices publish to through Basic Ingest (None: the plain topic)
    rule_name: str | None = None

    def topic(self, device_id: str) -> str:
        """Where ``device_id`` (a device, or a gateway for its devices) publishes its telemetry."""
        return telemetry_topic(self.topic_prefix, device_id, self.rule_name)

    @property
    def topic_filter(self) -> str:
        return telemetry_topic(self.topic_prefix, "+", self.rule_name)


#: the Basic Ingest prefix: ``$aws/rules/<rule name>/`` before the rule's own topic
BASIC_INGEST = "$aws/rules/"


def telemetry_topic(prefix: str, thing: str, rule_name: str | None) -> str:
    """``thing``'s telemetry topic, through Basic Ingest to ``rule_name`` when it is given."""
    plain = f"{prefix}/{thing}/telemetry"
    return f"{BASIC_INGEST}{rule_name}/{plain}" if rule_name else plain


def telemetry_rule(name_prefix: str) -> str:
    """The telemetry rule's name for an environment's ``name_prefix`` output (iot module: local.rule_name)."""
    return f"{name_prefix}_telemetry".replace("-", "_")


def mosquitto_path() -> str:
    """The mosquitto binary (Debian installs it in /usr/sbin, often not on a user's PATH)."""
    found = shutil.which("mosquitto") or next(
        (p for p in ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto") if os.access(p, os.X_OK)), None
    )
    if found is None:
        raise RuntimeError("mosquitto is not installed: sudo apt-get install mosquitto (scripts/local-up.sh does it)")
    return found


def write_config(folder: Path, ca: LocalCA, port: int, topic_prefix: str, rule: str | None = None) -> Path:
    """mosquitto.conf and its ACL, with the server key where the broker's user can read it."""
    server = ca.issue("localhost", server=True)
    remove_files(folder)  # an earlier start's copy, if a run ended without removing it
    home, user = _runtime_folder(folder)
    files = {"ca.pem": ca.cert_path, "server.pem": server.cert, "server.key": server.key}
    for name, source in files.items():
        write_private(home / name, source.read_bytes())
    acl = home / "acl"
    write_private(
        acl,
        "# the rule bridge reads every device's telemetry (the topic rule)\n"
        f"user {BRIDGE_CLIENT}\n"
        f"topic read {telemetry_topic(topic_prefix, '+', rule)}\n\n"
        "# a device (or a gateway) writes only to its own topic (the IoT policy's ${iot:Connection.Thing.ThingName})\n"
        f"pattern write {telemetry_topic(topic_prefix, '%u', rule)}\n",
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
        # The bridge must get every message the broker acknowledged (IoT Core's rule never drops one):
        # at 100,000 queued, mosquitto dropped the bridge's messages ("Outgoing messages are being
        # dropped for client iotpm-bridge", seen at 5,000 readings/s); no limit then. More in flight
        # to a subscriber (the bridge alone subscribes) than the default 20 keeps it from waiting
        # a round trip per 20 messages.
        "max_queued_messages 0\n"
        "max_inflight_messages 1000\n"
        f"message_size_limit {MAX_PAYLOAD_BYTES}\n"  # a larger payload is dropped, as IoT Core refuses it
        f"max_packet_size {MAX_PAYLOAD_BYTES + PACKET_HEADROOM}\n"  # an MQTT5 client learns it at connect
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
    home = Path(tempfile.mkdtemp(prefix=RUNTIME_PREFIX))  # 0700
    (folder / RUNTIME_RECORD).write_text(f"{home}\n")
    return home, user


def _is_runtime_folder(path: Path) -> bool:
    return path.parent == Path(tempfile.gettempdir()) and path.name.startswith(RUNTIME_PREFIX)


def remove_files(folder: Path) -> list[Path]:
    """Remove the runtime folder recorded in the twin's ``folder`` (the broker's copy of its key)."""
    record = folder / RUNTIME_RECORD
    try:
        recorded = [Path(line) for line in record.read_text().split()]
    except OSError:
        return []
    removed = [p for p in recorded if _is_runtime_folder(p) and p.is_dir()]
    for path in removed:
        shutil.rmtree(path, ignore_errors=True)
    record.unlink(missing_ok=True)
    return removed


def stale_files(min_age_s: float = 60.0) -> list[Path]:
    """Runtime folders (``/tmp/iotpm-broker-*``) no running mosquitto uses, older than ``min_age_s``.

    A folder younger than that may belong to a broker another twin is starting right now.
    """
    in_use = _folders_of_running_brokers()
    now = time.time()
    out = []
    for path in sorted(Path(tempfile.gettempdir()).glob(f"{RUNTIME_PREFIX}*")):
        try:
            young = now - path.stat().st_mtime < min_age_s
        except OSError:
            continue
        if path.is_dir() and path not in in_use and not young:
            out.append(path)
    return out


def _folders_of_running_brokers() -> set[Path]:
    """The runtime folders named by the configs of the mosquitto processes running now."""
    folders = set()
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if not argv or not argv[0].endswith(b"mosquitto") or b"-c" not in argv[:-1]:
            continue
        conf = Path(argv[argv.index(b"-c") + 1].decode(errors="replace"))
        if pidfile.start_ticks(int(proc.name)) is None:  # ended, or a zombie
            continue
        try:
            lines = conf.read_text().splitlines()
        except OSError:
            continue
        folders |= {Path(line.split(" ", 1)[1]).parent for line in lines if line.startswith("keyfile ")}
    return folders


def start(
    processes: Processes, folder: Path, ca: LocalCA, port: int, topic_prefix: str, rule: str | None = None
) -> Broker:
    """Start the broker (unless it runs) and wait until it accepts TCP connections."""
    conf = write_config(folder, ca, port, topic_prefix, rule)
    processes.spawn("broker", [mosquitto_path(), "-c", str(conf)])
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return Broker("127.0.0.1", port, ca.cert_path, topic_prefix, rule)
        except OSError:
            if processes.pid("broker") is None:
                break
            time.sleep(0.1)
    raise RuntimeError(f"mosquitto did not start; see {processes.log_path('broker')}")

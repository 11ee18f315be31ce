"""``iotpm local up|down|status``: the whole pipeline on one machine, and a bounded run through it.

``up`` starts the emulator, applies terraform/environments/local, starts mosquitto
(mutual TLS), the services process (rule bridge, event source poller, API server),
runs the fleet simulator with injected faults, waits for the pipeline to drain, and
scores the run over the API: readings published vs stored + quarantined, each fault's
detection delay, alerts raised and false alarms. Everything it starts is recorded by
pid in the state folder; ``down`` stops exactly that.

``up`` starts from whatever an earlier run left: what still runs from it is stopped
first, and the Terraform state of an emulator that is gone is discarded (the emulator
keeps its resources in memory), so every run applies to a fresh emulator. ``status``
names what is stale (pid files of ended processes, such a Terraform state, the broker's
leftover files); ``down`` stops what runs and removes what is stale. The state folder
is private (0700): it holds the API key.
"""

from __future__ import annotations

import gzip
import json
import os
import secrets
import shutil
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from iotpm import models
from iotpm.emulator import control, pidfile
from iotpm.local import broker as broker_mod
from iotpm.local.certs import LocalCA, write_private
from iotpm.local.processes import Processes
from iotpm.local.services import ROLES, read_status
from iotpm.local.terraform import LocalTerraform, TerraformState, handler_environment, repo_root
from iotpm.simulator.fleet import FAULTS, FaultKind, Fleet, ground_truth

# The emulator accepts any credentials; the region is the one terraform/environments/local deploys to.
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test"}


@dataclass
class UpOptions:
    """What ``iotpm local up`` runs."""

    devices: int = 20
    duration_s: float = 60.0
    rate_hz: float = 5.0  # readings per second per device
    faults: list[FaultKind] = field(default_factory=lambda: ["overheating", "pressure_leak"])
    fault_at_s: float = 30.0
    restart_at_s: float | None = None  # every device restarts then (sequence numbers from 1 again)
    seed: int = 7
    emulator_port: int = 4566
    broker_port: int = 8883
    api_port: int = 8080
    webhook_port: int = 0  # the alert routes' local receiver; 0: a free port
    batch_size: int = 10000  # as terraform/environments/local's event source mapping
    batching_window_s: float = 1.0
    drain_timeout_s: float = 300.0


@dataclass(frozen=True, slots=True)
class Live:
    """A running twin: where the emulator and API answer, the broker, the CA, the Terraform outputs."""

    endpoint: str
    api_url: str
    api_key: str
    broker: broker_mod.Broker
    ca: LocalCA
    outputs: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Cleanup:
    """What ``down`` stopped and what stale leftovers it removed."""

    stopped: list[str]
    removed: list[str]


class Twin:
    """The local twin's state folder and what runs from it."""

    def __init__(self, home: Path | None = None) -> None:
        self.home = control.private_dir((home or control.state_dir()).resolve() / "local")
        self.procs = Processes(self.home / "run")
        self.record_path = self.home / "twin.json"
        self.state = TerraformState(self.home / "terraform")

    # -- up ---------------------------------------------------------------------------

    def up(
        self, opts: UpOptions, say: Callable[[str], None], progress: Callable[[str, int, int], None]
    ) -> dict[str, Any]:
        """Start everything, run the simulator with the faults, score the run."""
        live = self.start(opts, say, progress)
        from iotpm.local.run import simulate

        fleet = Fleet(opts.devices, seed=opts.seed)
        faults = fleet.scenario(list(opts.faults), opts.fault_at_s)
        shown: Callable[[int, int, int], None] = lambda s, a, f: progress("simulate", a, s)  # noqa: E731
        run = simulate(
            fleet, live.ca.issue, live.broker, opts.duration_s, opts.rate_hz, shown, restart_at_s=opts.restart_at_s
        )
        truth = ground_truth(faults, run.start_ms)
        (self.home / "ground_truth.json").write_text(json.dumps(truth, indent=2))
        say("waiting for the pipeline to drain")
        if not self.drain(run.acked, opts.drain_timeout_s):
            st = self.status_counters() or {}
            logs = ", ".join(str(self.procs.log_path(_process(role))) for role in ROLES)
            say(f"the pipeline did not drain within {opts.drain_timeout_s:.0f} s (bridge {st.get('bridge')}, "
                f"poller {st.get('poller')}): the summary counts what arrived; see {logs}")  # fmt: skip
        summary = score(live.api_url, live.api_key, fleet.ids, truth, run.sent, run.acked, run.failed, live.endpoint,
                        live.outputs)  # fmt: skip
        summary["api_url"], summary["api_key"] = live.api_url, live.api_key
        summary["webhook_url"] = self._load().get("webhook_url")
        write_private(self.home / "summary.json", json.dumps(summary, indent=2))  # it holds the API key
        return summary

    def start(self, opts: UpOptions, say: Callable[[str], None], progress: Callable[[str, int, int], None]) -> Live:
        """Emulator, terraform apply, broker, services; what a run needs to publish and read back."""
        root = repo_root()
        os.environ.update({k: v for k, v in CREDENTIALS.items() if k not in os.environ})
        self._clear_leftovers(say)
        say(f"emulator on 127.0.0.1:{opts.emulator_port}")
        emu = control.start(opts.emulator_port)
        record: dict[str, Any] = {"emulator_port": opts.emulator_port, "emulator_started": emu.pid is not None}
        self._save(record)
        if reason := self.state.stale(emu.url) or self._state_unknown_to(emu):
            say(f"discarding the Terraform state of an earlier run: {reason}; the apply starts afresh")
            self.state.discard()
        self.state.claim(emu.url, control.recorded(opts.emulator_port) if emu.pid is not None else None)
        self._ensure_zips(root, say)
        say("terraform apply terraform/environments/local (every resource of the pipeline, on the emulator; 1-2 min)")
        tf = LocalTerraform(root, self.home / "terraform", emu.url)
        tf.init()
        webhook_port = opts.webhook_port or control.free_port()
        webhook_url = f"http://127.0.0.1:{webhook_port}"
        tf.apply(lambda done, total, addr: progress("terraform apply", done, total), {"local_webhook_url": webhook_url})
        out = tf.outputs()
        region = str(out["region"])
        lam = _client("lambda", emu.url, region)
        api_key = self._api_key(emu.url, region, out["api_key_id"])
        operator_key = secrets.token_urlsafe(24)
        ca = LocalCA(self.home / "pki")
        say(f"mosquitto (mutual TLS) on 127.0.0.1:{opts.broker_port}")
        rule = broker_mod.telemetry_rule(str(out["name_prefix"]))  # devices publish through Basic Ingest to it
        broker = broker_mod.start(self.procs, self.home, ca, opts.broker_port, out["topic_filter"].split("/")[0], rule)
        bridge_id = ca.issue(broker_mod.BRIDGE_CLIENT)
        config = {
            "environment": {**CREDENTIALS, "AWS_ENDPOINT_URL": emu.url, **_region_variables(region)},
            # Each handler runs with its own function's variables as Terraform set them (read back).
            "processor_environment": handler_environment(lam, out["processor_function_name"], region),
            "api_environment": handler_environment(lam, out["api_function_name"], region),
            # the compaction function's, for its hourly idle-shard job (src/iotpm/local/schedule.py)
            "compaction_environment": handler_environment(lam, out["compaction_function_name"], region),
            "stream": out["stream_name"],
            "broker": {
                "host": broker.host,
                "port": broker.port,
                "ca": str(broker.ca),
                "topic_prefix": broker.topic_prefix,
                "rule_name": broker.rule_name,
                "cert": str(bridge_id.cert),
                "key": str(bridge_id.key),
            },
            "batch_size": opts.batch_size,
            "batching_window_s": opts.batching_window_s,
            "on_failure_queue_url": out["on_failure_queue_url"],
            "api_key": api_key,
            "operator_key": operator_key,  # the operator's credential for writes (IAM in AWS)
            "api_port": opts.api_port,
            "webhook_port": webhook_port,
            "webhook_log": str(self.home / "webhooks.jsonl"),
            "status_path": str(self.home / "status.json"),
        }
        write_private(self.home / "services.json", json.dumps(config, indent=2))  # it holds the API key
        for stale in self.home.glob("status.*json"):
            stale.unlink(missing_ok=True)
        (self.home / "webhooks.jsonl").unlink(missing_ok=True)
        services = [sys.executable, "-m", "iotpm.local.services", str(self.home / "services.json")]
        for role in ROLES:  # each apart, as in AWS: they do not share one interpreter lock
            self.procs.spawn(_process(role), [*services, role])
        api_url = f"http://127.0.0.1:{opts.api_port}"
        self._wait_api(api_url, api_key)
        record.update(api_url=api_url, api_key=api_key, outputs=out, broker_port=opts.broker_port,
                      webhook_url=webhook_url, operator_key=operator_key)  # fmt: skip
        self._save(record)
        say(f"services up: bridge, poller, API at {api_url}")
        return Live(emu.url, api_url, api_key, broker, ca, out)

    def _clear_leftovers(self, say: Callable[[str], None]) -> None:
        """Stop what an earlier ``up`` left running and remove its stale files, saying what."""
        before = self.down()
        if before.stopped:
            say(f"stopped what an earlier run left running: {', '.join(before.stopped)}")
        if before.removed:
            say(f"removed what earlier runs left behind: {'; '.join(before.removed)}")

    def _state_unknown_to(self, emu: control.EmulatorStatus) -> str | None:
        """For an emulator iotpm did not start: why the state does not match it (its API key is not there)."""
        owner, outputs = self.state.owner(), self.state.outputs()
        if emu.pid is not None or owner is None or owner.get("pid") is not None or not outputs.get("api_key_id"):
            return None
        try:
            self._api_key(emu.url, str(outputs.get("region", "eu-west-1")), str(outputs["api_key_id"]))
        except Exception:  # any failure to find the key (absent, or no API at all): not this state's emulator
            return f"the emulator at {emu.url} does not hold its resources (it was restarted)"
        return None

    @staticmethod
    def _api_key(endpoint: str, region: str, key_id: str) -> str:
        apigw = _client("apigateway", endpoint, region)
        return str(apigw.get_api_key(apiKey=key_id, includeValue=True)["value"])

    def _ensure_zips(self, root: Path, say: Callable[[str], None]) -> None:
        out = root / "lambda_build" / "out"
        missing = [fn for fn in ("processor", "api", "compaction") if not (out / f"{fn}-x86_64.zip").exists()]
        if not missing:
            return
        say(f"building the Lambda zips ({', '.join(missing)}) that terraform uploads (pip fetches wheels; ~1 min)")
        log, started, note_at = self.procs.log_path("lambda-build"), time.monotonic(), 15.0
        with log.open("wb") as written:
            build = subprocess.Popen([sys.executable, str(root / "lambda_build" / "build.py"), *missing, "--arch",
                                      "x86_64"], stdout=written, stderr=subprocess.STDOUT)  # fmt: skip
            while build.poll() is None:
                time.sleep(0.5)
                if (elapsed := time.monotonic() - started) >= note_at:
                    say(f"  still building the zips ({elapsed:.0f} s)")
                    note_at += 15
        if build.returncode != 0:
            raise RuntimeError(f"building the Lambda zips failed (exit {build.returncode}); see {log}")

    def _wait_api(self, url: str, key: str, timeout_s: float = 30.0) -> None:
        """Until the API answers and the bridge and the poller (its processors built) report."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                get_json(url, "/health", key)
                if self.status_counters() is not None:
                    return
            except OSError:
                pass
            if any(self.procs.pid(_process(role)) is None for role in ROLES):
                break
            time.sleep(0.2)
        logs = ", ".join(str(self.procs.log_path(_process(role))) for role in ROLES)
        raise RuntimeError(f"the services did not start; see {logs}")

    def drain(self, published: int, timeout_s: float) -> bool:
        """Until the poller has processed every record the bridge put, and the bridge has every message.

        False when ``timeout_s`` passed first (the summary then counts what did arrive).
        """
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            st = self.status_counters()
            if (
                st
                and st["bridge"]["received"] >= published
                and st["poller"]["records"] >= st["bridge"]["put"]
                and st["bridge"]["put"] + st["bridge"].get("refused", 0) >= published  # refused: never put
            ):
                return True
            time.sleep(0.25)
        return False

    def status_counters(self) -> dict[str, Any] | None:
        return read_status(self.home / "status.json")

    # -- down / status ----------------------------------------------------------------

    def down(self) -> Cleanup:
        """Stop what ``up`` started (services, broker, and the emulator if it started it); remove what is stale.

        Stale: pid files of processes that ended, the broker's copy of its files (it holds
        the server key), and the Terraform state of an emulator that no longer runs.
        """
        stale, ended = self.stale(), self.procs.stale()
        stopped = [name for name in (*map(_process, ROLES), "broker") if self.procs.stop(name)]
        record = self._load()
        if record.get("emulator_started") and control.stop(int(record["emulator_port"])):
            stopped.append("emulator")
        self.procs.clean()
        removed = [f"pid files of processes that had ended ({', '.join(ended)})"] if ended else []
        removed += [f"the broker's files in {p}" for p in broker_mod.remove_files(self.home)]
        for path in broker_mod.stale_files():
            shutil.rmtree(path, ignore_errors=True)
            removed.append(f"the broker's files in {path} (no running broker uses them)")
        if reason := self.state.stale():
            self.state.discard()
            if "state" in stale:  # stale before this stop; a state whose emulator this stop ended is routine
                removed.append(f"the Terraform state ({reason})")
        self.record_path.unlink(missing_ok=True)
        return Cleanup(stopped, removed)

    def stale(self) -> dict[str, str]:
        """What an earlier run left that no longer matches anything running, by kind, with why."""
        out = {}
        if gone := self.procs.stale():
            out["pid files"] = ", ".join(f"{name} (pid {pid})" for name, pid in gone.items()) + ": ended"
        record = self._load()
        emu = control.recorded(int(record["emulator_port"])) if record.get("emulator_started") else None
        if emu is not None and not pidfile.running(emu):
            out["emulator"] = f"pid {emu.pid} recorded, ended"
        if reason := self.state.stale():
            out["state"] = f"Terraform state: {reason}"
        leftovers = [str(p) for p in broker_mod.stale_files()]
        if leftovers:
            out["broker files"] = f"{', '.join(leftovers)}: no running broker uses them (they hold a server key)"
        return out

    def status(self) -> dict[str, Any]:
        stale = self.stale()  # first: reading the emulator's status removes its pid file once it ended
        record = self._load()
        running = dict(self.procs.running())
        if record.get("emulator_port"):
            emu = control.status(int(record["emulator_port"]))
            if emu.pid is not None:
                running["emulator"] = emu.pid
        return {"running": running, "api_url": record.get("api_url"), "counters": self.status_counters(),
                "stale": stale}  # fmt: skip

    def _save(self, record: dict[str, Any]) -> None:
        write_private(self.record_path, json.dumps(record, indent=2))  # it holds the API key

    def _load(self) -> dict[str, Any]:
        try:
            return dict(json.loads(self.record_path.read_text()))
        except (OSError, ValueError):
            return {}


def _process(role: str) -> str:
    """The tracked process of a services role (the pipeline's keeps the old name, ``services``)."""
    return "services" if role == "pipeline" else role


def get_json(base: str, path: str, key: str, params: dict[str, str] | None = None) -> Any:
    """GET ``base+path`` with the API key; the parsed JSON body."""
    query = f"?{urllib.parse.urlencode(params)}" if params else ""
    req = urllib.request.Request(f"{base}{path}{query}", headers={"x-api-key": key})
    with urllib.request.urlopen(req, timeout=30) as resp:
        return json.loads(resp.read())


def pages(base: str, path: str, key: str, params: dict[str, str]) -> list[dict[str, Any]]:
    """Every item of a paginated route."""
    items: list[dict[str, Any]] = []
    params = dict(params)
    while True:
        body = get_json(base, path, key, params)
        items += body["items"]
        if not body.get("next_token"):
            return items
        params["next_token"] = body["next_token"]


def _iso(ts_ms: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts_ms / 1000))


def epoch_ms(iso: str) -> int:
    """ISO 8601 text from the API as epoch milliseconds."""
    return models.epoch_ms(datetime.fromisoformat(iso.replace("Z", "+00:00")))


def score(
    api: str,
    key: str,
    devices: list[str],
    truth: list[dict[str, Any]],
    sent: int,
    acked: int,
    failed: int,
    endpoint: str,
    outputs: dict[str, Any],
) -> dict[str, Any]:
    """The run's summary, read back over the API (and the quarantine objects in S3)."""
    listed = pages(api, "/devices", key, {"limit": "500"})
    stored = 0
    for d in listed:
        stored += get_json(api, f"/devices/{d['device_id']}", key)["readings"]
    quarantined = count_quarantined(endpoint, str(outputs["region"]), outputs["archive_bucket"])
    since = min((t["start_ms"] for t in truth), default=int(time.time() * 1000)) - 3_600_000
    raises = [a for a in pages(api, "/anomalies", key, {"since": _iso(since), "limit": "500"}) if a["kind"] == "raise"]
    faulty = {t["device_id"] for t in truth}
    detections = [_detection(t, raises) for t in truth]
    false_alarms = [a for a in raises if a["device_id"] not in faulty]
    return {
        "devices": len(devices),
        "published": acked,
        "publish_failed": failed,
        "sent": sent,
        "stored": stored,
        "quarantined": quarantined,
        "lost": acked - stored - quarantined,
        "faults": detections,
        "alerts_raised": len(raises),
        "false_alarms": len(false_alarms),
        "false_alarm_devices": sorted({a["device_id"] for a in false_alarms}),
    }


def _detection(t: dict[str, Any], raises: list[dict[str, Any]]) -> dict[str, Any]:
    """The first alarm raised on the fault's device at or after the fault began."""
    own = sorted((a for a in raises if a["device_id"] == t["device_id"] and epoch_ms(a["time"]) >= t["start_ms"]),
                 key=lambda a: epoch_ms(a["time"]))  # fmt: skip
    first = own[0] if own else None
    return {
        "device_id": t["device_id"],
        "fault": t["kind"],
        "injected": _iso(t["start_ms"]),
        "detected": first is not None,
        "delay_s": None if first is None else round((epoch_ms(first["time"]) - t["start_ms"]) / 1000, 1),
        "reasons": [] if first is None else [{k: r.get(k) for k in ("detector", "metric")} for r in first["reasons"]],
    }


def _client(service: str, endpoint: str, region: str) -> Any:
    import boto3

    return boto3.client(service, endpoint_url=endpoint, region_name=region)


def _region_variables(region: str) -> dict[str, str]:
    """The region as the Lambda runtime gives it to a function."""
    return {"AWS_REGION": region, "AWS_DEFAULT_REGION": region}


def count_quarantined(endpoint: str, region: str, bucket: str) -> int:
    """Records under the archive's quarantine/ prefix (each object is gzip JSON Lines)."""
    s3 = _client("s3", endpoint, region)
    total = 0
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix="quarantine/"):
        for obj in page.get("Contents", []):
            body = s3.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read()
            total += sum(1 for line in gzip.decompress(body).splitlines() if line.strip())
    return total


def fault_list(text: str) -> list[FaultKind]:
    """Parse ``--faults overheating,pressure_leak`` (names from :data:`FAULTS`)."""
    names = [n.strip() for n in text.split(",") if n.strip()]
    bad = [n for n in names if n not in FAULTS]
    if bad:
        raise ValueError(f"unknown fault(s) {', '.join(bad)}; choose from {', '.join(FAULTS)}")
    return names  # type: ignore[return-value]

"""The local twin's services: rule bridge, event source poller, API server.

``iotpm local up`` starts each as its own process, ``python -m iotpm.local.services
<config.json> <role>``: ``bridge`` (the IoT rule: broker to Kinesis), ``pipeline`` (the
event source poller with a processor instance per shard, the webhook receiver and the hourly
idle-shard compaction of :mod:`iotpm.local.schedule`) and
``api`` (the API server), as AWS runs each apart. In one process they shared one
interpreter lock, so the API's readers and the processors waited on each other. Without
a role, one process runs all three. The config holds the Terraform outputs and where the
broker listens; the processor and API handlers are the modules the zips carry, each
configured by the variables Terraform set on its own function (read back from the
emulator's Lambda API by ``iotpm local up``) plus the region the Lambda runtime adds.
Each role writes its counters every half second (``iotpm local status`` and the run
summary read them through :func:`read_status`).
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

#: what each process runs; each writes its counters to ``status.<role>.json`` beside ``status.json``
ROLES = ("bridge", "pipeline", "api")


def main(argv: list[str] | None = None) -> None:
    args = argv if argv is not None else sys.argv[1:]
    config = json.loads(Path(args[0]).read_text())
    roles = list(dict.fromkeys(args[1:])) or list(ROLES)
    if unknown := sorted(set(roles) - set(ROLES)):
        raise SystemExit(f"unknown role(s) {unknown}; the roles are {', '.join(ROLES)}")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    os.environ.update(config["environment"])  # AWS_ENDPOINT_URL, credentials, the region
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    started = [(role, *STARTERS[role](config)) for role in roles]
    status_path = Path(config["status_path"])
    while not stop.wait(0.5):
        for role, _, counters in started:
            write_status(status_path, role, counters())
    for role, stopper, counters in started:
        stopper()
        write_status(status_path, role, counters(), running=False)


Started = tuple[Callable[[], None], Callable[[], dict[str, Any]]]  # how to stop it, its counters


def _bridge(config: dict[str, Any]) -> Started:
    import boto3
    from botocore.config import Config

    from iotpm.local.bridge import Bridge
    from iotpm.local.broker import Broker
    from iotpm.local.certs import Identity

    b = config["broker"]
    broker = Broker(b["host"], b["port"], Path(b["ca"]), b["topic_prefix"], b.get("rule_name"))
    # the bridge builds every record itself: botocore's check of each record's parameters is left out
    kinesis = boto3.client("kinesis", config=Config(parameter_validation=False))
    bridge = Bridge(kinesis, config["stream"], broker, Identity(Path(b["cert"]), Path(b["key"])))
    bridge.start()
    return bridge.stop, lambda: {
        "bridge": {"received": bridge.received, "put": bridge.put, "retried": bridge.retried, "refused": bridge.refused}
    }


def _pipeline(config: dict[str, Any]) -> Started:
    import boto3
    from botocore.config import Config

    from iotpm.composition import Settings, build_processor
    from iotpm.handlers.processor import ProcessorHandler
    from iotpm.local.poller import Poller, raw_records_client

    processor_settings = Settings.from_environment(config["processor_environment"])

    def processor_instance() -> ProcessorHandler:  # one per shard, as Lambda runs them, built before records come
        return ProcessorHandler(lambda: build_processor(processor_settings)).warm()

    # A full batch behind a backlog is 10,000 records a GetRecords call: on a busy emulator that
    # answer can take longer than botocore's 60 s read timeout, and each retry asked the emulator
    # for the same 10,000 records again while it was still writing the first answer. The poller
    # retries a failed read itself, from its checkpoint. It builds every call itself: botocore's check
    # of each call's parameters is left out, as the bridge's.
    reader = raw_records_client(
        Config(read_timeout=600, retries={"mode": "standard", "max_attempts": 2}, parameter_validation=False)
    )
    poller = Poller(
        reader,
        config["stream"],
        instances=processor_instance,
        batch_size=config["batch_size"],
        batching_window_s=config.get("batching_window_s", 1.0),
        sqs=boto3.client("sqs"),
        on_failure_queue_url=config["on_failure_queue_url"],
        region=config["environment"]["AWS_REGION"],
    ).start()
    # the compaction function's hourly idle-shard job (write-behind only), as its schedule runs it in AWS
    from iotpm.local.schedule import EVERY_S, Every, idle_shards_job

    job = idle_shards_job(config.get("compaction_environment", {}))
    every_s = float(config.get("idle_shards_every_s", EVERY_S))
    idle = Every("idle-shard compaction", job, every_s).start() if job is not None else None
    webhooks = None
    if config.get("webhook_port"):  # where SNS delivers the routed alerts (terraform's local_webhook_url)
        from iotpm.local.webhook import WebhookReceiver

        webhooks = WebhookReceiver(Path(config["webhook_log"]), config["webhook_port"]).start()

    def stop() -> None:
        poller.stop()
        if idle is not None:
            idle.stop()
        if webhooks is not None:
            webhooks.stop()

    def counters() -> dict[str, Any]:
        shards = list(poller.shards.values())
        return {
            "poller": {
                "records": sum(s.records for s in shards),
                "invocations": sum(s.invocations for s in shards),
                "retries": sum(s.retries for s in shards),
                "sent_to_dlq": sum(s.sent_to_dlq for s in shards),
                "lag_ms": max((s.lag_ms for s in shards), default=0.0),
                # where the time goes (totals: a reader takes differences between samples)
                "reads": sum(s.reads for s in shards),
                "read_s": round(sum(s.read_s for s in shards), 4),
                "invoke_s": round(sum(s.invoke_s for s in shards), 4),
                # each shard's latest invocations: [ended, shard, records, reads, read_s, window_s, invoke_s, failed_at]
                "recent": [
                    [
                        round(b.ended, 3),
                        s.shard_id,
                        b.records,
                        b.reads,
                        round(b.read_s, 4),
                        round(b.window_s, 4),
                        round(b.invoke_s, 4),
                        b.failed_at,
                    ]
                    for s in shards
                    for b in list(s.recent)
                ],
            },
            **({"idle_shards": idle.counters()} if idle is not None else {}),
        }

    return stop, counters


def _api(config: dict[str, Any]) -> Started:
    from iotpm.api.server import ApiServer
    from iotpm.composition import TableSettings, build_operator, build_queries
    from iotpm.handlers.api import ApiHandler

    api_settings = TableSettings.from_environment(config["api_environment"])
    handler = ApiHandler(
        lambda: build_queries(api_settings), operator=lambda q: build_operator(api_settings, queries=q)
    )
    # writes need the twin's operator credential (IAM in AWS): curl -u operator:$KEY
    operator_key = str(config.get("operator_key", ""))
    api = ApiServer(handler, config["api_key"], config["api_port"], operator_key=operator_key).start()
    return api.stop, lambda: {"api_url": api.url}


STARTERS: dict[str, Callable[[dict[str, Any]], Started]] = {"bridge": _bridge, "pipeline": _pipeline, "api": _api}


def write_status(path: Path, role: str, counters: dict[str, Any], running: bool = True) -> None:
    """One role's counters, replaced whole (a reader never sees half a file)."""
    target = path.with_name(f"{path.stem}.{role}.json")
    tmp = target.with_suffix(".tmp")
    tmp.write_text(json.dumps({"running": running, "time": time.time(), **counters}))
    tmp.replace(target)


def read_status(path: Path) -> dict[str, Any] | None:
    """Every role's counters in one dict (None until each running role has written once)."""
    merged: dict[str, Any] = {}
    for role in ROLES:
        try:
            merged.update(json.loads(path.with_name(f"{path.stem}.{role}.json").read_text()))
        except (OSError, ValueError):
            continue
    return merged if "bridge" in merged and "poller" in merged else None


if __name__ == "__main__":
    main()

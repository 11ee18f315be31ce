"""The local twin's services: rule bridge, event source poller, API server.

Started by ``iotpm local up`` as two processes, ``python -m iotpm.local.services
<config.json> pipeline`` (the bridge, the poller with its processor instances, the
webhook receiver) and ``... api`` (the API server), as AWS runs the API apart from the
stream's functions: one interpreter's lock shared by both made every reader of the API
wait behind the processors and the processors behind the readers. Without a role, one
process runs all of it. The
config holds the Terraform outputs and where the broker listens; the processor and
API handlers are the modules the zips carry, each configured by the variables
Terraform set on its own function (read back from the emulator's Lambda API by
``iotpm local up``) plus the region the Lambda runtime adds. Counters are written to ``status.json`` every
half second (``iotpm local status`` and the run summary read them).
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

ROLES = ("pipeline", "api")


def main(argv: list[str] | None = None) -> None:
    args = argv if argv is not None else sys.argv[1:]
    config = json.loads(Path(args[0]).read_text())
    roles = set(args[1:]) or set(ROLES)
    if not roles <= set(ROLES):
        raise SystemExit(f"unknown role(s) {sorted(roles - set(ROLES))}; the roles are {', '.join(ROLES)}")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    os.environ.update(config["environment"])  # AWS_ENDPOINT_URL, credentials, the region
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    if roles == {"api"}:
        api = _api(config).start()
        stop.wait()
        api.stop()
        return
    _pipeline(config, stop, _api(config).start() if "api" in roles else None)


def _api(config: dict[str, Any]) -> Any:
    from iotpm.api.server import ApiServer
    from iotpm.composition import TableSettings, build_queries
    from iotpm.handlers.api import ApiHandler

    api_settings = TableSettings.from_environment(config["api_environment"])
    return ApiServer(ApiHandler(lambda: build_queries(api_settings)), config["api_key"], config["api_port"])


def _pipeline(config: dict[str, Any], stop: threading.Event, api: Any) -> None:

    import boto3

    from iotpm.composition import Settings, build_processor
    from iotpm.handlers.processor import ProcessorHandler
    from iotpm.local.bridge import Bridge
    from iotpm.local.broker import Broker
    from iotpm.local.certs import Identity
    from iotpm.local.poller import Poller

    processor_settings = Settings.from_environment(config["processor_environment"])

    def processor_instance() -> ProcessorHandler:  # one per shard, as Lambda runs them
        return ProcessorHandler(lambda: build_processor(processor_settings))

    b = config["broker"]
    broker = Broker(b["host"], b["port"], Path(b["ca"]), b["topic_prefix"])
    kinesis = boto3.client("kinesis")
    bridge = Bridge(kinesis, config["stream"], broker, Identity(Path(b["cert"]), Path(b["key"]))).start()
    poller = Poller(
        kinesis,
        config["stream"],
        instances=processor_instance,
        batch_size=config["batch_size"],
        batching_window_s=config.get("batching_window_s", 1.0),
        sqs=boto3.client("sqs"),
        on_failure_queue_url=config["on_failure_queue_url"],
        region=config["environment"]["AWS_REGION"],
    ).start()
    webhooks = None
    if config.get("webhook_port"):  # where SNS delivers the routed alerts (terraform's local_webhook_url)
        from iotpm.local.webhook import WebhookReceiver

        webhooks = WebhookReceiver(Path(config["webhook_log"]), config["webhook_port"]).start()
    status_path = Path(config["status_path"])
    api_url = f"http://127.0.0.1:{config['api_port']}"
    while not stop.wait(0.5):
        _write_status(status_path, bridge, poller, api_url)
    bridge.stop()
    poller.stop()
    if api is not None:
        api.stop()
    if webhooks is not None:
        webhooks.stop()
    _write_status(status_path, bridge, poller, api_url, running=False)


def _write_status(path: Path, bridge: Any, poller: Any, api_url: str, running: bool = True) -> None:
    shards = list(poller.shards.values())
    status = {
        "running": running,
        "time": time.time(),
        "api_url": api_url,
        "bridge": {"received": bridge.received, "put": bridge.put, "retried": bridge.retried},
        "poller": {
            "records": sum(s.records for s in shards),
            "invocations": sum(s.invocations for s in shards),
            "retries": sum(s.retries for s in shards),
            "sent_to_dlq": sum(s.sent_to_dlq for s in shards),
            "lag_ms": max((s.lag_ms for s in shards), default=0.0),
        },
    }
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(status))
    tmp.replace(path)


if __name__ == "__main__":
    main()

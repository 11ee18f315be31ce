"""The local twin's services in one background process: rule bridge, event source poller, API server.

Started by ``iotpm local up`` as ``python -m iotpm.local.services <config.json>``. The
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


def main(argv: list[str] | None = None) -> None:
    args = argv if argv is not None else sys.argv[1:]
    config = json.loads(Path(args[0]).read_text())
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    os.environ.update(config["environment"])  # AWS_ENDPOINT_URL, credentials, the region

    import boto3

    from iotpm.api.server import ApiServer
    from iotpm.composition import Settings, TableSettings, build_processor, build_queries
    from iotpm.handlers.api import ApiHandler
    from iotpm.handlers.processor import ProcessorHandler
    from iotpm.local.bridge import Bridge
    from iotpm.local.broker import Broker
    from iotpm.local.certs import Identity
    from iotpm.local.poller import Poller

    processor_settings = Settings.from_environment(config["processor_environment"])
    api_settings = TableSettings.from_environment(config["api_environment"])

    def processor_instance() -> ProcessorHandler:  # one per shard, as Lambda runs them
        return ProcessorHandler(lambda: build_processor(processor_settings))

    api_handler = ApiHandler(lambda: build_queries(api_settings))
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
    api = ApiServer(api_handler, config["api_key"], config["api_port"]).start()
    webhooks = None
    if config.get("webhook_port"):  # where SNS delivers the routed alerts (terraform's local_webhook_url)
        from iotpm.local.webhook import WebhookReceiver

        webhooks = WebhookReceiver(Path(config["webhook_log"]), config["webhook_port"]).start()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    status_path = Path(config["status_path"])
    while not stop.wait(0.5):
        _write_status(status_path, bridge, poller, api.url)
    bridge.stop()
    poller.stop()
    api.stop()
    if webhooks is not None:
        webhooks.stop()
    _write_status(status_path, bridge, poller, api.url, running=False)


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

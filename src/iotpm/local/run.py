"""A paced simulator run against the local broker: every device publishes ``rate_hz`` readings a second."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from iotpm.local.broker import Broker
from iotpm.local.certs import Identity
from iotpm.simulator.fleet import Fleet
from iotpm.simulator.publish import Counts, Endpoint, client, connect_all, publish, stop_all


@dataclass(frozen=True, slots=True)
class RunResult:
    """When the run started and what the broker acknowledged."""

    start_ms: int
    sent: int
    acked: int
    failed: int


def simulate(
    fleet: Fleet,
    identity: Callable[[str], Identity],
    broker: Broker,
    duration_s: float,
    rate_hz: float,
    progress: Callable[[int, int, int], None],
    on_ack: Callable[[str, int], None] | None = None,
) -> RunResult:
    """Publish the fleet for ``duration_s``; ``progress(sent, acked, failed)`` about ten times a second."""
    endpoint = Endpoint(broker.host, broker.port, broker.ca, broker.topic_prefix)
    clients = {}
    for m in fleet.machines:
        ident = identity(m.device_id)
        clients[m.device_id] = client(endpoint, m.device_id, ident.cert, ident.key, unthrottled=rate_hz > 100)
    connect_all(clients.values())
    counts = Counts()
    start = time.time()
    start_ms = int(start * 1000)
    ticks = int(duration_s * rate_hz)
    last_report = 0.0
    try:
        for k in range(ticks):
            due = start + k / rate_hz
            if (wait := due - time.time()) > 0:
                time.sleep(wait)
            ts_ms = int(due * 1000)
            for m in fleet.machines:
                message = m.reading(k / rate_hz, ts_ms)
                if message is not None:
                    ack = (lambda d=m.device_id, t=ts_ms: on_ack(d, t)) if on_ack else None
                    publish(clients[m.device_id], broker.topic(m.device_id), message, counts, ack)
            if time.monotonic() - last_report > 0.1:
                progress(counts.sent, counts.acked, counts.failed)
                last_report = time.monotonic()
        deadline = time.monotonic() + 30
        while counts.acked + counts.failed < counts.sent and time.monotonic() < deadline:
            time.sleep(0.05)
        progress(counts.sent, counts.acked, counts.failed)
    finally:
        stop_all(clients.values())
    return RunResult(start_ms, counts.sent, counts.acked, counts.failed)

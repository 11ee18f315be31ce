"""A paced simulator run against the local broker: every device publishes ``rate_hz`` readings a second."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from iotpm.local.broker import Broker
from iotpm.local.certs import Identity
from iotpm.simulator.fleet import Fleet
from iotpm.simulator.publish import (
    Counts,
    Endpoint,
    client,
    connect_all,
    packed_messages,
    publish,
    publish_packed,
    stop_all,
)


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
    restart_at_s: float | None = None,
    gateway: str | Sequence[str] | None = None,
) -> RunResult:
    """Publish the fleet for ``duration_s``; ``progress(sent, acked, failed)`` about ten times a second.

    ``restart_at_s``: every device restarts then, as after a power cut or a firmware
    update: it disconnects, reconnects with a new session, and its sequence numbers
    start again from 1 (its clock goes on).

    ``gateway``: the devices sit behind that gateway thing, which alone connects (with its
    own certificate) and publishes, on its own topic, the devices' readings of a tick packed in
    messages of at most :data:`~iotpm.simulator.publish.MAX_PACKED` readings
    (:func:`iotpm.simulator.publish.publish_packed`). ``sent`` and ``acked`` still count readings.
    Several gateways: the fleet's devices in turn behind each (device ``i`` behind gateway
    ``i % len(gateway)``), each gateway publishing its own devices' readings.
    """
    endpoint = Endpoint(broker.host, broker.port, broker.ca, broker.topic_prefix)
    gateways = [gateway] if isinstance(gateway, str) else list(gateway or [])
    behind = {m.device_id: gateways[i % len(gateways)] for i, m in enumerate(fleet.machines)} if gateways else {}

    def connected() -> dict[str, Any]:
        out = {}
        if gateways:
            for name in gateways:
                ident = identity(name)
                out[name] = client(endpoint, name, ident.cert, ident.key, unthrottled=rate_hz > 100)
            connect_all(out.values())
            return out
        for m in fleet.machines:
            ident = identity(m.device_id)
            out[m.device_id] = client(endpoint, m.device_id, ident.cert, ident.key, unthrottled=rate_hz > 100)
        connect_all(out.values())
        return out

    clients = connected()
    counts = Counts()
    start = time.time()
    start_ms = int(start * 1000)
    ticks = int(duration_s * rate_hz)
    restart_tick = None if restart_at_s is None else int(restart_at_s * rate_hz)
    last_report = 0.0
    try:
        for k in range(ticks):
            if k == restart_tick:
                _settle(counts)
                stop_all(clients.values())
                for m in fleet.machines:
                    m.seq = 0
                clients = connected()
            due = start + k / rate_hz
            if (wait := due - time.time()) > 0:
                time.sleep(wait)
            ts_ms = int(due * 1000)
            if gateways:
                _publish_gateways(fleet, behind, clients, broker, k / rate_hz, ts_ms, counts, on_ack)
            for m in fleet.machines if not gateways else ():
                message = m.reading(k / rate_hz, ts_ms)
                if message is not None:
                    ack = (lambda d=m.device_id, t=ts_ms: on_ack(d, t)) if on_ack else None
                    publish(clients[m.device_id], broker.topic(m.device_id), message, counts, ack)
            if time.monotonic() - last_report > 0.1:
                progress(counts.sent, counts.acked, counts.failed)
                last_report = time.monotonic()
        _settle(counts)
        progress(counts.sent, counts.acked, counts.failed)
    finally:
        stop_all(clients.values())
    return RunResult(start_ms, counts.sent, counts.acked, counts.failed)


def _publish_gateways(
    fleet: Fleet,
    behind: dict[str, str],
    clients: dict[str, Any],
    broker: Broker,
    t_s: float,
    ts_ms: int,
    counts: Counts,
    on_ack: Callable[[str, int], None] | None,
) -> None:
    """Every gateway's message(s) of one instant: the readings of the devices ``behind`` it."""
    packed: dict[str, list[tuple[str, Any]]] = {name: [] for name in dict.fromkeys(behind.values())}
    for m in fleet.machines:
        if (r := m.reading(t_s, ts_ms)) is not None:
            packed[behind[m.device_id]].append((m.device_id, r))
    for name, readings in packed.items():
        for part in packed_messages(readings):  # IoT Core refuses a message over 128 KB
            acks = _acks(on_ack, [d for d, _ in part], ts_ms)
            publish_packed(clients[name], broker.topic(name), [r for _, r in part], counts, acks)


def _acks(on_ack: Callable[[str, int], None] | None, devices: list[str], ts_ms: int) -> Callable[[], None] | None:
    """One acknowledgement of a gateway's message, told for every device it carried."""
    if on_ack is None:
        return None

    def told() -> None:
        for device in devices:
            on_ack(device, ts_ms)

    return told


def _settle(counts: Counts, timeout_s: float = 30.0) -> None:
    """Wait until every publish sent has been acknowledged or has failed."""
    deadline = time.monotonic() + timeout_s
    while counts.acked + counts.failed < counts.sent and time.monotonic() < deadline:
        time.sleep(0.05)

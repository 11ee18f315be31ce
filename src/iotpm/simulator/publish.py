"""Publishing a fleet over MQTT5 with the AWS IoT Device SDK v2: mutual TLS, QoS 1, reconnects.

One connection per device, its client id the thing name, its certificate its own
(IoT Core's policy and the local broker's ACL both bind a device to its topic). The
SDK reconnects with exponential backoff; a publish that is never acknowledged counts
as failed, one refused by the broker (NOT_AUTHORIZED) too.

Topics are the broker's (:meth:`iotpm.local.broker.Broker.topic`): IoT Basic Ingest,
``$aws/rules/<rule>/<prefix>/<thing>/telemetry``, as the IoT policy allows. A gateway
publishes the readings of the devices behind it packed in one message on its own topic
(:func:`publish_packed`): IoT Core bills messaging and Kinesis bills records per message,
so ten readings a message cost a tenth of ten messages.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import orjson
from awscrt import mqtt5
from awsiot import mqtt5_client_builder

T = TypeVar("T")


@dataclass
class Counts:
    """Publishes sent, acknowledged and failed (thread-safe: the SDK calls back from its own threads)."""

    sent: int = 0
    acked: int = 0
    failed: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def done(self, error: str | None, n: int = 1) -> None:
        """``n`` readings (one message) acknowledged, or failed with ``error``."""
        with self.lock:
            if error is None:
                self.acked += n
            else:
                self.failed += n
                self.errors[error] = self.errors.get(error, 0) + 1


@dataclass(frozen=True, slots=True)
class Endpoint:
    """Where to publish: host, port and the CA that signed the broker's certificate (None: system CAs)."""

    host: str
    port: int
    ca: Path | None
    topic_prefix: str = "iotpm"


def client(endpoint: Endpoint, client_id: str, cert: Path, key: Path, *, unthrottled: bool = False) -> mqtt5.Client:
    """An MQTT5 client with mutual TLS (not started)."""
    connected = threading.Event()
    options: dict[str, Any] = {}
    if unthrottled:  # the SDK paces to IoT Core's 100 publishes/s per connection unless told otherwise
        options["extended_validation_and_flow_control_options"] = mqtt5.ExtendedValidationAndFlowControlOptions.NONE
    built = mqtt5_client_builder.mtls_from_path(
        endpoint=endpoint.host,
        port=endpoint.port,
        cert_filepath=str(cert),
        pri_key_filepath=str(key),
        ca_filepath=str(endpoint.ca) if endpoint.ca else None,
        client_id=client_id,
        clean_start=True,
        session_expiry_interval_sec=0,
        min_reconnect_delay_ms=200,
        max_reconnect_delay_ms=5000,
        connack_timeout_ms=5000,
        on_lifecycle_connection_success=lambda _: connected.set(),
        **options,
    )
    built.connected = connected
    return built


def connect_all(clients: Iterable[mqtt5.Client], timeout_s: float = 20.0) -> None:
    """Start every client and wait until each has connected."""
    started = list(clients)
    for c in started:
        c.start()
    deadline = time.monotonic() + timeout_s
    for c in started:
        if not c.connected.wait(max(0.0, deadline - time.monotonic())):
            raise TimeoutError("an MQTT client did not connect (broker down, wrong CA or certificate?)")


def publish(
    c: mqtt5.Client, topic: str, message: dict[str, Any], counts: Counts, on_ack: Callable[[], None] | None = None
) -> None:
    """Publish one message with QoS 1; ``counts`` learns whether the broker acknowledged it."""
    _publish(c, topic, message, 1, counts, on_ack)


#: the most readings one gateway message carries: about 230 bytes a reading keeps it near 93 KB, under
#: AWS IoT Core's 128 KB payload limit (and the processor's 1,000 readings a record)
MAX_PACKED = 400


def packed_messages(readings: Sequence[T], most: int = MAX_PACKED) -> list[Sequence[T]]:
    """``readings`` in the gateway messages that carry them, in order, at most ``most`` a message."""
    return [readings[i : i + most] for i in range(0, len(readings), most)]


def publish_packed(
    c: mqtt5.Client,
    topic: str,
    readings: list[dict[str, Any]],
    counts: Counts,
    on_ack: Callable[[], Any] | None = None,
) -> None:
    """A gateway's message: ``readings`` of several devices in one ``{"readings": [...]}`` object, with QoS 1
    (at most :data:`MAX_PACKED` of them: see :func:`packed_messages`).

    An object rather than a bare array: the IoT rule (``SELECT *, topic(2) AS thing_name``) adds a
    field to an object in a documented way. ``counts`` counts readings (every one of them
    acknowledged or failed with the message).
    """
    if readings:
        _publish(c, topic, {"readings": readings}, len(readings), counts, on_ack)


def _publish(
    c: mqtt5.Client, topic: str, message: object, n: int, counts: Counts, on_ack: Callable[[], Any] | None
) -> None:
    # orjson: json.dumps was a fifth of the publisher's time per reading; numpy floats (the
    # simulator's readings) are written as the floats they are
    payload = orjson.dumps(message, option=orjson.OPT_SERIALIZE_NUMPY)
    with counts.lock:
        counts.sent += n
    future: Future[Any] = c.publish(mqtt5.PublishPacket(topic=topic, payload=payload, qos=mqtt5.QoS.AT_LEAST_ONCE))

    def done(f: Future[Any]) -> None:
        try:
            result = f.result()
        except Exception as exc:  # the SDK reports a dropped or timed-out publish as an exception
            counts.done(type(exc).__name__, n)
            return
        code = getattr(getattr(result, "puback", None), "reason_code", None)
        ok = code is None or int(code) < 0x80
        counts.done(None if ok else f"puback_{code!s}", n)
        if ok and on_ack is not None:
            on_ack()

    future.add_done_callback(done)


def stop_all(clients: Iterable[mqtt5.Client]) -> None:
    for c in clients:
        c.stop()

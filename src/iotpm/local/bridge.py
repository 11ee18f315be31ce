"""The topic rule, locally: subscribe to every device's telemetry, enrich, PutRecords to Kinesis.

Like the iot module's rule (:data:`RULE_SQL`, partition key ``${topic(2)}``) it keys
every record by the thing name from the topic, which the IoT policy (and the local
broker's ACL) binds to the publishing certificate, and adds that name to a JSON
object, so the processor receives the records it would receive in AWS. The partition
key is what carries the publisher for every shape (objects, arrays, anything): the
processor refuses a reading naming another device. Records are batched (up to 500 or
50 ms, and within Kinesis's 5 MiB a call) and a record PutRecords reports as failed is
retried with backoff; a call Kinesis refuses as a whole for its size or content is split,
and only a record it refuses alone (over 1 MiB with its key, or otherwise invalid) is
dropped, logged, as the rule would send it to its error action. The broker already refuses
a message over IoT Core's 128 KB, so the twin's devices never make one. Messages that are
not JSON objects go through unchanged (the processor quarantines what it cannot read, with
a reason).

The bridge keeps a session in the broker (a fixed client id, ``clean_start`` off, a
:data:`SESSION_EXPIRY_S` expiry), as IoT Core's rule engine keeps its messages whatever
happens to one of its hosts: a bridge that crashes or restarts gets the messages it had
received and not put, and those published meanwhile, when it connects again. The twin's
broker itself keeps nothing over its own restart (docs/storage.md). A test holds :data:`RULE_SQL` and
:data:`THING_SEGMENT` to the Terraform rule.

Devices publish through IoT Basic Ingest (``$aws/rules/<rule>/<prefix>/<thing>/telemetry``).
The rule sees the topic without that prefix (its FROM clause and ``topic()`` alike), so
:func:`enrich` drops it before taking the thing; the bridge subscribes to the Basic Ingest
filter by name, since MQTT's ``+``/``#`` never match a first level that starts with ``$``.
"""

from __future__ import annotations

import json
import logging
import re
import ssl
import threading
import time
from collections import deque
from typing import Any

import msgspec
import paho.mqtt.client as mqtt
from paho.mqtt.client import PUBACK
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from iotpm.local.broker import BASIC_INGEST, BRIDGE_CLIENT, Broker
from iotpm.local.certs import Identity
from iotpm.models.validation import THING_KEY

log = logging.getLogger("iotpm.bridge")
#: PutRecords' limits: records a call, bytes a call, bytes a record (its data and partition key alike)
MAX_BATCH = 500
MAX_CALL_BYTES = 5 * 1024 * 1024
MAX_RECORD_BYTES = 1024 * 1024
#: the most of one partition key's (a device's or a gateway's) messages in one call: what a crash between
#: PutRecords and the acknowledgements puts again, per device, is then within the processor's memory of a
#: device's recent messages (iotpm.service.fresh.RECENT_IDENTITIES, twice this), so it is counted a duplicate
#: and not stored twice. ~16 a call every few tens of ms is still over Kinesis's 1,000 records/s a shard.
MAX_PER_KEY = 16
#: how long the broker keeps the bridge's session (its subscription, and the messages it has not
#: acknowledged or not yet sent) while the bridge is away: a crash or restart within it loses nothing
SESSION_EXPIRY_S = 3600
#: Kinesis's answers to a call it refuses as a whole for what it carries (its size, a record's size or
#: key): a smaller call may pass, the same call never will
_REFUSED_CODES = frozenset({"InvalidArgumentException", "ValidationException"})
#: the messages the broker may send the bridge before it acknowledges them (MQTT 5's receive maximum; the
#: broker's max_inflight_messages is the same 1,000). The bridge acknowledges a message only once Kinesis
#: has accepted it, so this is also all a bridge holds that the broker would not send again
RECEIVE_MAXIMUM = 1000
#: an MQTT PUBACK's fixed header (remaining length 2: the message id; success, the reason code left out as
#: paho writes it)
_PUBACK_HEADER = bytes((PUBACK, 2))
#: the iot module's topic rule, ``{prefix}`` its topic prefix
RULE_SQL = "SELECT *, topic(2) AS thing_name FROM '{prefix}/+/telemetry'"
#: the topic level holding the thing name: the rule's ``topic(2)``, its partition key
THING_SEGMENT = 2


def rule_topic(topic: str) -> str:
    """The topic as the rule sees it: without the Basic Ingest prefix ``$aws/rules/<rule>/``."""
    if topic.startswith(BASIC_INGEST):
        return topic[len(BASIC_INGEST) :].partition("/")[2]
    return topic


def enrich(topic: str, payload: bytes) -> tuple[str, bytes]:
    """(partition key, record data) for one MQTT message, as the topic rule makes them.

    The record is byte for byte what :func:`iotpm.adapters.rule_errors.rule_record` makes
    (the object written compactly with :mod:`json`, the thing's field last). A JSON object
    without the thing's field whose text is already that compact form (printable ASCII, no exponent:
    the simulator's and most devices' messages; msgspec's encoding checks it) gets the field
    appended to its text instead of being written whole again (py-spy's largest Python
    frames in the bridge per message); anything else is parsed and written as before.
    """
    parts = rule_topic(topic).split("/")
    thing = parts[THING_SEGMENT - 1] if len(parts) > THING_SEGMENT else topic
    try:
        obj = msgspec.json.decode(payload)
    except (msgspec.DecodeError, UnicodeDecodeError):
        obj = None  # not JSON to msgspec (or NaN and the like, which json reads): the slow path decides
    else:
        if not isinstance(obj, dict):
            return thing, payload
        if (
            obj
            and THING_KEY not in obj
            and _NOT_AS_JSON_WRITES.search(payload) is None
            and msgspec.json.encode(obj) == payload
        ):
            return thing, b"%s,%s:%s}" % (payload[:-1], _THING_KEY_JSON, json.dumps(thing).encode())
    try:
        obj = json.loads(payload)
    except (ValueError, UnicodeDecodeError):
        return thing, payload
    if not isinstance(obj, dict):
        return thing, payload
    obj[THING_KEY] = thing
    return thing, json.dumps(obj, separators=(",", ":")).encode()


_THING_KEY_JSON = json.dumps(THING_KEY).encode()
#: where msgspec's text may differ from json's: a byte outside printable ASCII (json writes \u007f and
#: \u00e9), or a digit then an exponent (msgspec writes 1e16, json 1e+16; in a string: the slow path then)
_NOT_AS_JSON_WRITES = re.compile(rb"[^\x20-\x7e]|[0-9][eE]")


class Bridge:
    """MQTT subscriber -> Kinesis PutRecords, in background threads; a message is acknowledged once put.

    Its MQTT client is paho's (MQTT 5, mutual TLS 1.2+), with manual acknowledgements: a
    message's PUBACK goes to the broker after PutRecords accepted its record, as the rule
    engine takes a message off IoT Core only once its action succeeded, and the broker sends
    at most :data:`RECEIVE_MAXIMUM` unacknowledged. The AWS IoT Device SDK's client (awscrt)
    acknowledged each message as its callback returned, and queued each acknowledgement by
    walking every one it had not yet written (``s_aws_mqtt5_client_queue_puback``): behind a
    backlog of 200,000 messages in the broker it drained at under 1,000 a second, slowing to
    ~150, with a core busy (61-82 % of its CPU there); the same backlog drains at the
    pipeline's rate with this client (docs/storage.md has the figures).

    One connection, one writer thread: the broker delivers a device's messages in the order
    it received them, and they are put in that order.
    """

    def __init__(self, kinesis: Any, stream: str, broker: Broker, identity: Identity) -> None:
        self.kinesis, self.stream = kinesis, stream
        # appended by the MQTT client's thread, taken here: (connection, message id, partition key, data)
        self.pending: deque[tuple[int, int, str, bytes]] = deque()
        self.received = self.put = self.retried = self.refused = 0
        self._connection = 0  # counts connections: a message id is only acknowledged on the one that sent it
        # messages of connections before this number are dropped unput: the broker sends them again (it kept
        # the session), so putting them too would only write them twice
        self._resent_below = 0
        self._stop = threading.Event()
        self._broker = broker
        tls = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # verifies the broker's certificate and name
        tls.minimum_version = ssl.TLSVersion.TLSv1_2
        tls.load_verify_locations(cafile=str(broker.ca))
        tls.load_cert_chain(certfile=str(identity.cert), keyfile=str(identity.key))
        self._client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=BRIDGE_CLIENT, protocol=mqtt.MQTTv5, manual_ack=True
        )
        self._client.tls_set_context(tls)
        self._client.on_connect = self._on_connect
        self._client.on_message = self._on_message
        self._client.reconnect_delay_set(1, 5)
        self._writer = threading.Thread(target=self._run, name="iotpm-bridge", daemon=True)

    def start(self) -> Bridge:
        self._writer.start()
        properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]  # paho leaves it untyped
        properties.ReceiveMaximum = RECEIVE_MAXIMUM
        properties.SessionExpiryInterval = SESSION_EXPIRY_S
        self._client.connect_async(self._broker.host, self._broker.port, clean_start=False, properties=properties)
        self._client.loop_start()  # connects, reconnects when the connection drops
        return self

    def stop(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()
        self._stop.set()
        self._writer.join(timeout=10)

    def _on_connect(self, client: mqtt.Client, _: Any, flags: mqtt.ConnectFlags, reason: ReasonCode, ___: Any) -> None:
        if reason.is_failure:
            log.warning("bridge: the broker refused the connection (%s)", reason)
            return
        self._connection += 1
        if flags.session_present:  # the broker sends every message not acknowledged again, on this connection
            self._resent_below = self._connection
        client.subscribe(self._broker.topic_filter, qos=1)
        log.info("bridge subscribed to %s", self._broker.topic_filter)

    def _on_message(self, _: mqtt.Client, __: Any, message: mqtt.MQTTMessage) -> None:
        self.received += 1
        self.pending.append((self._connection, message.mid, *enrich(message.topic, bytes(message.payload))))

    def _run(self) -> None:
        while not (self._stop.is_set() and not self.pending):
            batch = [m for m in self._take() if m[0] >= self._resent_below]
            if batch:
                self._put([(key, data) for _, _, key, data in batch if self._fits(key, data)])
                self._ack(batch)

    def _fits(self, key: str, data: bytes) -> bool:
        """Whether one record can hold the message; if not it is dropped (and acknowledged), logged."""
        if _size(key, data) <= MAX_RECORD_BYTES:
            return True
        self.refused += 1
        log.error(
            "bridge: a message of %s is %d bytes, over a Kinesis record's %d: dropped", key, len(data), MAX_RECORD_BYTES
        )
        return False

    def _ack(self, batch: list[tuple[int, int, str, bytes]]) -> None:
        """Acknowledge the put messages to the broker, each on the connection that sent it (a message of a
        connection since closed is not acknowledged: its id may name another message now)."""
        connection = self._connection
        mids = [mid for sent_on, mid, _, _ in batch if sent_on == connection]
        if mids:  # the batch's PUBACKs in one write (paho's ack() writes each alone: a TLS record and a wake-up)
            self._client._packet_queue(PUBACK, b"".join(_PUBACK_HEADER + mid.to_bytes(2, "big") for mid in mids), 0, 0)

    def _take(self) -> list[tuple[int, int, str, bytes]]:
        """Up to :data:`MAX_BATCH` messages and :data:`MAX_CALL_BYTES`, waiting at most 50 ms from the first
        for more (a message too large for a record counts as none: it is not put), and at most
        :data:`MAX_PER_KEY` of one partition key: the call ends before its next one.

        A deque, taken from in bulk: a queue's get with a timeout takes a lock and waits on a
        condition for every message. While nothing comes, it looks every 10 ms.
        """
        pending = self.pending
        while not pending:
            if self._stop.wait(0.01):
                return []
        deadline = time.monotonic() + 0.05
        while len(pending) < MAX_BATCH and time.monotonic() < deadline:
            time.sleep(0.005)
        batch: list[tuple[int, int, str, bytes]] = []
        size = 0
        per_key: dict[str, int] = {}
        while pending and len(batch) < MAX_BATCH:
            key = pending[0][2]
            n = _size(key, pending[0][3])
            n = n if n <= MAX_RECORD_BYTES else 0
            taken = per_key.get(key, 0)
            if size + n > MAX_CALL_BYTES or taken >= MAX_PER_KEY:  # the next call takes it, in order
                break
            batch.append(pending.popleft())
            per_key[key] = taken + 1
            size += n
        return batch

    def _put(self, batch: list[tuple[str, bytes]]) -> None:
        """PutRecords, resending exactly the records that failed, with backoff.

        A resent record lands after the batch's later records of the same device: the
        processor stores its readings (its Kinesis position is new, so it is no replay) but,
        older than the device's last scored reading, does not score them, as with any late
        reading (AWS's rule engine does not keep a device's order either). The emulator never
        fails single records of a PutRecords call, so the twin does not meet this; keeping
        order through partial failures would need one record per device per call.

        A call refused as a whole for what it carries (:data:`_REFUSED_CODES`) is split in
        two, each half put in turn (the order kept), down to a single record, which is then
        dropped and logged: sent again unchanged it would be refused for ever, and hold up
        every device's messages behind it.
        """
        attempt = 0
        while batch:
            try:
                got = self.kinesis.put_records(
                    StreamName=self.stream, Records=[{"PartitionKey": k, "Data": d} for k, d in batch]
                )
                failed = [r for r, res in zip(batch, got["Records"], strict=True) if "ErrorCode" in res]
            except Exception as exc:  # the emulator restarting, a throttle: retry the whole batch
                if _error_code(exc) in _REFUSED_CODES:
                    if len(batch) > 1:
                        log.warning("PutRecords refused %d records (%s); splitting the call", len(batch), exc)
                        half = len(batch) // 2
                        self._put(batch[:half])
                        self._put(batch[half:])
                    else:
                        self.refused += 1
                        log.error("bridge: PutRecords refused a record of %s (%s): dropped", batch[0][0], exc)
                    return
                log.warning("PutRecords failed (%s); retrying", exc)
                failed = batch
            self.put += len(batch) - len(failed)
            self.retried += len(failed)
            batch = failed
            if batch:
                time.sleep(min(0.05 * 2**attempt, 2.0))
                attempt += 1


def _size(key: str, data: bytes) -> int:
    """A record's size as Kinesis counts it against its limits: the data and the partition key."""
    return len(data) + len(key.encode())


def _error_code(exc: Exception) -> str | None:
    """The AWS error code of a botocore ClientError (without importing botocore: boto3 stays in adapters/)."""
    response = getattr(exc, "response", None)
    if not isinstance(response, dict):
        return None
    code = response.get("Error", {}).get("Code")
    return code if isinstance(code, str) else None

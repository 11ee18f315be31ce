"""The Lambda event source mapping, locally: read every shard, invoke the handler in-process.

As AWS does for a Kinesis mapping with ReportBatchItemFailures: up to ``batch_size``
records per invocation, in shard order, gathered until the first record has waited
``batching_window_s`` (MaximumBatchingWindowInSeconds) in the stream; when the response
names a failed record, the next invocation starts again from it; after ``max_retries`` failed invocations the
batch is sent to the on-failure queue (as a record of what was skipped) and the
shard moves on. The handler is the one in the zip: ``iotpm.handlers.processor.handler``.
"""

from __future__ import annotations

import base64
import json
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

log = logging.getLogger("iotpm.poller")
Handler = Callable[[Mapping[str, Any], Any], Mapping[str, Any]]


#: How many of a shard's latest invocations :attr:`ShardProgress.recent` keeps.
RECENT_BATCHES = 64


@dataclass(frozen=True, slots=True)
class BatchStat:
    """One invocation: when it ended, its size, and where its time went."""

    ended: float  # wall-clock time (time.time()) the handler returned
    records: int
    reads: int  # GetRecords calls that gathered it
    read_s: float  # time in those calls (the emulator's answer included)
    window_s: float  # time waiting for the batching window to close
    invoke_s: float  # the handler's time
    failed_at: int | None  # index of the first record reported failed; None when all succeeded


@dataclass
class ShardProgress:
    """Where a shard stands: the last sequence number processed (``records`` up to it), and counters.

    The totals (``reads``, ``read_s``, ``invoke_s``) only grow, so a reader sampling them
    gets rates and means per interval; ``recent`` holds the latest invocations' sizes and times.
    """

    shard_id: str
    checkpoint: str | None = None
    invocations: int = 0
    records: int = 0
    retries: int = 0
    sent_to_dlq: int = 0
    lag_ms: float = 0.0
    reads: int = 0
    read_s: float = 0.0
    invoke_s: float = 0.0
    recent: deque[BatchStat] = field(default_factory=lambda: deque(maxlen=RECENT_BATCHES))


@dataclass
class Poller:
    """Polls one stream's shards in threads and feeds the handler.

    With ``instances``, each shard gets a handler of its own from it, as Lambda runs one
    function instance per shard (parallelization factor 1): shards' invocations overlap,
    and no instance sees two batches at once. Otherwise every shard calls ``handler``.
    """

    kinesis: Any
    stream: str
    handler: Handler | None = None
    instances: Callable[[], Handler] | None = None
    batch_size: int = 1000
    batching_window_s: float = 1.0
    max_retries: int = 5
    idle_s: float = 0.2
    sqs: Any = None
    on_failure_queue_url: str = ""
    region: str = ""  # the event's awsRegion; by default the stream's (from its ARN)
    shards: dict[str, ShardProgress] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)

    def start(self) -> Poller:
        desc = self.kinesis.describe_stream(StreamName=self.stream)["StreamDescription"]
        self.arn = desc["StreamARN"]
        for shard in desc["Shards"]:
            progress = self.shards.setdefault(shard["ShardId"], ShardProgress(shard["ShardId"]))
            handler = self.instances() if self.instances is not None else self.handler
            if handler is None:
                raise ValueError("a Poller needs a handler or instances")
            name = f"poller-{shard['ShardId']}"
            t = threading.Thread(target=self._run, args=(progress, handler), name=name, daemon=True)
            self._threads.append(t)
            t.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=30)

    def _iterator(self, progress: ShardProgress) -> str:
        kwargs: dict[str, Any] = {"StreamName": self.stream, "ShardId": progress.shard_id}
        if progress.checkpoint is None:
            kwargs["ShardIteratorType"] = "TRIM_HORIZON"
        else:
            kwargs.update(ShardIteratorType="AFTER_SEQUENCE_NUMBER", StartingSequenceNumber=progress.checkpoint)
        return str(self.kinesis.get_shard_iterator(**kwargs)["ShardIterator"])

    def _run(self, progress: ShardProgress, handler: Handler) -> None:
        iterator: str | None = None
        failures = 0
        while not self._stop.is_set():
            try:
                iterator = iterator or self._iterator(progress)
                gathered = self._gather(iterator, progress)
                records, iterator, lag = gathered.records, gathered.iterator, gathered.lag_ms
            except Exception as exc:
                log.warning("GetRecords on %s failed (%s); retrying", progress.shard_id, exc)
                iterator = None
                time.sleep(1.0)
                continue
            progress.lag_ms = lag
            if not records:
                self._stop.wait(self.idle_s)
                continue
            started = time.perf_counter()
            done = self._invoke(progress, handler, records)
            took = time.perf_counter() - started
            progress.invoke_s += took
            progress.recent.append(BatchStat(time.time(), len(records), gathered.reads, gathered.read_s,
                                             gathered.window_s, took, done))  # fmt: skip
            if done is None:  # every record processed
                progress.checkpoint = records[-1]["SequenceNumber"]
                progress.records += len(records)
                failures = 0
                continue
            failures += 1
            progress.retries += 1
            if failures > self.max_retries:
                self._to_dlq(progress, records[done:])
                progress.checkpoint, failures = records[-1]["SequenceNumber"], 0
            elif done > 0:
                progress.checkpoint = records[done - 1]["SequenceNumber"]
                progress.records += done
            iterator = None  # re-read from the checkpoint: the failed record comes first
            time.sleep(min(0.1 * 2**failures, 5.0))

    def _gather(self, iterator: str, progress: ShardProgress | None = None) -> Gathered:
        """Records for one invocation: read until ``batch_size``, or until the first record
        has waited ``batching_window_s`` since it reached the stream.

        The window counts from the record's arrival, not from when this loop first saw it:
        AWS's mapping keeps polling while the function runs, so records that came in
        during an invocation are not held back a further window after it.
        """
        out = Gathered([], iterator)
        deadline: float | None = None
        last = False
        while True:
            started = time.perf_counter()
            got = self.kinesis.get_records(ShardIterator=out.iterator, Limit=self.batch_size - len(out.records))
            took = time.perf_counter() - started
            out.reads, out.read_s = out.reads + 1, out.read_s + took
            if progress is not None:
                progress.reads, progress.read_s = progress.reads + 1, progress.read_s + took
            out.records += got.get("Records", [])
            out.iterator = got.get("NextShardIterator") or out.iterator
            out.lag_ms = float(got.get("MillisBehindLatest", 0))
            if not out.records or len(out.records) >= self.batch_size or self._stop.is_set() or last:
                return out
            if deadline is None:
                deadline = time.monotonic() + self.batching_window_s - _waited_s(out.records[0])
            # one read gets what came meanwhile (up to the batch): each read is a call to the emulator,
            # which every other call then waits behind. It starts a read's time (the last one's) before
            # the window closes, so the handler is invoked when it closes, as AWS's poller, which reads
            # while the window is open, invokes it; what comes during that read waits for the next batch
            lead = min(took, self.batching_window_s / 2)
            if time.monotonic() >= deadline - lead:
                return out
            waited = time.perf_counter()
            self._stop.wait(max(0.0, deadline - lead - time.monotonic()))
            out.window_s += time.perf_counter() - waited
            last = True

    def _invoke(self, progress: ShardProgress, handler: Handler, records: list[dict[str, Any]]) -> int | None:
        """Call the handler; None when all succeeded, else the index of the first failed record."""
        event = {"Records": [self._record(progress.shard_id, r) for r in records]}
        progress.invocations += 1
        try:
            response = handler(event, None)
        except Exception:
            log.exception("the handler raised; the whole batch is retried")
            return 0
        failed = {f.get("itemIdentifier") for f in response.get("batchItemFailures") or []}
        if not failed:
            return None
        return next((i for i, r in enumerate(records) if r["SequenceNumber"] in failed), 0)

    def _record(self, shard_id: str, r: Mapping[str, Any]) -> dict[str, Any]:
        arrival = _arrival_s(r)
        return {
            "kinesis": {
                "kinesisSchemaVersion": "1.0",
                "partitionKey": r["PartitionKey"],
                "sequenceNumber": r["SequenceNumber"],
                "data": _base64(r["Data"]),
                "approximateArrivalTimestamp": arrival if arrival is not None else time.time(),
            },
            "eventSource": "aws:kinesis",
            "eventVersion": "1.0",
            "eventID": f"{shard_id}:{r['SequenceNumber']}",
            "eventName": "aws:kinesis:record",
            "awsRegion": self.region or self.arn.split(":")[3],
            "eventSourceARN": self.arn,
        }

    def _to_dlq(self, progress: ShardProgress, records: list[dict[str, Any]]) -> None:
        """What AWS sends to an on-failure destination: where the skipped records are, not the records."""
        progress.sent_to_dlq += len(records)
        log.error("giving up on %d records of %s after %d retries", len(records), progress.shard_id, self.max_retries)
        if self.sqs is None or not self.on_failure_queue_url:
            return
        body = {
            "KinesisBatchInfo": {
                "shardId": progress.shard_id,
                "startSequenceNumber": records[0]["SequenceNumber"],
                "endSequenceNumber": records[-1]["SequenceNumber"],
                "batchSize": len(records),
                "streamArn": self.arn,
            },
            "requestContext": {"condition": "RetryAttemptsExhausted", "approximateInvokeCount": self.max_retries + 1},
        }
        self.sqs.send_message(QueueUrl=self.on_failure_queue_url, MessageBody=json.dumps(body))


@dataclass
class Gathered:
    """What :meth:`Poller._gather` read for one invocation, and how long the reads took."""

    records: list[dict[str, Any]]
    iterator: str | None
    lag_ms: float = 0.0
    reads: int = 0
    read_s: float = 0.0
    window_s: float = 0.0


def _waited_s(record: Mapping[str, Any]) -> float:
    """Seconds since the record reached the stream (0 when Kinesis gave no arrival time)."""
    arrival = _arrival_s(record)
    return max(0.0, time.time() - arrival) if arrival is not None else 0.0


def _arrival_s(record: Mapping[str, Any]) -> float | None:
    """The record's arrival in epoch seconds: a datetime as botocore parses it by default, or the
    number a client built by :func:`raw_records_client` leaves as the answer gave it."""
    arrival = record.get("ApproximateArrivalTimestamp")
    if arrival is None:
        return None
    return arrival.timestamp() if isinstance(arrival, datetime) else float(arrival)


def _base64(data: bytes | str) -> str:
    """The record's data as the event carries it: bytes encoded, or the base64 text the answer held."""
    return data if isinstance(data, str) else base64.b64encode(data).decode()


def raw_records_client(config: Any = None) -> Any:
    """A Kinesis client whose GetRecords leaves each record's data as the base64 text and its arrival
    as the epoch seconds the answer holds: the event the poller builds carries exactly those, so
    decoding every record's data to bytes and every arrival to a datetime (botocore's defaults: a
    datetime with a time zone costs more than the rest of the record) only to encode them back was
    the poller's largest cost per record. Its own botocore session: other clients parse as usual."""
    import boto3
    import botocore.session

    core = botocore.session.get_session()
    core.get_component("response_parser_factory").set_parser_defaults(
        blob_parser=lambda value: value, timestamp_parser=float
    )
    return boto3.session.Session(botocore_session=core).client("kinesis", config=config)

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
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger("iotpm.poller")
Handler = Callable[[Mapping[str, Any], Any], Mapping[str, Any]]


@dataclass
class ShardProgress:
    """Where a shard stands: the last sequence number processed (``records`` up to it), and counters."""

    shard_id: str
    checkpoint: str | None = None
    invocations: int = 0
    records: int = 0
    retries: int = 0
    sent_to_dlq: int = 0
    lag_ms: float = 0.0


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
                records, iterator, lag = self._gather(iterator)
            except Exception as exc:
                log.warning("GetRecords on %s failed (%s); retrying", progress.shard_id, exc)
                iterator = None
                time.sleep(1.0)
                continue
            progress.lag_ms = lag
            if not records:
                self._stop.wait(self.idle_s)
                continue
            done = self._invoke(progress, handler, records)
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

    def _gather(self, iterator: str) -> tuple[list[dict[str, Any]], str | None, float]:
        """Records for one invocation: read until ``batch_size``, or until the first record
        has waited ``batching_window_s`` since it reached the stream.

        The window counts from the record's arrival, not from when this loop first saw it:
        AWS's mapping keeps polling while the function runs, so records that came in
        during an invocation are not held back a further window after it.
        """
        records: list[dict[str, Any]] = []
        deadline: float | None = None
        while True:
            got = self.kinesis.get_records(ShardIterator=iterator, Limit=self.batch_size - len(records))
            records += got.get("Records", [])
            iterator = got.get("NextShardIterator") or iterator
            lag = float(got.get("MillisBehindLatest", 0))
            if not records or len(records) >= self.batch_size or self._stop.is_set():
                return records, iterator, lag
            if deadline is None:
                deadline = time.monotonic() + self.batching_window_s - _waited_s(records[0])
            if time.monotonic() >= deadline:
                return records, iterator, lag
            # one read when the window closes gets what came meanwhile (up to the batch):
            # each read is a call to the emulator, which every other call then waits behind
            self._stop.wait(max(0.0, deadline - time.monotonic()))

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
        arrival = r.get("ApproximateArrivalTimestamp")
        return {
            "kinesis": {
                "kinesisSchemaVersion": "1.0",
                "partitionKey": r["PartitionKey"],
                "sequenceNumber": r["SequenceNumber"],
                "data": base64.b64encode(r["Data"]).decode(),
                "approximateArrivalTimestamp": arrival.timestamp() if arrival is not None else time.time(),
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


def _waited_s(record: Mapping[str, Any]) -> float:
    """Seconds since the record reached the stream (0 when Kinesis gave no arrival time)."""
    arrival = record.get("ApproximateArrivalTimestamp")
    return max(0.0, time.time() - arrival.timestamp()) if arrival is not None else 0.0

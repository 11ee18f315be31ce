"""``iotpm replay``: the messages the IoT rule could not deliver, back on the stream.

The topic rule's error action keeps each message its Kinesis action failed to put
(throttled, the stream or its key refused) in the rule-errors bucket
(``terraform output rule_errors_bucket``). ``replay`` puts each one on the stream as the
rule would have (same partition key: the publishing thing; same data), oldest first, and
moves it under ``replayed/``. A message put twice (a replay interrupted between the put and
the move, or run twice) is applied once: the processor counts a repeat of a reading it
applied as a duplicate, as for any redelivery.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

from iotpm.cli.errors import FAILED, fail, requires, stderr

if TYPE_CHECKING:
    from iotpm.adapters.rule_errors import RuleErrors, StreamWriter

console = Console(soft_wrap=True)
#: messages read, put and moved per round (PutRecords takes 500)
ROUND = 500


def register(app: typer.Typer) -> None:
    """Add ``replay`` to the ``iotpm`` app."""
    app.command("replay")(replay)


@dataclass(slots=True)
class ReplaySummary:
    """What a replay did: ``found == replayed + failed + unreadable`` (a dry run replays nothing)."""

    found: int = 0
    replayed: int = 0
    failed: list[str] = field(default_factory=list)  # put refused after retries: still waiting
    unreadable: list[str] = field(default_factory=list)  # not an error action message: left in place
    devices: Counter[str] = field(default_factory=Counter)  # messages per partition key (thing)

    def as_dict(self) -> dict[str, object]:
        return {"found": self.found, "replayed": self.replayed, "failed": self.failed,
                "unreadable": self.unreadable, "devices": dict(sorted(self.devices.items()))}  # fmt: skip


def run_replay(
    errors: RuleErrors, writer: StreamWriter, limit: int | None = None, dry_run: bool = False
) -> ReplaySummary:
    """Put the waiting messages back on the stream, oldest first, ``ROUND`` at a time."""
    keys = errors.keys()[:limit]
    summary = ReplaySummary(found=len(keys))
    for start in range(0, len(keys), ROUND):
        _round(errors, writer, keys[start : start + ROUND], summary, dry_run)
    return summary


def _round(
    errors: RuleErrors, writer: StreamWriter, keys: Sequence[str], summary: ReplaySummary, dry_run: bool
) -> None:
    from iotpm.adapters.rule_errors import FailedMessage

    messages: list[FailedMessage] = []
    for message in errors.messages(keys):
        if isinstance(message, FailedMessage):
            messages.append(message)
        else:
            stderr.print(f"unreadable, left in place: {message}")
            summary.unreadable.append(str(message).partition(":")[0])
    records = [m.record() for m in messages]
    summary.devices.update(key for key, _ in records)
    if dry_run:
        return
    for message, put in zip(messages, writer.put(records), strict=True):
        if put:
            errors.mark_replayed(message.key)
            summary.replayed += 1
        else:
            summary.failed.append(message.key)


@requires("replay", "boto3")
def replay(
    bucket: Annotated[str, typer.Option(help="The rule-errors bucket (terraform output rule_errors_bucket).")],
    stream: Annotated[str, typer.Option(help="The telemetry stream (terraform output stream_name).")],
    prefix: Annotated[str, typer.Option(help="Key prefix of the waiting messages.")] = "errors/",
    limit: Annotated[int | None, typer.Option(min=1, help="Replay at most this many (the oldest).")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Read and count, put nothing, move nothing.")] = False,
    region: Annotated[str | None, typer.Option(help="AWS region (default: the AWS configuration's).")] = None,
    endpoint_url: Annotated[
        str | None, typer.Option(help="AWS endpoint, e.g. the local emulator (default: AWS_ENDPOINT_URL or AWS).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """Put the messages the IoT rule could not deliver back on the stream (same partition key).

    Exit codes: 0 every message replayed (or counted, with --dry-run); 1 some could not be put
    or read (they stay in the bucket; run again once the cause is fixed); 2 a usage error.
    """
    from iotpm.adapters import rule_errors
    from iotpm.service.errors import StoreError

    if not prefix.endswith("/"):
        fail(f"--prefix must end with / (got {prefix!r})")
    errors, writer = rule_errors.connect(bucket, stream, prefix, region, endpoint_url)
    try:
        summary = run_replay(errors, writer, limit, dry_run)
    except StoreError as exc:
        fail(str(exc), FAILED)
    _print(summary, dry_run, as_json)
    if summary.failed or summary.unreadable:
        raise typer.Exit(FAILED)


def _print(summary: ReplaySummary, dry_run: bool, as_json: bool) -> None:
    if as_json:
        console.print_json(json.dumps({**summary.as_dict(), "dry_run": dry_run}))
        return
    verb = "would replay" if dry_run else "replayed"
    done = summary.found - len(summary.unreadable) if dry_run else summary.replayed
    console.print(f"{verb} {done} of {summary.found} messages ({len(summary.devices)} devices)")
    for key in summary.failed:
        console.print(f"  not put (still waiting): {key}")

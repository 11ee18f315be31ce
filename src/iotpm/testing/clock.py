"""Test times that stay young: a fixed instant moved by whole days to just before now.

DynamoDB Local deletes an item whose TTL attribute has passed within seconds (AWS within
days): a test that writes readings stamped at a fixed date in the past loses them to the
sweep once that date plus the table's TTL (the batch log's 7 days, the readings' 90) is
behind the wall clock, at a moment no test chooses. Moved by whole days, a test's instant
keeps its time of day (its hours and minutes fall in their buckets as they did), and is
between one and two days old whenever the test runs.
"""

from __future__ import annotations

import time

DAY_MS = 86_400_000


def recent(t0_ms: int, now_ms: int | None = None) -> int:
    """``t0_ms`` moved by whole days to between two days and one day before ``now_ms`` (the wall clock)."""
    now = int(time.time() * 1000) if now_ms is None else now_ms
    return t0_ms + (now - DAY_MS - t0_ms) // DAY_MS * DAY_MS

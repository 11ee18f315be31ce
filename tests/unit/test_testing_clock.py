"""iotpm.testing.clock: fixed test instants moved to just before now, at their own time of day."""

from __future__ import annotations

import random

from iotpm.testing.clock import DAY_MS, recent


def test_a_fixed_instant_moves_by_whole_days_to_one_or_two_days_before_now() -> None:
    rng = random.Random(0)
    for _ in range(1000):
        t0 = rng.randrange(1_500_000_000_000, 1_900_000_000_000)
        now = rng.randrange(1_500_000_000_000, 2_100_000_000_000)
        moved = recent(t0, now)
        assert (moved - t0) % DAY_MS == 0  # its time of day, so its hours and buckets, as they were
        assert now - 2 * DAY_MS < moved <= now - DAY_MS  # young: no TTL of a day or more has run out


def test_without_a_clock_given_it_is_young_against_the_wall_clock() -> None:
    import time

    now = int(time.time() * 1000)
    assert now - 2 * DAY_MS - 1000 < recent(1_789_999_200_000) <= now - DAY_MS + 1000

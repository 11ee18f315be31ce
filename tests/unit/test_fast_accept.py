"""FastDecoder._accept, read field by field, against the reading-by-reading rules it replaced.

Only ``_accept``'s answer decides whether a batch takes the whole-batch path; every
rejection, its reason and its message, comes from :func:`decode` record by record
either way. So the same answer on every batch (and the same readings, thing names
dropped, and the same ids and names remembered) keeps every rejection as it was.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from hypothesis import given, settings
from hypothesis import strategies as st

from iotpm.models.metrics import METRIC_NAME_RE
from iotpm.models.validation import (
    _DEVICE_ID_RE,
    _NAME_RE,
    MAX_ABS_VALUE,
    MIN_ABS_VALUE,
    FastDecoder,
    ReadingFields,
    ValidationLimits,
)

NOW = 1_790_000_000_000


class _Before(FastDecoder):
    """``_accept`` as it was before the field-by-field passes (verbatim, one reading at a time)."""

    def _accept(self, readings: list[ReadingFields], arrivals_ms: Sequence[int]) -> bool:
        age, future = self.limits.max_age_ms, self.limits.max_future_ms
        for r, arrival in zip(readings, arrivals_ms, strict=True):
            if not arrival - age <= r.ts_ms <= arrival + future:
                return False
            if r.thing_name is not None:
                if r.thing_name != r.device_id:
                    return False
                r.thing_name = None
        ids, names, metrics = self._ids, self._names, self._metrics
        new = {r.device_id for r in readings} - ids
        if new and not self._old_learn(ids, new, _DEVICE_ID_RE):
            return False
        new = ({r.site for r in readings} | {r.line for r in readings} | {r.device_type for r in readings}) - names
        if new and not self._old_learn(names, new, _NAME_RE):
            return False
        new = set().union(*[r.metrics for r in readings]) - metrics
        if new and not self._old_learn(metrics, new, METRIC_NAME_RE):
            return False
        low = MIN_ABS_VALUE
        return not any(-low < v < low and v for r in readings for v in r.metrics.values())

    def _old_learn(self, seen: set[str], values: Iterable[str], pattern: re.Pattern[str]) -> bool:
        for value in values:
            if pattern.fullmatch(value) is None:
                return False
            if len(seen) < self.memory:
                seen.add(value)
        return True


LIMITS = ValidationLimits(max_age_ms=3_600_000, max_future_ms=300_000)


def _mostly(valid: list[str], hostile: list[str]) -> st.SearchStrategy[str]:
    """Three draws in four a valid one: a batch then often breaks one rule, not all of them."""
    ok = st.sampled_from(valid)
    return st.one_of(ok, ok, ok, st.sampled_from(hostile))


_ids = _mostly(["pump-001", "pump-002", "a", "A.b:c-d_e"], ["bad id", "-x", "é", "p\n", "x" * 129, ""])
_names = _mostly(["default", "plant-1", "line 1", "a/b"], ["bad!", " lead", "", "x" * 65, "z\n"])
_metric_names = _mostly(["temperature_c", "vibration_mm_s", "x1"], ["Temp", "a__b", "_a", "a_", "9a", ""])
_values = st.one_of(
    st.floats(-MAX_ABS_VALUE, MAX_ABS_VALUE, allow_subnormal=True),
    st.sampled_from(
        [0.0, -0.0, MIN_ABS_VALUE, -MIN_ABS_VALUE, MIN_ABS_VALUE * (1 - 2**-52), -MIN_ABS_VALUE * (1 - 2**-52)]
    ),
    st.sampled_from([5e-324, -5e-324, 1e-31, 2.2250738585072014e-308, MAX_ABS_VALUE, -MAX_ABS_VALUE, 1.0]),
)
# the skew of a reading's time from its record's arrival: around the window's edges, and far
_skews = st.one_of(
    st.sampled_from([0, -LIMITS.max_age_ms, -LIMITS.max_age_ms - 1, LIMITS.max_future_ms, LIMITS.max_future_ms + 1]),
    st.integers(-2 * LIMITS.max_age_ms, 2 * LIMITS.max_future_ms),
    st.integers(2**62, 2**66),
)


@st.composite
def _reading(draw: st.DrawFn) -> tuple[dict[str, object], int]:
    device = draw(_ids)
    arrival = draw(st.integers(NOW - 10**6, NOW + 10**6))
    thing = draw(st.one_of(st.none(), st.just(device), _ids))
    fields: dict[str, object] = {
        "device_id": device,
        "ts_ms": arrival + draw(_skews),
        "metrics": draw(st.dictionaries(_metric_names, _values, min_size=1, max_size=4)),
        "site": draw(_names),
        "line": draw(_names),
        "device_type": draw(_names),
        "thing_name": thing,
    }
    return fields, arrival


def _valid(item: tuple[dict[str, object], int]) -> tuple[dict[str, object], int]:
    fields, arrival = item
    return {
        **fields,
        "device_id": "pump-001",
        "ts_ms": arrival,
        "metrics": {"temperature_c": 1.0, "x1": 0.0},
        "site": "plant-1",
        "line": "line 1",
        "device_type": "default",
        "thing_name": None,
    }, arrival


# mostly plain batches with one hostile reading (the batches that test the edges), some all hostile
_batch = st.one_of(
    st.lists(_reading(), max_size=6),
    st.tuples(st.lists(_reading().map(_valid), max_size=6), _reading(), st.integers(0, 6)).map(
        lambda t: [*t[0][: t[2]], t[1], *t[0][t[2] :]]
    ),
)


@settings(max_examples=500, deadline=None)
@given(batches=st.lists(_batch, min_size=1, max_size=4), memory=st.sampled_from([0, 2, 100_000]))
def test_the_field_by_field_accept_answers_as_the_reading_by_reading_one(
    batches: list[list[tuple[dict[str, object], int]]], memory: int
) -> None:
    # one decoder each over several batches: what one batch remembers counts in the next
    new, old = FastDecoder(LIMITS, memory=memory), _Before(LIMITS, memory=memory)
    for items in batches:
        arrivals = [arrival for _, arrival in items]
        mine = [ReadingFields(**fields) for fields, _ in items]  # type: ignore[arg-type]
        theirs = [ReadingFields(**fields) for fields, _ in items]  # type: ignore[arg-type]
        accepted = new._accept(mine, arrivals)
        assert accepted == old._accept(theirs, arrivals)
        if accepted:  # the readings taken, their thing names dropped
            assert mine == theirs and all(r.thing_name is None for r in mine)
        assert (new._ids, new._names, new._metrics) == (old._ids, old._names, old._metrics)


def test_a_tiny_value_or_a_reading_out_of_its_window_is_refused_and_zero_is_not() -> None:
    def one(value: float, skew: int = 0) -> bool:
        reading = ReadingFields(device_id="pump-001", ts_ms=NOW + skew, metrics={"temperature_c": value})
        return FastDecoder(LIMITS)._accept([reading], [NOW])

    assert one(0.0) and one(-0.0) and one(MIN_ABS_VALUE) and one(-MIN_ABS_VALUE)
    assert not one(MIN_ABS_VALUE / 2) and not one(-5e-324)
    assert one(1.0, LIMITS.max_future_ms) and not one(1.0, LIMITS.max_future_ms + 1)
    assert one(1.0, -LIMITS.max_age_ms) and not one(1.0, -LIMITS.max_age_ms - 1)

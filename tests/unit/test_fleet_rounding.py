"""The simulator's readings round as numpy rounds a float64, bit for bit, without numpy's scalar costs."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from iotpm.simulator.fleet import DAY_S, LEVELS, Fleet, rounded


@settings(max_examples=3000, deadline=None)
@given(
    st.one_of(
        st.floats(min_value=-1e6, max_value=1e6, allow_nan=False),
        st.integers(-(10**7), 10**7).map(lambda n: n / 2000),  # halfway cases at every digit count below
        st.floats(min_value=-1e-3, max_value=1e-3),  # rounds to a signed zero
    ),
    st.sampled_from([2, 3, 4]),
)
def test_rounded_gives_what_numpy_gives_a_float64_sign_included(x: float, digits: int) -> None:
    want = round(np.float64(x), digits)
    got = rounded(x, digits)
    assert type(got) is float
    assert got == want and math.copysign(1.0, got) == math.copysign(1.0, float(want))


def test_a_healthy_reading_is_the_numpy_scalar_computation_of_its_noise() -> None:
    """Each machine's metrics, recomputed here from the same noise draws with numpy scalars (as the
    simulator computed them before it used floats): equal, sign and last bit included."""
    fleet = Fleet(6, seed=5)
    for k in range(200):
        t_s, ts_ms = k * 0.37, 1_790_000_000_000 + k * 370
        for m in fleet.machines:
            draws = np.random.default_rng()
            draws.bit_generator.state = m.rng.bit_generator.state  # the noise the reading is about to draw
            got = m.reading(t_s, ts_ms)
            noise = draws.normal(size=3)
            temp0, vib0, pres0 = LEVELS[m.machine_type]
            load = 0.6 + 0.25 * math.sin(2 * math.pi * t_s / 3600 + m.phase)
            daily = 3.0 * math.sin(2 * math.pi * (ts_ms / 1000 % DAY_S) / DAY_S)
            want = (
                round(temp0 + daily + 6.0 * (load - 0.6) + 0.3 * noise[0], 3),
                round(vib0 * (0.85 + 0.25 * load) + 0.06 * noise[1], 4),
                round(pres0 + 4.0 * (load - 0.6) + 0.8 * noise[2], 2),
            )
            assert got is not None and all(isinstance(v, np.float64) for v in want)
            assert list(got["metrics"].values()) == list(want)
            assert [math.copysign(1.0, v) for v in got["metrics"].values()] == [math.copysign(1.0, v) for v in want]

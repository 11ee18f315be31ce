"""The kernel's layout, declared once: what the C kernel and the numpy kernel agree on.

The order of the score axes, the state fields whose offsets the C kernel takes and its
parameters. ``native.py`` and the state layout read these names; ``header()`` writes
them as the C header ``_kernel.c`` includes (the build generates it, and the library's
digest covers it, so a library built for another order is refused at load). Standard
library only: the build runs it before the project is installed.
"""

from __future__ import annotations

from typing import Final

#: channel-level detectors, in the order of the last axis of ``channel_scores``.
CHANNEL_DETECTORS: Final = (
    "threshold", "iso10816", "spike", "drift", "rate_of_change", "flatline", "operating_point",
)  # fmt: skip
#: device-level detectors, in the order of the last axis of ``device_scores``.
DEVICE_DETECTORS: Final = ("dropout", "multivariate")
#: the index of each detector's score on its axis (``channel_scores[..., CH["spike"]]``)
CH: Final = {name: k for k, name in enumerate(CHANNEL_DETECTORS)}
DEV: Final = {name: k for k, name in enumerate(DEVICE_DETECTORS)}
#: raw T² values kept for the rolling median of the multivariate detector.
T2_HISTORY: Final = 4
MAX_CHANNELS: Final = 64
#: state-vector fields whose offsets the C kernel takes (``O_<NAME>`` in C).
OFFSETS: Final = (
    "mu", "s", "s_min", "dscale", "last_x", "run", "flat_thr", "cp", "cn", "fast", "slow",
    "zmax", "dmax", "smooth", "mew", "n", "last_t", "dt_exp", "alarm", "above", "below",
    "cool", "health", "t2_on", "alarm_since", "op_m", "op_c", "op_f", "op_b", "load", "load_m", "load_v",
    "ran", "t2_hist", "P",
)  # fmt: skip
#: parameters the C kernel takes (``P_<NAME>`` in C).
PARAMS: Final = (
    "adapt_rate", "tail_decay", "cusum_clip", "adapt_clip", "cusum_k", "cusum_h", "tail_factor",
    "spike_z", "roc_z", "dropout_factor", "trend_rate", "trend_rate_slow", "t2_clip", "t2_limit",
    "mewma_rate", "ewma_limit", "raise_level", "clear_level", "min_duration", "clear_duration",
    "cooldown", "dropout_alarms", "iso_bc", "iso_cd", "op_margin", "op_learn_ms", "proxy",
)  # fmt: skip
#: per-reading rates of the operating-point recursions (the last axis of the ``rates`` input,
#: ``R_<NAME>`` in C): EWMA weights for the elapsed time, the elapsed time itself (ms, capped),
#: and 1 where the silence before the reading was longer than the cap (a gap)
RATES: Final = ("lag", "regression", "level", "baseline", "elapsed", "gap")
HEADER_NAME: Final = "_kernel_layout.h"


def header() -> str:
    """The C header for this layout (enums and sizes, in the orders above)."""
    lines = [
        "/* generated from iotpm/detection/_layout.py by the build: do not edit */",
        f"#define MAX_CHANNELS {MAX_CHANNELS}",
        f"#define T2_HISTORY {T2_HISTORY}",
        f"#define N_CH {len(CHANNEL_DETECTORS)}",
        f"#define N_DEV {len(DEVICE_DETECTORS)}",
    ]
    lines += [f"#define CH_{name.upper()} {k}" for k, name in enumerate(CHANNEL_DETECTORS)]
    lines += [f"#define DEV_{name.upper()} {k}" for k, name in enumerate(DEVICE_DETECTORS)]
    lines.append("enum { " + ", ".join(f"O_{name.upper()}" for name in OFFSETS) + ", O_COUNT };")
    lines.append("enum { " + ", ".join(f"P_{name.upper()}" for name in PARAMS) + ", P_COUNT };")
    lines.append("enum { " + ", ".join(f"R_{name.upper()}" for name in RATES) + ", R_COUNT };")
    return "\n".join(lines) + "\n"

"""The detectors, declared once: what the state, the numpy kernel and the C kernel agree on.

Each detector (and each part of the state several share: the baseline, the trend, the
alarm, the operating state) is one :class:`Declaration`: its name, whether it scores per
channel or per device, the state fields it keeps and the C kernel's parameters it reads.
Everything else is derived from :data:`DECLARATIONS`, in its order: the score axes
(``CHANNEL_DETECTORS``, ``DEVICE_DETECTORS``, ``CH``, ``DEV``), the state vector's fields
(``CHANNEL_FIELDS`` and ``DEVICE_FIELDS``, then the fixed-width and matrix fields), the
offsets the C kernel takes (``OFFSETS``) and its parameters (``PARAMS``). ``header()``
writes them as the C header ``_kernel.c`` includes; the build generates it, and the
library's digest covers it, so a library built for another order is refused at load.
Standard library only: the build runs it before the project is installed.
"""

from __future__ import annotations

from typing import Final, Literal, NamedTuple

#: raw T² values kept for the rolling median of the multivariate detector.
T2_HISTORY: Final = 4
MAX_CHANNELS: Final = 64

Width = Literal["channel", "device", "history", "matrix"]


class Field(NamedTuple):
    """One state field: ``channel`` (one value per channel), ``device`` (one), ``history``
    (``T2_HISTORY`` values) or ``matrix`` (channels x channels)."""

    name: str
    width: Width
    doc: str


class Declaration(NamedTuple):
    """A detector's (or a shared part's) name, score scope, state fields and C parameters.

    ``scope`` is where its score goes (``channel_scores`` or ``device_scores``), None for a
    part that scores nothing itself.
    """

    name: str
    scope: Literal["channel", "device"] | None
    fields: tuple[Field, ...] = ()
    params: tuple[str, ...] = ()


def _channel(name: str, doc: str) -> Field:
    return Field(name, "channel", doc)


def _device(name: str, doc: str) -> Field:
    return Field(name, "device", doc)


DECLARATIONS: Final = (
    Declaration(
        "baseline",
        None,
        (
            _channel("mu", "baseline level"),
            _channel("s", "baseline scale"),
            _channel("s_min", "floor under the scale, from the warm-up block"),
            _channel("last_x", "last finite value"),
            _device("n", "readings seen"),
            _device("last_t", "last timestamp, epoch ms"),
            _device("interval", "the reading interval of the warm-up, ms: the time constants' rates follow from it"),
            _device("r_adapt", "the baseline's EWMA weight of one reading (adapt_halflife)"),
        ),
        ("adapt_clip",),
    ),
    Declaration("threshold", "channel"),
    Declaration("iso10816", "channel", params=("iso_bc", "iso_cd")),
    Declaration(
        "spike",
        "channel",
        (
            _channel("zmax", "decaying maximum of |z|: how heavy this channel's tails are"),
            _device("r_tail", "the recent maxima's decay per reading (from tail_halflife_s and interval)"),
        ),
        ("spike_z", "tail_factor"),
    ),
    Declaration(
        "drift",
        "channel",
        (
            _channel("cp", "CUSUM, upward"),
            _channel("cn", "CUSUM, downward"),
            _channel("drift_from", "the level a settled shift was last learned from (NaN: none, or it returned)"),
            _channel("hold_at", "the fast level the metric has held since a shift was learned (NaN: none)"),
            _channel("hold_ms", "how long the fast level has stayed within the CUSUM's reference of it, ms"),
            _channel(
                "restart",
                "1 while the sum builds from the first reading after a gap (a stop): its signal is the level the"
                " machine came back at, learned in full",
            ),
        ),
        ("cusum_k", "cusum_h", "cusum_clip", "drift_relearn_ms", "drift_settle_ms"),
    ),
    Declaration(
        "rate_of_change",
        "channel",
        (
            _channel("dscale", "typical |step| between consecutive readings"),
            _channel("dmax", "decaying maximum of |step| / typical step"),
        ),
        ("roc_z",),
    ),
    Declaration(
        "flatline",
        "channel",
        (
            _channel("run", "readings equal to the previous one, in a row"),
            _channel(
                "flat_thr",
                "the stuck run by the warm-up's repeats (inf = off): in readings, of a metric with a unit in ms",
            ),
        ),
        ("flatline_ms", "flatline_min"),
    ),
    Declaration(
        "operating_point",
        "channel",
        (
            _channel("op_m", "mean of the value, for the regression on the load proxy"),
            _channel("op_c", "covariance of the value with the load proxy (lagged for a temperature)"),
            _channel("op_f", "the smoothed value, net of the load's share"),
            _channel("op_b", "its baseline, adapted while the test is quiet"),
            _channel("op_l", "the load that baseline stands for, adapted with it"),
            _device("load", "the load proxy, lagged by the thermal time constant"),
            _device("load_m", "its mean"),
            _device("load_v", "its variance"),
            _device("ran", "running, settled time the baselines have learned from, ms"),
            _device("now", "the load proxy as it is (its last running reading): what a head or a flow follows"),
            _device("now_m", "its mean"),
            _device("now_v", "its variance"),
        ),
        ("op_margin", "op_learn_ms", "proxy"),
    ),
    Declaration(
        "dropout",
        "device",
        (_device("dt_exp", "expected interval, ms"),),
        ("dropout_factor", "dropout_alarms", "interval_tau_ms"),
    ),
    Declaration(
        "multivariate",
        "device",
        (
            _channel("smooth", "1 when the channel wanders smoothly (steps far below its spread in the warm-up)"),
            _channel("mew", "the multivariate EWMA of the z-vector (its share for this channel)"),
            _device("t2_on", "1 when the multivariate detector has a baseline"),
            Field("t2_hist", "history", "the last raw T² values, for their rolling median"),
            Field("P", "matrix", "precision matrix of the warm-up's z-scores"),
            _device("r_mewma", "the multivariate EWMA's weight of one reading (from mewma_halflife_s and interval)"),
            _device("r_ewma_limit", "the multivariate EWMA's limit at that weight"),
        ),
        ("t2_clip", "t2_limit"),
    ),
    Declaration(
        "trend",
        None,
        (_channel("fast", "fast level, for the trend"), _channel("slow", "slower level, for the trend")),
        ("trend_rate", "trend_rate_slow"),
    ),
    Declaration(
        "alarm",
        None,
        (
            _device("alarm", "1 while an alarm is raised"),
            _device("above", "readings in a row at or above the raise level"),
            _device("below", "readings in a row below the clear level"),
            _device("cool", "readings left in the cooldown"),
            _device("health", "smoothed anomaly score behind the health index"),
            _device("alarm_since", "timestamp of the open alarm's raise, epoch ms"),
            _device("below_since", "timestamp of the first reading of the run below the clear level, epoch ms"),
            _device("cleared_at", "timestamp of the last clear, epoch ms (-inf: none)"),
            _device("off_mult", "the off-delay in clear_s: doubled at each raise within the off-delay of a clear"),
            # the lifecycle of the open alarm (detector.FleetDetector's events; no kernel reads them)
            _device("severity", "1 once the open alarm is critical"),
            _device("esc_ref", "the sustained score the open alarm was raised or last escalated at"),
            _device("last_score", "the score of the last reading"),
            _channel("caused", "1 for a metric that is a cause of the open alarm"),
        ),
        ("raise_level", "clear_level", "min_duration", "clear_duration", "cooldown", "clear_ms", "off_mult_max"),
    ),
    Declaration(
        "operating_state",
        None,
        (
            _channel("floor", "lowest value reported so far (a stopped machine's signals sit at their floor)"),
            _device("running", "1 while the machine runs"),
            _device("started", "timestamp of its last start, epoch ms (-inf: settled since before it was seen)"),
            _device("coast", "the load proxy's level over the last seconds, for a run-down"),
            _device("coast_t", "timestamp of the reading that level last moved with, epoch ms"),
            _device("coast_dev", "the load proxy's typical distance from that level"),
            _device("coast_run", "the load proxy's level over the last minutes, as the machine runs"),
            _device("coast_from", "the level a run-down under way started from (0: none)"),
            _device("coast_at", "when that run-down started, epoch ms"),
        ),
    ),
)


def _names(scope: str) -> tuple[str, ...]:
    return tuple(d.name for d in DECLARATIONS if d.scope == scope)


def _fields(width: Width) -> tuple[str, ...]:
    return tuple(f.name for d in DECLARATIONS for f in d.fields if f.width == width)


#: channel-level detectors, in the order of the last axis of ``channel_scores``.
CHANNEL_DETECTORS: Final = _names("channel")
#: device-level detectors, in the order of the last axis of ``device_scores``.
DEVICE_DETECTORS: Final = _names("device")
#: the index of each detector's score on its axis (``channel_scores[..., CH["spike"]]``)
CH: Final = {name: k for k, name in enumerate(CHANNEL_DETECTORS)}
DEV: Final = {name: k for k, name in enumerate(DEVICE_DETECTORS)}
#: the state vector: per-channel fields (each C wide), per-device ones, then the history
#: and matrix fields, in declaration order within each
CHANNEL_FIELDS: Final = _fields("channel")
DEVICE_FIELDS: Final = _fields("device")
HISTORY_FIELDS: Final = _fields("history")
MATRIX_FIELDS: Final = _fields("matrix")
#: state-vector fields whose offsets the C kernel takes (``O_<NAME>`` in C): all of them.
OFFSETS: Final = (*CHANNEL_FIELDS, *DEVICE_FIELDS, *HISTORY_FIELDS, *MATRIX_FIELDS)
#: parameters the C kernel takes (``P_<NAME>`` in C).
PARAMS: Final = tuple(p for d in DECLARATIONS for p in d.params)
#: per-reading rates of the operating-point recursions (the first axis of the ``rates`` input,
#: ``R_<NAME>`` in C): EWMA weights for the elapsed time, the elapsed time itself (ms, capped),
#: and 1 where the silence before the reading was longer than the cap (a gap)
RATES: Final = ("lag", "regression", "level", "baseline", "elapsed", "gap")
HEADER_NAME: Final = "_kernel_layout.h"


def check(declarations: tuple[Declaration, ...]) -> None:
    """Every name once, and a C identifier; run at import, so at build time too."""
    fields = [f.name for d in declarations for f in d.fields]
    params = [p for d in declarations for p in d.params]
    for kind, values in (("declaration", [d.name for d in declarations]), ("field", fields), ("parameter", params)):
        repeated = sorted({v for v in values if values.count(v) > 1})
        if repeated:
            raise ValueError(f"{kind} declared twice: {', '.join(repeated)}")
        bad = [v for v in values if not v.isidentifier()]
        if bad:
            raise ValueError(f"{kind} names that are no C identifiers: {', '.join(bad)}")


check(DECLARATIONS)


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

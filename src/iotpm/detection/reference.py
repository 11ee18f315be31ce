"""A straightforward per-reading implementation of the kernel, in plain Python.

It exists for two reasons: tests check the vectorised kernel against it (same
scores and alarms), and ``benchmarks/detect.py`` measures the kernel's speed
against it. It handles devices whose baseline is learned (the steady state of a
running fleet); warm-up goes through :class:`FleetDetector` as usual.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from iotpm.detection._layout import T2_HISTORY
from iotpm.detection.config import ISO_10816_3_ZONES, DetectorConfig
from iotpm.detection.detectors import chi2_quantile
from iotpm.detection.recursions import time_constant_ms
from iotpm.detection.state import Layout, load_proxy
from iotpm.models.metrics import parse_metric


@dataclass
class ReferenceOutput:
    """Per-reading score and alarm flag."""

    score: list[float]
    alarm: list[bool]


class ReferenceDetector:
    """One device, one reading at a time, floats and lists only."""

    def __init__(
        self,
        config: DetectorConfig,
        channels: tuple[str, ...],
        vector: list[float],
        low: list[float],
        high: list[float],
        vibration: list[bool],
    ) -> None:
        self.cfg, self.c = config, len(channels)
        lay = Layout(self.c)
        self.f = {name: vector[sl] for name, sl in lay.offsets.items()}
        self.low, self.high, self.vib = low, high, vibration
        self.t2_limit = chi2_quantile(self.c, config.t2_z)
        _, self.iso_bc, self.iso_cd = ISO_10816_3_ZONES[config.iso_class]
        # the operating point (engine.Kernel): which metrics have a limit, which follow the load
        self.process = [not (math.isnan(lo) and math.isnan(hi)) for lo, hi in zip(low, high, strict=True)]
        self.proxy = load_proxy(channels)
        quantities = [u.quantity if u is not None else "" for u in map(parse_metric, channels)]
        self.follows = [self.proxy >= 0 and q == "temperature" for q in quantities]
        # the other known metrics follow the load proxy as it is (engine.Kernel.instant)
        self.instant = [self.proxy >= 0 and q not in ("", "temperature") and j != self.proxy
                        for j, q in enumerate(quantities)]  # fmt: skip
        self.setpoint = [q in config.operating_point.setpoint_quantities for q in quantities]
        self.measured = [q != "" for q in quantities]  # a unit the detector knows
        self.rates: dict[str, float] = {}
        self.signalled = False  # the last CUSUM step signalled a shift
        self.restarted = 0.0  # ... its restart's mark (the fast level's weight left on the level before it)
        self.kept = False  # ... the way the last settled shift went: not learned
        self.t = 0.0  # the reading's time

    def run(self, ts: list[int], rows: list[list[float]]) -> ReferenceOutput:
        """Score readings in order; the state advances as it goes."""
        out = ReferenceOutput([], [])
        for t, row in zip(ts, rows, strict=True):
            score = self._score(float(t), row)
            out.score.append(score)
            out.alarm.append(self._alarm(score, t))
        return out

    def _score(self, t: float, row: list[float]) -> float:
        cfg, f = self.cfg, self.f
        self.t = t
        best, zs = 0.0, []
        loads = self._load(t, row)
        for j, x in enumerate(row):
            best = max(best, self._static(j, x))
            if math.isnan(x):
                zs.append(math.nan)
                drift = self._cusum(j, 0.0)
                best = max(best, 0.0 if self.process[j] else drift)
                self._missing(j)
                continue
            best = max(best, self._operating_point(j, x, *loads[1 if self.instant[j] else 0]))
            z = (x - f["mu"][j]) / f["s"][j]
            # the multivariate detectors see a smooth channel against its recent level, and
            # a metric with a limit not at all (the operating-point test stands for them)
            zs.append(0.0 if self.process[j] else (x - f["fast"][j]) / f["s"][j] if f["smooth"][j] > 0 else z)
            # a setpoint's step is no spike (nor a stop's), nor a step of the load proxy within
            # ISO zones A/B and its limit
            calm = j == self.proxy and x < self.iso_bc and not x > self.high[j]
            held = (self.process[j] and self.setpoint[j]) or calm
            if not held:
                # a reading no larger than the recent maximum is no new spike (detectors.Spike)
                recent = cfg.tail_factor * f["zmax"][j]
                spike = abs(z) / max(cfg.spike_z, recent)
                within = abs(z) * cfg.tail_factor < recent
                best = max(best, spike * (cfg.tail_factor * cfg.alarm.clear_level) if within else spike)
            f["zmax"][j] = max(f["zmax"][j] * f["r_tail"][0], abs(z))
            drift = self._cusum(j, z)
            best = max(best, 0.0 if self.process[j] else drift, self._adapt(j, x, z, held))
        best = max(best, self._gap(t))
        return max(best, self._t2(zs))

    def _load(self, t: float, row: list[float]) -> tuple[tuple[float, float, float], tuple[float, float, float]]:
        """The elapsed time's rates, and the load proxy's lag, mean and variance, lagged and
        as it is; returns each one's deviation from its mean before this reading, its
        variance after it and its value."""
        op, f = self.cfg.operating_point, self.f
        silence = t - f["last_t"][0]
        # a step of the device's own interval is not a gap: capped at 1.5 of the warm-up's interval or more
        elapsed = min(max(silence, 0.0), max(1000.0 * op.max_step_s, 1.5 * f["interval"][0]))
        taus = {"lag": op.thermal_tau_s, "regression": op.regression_tau_s, "level": op.level_tau_s}
        self.rates = {name: -math.expm1(-elapsed / (1000.0 * tau)) for name, tau in taus.items()}
        self.rates["baseline"] = -math.expm1(-elapsed / (1000.0 * op.baseline_tau_s))
        self.rates["gap"] = 1.0 if silence > 1000.0 * op.max_step_s else 0.0
        if self.proxy >= 0 and not math.isnan(row[self.proxy]):
            f["load"][0] += self.rates["lag"] * (row[self.proxy] - f["load"][0])
            f["now"][0] = row[self.proxy]
        f["ran"][0] += elapsed
        # while it learns, an average weighs all it has seen alike
        learning = f["ran"][0] < 1000.0 * op.learn_s
        w = (elapsed / f["ran"][0] if f["ran"][0] > 0 else 1.0) if learning else 0.0
        self.rates["regression"] = rr = max(self.rates["regression"], w)
        self.rates["baseline"] = max(self.rates["baseline"], w)
        dl = f["load"][0] - f["load_m"][0]
        f["load_m"][0] += rr * dl
        f["load_v"][0] = (1.0 - rr) * (f["load_v"][0] + rr * dl * dl)
        dn = f["now"][0] - f["now_m"][0]
        f["now_m"][0] += rr * dn
        f["now_v"][0] = (1.0 - rr) * (f["now_v"][0] + rr * dn * dn)
        return (dl, f["load_v"][0], f["load"][0]), (dn, f["now_v"][0], f["now"][0])

    def _operating_point(self, j: int, x: float, dl: float, lv: float, value: float) -> float:
        """The operating-point test of one present reading (engine.Kernel._operating_point)."""
        f, op, rr = self.f, self.cfg.operating_point, self.rates["regression"]
        res, follows = x, self.follows[j] or self.instant[j]
        share = (f["op_c"][j] / lv if lv > 0 else 0.0) * (value - f["op_l"][j])
        if follows:
            res = x - share
            dx = x - f["op_m"][j]
            f["op_m"][j] += rr * dx
            f["op_c"][j] = (1.0 - rr) * (f["op_c"][j] + rr * dx * dl)
        f["op_f"][j] += self.rates["level"] * (res - f["op_f"][j])
        e = f["op_f"][j] - f["op_b"][j]
        limit = self.high[j] if e > 0 else self.low[j]
        margin = limit - f["op_b"][j] if e > 0 else f["op_b"][j] - limit
        room = op.margin * max(margin, 1e-9)
        scoring = not math.isnan(limit) and f["ran"][0] >= 1000.0 * op.learn_s
        if not (scoring and abs(e) >= self.cfg.alarm.clear_level * room):
            # the baseline moves along the relation with the load it stands for
            f["op_b"][j] += self.rates["baseline"] * (e + share if follows else e)
            if follows:
                f["op_l"][j] += self.rates["baseline"] * (value - f["op_l"][j])
        return abs(e) / room if scoring else 0.0

    def _static(self, j: int, x: float) -> float:
        lo, hi = self.low[j], self.high[j]
        score = 0.0
        if not math.isnan(x):
            finite_lo, finite_hi = not math.isnan(lo), not math.isnan(hi)
            span = hi - lo if finite_lo and finite_hi else abs(hi) if finite_hi else abs(lo) if finite_lo else 1.0
            span = span if span > 0 else 1.0
            over = max(x - hi if finite_hi else -math.inf, lo - x if finite_lo else -math.inf)
            score = 1.0 + over / span if over >= 0 else 0.0
            if self.vib[j]:
                iso = x / self.iso_cd if x >= self.iso_cd else 0.5 if x >= self.iso_bc else 0.0
                score = max(score, iso)
        return score

    def _missing(self, j: int) -> None:
        f = self.f
        f["run"][j] = 0.0
        f["zmax"][j] = f["zmax"][j] * f["r_tail"][0]
        f["dmax"][j] = f["dmax"][j] * f["r_tail"][0]

    def _cusum(self, j: int, z: float) -> float:
        cfg, f = self.cfg, self.f
        # the level a settled shift was learned from, forgotten once the metric is back nearer it
        start, mu = f["drift_from"][j], f["mu"][j]
        toward = 1.0 if mu > start else -1.0
        silent = self.t - f["last_t"][0] > cfg.dropout_factor * f["dt_exp"][0]  # a gap: the machine stopped
        if not math.isnan(start) and (silent or toward * (f["fast"][j] - start) * 2.0 <= abs(mu - start)):
            f["drift_from"][j] = start = math.nan
        # how long the fast level has held still since, within half k typical steps of where it stood
        f["hold_ms"][j] = f["hold_ms"][j] + f["dt_exp"][0]
        if not abs(f["fast"][j] - f["hold_at"][j]) <= (0.5 * cfg.cusum_k) * f["dscale"][j]:
            f["hold_at"][j], f["hold_ms"][j] = f["fast"][j], 0.0
        if math.isnan(start):
            f["hold_at"][j], f["hold_ms"][j] = math.nan, 0.0
        # a sum that builds from the first reading after a stop (a gap that lasted drift_relearn_s):
        # a level the machine came back at
        # (1: the sum was empty, the shift began there; -1: it carried one)
        if silent and self.t - f["last_t"][0] >= 1000.0 * cfg.drift_relearn_s:
            f["restart"][j] = 1.0 if f["cp"][j] == 0.0 and f["cn"][j] == 0.0 else -1.0
        zc = min(max(z, -cfg.cusum_clip), cfg.cusum_clip)
        f["cp"][j] = max(f["cp"][j] + zc - cfg.cusum_k, 0.0)
        f["cn"][j] = max(f["cn"][j] - zc - cfg.cusum_k, 0.0)
        if max(f["cp"][j], f["cn"][j]) == 0.0:  # one that empties was none
            f["restart"][j] = 0.0
        score = max(f["cp"][j], f["cn"][j]) / cfg.cusum_h
        gain = cfg.cusum_clip - cfg.cusum_k  # the most the sum grows by per reading
        readings = cfg.cusum_h / gain if gain != 0 else math.inf
        # the device's expected interval before this reading (_gap advances it after the channels)
        lasted = f["dt_exp"][0] * readings >= 1000.0 * cfg.drift_relearn_s
        self.signalled = not self.process[j] and lasted and max(f["cp"][j], f["cn"][j]) > cfg.cusum_h
        # a second signal the way the last settled shift went: not learned, its sum held
        way = "cp" if toward > 0 else "cn"
        settled = f["hold_ms"][j] >= 1000.0 * cfg.drift_settle_s  # the level has held still: learned
        self.kept = self.signalled and not math.isnan(start) and f[way][j] > cfg.cusum_h and not settled
        self.restarted = f["restart"][j]  # its signal learns the level in full, once
        if self.signalled:
            f["restart"][j] = 0.0
        for key in ("cp", "cn"):
            if f[key][j] > cfg.cusum_h:
                f[key][j] = cfg.cusum_h if self.kept else 0.0
        return score

    def _adapt(self, j: int, x: float, z: float, held: bool) -> float:
        cfg, f = self.cfg, self.f
        a = f["r_adapt"][0]
        r = min(max(z, -cfg.cusum_clip), cfg.cusum_clip)
        r = min(max(r, -cfg.adapt_clip), cfg.adapt_clip)
        mu_b, s_b = f["mu"][j], f["s"][j]
        f["mu"][j] += a * r * f["s"][j]
        if self.signalled and not self.kept:  # a shift the CUSUM signalled: the level it stands at is the new normal
            room = min(cfg.adapt_clip, cfg.cusum_clip) * s_b
            shift = f["fast"][j] - mu_b
            if 0.0 < self.restarted < 1.0:  # began at the stop: the fast level net of its lag
                shift = shift / (1.0 - self.restarted)
            moving = abs(f["fast"][j] - f["slow"][j]) >= room and self.restarted == 0.0
            if moving:  # still moving (and not back from a stop): by at most the clip
                shift = min(max(shift, -room), room)
            else:  # settled: remembered as the level it was learned from
                f["drift_from"][j] = mu_b
            f["mu"][j] = mu_b + shift
            f["hold_at"][j], f["hold_ms"][j] = f["fast"][j], 0.0  # how long it holds counts from here
        f["s"][j] = max(f["s"][j] * math.sqrt(1.0 + a * (r * r - 1.0)), f["s_min"][j])
        score = 0.0
        dx = x - f["last_x"][j]
        if self.process[j] and self.rates["gap"] > 0:
            dx = math.nan  # across a gap, a metric with a limit has no rate of change
        if not math.isnan(dx):
            ds = f["dscale"][j]
            score = 0.0 if held else (abs(dx) / ds) / max(cfg.roc_z, cfg.tail_factor * f["dmax"][j])
            f["dmax"][j] = max(f["dmax"][j] * f["r_tail"][0], abs(dx) / ds)
            f["dscale"][j] = ds + a * (min(abs(dx), 4.0 * ds) - ds)
        else:
            f["dmax"][j] = f["dmax"][j] * f["r_tail"][0]
        f["run"][j] = f["run"][j] + 1.0 if x == f["last_x"][j] else 0.0
        stuck = f["flat_thr"][j]
        if self.measured[j]:  # in time: the warm-up's (ms) and flatline_s, at the expected interval
            dt = f["dt_exp"][0]
            timed = min(max(1000.0 * cfg.flatline_s / dt, 3.0), float(cfg.flatline_min))
            stuck = max(stuck / dt, timed)
        score = max(score, f["run"][j] / stuck)
        f["last_x"][j] = x
        f["fast"][j] += cfg.trend_rate * (x - f["fast"][j])
        if f["restart"][j] > 0.0:  # the fast level's weight left on the level before the stop
            f["restart"][j] *= 1.0 - cfg.trend_rate
        f["slow"][j] += cfg.trend_rate_slow * (x - f["slow"][j])
        return score

    def _gap(self, t: float) -> float:
        f = self.f
        dt = t - f["last_t"][0]
        ratio = dt / f["dt_exp"][0]
        if dt > 0:  # the expected interval learns in time: a reading weighs the time it stands for
            seen = min(dt, 3.0 * f["dt_exp"][0])
            f["dt_exp"][0] += (seen - f["dt_exp"][0]) * (seen / (seen + time_constant_ms(self.cfg.interval_halflife_s)))
        f["last_t"][0] = t
        return ratio / self.cfg.dropout_factor if self.cfg.dropout_alarms else 0.0

    def _t2(self, zs: list[float]) -> float:
        f, c = self.f, self.c
        clip, rate = self.cfg.cusum_clip * 2, f["r_mewma"][0]
        zc = [0.0 if math.isnan(z) else min(max(z, -clip), clip) for z in zs]
        e = f["mew"]
        for j in range(c):
            e[j] = e[j] * (1.0 - rate) + zc[j] * rate
        t2 = drift = 0.0
        if f["t2_on"][0] > 0:
            p = f["P"]
            t2 = sum(zc[a] * p[a * c + b] * zc[b] for a in range(c) for b in range(c))
            drift = sum(e[a] * p[a * c + b] * e[b] for a in range(c) for b in range(c))
        window = [*f["t2_hist"][:T2_HISTORY], t2]
        f["t2_hist"][:T2_HISTORY] = window[1:]
        return max(_median(window) / self.t2_limit, drift / f["r_ewma_limit"][0])

    def _alarm(self, score: float, t: int) -> bool:
        cfg, f = self.cfg.alarm, self.f
        f["above"][0] = f["above"][0] + 1.0 if score >= cfg.raise_level else 0.0
        f["below"][0] = f["below"][0] + 1.0 if score < cfg.clear_level else 0.0
        if f["below"][0] == 1.0:
            f["below_since"][0] = float(t)
        up = f["alarm"][0] == 0 and f["above"][0] >= cfg.min_duration and f["cool"][0] <= 0
        clear_ms = 1000.0 * cfg.clear_s
        gone = float(t) - f["below_since"][0] >= clear_ms * f["off_mult"][0]
        down = f["alarm"][0] == 1 and f["below"][0] >= cfg.clear_duration and gone
        f["cool"][0] = float(cfg.cooldown) if down else max(f["cool"][0] - 1.0, 0.0)
        f["alarm"][0] = 1.0 if up else 0.0 if down else f["alarm"][0]
        if up:  # a raise within the off-delay of the last clear doubles it (re-alarm)
            f["alarm_since"][0] = float(t)
            within = float(t) - f["cleared_at"][0] < clear_ms * f["off_mult"][0]
            f["off_mult"][0] = min(f["off_mult"][0] * 2.0, cfg.off_mult_max) if within else 1.0
        if down:
            f["cleared_at"][0] = float(t)
        f["health"][0] += f["r_adapt"][0] * (min(score, 2.0) - f["health"][0])
        f["n"][0] += 1.0
        return f["alarm"][0] > 0


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else 0.5 * (ordered[mid - 1] + ordered[mid])

"""Detector configuration: one shipped default, overridable per type, line and device.

Static limits come from the original requirements (temperature 10-80 °C, pressure
30-150 PSI, vibration above 5.0 mm/s). Overrides are resolved most specific first:
device, then line, then device type, then the defaults. They load from a JSON file or
from table rows (one row per override), so operators change limits without a redeploy.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from iotpm.models.metrics import parse_metric

Scope = Literal["device_type", "line", "device"]


class Limits(BaseModel):
    """Alarm limits for one metric; either side may be open."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    low: float | None = None
    high: float | None = None

    @model_validator(mode="after")
    def _ordered(self) -> Limits:
        if self.low is not None and self.high is not None and self.low >= self.high:
            raise ValueError(f"low {self.low} must be below high {self.high}")
        return self


DEFAULT_LIMITS: dict[str, Limits] = {
    "temperature": Limits(low=10.0, high=80.0),
    "pressure": Limits(low=30.0, high=150.0),
    "vibration": Limits(high=5.0),
}


class IsoMachineClass(StrEnum):
    """ISO 10816-3 machine groups and foundations (velocity RMS, 10-1000 Hz)."""

    GROUP1_RIGID = "group1_rigid"  # large machines, 300 kW-50 MW
    GROUP1_FLEXIBLE = "group1_flexible"
    GROUP2_RIGID = "group2_rigid"  # medium machines, 15-300 kW
    GROUP2_FLEXIBLE = "group2_flexible"


#: zone boundaries A/B, B/C, C/D in mm/s RMS (ISO 10816-3:2009, Table A.1 and A.2).
ISO_10816_3_ZONES: dict[IsoMachineClass, tuple[float, float, float]] = {
    IsoMachineClass.GROUP1_RIGID: (2.3, 4.5, 7.1),
    IsoMachineClass.GROUP1_FLEXIBLE: (3.5, 7.1, 11.0),
    IsoMachineClass.GROUP2_RIGID: (1.4, 2.8, 4.5),
    IsoMachineClass.GROUP2_FLEXIBLE: (2.3, 4.5, 7.1),
}

LimitTable = dict[str, dict[str, Limits]]


class ThresholdConfig(BaseModel):
    """Static limits by quantity (``temperature``) or metric name, with overrides."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    defaults: dict[str, Limits] = Field(default_factory=lambda: dict(DEFAULT_LIMITS))
    device_type: LimitTable = Field(default_factory=dict)
    line: LimitTable = Field(default_factory=dict)
    device: LimitTable = Field(default_factory=dict)

    def resolve(
        self,
        metric: str,
        *,
        device_id: str | None = None,
        line: str | None = None,
        device_type: str | None = None,
    ) -> Limits | None:
        """The limits that apply to ``metric`` on a device; None for unit-less metrics."""
        unit = parse_metric(metric)
        if unit is None:
            return None
        keys = (metric, unit.quantity)
        for table, key in ((self.device, device_id), (self.line, line), (self.device_type, device_type)):
            found = _lookup(table.get(key or "", {}), keys)
            if found is not None:
                return found
        return _lookup(self.defaults, keys)

    @classmethod
    def from_file(cls, path: str | Path) -> ThresholdConfig:
        """Load from a JSON file shaped like this model (``defaults``, ``device``, ...)."""
        return cls.model_validate(json.loads(Path(path).read_text(encoding="utf-8")))

    @classmethod
    def from_rows(cls, rows: Iterable[Mapping[str, Any]]) -> ThresholdConfig:
        """Build from table rows ``{scope, key, metric, low, high}`` (e.g. a DynamoDB table).

        ``scope`` is ``default``, ``device_type``, ``line`` or ``device``; ``key`` names the
        type, line or device (ignored for ``default``).
        """
        tables: dict[str, dict[str, Any]] = {"device_type": {}, "line": {}, "device": {}}
        defaults: dict[str, Limits] = dict(DEFAULT_LIMITS)
        for row in rows:
            limits = Limits(low=row.get("low"), high=row.get("high"))
            scope = str(row["scope"])
            if scope == "default":
                defaults[str(row["metric"])] = limits
            elif scope in tables:
                tables[scope].setdefault(str(row["key"]), {})[str(row["metric"])] = limits
            else:
                raise ValueError(f"unknown scope {scope!r}; expected default, device_type, line or device")
        return cls(defaults=defaults, **tables)


def _lookup(table: Mapping[str, Limits], keys: tuple[str, str]) -> Limits | None:
    for key in keys:
        if key in table:
            return table[key]
    return None


PositiveFloat = Annotated[float, Field(gt=0)]
PositiveInt = Annotated[int, Field(gt=0)]


class AlarmConfig(BaseModel):
    """Hysteresis on the anomaly score and the open alarm's lifecycle: one incident, one alarm.

    An alarm raises at ``raise_level``; while it is open it escalates (an event of its own)
    when it gets worse: a static limit or ISO 10816-3 zone D is crossed (it becomes
    critical), another metric becomes a cause, or its score, sustained over two readings,
    reaches ``escalate_factor`` times the score it was raised or last escalated at. It
    clears once the score has stayed below ``clear_level`` for ``clear_duration`` readings
    and ``clear_s`` seconds, so a condition that comes and goes is one incident.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    raise_level: PositiveFloat = 1.0
    clear_level: PositiveFloat = 0.8
    min_duration: PositiveInt = 1  # readings at or above raise_level before raising
    clear_duration: PositiveInt = 2  # readings below clear_level before clearing
    # physical: the off-delay of ISA-18.2 (an alarm clears only once its condition has been
    # gone for a while). Ten minutes is about the time an operator takes to reach a machine
    # and look at it: a condition back within it is the same incident, not a new one
    # (EEMUA 191 counts a raise within minutes of its clear as chattering)
    clear_s: Annotated[float, Field(ge=0)] = 600.0
    # ISA-18.2's re-alarm: a raise within the off-delay of the device's last clear is the same
    # incident coming back (EEMUA 191 calls it chattering): the off-delay doubles for it, so an
    # intermittent condition is one incident open longer, not a raise every ten minutes; a raise
    # later than that starts again at clear_s. chosen: up to 20 minutes, once doubled (up to two
    # hours lost a failure's page on PHM 2012: the incident held open where its raise had paged)
    off_delay_max_s: Annotated[float, Field(ge=0)] = 1200.0
    # physical: a deviation that has doubled is "worse" in any unit (the score is the
    # deviation over its alarm level)
    escalate_factor: Annotated[float, Field(gt=1)] = 2.0
    cooldown: Annotated[int, Field(ge=0)] = 0  # readings after a clear before a new raise

    @property
    def off_mult_max(self) -> float:
        """The longest off-delay, in off-delays of ``clear_s`` (at least 1)."""
        return max(1.0, self.off_delay_max_s / self.clear_s) if self.clear_s > 0 else 1.0

    @model_validator(mode="after")
    def _levels(self) -> AlarmConfig:
        if self.clear_level > self.raise_level:
            raise ValueError("clear_level must not exceed raise_level")
        return self


class OperatingConfig(BaseModel):
    """When a machine counts as stopped, and how long it takes to settle after a start.

    ``off_below`` maps a quantity (``vibration``) or metric name to a value: the machine is
    off while every listed metric it reports is below its value. ``device_type`` replaces
    that map for a type (an empty map there: learn it from the floors). A device that
    reports none of the listed metrics is off while all its metrics sit at their floor.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    # 0.2 mm/s velocity RMS is a tenth of ISO 10816-3's zone A for the smallest machines
    # (1.4 mm/s): a rotating machine that runs vibrates more than that
    off_below: dict[str, float] = Field(default_factory=lambda: {"vibration": 0.2})
    device_type: dict[str, dict[str, float]] = Field(default_factory=dict)
    # a pump's pressure builds within a minute of a start (low limits wait for it)
    start_s: Annotated[float, Field(ge=0)] = 60.0
    # a machine's temperature approaches its operating point with the casing's thermal
    # time constant (tens of minutes for a medium motor): statistics wait three of them
    # (within 5 % of the operating temperature)
    settle_s: Annotated[float, Field(ge=0)] = 3600.0
    # physical: a stop is a transient like a start. A rotor runs down over tens of seconds
    # (its vibration velocity falls with it) while the head of a pump goes with the square of
    # the speed, within seconds: for a few readings a stopping machine vibrates like a running
    # one below its low pressure limit. Its load proxy falling more than ``coast_drop`` below
    # its level over the last ``coast_tau_s`` is a run-down (production loads change over
    # minutes): those readings are stopping, not scored against running limits or statistics
    coast_tau_s: Annotated[float, Field(gt=0)] = 10.0
    coast_drop: Annotated[float, Field(gt=0, le=1)] = 0.15  # 1: no run-down is told apart

    def resolve(self, channels: Iterable[str], device_type: str | None = None) -> list[float]:
        """Per channel, the value below which it says "off" (NaN: not part of the condition)."""
        table = self.device_type.get(device_type or "", self.off_below)
        out = []
        for ch in channels:
            unit = parse_metric(ch)
            keys = (ch, unit.quantity) if unit is not None else (ch,)
            out.append(next((float(table[k]) for k in keys if k in table), float("nan")))
        return out


class OperatingPointConfig(BaseModel):
    """The operating-point baseline of a metric with a static limit (times in seconds).

    A temperature is compared with what the load proxy (the device's vibration velocity,
    which a rotating machine's load drives) predicts for it, lagged by the casing's
    thermal time constant; every such metric's smoothed value is compared with its
    baseline, which adapts while the machine runs and the test is quiet, over a day. The
    test raises when the operating point has used up ``margin`` of the distance from the
    baseline to the limit it heads for.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    # physical: the casing follows its heat input with tens of minutes' lag (settle_s)
    thermal_tau_s: PositiveFloat = 1200.0
    # physical: slower than the faults it must catch (they develop over one to three days),
    # so a fault's ramp shows as the baseline's lag: its slope times this time constant
    baseline_tau_s: PositiveFloat = 172_800.0
    # physical: a machine's relation to its load (a pump's head at each speed, a casing's heat
    # per unit of load) is the machine's own and changes with wear over days, as the baseline
    # does: learned over the baseline's time. Over 6 h (until 2026-12-08) it forgot the relation
    # when the machine held one speed for a shift, and learned a fault that grew while the load
    # moved as a dependence on the load
    regression_tau_s: PositiveFloat = 172_800.0
    # chosen: averages the noise and the lag between load and temperature
    level_tau_s: PositiveFloat = 1800.0
    # chosen: the running time the regression needs before the test scores
    learn_s: Annotated[float, Field(ge=0)] = 21_600.0
    # chosen: the share of the baseline's distance to the limit that raises
    margin: Annotated[float, Field(gt=0, le=1)] = 0.5
    # physical: a longer silence is a gap, not running time the baselines may learn from
    max_step_s: PositiveFloat = 300.0
    # physical: quantities a controller holds at a setpoint; a step of one within its limits
    # is a setpoint change, not a spike (the limits and the test above still apply)
    setpoint_quantities: tuple[str, ...] = ("pressure",)


class DetectorConfig(BaseModel):
    """Every knob of the detector. The defaults are the shipped, evaluated configuration.

    Scores of every detector are scaled so that 1.0 is its alarm level; the reading's
    anomaly score is the largest of them.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    warmup: Annotated[int, Field(ge=10)] = 100  # readings learned before statistics score
    # physical: or an hour of running, settled (the machine at a few load points), in at
    # least warmup_min readings (a median, a spread and the metrics' correlation need a
    # sample): one reading every 10 min learns in 5 h, not in the 16 h of 100 readings
    warmup_s: Annotated[float, Field(ge=0)] = 3600.0
    warmup_min: Annotated[int, Field(ge=10)] = 30
    # chosen (measured): the statistical baseline's adaptation is a matter of sample size, and a
    # sensor's interval is the engineer's choice of its process's time scale: NAB's 5-minute
    # series and SKAB's 1-second ones both want about 2,000 readings, and any one time constant
    # regressed one of them (a week: SKAB's false alarms 17 -> 26 %; two days: NAB 54.4 -> 52.9).
    # (Measured, not shipped: a ceiling of a week in time on top, which binds on devices read
    # every 5 min or slower: IMS healthy time in alarm 22.3 -> 21.1 %, NAB 55.1 -> 54.8.)
    adapt_halflife: PositiveFloat = 2000.0
    # physical: the expected interval between readings is learned over an hour of readings, as
    # the warm-up learns it (warmup_s): a device that changes its interval (a gateway's batching,
    # a firmware setting) is judged at its new one within hours, not within thousands of readings
    interval_halflife_s: PositiveFloat = 3600.0
    adapt_clip: PositiveFloat = 3.0  # residuals beyond this many scales adapt as if at it
    robust_scale: bool = False  # MAD (True) or standard deviation of the warm-up block
    scale_floor: Annotated[float, Field(ge=0, le=1)] = 0.1  # minimum scale, x the learned one
    spike_z: PositiveFloat = 6.0
    tail_factor: Annotated[float, Field(ge=0)] = 1.15  # an alarm must beat this x the recent max
    # physical: how heavy a channel's tails are (the recent maximum an alarm must beat) is a
    # property of the machine and its sensor: it is remembered over a production week
    tail_halflife_s: PositiveFloat = 604_800.0
    cusum_k: Annotated[float, Field(ge=0)] = 1.0
    cusum_h: PositiveFloat = 200.0
    cusum_clip: PositiveFloat = 4.0
    # physical: a level that has held for 6 h is the machine's (longer than a start-up's
    # warm-up and a shift's transients). The CUSUM signals no sooner than
    # cusum_h / (cusum_clip - cusum_k) readings (67) after a shift began, so where those
    # readings span this long (one every 5.4 min or slower) its signal moves the baseline to
    # the level found (in full once it has stopped moving, else by adapt_clip scales) and a
    # drift raises once per shift. Faster-read devices keep the slow adaptation: a shift of
    # minutes is an anomaly, not a new normal (SKAB's valve faults at 1 s: F1 0.78 -> 0.58
    # when they were learned at the signal)
    drift_relearn_s: Annotated[float, Field(ge=0)] = 21_600.0
    # physical: a level that has held for a day (within the CUSUM's reference, cusum_k scales),
    # through a day's shifts, loads and ambient, has settled: a second shift the same way that
    # has stopped there is learned, so its alarm clears within about a day (EEMUA 191's stale
    # alarm is one standing 24 h); a climb never holds still that long and stays in alarm
    drift_settle_s: Annotated[float, Field(ge=0)] = 86_400.0
    roc_z: PositiveFloat = 8.0
    # a stuck sensor: its value repeated flatline_factor x the warm-up's longest repeat, and at
    # least flatline_min readings; for a metric with a unit the detector knows, at least
    # flatline_s of readings instead (physical: a running machine's temperature or vibration,
    # sent to its sensor's resolution, does not hold its last digit for five minutes), counted
    # as at least 3 readings (a run must be one) and at most flatline_min (30 readings: five
    # minutes at one reading every 10 s, as before): one reading every 10 minutes, 3 readings.
    # Counted at the interval the device reads at (its expected interval, learned in time), not
    # the warm-up's: a device warmed up at 10-minute readings that then reads every 10 s is
    # stuck after 5 minutes, not 3 readings (30 s)
    # A metric without a unit (a count, a percentage) may repeat: NAB's 5-minute series lost
    # 55.1 -> 53.3 with the floor of 3 readings on them
    flatline_min: PositiveInt = 30
    flatline_s: Annotated[float, Field(ge=0)] = 300.0
    flatline_factor: PositiveFloat = 3.0
    # A metric with a unit sent coarser than its own noise (a whole-unit transmitter: 1 C, 1 psi):
    # its warm-up repeats its value in at least flatline_coarse_repeats of its steps, where a
    # sensor that resolves its noise almost never repeats exactly. Such a sensor on a steady
    # machine holds its value until the process moves a whole step, which may take hours (seen:
    # 3.7 h running at 10-minute readings), so it is stuck only after holding it
    # flatline_coarse_s: half a day, through which a running machine's loads and the day's
    # ambient move any live casing, pressure or vibration by more than a step. Measured warm-up
    # repeat rates (fleet_quality, every plant, 10 s and 600 s): 2-decimal sensors 0-7 % (the
    # highest 2 of 29 steps), whole-unit ones 14-81 %; the 0.1 sits in that gap (chosen there,
    # not by score); the 12 h is the half day
    flatline_coarse_repeats: Annotated[float, Field(gt=0, le=1)] = 0.1
    flatline_coarse_s: Annotated[float, Field(ge=0)] = 43_200.0
    dropout_factor: PositiveFloat = 10.0
    # A gap is a data-quality event, not a machine fault: it is scored and reported,
    # and raises the anomaly alarm only when this is set.
    dropout_alarms: bool = False
    t2_z: PositiveFloat = 2.9  # normal-equivalent quantile of the chi-square limit
    # A sustained shift too small for T² on each reading is caught by T² of the z-vector's
    # EWMA (a MEWMA chart); real sensors' z are autocorrelated, so its limit is this many
    # times the T² limit rather than the textbook one.
    # chosen (measured): a shift that lasts about a quarter of a minute (13.5 readings of SKAB's
    # 1 s, as evaluated before). At one reading every 10 s or slower the chart is T² of the
    # reading itself against a limit 8x T²'s (its limit scales with its rate): it no longer
    # holds an alarm for days on a small bounded drift of a slowly read machine
    mewma_halflife_s: PositiveFloat = 13.5
    mewma_factor: PositiveFloat = 8.0
    # A channel whose typical step in the warm-up is below this x its scale wanders
    # smoothly (a temperature, say; white noise steps 1.13 scales): the multivariate
    # detectors see its deviation from its own recent level, not from the baseline.
    smooth_step_ratio: Annotated[float, Field(ge=0)] = 0.6
    trend_halflife: PositiveFloat = 20.0  # the fast level used for the trend estimate
    # A trend is reported when the gap between the fast and slow levels exceeds this many
    # of its standard deviations on white noise; the crossing is predicted from the
    # slope's lower bound at the same level.
    trend_z: PositiveFloat = 3.0
    # A crossing is predicted at most this many times the time the slope was measured
    # over (the time between the two levels: 115 readings at the default half-life).
    trend_reach: PositiveFloat = 3.0
    operating_point: OperatingPointConfig = Field(default_factory=OperatingPointConfig)
    alarm: AlarmConfig = Field(default_factory=AlarmConfig)
    operating: OperatingConfig = Field(default_factory=OperatingConfig)
    thresholds: ThresholdConfig = Field(default_factory=ThresholdConfig)
    iso_class: IsoMachineClass = IsoMachineClass.GROUP2_FLEXIBLE

    @property
    def trend_rate(self) -> float:
        """EWMA weight of one reading for the fast level."""
        return float(1.0 - 0.5 ** (1.0 / self.trend_halflife))

    @property
    def trend_rate_slow(self) -> float:
        """EWMA weight of one reading for the slow level (5x the fast half-life)."""
        return float(1.0 - 0.5 ** (1.0 / (5.0 * self.trend_halflife)))

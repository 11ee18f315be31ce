"""Machines with realistic signals and faults injected at known times (the ground truth).

Pure and seeded: the same fleet, seed and clock give the same readings, so a run's
ground truth is reproducible. Signals per machine type:

- temperature: the type's level, a daily cycle (+-3 C) and the load's heat, small noise;
- vibration (velocity RMS): the type's level scaled by load, noise;
- pressure: the type's level, slightly load-dependent, noise.

Faults change a machine's signals from ``start_s`` (seconds into the run) on:
bearing wear (vibration drifts up, then the temperature follows), overheating,
pressure leak, stuck sensor (temperature frozen), spikes (single vibration
outliers) and dropout (the machine stops sending).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal, NamedTuple

import numpy as np
import numpy.typing as npt

MachineType = Literal["pump", "motor", "compressor"]
FaultKind = Literal["bearing_wear", "overheating", "pressure_leak", "stuck_sensor", "spikes", "dropout"]
FAULTS: tuple[FaultKind, ...] = ("bearing_wear", "overheating", "pressure_leak", "stuck_sensor", "spikes", "dropout")
#: which metric each fault shows in first (what a detector should name)
FAULT_METRIC: dict[FaultKind, str] = {
    "bearing_wear": "vibration_mm_s",
    "overheating": "temperature_c",
    "pressure_leak": "pressure_psi",
    "stuck_sensor": "temperature_c",
    "spikes": "vibration_mm_s",
    "dropout": "",
}
LEVELS: dict[MachineType, tuple[float, float, float]] = {  # temperature C, vibration mm/s, pressure psi
    "pump": (55.0, 2.0, 90.0),
    "motor": (60.0, 2.5, 70.0),
    "compressor": (68.0, 3.0, 120.0),
}
DAY_S = 86_400.0


@dataclass(frozen=True, slots=True)
class Fault:
    """One injected fault: which device, what, from when, for how long (seconds into the run)."""

    device_id: str
    kind: FaultKind
    start_s: float
    ramp_s: float = 20.0  # time to full severity

    @property
    def metric(self) -> str:
        return FAULT_METRIC[self.kind]


@dataclass
class Machine:
    """One device: identity, type, place, and its random state."""

    device_id: str
    machine_type: MachineType
    site: str
    line: str
    rng: np.random.Generator
    phase: float
    seq: int = 0
    faults: list[Fault] = field(default_factory=list)
    _stuck: float | None = None

    def reading(self, t_s: float, ts_ms: int) -> dict[str, Any] | None:
        """The canonical message at ``t_s`` seconds into the run (None while dropped out)."""
        temp0, vib0, pres0 = LEVELS[self.machine_type]
        load = 0.6 + 0.25 * math.sin(2 * math.pi * t_s / 3600 + self.phase)
        daily = 3.0 * math.sin(2 * math.pi * (ts_ms / 1000 % DAY_S) / DAY_S)
        noise = self.rng.normal(size=3).tolist()  # Python floats: the same values, without numpy's scalar costs
        temp = temp0 + daily + 6.0 * (load - 0.6) + 0.3 * noise[0]
        vib = vib0 * (0.85 + 0.25 * load) + 0.06 * noise[1]
        pres = pres0 + 4.0 * (load - 0.6) + 0.8 * noise[2]
        for f in self.faults:
            if t_s < f.start_s:
                continue
            k = min(1.0, (t_s - f.start_s) / f.ramp_s)
            if f.kind == "dropout":
                return None
            if f.kind == "bearing_wear":
                vib += 5.0 * k
                temp += 25.0 * max(0.0, (t_s - f.start_s - f.ramp_s / 2) / f.ramp_s)
            elif f.kind == "overheating":
                temp += 35.0 * k
            elif f.kind == "pressure_leak":
                pres -= 75.0 * k
            elif f.kind == "stuck_sensor":
                self._stuck = temp if self._stuck is None else self._stuck
                temp = self._stuck
            elif f.kind == "spikes" and self.rng.random() < 0.1:
                vib *= 4.0
        self.seq += 1
        return {
            "schema_version": 1,
            "device_id": self.device_id,
            "ts": ts_ms,
            "seq": self.seq,
            "site": self.site,
            "line": self.line,
            "device_type": self.machine_type,
            "metrics": {
                "temperature_c": rounded(temp, 3),
                "vibration_mm_s": rounded(vib, 4),
                "pressure_psi": rounded(pres, 2),
            },
        }


def rounded(x: float, digits: int) -> float:
    """``x`` rounded as numpy rounds a float64 scalar (times 10**digits, to the nearest integer, ties to
    even, divided back, the sign kept), the values the readings always had: ``round`` of a numpy scalar
    took 3 us, most of a reading's cost to the load generator at thousands of readings a second."""
    scale = 10.0**digits
    return math.copysign(round(x * scale) / scale, x)


class Fleet:
    """``n`` machines spread over types, two sites and four lines, with faults on chosen devices."""

    def __init__(self, n: int, seed: int = 0, faults: list[Fault] | None = None) -> None:
        types: tuple[MachineType, ...] = ("pump", "motor", "compressor")
        root = np.random.default_rng(seed)
        self.machines: list[Machine] = []
        for i in range(n):
            kind = types[i % 3]
            self.machines.append(
                Machine(
                    device_id=f"{kind}-{i:04d}",
                    machine_type=kind,
                    site=f"plant-{1 + (i // 2) % 2}",
                    line=f"line-{1 + i % 4}",
                    rng=np.random.default_rng(root.integers(2**63)),
                    phase=float(root.uniform(0, 2 * math.pi)),
                )
            )
        self.faults = list(faults or [])
        by_id = {m.device_id: m for m in self.machines}
        for f in self.faults:
            if f.device_id not in by_id:
                raise ValueError(f"fault on unknown device {f.device_id!r}")
            by_id[f.device_id].faults.append(f)

    @property
    def ids(self) -> list[str]:
        return [m.device_id for m in self.machines]

    def scenario(self, kinds: list[FaultKind], start_s: float) -> list[Fault]:
        """One fault of each kind, on devices spread through the fleet (the first device stays healthy)."""
        if len(kinds) >= len(self.machines):
            raise ValueError("a scenario needs more devices than faults (one device stays healthy)")
        step = max(1, len(self.machines) // (len(kinds) + 1))
        faults = [Fault(self.machines[(j + 1) * step].device_id, kind, start_s) for j, kind in enumerate(kinds)]
        for f in faults:
            next(m for m in self.machines if m.device_id == f.device_id).faults.append(f)
        self.faults += faults
        return faults


def ground_truth(faults: list[Fault], run_start_ms: int) -> list[dict[str, Any]]:
    """The injected faults with absolute start times (what a run's detections are scored against)."""
    return [{**asdict(f), "metric": f.metric, "start_ms": run_start_ms + int(f.start_s * 1000)} for f in faults]


# --- Offline long-run mode -------------------------------------------------------------
#
# A week (or any span) of a plant's fleet generated at once, with no broker: machines on
# shift schedules (idle nights and weekends, compressors cycling), production loads that
# change every few hours, pressure setpoint steps, the site's daily ambient, thermal and
# hydraulic lag, device restarts and data gaps, and slow and abrupt faults with ground
# truth. Everything is an array per device, so a week of 100 devices takes seconds. A slow
# fault (bearing wear, a fouling cooler, a wearing seal's leak) grows with the machine's
# running time: a stopped bearing makes no revolutions, a stopped cooler passes no dirt, a
# seal at rest does not wear; so a machine stopped overnight restarts as worn as it stopped.
#
# With ``phenomena`` it also has what another plant's machines do (see :class:`Phenomena`):
# pressure that follows the load, large setpoint steps within a shift, vibration that steps
# with the load, a coast-down at every stop (the pressure falls faster than the vibration),
# and healthy machines that come back from a stop of days at a new level. With
# ``plant="speed"`` every machine is on a variable-speed drive instead (the affinity laws):
# the drive sets the speed from the demand and the pressure setpoint, the head goes with
# the speed squared and the vibration with the speed, so a setpoint step of tens of psi
# moves the vibration with it; a leak loses head at the same speed.

LongRunFaultKind = Literal[
    "bearing_wear",
    "cooling_degradation",
    "slow_leak",
    "overheating",
    "pressure_leak",
    "stuck_sensor",
    "spikes",
    "dropout",
]
#: faults that develop over days (the ones predictive maintenance is for)
SLOW_FAULTS: tuple[LongRunFaultKind, ...] = ("bearing_wear", "cooling_degradation", "slow_leak")
#: faults that appear within seconds
ABRUPT_FAULTS: tuple[LongRunFaultKind, ...] = ("overheating", "pressure_leak", "stuck_sensor", "spikes")
LONG_RUN_FAULTS: tuple[LongRunFaultKind, ...] = (*SLOW_FAULTS, *ABRUPT_FAULTS, "dropout")
LONG_RUN_METRIC: dict[LongRunFaultKind, str] = {
    "bearing_wear": "vibration_mm_s",
    "cooling_degradation": "temperature_c",
    "slow_leak": "pressure_psi",
    "overheating": "temperature_c",
    "pressure_leak": "pressure_psi",
    "stuck_sensor": "temperature_c",
    "spikes": "vibration_mm_s",
    "dropout": "",
}
CHANNELS: tuple[str, str, str] = ("temperature_c", "vibration_mm_s", "pressure_psi")
Schedule = Literal["three_shift", "two_shift", "one_shift", "cycling"]
SCHEDULES: tuple[Schedule, ...] = ("three_shift", "two_shift", "one_shift", "cycling")
#: a Monday, 00:00 UTC: runs start at the beginning of a working week
LONG_RUN_EPOCH_MS = 1_767_571_200_000  # 2026-01-05T00:00:00Z
_HOUR_S = 3600.0
_THERMAL_TAU_S = 1200.0  # a machine's casing follows its heat with about 20 minutes' lag
_HYDRAULIC_TAU_S = 20.0  # pressure follows the pump within seconds
_LOAD_TAU_S = 300.0  # production load changes over minutes
_OFF_PRESSURE = 2.0  # static head of a stopped pump, psi
_SETTLE_TRUTH_S = 300.0  # after a start, the signals have settled within five minutes


@dataclass(frozen=True, slots=True)
class LongRunFault:
    """One injected fault with its ground truth (epoch ms).

    ``limit_ms`` is the first reading at which the fault's metric is past its static
    limit while the machine runs (None if that does not happen within the run): the
    time a limit-only monitor would alarm, against which a slow fault's lead time is
    measured. ``end_ms`` is when the fault's effect ends (dropout) or the run's end.
    ``ramp_s`` is the time to full severity: running time for a slow fault (it grows
    while the machine runs), unless the run was made with ``fault_clock="wall"``.
    ``visible_ms`` is the first reading the device sends that differs from what the
    healthy machine would have sent (None: no reading shows it): an abrupt fault
    cannot be seen earlier by anyone. At one reading every 10 minutes an overheating
    shows one interval after it starts, a stuck sensor at the first reading that repeats
    the frozen value, and intermittent spikes at the first reading that catches one.
    """

    device_id: str
    kind: LongRunFaultKind
    start_ms: int
    ramp_s: float
    end_ms: int
    limit_ms: int | None
    visible_ms: int | None = None

    @property
    def metric(self) -> str:
        return LONG_RUN_METRIC[self.kind]

    @property
    def slow(self) -> bool:
        return self.kind in SLOW_FAULTS


@dataclass
class LongRunDevice:
    """One device's readings over the run (gaps are absent readings) and its ground truth."""

    device_id: str
    machine_type: MachineType
    line: str
    schedule: Schedule
    ts: npt.NDArray[np.int64]  # (n,) epoch ms
    values: npt.NDArray[np.float64]  # (n, 3) in CHANNELS order
    running: npt.NDArray[np.bool_]  # (n,) the machine runs (ground truth)
    fault: LongRunFault | None = None


@dataclass
class LongRun:
    """A generated run: devices, the grid it was sampled on, and the faults."""

    start_ms: int
    days: float
    interval_s: float
    devices: list[LongRunDevice]

    @property
    def faults(self) -> list[LongRunFault]:
        return [d.fault for d in self.devices if d.fault is not None]

    @property
    def end_ms(self) -> int:
        return self.start_ms + int(self.days * DAY_S * 1000)

    def chunks(self, hours: float = 1.0) -> Iterator[list[tuple[int, slice]]]:
        """Consecutive windows of ``hours``: per window, each device's index and its slice of readings."""
        step = int(hours * _HOUR_S * 1000)
        bounds = [np.searchsorted(d.ts, np.arange(self.start_ms, self.end_ms + step, step)) for d in self.devices]
        for w in range(len(bounds[0]) - 1):
            yield [(i, slice(int(b[w]), int(b[w + 1]))) for i, b in enumerate(bounds) if b[w + 1] > b[w]]


@dataclass(frozen=True, slots=True)
class Phenomena:
    """What one device does beyond the base model (all off: the base model)."""

    #: the pressure follows the load (a pump's speed) instead of a controller's setpoint
    load_following: bool = False
    #: large setpoint steps within shifts (tens of psi), beside the base model's small ones
    large_steps: bool = False
    #: the vibration steps with each new order instead of following the lagged load
    vibration_steps: bool = False
    #: at a stop the rotor coasts down: vibration decays over tens of seconds, pressure faster
    coast_down: bool = False
    #: a healthy machine stopped for days comes back at a new level (the run's truth: healthy)
    new_level_after_stop: bool = False
    #: a variable-speed drive: the speed follows the demand and the pressure setpoint, the
    #: head goes with the speed squared and the vibration with the speed (affinity laws)
    speed_driven: bool = False
    #: the casing's thermal time constant, s (the base model's 20 minutes; a large motor's
    #: is an hour, a small pump's ten minutes)
    thermal_tau_s: float = _THERMAL_TAU_S
    #: a hot afternoon: the site's air this much warmer (C) at the peak of the run's third day
    hot_day_c: float = 0.0
    #: an ageing sensor: its noise this many times the new one's by the end of the run
    noise_growth: float = 1.0
    #: the temperature sensor's calibration drifts by this much a day (C): not the machine
    calibration_drift_c_per_day: float = 0.0
    #: a machine with this many fixed speeds (a pole-changing motor: 0 = none), the order
    #: choosing the speed; the head goes with the speed squared, the vibration with the speed
    speeds: int = 0
    #: the sensors' resolution (temperature C, vibration mm/s, pressure psi; 0: the base
    #: model's mK, 0.1 um/s and 0.01 psi): a legacy transmitter scaled to whole units by the PLC
    quantum: tuple[float, float, float] = (0.0, 0.0, 0.0)
    #: process upsets of the machine's line (start s, length s, how much of the head is lost):
    #: the supply header falls, every running machine on the line loses head and cavitates
    upsets: tuple[tuple[float, float, float], ...] = ()

    @classmethod
    def draw(cls, rng: np.random.Generator, healthy: bool) -> Phenomena:
        """Each device's share: half follow the load, a third get large steps, every one
        coasts down and steps its vibration, one healthy machine in ten comes back anew."""
        follows = bool(rng.random() < 0.5)
        return cls(
            load_following=follows,
            large_steps=not follows and bool(rng.random() < 0.67),
            vibration_steps=True,
            coast_down=True,
            new_level_after_stop=healthy and bool(rng.random() < 0.1),
        )

    @classmethod
    def draw_speed(cls, rng: np.random.Generator, healthy: bool) -> Phenomena:
        """The speed-driven plant: every machine on a drive, with large setpoint steps, a
        coast-down at each stop; one healthy machine in ten comes back anew."""
        return cls(
            large_steps=True,
            coast_down=True,
            new_level_after_stop=healthy and bool(rng.random() < 0.1),
            speed_driven=True,
        )

    @classmethod
    def draw_heldout(cls, rng: np.random.Generator, healthy: bool) -> Phenomena:
        """A plant the detector was not tuned on: every casing has its own thermal time
        constant (10 minutes to an hour), the third day is hot (8 C more at its peak), sensors
        age (noise up to three times the new one's by the week's end), one temperature sensor
        in three drifts out of calibration (0.2-0.5 C a day, either way), and two machines in
        three run at two or three fixed speeds; vibration steps with each order and every
        stop coasts down."""
        return cls(
            vibration_steps=True,
            coast_down=True,
            thermal_tau_s=float(rng.uniform(600.0, 3600.0)),
            hot_day_c=8.0,
            noise_growth=float(rng.uniform(1.0, 3.0)),
            calibration_drift_c_per_day=(
                float(rng.choice([-1.0, 1.0]) * rng.uniform(0.2, 0.5)) if rng.random() < 1 / 3 else 0.0
            ),
            speeds=int(rng.choice([0, 2, 3])),
        )

    @classmethod
    def draw_legacy(cls, upsets: tuple[tuple[float, float, float], ...]) -> Phenomena:
        """An older plant: whole-unit transmitters (1 C, 0.1 mm/s, 1 psi) and its line's process
        upsets; otherwise the base model."""
        return cls(quantum=(1.0, 0.1, 1.0), upsets=upsets)


#: which plant a long run simulates: the base model, the base model with another plant's
#: phenomena (:meth:`Phenomena.draw`), a plant of variable-speed drives
#: (:meth:`Phenomena.draw_speed`), or a plant held out from the detector's development
#: (:meth:`Phenomena.draw_heldout`)
Plant = Literal["base", "extended", "speed", "heldout", "legacy"]
#: what a slow fault's ramp is counted in: the machine's running time (wear, fouling and a
#: seal's leak grow as the machine runs) or the clock (as the simulator did before 2026-12-07)
FaultClock = Literal["running", "wall"]
FAULT_CLOCKS: tuple[FaultClock, ...] = ("running", "wall")
PLANTS: tuple[Plant, ...] = ("base", "extended", "speed", "heldout", "legacy")
_DRIVE_TAU_S = 10.0  # a drive ramps to a new speed within seconds


_COAST_VIB_TAU_S = 20.0  # a rotor's run-down: tens of seconds
_COAST_PRES_TAU_S = 4.0  # the head collapses as soon as the impeller slows
_LONG_STOP_S = (2.5 * DAY_S, 4.5 * DAY_S)  # a stop of two days (a repair, a holiday)
_HOT_PEAK_S = 2 * DAY_S + 15 * _HOUR_S  # the held-out plant's hot afternoon: Wednesday, 15:00


def long_run(
    devices: int = 100,
    days: float = 7.0,
    interval_s: float = 10.0,
    seed: int = 0,
    faulty_fraction: float = 0.42,
    start_ms: int = LONG_RUN_EPOCH_MS,
    phenomena: bool = False,
    plant: Plant | None = None,
    fault_clock: FaultClock = "running",
) -> LongRun:
    """Generate a run offline (no MQTT): the same arguments give the same readings.

    Devices cycle through the machine types and schedules; a ``faulty_fraction`` of them
    (spread through the fleet) get one fault each, the kinds in turn, slow ones most.
    ``phenomena`` adds another plant's behaviour (:class:`Phenomena`), drawn from a stream
    of its own: the base model's readings are the same with or without it. ``plant``
    names the plant instead (``"extended"`` is ``phenomena``; ``"speed"`` a plant of
    variable-speed drives, also from that stream). ``fault_clock`` is what a slow fault's
    ramp counts: the machine's running time (``"running"``: wear, fouling and a seal's leak
    grow as it runs) or the clock (``"wall"``: also while stopped, as before 2026-12-07;
    abrupt faults are events and the same under both).
    """
    plant = plant or ("extended" if phenomena else "base")
    rng = np.random.default_rng(seed)
    n_t = int(days * DAY_S / interval_s)
    t_s = np.arange(n_t, dtype=np.float64) * float(interval_s)
    types: tuple[MachineType, ...] = ("pump", "motor", "compressor")
    kinds = _fault_plan(devices, faulty_fraction)
    site_ambient = [_ambient(t_s, start_ms, rng) for _ in range(2)]
    # the legacy plant's process upsets, per line, from a stream of their own
    upsets = [_line_upsets(np.random.default_rng([seed, line, 2]), t_s) for line in range(4)]
    out: list[LongRunDevice] = []
    for i in range(devices):
        machine_type = types[i % 3]
        schedule = "cycling" if machine_type == "compressor" and i % 2 else SCHEDULES[(i // 3) % 3]
        dev_rng = np.random.default_rng(rng.integers(2**63))
        running = _schedule(schedule, t_s, start_ms, dev_rng)
        kind = kinds[i]
        extra_rng = np.random.default_rng([seed, i, 1])
        extra = _draw(plant, extra_rng, kind is None) if plant != "legacy" else Phenomena.draw_legacy(upsets[i % 4])
        if extra.new_level_after_stop and days * DAY_S > _LONG_STOP_S[1] + DAY_S:
            running = running & ~((t_s >= _LONG_STOP_S[0]) & (t_s < _LONG_STOP_S[1]))
        fault = _pick_fault(kind, t_s, running, dev_rng) if kind is not None else None
        if fault is not None and fault.kind in SLOW_FAULTS and fault_clock == "running":
            fault = replace(fault, with_running=True)
        values, healthy = _signals(machine_type, t_s, running, site_ambient[i % 2], fault, dev_rng, extra, extra_rng)
        keep = _gaps(t_s, dev_rng, fault)
        device_id = f"{machine_type}-{i:04d}"
        ts = start_ms + (t_s * 1000).astype(np.int64)
        lr_fault = None
        if kind is not None and fault is not None:
            lr_fault = _ground_truth(device_id, kind, fault, ts, values, running, keep, start_ms, days, healthy)
        out.append(
            LongRunDevice(
                device_id=device_id,
                machine_type=machine_type,
                line=f"line-{1 + i % 4}",
                schedule=schedule,
                ts=ts[keep],
                values=values[keep],
                running=running[keep],
                fault=lr_fault,
            )
        )
    return LongRun(start_ms, days, interval_s, out)


def _draw(plant: Plant, rng: np.random.Generator, healthy: bool) -> Phenomena:
    if plant == "extended":
        return Phenomena.draw(rng, healthy)
    if plant == "speed":
        return Phenomena.draw_speed(rng, healthy)
    if plant == "heldout":
        return Phenomena.draw_heldout(rng, healthy)
    return Phenomena()


def _line_upsets(rng: np.random.Generator, t_s: npt.NDArray[np.float64]) -> tuple[tuple[float, float, float], ...]:
    """Two process upsets of a line in the run, on working days by day: each 20-60 minutes,
    the supply header losing a fifth to a third of its head."""
    days = int(t_s[-1] // DAY_S) if len(t_s) else 0
    working = [d for d in range(days) if d % 7 < 5] or [0]
    out = []
    for day in sorted(rng.choice(working, size=2, replace=len(working) < 2).tolist()):
        at = day * DAY_S + rng.uniform(8.0, 20.0) * _HOUR_S
        out.append((float(at), float(rng.uniform(1200.0, 3600.0)), float(rng.uniform(0.2, 1 / 3))))
    return tuple(out)


def _fault_plan(devices: int, fraction: float) -> list[LongRunFaultKind | None]:
    """Which device gets which fault: slow kinds twice as often as each abrupt one."""
    plan: list[LongRunFaultKind] = []
    cycle: tuple[LongRunFaultKind, ...] = (*SLOW_FAULTS, *SLOW_FAULTS, *ABRUPT_FAULTS, "dropout")
    n_faulty = round(devices * fraction)
    plan = [cycle[j % len(cycle)] for j in range(n_faulty)]
    kinds: list[LongRunFaultKind | None] = [None] * devices
    if n_faulty:
        # spread over the fleet (so over types and schedules); device 0 stays healthy
        slots = np.linspace(1, devices - 1, n_faulty).round().astype(int)
        for slot, kind in zip(slots.tolist(), plan, strict=True):
            kinds[slot] = kind
    return kinds


def _ambient(t_s: npt.NDArray[np.float64], start_ms: int, rng: np.random.Generator) -> npt.NDArray[np.float64]:
    """A site's air temperature: a daily cycle (coolest before dawn) and day-to-day weather."""
    hour = (start_ms / 1000 + t_s) % DAY_S / _HOUR_S
    days = int(np.ceil(t_s[-1] / DAY_S)) + 2 if len(t_s) else 2
    weather = np.cumsum(rng.normal(0.0, 1.2, days))
    level = np.interp(t_s / DAY_S, np.arange(days), weather)
    return np.asarray(20.0 + level + 4.0 * np.sin(2 * np.pi * (hour - 9.0) / 24.0), dtype=np.float64)


def _schedule(
    schedule: Schedule, t_s: npt.NDArray[np.float64], start_ms: int, rng: np.random.Generator
) -> npt.NDArray[np.bool_]:
    """When the machine runs: shifts on working days, jittered starts and stops, short stops."""
    abs_s = start_ms / 1000 + t_s
    day = ((abs_s // DAY_S) + 3) % 7  # 0 = Monday (1970-01-01 was a Thursday)
    hour = abs_s % DAY_S / _HOUR_S
    n_days = int(np.ceil(t_s[-1] / DAY_S)) + 1 if len(t_s) else 1
    jitter_on, jitter_off = rng.normal(0, 0.2, n_days), rng.normal(0, 0.2, n_days)
    k = (t_s // DAY_S).astype(int)
    on_h, off_h = {"three_shift": (6.0, 30.0), "two_shift": (6.0, 22.0), "one_shift": (7.0, 15.5)}.get(
        schedule, (6.0, 22.0)
    )
    on_h, off_h = on_h + jitter_on[k], off_h + jitter_off[k]
    if schedule == "three_shift":  # Monday 06:00 to Saturday 06:00 without a stop
        week_h = day * 24.0 + hour
        running = (week_h >= on_h) & (week_h < 5 * 24.0 + 6.0)
    else:
        running = (day < 5) & (hour >= on_h) & (hour < off_h)
        if schedule == "two_shift" and rng.random() < 0.5:  # some lines work Saturday morning
            running |= (day == 5) & (hour >= 6.0) & (hour < 12.0)
    if schedule == "cycling":  # a compressor loads and unloads on its receiver pressure
        period = rng.uniform(1200.0, 2400.0)
        duty = rng.uniform(0.55, 0.8)
        running &= ((t_s + rng.uniform(0, period)) % period) < duty * period
    for _ in range(int(rng.integers(0, 3))):  # an unplanned stop of 10-60 minutes
        at = rng.uniform(0, t_s[-1]) if len(t_s) else 0.0
        running &= ~((t_s >= at) & (t_s < at + rng.uniform(600, 3600)))
    return np.asarray(running, dtype=np.bool_)


@dataclass(frozen=True, slots=True)
class _Injected:
    kind: LongRunFaultKind
    start_s: float
    ramp_s: float
    end_s: float
    #: the fault grows while the machine runs (its ramp is running time), not by the clock
    with_running: bool = False


def _pick_fault(
    kind: LongRunFaultKind, t_s: npt.NDArray[np.float64], running: npt.NDArray[np.bool_], rng: np.random.Generator
) -> _Injected:
    """When the fault starts: slow ones early in the week, abrupt ones while the machine runs."""
    end = float(t_s[-1])
    if kind in SLOW_FAULTS:
        start = rng.uniform(0.6, 1.6) * DAY_S
        return _Injected(kind, start, rng.uniform(1.5, 2.5) * DAY_S, end)
    candidates = t_s[running & (t_s > 1.5 * DAY_S) & (t_s < end - 0.5 * DAY_S)]
    start = float(rng.choice(candidates)) if candidates.size else 2.0 * DAY_S
    if kind == "dropout":
        return _Injected(kind, start, 0.0, start + rng.uniform(1800, 7200))
    return _Injected(kind, start, 20.0, end)


def _lag(u: npt.NDArray[np.float64], dt: float, tau: float) -> npt.NDArray[np.float64]:
    """First-order lag of ``u`` (time constant ``tau``), exact for a piecewise constant input."""
    a = float(np.exp(-dt / tau))
    # y[n] = a y[n-1] + (1-a) u[n]: a cumulative sum of scaled inputs, in blocks so the
    # powers of a stay in range
    y = np.empty_like(u)
    prev = float(u[0]) if len(u) else 0.0
    block = max(1, int(600.0 * tau / dt))  # a**block ~ 1e-261: no underflow, no overflow of 1/p
    for s in range(0, len(u), block):
        seg = u[s : s + block]
        p = a ** np.arange(1, len(seg) + 1)
        y[s : s + block] = p * prev + (1 - a) * p * np.cumsum(seg / p)
        prev = float(y[s + len(seg) - 1])
    return y


def _signals(
    machine_type: MachineType,
    t_s: npt.NDArray[np.float64],
    running: npt.NDArray[np.bool_],
    ambient: npt.NDArray[np.float64],
    fault: _Injected | None,
    rng: np.random.Generator,
    extra: Phenomena | None = None,
    extra_rng: np.random.Generator | None = None,
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """The readings, and what the machine would have sent without the abrupt fault's
    effect on the signals (the same as the readings for every other kind)."""
    extra = extra or Phenomena()
    temp0, vib0, pres0 = LEVELS[machine_type]
    n = len(t_s)
    dt = float(t_s[1] - t_s[0]) if n > 1 else 1.0
    run = running.astype(np.float64)
    order, load, setpoint, speed = _demand(t_s, dt, pres0, rng, extra, extra_rng or np.random.default_rng(0))
    k = _severity(fault, t_s, running)
    kind = fault.kind if fault is not None else None
    # the heat follows the power: the load, or on a drive its speed (the setpoint's too)
    driven = extra.speed_driven or extra.speeds > 0
    duty = np.clip(0.6 + (speed - 1.0), 0.3, 1.0) if driven else load
    heat = run * (temp0 - 22.0) * (0.55 + 0.6 * duty)
    if kind == "cooling_degradation":  # the cooler fouls: the same heat, less taken away
        heat = heat + run * 30.0 * k * (0.55 + 0.6 * duty)
    if kind == "bearing_wear":  # friction heat follows the wear
        heat = heat + run * 8.0 * k
    air = ambient + extra.hot_day_c * np.exp(-0.5 * ((t_s - _HOT_PEAK_S) / (3 * _HOUR_S)) ** 2)
    temp = _lag(air + heat, dt, extra.thermal_tau_s) + 0.3 * rng.normal(size=n)
    # velocity RMS: load-dependent while running, a start transient, the floor when stopped
    started = np.concatenate(([0.0], np.diff(run) > 0)).astype(bool)
    since_start = t_s - np.maximum.accumulate(np.where(started, t_s, -1e9))
    transient = 1.0 + 0.4 * np.exp(-since_start / 30.0)
    vib_run = vib0 * (0.8 + 0.3 * load) * transient + 0.06 * rng.normal(size=n)
    if driven:  # the velocity goes with the speed (unbalance above resonance)
        vib_run = vib_run + vib0 * (0.2 + 0.8 * speed - (0.8 + 0.3 * load)) * transient
    # the vibration follows each new order at once (no thermal lag); back from a repair or a
    # long stop, a machine may run about 20 % higher
    vib_run = vib_run + float(extra.vibration_steps) * vib0 * 0.3 * (order - load)
    vib_run = vib_run * np.where(extra.new_level_after_stop & (t_s >= _LONG_STOP_S[1]), 1.2, 1.0)
    floor = 0.05 + 0.03 * np.abs(rng.normal(size=n))
    vib = np.where(running, vib_run, floor)
    if kind == "bearing_wear":
        vib = vib + run * 5.0 * k
    running_target = setpoint + 4.0 * (load - 0.6)
    if extra.load_following:  # the head follows the speed: no controller holds it
        running_target = setpoint * (0.6 + 0.5 * load)
    if driven:
        running_target = pres0 * speed**2
    target = np.where(running, running_target, _OFF_PRESSURE)
    if kind == "slow_leak":
        target = target - run * 0.8 * setpoint * k
    pres = _lag(target, dt, _HYDRAULIC_TAU_S) + np.where(running, 0.8, 0.3) * rng.normal(size=n)
    if extra.upsets:  # the line's supply falls: every running machine loses head and cavitates
        lost = np.zeros(n)
        for at, length, share in extra.upsets:
            lost = np.where((t_s >= at) & (t_s < at + length), share, lost)
        lost = _lag(lost, dt, 60.0) * run
        pres = pres * (1.0 - lost)
        vib = vib * (1.0 + 0.75 * lost)
    if extra.coast_down:
        vib, pres = _coast_down(t_s, running, vib, pres, floor)
    values = np.stack([temp, vib, pres], axis=1)
    _sensors(values, t_s, running, extra, extra_rng or np.random.default_rng(0))
    healthy = _rounded(values, extra.quantum)
    if fault is not None:
        _abrupt(fault, values, t_s, running, setpoint, k, rng)
    return _rounded(values, extra.quantum), healthy


def _sensors(
    values: npt.NDArray[np.float64],
    t_s: npt.NDArray[np.float64],
    running: npt.NDArray[np.bool_],
    extra: Phenomena,
    xr: np.random.Generator,
) -> None:
    """What the sensors add (in place): a temperature sensor's calibration drift, and the
    noise of ageing sensors growing over the run (temperature; vibration while running)."""
    if extra.calibration_drift_c_per_day:
        values[:, 0] += extra.calibration_drift_c_per_day * t_s / DAY_S
    if extra.noise_growth > 1.0 and len(t_s):
        # extra noise so that the total's spread grows linearly to noise_growth x the new one's
        g = 1.0 + (extra.noise_growth - 1.0) * t_s / max(float(t_s[-1]), 1.0)
        more = np.sqrt(g**2 - 1.0)
        values[:, 0] += 0.3 * more * xr.normal(size=len(t_s))
        values[:, 1] += np.where(running, 0.06 * more * xr.normal(size=len(t_s)), 0.0)


def _rounded(
    values: npt.NDArray[np.float64], quantum: tuple[float, float, float] = (0.0, 0.0, 0.0)
) -> npt.NDArray[np.float64]:
    """As a device sends them: mK, 0.1 um/s and 0.01 psi, or in steps of ``quantum``."""
    out = np.stack([values[:, 0].round(3), values[:, 1].round(4), values[:, 2].round(2)], axis=1)
    for j, q in enumerate(quantum):
        if q > 0.0:
            out[:, j] = (np.round(values[:, j] / q) * q).round(4)
    return out


class _Demand(NamedTuple):
    """What production asks of a machine over the run."""

    order: npt.NDArray[np.float64]  # the current order's load (steps)
    load: npt.NDArray[np.float64]  # the load, reached over minutes, with some wander
    setpoint: npt.NDArray[np.float64]  # the pressure setpoint
    speed: npt.NDArray[np.float64]  # a drive's speed, relative to the one that makes pres0


def _demand(
    t_s: npt.NDArray[np.float64],
    dt: float,
    pres0: float,
    rng: np.random.Generator,
    extra: Phenomena,
    xr: np.random.Generator,
) -> _Demand:
    n = len(t_s)
    # production load: a new order every 1-4 hours, reached over minutes, with some wander
    changes = np.cumsum(rng.uniform(_HOUR_S, 4 * _HOUR_S, int(t_s[-1] / _HOUR_S) + 2))
    order = rng.uniform(0.45, 1.0, len(changes) + 1)[np.searchsorted(changes, t_s)]
    load = _lag(order, dt, _LOAD_TAU_S) + 0.03 * np.sin(2 * np.pi * t_s / 2700.0 + rng.uniform(0, 6.3))
    # pressure setpoint: the level, and two to four steps in the run
    setpoint = np.full(n, pres0)
    for at in np.sort(rng.uniform(0, t_s[-1], int(rng.integers(2, 5)))):
        setpoint[t_s >= at] = pres0 + rng.uniform(-12.0, 12.0)
    if extra.large_steps:
        # a drive's setpoints stay where its speed range reaches them
        _large_steps(setpoint, t_s, pres0, xr, (55.0, 125.0) if extra.speed_driven else (40.0, 135.0))
    if extra.speeds:  # fixed speeds, the slowest at three quarters of the top one
        levels = np.linspace(0.75, 1.0, extra.speeds)
        step = np.clip(np.rint((order - 0.45) / 0.55 * (extra.speeds - 1)), 0, extra.speeds - 1).astype(int)
        return _Demand(order, load, setpoint, _lag(levels[step], dt, _DRIVE_TAU_S))
    # the drive's speed relative to the one that makes pres0 (the affinity laws: head ~ speed^2)
    demand = 0.6 + 0.5 * _lag(order, dt, _DRIVE_TAU_S)
    return _Demand(order, load, setpoint, np.sqrt(setpoint * demand / pres0))


def _abrupt(
    fault: _Injected,
    values: npt.NDArray[np.float64],
    t_s: npt.NDArray[np.float64],
    running: npt.NDArray[np.bool_],
    setpoint: npt.NDArray[np.float64],
    k: npt.NDArray[np.float64],
    rng: np.random.Generator,
) -> None:
    """The faults that act on the signals themselves (in place: temperature, vibration, pressure)."""
    temp, vib, pres = values[:, 0], values[:, 1], values[:, 2]
    if fault.kind == "overheating":
        temp += 35.0 * k
    elif fault.kind == "pressure_leak":  # a seal lets go: most of the head is lost within seconds
        pres -= 0.8 * setpoint * k
    elif fault.kind == "spikes":
        burst = (k > 0) & running & (rng.random(len(t_s)) < 0.1)
        vib[:] = np.where(burst, vib * 4.0, vib)
    elif fault.kind == "stuck_sensor":
        at = int(np.searchsorted(t_s, fault.start_s))
        temp[at:] = round(float(temp[at]), 3)


def _large_steps(
    setpoint: npt.NDArray[np.float64],
    t_s: npt.NDArray[np.float64],
    pres0: float,
    rng: np.random.Generator,
    bounds: tuple[float, float] = (40.0, 135.0),
) -> None:
    """A new product: setpoint steps of tens of psi, several times a week (in place)."""
    for at in np.sort(rng.uniform(0, t_s[-1], int(rng.integers(4, 9)))):
        # within the limits a plant would run at (the static limits are 30 and 150 psi)
        setpoint[t_s >= at] = np.clip(pres0 + rng.choice([-1.0, 1.0]) * rng.uniform(15.0, 35.0), *bounds)


def _coast_down(
    t_s: npt.NDArray[np.float64],
    running: npt.NDArray[np.bool_],
    vib: npt.NDArray[np.float64],
    pres: npt.NDArray[np.float64],
    floor: npt.NDArray[np.float64],
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """After each stop the rotor runs down: the vibration decays over tens of seconds from
    its last running value, the head within seconds (so for a few readings the machine
    vibrates like a running one below its low pressure limit)."""
    n = len(t_s)
    stopped = np.concatenate(([False], running[:-1] & ~running[1:]))
    last_stop = np.maximum.accumulate(np.where(stopped, np.arange(n), 0))
    at_stop = np.maximum(last_stop - 1, 0)  # the last running reading: the stop came after it
    since = t_s - t_s[at_stop]
    step = float(t_s[1] - t_s[0]) if n > 1 else 0.0
    coasting = ~running & (last_stop > 0) & (since < 5 * _COAST_VIB_TAU_S + step)
    vib = np.where(coasting, floor + vib[at_stop] * np.exp(-since / _COAST_VIB_TAU_S), vib)
    head = _OFF_PRESSURE + (pres[at_stop] - _OFF_PRESSURE) * np.exp(-since / _COAST_PRES_TAU_S)
    return vib, np.where(coasting, np.minimum(pres, head), pres)


def _severity(
    fault: _Injected | None, t_s: npt.NDArray[np.float64], running: npt.NDArray[np.bool_]
) -> npt.NDArray[np.float64]:
    """How far the fault has gone (0 to 1): by the clock, or by the machine's running time
    since its start (wear, fouling and a seal's leak grow with running, not while stopped)."""
    if fault is None:
        return np.zeros(len(t_s))
    if fault.ramp_s <= 0:
        return np.where(t_s >= fault.start_s, 1.0, 0.0)
    if fault.with_running and len(t_s) > 1:
        dt = float(t_s[1] - t_s[0])
        ran = np.cumsum(np.where(running & (t_s >= fault.start_s), dt, 0.0))
        return np.clip(ran / fault.ramp_s, 0.0, 1.0)
    return np.clip((t_s - fault.start_s) / fault.ramp_s, 0.0, 1.0)


def _gaps(t_s: npt.NDArray[np.float64], rng: np.random.Generator, fault: _Injected | None) -> npt.NDArray[np.bool_]:
    """Which readings arrive: device restarts (a minute or two), network gaps (minutes to hours)."""
    keep = np.ones(len(t_s), dtype=bool)
    end = float(t_s[-1]) if len(t_s) else 0.0
    spans = [(rng.uniform(0, end), rng.uniform(30, 120)) for _ in range(int(rng.integers(1, 4)))]
    spans += [(rng.uniform(0, end), rng.uniform(300, 3 * _HOUR_S)) for _ in range(int(rng.integers(0, 3)))]
    if fault is not None and fault.kind == "dropout":
        spans.append((fault.start_s, fault.end_s - fault.start_s))
    for at, length in spans:
        keep &= ~((t_s >= at) & (t_s < at + length))
    return keep


def _ground_truth(
    device_id: str,
    kind: LongRunFaultKind,
    fault: _Injected,
    ts: npt.NDArray[np.int64],
    values: npt.NDArray[np.float64],
    running: npt.NDArray[np.bool_],
    keep: npt.NDArray[np.bool_],
    start_ms: int,
    days: float,
    healthy: npt.NDArray[np.float64] | None = None,
) -> LongRunFault:
    metric = LONG_RUN_METRIC[kind]
    after_start = ts >= start_ms + int(fault.start_s * 1000)
    if healthy is not None and kind in ABRUPT_FAULTS:
        # the first reading sent that differs from the healthy machine's (its fault's metric)
        j = CHANNELS.index(metric)
        shows = after_start & keep & (values[:, j] != healthy[:, j])
    else:  # a slow fault or a dropout: from the first reading sent at or after its start
        shows = after_start & keep
    first = np.flatnonzero(shows)
    visible_ms = int(ts[first[0]]) if first.size else None
    limit_ms = None
    if metric:
        j = CHANNELS.index(metric)
        lim = DEFAULT_LIMITS_LONG_RUN[metric]
        x, after = values[:, j], ts >= start_ms + int(fault.start_s * 1000)
        # a limit-only monitor alarms here; a start's transient (pressure still building)
        # is not the fault reaching the limit
        t_s = (ts - ts[0]) / 1000.0
        started = np.concatenate(([True], running[1:] & ~running[:-1]))
        settled = t_s - np.maximum.accumulate(np.where(started, t_s, -np.inf)) >= _SETTLE_TRUTH_S
        past = ((x > lim[1]) | (x < lim[0])) & running & settled & keep & after
        hits = np.flatnonzero(past)
        limit_ms = int(ts[hits[0]]) if hits.size else None
    return LongRunFault(
        device_id=device_id,
        kind=kind,
        start_ms=start_ms + int(fault.start_s * 1000),
        ramp_s=fault.ramp_s,
        end_ms=start_ms + int(fault.end_s * 1000),
        limit_ms=limit_ms,
        visible_ms=visible_ms,
    )


#: the static limits of the original requirements (low, high) by metric, as the detector ships them
DEFAULT_LIMITS_LONG_RUN: dict[str, tuple[float, float]] = {
    "temperature_c": (10.0, 80.0),
    "vibration_mm_s": (-np.inf, 5.0),
    "pressure_psi": (30.0, 150.0),
}

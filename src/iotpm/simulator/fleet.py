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
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np

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
        noise = self.rng.normal(size=3)
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
                "temperature_c": round(temp, 3),
                "vibration_mm_s": round(vib, 4),
                "pressure_psi": round(pres, 2),
            },
        }


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

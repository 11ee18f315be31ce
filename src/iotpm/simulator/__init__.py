"""The device fleet simulator: realistic machine signals, injected faults, MQTT publishing."""

from iotpm.simulator.fleet import FAULTS, Fault, Fleet, Machine

__all__ = ["FAULTS", "Fault", "Fleet", "Machine"]

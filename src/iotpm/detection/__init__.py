"""The detection core: numpy (and its own C kernel, through ctypes), no I/O, no clock.

Public streaming API (the evaluation adapter calls exactly this)::

    det = DeviceDetector(channels=["temperature_c", "vibration_mm_s"], config=DetectorConfig())
    det.fit(timestamps, values)          # optional label-free warm-up block
    r = det.update(timestamps, values)   # any chunk size; streaming-causal
    r.score, r.is_anomaly, r.events, det.state, DeviceDetector.from_state(state)
"""

from iotpm.detection._layout import CHANNEL_DETECTORS, DEVICE_DETECTORS
from iotpm.detection.config import (
    DEFAULT_LIMITS,
    ISO_10816_3_ZONES,
    AlarmConfig,
    DetectorConfig,
    IsoMachineClass,
    Limits,
    OperatingConfig,
    OperatingPointConfig,
    ThresholdConfig,
)
from iotpm.detection.detector import (
    AlarmEvent,
    DetectionResult,
    DeviceDetector,
    DeviceInput,
    FleetDetector,
    Prediction,
    Reason,
)
from iotpm.detection.state import STATE_VERSION, DeviceState

__all__ = [
    "CHANNEL_DETECTORS",
    "DEFAULT_LIMITS",
    "DEVICE_DETECTORS",
    "ISO_10816_3_ZONES",
    "STATE_VERSION",
    "AlarmConfig",
    "AlarmEvent",
    "DetectionResult",
    "DetectorConfig",
    "DeviceDetector",
    "DeviceInput",
    "DeviceState",
    "FleetDetector",
    "IsoMachineClass",
    "Limits",
    "OperatingConfig",
    "OperatingPointConfig",
    "Prediction",
    "Reason",
    "ThresholdConfig",
]

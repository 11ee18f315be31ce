"""The processing service: decode, validate, detect, and write through ports."""

from iotpm.service.errors import ConflictError, StoreError
from iotpm.service.processor import BatchOutcome, Counts, Processor, ProcessorSettings, RawRecord

__all__ = ["BatchOutcome", "ConflictError", "Counts", "Processor", "ProcessorSettings", "RawRecord", "StoreError"]

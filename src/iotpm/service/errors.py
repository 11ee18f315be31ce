"""The errors ports raise. Adapters turn AWS errors into these; the service decides."""

from __future__ import annotations


class StoreError(Exception):
    """A write or read that did not happen. The batch item is retried, never dropped."""

    def __init__(self, message: str, *, retryable: bool = True, code: str = "") -> None:
        super().__init__(message)
        self.retryable = retryable
        self.code = code


class ConflictError(StoreError):
    """An optimistic-concurrency check failed: someone else wrote the item first."""

"""Turning botocore errors into the service's own :class:`StoreError`."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from botocore.exceptions import BotoCoreError, ClientError

from iotpm.service.errors import ConflictError, StoreError

_CONFLICT = {"ConditionalCheckFailedException", "TransactionConflictException"}


def translate(exc: Exception, what: str) -> StoreError:
    """A :class:`StoreError` (or :class:`ConflictError`) describing a failed AWS call."""
    if isinstance(exc, ClientError):
        code = str(exc.response.get("Error", {}).get("Code", ""))
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
        message = f"{what}: {code} ({status}) {exc.response.get('Error', {}).get('Message', '')}".strip()
        if code in _CONFLICT:
            return ConflictError(message, code=code)
        return StoreError(message, code=code, retryable=status >= 500 or status == 429 or "Throttl" in code)
    return StoreError(f"{what}: {exc}", code=type(exc).__name__)


@contextmanager
def aws_call(what: str) -> Iterator[None]:
    """Run a boto3 call; botocore errors leave as :class:`StoreError`."""
    try:
        yield
    except (ClientError, BotoCoreError) as exc:
        raise translate(exc, what) from exc

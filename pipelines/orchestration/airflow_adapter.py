"""The one module of `pipelines` that imports Airflow.

Bad data and bad configuration do not get better on a retry: such errors fail the task at
once (AirflowFailException), while anything else (a locked warehouse, a busy server) is
retried as the task's `retries` allow.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TypeVar

from airflow.sdk.exceptions import AirflowFailException

from pipelines.errors import EmptyPartitionError, SettingsError, SourceFormatError, ValidationFailed

NOT_RETRYABLE = (ValidationFailed, SourceFormatError, EmptyPartitionError, SettingsError)
T = TypeVar("T")


def fail_fast_on_bad_data(function: Callable[..., T]) -> Callable[..., T]:
    """Decorate a task callable so that bad data or configuration fails it without retries."""

    @functools.wraps(function)
    def wrapper(*args, **kwargs) -> T:
        try:
            return function(*args, **kwargs)
        except NOT_RETRYABLE as exc:
            raise AirflowFailException(f"{type(exc).__name__}: {exc}") from exc

    return wrapper

"""Failure handling every step has (SPEC §12): `retry`, `timeout`, `on_error`."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Literal

from pydantic import Field, model_validator

from flows.definition.errors import fail
from flows.definition.fields import Duration, Model
from flows.durations import parse_duration

#: Tries a step may have at most (the first one included).
MAX_ATTEMPTS = 10
DEFAULT_BACKOFF = "1s"
DEFAULT_MAX_BACKOFF = "5m"


class RetryPolicy(Model):
    """``attempts`` counts every try (1–10); the waits between them start at ``backoff``
    and double up to ``max_backoff``. Only transient failures are retried."""

    attempts: Annotated[int, Field(ge=1, le=MAX_ATTEMPTS)] = 3
    backoff: Duration = DEFAULT_BACKOFF
    max_backoff: Duration = DEFAULT_MAX_BACKOFF

    @model_validator(mode="after")
    def _check(self) -> RetryPolicy:
        if self.backoff_delta > self.max_backoff_delta:
            fail([("backoff", f"must not be longer than max_backoff ({self.max_backoff})")])
        if self.max_backoff_delta > timedelta(days=1):
            fail([("max_backoff", "at most 1d")])
        return self

    @property
    def backoff_delta(self) -> timedelta:
        return parse_duration(self.backoff)

    @property
    def max_backoff_delta(self) -> timedelta:
        return parse_duration(self.max_backoff)

    def wait_before(self, attempt: int) -> timedelta:
        """The wait before try number `attempt` (2 is the first retry)."""
        factor = 2 ** max(0, attempt - 2)
        return min(self.backoff_delta * factor, self.max_backoff_delta)


OnError = Literal["fail", "continue"]

__all__ = ["MAX_ATTEMPTS", "OnError", "RetryPolicy"]

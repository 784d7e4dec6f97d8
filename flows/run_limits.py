"""What ends a run that would otherwise be claimed and repeated without end."""

from __future__ import annotations

__all__ = ["MAX_CRASHES", "crashed_repeatedly", "not_recorded"]

#: A run whose driver died more often than this (each time claimed again by the waker,
#: counted in the run's record) is failed instead of being driven once more.
MAX_CRASHES = 3


def crashed_repeatedly(crashes: int) -> str:
    return (
        f"the run crashed repeatedly (its driver stopped {crashes} times while running it), "
        "so it was stopped rather than repeating its steps"
    )


def not_recorded(reason: str) -> str:
    """The error of a step (or run) whose result the run store refused."""
    return f"the step's result could not be recorded: {reason}"

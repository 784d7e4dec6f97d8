"""Hand-written fakes: only for the clock and ids (everything else is real).

They live in `flows.testing.fakes` (shipped with flows, used by the unit layer too); this
module keeps the scenario tests' imports working."""

from __future__ import annotations

from flows.testing.fakes import FakeClock, SequentialIds

__all__ = ["FakeClock", "SequentialIds"]

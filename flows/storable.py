"""Values a step produces, made storable before they are recorded.

Step outputs and variables come from templates and from other people's APIs; the run
record keeps them (MongoDB: BSON). What BSON cannot hold is turned into what it can, the
same way in the run being driven and in the record, so a resumed run sees what an
uninterrupted one saw:

- integers beyond 64 bits (``{{ 2**64 }}``, ``{"id": 18446744073709551616}``) are kept
  as their decimal text;
- mapping keys become text (a NUL character in a key, which BSON cannot hold, becomes
  U+FFFD); tuples and sets become lists;
- anything else that is not plain data (dates and times are) becomes its text.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime
from typing import Any

__all__ = ["INT64_MAX", "INT64_MIN", "storable"]

INT64_MAX = 2**63 - 1
INT64_MIN = -(2**63)


def storable(value: Any) -> Any:
    """`value` with every part BSON stores as it is (see the module's rules)."""
    if value is None or isinstance(value, (bool, str, float, bytes, datetime, date)):
        return value
    if isinstance(value, int):
        return value if INT64_MIN <= value <= INT64_MAX else str(value)
    if isinstance(value, Mapping):
        return {str(k).replace("\x00", "\ufffd"): storable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [storable(v) for v in value]
    return str(value)

"""How a definition's problems are reported: located messages, raised together."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NoReturn

from pydantic_core import PydanticCustomError

from flows.definition.fields import IDENT


@dataclass(frozen=True)
class FieldError:
    """One problem in a definition. ``loc`` looks like ``steps[0].then[1].text``."""

    loc: str
    msg: str

    def __str__(self) -> str:
        return f"{self.loc}: {self.msg}" if self.loc else self.msg


class DefinitionError(Exception):
    """A definition is invalid; ``errors`` lists every problem found."""

    def __init__(self, errors: Sequence[FieldError]) -> None:
        self.errors: list[FieldError] = list(errors)
        super().__init__(str(self))

    def __str__(self) -> str:
        return "\n".join(str(error) for error in self.errors)


Loc = tuple[str | int, ...]
Err = tuple[Loc, str]


def render_loc(loc: Sequence[str | int]) -> str:
    """``("steps", 0, "then", 1, "text")`` → ``steps[0].then[1].text``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif IDENT.fullmatch(part):
            out += f".{part}" if out else part
        else:
            out += f"[{json.dumps(part, ensure_ascii=False)}]"
    return out


def fail(errors: Sequence[tuple[Loc | str, str]]) -> NoReturn:
    """Raise several located errors from inside a pydantic validator."""
    items = [((loc,) if isinstance(loc, str) else loc, msg) for loc, msg in errors]
    summary = "; ".join(f"{render_loc(loc)}: {msg}" if loc else msg for loc, msg in items)
    raise PydanticCustomError("flow_errors", "{summary}", {"summary": summary, "errors": items})

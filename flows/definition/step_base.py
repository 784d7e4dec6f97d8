"""What every step has: an id, a type and a name (`steps` and `ask_step` build on it)."""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, BeforeValidator, Field

from flows.definition.fields import Model, step_id, strip_or_none


class StepBase(Model):
    id: Annotated[str, AfterValidator(step_id)] = ""
    type: str
    name: Annotated[Annotated[str, Field(max_length=80)] | None, BeforeValidator(strip_or_none)] = (
        None
    )

"""The `ask` step (SPEC §13): collect information from people with a form, as Slack
Workflow Builder's forms do. Its fields are flow inputs (`flows.definition.inputs`): the
same types, widgets and coercion as the "Run flow" modal."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BeforeValidator, Field, model_validator

from flows.definition.errors import Loc, fail
from flows.definition.fields import Duration, approver, strip
from flows.definition.inputs import FlowInput
from flows.definition.step_base import StepBase
from flows.durations import parse_duration


def _one_or_many(value: Any) -> Any:
    """`to: "<#C0INC>"` is a list of one."""
    return [value] if isinstance(value, str) else value


def _fields(value: Any) -> Any:
    """A field's `options` are a flow input's `choices` (and make it a choice)."""
    if not isinstance(value, list):
        return value
    out = []
    for item in value:
        if isinstance(item, dict) and "options" in item and "choices" not in item:
            item = dict(item)
            item["choices"] = item.pop("options")
            item.setdefault("type", "choice")
        out.append(item)
    return out


class AskStep(StepBase):
    """Ask people (`to`: people, groups or channels) to fill in a form. Outputs
    ``answers`` (by field id, typed), ``responder``, ``outcome`` (``answered`` or
    ``expired``) and ``asked`` (the people asked)."""

    type: Literal["ask"] = "ask"
    to: Annotated[list[Annotated[str, AfterValidator(approver)]], BeforeValidator(_one_or_many)] = (
        Field(min_length=1)
    )
    title: Annotated[str, BeforeValidator(strip), Field(min_length=1, max_length=2000)]
    details: str | None = None
    fields: Annotated[list[FlowInput], BeforeValidator(_fields)] = Field(
        min_length=1, max_length=50
    )
    timeout: Duration | None = None
    reminder: Duration | None = None

    @model_validator(mode="after")
    def _check(self) -> AskStep:
        errors: list[tuple[Loc | str, str]] = []
        seen: set[str] = set()
        for index, spec in enumerate(self.fields):
            if spec.id in seen:
                errors.append((("fields", index, "id"), f"duplicate field id {spec.id!r}"))
            seen.add(spec.id)
        if self.timeout is not None and self.reminder is not None:
            if parse_duration(self.reminder) >= parse_duration(self.timeout):
                errors.append(("reminder", f"must be shorter than the timeout ({self.timeout})"))
        if errors:
            fail(errors)
        return self

    @property
    def timeout_delta(self) -> timedelta | None:
        return parse_duration(self.timeout) if self.timeout else None

    @property
    def reminder_delta(self) -> timedelta | None:
        return parse_duration(self.reminder) if self.reminder else None

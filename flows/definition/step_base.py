"""What every step has (`id`, `type`, `name`) and the shared message check; the step
models import it from here (`steps.py`, `slack_steps.py`)."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, Field

from flows.definition.errors import Loc, fail
from flows.definition.failure import OnError, RetryPolicy
from flows.definition.fields import Duration, Model, step_id, strip_or_none

_Problems = list[tuple[Loc | str, str]]


class StepBase(Model):
    id: Annotated[str, AfterValidator(step_id)] = ""
    type: str
    name: Annotated[Annotated[str, Field(max_length=80)] | None, BeforeValidator(strip_or_none)] = (
        None
    )
    # Failure handling (SPEC §12): tries, a time limit, and whether the run goes on.
    retry: RetryPolicy | None = None
    timeout: Duration | None = None
    on_error: OnError = "fail"


def check_text_or_blocks(text: str | None, blocks: list[dict[str, Any]] | None) -> None:
    errors: _Problems = []
    if not text and not blocks:
        errors.append(("text", "text or blocks is required"))
    for index, block in enumerate(blocks or []):
        if "type" not in block:
            errors.append((("blocks", index), "a block needs a type"))
    if blocks is not None and len(blocks) > 50:
        errors.append(("blocks", "at most 50 blocks"))
    if errors:
        fail(errors)

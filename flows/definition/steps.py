"""Steps: what a flow does, in order (messages, HTTP calls, approvals, conditions…)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, Field, model_validator

from flows.definition.ask_step import AskStep
from flows.definition.errors import Loc, fail
from flows.definition.fields import (
    Duration,
    Identifier,
    approver,
    channel_target,
    is_template,
    str_dict,
    str_list,
    strip,
    user_target,
)
from flows.definition.slack_steps import (
    SLACK_STEP_CLASSES,
    SLACK_TEMPLATE_FIELDS,
    AddReactionStep,
    CreateChannelStep,
    InviteToChannelStep,
    LookupUserStep,
    MessageTs,
    SetChannelTopicStep,
    UpdateMessageStep,
)
from flows.definition.step_base import StepBase
from flows.definition.step_base import check_text_or_blocks as _check_text_or_blocks
from flows.durations import parse_duration
from flows.slack_ids import parse_user

_Problems = list[tuple[Loc | str, str]]


def auto_id(parent: str | None, branch: str, index: int) -> str:
    """The id of a step without one: ``step2`` at the top level, ``route.then1`` inside."""
    return f"step{index + 1}" if parent is None else f"{parent}.{branch}{index + 1}"


class PostMessageStep(StepBase):
    """Post ``text`` and/or Block Kit ``blocks`` in a channel, or as a reply in the thread
    of ``thread_ts`` (also shown in the channel with ``reply_broadcast``). Outputs
    ``channel``, ``ts`` and ``text``."""

    type: Literal["post_message"] = "post_message"
    channel: Annotated[str, AfterValidator(channel_target)]
    text: str | None = None
    blocks: list[dict[str, Any]] | None = None
    thread_ts: MessageTs | None = None
    reply_broadcast: bool = False

    @model_validator(mode="after")
    def _check(self) -> PostMessageStep:
        _check_text_or_blocks(self.text, self.blocks)
        if self.reply_broadcast and not self.thread_ts:
            fail([("reply_broadcast", "reply_broadcast needs thread_ts (a reply in a thread)")])
        return self


class SendDmStep(StepBase):
    """Send a direct message to ``user``."""

    type: Literal["send_dm"] = "send_dm"
    user: Annotated[str, AfterValidator(user_target)]
    text: str | None = None
    blocks: list[dict[str, Any]] | None = None

    @model_validator(mode="after")
    def _check(self) -> SendDmStep:
        _check_text_or_blocks(self.text, self.blocks)
        return self


def _method(value: Any) -> Any:
    return value.strip().upper() if isinstance(value, str) else value


def _path(value: str) -> str:
    value = value.strip()
    if not value.startswith("/"):
        raise ValueError("path must start with / (it is appended to the connection's base URL)")
    if value.startswith("//") or "://" in value or "\\" in value:
        raise ValueError("path must stay on the connection's host")
    return value


def _seconds(value: Any) -> Any:
    if isinstance(value, str) and not value.strip().replace(".", "", 1).isdigit():
        return parse_duration(value).total_seconds()
    return value


class HttpRequestStep(StepBase):
    """Call an API through a connection slot. Outputs ``status`` and ``body``."""

    type: Literal["http_request"] = "http_request"
    connection: Identifier
    method: Annotated[
        Literal["GET", "POST", "PUT", "PATCH", "DELETE"], BeforeValidator(_method)
    ] = "GET"
    path: Annotated[str, AfterValidator(_path)]
    headers: Annotated[dict[str, str], BeforeValidator(str_dict)] = Field(default_factory=dict)
    query: Annotated[dict[str, str], BeforeValidator(str_dict)] = Field(default_factory=dict)
    json_: Any = Field(default=None, alias="json")
    # Bounds each try, in seconds (a duration like 30s is read as seconds too).
    timeout: Annotated[float, BeforeValidator(_seconds)] = Field(  # type: ignore[assignment]
        default=10.0, gt=0, le=60
    )

    @model_validator(mode="after")
    def _check(self) -> HttpRequestStep:
        errors: _Problems = []
        for header in self.headers:
            if header.strip().lower() == "authorization":
                errors.append((("headers", header), "credentials come from the connection"))
        if self.method == "GET" and self.json_ is not None:
            errors.append(("json", "a GET request cannot have a json body"))
        if errors:
            fail(errors)
        return self


ApprovalMode = Literal["first_response", "everyone", "quorum"]
DEFAULT_APPROVAL_OPTIONS: tuple[str, str] = ("Approve", "Reject")


def _quorum_errors(mode: ApprovalMode, minimum: int | None, approvers: list[str]) -> _Problems:
    if mode != "quorum":
        return [] if minimum is None else [("min", "min is only used when mode is quorum")]
    if minimum is None:
        return [("min", "min is required when mode is quorum")]
    users = [parse_user(a) for a in approvers]
    if all(users) and minimum > len(set(users)):
        return [("min", f"min ({minimum}) is more than the {len(set(users))} approvers")]
    return []


def _option_errors(options: list[str] | None, approve_option: str | None) -> _Problems:
    if options is None:
        if approve_option is not None:
            return [("approve_option", "approve_option needs options")]
        return []
    errors: _Problems = []
    if len(options) < 2:
        errors.append(("options", "give at least 2 options"))
    if len(options) > 20:
        errors.append(("options", "at most 20 options"))
    seen: set[str] = set()
    for index, option in enumerate(options):
        label = option.strip()
        if not label:
            errors.append((("options", index), "must not be empty"))
        elif len(label) > 75:
            errors.append((("options", index), "at most 75 characters"))
        elif label.lower() in seen:
            errors.append((("options", index), f"duplicate option {option!r}"))
        seen.add(label.lower())
    if approve_option is not None and approve_option not in options:
        errors.append(
            (
                "approve_option",
                f"{approve_option!r} is not one of the options ({', '.join(options)})",
            )
        )
    return errors


class ApprovalStep(StepBase):
    """Ask people to decide. Outputs ``outcome`` (``approved``/``rejected``/``expired``),
    ``option`` (the label chosen), ``responder``, ``comment`` and ``responses``."""

    type: Literal["approval"] = "approval"
    approvers: list[Annotated[str, AfterValidator(approver)]] = Field(min_length=1)
    mode: ApprovalMode = "first_response"
    min: int | None = Field(default=None, ge=1)
    title: Annotated[str, BeforeValidator(strip), Field(min_length=1, max_length=2000)]
    details: str | None = None
    options: Annotated[list[str], BeforeValidator(str_list)] | None = None
    approve_option: str | None = None
    allow_comment: bool = True
    channel: Annotated[str, AfterValidator(channel_target)] | None = None
    timeout: Duration | None = None
    reminder: Duration | None = None

    @model_validator(mode="after")
    def _check(self) -> ApprovalStep:
        errors = _quorum_errors(self.mode, self.min, self.approvers)
        errors += _option_errors(self.options, self.approve_option)
        if self.timeout is not None and self.reminder is not None:
            if parse_duration(self.reminder) >= parse_duration(self.timeout):
                errors.append(("reminder", f"must be shorter than the timeout ({self.timeout})"))
        if errors:
            fail(errors)
        return self

    @property
    def response_options(self) -> list[str]:
        """The button labels: ``options`` or Approve / Reject."""
        return list(self.options) if self.options else list(DEFAULT_APPROVAL_OPTIONS)

    @property
    def approve_label(self) -> str:
        """The label whose choice means ``approved``; every other label means ``rejected``."""
        if self.options and self.approve_option:
            return self.approve_option
        return self.response_options[0]

    @property
    def timeout_delta(self) -> timedelta | None:
        return parse_duration(self.timeout) if self.timeout else None

    @property
    def reminder_delta(self) -> timedelta | None:
        return parse_duration(self.reminder) if self.reminder else None


def _condition(value: Any) -> Any:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        value = value.strip()
        if not is_template(value) and value.lower() not in ("true", "false", "yes", "no"):
            raise ValueError(
                "expected a template such as \"{{ steps.ask.outcome == 'approved' }}\""
            )
    return value


class ConditionStep(StepBase):
    """Run ``then`` when ``if`` renders to something true (see templating.is_truthy),
    else ``else``."""

    type: Literal["condition"] = "condition"
    if_: Annotated[str, BeforeValidator(_condition)] = Field(alias="if")
    then: list[Step] = Field(default_factory=list)
    else_: list[Step] = Field(default_factory=list, alias="else")


def _until(value: Any) -> Any:
    if isinstance(value, str):
        value = value.strip()
        if not is_template(value):
            try:
                datetime.fromisoformat(value.replace("Z", "+00:00"))
            except ValueError:
                raise ValueError(
                    "expected an ISO date-time like 2024-05-31T09:00:00+02:00 or a template"
                ) from None
    return value


class DelayStep(StepBase):
    """Wait for ``duration`` or ``until`` a date-time (naive times are UTC). Durable."""

    type: Literal["delay"] = "delay"
    duration: Duration | None = None
    until: Annotated[str, BeforeValidator(_until)] | None = None

    @model_validator(mode="after")
    def _check(self) -> DelayStep:
        if self.duration is None and self.until is None:
            fail([("duration", "a delay needs duration or until")])
        if self.duration is not None and self.until is not None:
            fail([("until", "use either duration or until, not both")])
        return self

    @property
    def duration_delta(self) -> timedelta | None:
        return parse_duration(self.duration) if self.duration else None


class SetVariableStep(StepBase):
    """Set ``vars.<name>`` to ``value`` (strings are templates, rendered natively)."""

    type: Literal["set_variable"] = "set_variable"
    name: Identifier  # type: ignore[assignment]
    value: Any


#: At most this many items in a for_each, iterations at once, branches of a parallel.
MAX_ITEMS = 1000
MAX_CONCURRENCY = 20
MAX_BRANCHES = 10


class ForEachStep(StepBase):
    """Run ``steps`` once per element of ``items`` (a list or a template giving one),
    ``concurrency`` at a time (1: in order). Outputs ``count`` and ``results``."""

    type: Literal["for_each"] = "for_each"
    items: str | list[Any]
    concurrency: int = Field(default=1, ge=1, le=MAX_CONCURRENCY)
    steps: list[Step] = Field(min_length=1)

    @model_validator(mode="after")
    def _check(self) -> ForEachStep:
        if isinstance(self.items, list) and len(self.items) > MAX_ITEMS:
            fail([("items", f"at most {MAX_ITEMS} items")])
        if isinstance(self.items, str) and not is_template(self.items):
            fail([("items", "expected a list or a template giving one")])
        return self


class ParallelStep(StepBase):
    """Run 2–10 ``branches`` (step lists) at once. Outputs ``branches``."""

    type: Literal["parallel"] = "parallel"
    branches: list[Annotated[list[Step], Field(min_length=1)]] = Field(
        min_length=2, max_length=MAX_BRANCHES
    )


class SwitchStep(StepBase):
    """Run the steps of the case equal to ``value`` (compared as text), else ``default``.
    Outputs ``case`` (the key, ``default``, or null)."""

    type: Literal["switch"] = "switch"
    value: Any
    cases: dict[str, list[Step]] = Field(min_length=1)
    default: list[Step] = Field(default_factory=list)


class CallFlowStep(StepBase):
    """Run an instant flow of the workspace (by name or id) with ``inputs``; with ``wait``
    the run waits for it. Outputs ``run_id``, ``status`` and ``outputs``."""

    type: Literal["call_flow"] = "call_flow"
    flow: Annotated[str, BeforeValidator(strip), Field(min_length=1, max_length=80)]
    inputs: dict[str, Any] = Field(default_factory=dict)
    wait: bool = True


class TryStep(StepBase):
    """Run ``steps``; when one fails run ``catch`` (templates see ``error.step`` and
    ``error.message``), then ``finally`` whatever happened. Outputs ``ok`` (the body
    succeeded), ``caught`` and ``error``."""

    type: Literal["try"] = "try"
    steps: list[Step] = Field(min_length=1)
    catch: list[Step] = Field(default_factory=list)
    finally_: list[Step] = Field(default_factory=list, alias="finally")

    @model_validator(mode="after")
    def _check(self) -> TryStep:
        if not self.catch and not self.finally_:
            fail([("catch", "a try needs catch or finally (or both)")])
        return self


Step = Annotated[
    PostMessageStep
    | SendDmStep
    | HttpRequestStep
    | ApprovalStep
    | ConditionStep
    | DelayStep
    | SetVariableStep
    | AskStep
    | UpdateMessageStep
    | AddReactionStep
    | CreateChannelStep
    | InviteToChannelStep
    | SetChannelTopicStep
    | LookupUserStep
    | ForEachStep
    | ParallelStep
    | SwitchStep
    | CallFlowStep
    | TryStep,
    Field(discriminator="type"),
]
STEP_TYPES: tuple[str, ...] = tuple(
    sorted(
        (
            "approval",
            "ask",
            "call_flow",
            "condition",
            "delay",
            "for_each",
            "http_request",
            "parallel",
            "post_message",
            "send_dm",
            "set_variable",
            "switch",
            "try",
            *SLACK_STEP_CLASSES,
        )
    )
)
ConditionStep.model_rebuild()
ForEachStep.model_rebuild()
ParallelStep.model_rebuild()
SwitchStep.model_rebuild()
TryStep.model_rebuild()


Body = tuple[str, tuple[str | int, ...], list[Any]]


def nested_bodies(step: Any) -> list[Body]:
    """The step lists inside a step: (branch name its derived ids use, where it is in the
    step, the list). Branch names: ``then``/``else`` (condition), ``steps`` (for_each),
    ``branch1_``… (parallel), ``case1_``…/``default`` (switch). Works on models and on raw
    data (YAML names, or Python names in model dumps)."""
    raw = isinstance(step, dict)
    kind = step.get("type") if raw else getattr(step, "type", None)

    def part(name: str) -> Any:
        if raw:
            return step.get(name, step.get(PY_NAMES.get(name, name)))
        return getattr(step, PY_NAMES.get(name, name), None)

    def lists(value: Any) -> list[Any]:
        return value if isinstance(value, list) else []

    if kind == "condition":
        return [(key, (key,), lists(part(key))) for key in ("then", "else")]
    if kind == "for_each":
        return [("steps", ("steps",), lists(part("steps")))]
    if kind == "parallel":
        branches = lists(part("branches"))
        return [(f"branch{n + 1}_", ("branches", n), lists(b)) for n, b in enumerate(branches)]
    if kind == "switch":
        cases = part("cases")
        items = list(cases.items()) if isinstance(cases, dict) else []
        bodies = [(f"case{n + 1}_", ("cases", str(k)), lists(b)) for n, (k, b) in enumerate(items)]
        return [*bodies, ("default", ("default",), lists(part("default")))]
    if kind == "try":
        return [(name, (name,), lists(part(name))) for name in ("steps", "catch", "finally")]
    return []


STEP_CLASSES: dict[str, type[BaseModel]] = {
    "post_message": PostMessageStep,
    "send_dm": SendDmStep,
    "http_request": HttpRequestStep,
    "approval": ApprovalStep,
    "condition": ConditionStep,
    "delay": DelayStep,
    "set_variable": SetVariableStep,
    "ask": AskStep,
    **SLACK_STEP_CLASSES,
    "for_each": ForEachStep,
    "parallel": ParallelStep,
    "switch": SwitchStep,
    "call_flow": CallFlowStep,
    "try": TryStep,
}

# Fields holding templates, per step type (YAML names).
TEMPLATE_FIELDS: dict[str, tuple[str, ...]] = {
    "post_message": ("channel", "text", "blocks", "thread_ts"),
    "send_dm": ("user", "text", "blocks"),
    "http_request": ("path", "headers", "query", "json"),
    "approval": ("approvers", "title", "details", "channel"),
    "condition": ("if",),
    "delay": ("until",),
    "set_variable": ("value",),
    "ask": ("to", "title", "details"),
    **SLACK_TEMPLATE_FIELDS,
    "for_each": ("items",),
    "switch": ("value",),
    "call_flow": ("flow", "inputs"),
}
# YAML names that are Python keywords, and the model fields that hold them.
PY_NAMES = {"if": "if_", "else": "else_", "json": "json_", "finally": "finally_"}

"""The flow definition format: what people write in YAML or JSON (SPEC §2–3).

Parse with :func:`parse_definition` (text) or :func:`definition_from_dict` (data); both
return a validated :class:`FlowDefinition` or raise :class:`DefinitionError` listing every
problem found, each with a location such as ``steps[2].approvers`` and a short message.
Write back with :func:`dump_yaml`, :func:`dump_json` or :func:`to_dict`; parsing what they
produce gives back an equal definition.

After validation every step has an ``id``: explicit ids are kept, missing ones are derived
from the position (``step1``, ``step2``… at the top level, ``route.then1``,
``route.else2``… inside a condition whose id is ``route``). Derived ids are not written
back by the dump functions.
"""

from __future__ import annotations

import difflib
import json
import math
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from typing import Annotated, Any, Literal, NoReturn
from zoneinfo import ZoneInfo

import jinja2
import yaml
from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger
from jinja2 import meta
from jinja2 import nodes as jnodes
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from flows.durations import parse_duration
from flows.templating import CONTEXT_NAMES, ENV

__all__ = [
    "STEP_TYPES",
    "TRIGGER_TYPES",
    "ApprovalStep",
    "ConditionStep",
    "ConnectionSlotSpec",
    "DefinitionError",
    "DelayStep",
    "FieldError",
    "FlowDefinition",
    "FlowInput",
    "FlowKind",
    "HttpRequestStep",
    "InputType",
    "InputValue",
    "ManualTrigger",
    "MemberJoinedTrigger",
    "MessageTrigger",
    "PostMessageStep",
    "ReactionTrigger",
    "ScheduleTrigger",
    "SendDmStep",
    "SetVariableStep",
    "Step",
    "Trigger",
    "WebhookTrigger",
    "cron_trigger",
    "definition_from_dict",
    "dump_json",
    "dump_yaml",
    "parse_definition",
    "template_fields",
    "to_dict",
]

# ---------------------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------------------


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


_Loc = tuple[str | int, ...]
_Err = tuple[_Loc, str]


def _fail(errors: Sequence[tuple[_Loc | str, str]]) -> NoReturn:
    """Raise several located errors from inside a pydantic validator."""
    items = [((loc,) if isinstance(loc, str) else loc, msg) for loc, msg in errors]
    summary = "; ".join(f"{_render_loc(loc)}: {msg}" if loc else msg for loc, msg in items)
    raise PydanticCustomError("flow_errors", "{summary}", {"summary": summary, "errors": items})


# ---------------------------------------------------------------------------------------
# Small value validators
# ---------------------------------------------------------------------------------------

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_STEP_ID = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.(?:then|else)[1-9][0-9]*)*")
_USER_MENTION = re.compile(r"<@([UW][A-Z0-9]+)(?:\|[^>]*)?>")
_GROUP_MENTION = re.compile(r"<!subteam\^(S[A-Z0-9]+)(?:\|[^>]*)?>")
_CHANNEL_MENTION = re.compile(r"<#([CG][A-Z0-9]+)(?:\|[^>]*)?>")
_USER_ID = re.compile(r"[UW][A-Z0-9]{2,}")
_CHANNEL_ID = re.compile(r"[CG][A-Z0-9]{2,}")
_DM_OR_CHANNEL_ID = re.compile(r"[CGDUW][A-Z0-9]{2,}")
_ANY_ID = re.compile(r"[UWSCG][A-Z0-9]{2,}")
_CHANNEL_NAME = re.compile(r"#[^\s#<>|,]{1,80}")
_TEMPLATE_MARKERS = ("{{", "{%", "{#")


def _is_template(value: str) -> bool:
    return any(marker in value for marker in _TEMPLATE_MARKERS)


def _identifier(value: str) -> str:
    if not _IDENT.fullmatch(value):
        raise ValueError(
            f"invalid identifier {value!r} (use letters, digits and _, not starting with a digit)"
        )
    return value


def _step_id(value: str) -> str:
    if value and not _STEP_ID.fullmatch(value):
        raise ValueError(
            f"invalid step id {value!r} (use letters, digits and _, not starting with a digit)"
        )
    return value


def _strip(value: Any) -> Any:
    return value.strip() if isinstance(value, str) else value


def _strip_or_none(value: Any) -> Any:
    if isinstance(value, str):
        value = value.strip()
        return value or None
    return value


def _duration(value: Any) -> Any:
    if isinstance(value, bool):
        raise ValueError("expected a duration like 30s, 5m, 2h or 2d")
    if isinstance(value, int):
        value = str(value)
    if not isinstance(value, str):
        return value  # pydantic reports the type
    value = value.strip()
    if parse_duration(value) <= timedelta(0):
        raise ValueError("duration must be longer than 0s")
    return value


def _channel_ref(value: str) -> str:
    """A channel an event trigger listens to: ``#name``, ``C123`` or ``<#C123|name>``."""
    value = value.strip()
    if _CHANNEL_NAME.fullmatch(value) or _CHANNEL_ID.fullmatch(value):
        return value
    if _CHANNEL_MENTION.fullmatch(value):
        return value
    raise ValueError(f"invalid channel {value!r} (expected #name, a channel id or <#C…>)")


def _channel_target(value: str) -> str:
    """Where a message goes: a channel reference, a conversation id or a template."""
    value = value.strip()
    if _is_template(value) or _DM_OR_CHANNEL_ID.fullmatch(value):
        return value
    if _CHANNEL_NAME.fullmatch(value) or _CHANNEL_MENTION.fullmatch(value):
        return value
    raise ValueError(
        f"invalid channel {value!r} (expected #name, a channel id, <#C…> or a template)"
    )


def _user_target(value: str) -> str:
    value = value.strip()
    if _is_template(value) or _USER_ID.fullmatch(value) or _USER_MENTION.fullmatch(value):
        return value
    raise ValueError(f"invalid user {value!r} (expected <@U…>, a user id or a template)")


def _approver(value: str) -> str:
    value = value.strip()
    if _is_template(value) or _ANY_ID.fullmatch(value):
        return value
    for pattern in (_USER_MENTION, _GROUP_MENTION, _CHANNEL_MENTION):
        if pattern.fullmatch(value):
            return value
    raise ValueError(
        f"invalid approver {value!r} (expected <@U…>, <!subteam^S…>, <#C…>, an id or a template)"
    )


def _plain_user(value: str) -> str | None:
    """The user id if ``value`` names exactly one user (not a group, channel or template)."""
    match = _USER_MENTION.fullmatch(value)
    if match:
        return match.group(1)
    return value if _USER_ID.fullmatch(value) else None


def _timezone(value: str) -> str:
    value = value.strip()
    try:
        ZoneInfo(value)
    except Exception:
        raise ValueError(
            f"unknown timezone {value!r} (use an IANA name like Europe/Paris)"
        ) from None
    return value


def _regex(value: str) -> str:
    try:
        re.compile(value)
    except re.error as exc:
        raise ValueError(f"invalid regular expression: {exc}") from None
    return value


def _str_list(value: Any) -> Any:
    """YAML turns ``[1, 2]`` into numbers; labels are text. yes/no must be quoted."""
    if not isinstance(value, list):
        return value
    out = []
    for item in value:
        if isinstance(item, bool):
            raise ValueError("quote yes/no/true/false/on/off values (YAML reads them as booleans)")
        out.append(str(item) if isinstance(item, (int, float)) else item)
    return out


def _str_dict(value: Any) -> Any:
    if not isinstance(value, Mapping):
        return value
    return {
        str(k): (str(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else v)
        for k, v in value.items()
    }


Identifier = Annotated[str, AfterValidator(_identifier)]
Duration = Annotated[str, BeforeValidator(_duration)]


class _Model(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        populate_by_name=True,
        coerce_numbers_to_str=True,
        str_strip_whitespace=False,
    )


# ---------------------------------------------------------------------------------------
# Inputs
# ---------------------------------------------------------------------------------------

InputType = Literal["text", "number", "boolean", "date", "user", "channel", "choice"]
InputValue = str | int | float | bool
INPUT_TYPES: tuple[str, ...] = ("text", "number", "boolean", "date", "user", "channel", "choice")
_INPUT_TYPE_ALIASES = {"yes/no": "boolean", "yes_no": "boolean", "yesno": "boolean"}

_TRUE = frozenset({"yes", "true", "1", "on", "y"})
_FALSE = frozenset({"no", "false", "0", "off", "n"})
_INT = re.compile(r"[+-]?\d+")
_FLOAT = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def _input_type(value: Any) -> Any:
    if isinstance(value, str):
        key = value.strip().lower()
        return _INPUT_TYPE_ALIASES.get(key, key)
    return value


class FlowInput(_Model):
    """A value asked when an instant flow starts (``/flow run name key=value`` or a modal)."""

    id: Identifier
    label: str = ""
    type: Annotated[InputType, BeforeValidator(_input_type)] = "text"
    required: bool = False
    default: Any = None
    choices: Annotated[list[str], BeforeValidator(_str_list)] = Field(default_factory=list)
    description: Annotated[str | None, BeforeValidator(_strip_or_none)] = None

    @model_validator(mode="after")
    def _check(self) -> FlowInput:
        errors: list[tuple[_Loc | str, str]] = []
        if not self.label.strip():
            self.label = self.id
        if self.type == "choice":
            if not self.choices:
                errors.append(("choices", "a choice input needs a non-empty list of choices"))
            seen: set[str] = set()
            for index, choice in enumerate(self.choices):
                if not choice.strip():
                    errors.append((("choices", index), "must not be empty"))
                elif choice in seen:
                    errors.append((("choices", index), f"duplicate choice {choice!r}"))
                seen.add(choice)
        elif self.choices:
            errors.append(("choices", "choices are only allowed when type is choice"))
        if self.default is not None and not errors:
            try:
                self.default = self._normalize_default(self.default)
            except ValueError as exc:
                errors.append(("default", str(exc)))
        if errors:
            _fail(errors)
        return self

    def _normalize_default(self, value: Any) -> InputValue:
        if isinstance(value, str):
            return self.coerce(value)
        is_number = isinstance(value, (int, float)) and not isinstance(value, bool)
        if self.type == "number" and is_number:
            if isinstance(value, float) and not math.isfinite(value):
                raise ValueError("expected a finite number")
            return value
        if self.type == "boolean" and isinstance(value, bool):
            return value
        if self.type == "boolean" and value in (0, 1):
            return bool(value)
        if self.type == "text" and is_number:
            return str(value)
        raise ValueError(f"invalid default for a {self.type} input: {value!r}")

    def coerce(self, raw: str) -> InputValue:
        """Convert what someone typed (``/flow run f amount=12``) into this input's type.

        Returns str (text, date as ``YYYY-MM-DD``, user id ``U…``, channel id ``C…`` or
        ``#name``, the canonical choice), int or float (number) or bool (boolean). Raises
        ValueError with a short message.
        """
        if self.type == "text":
            return str(raw)
        text = str(raw).strip()
        if not text:
            raise ValueError("a value is required")
        if self.type == "number":
            if _INT.fullmatch(text):
                return int(text)
            if _FLOAT.fullmatch(text):
                number = float(text)
                if math.isfinite(number):
                    return number
            raise ValueError(f"expected a number, got {text!r}")
        if self.type == "boolean":
            lowered = text.lower()
            if lowered in _TRUE:
                return True
            if lowered in _FALSE:
                return False
            raise ValueError(f"expected yes or no, got {text!r}")
        if self.type == "date":
            if _ISO_DATE.fullmatch(text):
                try:
                    return date.fromisoformat(text).isoformat()
                except ValueError:
                    pass
            raise ValueError(f"expected a date like 2024-05-31, got {text!r}")
        if self.type == "user":
            match = _USER_MENTION.fullmatch(text)
            if match:
                return match.group(1)
            if _USER_ID.fullmatch(text):
                return text
            raise ValueError(f"expected a user like @someone, got {text!r}")
        if self.type == "channel":
            match = _CHANNEL_MENTION.fullmatch(text)
            if match:
                return match.group(1)
            if _CHANNEL_ID.fullmatch(text) or _CHANNEL_NAME.fullmatch(text):
                return text
            raise ValueError(f"expected a channel like #general, got {text!r}")
        # choice
        if text in self.choices:
            return text
        for choice in self.choices:
            if choice.lower() == text.lower():
                return choice
        raise ValueError(f"{text!r} is not one of: {', '.join(self.choices)}")


# ---------------------------------------------------------------------------------------
# Triggers
# ---------------------------------------------------------------------------------------

_DOW_CRONTAB = {"sun": 0, "mon": 1, "tue": 2, "wed": 3, "thu": 4, "fri": 5, "sat": 6}
_DOW_APS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")


def _crontab_day(token: str) -> int:
    token = token.strip().lower()
    if token.isdigit() and 0 <= int(token) <= 7:
        return int(token)
    if token in _DOW_CRONTAB:
        return _DOW_CRONTAB[token]
    raise ValueError(f"invalid day of week {token!r} (use 0-7 or mon…sun)")


def _crontab_weekdays(field: str) -> str:
    """Translate a crontab day-of-week field (0 and 7 = Sunday) for APScheduler 3.

    APScheduler 3 numbers days from Monday = 0, so numbers are rewritten as day names.
    """
    if field in ("*", "?"):
        return "*"
    days: set[int] = set()
    for part in field.split(","):
        span, _, step_text = part.partition("/")
        step = 1
        if step_text:
            if not step_text.isdigit() or int(step_text) < 1:
                raise ValueError(f"invalid step {step_text!r} in day of week")
            step = int(step_text)
        if span in ("*", "?"):
            low, high = 0, 6
        elif "-" in span:
            first, _, last = span.partition("-")
            low, high = _crontab_day(first), _crontab_day(last)
            if low > high:
                raise ValueError(f"invalid day-of-week range {span!r}")
        else:
            low = _crontab_day(span)
            high = 7 if step_text else low
        days.update(day % 7 for day in range(low, high + 1, step))
    if len(days) == 7:
        return "*"
    return ",".join(_DOW_APS[day] for day in sorted(days))


def cron_trigger(expr: str, tz: str | ZoneInfo = "UTC") -> CronTrigger:
    """An APScheduler CronTrigger for a standard 5-field crontab expression.

    Unlike ``CronTrigger.from_crontab`` this keeps crontab's weekday numbering
    (``1-5`` is Monday to Friday). Raises ValueError for invalid expressions.
    """
    fields = expr.split()
    if len(fields) != 5:
        raise ValueError(f"expected 5 fields (minute hour day month weekday), got {len(fields)}")
    minute, hour, day, month, weekday = fields
    zone = ZoneInfo(tz) if isinstance(tz, str) else tz
    return CronTrigger(
        minute=minute,
        hour=hour,
        day=day,
        month=month,
        day_of_week=_crontab_weekdays(weekday),
        timezone=zone,
    )


def _cron(value: str) -> str:
    value = " ".join(value.split())
    try:
        cron_trigger(value)
    except ValueError as exc:
        raise ValueError(f"invalid cron expression {value!r}: {exc}") from None
    return value


_EPOCH = datetime(1970, 1, 1)


class ManualTrigger(_Model):
    """Started on demand: ``/flow run``, a button, a shared link."""

    type: Literal["manual"] = "manual"


class ScheduleTrigger(_Model):
    """Runs on a crontab schedule (``cron``) or at a fixed interval (``every``)."""

    type: Literal["schedule"] = "schedule"
    cron: Annotated[str, AfterValidator(_cron)] | None = None
    every: Duration | None = None
    timezone: Annotated[str, AfterValidator(_timezone)] = "UTC"
    misfire: Literal["skip", "run_once"] = "skip"

    @field_validator("every")
    @classmethod
    def _check_every(cls, value: str | None) -> str | None:
        # Seconds are allowed: short intervals are how people try a schedule out.
        if value is not None and parse_duration(value) < timedelta(seconds=1):
            raise ValueError("schedules run at most once a second (use 1s or more)")
        return value

    @model_validator(mode="after")
    def _one_of(self) -> ScheduleTrigger:
        if self.cron is None and self.every is None:
            _fail([("cron", "a schedule needs cron or every")])
        if self.cron is not None and self.every is not None:
            _fail([("every", "use either cron or every, not both")])
        return self

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def every_delta(self) -> timedelta | None:
        return parse_duration(self.every) if self.every is not None else None

    def to_apscheduler(self, start: datetime | None = None) -> BaseTrigger:
        """The APScheduler 3 trigger for this schedule.

        Intervals are anchored at ``start`` (default: 1970-01-01 00:00 in the trigger's
        timezone), so ``every: 1h`` fires on the hour whatever the time the bot started.
        """
        if self.cron is not None:
            return cron_trigger(self.cron, self.zone)
        anchor = start if start is not None else _EPOCH.replace(tzinfo=self.zone)
        if anchor.tzinfo is None:
            anchor = anchor.replace(tzinfo=self.zone)
        delta = self.every_delta or timedelta(minutes=1)
        return IntervalTrigger(
            seconds=int(delta.total_seconds()), start_date=anchor, timezone=self.zone
        )

    def next_fire_time(self, after: datetime, *, start: datetime | None = None) -> datetime | None:
        """The first fire time strictly after ``after`` (naive datetimes are taken as UTC).

        Returned datetimes are aware, in the trigger's timezone.
        """
        if after.tzinfo is None:
            after = after.replace(tzinfo=timezone.utc)
        now = (after + timedelta(microseconds=1)).astimezone(self.zone)
        result = self.to_apscheduler(start).get_next_fire_time(None, now)
        if result is not None and result <= after:  # interval maths at microsecond edges
            result = self.to_apscheduler(start).get_next_fire_time(None, now + timedelta(seconds=1))
        return result


class MessageTrigger(_Model):
    """A message in ``channel`` whose text matches ``pattern`` (a Python regex, searched)."""

    type: Literal["message"] = "message"
    channel: Annotated[str, AfterValidator(_channel_ref)]
    pattern: Annotated[str, AfterValidator(_regex)]


def _emoji(value: Any) -> Any:
    if isinstance(value, str):
        value = value.strip().strip(":") if "::" not in value else value.strip()
        if value.startswith(":") and value.endswith(":"):
            value = value[1:-1]
        if not value or any(ch.isspace() for ch in value):
            raise ValueError("expected an emoji name like :rotating_light:")
    return value


class ReactionTrigger(_Model):
    """An emoji reaction added to a message (in ``channel`` if given, else anywhere).

    ``emoji`` is stored without colons (``rotating_light``), as Slack reports it.
    """

    type: Literal["reaction"] = "reaction"
    emoji: Annotated[str, BeforeValidator(_emoji)]
    channel: Annotated[str, AfterValidator(_channel_ref)] | None = None


class MemberJoinedTrigger(_Model):
    """Someone joins ``channel``."""

    type: Literal["member_joined"] = "member_joined"
    channel: Annotated[str, AfterValidator(_channel_ref)]


class WebhookTrigger(_Model):
    """``POST /hooks/<flow id>`` with the flow's secret token."""

    type: Literal["webhook"] = "webhook"


Trigger = Annotated[
    ManualTrigger
    | ScheduleTrigger
    | MessageTrigger
    | ReactionTrigger
    | MemberJoinedTrigger
    | WebhookTrigger,
    Field(discriminator="type"),
]
TRIGGER_TYPES: tuple[str, ...] = (
    "manual",
    "schedule",
    "message",
    "reaction",
    "member_joined",
    "webhook",
)
_AUTOMATED_TRIGGERS = ("message", "reaction", "member_joined", "webhook")

# ---------------------------------------------------------------------------------------
# Steps
# ---------------------------------------------------------------------------------------


class _StepBase(_Model):
    id: Annotated[str, AfterValidator(_step_id)] = ""
    type: str
    name: Annotated[
        Annotated[str, Field(max_length=80)] | None, BeforeValidator(_strip_or_none)
    ] = None


def _check_text_or_blocks(text: str | None, blocks: list[dict[str, Any]] | None) -> None:
    errors: list[tuple[_Loc | str, str]] = []
    if not text and not blocks:
        errors.append(("text", "text or blocks is required"))
    for index, block in enumerate(blocks or []):
        if "type" not in block:
            errors.append((("blocks", index), "a block needs a type"))
    if blocks is not None and len(blocks) > 50:
        errors.append(("blocks", "at most 50 blocks"))
    if errors:
        _fail(errors)


class PostMessageStep(_StepBase):
    """Post ``text`` and/or Block Kit ``blocks`` in a channel."""

    type: Literal["post_message"] = "post_message"
    channel: Annotated[str, AfterValidator(_channel_target)]
    text: str | None = None
    blocks: list[dict[str, Any]] | None = None

    @model_validator(mode="after")
    def _check(self) -> PostMessageStep:
        _check_text_or_blocks(self.text, self.blocks)
        return self


class SendDmStep(_StepBase):
    """Send a direct message to ``user``."""

    type: Literal["send_dm"] = "send_dm"
    user: Annotated[str, AfterValidator(_user_target)]
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


class HttpRequestStep(_StepBase):
    """Call an API through a connection slot. Outputs ``status`` and ``body``."""

    type: Literal["http_request"] = "http_request"
    connection: Identifier
    method: Annotated[
        Literal["GET", "POST", "PUT", "PATCH", "DELETE"], BeforeValidator(_method)
    ] = "GET"
    path: Annotated[str, AfterValidator(_path)]
    headers: Annotated[dict[str, str], BeforeValidator(_str_dict)] = Field(default_factory=dict)
    query: Annotated[dict[str, str], BeforeValidator(_str_dict)] = Field(default_factory=dict)
    json_: Any = Field(default=None, alias="json")
    timeout: float = Field(default=10.0, gt=0, le=60)

    @model_validator(mode="after")
    def _check(self) -> HttpRequestStep:
        errors: list[tuple[_Loc | str, str]] = []
        for header in self.headers:
            if header.strip().lower() == "authorization":
                errors.append((("headers", header), "credentials come from the connection"))
        if self.method == "GET" and self.json_ is not None:
            errors.append(("json", "a GET request cannot have a json body"))
        if errors:
            _fail(errors)
        return self


ApprovalMode = Literal["first_response", "everyone", "quorum"]
DEFAULT_APPROVAL_OPTIONS: tuple[str, str] = ("Approve", "Reject")


class ApprovalStep(_StepBase):
    """Ask people to decide. Outputs ``outcome`` (``approved``/``rejected``/``expired``),
    ``option`` (the label chosen), ``responder``, ``comment`` and ``responses``."""

    type: Literal["approval"] = "approval"
    approvers: list[Annotated[str, AfterValidator(_approver)]] = Field(min_length=1)
    mode: ApprovalMode = "first_response"
    min: int | None = Field(default=None, ge=1)
    title: Annotated[str, BeforeValidator(_strip), Field(min_length=1, max_length=2000)]
    details: str | None = None
    options: Annotated[list[str], BeforeValidator(_str_list)] | None = None
    approve_option: str | None = None
    allow_comment: bool = True
    channel: Annotated[str, AfterValidator(_channel_target)] | None = None
    timeout: Duration | None = None
    reminder: Duration | None = None

    @model_validator(mode="after")
    def _check(self) -> ApprovalStep:
        errors: list[tuple[_Loc | str, str]] = []
        if self.mode == "quorum":
            if self.min is None:
                errors.append(("min", "min is required when mode is quorum"))
            else:
                users = [_plain_user(a) for a in self.approvers]
                if all(users) and self.min > len(set(users)):
                    errors.append(
                        ("min", f"min ({self.min}) is more than the {len(set(users))} approvers")
                    )
        elif self.min is not None:
            errors.append(("min", "min is only used when mode is quorum"))
        if self.options is not None:
            if len(self.options) < 2:
                errors.append(("options", "give at least 2 options"))
            if len(self.options) > 20:
                errors.append(("options", "at most 20 options"))
            seen: set[str] = set()
            for index, option in enumerate(self.options):
                label = option.strip()
                if not label:
                    errors.append((("options", index), "must not be empty"))
                elif len(label) > 75:
                    errors.append((("options", index), "at most 75 characters"))
                elif label.lower() in seen:
                    errors.append((("options", index), f"duplicate option {option!r}"))
                seen.add(label.lower())
            if self.approve_option is not None and self.approve_option not in self.options:
                errors.append(
                    (
                        "approve_option",
                        f"{self.approve_option!r} is not one of the options "
                        f"({', '.join(self.options)})",
                    )
                )
        elif self.approve_option is not None:
            errors.append(("approve_option", "approve_option needs options"))
        if self.timeout is not None and self.reminder is not None:
            if parse_duration(self.reminder) >= parse_duration(self.timeout):
                errors.append(("reminder", f"must be shorter than the timeout ({self.timeout})"))
        if errors:
            _fail(errors)
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
        if not _is_template(value) and value.lower() not in ("true", "false", "yes", "no"):
            raise ValueError(
                "expected a template such as \"{{ steps.ask.outcome == 'approved' }}\""
            )
    return value


class ConditionStep(_StepBase):
    """Run ``then`` when ``if`` renders to something true (see templating.is_truthy),
    else ``else``."""

    type: Literal["condition"] = "condition"
    if_: Annotated[str, BeforeValidator(_condition)] = Field(alias="if")
    then: list[Step] = Field(default_factory=list)
    else_: list[Step] = Field(default_factory=list, alias="else")


def _until(value: Any) -> Any:
    if isinstance(value, str):
        value = value.strip()
        if not _is_template(value):
            try:
                datetime.fromisoformat(value.replace("Z", "+00:00"))
            except ValueError:
                raise ValueError(
                    "expected an ISO date-time like 2024-05-31T09:00:00+02:00 or a template"
                ) from None
    return value


class DelayStep(_StepBase):
    """Wait for ``duration`` or ``until`` a date-time (naive times are UTC). Durable."""

    type: Literal["delay"] = "delay"
    duration: Duration | None = None
    until: Annotated[str, BeforeValidator(_until)] | None = None

    @model_validator(mode="after")
    def _check(self) -> DelayStep:
        if self.duration is None and self.until is None:
            _fail([("duration", "a delay needs duration or until")])
        if self.duration is not None and self.until is not None:
            _fail([("until", "use either duration or until, not both")])
        return self

    @property
    def duration_delta(self) -> timedelta | None:
        return parse_duration(self.duration) if self.duration else None


class SetVariableStep(_StepBase):
    """Set ``vars.<name>`` to ``value`` (strings are templates, rendered natively)."""

    type: Literal["set_variable"] = "set_variable"
    name: Identifier  # type: ignore[assignment]
    value: Any


Step = Annotated[
    PostMessageStep
    | SendDmStep
    | HttpRequestStep
    | ApprovalStep
    | ConditionStep
    | DelayStep
    | SetVariableStep,
    Field(discriminator="type"),
]
STEP_TYPES: tuple[str, ...] = (
    "approval",
    "condition",
    "delay",
    "http_request",
    "post_message",
    "send_dm",
    "set_variable",
)
ConditionStep.model_rebuild()

# Fields holding templates, per step type (YAML names).
_TEMPLATE_FIELDS: dict[str, tuple[str, ...]] = {
    "post_message": ("channel", "text", "blocks"),
    "send_dm": ("user", "text", "blocks"),
    "http_request": ("path", "headers", "query", "json"),
    "approval": ("approvers", "title", "details", "channel"),
    "condition": ("if",),
    "delay": ("until",),
    "set_variable": ("value",),
}
_PY_NAMES = {"if": "if_", "else": "else_", "json": "json_"}

# ---------------------------------------------------------------------------------------
# Connections and the flow
# ---------------------------------------------------------------------------------------

ConnectionKind = Literal["http_bearer", "http_header", "http_basic"]


class ConnectionSlotSpec(_Model):
    """A named place for a connection (credential) that ``http_request`` steps use."""

    slot: Identifier
    kind: ConnectionKind
    description: Annotated[str | None, BeforeValidator(_strip_or_none)] = None


FlowKind = Literal["instant", "scheduled", "automated"]


def _auto_id(parent: str | None, branch: str, index: int) -> str:
    return f"step{index + 1}" if parent is None else f"{parent}.{branch}{index + 1}"


class FlowDefinition(_Model):
    """A whole flow as authored. See the module docstring."""

    name: Annotated[str, BeforeValidator(_strip), Field(min_length=1, max_length=80)]
    description: Annotated[
        Annotated[str, Field(max_length=500)] | None, BeforeValidator(_strip_or_none)
    ] = None
    kind: FlowKind = "instant"
    trigger: Trigger = Field(default_factory=ManualTrigger)
    inputs: list[FlowInput] = Field(default_factory=list)
    notify: Annotated[str, AfterValidator(_channel_target)] | None = None
    connections: list[ConnectionSlotSpec] = Field(default_factory=list)
    steps: list[Step] = Field(min_length=1)

    @model_validator(mode="before")
    @classmethod
    def _prepare(cls, data: Any) -> Any:
        return _prepare(data)

    @model_validator(mode="after")
    def _finish(self, info: ValidationInfo) -> FlowDefinition:
        _assign_ids(self.steps, None, "")
        context = info.context if isinstance(info.context, Mapping) else {}
        if not context.get("_skip_tree_checks"):
            errors = _tree_errors(to_dict(self, all_ids=True))
            if errors:
                _fail(errors)
        return self

    # --- helpers ------------------------------------------------------------------------
    def walk_steps(self) -> Iterator[Step]:
        """Every step, depth first, in document order (a condition before its branches)."""
        yield from _walk(self.steps)

    def step(self, step_id: str) -> Step | None:
        return next((s for s in self.walk_steps() if s.id == step_id), None)

    def input(self, input_id: str) -> FlowInput | None:
        return next((i for i in self.inputs if i.id == input_id), None)

    def slot_names(self) -> list[str]:
        """Connection slots: the declared ones, else (``connections`` omitted or empty) those
        the http_request steps use, in document order."""
        if self.connections:
            return [c.slot for c in self.connections]
        names: list[str] = []
        for step in self.walk_steps():
            if isinstance(step, HttpRequestStep) and step.connection not in names:
                names.append(step.connection)
        return names

    def connection_slots(self) -> list[ConnectionSlotSpec]:
        """The declared slots, else the implied ones (kind ``http_bearer``)."""
        if self.connections:
            return list(self.connections)
        return [ConnectionSlotSpec(slot=name, kind="http_bearer") for name in self.slot_names()]


def _walk(steps: Iterable[Step]) -> Iterator[Step]:
    for step in steps:
        yield step
        if isinstance(step, ConditionStep):
            yield from _walk(step.then)
            yield from _walk(step.else_)


def _assign_ids(steps: list[Step], parent: str | None, branch: str) -> None:
    for index, step in enumerate(steps):
        if not step.id:
            step.id = _auto_id(parent, branch, index)
        if isinstance(step, ConditionStep):
            _assign_ids(step.then, step.id, "then")
            _assign_ids(step.else_, step.id, "else")


# ---------------------------------------------------------------------------------------
# Raw-data preparation and whole-tree checks (they run even when other parts are invalid)
# ---------------------------------------------------------------------------------------


def _plainify(value: Any) -> Any:
    """YAML extras → JSON-like data: dates become ISO strings, keys strings."""
    if isinstance(value, Mapping):
        return {str(k) if not isinstance(k, str) else k: _plainify(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plainify(v) for v in value]
    if isinstance(value, (set, frozenset, tuple)):
        return [_plainify(v) for v in value]
    if isinstance(value, (datetime, date, time)):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return value


def _prepare(data: Any) -> Any:
    if not isinstance(data, Mapping):
        return data
    data = _plainify(data)
    if "kind" not in data:
        trigger = data.get("trigger")
        ttype = trigger.get("type") if isinstance(trigger, Mapping) else None
        if ttype == "schedule":
            data["kind"] = "scheduled"
        elif ttype in _AUTOMATED_TRIGGERS:
            data["kind"] = "automated"
    return data


def _get(data: Mapping[str, Any], key: str) -> Any:
    if key in data:
        return data[key]
    return data.get(_PY_NAMES.get(key, key))


@dataclass
class _RawStep:
    loc: _Loc
    id: str
    type: Any
    data: Mapping[str, Any]


def _raw_steps(steps: Any, loc: _Loc, parent: str | None, branch: str) -> Iterator[_RawStep]:
    if not isinstance(steps, list):
        return
    for index, step in enumerate(steps):
        if not isinstance(step, Mapping):
            continue
        sid = step.get("id")
        final = sid if isinstance(sid, str) and sid else _auto_id(parent, branch, index)
        yield _RawStep((*loc, index), final, step.get("type"), step)
        if step.get("type") == "condition":
            for key in ("then", "else"):
                yield from _raw_steps(_get(step, key), (*loc, index, key), final, key)


def _strings(value: Any, loc: _Loc) -> Iterator[tuple[_Loc, str]]:
    if isinstance(value, str):
        yield loc, value
    elif isinstance(value, Mapping):
        for key, item in value.items():
            yield from _strings(item, (*loc, str(key)))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _strings(item, (*loc, index))


def _raw_templates(data: Mapping[str, Any]) -> Iterator[tuple[_Loc, str, _RawStep | None]]:
    for step in _raw_steps(data.get("steps"), ("steps",), None, ""):
        for field in _TEMPLATE_FIELDS.get(step.type, ()) if isinstance(step.type, str) else ():
            for loc, text in _strings(_get(step.data, field), (*step.loc, field)):
                yield loc, text, step
    notify = data.get("notify")
    if isinstance(notify, str):
        yield ("notify",), notify, None


_ALLOWED_NAMES = (
    frozenset(CONTEXT_NAMES)
    | frozenset(ENV.globals)
    | {
        "loop",
        "caller",
        "varargs",
        "kwargs",
    }
)


def _references(tree: jnodes.Template, root: str) -> list[str]:
    """Names used as ``root.X`` or ``root['X']`` (method calls like ``root.get()`` excluded)."""
    called = {id(call.node) for call in tree.find_all(jnodes.Call)}
    names: list[str] = []
    for node in tree.find_all((jnodes.Getattr, jnodes.Getitem)):
        target = getattr(node, "node", None)
        if not (isinstance(target, jnodes.Name) and target.name == root):
            continue
        if isinstance(node, jnodes.Getattr):
            if id(node) in called:
                continue
            name = node.attr
        elif (
            isinstance(node, jnodes.Getitem)
            and isinstance(node.arg, jnodes.Const)
            and isinstance(node.arg.value, str)
        ):
            name = node.arg.value
        else:
            continue
        if name not in names:
            names.append(name)
    return names


def _template_errors(
    loc: _Loc,
    source: str,
    declared_inputs: list[str] | None,
    earlier: list[str],
    all_ids: set[str],
) -> list[_Err]:
    if not _is_template(source):
        return []
    try:
        tree = ENV.parse(source)
    except jinja2.TemplateSyntaxError as exc:
        where = f" (line {exc.lineno})" if exc.lineno and "\n" in source else ""
        return [(loc, f"template syntax error: {exc.message}{where}")]
    errors: list[_Err] = []
    for name in sorted(meta.find_undeclared_variables(tree) - _ALLOWED_NAMES):
        errors.append(
            (loc, f"unknown name {name!r} (templates can use: {', '.join(CONTEXT_NAMES)})")
        )
    if declared_inputs is not None:
        for name in _references(tree, "inputs"):
            if name not in declared_inputs:
                known = ", ".join(declared_inputs) if declared_inputs else "none"
                errors.append((loc, f"unknown input {name!r} (declared: {known})"))
    for name in _references(tree, "steps"):
        if name in earlier:
            continue
        if name in all_ids:
            errors.append((loc, f"step {name!r} comes later (a step can only use earlier steps)"))
        else:
            known = ", ".join(earlier) if earlier else "none"
            errors.append((loc, f"unknown step {name!r} (earlier steps: {known})"))
    return errors


def _article(word: str) -> str:
    return "an" if word[:1] in "aeiou" else "a"


_KIND_TRIGGERS: dict[str, tuple[str, ...]] = {
    "instant": ("manual",),
    "scheduled": ("schedule",),
    "automated": _AUTOMATED_TRIGGERS,
}


def _tree_errors(data: Mapping[str, Any]) -> list[_Err]:
    """Checks that need the whole definition. Tolerates malformed parts (pydantic reports)."""
    errors: list[_Err] = []

    # kind and trigger
    kind = data.get("kind", "instant")
    trigger = data.get("trigger")
    ttype = trigger.get("type") if isinstance(trigger, Mapping) else None
    if kind in _KIND_TRIGGERS:
        expected = _KIND_TRIGGERS[kind]
        if trigger is None and kind != "instant":
            errors.append(
                (
                    ("trigger",),
                    f"{_article(kind)} {kind} flow needs a trigger (type: {' | '.join(expected)})",
                )
            )
        elif isinstance(ttype, str) and ttype in TRIGGER_TYPES and ttype not in expected:
            errors.append(
                (
                    ("trigger",),
                    f"{_article(kind)} {kind} flow cannot have a {ttype} trigger "
                    f"(expected type: {' | '.join(expected)})",
                )
            )

    # inputs
    inputs = data.get("inputs")
    declared: list[str] | None = None
    if inputs is None:
        declared = []
    elif isinstance(inputs, list):
        declared = []
        for index, item in enumerate(inputs):
            if not isinstance(item, Mapping):
                continue
            input_id = item.get("id")
            if isinstance(input_id, str):
                if input_id in declared:
                    errors.append((("inputs", index, "id"), f"duplicate input id {input_id!r}"))
                else:
                    declared.append(input_id)
            if kind == "scheduled" and item.get("default") is None:
                errors.append(
                    (("inputs", index, "default"), "inputs of a scheduled flow need a default")
                )
        if kind == "automated" and inputs:
            errors.append((("inputs",), "automated flows cannot have inputs (use trigger fields)"))

    # connections
    connections = data.get("connections")
    slots: list[str] | None = None
    if isinstance(connections, list) and connections:
        slots = []
        for index, item in enumerate(connections):
            slot = item.get("slot") if isinstance(item, Mapping) else None
            if isinstance(slot, str):
                if slot in slots:
                    errors.append((("connections", index, "slot"), f"duplicate slot {slot!r}"))
                slots.append(slot)

    # steps: ids, connections
    steps = list(_raw_steps(data.get("steps"), ("steps",), None, ""))
    first_loc: dict[str, _Loc] = {}
    for step in steps:
        if step.id in first_loc:
            other = _render_loc(first_loc[step.id])
            errors.append(((*step.loc, "id"), f"duplicate step id {step.id!r} (also {other})"))
        else:
            first_loc[step.id] = step.loc
        if step.type == "http_request" and slots is not None:
            slot = step.data.get("connection")
            if isinstance(slot, str) and slot not in slots:
                known = ", ".join(slots) if slots else "none"
                errors.append(
                    (
                        (*step.loc, "connection"),
                        f"unknown connection slot {slot!r} (declared: {known})",
                    )
                )

    # templates
    order = [step.id for step in steps]
    position = {id(step.data): index for index, step in enumerate(steps)}
    all_ids = set(order)
    for loc, source, owner in _raw_templates(data):
        if owner is None:
            earlier = order
        else:
            index = position[id(owner.data)]
            earlier = order[: index + 1]
        errors.extend(_template_errors(loc, source, declared, earlier, all_ids))
    return errors


# ---------------------------------------------------------------------------------------
# Pydantic errors → FieldError
# ---------------------------------------------------------------------------------------

_STEP_CLASSES: dict[str, type[BaseModel]] = {
    "post_message": PostMessageStep,
    "send_dm": SendDmStep,
    "http_request": HttpRequestStep,
    "approval": ApprovalStep,
    "condition": ConditionStep,
    "delay": DelayStep,
    "set_variable": SetVariableStep,
}
_TRIGGER_CLASSES: dict[str, type[BaseModel]] = {
    "manual": ManualTrigger,
    "schedule": ScheduleTrigger,
    "message": MessageTrigger,
    "reaction": ReactionTrigger,
    "member_joined": MemberJoinedTrigger,
    "webhook": WebhookTrigger,
}
_LIST_ITEMS: dict[str, type[BaseModel]] = {"inputs": FlowInput, "connections": ConnectionSlotSpec}


def _render_loc(loc: Sequence[str | int]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif _IDENT.fullmatch(part):
            out += f".{part}" if out else part
        else:
            out += f"[{json.dumps(part, ensure_ascii=False)}]"
    return out


def _clean_loc(raw: Sequence[str | int]) -> _Loc:
    parts: list[str | int] = []
    for index, part in enumerate(raw):
        previous = raw[index - 1] if index else None
        if isinstance(part, str):
            if part == "[key]" or part.startswith(("function-", "tagged-union[")):
                continue
            if part in _STEP_CLASSES and isinstance(previous, int):
                continue
            if part in _TRIGGER_CLASSES and previous == "trigger":
                continue
        parts.append(part)
    return tuple(parts)


def _model_at(raw: Sequence[str | int]) -> type[BaseModel] | None:
    if not raw:
        return FlowDefinition
    last = raw[-1]
    if isinstance(last, str):
        if last in _STEP_CLASSES and len(raw) >= 2 and isinstance(raw[-2], int):
            return _STEP_CLASSES[last]
        if last in _TRIGGER_CLASSES and len(raw) >= 2 and raw[-2] == "trigger":
            return _TRIGGER_CLASSES[last]
    if isinstance(last, int) and len(raw) >= 2 and isinstance(raw[-2], str):
        return _LIST_ITEMS.get(raw[-2])
    return None


def _field_names(model: type[BaseModel]) -> list[str]:
    return [field.alias or name for name, field in model.model_fields.items()]


def _quoted_choices(expected: str) -> str:
    found = re.findall(r"'([^']*)'", expected)
    return ", ".join(found) if found else expected


_SIMPLE_MESSAGES = {
    "missing": "field required",
    "string_type": "expected text",
    "bool_type": "expected true or false",
    "bool_parsing": "expected true or false",
    "int_type": "expected a whole number",
    "int_parsing": "expected a whole number",
    "int_from_float": "expected a whole number",
    "float_type": "expected a number",
    "float_parsing": "expected a number",
    "list_type": "expected a list",
    "dict_type": "expected a mapping",
    "model_type": "expected a mapping",
    "model_attributes_type": "expected a mapping",
    "finite_number": "expected a finite number",
}


def _convert(error: Mapping[str, Any]) -> list[_Err]:
    raw = tuple(error["loc"])
    loc = _clean_loc(raw)
    kind = error["type"]
    ctx = error.get("ctx") or {}
    if kind == "flow_errors":
        return [((*loc, *sub), msg) for sub, msg in ctx.get("errors", [])]
    if kind in ("union_tag_invalid", "union_tag_not_found"):
        is_trigger = bool(loc) and loc[-1] == "trigger"
        what = "trigger" if is_trigger else "step"
        known = ", ".join(sorted(TRIGGER_TYPES if is_trigger else STEP_TYPES))
        if kind == "union_tag_not_found":
            return [((*loc, "type"), f"field required (the {what} type, one of: {known})")]
        return [
            ((*loc, "type"), f"unknown {what} type {ctx.get('tag')!r} (expected one of: {known})")
        ]
    if kind == "extra_forbidden":
        field = raw[-1] if raw else ""
        model = _model_at(raw[:-1])
        message = f"unknown field {field!r}"
        if model is not None:
            allowed = _field_names(model)
            close = difflib.get_close_matches(str(field), allowed, n=1)
            hint = f"did you mean {close[0]!r}?" if close else f"expected: {', '.join(allowed)}"
            message += f" ({hint})"
        return [(loc, message)]
    if kind in ("value_error", "assertion_error"):
        cause = ctx.get("error")
        return [(loc, str(cause) if cause is not None else error["msg"])]
    if kind in ("literal_error", "enum"):
        given = error.get("input")
        expected = _quoted_choices(str(ctx.get("expected", "")))
        return [(loc, f"{given!r} is not one of: {expected}")]
    if kind in ("too_short", "string_too_short"):
        minimum = ctx.get("min_length", 1)
        if minimum == 1:
            return [(loc, "must not be empty")]
        return [(loc, f"needs at least {minimum} items")]
    if kind in ("too_long", "string_too_long"):
        unit = "characters" if kind == "string_too_long" else "items"
        return [(loc, f"must be at most {ctx.get('max_length')} {unit}")]
    bounds = {
        "greater_than": "greater than",
        "greater_than_equal": "at least",
        "less_than": "less than",
        "less_than_equal": "at most",
    }
    if kind in bounds:
        limit = next(iter(ctx.values()), "")
        if isinstance(limit, float) and limit.is_integer():
            limit = int(limit)
        return [(loc, f"must be {bounds[kind]} {limit}")]
    if kind in _SIMPLE_MESSAGES:
        return [(loc, _SIMPLE_MESSAGES[kind])]
    message = str(error["msg"])
    return [(loc, message[:1].lower() + message[1:])]


_TOP_ORDER = {name: index for index, name in enumerate(FlowDefinition.model_fields)}


def _sort_key(loc: _Loc) -> tuple[Any, ...]:
    if not loc:
        return (-1,)
    head = loc[0]
    rank = _TOP_ORDER.get(str(head), len(_TOP_ORDER)) if isinstance(head, str) else 0
    rest = tuple(
        (0, part) if isinstance(part, int) else (1, {"then": 3, "else": 4}.get(part, 2))
        for part in loc[1:]
    )
    return (rank, *rest)


def _finish_errors(errors: Iterable[_Err]) -> list[FieldError]:
    unique: dict[tuple[str, str], _Loc] = {}
    for loc, msg in errors:
        unique.setdefault((_render_loc(loc), msg), loc)
    ordered = sorted(unique.items(), key=lambda item: _sort_key(item[1]))
    return [FieldError(loc, msg) for (loc, msg), _ in ordered]


# ---------------------------------------------------------------------------------------
# Load
# ---------------------------------------------------------------------------------------


def definition_from_dict(data: Any) -> FlowDefinition:
    """Validate already-parsed data (YAML/JSON names). Raises DefinitionError."""
    if not isinstance(data, Mapping):
        raise DefinitionError(
            [FieldError("", f"a flow definition must be a mapping, not {_type_name(data)}")]
        )
    errors: list[_Err] = []
    definition: FlowDefinition | None = None
    try:
        prepared = _prepare(data)
        try:
            definition = FlowDefinition.model_validate(
                prepared, context={"_skip_tree_checks": True}
            )
        except ValidationError as exc:
            for error in exc.errors():
                errors.extend(_convert(error))
        errors.extend(_tree_errors(prepared))
    except RecursionError:
        raise DefinitionError([FieldError("", "the definition is nested too deeply")]) from None
    if errors or definition is None:
        raise DefinitionError(_finish_errors(errors))
    return definition


def _type_name(value: Any) -> str:
    if value is None:
        return "empty"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return "text"
    return f"a {type(value).__name__}"


class _Loader(yaml.SafeLoader):
    """SafeLoader that rejects duplicate keys instead of keeping the last one."""


def _construct_mapping(loader: _Loader, node: yaml.MappingNode) -> dict[Any, Any]:
    loader.flatten_mapping(node)
    seen: set[Any] = set()
    for key_node, _value in node.value:
        key = loader.construct_object(key_node)
        try:
            duplicate = key in seen
        except TypeError:
            continue
        if duplicate:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}", key_node.start_mark
            )
        seen.add(key)
    return loader.construct_mapping(node)


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)

_CUT_BY_COMMENT = re.compile(r"\s+(#[^\s#]\S*)")


MAX_TEXT = 1_000_000
_MAX_NODES = 50_000


def _yaml_children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


def _check_yaml_graph(root: yaml.Node) -> None:
    """Reject recursive aliases and alias bombs (size counted with aliases expanded)."""
    sizes: dict[int, int] = {}
    on_path: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, finished = stack.pop()
        key = id(node)
        if finished:
            on_path.discard(key)
            total = 1 + sum(sizes[id(child)] for child in _yaml_children(node))
            sizes[key] = min(total, _MAX_NODES + 1)
            continue
        if key in sizes:
            continue
        if key in on_path:
            raise DefinitionError([FieldError("yaml", "recursive aliases are not allowed")])
        on_path.add(key)
        stack.append((node, True))
        stack.extend((child, False) for child in _yaml_children(node))
    if sizes[id(root)] > _MAX_NODES:
        raise DefinitionError(
            [FieldError("yaml", f"the definition is too large (over {_MAX_NODES} values)")]
        )


def _load_yaml(text: str) -> tuple[Any, list[FieldError]]:
    """Load YAML; also report plain values cut short by an accidental comment.

    ``channel: #general`` or ``text: see #help`` silently lose ``#general`` / ``#help``
    in YAML: a space followed by ``#`` starts a comment. A comment glued to a word right
    after a plain value is almost always a channel name that needed quotes.
    """
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        if node is not None:
            _check_yaml_graph(node)
        data = loader.construct_document(node) if node is not None else None
    finally:
        loader.dispose()
    lines = text.splitlines()
    problems: list[FieldError] = []
    seen: set[int] = set()
    stack = [node] if node is not None else []
    while stack:
        current = stack.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, yaml.MappingNode):
            stack.extend(value for _key, value in reversed(current.value))
        elif isinstance(current, yaml.SequenceNode):
            stack.extend(reversed(current.value))
        elif isinstance(current, yaml.ScalarNode) and current.style is None:
            end = current.end_mark
            rest = lines[end.line][end.column :] if end.line < len(lines) else ""
            match = _CUT_BY_COMMENT.match(rest)
            if match:
                problems.append(
                    FieldError(
                        "yaml",
                        f"line {end.line + 1}: put this value in quotes "
                        f"(YAML reads {match.group(1)!r} as the start of a comment)",
                    )
                )
    problems.sort(key=lambda error: int(error.msg.split(":")[0].split()[1]))
    return data, problems


def _yaml_error(exc: yaml.YAMLError) -> DefinitionError:
    if isinstance(exc, yaml.MarkedYAMLError):
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = exc.problem or exc.context or "invalid YAML"
        return DefinitionError([FieldError("yaml", f"{where}{problem}")])
    return DefinitionError([FieldError("yaml", str(exc))])


def _parse_yaml(text: str) -> Any:
    try:
        data, comment_errors = _load_yaml(text)
    except yaml.YAMLError as exc:
        raise _yaml_error(exc) from None
    except RecursionError:
        raise DefinitionError([FieldError("yaml", "the definition is nested too deeply")]) from None
    if comment_errors:
        raise DefinitionError(comment_errors)
    return data


def parse_definition(text: str) -> FlowDefinition:
    """Parse YAML, or JSON when the text starts with ``{``. Raises DefinitionError.

    Syntax errors are reported at loc ``yaml`` or ``json`` with their line number.
    """
    stripped = text.lstrip("\ufeff \t\r\n")
    if not stripped:
        raise DefinitionError([FieldError("yaml", "the definition is empty")])
    if len(text) > MAX_TEXT:
        raise DefinitionError(
            [FieldError("yaml", f"the definition is too large (over {MAX_TEXT} characters)")]
        )
    source = "yaml"
    if stripped.startswith("{"):
        source = "json"
        try:
            data = json.loads(stripped)
        except json.JSONDecodeError as exc:
            line = exc.lineno + text[: len(text) - len(stripped)].count("\n")
            json_error = DefinitionError(
                [FieldError("json", f"line {line}, column {exc.colno}: {exc.msg}")]
            )
            try:  # a YAML flow mapping such as {name: x, steps: [...]}
                data = _parse_yaml(text)
            except DefinitionError:
                raise json_error from None
            source = "yaml"
        except RecursionError:
            raise DefinitionError(
                [FieldError("json", "the definition is nested too deeply")]
            ) from None
    else:
        data = _parse_yaml(text)
    if not isinstance(data, Mapping):
        raise DefinitionError(
            [FieldError(source, f"the top level must be a mapping, not {_type_name(data)}")]
        )
    return definition_from_dict(data)


# ---------------------------------------------------------------------------------------
# Dump
# ---------------------------------------------------------------------------------------


def _plain(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return _dump_model(value, None, all_ids=True)
    if isinstance(value, Mapping):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    return value


def _dump_steps(
    steps: Sequence[BaseModel], parent: str | None, branch: str, all_ids: bool
) -> list[dict[str, Any]]:
    return [
        _dump_model(step, _auto_id(parent, branch, index), all_ids=all_ids)
        for index, step in enumerate(steps)
    ]


def _dump_model(model: BaseModel, auto_id: str | None, *, all_ids: bool) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, field in type(model).model_fields.items():
        value = getattr(model, name)
        key = field.alias or name
        if name in ("type", "kind"):
            out[key] = value
        elif isinstance(model, _StepBase) and name == "id":
            if value and (all_ids or value != auto_id):
                out[key] = value
        elif isinstance(model, FlowInput) and name == "label":
            if value != model.id:
                out[key] = value
        elif name in ("steps", "then", "else_"):
            if value or field.is_required():
                parent = None if name == "steps" else getattr(model, "id", None)
                out[key] = _dump_steps(value, parent, key, all_ids)
        elif field.is_required() or value != field.get_default(call_default_factory=True):
            out[key] = _plain(value)
    return out


def to_dict(defn: FlowDefinition, *, all_ids: bool = False) -> dict[str, Any]:
    """Plain JSON-ready data in YAML names, defaults omitted.

    Derived step ids are left out unless ``all_ids`` (the result still parses back to an
    equal definition either way).
    """
    return _dump_model(defn, None, all_ids=all_ids)


class _Dumper(yaml.SafeDumper):
    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        super().increase_indent(flow, False)


_ODD_BREAKS = ("\r", "\x85", "\u2028", "\u2029")


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    if any(ch in value for ch in _ODD_BREAKS):
        # YAML folds these line breaks when reading unescaped text: escape them.
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style='"')
    if "\n" in value:
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|")
    if value.startswith("{") and "'" in value and '"' not in value:
        # "{{ x == 'a' }}" reads better than '{{ x == ''a'' }}'
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style='"')
    return dumper.represent_scalar("tag:yaml.org,2002:str", value)


_Dumper.add_representer(str, _represent_str)


def dump_yaml(defn: FlowDefinition) -> str:
    """Readable YAML (model key order, defaults omitted)."""
    return yaml.dump(
        to_dict(defn),
        Dumper=_Dumper,
        sort_keys=False,
        allow_unicode=True,
        default_flow_style=False,
        width=100,
    )


def dump_json(defn: FlowDefinition) -> str:
    return json.dumps(to_dict(defn), indent=2, ensure_ascii=False) + "\n"


def template_fields(defn: FlowDefinition) -> Iterator[tuple[str, str]]:
    """``(loc, template)`` for every template-bearing string, in document order."""
    for loc, text, _step in _raw_templates(to_dict(defn, all_ids=True)):
        yield _render_loc(loc), text

"""Small value validators shared by the parts of a definition, and their base model."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import timedelta
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict

from flows.durations import parse_duration
from flows.safe_regex import UserRegexError, compile_user_regex
from flows.slack_ids import (
    CHANNEL_MENTION,
    CHANNEL_NAME,
    CONVERSATION_ID,
    parse_channel,
    parse_principal,
    parse_user,
)

IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# Derived ids of nested steps hold dots: ``route.then1``, ``loop.steps2``, ``ask.branch1_2``.
_STEP_ID = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*")
_TEMPLATE_MARKERS = ("{{", "{%", "{#")


def is_template(value: str) -> bool:
    return any(marker in value for marker in _TEMPLATE_MARKERS)


def identifier(value: str) -> str:
    if not IDENT.fullmatch(value):
        raise ValueError(
            f"invalid identifier {value!r} (use letters, digits and _, not starting with a digit)"
        )
    return value


def step_id(value: str) -> str:
    if value and not _STEP_ID.fullmatch(value):
        raise ValueError(
            f"invalid step id {value!r} (use letters, digits and _, not starting with a digit)"
        )
    return value


def strip(value: Any) -> Any:
    return value.strip() if isinstance(value, str) else value


def strip_or_none(value: Any) -> Any:
    if isinstance(value, str):
        value = value.strip()
        return value or None
    return value


def duration(value: Any) -> Any:
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


def channel_ref(value: str) -> str:
    """A channel an event trigger listens to: ``#name``, ``C123`` or ``<#C123|name>``."""
    value = value.strip()
    if CHANNEL_NAME.fullmatch(value) or parse_channel(value) is not None:
        return value
    raise ValueError(f"invalid channel {value!r} (expected #name, a channel id or <#C…>)")


def channel_target(value: str) -> str:
    """Where a message goes: a channel reference, a conversation id or a template."""
    value = value.strip()
    if is_template(value) or CONVERSATION_ID.fullmatch(value):
        return value
    if CHANNEL_NAME.fullmatch(value) or CHANNEL_MENTION.fullmatch(value):
        return value
    raise ValueError(
        f"invalid channel {value!r} (expected #name, a channel id, <#C…> or a template)"
    )


def user_target(value: str) -> str:
    value = value.strip()
    if is_template(value) or parse_user(value) is not None:
        return value
    raise ValueError(f"invalid user {value!r} (expected <@U…>, a user id or a template)")


def approver(value: str) -> str:
    value = value.strip()
    if is_template(value) or parse_principal(value) is not None:
        return value
    if CHANNEL_NAME.fullmatch(value):  # a channel by name, resolved when the step runs
        return value
    raise ValueError(
        f"invalid approver {value!r} (expected <@U…>, <!subteam^S…>, <#C…>, #name, an id "
        "or a template)"
    )


def timezone_name(value: str) -> str:
    value = value.strip()
    try:
        ZoneInfo(value)
    except Exception:
        raise ValueError(
            f"unknown timezone {value!r} (use an IANA name like Europe/Paris)"
        ) from None
    return value


def regex(value: str) -> str:
    """A pattern RE2 accepts (linear-time matching: no backreferences or lookaround)."""
    try:
        compile_user_regex(value)
    except UserRegexError as exc:
        raise ValueError(f"invalid regular expression: {exc}") from None
    return value


def str_list(value: Any) -> Any:
    """YAML turns ``[1, 2]`` into numbers; labels are text. yes/no must be quoted."""
    if not isinstance(value, list):
        return value
    out = []
    for item in value:
        if isinstance(item, bool):
            raise ValueError("quote yes/no/true/false/on/off values (YAML reads them as booleans)")
        out.append(str(item) if isinstance(item, (int, float)) else item)
    return out


def str_dict(value: Any) -> Any:
    if not isinstance(value, Mapping):
        return value
    return {
        str(k): (str(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else v)
        for k, v in value.items()
    }


Identifier = Annotated[str, AfterValidator(identifier)]
Duration = Annotated[str, BeforeValidator(duration)]


class Model(BaseModel):
    """The base of every part of a definition: unknown fields are errors."""

    model_config = ConfigDict(
        extra="forbid",
        populate_by_name=True,
        coerce_numbers_to_str=True,
        str_strip_whitespace=False,
    )

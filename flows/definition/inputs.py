"""Inputs: values asked when an instant flow starts, and how typed text becomes them."""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from datetime import date
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, model_validator

from flows import bounded
from flows.definition.errors import Loc, fail
from flows.definition.fields import Identifier, Model, str_list, strip_or_none
from flows.slack_ids import CHANNEL_NAME, parse_channel, parse_user

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


# --- typed text → value, one function per input type (text stripped and non-empty) ----


def _number(text: str, _choices: list[str]) -> InputValue:
    if len(text) > bounded.MAX_NUMBER_CHARS and _FLOAT.fullmatch(text):
        raise ValueError(f"a number of at most {bounded.MAX_NUMBER_CHARS} characters is expected")
    if _INT.fullmatch(text):
        return bounded.whole_number(text)
    if _FLOAT.fullmatch(text):
        number = float(text)
        if math.isfinite(number):
            return number
        raise ValueError("the number is too large")
    raise ValueError(f"expected a number, got {_shown(text)}")


def _shown(text: str) -> str:
    return repr(text if len(text) <= 60 else text[:57] + "...")


def _boolean(text: str, _choices: list[str]) -> InputValue:
    lowered = text.lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ValueError(f"expected yes or no, got {text!r}")


def _date(text: str, _choices: list[str]) -> InputValue:
    if _ISO_DATE.fullmatch(text):
        try:
            return date.fromisoformat(text).isoformat()
        except ValueError:
            pass
    raise ValueError(f"expected a date like 2024-05-31, got {text!r}")


def _user(text: str, _choices: list[str]) -> InputValue:
    user = parse_user(text)
    if user is not None:
        return user
    raise ValueError(f"expected a user like @someone, got {text!r}")


def _channel(text: str, _choices: list[str]) -> InputValue:
    channel = parse_channel(text)
    if channel is not None:
        return channel
    if CHANNEL_NAME.fullmatch(text):
        return text
    raise ValueError(f"expected a channel like #general, got {text!r}")


def _choice(text: str, choices: list[str]) -> InputValue:
    if text in choices:
        return text
    for choice in choices:
        if choice.lower() == text.lower():
            return choice
    raise ValueError(f"{text!r} is not one of: {', '.join(choices)}")


_COERCE: dict[str, Callable[[str, list[str]], InputValue]] = {
    "number": _number,
    "boolean": _boolean,
    "date": _date,
    "user": _user,
    "channel": _channel,
    "choice": _choice,
}


def _choice_errors(choices: list[str]) -> list[tuple[Loc | str, str]]:
    if not choices:
        return [("choices", "a choice input needs a non-empty list of choices")]
    errors: list[tuple[Loc | str, str]] = []
    seen: set[str] = set()
    for index, choice in enumerate(choices):
        if not choice.strip():
            errors.append((("choices", index), "must not be empty"))
        elif choice in seen:
            errors.append((("choices", index), f"duplicate choice {choice!r}"))
        seen.add(choice)
    return errors


class FlowInput(Model):
    """A value asked when an instant flow starts (``/flow run name key=value`` or a modal)."""

    id: Identifier
    label: str = ""
    type: Annotated[InputType, BeforeValidator(_input_type)] = "text"
    required: bool = False
    default: Any = None
    choices: Annotated[list[str], BeforeValidator(str_list)] = Field(default_factory=list)
    description: Annotated[str | None, BeforeValidator(strip_or_none)] = None

    @model_validator(mode="after")
    def _check(self) -> FlowInput:
        if not self.label.strip():
            self.label = self.id
        errors: list[tuple[Loc | str, str]] = []
        if self.type == "choice":
            errors = _choice_errors(self.choices)
        elif self.choices:
            errors.append(("choices", "choices are only allowed when type is choice"))
        if self.default is not None and not errors:
            try:
                self.default = self._normalize_default(self.default)
            except ValueError as exc:
                errors.append(("default", str(exc)))
        if errors:
            fail(errors)
        return self

    def _normalize_default(self, value: Any) -> InputValue:
        if isinstance(value, str):
            return self.coerce(value)
        is_number = isinstance(value, (int, float)) and not isinstance(value, bool)
        if self.type == "number" and is_number:
            if isinstance(value, float) and not math.isfinite(value):
                raise ValueError("expected a finite number")
            if isinstance(value, int) and not bounded.INT64_MIN <= value <= bounded.INT64_MAX:
                raise ValueError(bounded.TOO_LARGE)
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
        return _COERCE[self.type](text, self.choices)

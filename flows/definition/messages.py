"""Pydantic's errors, reworded for people who write flows, at YAML locations."""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from pydantic import BaseModel

from flows.definition.errors import Err, FieldError, Loc, render_loc
from flows.definition.inputs import FlowInput
from flows.definition.model import ConnectionSlotSpec, FlowDefinition
from flows.definition.steps import STEP_CLASSES, STEP_TYPES
from flows.definition.triggers import TRIGGER_CLASSES, TRIGGER_TYPES

_LIST_ITEMS: dict[str, type[BaseModel]] = {"inputs": FlowInput, "connections": ConnectionSlotSpec}


def _clean_loc(raw: Sequence[str | int]) -> Loc:
    """Pydantic's location without its union tags and validator names."""
    parts: list[str | int] = []
    for index, part in enumerate(raw):
        previous = raw[index - 1] if index else None
        if isinstance(part, str):
            if part == "[key]" or part.startswith(("function-", "tagged-union[")):
                continue
            if part in STEP_CLASSES and isinstance(previous, int):
                continue
            if part in TRIGGER_CLASSES and previous == "trigger":
                continue
        parts.append(part)
    return tuple(parts)


def _model_at(raw: Sequence[str | int]) -> type[BaseModel] | None:
    if not raw:
        return FlowDefinition
    last = raw[-1]
    if isinstance(last, str):
        if last in STEP_CLASSES and len(raw) >= 2 and isinstance(raw[-2], int):
            return STEP_CLASSES[last]
        if last in TRIGGER_CLASSES and len(raw) >= 2 and raw[-2] == "trigger":
            return TRIGGER_CLASSES[last]
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
_BOUNDS = {
    "greater_than": "greater than",
    "greater_than_equal": "at least",
    "less_than": "less than",
    "less_than_equal": "at most",
}

# --- one function per kind of pydantic error: (error, raw loc, clean loc) → errors ----

_Converter = Callable[[Mapping[str, Any], tuple[Any, ...], Loc], list[Err]]


def _ours(error: Mapping[str, Any], _raw: tuple[Any, ...], loc: Loc) -> list[Err]:
    """Errors raised by our validators (``errors.fail``) carry their own locations."""
    return [((*loc, *sub), msg) for sub, msg in (error.get("ctx") or {}).get("errors", [])]


def _union_tag(error: Mapping[str, Any], _raw: tuple[Any, ...], loc: Loc) -> list[Err]:
    is_trigger = bool(loc) and loc[-1] == "trigger"
    what = "trigger" if is_trigger else "step"
    known = ", ".join(sorted(TRIGGER_TYPES if is_trigger else STEP_TYPES))
    if error["type"] == "union_tag_not_found":
        return [((*loc, "type"), f"field required (the {what} type, one of: {known})")]
    tag = (error.get("ctx") or {}).get("tag")
    return [((*loc, "type"), f"unknown {what} type {tag!r} (expected one of: {known})")]


def _extra(_error: Mapping[str, Any], raw: tuple[Any, ...], loc: Loc) -> list[Err]:
    field = raw[-1] if raw else ""
    model = _model_at(raw[:-1])
    message = f"unknown field {field!r}"
    if model is not None:
        allowed = _field_names(model)
        close = difflib.get_close_matches(str(field), allowed, n=1)
        hint = f"did you mean {close[0]!r}?" if close else f"expected: {', '.join(allowed)}"
        message += f" ({hint})"
    return [(loc, message)]


def _value(error: Mapping[str, Any], _raw: tuple[Any, ...], loc: Loc) -> list[Err]:
    cause = (error.get("ctx") or {}).get("error")
    return [(loc, str(cause) if cause is not None else error["msg"])]


def _literal(error: Mapping[str, Any], _raw: tuple[Any, ...], loc: Loc) -> list[Err]:
    expected = _quoted_choices(str((error.get("ctx") or {}).get("expected", "")))
    return [(loc, f"{error.get('input')!r} is not one of: {expected}")]


def _too_short(error: Mapping[str, Any], _raw: tuple[Any, ...], loc: Loc) -> list[Err]:
    minimum = (error.get("ctx") or {}).get("min_length", 1)
    if minimum == 1:
        return [(loc, "must not be empty")]
    return [(loc, f"needs at least {minimum} items")]


def _too_long(error: Mapping[str, Any], _raw: tuple[Any, ...], loc: Loc) -> list[Err]:
    unit = "characters" if error["type"] == "string_too_long" else "items"
    return [(loc, f"must be at most {(error.get('ctx') or {}).get('max_length')} {unit}")]


def _bound(error: Mapping[str, Any], _raw: tuple[Any, ...], loc: Loc) -> list[Err]:
    limit = next(iter((error.get("ctx") or {}).values()), "")
    if isinstance(limit, float) and limit.is_integer():
        limit = int(limit)
    return [(loc, f"must be {_BOUNDS[error['type']]} {limit}")]


_CONVERTERS: dict[str, _Converter] = {
    "flow_errors": _ours,
    "union_tag_invalid": _union_tag,
    "union_tag_not_found": _union_tag,
    "extra_forbidden": _extra,
    "value_error": _value,
    "assertion_error": _value,
    "literal_error": _literal,
    "enum": _literal,
    "too_short": _too_short,
    "string_too_short": _too_short,
    "too_long": _too_long,
    "string_too_long": _too_long,
    **dict.fromkeys(_BOUNDS, _bound),
}


def convert(error: Mapping[str, Any]) -> list[Err]:
    """One pydantic error → our located messages."""
    raw = tuple(error["loc"])
    loc = _clean_loc(raw)
    kind = error["type"]
    if kind in _CONVERTERS:
        return _CONVERTERS[kind](error, raw, loc)
    if kind in _SIMPLE_MESSAGES:
        return [(loc, _SIMPLE_MESSAGES[kind])]
    message = str(error["msg"])
    return [(loc, message[:1].lower() + message[1:])]


_TOP_ORDER = {name: index for index, name in enumerate(FlowDefinition.model_fields)}


def _sort_key(loc: Loc) -> tuple[Any, ...]:
    if not loc:
        return (-1,)
    head = loc[0]
    rank = _TOP_ORDER.get(str(head), len(_TOP_ORDER)) if isinstance(head, str) else 0
    rest = tuple(
        (0, part) if isinstance(part, int) else (1, {"then": 3, "else": 4}.get(part, 2))
        for part in loc[1:]
    )
    return (rank, *rest)


def finish_errors(errors: Iterable[Err]) -> list[FieldError]:
    """Without duplicates, in document order."""
    unique: dict[tuple[str, str], Loc] = {}
    for loc, msg in errors:
        unique.setdefault((render_loc(loc), msg), loc)
    ordered = sorted(unique.items(), key=lambda item: _sort_key(item[1]))
    return [FieldError(loc, msg) for (loc, msg), _ in ordered]

"""Building a FlowDefinition from data: validated (what people submit) or trusted (stored).

:func:`definition_from_dict` validates everything and reports every problem at once.
:func:`definition_from_storage` rebuilds a definition that was validated when it was
saved, without validating it again: reads from storage are frequent (every resync, every
run loaded) and full validation costs about a millisecond a definition.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from flows.definition.checks import get, implied_kind, prepare, tree_errors
from flows.definition.errors import DefinitionError, Err, FieldError
from flows.definition.failure import RetryPolicy
from flows.definition.inputs import FlowInput
from flows.definition.messages import convert, finish_errors
from flows.definition.model import SKIP_TREE_CHECKS, ConnectionSlotSpec, FlowDefinition, assign_ids
from flows.definition.steps import STEP_CLASSES
from flows.definition.triggers import TRIGGER_CLASSES


def type_name(value: Any) -> str:
    if value is None:
        return "empty"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return "text"
    return f"a {type(value).__name__}"


def definition_from_dict(data: Any) -> FlowDefinition:
    """Validate already-parsed data (YAML/JSON names). Raises DefinitionError."""
    if not isinstance(data, Mapping):
        raise DefinitionError(
            [FieldError("", f"a flow definition must be a mapping, not {type_name(data)}")]
        )
    errors: list[Err] = []
    definition: FlowDefinition | None = None
    try:
        prepared = prepare(data)
        try:
            definition = FlowDefinition.model_validate(prepared, context={SKIP_TREE_CHECKS: True})
        except ValidationError as exc:
            for error in exc.errors():
                errors.extend(convert(error))
        errors.extend(tree_errors(prepared))
    except RecursionError:
        raise DefinitionError([FieldError("", "the definition is nested too deeply")]) from None
    if errors or definition is None:
        raise DefinitionError(finish_errors(errors))
    return definition


# --- the trusted loader ---------------------------------------------------------------

_M = TypeVar("_M", bound=BaseModel)


@functools.cache
def _field_keys(model: type[BaseModel]) -> tuple[tuple[str, str | None, Any], ...]:
    """(name, alias, default factory or None) of each field of ``model``."""
    return tuple(
        (name, field.alias, field.default_factory) for name, field in model.model_fields.items()
    )


def _built(model: type[_M], data: Mapping[str, Any], **parts: Any) -> _M:
    """``model`` from values in YAML names (aliases such as ``if``), without validation."""
    values = {**data, **parts}
    fields_set: set[str] = set()
    for name, alias, factory in _field_keys(model):
        if name in values or alias in values:
            fields_set.add(name)
        elif factory is not None:
            # model_construct would call it too, but inspects its signature first (slow).
            values[name] = factory()
    return model.model_construct(fields_set, **values)


def _steps(items: Any) -> list[Any]:
    steps = []
    for item in items:
        model = STEP_CLASSES[item["type"]]
        kind = item["type"]
        # Failure handling (SPEC §12): every step may have a retry policy.
        extra = {"retry": _built(RetryPolicy, item["retry"])} if item.get("retry") else {}
        if kind == "condition":
            branches = {key: _steps(get(item, key) or ()) for key in ("then", "else")}
            steps.append(_built(model, item, **branches, **extra))
        elif kind == "ask":  # its fields are flow inputs
            fields = [_input(f) for f in item["fields"]]
            steps.append(_built(model, item, fields=fields, **extra))
        elif kind in ("for_each", "parallel", "switch", "try"):
            steps.append(_built(model, item, **_nested(item), **extra))
        else:
            steps.append(_built(model, item, **extra))
    return steps


def _nested(item: Mapping[str, Any]) -> dict[str, Any]:
    kind = item["type"]
    if kind == "try":
        return {key: _steps(item.get(key) or ()) for key in ("steps", "catch", "finally")}
    if kind == "for_each":
        return {"steps": _steps(item["steps"])}
    if kind == "parallel":
        return {"branches": [_steps(branch) for branch in item["branches"]]}
    cases = {str(key): _steps(body) for key, body in (item.get("cases") or {}).items()}
    return {"cases": cases, "default": _steps(item.get("default") or ())}


def _input(item: Mapping[str, Any]) -> FlowInput:
    # A label equal to the id is not stored (see dump.py).
    return _built(FlowInput, item, label=item.get("label") or item["id"])


def _trusted(data: Mapping[str, Any]) -> FlowDefinition:
    parts: dict[str, Any] = {"steps": _steps(data["steps"])}
    # Only the fields present are set, as validation would (`model_fields_set`).
    if "inputs" in data:
        parts["inputs"] = [_input(item) for item in data["inputs"] or ()]
    if "connections" in data:
        parts["connections"] = [_built(ConnectionSlotSpec, c) for c in data["connections"] or ()]
    if "trigger" in data:
        trigger = data["trigger"]
        parts["trigger"] = _built(TRIGGER_CLASSES[trigger["type"]], trigger)
    if "kind" not in data:
        kind = implied_kind(data)
        if kind is not None:
            parts["kind"] = kind
    definition = _built(FlowDefinition, data, **parts)
    assign_ids(definition.steps, None, "")
    return definition


def definition_from_storage(data: Mapping[str, Any]) -> FlowDefinition:
    """A definition as :func:`to_dict` stored it, rebuilt without validating it again.

    Only for data this program validated and wrote (flows, their versions, runs): what a
    person submits goes through :func:`definition_from_dict`. The models share nested
    lists and mappings with ``data``: pass data nobody else keeps using (a document just
    read). Data of an unexpected shape (an unknown step type…) is validated in full.
    """
    try:
        return _trusted(data)
    except (KeyError, TypeError, AttributeError):
        return definition_from_dict(data)

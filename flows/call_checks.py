"""`call_flow` steps checked when their flow is saved (SPEC §11).

The whole-flow checks (`flows.definition.checks`) see one definition; these look the
called flow up in the workspace. A `flow` given literally (not a template) that names an
existing flow must name an instant flow that is not the flow being saved (by name or by
id), and the step's inputs must fit the child's: no unknown name, every required input
without a default given, and each literal value (not a template) of the input's type.
Every problem is reported at once, with its place (`steps[2].inputs.who`). A child that
does not exist yet is not an error here: it is looked up again when the step runs.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from flows.definition import FlowDefinition
from flows.definition.checks import raw_steps
from flows.definition.errors import DefinitionError, Err, FieldError, render_loc
from flows.errors import FlowNotFound
from flows.records import FlowRecord

Find = Callable[[str, str], Awaitable[FlowRecord]]


def _is_template(value: Any) -> bool:
    return isinstance(value, str) and ("{{" in value or "{%" in value)


def _value_error(spec: Any, value: Any) -> str | None:
    """Why a literal value does not fit the input (None: it fits, or is a template)."""
    if value is None or _is_template(value) or isinstance(value, (bool, int, float)):
        return None
    if value == "" and spec.type != "text":
        return None
    try:
        spec.coerce(str(value))
    except ValueError as exc:
        return str(exc)
    return None


def _input_errors(loc: tuple[Any, ...], child: FlowRecord, given: Mapping[str, Any]) -> list[Err]:
    errors: list[Err] = []
    known = ", ".join(i.id for i in child.definition.inputs) or "none"
    for name, value in given.items():
        spec = child.definition.input(name)
        if spec is None:
            message = f"{child.name} has no input {name!r} (its inputs: {known})"
            errors.append(((*loc, "inputs", name), message))
            continue
        problem = _value_error(spec, value)
        if problem:
            errors.append(((*loc, "inputs", name), problem))
    missing = [
        spec.id
        for spec in child.definition.inputs
        if spec.required and spec.default is None and given.get(spec.id) in (None, "")
    ]
    if missing:
        message = f"{child.name} needs the input(s) {', '.join(missing)}"
        errors.append(((*loc, "inputs"), message))
    return errors


async def call_errors(
    find: Find, team_id: str, definition: FlowDefinition, flow_id: str | None
) -> list[FieldError]:
    """The problems of the definition's call_flow steps whose child exists."""
    data = definition.model_dump(mode="json")
    errors: list[Err] = []
    for step in raw_steps(data.get("steps"), ("steps",), None, ""):
        ref = step.data.get("flow") if step.type == "call_flow" else None
        if not isinstance(ref, str) or not ref.strip() or _is_template(ref):
            continue
        try:
            child = await find(team_id, ref)
        except FlowNotFound:
            continue
        if flow_id is not None and child.id == flow_id:
            errors.append(((*step.loc, "flow"), "a flow cannot call itself"))
            continue
        if child.kind != "instant":
            message = f"{child.name} is a {child.kind} flow: only an instant flow can be called"
            errors.append(((*step.loc, "flow"), message))
            continue
        given = step.data.get("inputs")
        errors += _input_errors(step.loc, child, given if isinstance(given, Mapping) else {})
    return [FieldError(render_loc(loc), message) for loc, message in errors]


async def check_calls(
    find: Find, team_id: str, definition: FlowDefinition, flow_id: str | None
) -> None:
    """Raise DefinitionError with every problem of the call_flow steps, if any."""
    errors = await call_errors(find, team_id, definition, flow_id)
    if errors:
        raise DefinitionError(errors)


__all__ = ["call_errors", "check_calls"]

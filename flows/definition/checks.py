"""Raw-data preparation and the checks that need the whole definition.

They run on the plain data (YAML names), even when other parts are invalid, so that one
submission reports every problem at once.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import date, datetime, time
from typing import Any

import jinja2
from jinja2 import meta
from jinja2 import nodes as jnodes

from flows.definition.errors import Err, Loc, render_loc
from flows.definition.fields import is_template
from flows.definition.steps import PY_NAMES, TEMPLATE_FIELDS, auto_id, nested_bodies
from flows.definition.triggers import AUTOMATED_TRIGGERS, TRIGGER_TYPES
from flows.templating import CONTEXT_NAMES, ENV

# --- preparation ----------------------------------------------------------------------


def _plainify(value: Any) -> Any:
    """YAML extras → JSON-like data: dates become ISO strings, keys strings."""
    if isinstance(value, Mapping):
        return {str(k) if not isinstance(k, str) else k: _plainify(v) for k, v in value.items()}
    if isinstance(value, (list, set, frozenset, tuple)):
        return [_plainify(v) for v in value]
    if isinstance(value, (datetime, date, time)):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return value


def implied_kind(data: Mapping[str, Any]) -> str | None:
    """The kind a definition without ``kind`` has, from its trigger (None: instant)."""
    trigger = data.get("trigger")
    ttype = trigger.get("type") if isinstance(trigger, Mapping) else None
    if ttype == "schedule":
        return "scheduled"
    if ttype in AUTOMATED_TRIGGERS:
        return "automated"
    return None


def prepare(data: Any) -> Any:
    if not isinstance(data, Mapping):
        return data
    data = _plainify(data)
    if "kind" not in data:
        kind = implied_kind(data)
        if kind is not None:
            data["kind"] = kind
    return data


# --- walking raw data -----------------------------------------------------------------


def get(data: Mapping[str, Any], key: str) -> Any:
    """A field by its YAML name, or by its Python name (``if_``) in model dumps."""
    if key in data:
        return data[key]
    return data.get(PY_NAMES.get(key, key))


#: How deep steps may nest (a for_each in a parallel in a switch…).
MAX_NESTING = 5


@dataclass
class RawStep:
    loc: Loc
    id: str
    type: Any
    data: Mapping[str, Any]
    depth: int = 0  # how many steps contain it
    in_loop: bool = False  # inside a for_each body: templates see item and index
    in_catch: bool = False  # inside a try's catch: templates see error


def raw_steps(
    steps: Any,
    loc: Loc,
    parent: str | None,
    branch: str,
    depth: int = 0,
    in_loop: bool = False,
    in_catch: bool = False,
) -> Iterator[RawStep]:
    if not isinstance(steps, list):
        return
    for index, step in enumerate(steps):
        if not isinstance(step, Mapping):
            continue
        sid = step.get("id")
        final = sid if isinstance(sid, str) and sid else auto_id(parent, branch, index)
        yield RawStep((*loc, index), final, step.get("type"), step, depth, in_loop, in_catch)
        loops = in_loop or step.get("type") == "for_each"
        for name, where, body in nested_bodies(dict(step)):
            catching = in_catch or (step.get("type") == "try" and name == "catch")
            yield from raw_steps(
                body, (*loc, index, *where), final, name, depth + 1, loops, catching
            )


def _strings(value: Any, loc: Loc) -> Iterator[tuple[Loc, str]]:
    if isinstance(value, str):
        yield loc, value
    elif isinstance(value, Mapping):
        for key, item in value.items():
            yield from _strings(item, (*loc, str(key)))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _strings(item, (*loc, index))


def raw_templates(data: Mapping[str, Any]) -> Iterator[tuple[Loc, str, RawStep | None]]:
    for step in raw_steps(data.get("steps"), ("steps",), None, ""):
        for field in TEMPLATE_FIELDS.get(step.type, ()) if isinstance(step.type, str) else ():
            for loc, text in _strings(get(step.data, field), (*step.loc, field)):
                yield loc, text, step
    notify = data.get("notify")
    if isinstance(notify, str):
        yield ("notify",), notify, None
    outputs = data.get("outputs")
    if isinstance(outputs, Mapping):
        for loc, text in _strings(outputs, ("outputs",)):
            yield loc, text, None


# --- templates ------------------------------------------------------------------------

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


_LOOP_NAMES = frozenset({"item", "index"})
_CATCH_NAMES = frozenset({"error"})


def _referenced_name(node: jnodes.Node, root: str, called: set[int]) -> str | None:
    """X in ``root.X`` or ``root['X']``; None for anything else (``root.get()`` included)."""
    target = getattr(node, "node", None)
    if not (isinstance(target, jnodes.Name) and target.name == root):
        return None
    if isinstance(node, jnodes.Getattr):
        return None if id(node) in called else node.attr
    if (
        isinstance(node, jnodes.Getitem)
        and isinstance(node.arg, jnodes.Const)
        and isinstance(node.arg.value, str)
    ):
        return node.arg.value
    return None


def _references(tree: jnodes.Template, root: str) -> list[str]:
    """Names used as ``root.X`` or ``root['X']`` (method calls like ``root.get()`` excluded)."""
    called = {id(call.node) for call in tree.find_all(jnodes.Call)}
    names: list[str] = []
    for node in tree.find_all((jnodes.Getattr, jnodes.Getitem)):
        name = _referenced_name(node, root, called)
        if name is not None and name not in names:
            names.append(name)
    return names


def _step_reference_errors(
    loc: Loc, tree: jnodes.Template, earlier: list[str], all_ids: set[str]
) -> list[Err]:
    errors: list[Err] = []
    for name in _references(tree, "steps"):
        if name in earlier:
            continue
        if name in all_ids:
            errors.append((loc, f"step {name!r} comes later (a step can only use earlier steps)"))
        else:
            known = ", ".join(earlier) if earlier else "none"
            errors.append((loc, f"unknown step {name!r} (earlier steps: {known})"))
    return errors


def _template_errors(
    loc: Loc,
    source: str,
    declared_inputs: list[str] | None,
    earlier: list[str],
    all_ids: set[str],
    in_loop: bool = False,
    in_catch: bool = False,
) -> list[Err]:
    if not is_template(source):
        return []
    try:
        tree = ENV.parse(source)
    except jinja2.TemplateSyntaxError as exc:
        where = f" (line {exc.lineno})" if exc.lineno and "\n" in source else ""
        return [(loc, f"template syntax error: {exc.message}{where}")]
    errors: list[Err] = []
    allowed = _ALLOWED_NAMES | _LOOP_NAMES if in_loop else _ALLOWED_NAMES
    if in_catch:
        allowed = allowed | _CATCH_NAMES
    for name in sorted(meta.find_undeclared_variables(tree) - allowed):
        if name in _LOOP_NAMES:
            errors.append((loc, f"{name!r} is only known inside the steps of a for_each"))
            continue
        if name in _CATCH_NAMES:
            errors.append((loc, f"{name!r} is only known inside the catch steps of a try"))
            continue
        errors.append(
            (loc, f"unknown name {name!r} (templates can use: {', '.join(CONTEXT_NAMES)})")
        )
    if declared_inputs is not None:
        for name in _references(tree, "inputs"):
            if name not in declared_inputs:
                known = ", ".join(declared_inputs) if declared_inputs else "none"
                errors.append((loc, f"unknown input {name!r} (declared: {known})"))
    errors += _step_reference_errors(loc, tree, earlier, all_ids)
    return errors


# --- whole-tree checks ----------------------------------------------------------------


def _article(word: str) -> str:
    return "an" if word[:1] in "aeiou" else "a"


_KIND_TRIGGERS: dict[str, tuple[str, ...]] = {
    "instant": ("manual",),
    "scheduled": ("schedule",),
    "automated": AUTOMATED_TRIGGERS,
}


def _trigger_errors(data: Mapping[str, Any], kind: Any) -> list[Err]:
    if kind not in _KIND_TRIGGERS:
        return []
    expected = _KIND_TRIGGERS[kind]
    trigger = data.get("trigger")
    ttype = trigger.get("type") if isinstance(trigger, Mapping) else None
    if trigger is None and kind != "instant":
        message = f"{_article(kind)} {kind} flow needs a trigger (type: {' | '.join(expected)})"
        return [(("trigger",), message)]
    if isinstance(ttype, str) and ttype in TRIGGER_TYPES and ttype not in expected:
        message = (
            f"{_article(kind)} {kind} flow cannot have a {ttype} trigger "
            f"(expected type: {' | '.join(expected)})"
        )
        return [(("trigger",), message)]
    return []


def _input_errors(inputs: Any, kind: Any) -> tuple[list[str] | None, list[Err]]:
    """The declared input ids (None when ``inputs`` is malformed) and their problems."""
    if inputs is None:
        return [], []
    if not isinstance(inputs, list):
        return None, []
    declared: list[str] = []
    errors: list[Err] = []
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
            message = "inputs of a scheduled flow need a default"
            errors.append((("inputs", index, "default"), message))
    if kind == "automated" and inputs:
        errors.append((("inputs",), "automated flows cannot have inputs (use trigger fields)"))
    return declared, errors


def _slot_errors(connections: Any) -> tuple[list[str] | None, list[Err]]:
    """The declared slots (None when none are declared) and duplicates among them."""
    if not (isinstance(connections, list) and connections):
        return None, []
    slots: list[str] = []
    errors: list[Err] = []
    for index, item in enumerate(connections):
        slot = item.get("slot") if isinstance(item, Mapping) else None
        if isinstance(slot, str):
            if slot in slots:
                errors.append((("connections", index, "slot"), f"duplicate slot {slot!r}"))
            slots.append(slot)
    return slots, errors


def _step_errors(steps: list[RawStep], slots: list[str] | None) -> list[Err]:
    """Duplicate step ids, and http_request steps using an undeclared slot."""
    errors: list[Err] = []
    first_loc: dict[str, Loc] = {}
    for step in steps:
        if step.id in first_loc:
            other = render_loc(first_loc[step.id])
            errors.append(((*step.loc, "id"), f"duplicate step id {step.id!r} (also {other})"))
        else:
            first_loc[step.id] = step.loc
        slot = step.data.get("connection") if step.type == "http_request" else None
        if slots is not None and isinstance(slot, str) and slot not in slots:
            known = ", ".join(slots) if slots else "none"
            message = f"unknown connection slot {slot!r} (declared: {known})"
            errors.append(((*step.loc, "connection"), message))
    return errors


def _all_template_errors(
    data: Mapping[str, Any], steps: list[RawStep], declared: list[str] | None
) -> list[Err]:
    """Every template parses and uses declared inputs and earlier steps only."""
    order = [step.id for step in steps]
    position = {id(step.data): index for index, step in enumerate(steps)}
    all_ids = set(order)
    errors: list[Err] = []
    for loc, source, owner in raw_templates(data):
        earlier = order if owner is None else order[: position[id(owner.data)] + 1]
        in_loop = owner is not None and owner.in_loop
        in_catch = owner is not None and owner.in_catch
        errors.extend(_template_errors(loc, source, declared, earlier, all_ids, in_loop, in_catch))
    return errors


def _nesting_errors(data: Mapping[str, Any], steps: list[RawStep]) -> list[Err]:
    """Steps nested more than MAX_NESTING deep, and a flow calling itself."""
    errors: list[Err] = []
    name = data.get("name")
    for step in steps:
        if step.depth > MAX_NESTING:
            message = f"steps nest at most {MAX_NESTING} levels deep"
            errors.append((step.loc, message))
        target = step.data.get("flow") if step.type == "call_flow" else None
        if isinstance(target, str) and isinstance(name, str):
            if target.strip().lower() == name.strip().lower():
                errors.append(((*step.loc, "flow"), "a flow cannot call itself"))
    return errors


def tree_errors(data: Mapping[str, Any]) -> list[Err]:
    """Checks that need the whole definition. Tolerates malformed parts (pydantic reports)."""
    kind = data.get("kind", "instant")
    declared, input_errors = _input_errors(data.get("inputs"), kind)
    slots, slot_errors = _slot_errors(data.get("connections"))
    steps = list(raw_steps(data.get("steps"), ("steps",), None, ""))
    return [
        *_trigger_errors(data, kind),
        *input_errors,
        *slot_errors,
        *_step_errors(steps, slots),
        *_nesting_errors(data, steps),
        *_all_template_errors(data, steps, declared),
    ]

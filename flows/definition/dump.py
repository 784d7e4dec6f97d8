"""Writing a definition back: plain data in YAML names, YAML or JSON text.

Defaults and derived step ids are left out; parsing the result gives an equal definition.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import yaml
from pydantic import BaseModel
from pydantic.fields import FieldInfo

from flows.definition.checks import raw_templates
from flows.definition.errors import render_loc
from flows.definition.inputs import FlowInput
from flows.definition.steps import StepBase, auto_id

if TYPE_CHECKING:
    from flows.definition.model import FlowDefinition

_BRANCHES = ("steps", "then", "else_")
_SKIP = object()  # a field left out of the dump
# A field's default, by the field's id (fields live as long as their model classes).
# Pydantic's `get_default` inspects the factory's signature on every call: a run's insert
# dumps its definition, and that was most of its cost (issue 20).
_DEFAULTS: dict[int, tuple[FieldInfo, Any]] = {}


def _default(field: FieldInfo) -> Any:
    known = _DEFAULTS.get(id(field))
    if known is None or known[0] is not field:
        known = _DEFAULTS[id(field)] = (field, field.get_default(call_default_factory=True))
    return known[1]


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
        _dump_model(step, auto_id(parent, branch, index), all_ids=all_ids)
        for index, step in enumerate(steps)
    ]


def _derived(model: BaseModel, name: str, value: Any, auto: str | None, all_ids: bool) -> bool:
    """A value validation derives, left out: a step id from its position, a label from
    the input's id."""
    if isinstance(model, StepBase) and name == "id":
        return not value or (not all_ids and value == auto)
    if isinstance(model, FlowInput) and name == "label":
        return bool(value == model.id)
    return False


def _dumped(model: BaseModel, name: str, field: FieldInfo, auto: str | None, all_ids: bool) -> Any:
    """What the dump holds for one field of ``model``, or ``_SKIP``."""
    value = getattr(model, name)
    if name in ("type", "kind"):
        return value
    if isinstance(model, StepBase) and name in ("branches", "cases", "default"):
        return _dump_nested(model, name, value, all_ids)
    if name in _BRANCHES:
        if not (value or field.is_required()):
            return _SKIP
        parent = getattr(model, "id", None) if isinstance(model, StepBase) else None
        return _dump_steps(value, parent, field.alias or name, all_ids)
    if _derived(model, name, value, auto, all_ids):
        return _SKIP
    if field.is_required() or value != _default(field):
        return _plain(value)
    return _SKIP


def _dump_nested(model: StepBase, name: str, value: Any, all_ids: bool) -> Any:
    """The bodies of a parallel (a list of step lists) or a switch (cases, default)."""
    if name == "branches":
        return [
            _dump_steps(body, model.id, f"branch{n + 1}_", all_ids) for n, body in enumerate(value)
        ]
    if name == "cases":
        return {
            key: _dump_steps(body, model.id, f"case{n + 1}_", all_ids)
            for n, (key, body) in enumerate(value.items())
        }
    return _dump_steps(value, model.id, "default", all_ids) if value else _SKIP


def _dump_model(model: BaseModel, auto: str | None, *, all_ids: bool) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, field in type(model).model_fields.items():
        value = _dumped(model, name, field, auto, all_ids)
        if value is not _SKIP:
            out[field.alias or name] = value
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
    for loc, text, _step in raw_templates(to_dict(defn, all_ids=True)):
        yield render_loc(loc), text

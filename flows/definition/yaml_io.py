"""Reading YAML or JSON text into a definition, safely (duplicate keys, alias bombs)."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

import yaml

from flows.definition.errors import DefinitionError, FieldError
from flows.definition.load import definition_from_dict, type_name
from flows.definition.model import FlowDefinition


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


def _cut_by_comment(root: yaml.Node | None, text: str) -> list[FieldError]:
    """Plain values followed by what YAML took for a comment (``channel: #general``)."""
    lines = text.splitlines()
    problems: list[FieldError] = []
    seen: set[int] = set()
    stack = [root] if root is not None else []
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
    return problems


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
    return data, _cut_by_comment(node, text)


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


def _parse_json(text: str, stripped: str) -> tuple[Any, str]:
    """JSON data, or YAML data for a YAML flow mapping such as ``{name: x, steps: [...]}``."""
    try:
        return json.loads(stripped), "json"
    except json.JSONDecodeError as exc:
        line = exc.lineno + text[: len(text) - len(stripped)].count("\n")
        json_error = DefinitionError(
            [FieldError("json", f"line {line}, column {exc.colno}: {exc.msg}")]
        )
        try:
            return _parse_yaml(text), "yaml"
        except DefinitionError:
            raise json_error from None
    except RecursionError:
        raise DefinitionError([FieldError("json", "the definition is nested too deeply")]) from None


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
    if stripped.startswith("{"):
        data, source = _parse_json(text, stripped)
    else:
        data, source = _parse_yaml(text), "yaml"
    if not isinstance(data, Mapping):
        raise DefinitionError(
            [FieldError(source, f"the top level must be a mapping, not {type_name(data)}")]
        )
    return definition_from_dict(data)

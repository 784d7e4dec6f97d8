"""Ready-made flow templates (``flows/templates/*.yaml``).

Each template is a YAML flow definition whose first line is a ``#`` comment describing it.
``list_templates()`` returns them in a stable order, the blank flow first.

Fields a trigger puts in the template context (``{{ trigger.… }}``), by trigger type:

- manual: nothing (use ``inputs`` and ``run``)
- schedule: ``trigger.scheduled_for`` (ISO date-time of the planned run)
- message: ``trigger.user``, ``trigger.channel``, ``trigger.text``, ``trigger.ts``,
  ``trigger.match`` (list of the regex groups), ``trigger.groups`` (named groups dict)
- reaction: ``trigger.user`` (who reacted), ``trigger.reaction`` (emoji name, no colons),
  ``trigger.channel``, ``trigger.ts`` (the message reacted to), ``trigger.item_user``
  (its author)
- member_joined: ``trigger.user``, ``trigger.channel``
- webhook: ``trigger.body`` (parsed JSON body), ``trigger.headers``

Every run also has ``run.id``, ``run.started_by``, ``run.flow`` …, ``inputs.<id>``,
``steps.<step id>.<output>`` and ``vars.<name>``.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from importlib.resources import files
from typing import Any

import yaml

from flows.definition import FlowDefinition, parse_definition

__all__ = ["Template", "get_template", "list_templates"]

# Shown first, in this order; other files follow alphabetically.
_ORDER = (
    "blank",
    "expense-approval",
    "daily-standup",
    "incident-alert",
    "incident-room",
    "welcome-new-members",
    "webhook-to-channel",
    "deploy-request",
)


@dataclass(frozen=True)
class Template:
    key: str  # file name without .yaml, e.g. "expense-approval"
    title: str  # the flow's name
    description: str  # the file's leading comment
    source: str  # the YAML text, comments included

    def definition(self) -> FlowDefinition:
        """The parsed definition (raises DefinitionError if the template is broken)."""
        return parse_definition(self.source)


def _describe(source: str) -> str:
    for line in source.splitlines():
        stripped = line.strip()
        if stripped.startswith("#"):
            return stripped.lstrip("#").strip()
        if stripped:
            break
    return ""


def _title(source: str, key: str) -> str:
    try:
        data: Any = yaml.safe_load(source)
    except yaml.YAMLError:
        return key
    name = data.get("name") if isinstance(data, dict) else None
    return str(name).strip() if name else key


@functools.lru_cache(maxsize=1)
def _load() -> tuple[Template, ...]:
    folder = files("flows") / "templates"
    found: dict[str, str] = {}
    for entry in folder.iterdir():
        if entry.name.endswith(".yaml") and entry.is_file():
            found[entry.name[: -len(".yaml")]] = entry.read_text(encoding="utf-8")
    keys = [key for key in _ORDER if key in found]
    keys += sorted(key for key in found if key not in _ORDER)
    return tuple(
        Template(
            key=key,
            title=_title(found[key], key),
            description=_describe(found[key]),
            source=found[key],
        )
        for key in keys
    )


def list_templates() -> list[Template]:
    """All templates, blank first, in a stable order."""
    return list(_load())


def get_template(key: str) -> Template | None:
    return next((t for t in _load() if t.key == key), None)

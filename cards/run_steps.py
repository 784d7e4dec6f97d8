"""How a run's steps read when steps nest (SPEC §11): results of a loop body are recorded
under ``<loop>[<index>]/<id>``; people read "`hi` · item 3 of `each`", a branch's steps
"`to_b` · branch 2 of `ask`", a switch case's "`x` · case `sales` of `route`"."""

from __future__ import annotations

import re
from collections.abc import Sequence

from cards.common import escape
from flows.definition import FlowDefinition
from flows.definition.steps import nested_bodies
from flows.records import RunRecord

_ITERATION = re.compile(r"(?P<loop>.+)\[(?P<index>\d+)\]")


def places(definition: FlowDefinition) -> dict[str, str]:
    """step id → where it is, for steps in a parallel branch or a switch case."""
    found: dict[str, str] = {}
    for step in definition.walk_steps():
        if step.type not in ("parallel", "switch"):
            continue
        for _name, where, body in nested_bodies(step):
            if where[0] == "branches":
                place = f"branch {int(where[1]) + 1} of `{escape(step.id)}`"
            elif where[0] == "cases":
                place = f"case `{escape(str(where[1]))}` of `{escape(step.id)}`"
            else:
                place = f"default of `{escape(step.id)}`"
            for inner in body:
                found[inner.id] = place
    return found


def step_name(key: str, where: dict[str, str]) -> str:
    """`hi` · item 3 of `each` (an iteration), `to_b` · branch 2 of `ask`, or `hi`."""
    *loops, step_id = key.split("/")
    parts = [where[step_id]] if step_id in where else []
    for segment in reversed(loops):
        match = _ITERATION.fullmatch(segment)
        if match:
            loop = match.group("loop").rsplit("/", 1)[-1]
            parts.append(f"item {int(match.group('index')) + 1} of `{escape(loop)}`")
    label = f"`{escape(step_id)}`"
    return f"{label} · {', '.join(parts)}" if parts else label


def base_id(key: str) -> str:
    return key.rsplit("/", 1)[-1]


def _sort_key(key: str, position: dict[str, int]) -> list[int]:
    parts: list[int] = []
    for segment in key.split("/"):
        match = _ITERATION.fullmatch(segment)
        if match:
            parts += [position.get(match.group("loop"), 10**6), int(match.group("index"))]
        else:
            parts.append(position.get(segment, 10**6))
    return parts


def step_order(run: RunRecord) -> list[str]:
    """The recorded step keys in the flow's order, iterations in item order."""
    position = {step.id: n for n, step in enumerate(run.definition.walk_steps())}
    return sorted(run.steps, key=lambda key: _sort_key(key, position))


def keys_of(run: RunRecord, step_id: str, order: Sequence[str]) -> list[str]:
    """The recorded keys of one step of the definition (one per iteration in a loop)."""
    return [key for key in order if base_id(key) == step_id]

"""The whole flow: its trigger, inputs, connection slots and steps."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BeforeValidator,
    Field,
    ModelWrapValidatorHandler,
    ValidationInfo,
    model_validator,
)

from flows.definition.checks import prepare, tree_errors
from flows.definition.dump import to_dict
from flows.definition.errors import fail
from flows.definition.fields import Identifier, Model, channel_target, strip, strip_or_none
from flows.definition.inputs import FlowInput
from flows.definition.steps import HttpRequestStep, Step, auto_id, nested_bodies
from flows.definition.triggers import ManualTrigger, Trigger

ConnectionKind = Literal["http_bearer", "http_header", "http_basic"]


class ConnectionSlotSpec(Model):
    """A named place for a connection (credential) that ``http_request`` steps use."""

    slot: Identifier
    kind: ConnectionKind
    description: Annotated[str | None, BeforeValidator(strip_or_none)] = None


FlowKind = Literal["instant", "scheduled", "automated"]

# Validation context that leaves the whole-tree checks to the caller (which runs them on
# the raw data, so that they are reported even when pydantic finds other problems).
SKIP_TREE_CHECKS = "_skip_tree_checks"


class FlowDefinition(Model):
    """A whole flow as authored. See the package docstring."""

    name: Annotated[str, BeforeValidator(strip), Field(min_length=1, max_length=80)]
    description: Annotated[
        Annotated[str, Field(max_length=500)] | None, BeforeValidator(strip_or_none)
    ] = None
    kind: FlowKind = "instant"
    trigger: Trigger = Field(default_factory=ManualTrigger)
    inputs: list[FlowInput] = Field(default_factory=list)
    notify: Annotated[str, AfterValidator(channel_target)] | None = None
    connections: list[ConnectionSlotSpec] = Field(default_factory=list)
    # Owners get a DM after this many failed runs in a row (and when it succeeds again);
    # 0 turns the alert off.
    alert_after: Annotated[int, Field(ge=0, le=1000)] = 3
    # At most this many runs running or waiting at once; further runs are queued (SPEC §12).
    concurrency: Annotated[int, Field(ge=1, le=100)] | None = None
    steps: list[Step] = Field(min_length=1)
    # name → template, evaluated when a run succeeds (shown, returned to a calling flow).
    outputs: dict[Identifier, Any] = Field(default_factory=dict)

    @model_validator(mode="wrap")
    @classmethod
    def _validate(
        cls, data: Any, handler: ModelWrapValidatorHandler[FlowDefinition], info: ValidationInfo
    ) -> FlowDefinition:
        if isinstance(data, FlowDefinition):
            # A FlowRecord or RunRecord given a definition: it was built by validation or
            # by the trusted loader, so it is not checked again (~1 ms a definition).
            return data
        definition = handler(prepare(data))
        assign_ids(definition.steps, None, "")
        context = info.context if isinstance(info.context, Mapping) else {}
        if not context.get(SKIP_TREE_CHECKS):
            errors = tree_errors(to_dict(definition, all_ids=True))
            if errors:
                fail(errors)
        return definition

    # --- helpers ------------------------------------------------------------------------
    def walk_steps(self) -> Iterator[Step]:
        """Every step, depth first, in document order (a condition before its branches)."""
        yield from _walk(self.steps)

    def step(self, step_id: str) -> Step | None:
        return next((s for s in self.walk_steps() if s.id == step_id), None)

    def input(self, input_id: str) -> FlowInput | None:
        return next((i for i in self.inputs if i.id == input_id), None)

    def slot_names(self) -> list[str]:
        """Connection slots: the declared ones, else (``connections`` omitted or empty) those
        the http_request steps use, in document order."""
        if self.connections:
            return [c.slot for c in self.connections]
        names: list[str] = []
        for step in self.walk_steps():
            if isinstance(step, HttpRequestStep) and step.connection not in names:
                names.append(step.connection)
        return names

    def connection_slots(self) -> list[ConnectionSlotSpec]:
        """The declared slots, else the implied ones (kind ``http_bearer``)."""
        if self.connections:
            return list(self.connections)
        return [ConnectionSlotSpec(slot=name, kind="http_bearer") for name in self.slot_names()]


def _walk(steps: Iterable[Step]) -> Iterator[Step]:
    for step in steps:
        yield step
        for _branch, _where, body in nested_bodies(step):
            yield from _walk(body)


def assign_ids(steps: list[Step], parent: str | None, branch: str) -> None:
    """Give every step without an id the one its position implies."""
    for index, step in enumerate(steps):
        if not step.id:
            step.id = auto_id(parent, branch, index)
        for branch, _where, body in nested_bodies(step):
            assign_ids(body, step.id, branch)

"""The flow definition format: what people write in YAML or JSON (SPEC §2–3).

Parse with :func:`parse_definition` (text) or :func:`definition_from_dict` (data); both
return a validated :class:`FlowDefinition` or raise :class:`DefinitionError` listing every
problem found, each with a location such as ``steps[2].approvers`` and a short message.
Write back with :func:`dump_yaml`, :func:`dump_json` or :func:`to_dict`; parsing what they
produce gives back an equal definition. Definitions read back from storage were validated
when they were saved: :func:`definition_from_storage` rebuilds them without validating
again.

After validation every step has an ``id``: explicit ids are kept, missing ones are derived
from the position (``step1``, ``step2``… at the top level, ``route.then1``,
``route.else2``… inside a condition whose id is ``route``). Derived ids are not written
back by the dump functions.

Modules: ``errors`` (how problems are reported), ``fields`` (small value validators),
``inputs``, ``triggers``, ``steps``, ``model`` (the whole flow), ``checks`` (checks
across the whole definition), ``messages`` (pydantic's errors reworded), ``load``
(validated and trusted loaders), ``yaml_io`` (text in), ``dump`` (text out).
"""

from flows.definition.ask_step import AskStep
from flows.definition.dump import dump_json, dump_yaml, template_fields, to_dict
from flows.definition.errors import DefinitionError, FieldError
from flows.definition.inputs import INPUT_TYPES, FlowInput, InputType, InputValue
from flows.definition.load import definition_from_dict, definition_from_storage
from flows.definition.model import ConnectionKind, ConnectionSlotSpec, FlowDefinition, FlowKind
from flows.definition.slack_steps import (
    AddReactionStep,
    CreateChannelStep,
    InviteToChannelStep,
    LookupUserStep,
    SetChannelTopicStep,
    UpdateMessageStep,
    normalise_channel_name,
)
from flows.definition.steps import (
    DEFAULT_APPROVAL_OPTIONS,
    STEP_TYPES,
    ApprovalMode,
    ApprovalStep,
    ConditionStep,
    DelayStep,
    HttpRequestStep,
    PostMessageStep,
    SendDmStep,
    SetVariableStep,
    Step,
)
from flows.definition.triggers import (
    TRIGGER_TYPES,
    ManualTrigger,
    MemberJoinedTrigger,
    MessageTrigger,
    ReactionTrigger,
    ScheduleTrigger,
    Trigger,
    WebhookTrigger,
    cron_trigger,
)
from flows.definition.yaml_io import MAX_TEXT, parse_definition

__all__ = [
    "DEFAULT_APPROVAL_OPTIONS",
    "INPUT_TYPES",
    "MAX_TEXT",
    "STEP_TYPES",
    "TRIGGER_TYPES",
    "AddReactionStep",
    "ApprovalMode",
    "ApprovalStep",
    "AskStep",
    "ConditionStep",
    "ConnectionKind",
    "ConnectionSlotSpec",
    "CreateChannelStep",
    "DefinitionError",
    "DelayStep",
    "FieldError",
    "FlowDefinition",
    "FlowInput",
    "FlowKind",
    "HttpRequestStep",
    "InputType",
    "InputValue",
    "InviteToChannelStep",
    "LookupUserStep",
    "ManualTrigger",
    "MemberJoinedTrigger",
    "MessageTrigger",
    "PostMessageStep",
    "ReactionTrigger",
    "ScheduleTrigger",
    "SendDmStep",
    "SetChannelTopicStep",
    "SetVariableStep",
    "Step",
    "Trigger",
    "UpdateMessageStep",
    "WebhookTrigger",
    "cron_trigger",
    "definition_from_dict",
    "definition_from_storage",
    "dump_json",
    "dump_yaml",
    "normalise_channel_name",
    "parse_definition",
    "template_fields",
    "to_dict",
]

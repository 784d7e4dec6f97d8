"""The flow definition format: parsing, validation errors, round trips, schedules, inputs."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from typing import Any

import bson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from flows.definition import (
    ApprovalStep,
    ConditionStep,
    DefinitionError,
    FieldError,
    FlowDefinition,
    FlowInput,
    HttpRequestStep,
    PostMessageStep,
    ReactionTrigger,
    ScheduleTrigger,
    definition_from_dict,
    definition_from_storage,
    dump_json,
    dump_yaml,
    parse_definition,
    template_fields,
    to_dict,
)
from flows.durations import format_duration, parse_duration
from flows.gallery import get_template, list_templates
from flows.templating import render_text

TEMPLATES = list_templates()


def errors_of(source: str | dict[str, Any]) -> dict[str, str]:
    with pytest.raises(DefinitionError) as info:
        if isinstance(source, str):
            parse_definition(source)
        else:
            definition_from_dict(source)
    error = info.value
    assert str(error) == "\n".join(f"{e.loc}: {e.msg}" if e.loc else e.msg for e in error.errors)
    return {e.loc: e.msg for e in error.errors}


def minimal(**extra: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "name": "Test",
        "steps": [{"type": "post_message", "channel": "#general", "text": "hi"}],
    }
    data.update(extra)
    return data


# --- gallery -------------------------------------------------------------------------------


def test_gallery_lists_templates_blank_first() -> None:
    keys = [t.key for t in TEMPLATES]
    assert keys[0] == "blank"
    for key in (
        "expense-approval",
        "daily-standup",
        "incident-alert",
        "welcome-new-members",
        "webhook-to-channel",
    ):
        assert key in keys
    assert len(set(keys)) == len(keys)
    assert get_template("nope") is None
    for template in TEMPLATES:
        assert template.source.startswith("# ")
        assert template.description and template.title
        assert get_template(template.key) == template


@pytest.mark.parametrize("template", TEMPLATES, ids=lambda t: t.key)
def test_every_template_parses_and_round_trips(template: Any) -> None:
    definition = template.definition()
    assert definition.name == template.title
    assert parse_definition(dump_yaml(definition)) == definition
    assert parse_definition(dump_json(definition)) == definition
    assert definition_from_dict(json.loads(dump_json(definition))) == definition
    assert definition_from_dict(to_dict(definition, all_ids=True)) == definition
    assert FlowDefinition.model_validate(definition.model_dump(by_alias=True)) == definition


def stored(definition: FlowDefinition) -> dict[str, Any]:
    """The definition as MongoDB gives it back (written by `to_dict`, through BSON)."""
    return bson.decode(bson.encode({"definition": to_dict(definition)}))["definition"]


@pytest.mark.parametrize("template", TEMPLATES, ids=lambda t: t.key)
def test_every_stored_template_loads_back_equal_without_validation(template: Any) -> None:
    definition = template.definition()
    document = stored(definition)
    loaded = definition_from_storage(document)
    assert loaded == definition
    assert loaded == definition_from_dict(stored(definition))
    assert [s.id for s in loaded.walk_steps()] == [s.id for s in definition.walk_steps()]
    assert to_dict(loaded, all_ids=True) == to_dict(definition, all_ids=True)
    assert dump_yaml(loaded) == dump_yaml(definition)


def test_the_spec_example_loads_back_equal_without_validation() -> None:
    definition = parse_definition(SPEC_EXAMPLE)
    loaded = definition_from_storage(stored(definition))
    assert loaded == definition
    assert loaded.step("route.else1") == definition.step("route.else1")
    assert loaded.inputs[0].label == definition.inputs[0].label


def test_the_trusted_loader_validates_what_it_does_not_recognise() -> None:
    with pytest.raises(DefinitionError) as info:
        definition_from_storage({"name": "Odd", "steps": [{"type": "teleport"}]})
    assert [e.loc for e in info.value.errors] == ["steps[0].type"]
    with pytest.raises(DefinitionError):
        definition_from_storage({"name": "No steps"})


def test_template_kinds_and_triggers() -> None:
    expense = get_template("expense-approval")
    assert expense is not None
    d = expense.definition()
    assert d.kind == "instant" and d.trigger.type == "manual"
    assert [s.id for s in d.walk_steps()] == [
        "ask",
        "route",
        "route.then1",
        "route.then2",
        "route.else1",
    ]
    assert d.slot_names() == ["ledger"]
    assert d.connections[0].kind == "http_bearer"
    assert [i.id for i in d.inputs] == ["amount", "reason"]

    kinds = {t.key: t.definition() for t in TEMPLATES}
    standup = kinds["daily-standup"]
    assert standup.kind == "scheduled" and isinstance(standup.trigger, ScheduleTrigger)
    assert standup.trigger.timezone != "UTC"
    alert = kinds["incident-alert"]
    assert isinstance(alert.trigger, ReactionTrigger)
    assert alert.trigger.emoji == "rotating_light"
    assert kinds["welcome-new-members"].trigger.type == "member_joined"
    assert kinds["webhook-to-channel"].trigger.type == "webhook"
    assert "{{ trigger.body.text }}" in dict(template_fields(kinds["webhook-to-channel"])).values()


def test_incident_template_renders_a_link() -> None:
    template = get_template("incident-alert")
    assert template is not None
    step = template.definition().steps[0]
    assert isinstance(step, PostMessageStep) and step.text
    context = {
        "trigger": {
            "user": "U1",
            "reaction": "rotating_light",
            "channel": "C9",
            "ts": "1712345678.000100",
            "item_user": "U2",
        }
    }
    text = render_text(step.text, context)
    assert "https://slack.com/archives/C9/p1712345678000100" in text


# --- the SPEC example ------------------------------------------------------------------------

SPEC_EXAMPLE = """
name: Expense approval
kind: instant
inputs:
  - {id: amount, label: "Amount (EUR)", type: number, required: true}
  - {id: reason, label: Reason, type: text, required: true}
notify: "#finance-bots"
steps:
  - id: ask
    type: approval
    mode: first_response          # first_response | everyone | quorum (with min: N)
    approvers: ["<@U0MANAGER>", "<!subteam^S0LEADS>"]
    title: "Expense {{ inputs.amount }} EUR"
    details: "{{ inputs.reason }}, requested by <@{{ run.started_by }}>"
    timeout: 2d
  - id: route
    type: condition
    if: "{{ steps.ask.outcome == 'approved' }}"
    then:
      - {type: http_request, connection: ledger, method: POST, path: /expenses,
         json: {amount: "{{ inputs.amount }}"}}
      - {type: post_message, channel: "#finance", text: "Approved by <@{{ steps.ask.responder }}>"}
    else:
      - {type: send_dm, user: "{{ run.started_by }}", text: "Rejected: {{ steps.ask.comment }}"}
"""


def test_spec_example() -> None:
    d = parse_definition(SPEC_EXAMPLE)
    ask, route = d.steps
    assert isinstance(ask, ApprovalStep) and isinstance(route, ConditionStep)
    assert ask.timeout_delta == timedelta(days=2)
    assert ask.response_options == ["Approve", "Reject"] and ask.approve_label == "Approve"
    assert route.if_ == "{{ steps.ask.outcome == 'approved' }}"
    http = route.then[0]
    assert isinstance(http, HttpRequestStep)
    assert http.json_ == {"amount": "{{ inputs.amount }}"} and http.method == "POST"
    assert d.slot_names() == ["ledger"]  # implied: no connections declared
    assert [s.slot for s in d.connection_slots()] == ["ledger"]
    assert d.step("route.else1") is route.else_[0]
    assert d.input("amount") is d.inputs[0]


def test_spec_example_templates_and_dumps() -> None:
    d = parse_definition(SPEC_EXAMPLE)
    route = d.steps[1]
    assert isinstance(route, ConditionStep)
    fields = dict(template_fields(d))
    assert fields["steps[1].then[0].json.amount"] == "{{ inputs.amount }}"
    assert fields["notify"] == "#finance-bots"
    assert "steps[0].title" in fields
    dumped = dump_yaml(d)
    assert "route.then1" not in dumped and "id: ask" in dumped
    assert "if:" in dumped and "else:" in dumped
    assert parse_definition(dumped) == d
    assert json.loads(dump_json(d))["steps"][1]["if"] == route.if_


def test_json_is_detected() -> None:
    d = parse_definition(json.dumps(minimal(kind="instant")))
    assert d.name == "Test" and d.steps[0].id == "step1"


def test_kind_is_inferred_from_the_trigger() -> None:
    d = definition_from_dict(minimal(trigger={"type": "schedule", "every": "1h"}))
    assert d.kind == "scheduled"
    d = definition_from_dict(minimal(trigger={"type": "webhook"}))
    assert d.kind == "automated"
    assert definition_from_dict(minimal()).kind == "instant"


# --- errors --------------------------------------------------------------------------------


def test_bad_yaml_reports_the_line() -> None:
    errors = errors_of("name: x\nsteps:\n  - type: post_message\n   channel: x\n")
    assert list(errors) == ["yaml"]
    assert "line 4" in errors["yaml"]
    errors = errors_of('{"name": "x",\n "steps": [}')
    assert list(errors) == ["json"] and "line 2" in errors["json"]
    assert "mapping" in errors_of("- a\n- b\n")["yaml"]
    assert "empty" in errors_of("   \n")["yaml"]
    assert "duplicate key" in errors_of("name: a\nname: b\n")["yaml"]


def test_yaml_abuse_is_rejected_quickly() -> None:
    levels = ["a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    for prev, name in zip("abcdefg", "bcdefgh", strict=True):
        levels.append(f"{name}: &{name} [" + ", ".join([f"*{prev}"] * 9) + "]")
    bomb = "name: x\n" + "\n".join(levels) + "\nsteps: *h\n"
    assert "too large" in errors_of(bomb)["yaml"]
    assert "recursive" in errors_of("name: &a [*a]\n")["yaml"]
    # a YAML flow mapping that starts like JSON is still read as YAML
    flow = "{name: x, steps: [{type: post_message, channel: '#a', text: hi}]}"
    assert parse_definition(flow).name == "x"


def test_unquoted_channel_is_not_silently_dropped() -> None:
    errors = errors_of(
        "name: x\nnotify: #general\nsteps:\n  - {type: post_message, channel: '#a', text: hi}\n"
    )
    assert "line 2" in errors["yaml"] and "#general" in errors["yaml"]
    errors = errors_of(
        "name: x\ndescription: posts in #team daily\n"
        "steps:\n  - {type: post_message, channel: '#a', text: hi}  # a real comment\n"
    )
    assert list(errors) == ["yaml"] and "line 2" in errors["yaml"]


BROKEN = """
name: Broken
kind: instant
inputs:
  - {id: amount, type: number}
  - {id: reason, type: text}
  - {id: amount, type: text}
  - {id: color, type: choice}
steps:
  - {type: post_mesage, channel: "#x", text: hi}
  - {type: post_message, channel: "#x"}
  - {type: send_dm, user: U123, text: 42, colour: red}
  - {id: ask, type: approval, mode: quorum, approvers: ["<@U1>", "<@U2>"], title: "Pay"}
  - id: route
    type: condition
    if: "{{ steps.later.done }}"
    then:
      - {type: post_message, channel: "#x", text: "{{ inputs.amout }}"}
      - {id: ask, type: post_message, channel: "#x", text: "{{ steps.ask.outcome }"}
  - {id: later, type: delay, duration: "5 minutes"}
  - {type: http_request, connection: ledger, method: FETCH, path: "/x"}
"""


def test_all_errors_are_reported_at_their_locations() -> None:
    errors = errors_of(BROKEN)
    assert errors["inputs[2].id"] == "duplicate input id 'amount'"
    assert "choices" in errors["inputs[3].choices"]
    assert errors["steps[0].type"].startswith("unknown step type 'post_mesage' (expected one of: ")
    assert "post_message" in errors["steps[0].type"]
    assert errors["steps[1].text"] == "text or blocks is required"
    assert errors["steps[2].colour"].startswith("unknown field 'colour'")
    assert errors["steps[3].min"] == "min is required when mode is quorum"
    # text: 42 is accepted as text (YAML numbers become strings)
    assert "steps[2].text" not in errors
    assert len(errors) == 12, errors


def test_all_errors_are_reported_inside_branches_and_later_steps() -> None:
    errors = errors_of(BROKEN)
    assert "later" in errors["steps[4].if"]
    assert (
        errors["steps[4].then[0].text"] == "unknown input 'amout' (declared: amount, reason, color)"
    )
    assert errors["steps[4].then[1].id"].startswith("duplicate step id 'ask'")
    assert errors["steps[4].then[1].text"].startswith("template syntax error")
    assert "invalid duration" in errors["steps[5].duration"]
    assert "FETCH" in errors["steps[6].method"]


def test_missing_and_wrong_type_fields() -> None:
    errors = errors_of({"steps": [{"type": "approval", "approvers": "<@U1>", "title": "t"}]})
    assert errors["name"] == "field required"
    assert errors["steps[0].approvers"] == "expected a list"
    errors = errors_of(minimal(steps=[]))
    assert errors == {"steps": "must not be empty"}
    errors = errors_of(minimal(steps=["post_message", {}]))
    assert errors["steps[0]"] == "expected a mapping"
    assert errors["steps[1].type"].startswith("field required")
    errors = errors_of(minimal(inputs=[{"id": "x", "required": "maybe"}]))
    assert errors == {"inputs[0].required": "expected true or false"}
    errors = errors_of(
        minimal(steps=[{"type": "http_request", "connection": "c", "path": "/", "timeout": 90}])
    )
    assert errors == {"steps[0].timeout": "must be at most 60"}
    with pytest.raises(DefinitionError) as info:
        definition_from_dict(["not", "a", "mapping"])
    assert "mapping" in str(info.value)


def test_unknown_fields_are_errors_everywhere() -> None:
    errors = errors_of(
        minimal(
            colour="red",
            trigger={"type": "manual", "at": "now"},
            inputs=[{"id": "a", "lable": "A"}],
            steps=[{"type": "post_message", "channel": "#x", "text": "t", "chanel": "#y"}],
        )
    )
    assert errors["colour"].startswith("unknown field 'colour'")
    assert errors["trigger.at"].startswith("unknown field 'at'")
    assert errors["inputs[0].lable"] == "unknown field 'lable' (did you mean 'label'?)"
    assert errors["steps[0].chanel"] == "unknown field 'chanel' (did you mean 'channel'?)"


def test_schedule_errors() -> None:
    errors = errors_of(
        minimal(trigger={"type": "schedule", "cron": "0 25 * * *", "timezone": "Mars/Olympus"})
    )
    assert errors["trigger.cron"].startswith("invalid cron expression '0 25 * * *'")
    assert errors["trigger.timezone"].startswith("unknown timezone 'Mars/Olympus'")
    assert errors_of(minimal(trigger={"type": "schedule"})) == {
        "trigger.cron": "a schedule needs cron or every"
    }
    errors = errors_of(minimal(trigger={"type": "schedule", "cron": "* * * *"}))
    assert "expected 5 fields" in errors["trigger.cron"]
    errors = errors_of(minimal(trigger={"type": "schedule", "cron": "0 9 * * *", "every": "1h"}))
    assert errors == {"trigger.every": "use either cron or every, not both"}
    errors = errors_of(minimal(trigger={"type": "shedule"}))
    assert errors["trigger.type"].startswith("unknown trigger type 'shedule'")


def test_wrong_trigger_for_kind() -> None:
    errors = errors_of(minimal(kind="instant", trigger={"type": "schedule", "every": "5m"}))
    assert errors == {
        "trigger": "an instant flow cannot have a schedule trigger (expected type: manual)"
    }
    errors = errors_of(minimal(kind="scheduled"))
    assert errors["trigger"].startswith("a scheduled flow needs a trigger")
    errors = errors_of(minimal(kind="automated", trigger={"type": "manual"}))
    assert "automated" in errors["trigger"]
    errors = errors_of(minimal(kind="sometimes"))
    assert errors == {"kind": "'sometimes' is not one of: instant, scheduled, automated"}


def test_inputs_by_kind() -> None:
    errors = errors_of(
        minimal(
            trigger={"type": "schedule", "every": "1h"},
            inputs=[{"id": "a", "default": "x"}, {"id": "b"}],
        )
    )
    assert errors == {"inputs[1].default": "inputs of a scheduled flow need a default"}
    errors = errors_of(minimal(trigger={"type": "webhook"}, inputs=[{"id": "a"}]))
    assert "automated" in errors["inputs"]


def test_approval_rules() -> None:
    def approval(**fields: Any) -> dict[str, Any]:
        step = {"type": "approval", "approvers": ["<@U0ALICE>", "U0BOB"], "title": "Go?"}
        step.update(fields)
        return minimal(steps=[step])

    assert errors_of(approval(mode="quorum", min=3)) == {
        "steps[0].min": "min (3) is more than the 2 approvers"
    }
    definition_from_dict(approval(mode="quorum", min=2))
    # groups can hold more people: no upper bound
    definition_from_dict(
        approval(approvers=["<!subteam^S1|leads>", "<#C1|ops>"], mode="quorum", min=5)
    )
    assert "quorum" in errors_of(approval(min=1))["steps[0].min"]
    assert errors_of(approval(approvers=[]))["steps[0].approvers"] == "must not be empty"
    assert "invalid approver" in errors_of(approval(approvers=["bob"]))["steps[0].approvers[0]"]
    assert "at least 2" in errors_of(approval(options=["Yes"]))["steps[0].options"]
    assert "duplicate" in errors_of(approval(options=["Yes", "yes"]))["steps[0].options[1]"]
    assert (
        "not one of the options"
        in errors_of(approval(options=["Ship", "Wait"], approve_option="Go"))[
            "steps[0].approve_option"
        ]
    )
    step = definition_from_dict(approval(options=["Wait", "Ship"], approve_option="Ship")).steps[0]
    assert isinstance(step, ApprovalStep)
    assert step.approve_label == "Ship" and step.response_options == ["Wait", "Ship"]
    assert "shorter" in errors_of(approval(timeout="1h", reminder="2h"))["steps[0].reminder"]
    ok = definition_from_dict(approval(timeout="1d", reminder="4h")).steps[0]
    assert isinstance(ok, ApprovalStep) and ok.reminder_delta == timedelta(hours=4)


def test_template_reference_checks() -> None:
    errors = errors_of(
        minimal(
            inputs=[{"id": "amount", "type": "number"}],
            notify="{{ inputs.amont }}",
            steps=[
                {"type": "post_message", "channel": "#x", "text": "{{ steps.first.ok }}"},
                {"id": "first", "type": "set_variable", "name": "v", "value": "{{ amount }}"},
                {
                    "type": "http_request",
                    "connection": "api",
                    "method": "POST",
                    "path": "/a",
                    "json": {"deep": ["{{ inputs['nope'] }}", "{{ steps.first.value }}"]},
                },
            ],
        )
    )
    assert errors == {
        "notify": "unknown input 'amont' (declared: amount)",
        "steps[0].text": "step 'first' comes later (a step can only use earlier steps)",
        "steps[1].value": (
            "unknown name 'amount' (templates can use: inputs, trigger, steps, run, vars)"
        ),
        "steps[2].json.deep[0]": "unknown input 'nope' (declared: amount)",
    }
    # trigger, run and vars are free; loops and methods are fine
    definition_from_dict(
        minimal(
            steps=[
                {
                    "type": "post_message",
                    "channel": "{{ trigger.channel }}",
                    "text": "{% for x in vars.items %}{{ loop.index }}{{ x }}{% endfor %}"
                    "{{ run.id }}{{ inputs.get('x', 1) }}",
                }
            ]
        )
    )


def test_connections_must_be_declared_when_listed() -> None:
    step = {"type": "http_request", "connection": "crm", "path": "/x"}
    errors = errors_of(
        minimal(connections=[{"slot": "ledger", "kind": "http_bearer"}], steps=[step])
    )
    assert errors == {"steps[0].connection": "unknown connection slot 'crm' (declared: ledger)"}
    errors = errors_of(minimal(connections=[{"slot": "a", "kind": "oauth"}]))
    assert "http_bearer" in errors["connections[0].kind"]


def test_step_ids() -> None:
    d = definition_from_dict(
        minimal(
            steps=[
                {"type": "post_message", "channel": "#a", "text": "1"},
                {
                    "type": "condition",
                    "if": "{{ true }}",
                    "then": [{"type": "post_message", "channel": "#a", "text": "2"}],
                    "else": [
                        {"id": "x", "type": "post_message", "channel": "#a", "text": "3"},
                        {"type": "post_message", "channel": "#a", "text": "4"},
                    ],
                },
            ]
        )
    )
    assert [s.id for s in d.walk_steps()] == ["step1", "step2", "step2.then1", "x", "step2.else2"]
    assert "id:" not in dump_yaml(d).replace("id: x", "")
    errors = errors_of(
        minimal(
            steps=[
                {"id": "step2", "type": "post_message", "channel": "#a", "text": "1"},
                {"type": "post_message", "channel": "#a", "text": "2"},
            ]
        )
    )
    assert errors == {"steps[1].id": "duplicate step id 'step2' (also steps[0])"}
    errors = errors_of(
        minimal(steps=[{"id": "bad id", "type": "post_message", "channel": "#a", "text": "1"}])
    )
    assert "invalid step id" in errors["steps[0].id"]


def test_condition_needs_a_template() -> None:
    step: dict[str, Any] = {"type": "condition", "if": "steps.x.ok", "then": []}
    assert "template" in errors_of(minimal(steps=[step]))["steps[0].if"]
    constant: dict[str, Any] = {"type": "condition", "if": True}
    condition = definition_from_dict(minimal(steps=[constant])).steps[0]
    assert isinstance(condition, ConditionStep) and condition.if_ == "true"


def test_delay_and_set_variable() -> None:
    assert errors_of(minimal(steps=[{"type": "delay"}])) == {
        "steps[0].duration": "a delay needs duration or until"
    }
    both = {"type": "delay", "duration": "1h", "until": "2030-01-01T00:00:00Z"}
    assert "not both" in errors_of(minimal(steps=[both]))["steps[0].until"]
    bad = {"type": "delay", "until": "tomorrow"}
    assert "ISO" in errors_of(minimal(steps=[bad]))["steps[0].until"]
    # YAML reads an unquoted timestamp as a datetime: it becomes an ISO string
    d = parse_definition("name: x\nsteps:\n  - {type: delay, until: 2030-01-01 10:00:00}\n")
    assert d.steps[0].until == "2030-01-01T10:00:00"  # type: ignore[union-attr]
    assert parse_definition(dump_yaml(d)) == d
    errors = errors_of(minimal(steps=[{"type": "set_variable", "name": "9x", "value": 1}]))
    assert "invalid identifier" in errors["steps[0].name"]


def test_direct_construction_validates_too() -> None:
    with pytest.raises(ValidationError) as info:
        FlowDefinition(
            name="x",
            steps=[PostMessageStep(channel="#a", text="{{ inputs.nope }}")],
        )
    assert "unknown input 'nope'" in str(info.value)
    d = FlowDefinition(name="x", steps=[PostMessageStep(channel="#a", text="hi")])
    assert d.steps[0].id == "step1"
    assert parse_definition(dump_yaml(d)) == d


def test_field_error_rendering() -> None:
    error = DefinitionError([FieldError("name", "field required"), FieldError("", "oops")])
    assert str(error) == "name: field required\noops"


# --- inputs --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("type_", "raw", "expected"),
    [
        ("text", " team lunch ", " team lunch "),
        ("number", "12", 12),
        ("number", "-3.5", -3.5),
        ("number", "1e3", 1000.0),
        ("boolean", "yes", True),
        ("boolean", "OFF", False),
        ("boolean", "1", True),
        ("boolean", "false", False),
        ("date", "2024-02-29", "2024-02-29"),
        ("user", "<@U123ABC|alice>", "U123ABC"),
        ("user", "U123ABC", "U123ABC"),
        ("channel", "<#C123|general>", "C123"),
        ("channel", "C123", "C123"),
        ("channel", "#general", "#general"),
    ],
)
def test_input_coerce(type_: str, raw: str, expected: Any) -> None:
    value = FlowInput(id="x", type=type_).coerce(raw)  # type: ignore[arg-type]
    assert value == expected and type(value) is type(expected)


@pytest.mark.parametrize(
    ("type_", "raw"),
    [
        ("number", "twelve"),
        ("number", "nan"),
        ("number", ""),
        ("boolean", "maybe"),
        ("date", "2024-02-30"),
        ("date", "31/12/2024"),
        ("user", "@alice"),
        ("channel", "general"),
    ],
)
def test_input_coerce_rejects(type_: str, raw: str) -> None:
    with pytest.raises(ValueError):
        FlowInput(id="x", type=type_).coerce(raw)  # type: ignore[arg-type]


def test_input_choice_and_aliases() -> None:
    size = FlowInput(id="size", type="choice", choices=["Small", "Large"])
    assert size.coerce("large") == "Large"
    with pytest.raises(ValueError, match="Small, Large"):
        size.coerce("medium")
    assert size.label == "size"
    d = definition_from_dict(
        minimal(
            inputs=[
                {"id": "ok", "type": "yes/no", "default": "yes"},
                {"id": "ok2", "type": "yes_no"},
                {"id": "when", "type": "date", "default": "2024-01-31"},
                {"id": "n", "type": "number", "default": "3"},
                {"id": "who", "type": "user", "default": "<@U1AB|x>"},
            ]
        )
    )
    assert [i.type for i in d.inputs] == ["boolean", "boolean", "date", "number", "user"]
    assert [i.default for i in d.inputs] == [True, None, "2024-01-31", 3, "U1AB"]
    assert parse_definition(dump_yaml(d)) == d
    # an unquoted YAML date default becomes the ISO string
    d = parse_definition(
        "name: x\ninputs: [{id: d, type: date, default: 2024-05-01}]\n"
        "steps: [{type: post_message, channel: '#a', text: t}]\n"
    )
    assert d.inputs[0].default == "2024-05-01"
    errors = errors_of(
        minimal(
            inputs=[
                {"id": "a", "type": "text", "choices": ["x"]},
                {"id": "b", "type": "choice", "choices": []},
                {"id": "c", "type": "number", "default": "many"},
                {"id": "d", "type": "choice", "choices": ["x"], "default": "y"},
            ]
        )
    )
    assert set(errors) == {
        "inputs[0].choices",
        "inputs[1].choices",
        "inputs[2].default",
        "inputs[3].default",
    }


# --- schedules -----------------------------------------------------------------------------


def test_next_fire_time_cron_with_timezone() -> None:
    trigger = ScheduleTrigger(cron="0 9 * * 1-5", timezone="Europe/Paris")
    saturday = datetime(2024, 6, 1, 12, 0, tzinfo=timezone.utc)
    first = trigger.next_fire_time(saturday)
    assert first is not None
    assert first.astimezone(timezone.utc) == datetime(2024, 6, 3, 7, 0, tzinfo=timezone.utc)
    assert first.strftime("%a %H:%M") == "Mon 09:00"
    # strictly after: from the fire time itself, the next one is the next weekday
    second = trigger.next_fire_time(first)
    assert second is not None and second.strftime("%a %H:%M") == "Tue 09:00"
    friday = trigger.next_fire_time(datetime(2024, 6, 7, 8, 0, tzinfo=timezone.utc))
    assert friday is not None and friday.strftime("%a %d") == "Mon 10"
    # winter time: 9:00 in Paris is 8:00 UTC
    winter = trigger.next_fire_time(datetime(2024, 1, 8, 0, 0, tzinfo=timezone.utc))
    assert winter == datetime(2024, 1, 8, 8, 0, tzinfo=timezone.utc)
    # crontab weekday numbers: 0 and 7 are Sunday
    sunday = ScheduleTrigger(cron="30 8 * * 0").next_fire_time(datetime(2024, 6, 3))
    assert sunday == datetime(2024, 6, 9, 8, 30, tzinfo=timezone.utc)
    assert ScheduleTrigger(cron="30 8 * * 7").next_fire_time(datetime(2024, 6, 3)) == sunday


def test_next_fire_time_every() -> None:
    trigger = ScheduleTrigger(every="15m")
    after = datetime(2024, 6, 3, 10, 7, tzinfo=timezone.utc)
    assert trigger.next_fire_time(after) == datetime(2024, 6, 3, 10, 15, tzinfo=timezone.utc)
    on_the_dot = datetime(2024, 6, 3, 10, 15, tzinfo=timezone.utc)
    assert trigger.next_fire_time(on_the_dot) == datetime(2024, 6, 3, 10, 30, tzinfo=timezone.utc)
    start = datetime(2024, 6, 3, 9, 50, tzinfo=timezone.utc)
    assert trigger.next_fire_time(after, start=start) == datetime(
        2024, 6, 3, 10, 20, tzinfo=timezone.utc
    )
    assert ScheduleTrigger(every="2h").every_delta == timedelta(hours=2)
    assert ScheduleTrigger(every="2s").every_delta == timedelta(seconds=2)
    with pytest.raises(ValidationError):
        ScheduleTrigger(every="0s")


# --- durations -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30s", timedelta(seconds=30)),
        ("5m", timedelta(minutes=5)),
        ("2h", timedelta(hours=2)),
        ("2d", timedelta(days=2)),
        ("1w", timedelta(weeks=1)),
        ("1h30m", timedelta(hours=1, minutes=30)),
        ("90", timedelta(seconds=90)),
        (" 1D 2H ", timedelta(days=1, hours=2)),
    ],
)
def test_parse_duration(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected
    assert parse_duration(format_duration(expected)) == expected


@pytest.mark.parametrize("text", ["", "5 minutes", "h", "1h1h", "-5m", "1.5h", "5y"])
def test_parse_duration_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)


def test_format_duration() -> None:
    assert format_duration(timedelta(hours=1, minutes=30)) == "1h30m"
    assert format_duration(timedelta(days=9, seconds=5)) == "1w2d5s"
    assert format_duration(timedelta(0)) == "0s"


# --- round-trip property -------------------------------------------------------------------

_text = st.text(
    alphabet=st.characters(blacklist_categories=["Cs"], blacklist_characters="{}"),
    min_size=1,
    max_size=30,
).filter(lambda s: s.strip() != "")
_json = st.recursive(
    st.none() | st.booleans() | st.integers(-(10**6), 10**6) | _text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_text, inner, max_size=3),
    max_leaves=8,
)
_channel = st.sampled_from(["#general", "C0123ABC", "<#C1|x>", "{{ trigger.channel }}"])
_post = st.builds(
    lambda channel, text: {"type": "post_message", "channel": channel, "text": text},
    _channel,
    _text,
)
_set = st.builds(
    lambda name, value: {"type": "set_variable", "name": name, "value": value},
    st.from_regex(r"[a-z_][a-z0-9_]{0,8}", fullmatch=True),
    _json,
)
_delay = st.builds(
    lambda d: {"type": "delay", "duration": d}, st.sampled_from(["30s", "5m", "1h30m", "2d"])
)
_simple = st.one_of(_post, _set, _delay)
_condition = st.builds(
    lambda then, else_: {"type": "condition", "if": "{{ vars.x }}", "then": then, "else": else_},
    st.lists(_simple, max_size=2),
    st.lists(_simple, max_size=2),
)


@st.composite
def _definitions(draw: st.DrawFn) -> dict[str, Any]:
    steps = draw(st.lists(st.one_of(_simple, _condition), min_size=1, max_size=4))
    for index, step in enumerate(steps):
        if draw(st.booleans()):
            step["id"] = f"s{index}"
    data: dict[str, Any] = {"name": draw(_text.map(lambda s: s.strip()[:80])), "steps": steps}
    if draw(st.booleans()):
        data["description"] = draw(_text)
    if draw(st.booleans()):
        data["trigger"] = {"type": "schedule", "cron": "*/5 * * * *", "timezone": "Asia/Tokyo"}
    return data


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_definitions())
def test_round_trip_property(data: dict[str, Any]) -> None:
    definition = definition_from_dict(data)
    assert parse_definition(dump_yaml(definition)) == definition
    assert parse_definition(dump_json(definition)) == definition


# --- the ask step (issue 15) ----------------------------------------------------------------


def test_the_ask_step_validates_its_people_fields_and_reminder() -> None:
    step = {
        "id": "q",
        "type": "ask",
        "to": "<#C0INC>",
        "title": "Details",
        "fields": [
            {"id": "sev", "options": ["low", "high"], "required": True},
            {"id": "n", "type": "number", "default": "3"},
        ],
    }
    definition = definition_from_dict(minimal(steps=[step]))
    [ask] = definition.steps
    assert ask.to == ["<#C0INC>"]  # type: ignore[union-attr]
    assert [(f.type, f.choices) for f in ask.fields] == [  # type: ignore[union-attr]
        ("choice", ["low", "high"]),
        ("number", []),
    ]
    # Export round-trips; the trusted loader gives the same step back.
    assert parse_definition(dump_yaml(definition)) == definition
    assert definition_from_storage(stored(definition)) == definition

    bad = {
        **step,
        "to": ["bob"],
        "fields": [{"id": "a"}, {"id": "a", "type": "colour"}],
        "timeout": "1h",
        "reminder": "2h",
    }
    errors = errors_of(minimal(steps=[bad]))
    assert set(errors) >= {"steps[0].to[0]", "steps[0].fields[1].type"}, errors
    errors = errors_of(minimal(steps=[{**step, "fields": [{"id": "a"}, {"id": "a"}]}]))
    assert "duplicate field id" in str(errors), errors
    errors = errors_of(minimal(steps=[{**step, "timeout": "1h", "reminder": "2h"}]))
    assert "shorter than the timeout" in str(errors), errors
    errors = errors_of(minimal(steps=[{**step, "fields": []}]))
    assert "steps[0].fields" in errors, errors

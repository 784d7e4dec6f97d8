"""Sandboxed templates: rendering, native values, strictness, sandbox escapes, limits."""

from __future__ import annotations

import time
from typing import Any

import pytest

from flows.templating import (
    MAX_OUTPUT,
    TemplateError,
    check_syntax,
    is_truthy,
    render_text,
    render_value,
)

CONTEXT: dict[str, Any] = {
    "inputs": {"amount": 12, "reason": "team lunch", "when": None},
    "trigger": {"user": "U1", "body": {"text": "hello", "items": [1, 2, 3]}},
    "steps": {"ask": {"outcome": "approved", "responder": "U2", "comment": ""}},
    "run": {"id": "r1", "started_by": "U0ALICE", "flow": "Expenses"},
    "vars": {"total": 3.5},
}


# --- rendering -----------------------------------------------------------------------------


def test_render_text() -> None:
    assert render_text("Expense {{ inputs.amount }} EUR", CONTEXT) == "Expense 12 EUR"
    assert render_text("by <@{{ run.started_by }}>", CONTEXT) == "by <@U0ALICE>"
    assert render_text("[{{ inputs.when }}]", CONTEXT) == "[]"  # None renders empty
    assert render_text("plain text, no braces", CONTEXT) == "plain text, no braces"
    assert render_text("{{ inputs['reason'] | upper }}", CONTEXT) == "TEAM LUNCH"
    assert render_text("{{ steps.ask.outcome == 'approved' }}", CONTEXT) == "True"
    loop = (
        "{% for i in trigger.body['items'] %}{{ i }}{% if not loop.last %},{% endif %}{% endfor %}"
    )
    assert render_text(loop, CONTEXT) == "1,2,3"
    assert render_text("{{ inputs.missing | default('n/a') }}", CONTEXT) == "n/a"
    assert render_text("{% if inputs.missing is defined %}x{% else %}y{% endif %}", CONTEXT) == "y"
    assert render_text("{{ '%.2f' % vars.total }}", CONTEXT) == "3.50"
    assert render_text("{{ '{:>5}'.format(inputs.amount) }}", CONTEXT) == "   12"
    assert render_text("{{ [1, 2] | join('-') }} {{ 'a' ~ 'b' }}", CONTEXT) == "1-2 ab"
    ns = "{% set ns = namespace(n=0) %}{% for i in range(3) %}{% set ns.n = ns.n + i %}{% endfor %}"
    assert render_text(ns + "{{ ns.n }}", CONTEXT) == "3"


def test_render_value_keeps_native_types() -> None:
    assert render_value("{{ inputs.amount }}", CONTEXT) == 12
    assert render_value("  {{ inputs.amount * 2 }}  ", CONTEXT) == 24
    assert render_value("{{ steps.ask.outcome == 'approved' }}", CONTEXT) is True
    assert render_value("{{ trigger.body }}", CONTEXT) == {"text": "hello", "items": [1, 2, 3]}
    assert render_value("{{ inputs.when }}", CONTEXT) is None
    assert render_value("{{ (1, 2) }}", CONTEXT) == [1, 2]
    assert render_value("{{- vars.total -}}", CONTEXT) == 3.5
    # text around the expression, or two expressions: rendered as text
    assert render_value("{{ inputs.amount }} EUR", CONTEXT) == "12 EUR"
    assert render_value("{{ inputs.amount }}{{ inputs.amount }}", CONTEXT) == "1212"
    assert render_value("{{ '}}' }}", CONTEXT) == "}}"
    # containers are rendered recursively; other values pass through
    body = {"amount": "{{ inputs.amount }}", "tags": ["{{ run.flow }}", 5, None], "ok": True}
    assert render_value(body, CONTEXT) == {"amount": 12, "tags": ["Expenses", 5, None], "ok": True}
    assert render_value(7, CONTEXT) == 7
    assert render_value(None, CONTEXT) is None


def test_strict_undefined() -> None:
    with pytest.raises(TemplateError, match="amout"):
        render_text("{{ inputs.amout }}", CONTEXT)
    with pytest.raises(TemplateError, match="nope"):
        render_value("{{ steps.nope.outcome }}", CONTEXT)
    with pytest.raises(TemplateError, match="missing"):
        render_value("{{ [inputs.missing] }}", CONTEXT)
    with pytest.raises(TemplateError, match="'x' is undefined"):
        render_text("{{ x }}", CONTEXT)
    with pytest.raises(TemplateError, match="undefined"):
        render_value({"a": ["{{ y }}"]}, CONTEXT)


def test_syntax_errors() -> None:
    with pytest.raises(TemplateError, match="template syntax error"):
        render_text("{{ inputs.amount ", CONTEXT)
    with pytest.raises(TemplateError, match="template syntax error"):
        check_syntax("{% if %}")
    check_syntax("{{ inputs.amount }}")


def test_errors_are_short() -> None:
    with pytest.raises(TemplateError) as info:
        render_text("{{ 1 / 0 }}", CONTEXT)
    assert str(info.value) == "ZeroDivisionError: division by zero"
    assert info.value.__cause__ is None and info.value.__suppress_context__


# --- sandbox -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "source",
    [
        "{{ ''.__class__ }}",
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "{{ inputs.__class__ }}",
        "{{ cycler.__init__.__globals__ }}",
        "{{ range.__self__ }}",
        "{{ joiner.__init__.__globals__['os'] }}",
        "{{ inputs.update({'amount': 1}) }}",
        "{{ trigger.body['items'].append(4) }}",
        "{% include 'secrets.txt' %}",
        "{% import 'os' as os %}",
        "{{ lipsum() }}",
    ],
)
def test_sandbox_blocks_escapes(source: str) -> None:
    with pytest.raises(TemplateError):
        render_text(source, CONTEXT)
    with pytest.raises(TemplateError):
        render_value(source, CONTEXT)
    assert CONTEXT["inputs"]["amount"] == 12
    assert CONTEXT["trigger"]["body"]["items"] == [1, 2, 3]


# --- limits --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "source",
    [
        "{{ 'x' * 200000 }}",
        "{{ 'x' * 1000000000 }}",
        "{% for i in range(10000) %}{{ 'xxxxxxxxxxxxxxxxxxxx' }}{% endfor %}",
        "{% for i in range(10000) %}yyyyyyyyyyyyyyyyyyyy{% endfor %}",
        "{% for i in range(20000) %}{% endfor %}",
        "{% for i in range(10000) %}{% for j in range(10000) %}{% endfor %}{% endfor %}",
        "{% set s = 'x' * 90000 %}{{ s|join(s) }}",
        "{% set s = 'x' * 90000 %}{{ s.join(s) }}",
        "{% set s = 'x' * 90000 %}{% set a = s ~ s ~ s %}{% set b = a ~ a ~ a ~ a %}{{ b|length }}",
        "{% set s = 'ab' * 50000 %}{{ s|replace('a', s) }}",
        "{{ '%999999999d' % 1 }}",
        "{{ '{:>999999999}'.format(1) }}",
        "{{ 'a'|center(999999999) }}",
        "{{ 'a'.ljust(999999999) }}",
        "{{ 2 ** 99999999 }}",
        "{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}",
        "{% macro m() %}{% for i in range(10000) %}{{ 'x' * 1000 }}{% endfor %}{% endmacro %}"
        "{% set y = m() %}done",
    ],
)
def test_limits(source: str) -> None:
    started = time.monotonic()
    with pytest.raises(TemplateError):
        render_text(source, CONTEXT)
    assert time.monotonic() - started < 5


def test_output_cap_is_exact() -> None:
    assert len(render_text(f"{{{{ 'x' * {MAX_OUTPUT} }}}}", CONTEXT)) == MAX_OUTPUT
    with pytest.raises(TemplateError, match="too large"):
        render_text(f"{{{{ 'x' * {MAX_OUTPUT} }}}}.", CONTEXT)
    with pytest.raises(TemplateError, match="range"):
        render_value("{{ range(10001) }}", CONTEXT)
    assert render_value("{{ range(3) }}", CONTEXT) == [0, 1, 2]


# --- truthiness ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("false", False),
        ("False", False),
        (" no ", False),
        ("0", False),
        ("", False),
        ("None", False),
        ("OFF", False),
        ("true", True),
        ("yes", True),
        ("approved", True),
        (0, False),
        (1, True),
        (None, False),
        ([], False),
        ({"a": 1}, True),
        (False, False),
    ],
)
def test_is_truthy(value: Any, expected: bool) -> None:
    assert is_truthy(value) is expected


def test_condition_round_trip() -> None:
    rendered = render_value("{{ steps.ask.outcome == 'approved' }}", CONTEXT)
    assert is_truthy(rendered)
    assert not is_truthy(render_text("{{ steps.ask.outcome == 'rejected' }}", CONTEXT))


def test_a_garbage_collection_during_a_render_does_not_count_against_its_budget() -> None:
    import gc

    from flows.templating import time_limit

    garbage = [[index] for index in range(1_500_000)]  # a full collection takes a while
    try:
        with time_limit(0.005):
            started = time.thread_time()
            gc.collect()
            assert time.thread_time() - started > 0.005  # the collection alone is over budget
            assert render_text("{{ 1 + 1 }}", {}) == "2"
    finally:
        del garbage

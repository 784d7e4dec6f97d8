"""Gaps of control flow and failure handling, from outside (SPEC §11, §12): cancelling a
calling run cancels its child runs; call_flow checked when the caller is saved; a
`timeout` on for_each, parallel and try."""

from __future__ import annotations

import copy
from typing import Any

from tests.support import (
    ALICE,
    BOB,
    BotHarness,
    approval_dm,
    approval_of,
    command,
    create_flow,
    eventually,
    field_errors,
    finished_run,
    flow_doc,
    has_buttons,
    import_through_modal,
    runs_of,
    texts_in,
    wait_view,
    waiting_run,
)

CHILD = """
name: Ask Bob
inputs:
  - {id: what, type: text, required: true}
steps:
  - {id: ask, type: approval, approvers: ["<@U0BOB>"], title: "Bob, {{ inputs.what }}?"}
  - {id: after, type: post_message, channel: "#general", text: "child went on"}
"""

PARENT = """
name: Caller
steps:
  - id: call
    type: call_flow
    flow: Ask Bob
    inputs: {what: "lunch"}
  - {id: after, type: post_message, channel: "#general", text: "parent went on"}
"""


async def _waiting_child(bot: BotHarness) -> tuple[Any, Any, Any]:
    child = await create_flow(bot, CHILD)
    parent = await create_flow(bot, PARENT)
    await bot.driver.slash(ALICE, "run Caller")
    parent_run = await waiting_run(bot, parent.id)
    child_run = await waiting_run(bot, child.id)
    assert parent_run.steps["call"].output["run_id"] == child_run.id
    return parent, child, child_run


async def test_cancelling_the_caller_cancels_its_waiting_child_and_closes_its_approval(
    bot: BotHarness,
) -> None:
    parent, child, child_run = await _waiting_child(bot)
    to_bob = copy.deepcopy(await approval_dm(bot, BOB, "Bob, lunch?"))
    [parent_run] = await runs_of(bot, parent.id)
    await command(bot, ALICE, f"cancel {parent_run.id}", "cancel")
    [done] = await finished_run(bot, parent.id)
    assert done.status == "cancelled"
    [child_done] = await finished_run(bot, child.id)
    assert child_done.status == "cancelled"
    assert parent_run.id in (child_done.error or "")
    record = await approval_of(bot, child_run.id, "ask")
    assert record.status == "cancelled"
    # Bob's approval message no longer has buttons, and a click changes nothing.
    await eventually(
        lambda: all(
            not has_buttons(m) for m in bot.emulator.messages_in(BOB) if "lunch" in m["text"]
        )
    )
    assert (await bot.driver.click(BOB, to_bob, "approval:Approve")).ok
    assert (await approval_of(bot, child_run.id, "ask")).status == "cancelled"
    assert texts_in(bot, "#general") == []


async def test_deleting_the_calling_flow_cancels_its_child_runs(bot: BotHarness) -> None:
    _parent, child, child_run = await _waiting_child(bot)
    question = await command(bot, ALICE, "delete Caller", "cannot be undone")
    assert (await bot.driver.click(ALICE, question, "flow_delete_confirm")).ok
    [child_done] = await finished_run(bot, child.id)
    assert child_done.status == "cancelled"
    assert (await approval_of(bot, child_run.id, "ask")).status == "cancelled"
    assert texts_in(bot, "#general") == []


HOURLY = """
name: Hourly
kind: scheduled
trigger: {type: schedule, cron: "0 * * * *"}
steps:
  - {type: post_message, channel: "#general", text: "tick"}
"""

BAD_CALLS = """
name: Bad caller
steps:
  - {id: unknown, type: call_flow, flow: Ask Bob, inputs: {what: x, colour: red}}
  - id: fan
    type: parallel
    branches:
      - - {id: missing, type: call_flow, flow: ask bob, inputs: {}}
      - - {id: sched, type: call_flow, flow: Hourly}
  - {id: later, type: call_flow, flow: Not yet made}
  - {id: templated, type: call_flow, flow: "{{ 'Ask Bob' }}", inputs: {nope: 1}}
  - {id: dynamic, type: call_flow, flow: Ask Bob, inputs: {what: "{{ run.id }}"}}
"""


async def test_call_flow_steps_are_checked_against_their_child_when_saved(
    bot: BotHarness,
) -> None:
    await create_flow(bot, CHILD)
    await create_flow(bot, HOURLY)
    errors = field_errors(await import_through_modal(bot, ALICE, BAD_CALLS))["definition"]
    assert "steps[0].inputs.colour: Ask Bob has no input 'colour' (its inputs: what)" in errors
    assert "steps[1].branches[0][0].inputs: Ask Bob needs the input(s) what" in errors
    assert "steps[1].branches[1][0].flow: Hourly is a scheduled flow" in errors
    # Not made yet, a templated name, templated values: checked when the step runs.
    assert "steps[2]" not in errors and "steps[3]" not in errors and "steps[4]" not in errors
    assert await flow_doc(bot, "Bad caller") is None  # nothing saved


async def test_a_flow_calling_itself_by_id_is_refused_when_saved(bot: BotHarness) -> None:
    flow = await create_flow(bot, PARENT)
    await bot.driver.slash(ALICE, "edit Caller")
    editor = await wait_view(bot, ALICE, "flow_editor")
    source = PARENT.replace("flow: Ask Bob", f"flow: {flow.id}")
    errors = field_errors(
        await bot.driver.fill_and_submit(ALICE, editor["id"], {"definition": source})
    )["definition"]
    assert "steps[0].flow: a flow cannot call itself" in errors
    doc = await flow_doc(bot, "Caller")
    assert doc is not None and doc["version"] == 1

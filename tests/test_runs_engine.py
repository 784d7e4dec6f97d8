"""Runs started by `/flow run`: steps in order, records, failures, notifications."""

from __future__ import annotations

import json

from tests.support import (
    ALICE,
    BotHarness,
    create_flow,
    eventually,
    finished_run,
    runs_of,
    texts_in,
)

THREE_STEPS = """
name: Standup
notify: "#ops-bots"
inputs:
  - {id: topic, type: text, default: sync}
steps:
  - id: hello
    type: post_message
    channel: "#general"
    text: "Standup in 5 by <@{{ run.started_by }}>"
  - {id: remember, type: set_variable, name: topic, value: "{{ inputs.topic }}"}
  - {id: bye, type: post_message, channel: "#general", text: "Topic: {{ vars.topic }}"}
  - {id: dm, type: send_dm, user: "{{ run.started_by }}", text: "done {{ steps.hello.ts }}"}
"""


async def test_three_step_instant_flow_runs_in_order_and_is_recorded(bot: BotHarness) -> None:
    flow = await create_flow(bot, THREE_STEPS)
    response = await bot.driver.slash(ALICE, "run Standup")
    assert response.ok and response.elapsed < 3
    [run] = await finished_run(bot, flow.id)
    assert run.status == "succeeded", run.error
    assert texts_in(bot, "#general")[-2:] == [f"Standup in 5 by <@{ALICE}>", "Topic: sync"]
    assert [r.status for r in run.steps.values()] == ["succeeded"] * 4
    assert run.vars == {"topic": "sync"}
    assert run.started_by == ALICE and run.trigger.type == "manual"
    assert run.started_at and run.finished_at and run.finished_at >= run.started_at
    dm = bot.emulator.messages_in(ALICE)
    assert any(m["text"].startswith("done ") for m in dm)
    # One notify message, posted then updated, ending with the outcome.
    notices = bot.emulator.messages_in("#ops-bots")
    assert len(notices) == 1
    assert "succeeded" in notices[0]["text"] and notices[0]["updated"] >= 1
    # The starter sees the result, ephemeral through the command's response_url.
    result = await eventually(
        lambda: [p for p in bot.emulator.response_url_posts if "succeeded" in json.dumps(p)]
    )
    assert result[0]["user"] == ALICE


FAILING = """
name: Broken
notify: "#ops-bots"
steps:
  - {id: first, type: post_message, channel: "#general", text: "first"}
  - {id: notify_team, type: post_message, channel: "#general", text: "{{ inputs.amout }} EUR"}
  - {id: never, type: post_message, channel: "#general", text: "never"}
"""


async def test_a_template_error_fails_the_run_naming_step_and_field(bot: BotHarness) -> None:
    flow = await create_flow(bot, FAILING.replace("inputs.amout", "vars.amout"))
    await bot.driver.slash(ALICE, "run Broken")
    [run] = await finished_run(bot, flow.id)
    assert run.status == "failed"
    assert run.error == "step notify_team, field text: 'vars' has no attribute 'amout'"
    assert run.error_step == "notify_team"
    assert run.steps["first"].status == "succeeded"
    assert run.steps["notify_team"].status == "failed"
    assert "never" not in run.steps
    assert "never" not in texts_in(bot, "#general")
    [notice] = bot.emulator.messages_in("#ops-bots")
    blob = json.dumps(notice)
    assert "failed" in notice["text"] and "notify_team" in blob and "amout" in blob


async def test_posting_to_a_missing_channel_fails_with_slacks_error(bot: BotHarness) -> None:
    bot.emulator.auto_channels = False
    flow = await create_flow(
        bot,
        """
name: Lost
steps:
  - {id: lost, type: post_message, channel: "#nowhere", text: "hello?"}
""",
    )
    await bot.driver.slash(ALICE, "run Lost")
    [run] = await finished_run(bot, flow.id)
    assert run.status == "failed"
    assert run.error == "step lost: Slack error: channel_not_found"
    assert (await runs_of(bot, flow.id))[0].steps["lost"].error == "Slack error: channel_not_found"


CONDITION = """
name: Branchy
inputs:
  - {id: amount, type: number, required: true}
steps:
  - id: route
    type: condition
    if: "{{ inputs.amount > 100 }}"
    then:
      - {id: big, type: post_message, channel: "#general", text: "big {{ inputs.amount }}"}
    else:
      - {type: post_message, channel: "#general", text: "small {{ inputs.amount }}"}
"""


async def test_condition_records_its_branch(bot: BotHarness) -> None:
    flow = await create_flow(bot, CONDITION)
    await bot.driver.slash(ALICE, "run Branchy amount=500")
    await bot.driver.slash(ALICE, "run Branchy amount=5")
    runs = await finished_run(bot, flow.id, count=2)
    assert [r.status for r in runs] == ["succeeded", "succeeded"]
    by_amount = {r.inputs["amount"]: r for r in runs}
    assert by_amount[500].steps["route"].output["branch"] == "then"
    assert "big" in by_amount[500].steps
    assert by_amount[5].steps["route"].output["branch"] == "else"
    assert by_amount[5].steps["route.else1"].status == "succeeded"
    assert sorted(texts_in(bot, "#general")) == ["big 500", "small 5"]

"""Control flow from outside (SPEC §11): for_each, parallel, switch, call_flow and flow
outputs, through `/flow run` on the bot over HTTP, the Slack emulator and the embedded
database; validation of nested steps; a crash and a SIGKILL in the middle of a loop."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from adapters.slack import SlackMessenger
from emulator.driver import SlackDriver
from emulator.server import SlackEmulator
from flows.records import RunTrigger
from flows.runner import Runner
from flows.steps import builtin_executors
from storage.embedded import free_port
from storage.mongo import Storage
from tests.fakes import SequentialIds
from tests.support import (
    ALICE,
    BOB,
    SIGNING_SECRET,
    BotHarness,
    bot_process,
    create_flow,
    deps,
    eventually,
    field_errors,
    finished_run,
    import_through_modal,
    make_settings,
    runs_of,
    start_flowbot,
    texts_in,
    wait_view,
)

DIGEST = """
name: Digest
inputs:
  - {id: names, type: text, required: true}
outputs:
  posted: "{{ steps.each.count }}"
  last: "{{ steps.each.results[-1].hi.text }}"
steps:
  - id: each
    type: for_each
    items: "{{ inputs.names.split(',') }}"
    steps:
      - {id: hi, type: post_message, channel: "#general", text: "{{ index + 1 }}. {{ item }}"}
"""


async def test_for_each_posts_one_message_per_item_in_order(bot: BotHarness) -> None:
    flow = await create_flow(bot, DIGEST)
    writes_before = await bot.db["runs"].count_documents({})
    await bot.driver.slash(ALICE, "run Digest names=ann,bob,cy,dee")
    [run] = await finished_run(bot, flow.id)
    assert run.status == "succeeded", run.error
    assert texts_in(bot, "#general") == ["1. ann", "2. bob", "3. cy", "4. dee"]
    assert run.outputs == {"posted": 4, "last": "4. dee"}
    assert run.steps["each"].output["count"] == 4
    assert run.steps["each[3]/hi"].output["text"] == "4. dee"
    assert writes_before == 0


async def test_history_and_details_show_iterations_and_branches(bot: BotHarness) -> None:
    flow = await create_flow(
        bot, DIGEST.replace("name: Digest", 'name: Digest\nnotify: "#ops-bots"')
    )
    await bot.driver.slash(ALICE, "run Digest names=ann,bob")
    await finished_run(bot, flow.id)
    await bot.driver.slash(ALICE, "history Digest")
    listing = await eventually(
        lambda: (e := bot.emulator.last_ephemeral(ALICE)) and "Details" in json.dumps(e) and e
    )
    [run] = await runs_of(bot, flow.id)
    await bot.driver.click(ALICE, listing, "run_details", run.id)
    details = json.dumps(await wait_view(bot, ALICE))
    assert "item 1 of `each`" in details and "item 2 of `each`" in details
    assert "2 items" in details and "*Outputs*" in details
    # One progress message per run in the notify channel, updated as it goes.
    notices = await eventually(
        lambda: (m := bot.emulator.messages_in("#ops-bots")) and "succeeded" in m[0]["text"] and m
    )
    assert len(notices) == 1
    await bot.driver.slash(ALICE, "show Digest")
    shown = await eventually(
        lambda: (e := bot.emulator.last_ephemeral(ALICE)) and "each item" in json.dumps(e) and e
    )
    assert "for each of" in json.dumps(shown)


async def test_more_than_1000_items_fail_the_loop_clearly(bot: BotHarness) -> None:
    flow = await create_flow(bot, DIGEST)
    names = ",".join(f"n{i}" for i in range(1001))
    await bot.driver.slash(ALICE, f"run Digest names={names}")
    [run] = await finished_run(bot, flow.id)
    assert run.status == "failed"
    assert run.error_step == "each"
    assert "1001 items: a for_each takes at most 1000" in (run.error or "")
    assert texts_in(bot, "#general") == []


CONCURRENT = """
name: Waves
steps:
  - id: each
    type: for_each
    items: [a, b, c, d, e, f]
    concurrency: 3
    steps:
      - {id: wait, type: delay, duration: 1s}
      - {id: hi, type: post_message, channel: "#general", text: "{{ item }}"}
"""


async def test_for_each_runs_up_to_concurrency_iterations_at_once(bot: BotHarness) -> None:
    flow = await create_flow(bot, CONCURRENT)
    await bot.driver.slash(ALICE, "run Waves")

    async def parked() -> Any:
        doc = await bot.db["runs"].find_one({"flow_id": flow.id, "status": "waiting"})
        return doc if doc and doc["steps"] else None

    doc = await eventually(parked)
    waiting = sorted(k for k, v in doc["steps"].items() if v["status"] == "waiting")
    assert waiting == ["each[0]/wait", "each[1]/wait", "each[2]/wait"]
    [run] = await finished_run(bot, flow.id)
    assert run.status == "succeeded", run.error
    assert sorted(texts_in(bot, "#general")) == list("abcdef")
    results = run.steps["each"].output["results"]
    assert [r["hi"]["text"] for r in results] == list("abcdef")


PARALLEL = """
name: Both teams
steps:
  - id: ask
    type: parallel
    branches:
      - - {id: to_a, type: post_message, channel: "#general", text: "team a"}
      - - {id: to_b, type: send_dm, user: "{{ 'nobody' }}", text: "team b"}
      - - {id: pause, type: delay, duration: 1s}
        - {id: to_c, type: post_message, channel: "#general", text: "team c"}
  - {id: after, type: post_message, channel: "#general", text: "after"}
"""


async def test_parallel_fails_only_after_every_branch_ended(bot: BotHarness) -> None:
    flow = await create_flow(bot, PARALLEL)
    await bot.driver.slash(ALICE, "run Both teams")
    [run] = await finished_run(bot, flow.id)
    assert run.status == "failed"
    assert run.error_step == "ask"
    assert "branch 2 of 3 failed" in (run.error or "")
    assert run.steps["to_b"].status == "failed"
    # The slow branch still ran to its end; the step after the parallel did not run.
    assert sorted(texts_in(bot, "#general")) == ["team a", "team c"]


async def test_parallel_outputs_each_branch(bot: BotHarness) -> None:
    flow = await create_flow(bot, PARALLEL.replace("{{ 'nobody' }}", "<@U0BOB>"))
    await bot.driver.slash(ALICE, "run Both teams")
    [run] = await finished_run(bot, flow.id)
    assert run.status == "succeeded", run.error
    branches = run.steps["ask"].output["branches"]
    assert branches[1]["to_b"]["text"] == "team b"
    assert set(branches[2]) == {"pause", "to_c"}
    assert texts_in(bot, "#general")[-1] == "after"


SWITCH = """
name: Router
inputs:
  - {id: team, type: choice, choices: [sales, support, other]}
steps:
  - id: route
    type: switch
    value: "{{ inputs.team }}"
    cases:
      sales:
        - {type: post_message, channel: "#general", text: "to sales"}
      support:
        - {type: post_message, channel: "#general", text: "to support"}
    default:
      - {type: post_message, channel: "#general", text: "to everyone"}
"""


async def test_switch_runs_the_matching_case_or_the_default(bot: BotHarness) -> None:
    flow = await create_flow(bot, SWITCH)
    await bot.driver.slash(ALICE, "run Router team=support")
    await finished_run(bot, flow.id, 1)
    await bot.driver.slash(ALICE, "run Router team=other")
    runs = await finished_run(bot, flow.id, 2)
    assert [r.steps["route"].output["case"] for r in runs] == ["support", "default"]
    assert texts_in(bot, "#general") == ["to support", "to everyone"]
    assert "route.case2_1" in runs[0].steps


CHILD = """
name: Greet one
inputs:
  - {id: who, type: text, required: true}
  - {id: times, type: number, default: 1}
outputs:
  said: "hello {{ inputs.who }} x{{ inputs.times }}"
steps:
  - {id: pause, type: delay, duration: 1s}
  - {id: hi, type: post_message, channel: "#general", text: "hello {{ inputs.who }}"}
"""

PARENT = """
name: Greet all
steps:
  - id: call
    type: call_flow
    flow: Greet one
    inputs: {who: "<@{{ run.started_by }}>", times: "2"}
  - id: told
    type: post_message
    channel: "#general"
    text: "child said {{ steps.call.outputs.said }}"
"""


async def test_call_flow_waits_for_the_child_and_gets_its_outputs(bot: BotHarness) -> None:
    child = await create_flow(bot, CHILD)
    parent = await create_flow(bot, PARENT)
    await bot.driver.slash(ALICE, "run Greet all")
    [run] = await finished_run(bot, parent.id)
    assert run.status == "succeeded", run.error
    [child_run] = await runs_of(bot, child.id)  # in the child's own history
    assert child_run.parent_run == run.id
    assert child_run.trigger.type == "call"
    assert child_run.trigger.data["parent_flow"] == "Greet all"
    assert run.steps["call"].output["run_id"] == child_run.id
    assert texts_in(bot, "#general") == [
        f"hello <@{ALICE}>",
        f"child said hello <@{ALICE}> x2",
    ]


async def test_call_flow_needs_the_parent_creator_to_be_allowed(bot: BotHarness) -> None:
    await create_flow(bot, CHILD, user=BOB)  # Bob's flow, not shared with Alice
    parent = await create_flow(bot, PARENT)
    await bot.driver.slash(ALICE, "run Greet all")
    [run] = await finished_run(bot, parent.id)
    assert run.status == "failed"
    assert run.error_step == "call"
    assert "may not run Greet one" in (run.error or "")
    assert texts_in(bot, "#general") == []


async def test_a_failed_child_fails_the_calling_step(bot: BotHarness) -> None:
    failing = CHILD.replace('post_message, channel: "#general"', "send_dm, user: \"{{ 'x' }}\"")
    await create_flow(bot, failing)
    parent = await create_flow(bot, PARENT)
    await bot.driver.slash(ALICE, "run Greet all")
    [run] = await finished_run(bot, parent.id)
    assert run.status == "failed"
    assert "Greet one failed" in (run.error or "")


async def test_nested_validation_reports_every_error_with_its_place(bot: BotHarness) -> None:
    source = """
name: Bad
steps:
  - id: each
    type: for_each
    items: "{{ inputs.nope }}"
    steps:
      - {id: each, type: post_message, channel: "not a channel", text: "{{ item }}"}
  - id: both
    type: parallel
    branches:
      - - {type: post_message, channel: "#general", text: "{{ item }}"}
  - {id: me, type: call_flow, flow: bad}
"""
    errors = field_errors(await import_through_modal(bot, ALICE, source))
    text = errors["definition"]
    assert "steps[0].steps[0].channel" in text
    assert "steps[0].steps[0].id: duplicate step id 'each'" in text
    assert "steps[1].branches" in text  # one branch is not enough
    assert "steps[1].branches[0][0].text" in text and "only known inside" in text
    assert "steps[2].flow: a flow cannot call itself" in text
    assert "unknown input 'nope'" in text


async def test_steps_nest_at_most_five_deep(bot: BotHarness) -> None:
    body = '[{type: post_message, channel: "#general", text: "deep"}]'
    for level in range(6):
        body = f"[{{id: l{level}, type: for_each, items: [1], steps: {body}}}]"
    errors = field_errors(await import_through_modal(bot, ALICE, f"name: Deep\nsteps: {body}\n"))
    assert "nest at most 5 levels deep" in errors["definition"]


# ------------------------------------------------------------------ crashes in a loop

LOOP = """
name: Loop
steps:
  - id: each
    type: for_each
    items: [1, 2, 3, 4]
    steps:
      - {id: hi, type: post_message, channel: "#general", text: "item {{ item }}"}
      - {id: pause, type: delay, duration: 2s}
      - {id: bye, type: post_message, channel: "#general", text: "done {{ item }}"}
"""


async def test_a_crashed_loop_continues_without_repeating_an_iteration(bot: BotHarness) -> None:
    no_wait = "{id: pause, type: set_variable, name: seen, value: '{{ item }}'}"
    flow = await create_flow(bot, LOOP.replace("{id: pause, type: delay, duration: 2s}", no_wait))
    engine = deps(bot).runner
    dead = Runner(
        engine.store,
        builtin_executors(SlackMessenger(deps(bot).client), deps(bot).directory),
        engine.clock,
        SequentialIds(),
        owner="dead-process",
    )
    run = await dead.start_run(flow, RunTrigger(type="manual", user=ALICE))
    await dead.idle()
    # That process died after item 2's first post: the rest is forgotten, its lease ran out.
    order = [f"each[{i}]/{step}" for i in range(4) for step in ("hi", "pause", "bye")]
    forget = {f"steps.{key}": "" for key in order[order.index("each[1]/hi") + 1 :]}
    await bot.db["runs"].update_one(
        {"_id": run.id},
        {
            "$set": {
                "status": "running",
                "lease_owner": "dead-process",
                "lease_until": datetime.now(timezone.utc) - timedelta(seconds=1),
                "steps.each.status": "running",
                "steps.each.output": {"items": [1, 2, 3, 4]},
                "finished_at": None,
            },
            "$unset": {**forget, "outputs": ""},
        },
    )
    bot.emulator.messages.clear()
    [done] = await finished_run(bot, flow.id)
    assert done.status == "succeeded", done.error
    assert texts_in(bot, "#general") == ["done 2", "item 3", "done 3", "item 4", "done 4"]


async def test_a_loop_survives_sigkill_and_repeats_nothing(
    emulator: SlackEmulator, mongo_uri: str, db_name: str, tmp_path: Path
) -> None:
    settings = make_settings(emulator, mongo_uri, db_name)
    maker = await start_flowbot(settings)
    flow = await create_flow(maker, LOOP)
    await maker.stop()
    storage = Storage(mongo_uri, db_name)
    port = free_port()
    try:
        async with bot_process(settings, tmp_path, port=port) as first:
            async with SlackDriver(first.url + "/slack/events", SIGNING_SECRET, emulator) as driver:
                assert (await driver.slash(ALICE, "run Loop")).ok

            async def in_second_iteration() -> Any:
                return await storage.db["runs"].find_one(
                    {"flow_id": flow.id, "steps.each[1]/pause.status": "waiting"}
                )

            await eventually(in_second_iteration, timeout=20)
            await first.kill()
        assert [m["text"] for m in emulator.messages_in("#general")] == [
            "item 1",
            "done 1",
            "item 2",
        ]
        async with bot_process(settings, tmp_path, port=port):

            async def finished() -> Any:
                return await storage.db["runs"].find_one(
                    {"flow_id": flow.id, "status": "succeeded"}
                )

            await eventually(finished, timeout=40)
            await asyncio.sleep(0.3)
        texts = [m["text"] for m in emulator.messages_in("#general")]
        assert texts == [f"{w} {i}" for i in range(1, 5) for w in ("item", "done")]
    finally:
        storage.close()


async def test_call_flow_without_wait_goes_on_at_once(bot: BotHarness) -> None:
    child = await create_flow(bot, CHILD)
    parent = await create_flow(
        bot,
        PARENT.replace("    flow: Greet one", "    flow: Greet one\n    wait: false").replace(
            "child said {{ steps.call.outputs.said }}", "child {{ steps.call.run_id }}"
        ),
    )
    await bot.driver.slash(ALICE, "run Greet all")
    [run] = await finished_run(bot, parent.id)
    assert run.status == "succeeded", run.error
    assert run.steps["call"].output["status"] == "running"
    [child_run] = await finished_run(bot, child.id)
    assert child_run.status == "succeeded"
    assert texts_in(bot, "#general") == [f"child {child_run.id}", f"hello <@{ALICE}>"]


async def test_calls_nest_at_most_five_deep(bot: BotHarness) -> None:
    # f0 calls f1 … f5 calls f6: the sixth call is refused, and every caller fails.
    for level in range(7):
        steps = (
            f"  - {{id: c{level}, type: call_flow, flow: f{level + 1}}}"
            if level < 6
            else '  - {type: post_message, channel: "#general", text: "bottom"}'
        )
        await create_flow(bot, f"name: f{level}\nsteps:\n{steps}\n")
    top = await create_flow(bot, "name: top\nsteps:\n  - {id: go, type: call_flow, flow: f0}\n")
    await bot.driver.slash(ALICE, "run top")
    [run] = await finished_run(bot, top.id)
    assert run.status == "failed"
    assert "calls nest at most 5 deep" in (run.error or "")
    assert texts_in(bot, "#general") == []


async def test_export_round_trips_the_new_steps(bot: BotHarness) -> None:
    from flows.definition import dump_yaml, parse_definition

    for source in (DIGEST, CONCURRENT, PARALLEL, SWITCH, PARENT):
        definition = parse_definition(source)
        assert parse_definition(dump_yaml(definition)) == definition


async def test_a_crashed_parallel_reruns_only_unfinished_branch_steps(bot: BotHarness) -> None:
    source = """
name: Fan out
steps:
  - id: fan
    type: parallel
    branches:
      - - {id: a1, type: post_message, channel: "#general", text: "a1"}
        - {id: a2, type: post_message, channel: "#general", text: "a2"}
      - - {id: b1, type: post_message, channel: "#general", text: "b1"}
  - {id: end, type: post_message, channel: "#general", text: "end"}
"""
    flow = await create_flow(bot, source)
    engine = deps(bot).runner
    dead = Runner(
        engine.store,
        builtin_executors(SlackMessenger(deps(bot).client), deps(bot).directory),
        engine.clock,
        SequentialIds(),
        owner="dead-process",
    )
    run = await dead.start_run(flow, RunTrigger(type="manual", user=ALICE))
    await dead.idle()
    # It died after a1 and b1: a2, the parallel's end and the last step are forgotten.
    await bot.db["runs"].update_one(
        {"_id": run.id},
        {
            "$set": {
                "status": "running",
                "lease_owner": "dead-process",
                "lease_until": datetime.now(timezone.utc) - timedelta(seconds=1),
                "finished_at": None,
            },
            "$unset": {"steps.a2": "", "steps.fan": "", "steps.end": ""},
        },
    )
    bot.emulator.messages.clear()
    [done] = await finished_run(bot, flow.id)
    assert done.status == "succeeded", done.error
    assert texts_in(bot, "#general") == ["a2", "end"]
    assert set(done.steps["fan"].output["branches"][0]) == {"a1", "a2"}

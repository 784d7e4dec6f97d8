"""Run control and concurrency from outside (SPEC §12): `/flow cancel|retry|rerun` and the
buttons on the run's notify message, for owners, starters, run-only users and strangers;
a concurrency limit of 1 with three runs, also across two bot processes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web

from emulator.server import SlackEmulator
from tests.support import (
    ALICE,
    BOB,
    CAROL,
    BotHarness,
    attach,
    command,
    create_connection,
    create_flow,
    eventually,
    finished_run,
    local_http_server,
    plant_share,
    response_texts,
    runs_of,
    slash,
    start_flowbot,
    texts_in,
    waiting_run,
)

JSON = dict[str, Any]

WAITS = """
name: Slow
notify: "#ops-bots"
inputs:
  - {id: who, type: text}
steps:
  - {id: hello, type: post_message, channel: "#general", text: "hello {{ inputs.who }}"}
  - {id: pause, type: delay, duration: 1h}
  - {id: bye, type: post_message, channel: "#general", text: "bye"}
"""


def notify_message(bot: BotHarness, run_id: str) -> JSON | None:
    for message in reversed(bot.emulator.messages_in("#ops-bots")):
        if run_id in str(message):
            return message
    return None


def labels(message: JSON | None) -> list[str]:
    out = []
    for block in (message or {}).get("blocks") or []:
        for element in block.get("elements") or []:
            if element.get("type") == "button":
                out.append(element["text"]["text"])
    return out


async def test_cancel_by_the_owner_and_refused_for_a_stranger(bot: BotHarness) -> None:
    flow = await create_flow(bot, WAITS)
    await bot.driver.slash(ALICE, "run Slow who=ann")
    run = await waiting_run(bot, flow.id)
    message = await eventually(lambda: notify_message(bot, run.id))
    assert f"Run `{run.id}`" in str(message)
    assert "Cancel run" in labels(await eventually(lambda: notify_message(bot, run.id)))

    # A stranger: a short ephemeral refusal, nothing changes.
    refusal = await command(bot, CAROL, f"cancel {run.id}", "can cancel it")
    assert "Nothing was changed" in str(refusal)
    click = await bot.driver.click(CAROL, message, "run_cancel", run.id)
    assert click.ok
    await eventually(lambda: any("can cancel it" in t for t in response_texts(bot, CAROL)))
    [still] = await runs_of(bot, flow.id)
    assert still.status == "waiting"

    # The owner clicks Cancel: the run ends cancelled, the message says who, no buttons.
    await bot.driver.click(ALICE, message, "run_cancel", run.id)
    [done] = await finished_run(bot, flow.id)
    assert done.status == "cancelled" and done.cancelled_by == ALICE
    final = await eventually(
        lambda: (m := notify_message(bot, run.id)) and "cancelled" in m["text"] and m
    )
    assert labels(final) == []
    assert f"<@{ALICE}>" in str(final)
    assert texts_in(bot, "#general") == ["hello ann"]
    again = await command(bot, ALICE, f"cancel {run.id}", "already ended")
    assert again


async def test_the_starter_may_cancel_their_own_run(bot: BotHarness) -> None:
    flow = await create_flow(bot, WAITS)
    await plant_share(bot, flow.id, BOB, "runner")
    await bot.driver.slash(BOB, "run Slow who=bob")
    run = await waiting_run(bot, flow.id)
    await command(bot, BOB, f"cancel {run.id}", "is cancelled")
    [done] = await finished_run(bot, flow.id)
    assert done.status == "cancelled" and done.cancelled_by == BOB


FLAKY = """
name: Flaky
notify: "#ops-bots"
inputs:
  - {id: n, type: number}
steps:
  - {id: first, type: post_message, channel: "#general", text: "first {{ inputs.n }}"}
  - {id: call, type: http_request, connection: api, path: /x}
  - {id: last, type: post_message, channel: "#general", text: "last {{ steps.call.body.n }}"}
"""


@pytest.fixture
async def api() -> AsyncIterator[tuple[str, list[int]]]:
    """An API failing with 400 while `state[0]` is 1."""
    state = [1, 0]

    async def handle(request: web.Request) -> web.Response:
        state[1] += 1
        if state[0]:
            return web.json_response({"error": "bad"}, status=400)
        return web.json_response({"n": state[1]})

    async with local_http_server(handle) as url:
        yield url, state


async def flaky_flow(bot: BotHarness, url: str) -> Any:
    flow = await create_flow(bot, FLAKY)
    connection = await create_connection(bot, ALICE, "Api", url, "tok-123456")
    await attach(bot, flow, "api", connection.id)
    return flow


async def test_retry_continues_from_the_failed_step(
    http_bot: BotHarness, api: tuple[str, list[int]]
) -> None:
    bot = http_bot
    url, state = api
    flow = await flaky_flow(bot, url)
    await bot.driver.slash(ALICE, "run Flaky n=7")
    [run] = await finished_run(bot, flow.id)
    assert run.status == "failed" and run.error_step == "call"
    message = await eventually(
        lambda: (m := notify_message(bot, run.id)) and "failed" in m["text"] and m
    )
    assert labels(message) == ["Retry from the failed step", "Rerun"]

    # Not an owner: refused, nothing changes.
    await plant_share(bot, flow.id, BOB, "runner")
    await command(bot, BOB, f"retry {run.id}", "Only the flow's owners can retry")
    assert (await runs_of(bot, flow.id))[0].status == "failed"

    state[0] = 0  # the API works again
    await bot.driver.click(ALICE, message, "run_retry", run.id)

    async def retried() -> Any:
        [found] = await runs_of(bot, flow.id)
        return found if found.retries and found.finished else None

    done = await eventually(retried)
    assert done.id == run.id and done.status == "succeeded", done.error
    assert texts_in(bot, "#general") == ["first 7", "last 2"]  # `first` not repeated
    assert done.retries and done.retries[0]["by"] == ALICE
    assert done.retries[0]["from_step"] == "call"
    await command(bot, ALICE, f"retry {run.id}", "did not fail")
    listing = await command(bot, ALICE, "history Flaky", "Retried from step")
    assert run.id in str(listing)


async def test_rerun_with_the_same_inputs_and_run_only_rights(
    http_bot: BotHarness, api: tuple[str, list[int]]
) -> None:
    bot = http_bot
    url, state = api
    flow = await flaky_flow(bot, url)
    await plant_share(bot, flow.id, BOB, "runner")
    await bot.driver.slash(BOB, "run Flaky n=5")
    [bobs] = await finished_run(bot, flow.id)
    assert bobs.status == "failed"
    await bot.driver.slash(ALICE, "run Flaky n=6")
    runs = await finished_run(bot, flow.id, 2)
    alices = next(r for r in runs if r.started_by == ALICE)

    # A run-only user may rerun their own run, not someone else's; a stranger neither.
    await command(bot, BOB, f"rerun {alices.id}", "can rerun it")
    await command(bot, CAROL, f"rerun {bobs.id}", "can rerun it")
    assert len(await runs_of(bot, flow.id)) == 2
    state[0] = 0
    await command(bot, BOB, f"rerun {bobs.id}", "Rerunning")
    runs = await finished_run(bot, flow.id, 3)
    rerun = runs[-1]
    assert rerun.status == "succeeded", rerun.error
    assert rerun.inputs == bobs.inputs and rerun.rerun_of == bobs.id
    assert rerun.started_by == BOB
    # The owner may rerun anyone's run.
    await command(bot, ALICE, f"rerun {bobs.id}", "Rerunning")
    runs = await finished_run(bot, flow.id, 4)
    assert runs[-1].inputs == {"n": 5} and runs[-1].started_by == ALICE
    details = notify_message(bot, runs[-1].id)
    assert details is not None and f"Rerun of run `{bobs.id}`" in str(details)


LIMITED = """
name: One at a time
concurrency: 1
inputs:
  - {id: n, type: number}
steps:
  - {id: hello, type: post_message, channel: "#general", text: "start {{ inputs.n }}"}
  - {id: pause, type: delay, duration: 1h}
"""


async def test_a_concurrency_limit_of_one_with_three_runs(
    bot: BotHarness, emulator: SlackEmulator, mongo_uri: str, db_name: str
) -> None:
    flow = await create_flow(bot, LIMITED)
    # A second bot process on the same database starts runs too.
    other = await start_flowbot(bot.settings)
    try:
        await bot.driver.slash(ALICE, "run One at a time n=1")
        await eventually(lambda: texts_in(bot, "#general") == ["start 1"])
        permit = await other.deps.runs.permit_named(flow.team_id, ALICE, flow.id)
        await other.deps.runs.start(permit, {"n": 2}, source="slash")
        await bot.driver.slash(ALICE, "run One at a time n=3")
        runs = await eventually(lambda: _statuses(bot, flow.id, ["waiting", "queued", "queued"]))
        assert [r.inputs["n"] for r in runs] == [1, 2, 3]
        assert all(r.held for r in runs[1:])
        assert texts_in(bot, "#general") == ["start 1"]

        # The first ends (cancelled): the second starts, the third still waits.
        await command(bot, ALICE, f"cancel {runs[0].id}", "is cancelled")
        await eventually(lambda: _statuses(bot, flow.id, ["cancelled", "waiting", "queued"]))
        assert texts_in(bot, "#general") == ["start 1", "start 2"]
        runs = await runs_of(bot, flow.id)
        await command(bot, ALICE, f"cancel {runs[1].id}", "is cancelled")
        await eventually(lambda: _statuses(bot, flow.id, ["cancelled", "cancelled", "waiting"]))
        assert texts_in(bot, "#general") == ["start 1", "start 2", "start 3"]
    finally:
        await other.stop()


async def _statuses(bot: BotHarness, flow_id: str, expected: list[str]) -> Any:
    runs = await runs_of(bot, flow_id)
    return runs if [r.status for r in runs] == expected else None


async def test_a_typed_run_id_that_names_no_run_gets_the_usage_line(bot: BotHarness) -> None:
    for verb in ("cancel", "retry", "rerun"):
        answer = await slash(bot, ALICE, f"{verb} R0nope")
        assert "There is no run `R0nope` in this workspace" in answer.text
        assert f"/flow {verb} <run id>" in answer.text

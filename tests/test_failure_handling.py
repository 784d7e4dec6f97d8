"""Failure handling from outside (SPEC §12): retries of transient failures only, counted
request by request against a local server that fails on purpose, Retry-After, durable
waits between tries across a restart, timeouts, on_error: continue, try/catch/finally.
The bot runs on a fake clock: backoff waits pass by advancing it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
from aiohttp import web

from emulator.server import SlackEmulator
from flows.records import RunRecord
from tests.fakes import FakeClock
from tests.support import (
    ALICE,
    BotHarness,
    attach,
    create_connection,
    create_flow,
    eventually,
    finished_run,
    local_http_server,
    make_settings,
    runs_of,
    start_bot,
    stop_bot,
    texts_in,
)

JSON = dict[str, Any]


class FailingApi:
    """A server that answers each request with the next planned (status, headers), then
    200; it counts the requests it got."""

    def __init__(self) -> None:
        self.plan: list[tuple[int, dict[str, str]]] = []
        self.hits = 0
        self.slow = 0.0

    async def handle(self, request: web.Request) -> web.Response:
        self.hits += 1
        if self.slow:
            await asyncio.sleep(self.slow)
        if self.plan:
            status, headers = self.plan.pop(0)
            return web.json_response({"error": status}, status=status, headers=headers)
        return web.json_response({"ok": True, "hit": self.hits})


class Setup:
    def __init__(self, bot: BotHarness, clock: FakeClock, api: FailingApi, url: str) -> None:
        self.bot = bot
        self.clock = clock
        self.api = api
        self.url = url
        self.connection: Any = None

    async def flow(self, source: str) -> Any:
        flow = await create_flow(self.bot, source)
        if "http_request" in source:
            if self.connection is None:
                self.connection = await create_connection(
                    self.bot, ALICE, "Api", self.url, "tok-123456"
                )
            await attach(self.bot, flow, "api", self.connection.id)
        return flow


@pytest.fixture
async def setup(emulator: SlackEmulator, mongo_uri: str, db_name: str) -> AsyncIterator[Setup]:
    api = FailingApi()
    clock = FakeClock()
    settings = make_settings(emulator, mongo_uri, db_name, flowbot_allowed_http_hosts="127.0.0.1")
    async with local_http_server(api.handle) as url:
        bot = await start_bot(emulator, settings, clock)
        holder = Setup(bot, clock, api, url)
        try:
            yield holder
        finally:
            await stop_bot(holder.bot)


def flow_with(step: str, name: str = "Sync") -> str:
    return f"""
name: {name}
steps:
  - id: call
    type: http_request
    connection: api
    path: /items
{step}
  - id: after
    type: post_message
    channel: "#general"
    text: >-
      ok={{{{ steps.call.ok }}}} status={{{{ steps.call.status }}}}
      tries={{{{ steps.call.attempts }}}}
"""


async def waiting_for_retry(bot: BotHarness, flow_id: str, attempts: int) -> RunRecord:
    async def check() -> RunRecord | None:
        runs = await runs_of(bot, flow_id)
        if not runs or runs[-1].status != "waiting":
            return None
        step = runs[-1].steps.get("call")
        ok = step is not None and step.output.get("attempts") == attempts
        return runs[-1] if ok else None

    run: RunRecord = await eventually(check)
    return run


async def pass_time(setup: Setup, seconds: float) -> None:
    setup.clock.advance(timedelta(seconds=seconds))


async def test_transient_failures_are_retried_with_backoff_and_counted(setup: Setup) -> None:
    flow = await setup.flow(flow_with("    retry: {attempts: 4, backoff: 2s, max_backoff: 3s}"))
    setup.api.plan = [(503, {}), (500, {}), (408, {})]
    await setup.bot.driver.slash(ALICE, "run Sync")
    run = await waiting_for_retry(setup.bot, flow.id, 1)
    assert setup.api.hits == 1
    assert run.wake_at == setup.clock.now() + timedelta(seconds=2)
    await pass_time(setup, 1)
    await pass_time(setup, 1)
    run = await waiting_for_retry(setup.bot, flow.id, 2)
    assert setup.api.hits == 2
    # The next wait doubles (4s) but max_backoff caps it at 3s.
    assert run.wake_at == setup.clock.now() + timedelta(seconds=3)
    await pass_time(setup, 3)
    await waiting_for_retry(setup.bot, flow.id, 3)
    await pass_time(setup, 3)
    [run] = await finished_run(setup.bot, flow.id)
    assert run.status == "succeeded", run.error
    assert setup.api.hits == 4
    call = run.steps["call"]
    assert call.output["attempts"] == 4
    assert [t["attempt"] for t in call.output["tries"]] == [1, 2, 3]
    assert "HTTP 503" in call.output["tries"][0]["error"]
    assert texts_in(setup.bot, "#general") == ["ok=True status=200 tries=4"]


async def test_a_4xx_is_not_retried_and_exhausted_retries_fail(setup: Setup) -> None:
    flow = await setup.flow(flow_with("    retry: {attempts: 5}"))
    setup.api.plan = [(404, {})]
    await setup.bot.driver.slash(ALICE, "run Sync")
    [run] = await finished_run(setup.bot, flow.id)
    assert run.status == "failed" and "HTTP 404" in (run.error or "")
    assert setup.api.hits == 1
    assert run.steps["call"].output["attempts"] == 1

    setup.api.hits = 0
    setup.api.plan = [(502, {}), (502, {})]
    flow2 = await setup.flow(flow_with("    retry: {attempts: 2, backoff: 1s}", "Sync2"))
    await setup.bot.driver.slash(ALICE, "run Sync2")
    await waiting_for_retry(setup.bot, flow2.id, 1)
    await pass_time(setup, 1)
    [run] = await finished_run(setup.bot, flow2.id)
    assert run.status == "failed" and "HTTP 502" in (run.error or "")
    assert setup.api.hits == 2
    assert run.steps["call"].output["attempts"] == 2
    assert len(run.steps["call"].output["tries"]) == 2


async def test_retry_after_is_honoured(setup: Setup) -> None:
    flow = await setup.flow(flow_with("    retry: {attempts: 2, backoff: 1s}"))
    setup.api.plan = [(429, {"Retry-After": "30"})]
    await setup.bot.driver.slash(ALICE, "run Sync")
    run = await waiting_for_retry(setup.bot, flow.id, 1)
    assert run.wake_at == setup.clock.now() + timedelta(seconds=30)
    await pass_time(setup, 10)
    await eventually(lambda: True)
    assert setup.api.hits == 1  # not before Retry-After
    await pass_time(setup, 20)
    [run] = await finished_run(setup.bot, flow.id)
    assert run.status == "succeeded" and setup.api.hits == 2


async def test_a_restart_between_tries_keeps_the_count(
    setup: Setup, emulator: SlackEmulator
) -> None:
    flow = await setup.flow(flow_with("    retry: {attempts: 3, backoff: 5s}"))
    setup.api.plan = [(503, {}), (503, {})]
    await setup.bot.driver.slash(ALICE, "run Sync")
    await waiting_for_retry(setup.bot, flow.id, 1)
    await stop_bot(setup.bot)
    setup.bot = await start_bot(emulator, setup.bot.settings, setup.clock)
    await pass_time(setup, 5)
    await waiting_for_retry(setup.bot, flow.id, 2)
    await pass_time(setup, 10)
    [run] = await finished_run(setup.bot, flow.id)
    assert run.status == "succeeded" and setup.api.hits == 3
    assert run.steps["call"].output["attempts"] == 3


async def test_on_error_continue_and_timeouts(setup: Setup) -> None:
    flow = await setup.flow(
        flow_with("    timeout: 1s\n    on_error: continue\n    retry: {attempts: 1}")
    )
    setup.api.plan = [(500, {})]
    await setup.bot.driver.slash(ALICE, "run Sync")
    [run] = await finished_run(setup.bot, flow.id)
    assert run.status == "succeeded", run.error
    assert run.steps["call"].status == "failed"
    assert texts_in(setup.bot, "#general") == ["ok=False status=500 tries=1"]

    # An http_request's timeout bounds each try; a timed-out try is retried.
    setup.api.slow = 1.5
    flow2 = await setup.flow(
        flow_with("    timeout: 1\n    retry: {attempts: 2, backoff: 1s}", "Slow")
    )
    await setup.bot.driver.slash(ALICE, "run Slow")
    run = await waiting_for_retry(setup.bot, flow2.id, 1)
    assert "timed out" in run.steps["call"].output["tries"][0]["error"]
    setup.api.slow = 0
    await pass_time(setup, 1)
    [run] = await finished_run(setup.bot, flow2.id)
    assert run.status == "succeeded", run.error


TRY = """
name: Guarded
steps:
  - {id: first, type: post_message, channel: "#general", text: "first"}
  - id: guard
    type: try
    steps:
      - {id: call, type: http_request, connection: api, path: /items}
      - {id: never, type: post_message, channel: "#general", text: "never"}
    catch:
      - {id: oops, type: post_message, channel: "#general",
         text: "caught {{ error.step }}: {{ error.message }}"}
    finally:
      - {id: tidy, type: post_message, channel: "#general", text: "finally"}
  - {id: last, type: post_message, channel: "#general",
     text: "after {{ steps.guard.caught }} {{ steps.call.ok }}"}
"""


async def test_try_catch_finally(setup: Setup) -> None:
    flow = await setup.flow(TRY)
    setup.api.plan = [(400, {})]
    await setup.bot.driver.slash(ALICE, "run Guarded")
    [run] = await finished_run(setup.bot, flow.id)
    assert run.status == "succeeded", run.error
    texts = texts_in(setup.bot, "#general")
    assert texts[0] == "first"
    assert texts[1].startswith("caught call: GET 127.0.0.1 answered HTTP 400")
    assert texts[2:] == ["finally", "after True False"]
    assert run.steps["call"].status == "failed"


async def test_a_failing_catch_fails_the_run_after_finally(setup: Setup) -> None:
    source = TRY.replace(
        'text: "caught {{ error.step }}: {{ error.message }}"', 'text: "{{ error.nope.x }}"'
    )
    flow = await setup.flow(source)
    setup.api.plan = [(500, {})]
    await setup.bot.driver.slash(ALICE, "run Guarded")
    [run] = await finished_run(setup.bot, flow.id)
    assert run.status == "failed"
    assert "catch step oops failed" in (run.error or "")
    assert texts_in(setup.bot, "#general") == ["first", "finally"]


WAIT_TOO_LONG = """
name: Patience
steps:
  - {id: pause, type: delay, duration: 1h, timeout: 10m}
  - {id: after, type: post_message, channel: "#general", text: "after"}
"""


async def test_a_waiting_step_fails_when_its_timeout_passes(setup: Setup) -> None:
    flow = await setup.flow(WAIT_TOO_LONG)
    await setup.bot.driver.slash(ALICE, "run Patience")

    async def parked() -> RunRecord | None:
        runs = await runs_of(setup.bot, flow.id)
        return runs[0] if runs and runs[0].status == "waiting" else None

    run = await eventually(parked)
    assert run.wake_at == setup.clock.now() + timedelta(minutes=10)
    await pass_time(setup, 600)
    [run] = await finished_run(setup.bot, flow.id)
    assert run.status == "failed" and "timed out after 10m" in (run.error or "")
    assert texts_in(setup.bot, "#general") == []

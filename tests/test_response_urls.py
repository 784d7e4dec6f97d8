"""Answers through response URLs (adapters/response_urls.py, bot/respond.py): the same
payloads as Bolt's `respond()`, over one pool of kept-alive connections instead of a new
connection each."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from slack_bolt.context.respond.async_respond import AsyncRespond

from adapters.response_urls import ResponseUrls
from bot.respond import PooledRespond
from tests.support import (
    ALICE,
    JSON,
    BotHarness,
    create_flow,
    eventually,
    finished_run,
    local_http_server,
    slash,
    template_source,
)


async def test_answers_share_one_connection_and_match_bolts_payloads() -> None:
    seen: list[tuple[Any, JSON]] = []

    async def handle(request: web.Request) -> web.Response:
        peer = request.transport.get_extra_info("peername") if request.transport else None
        seen.append((peer, await request.json()))
        return web.Response(text="ok")

    blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": "*hi*"}}]
    pool = ResponseUrls()
    async with local_http_server(handle, "POST", "/answer/{tail:.*}") as url:
        try:
            for i in range(3):
                respond = PooledRespond(pool, response_url=f"{url}/answer/{i}")
                response = await respond(text="hi", blocks=blocks, response_type="ephemeral")
                assert response.status_code == 200
            await pool.client(f"{url}/answer/3").send(text="done", replace_original=False)
            await AsyncRespond(response_url=f"{url}/answer/bolt")(
                text="hi", blocks=blocks, response_type="ephemeral"
            )
        finally:
            await pool.stop()
    peers = {peer for peer, _ in seen[:4]}
    assert len(peers) == 1  # one kept-alive connection for the four answers
    assert seen[4][0] not in peers  # Bolt's own respond() connects anew
    assert [body for _, body in seen[:3]] == [seen[4][1]] * 3  # the payload Bolt sends
    assert seen[3][1] == {"text": "done", "replace_original": False}


async def test_stop_closes_the_pool_and_a_later_answer_opens_a_new_one() -> None:
    pool = ResponseUrls()
    first = pool.session()
    assert pool.session() is first
    await pool.stop()
    assert first.closed
    second = pool.session()
    assert second is not first and not second.closed
    await pool.stop()


async def test_listeners_and_run_results_answer_through_the_apps_pool(bot: BotHarness) -> None:
    [pool] = [s for s in bot.flowbot.services if isinstance(s, ResponseUrls)]
    flow = await create_flow(bot, template_source("blank"))
    before = len(bot.emulator.response_url_posts)
    await slash(bot, ALICE, 'run "My new flow"', expect=2)  # started, then its result
    await finished_run(bot, flow.id)
    await eventually(lambda: len(bot.emulator.response_url_posts) >= before + 2)
    assert pool.answers >= 2  # Bolt's respond() (a new connection each) was not used

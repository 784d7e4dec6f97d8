"""The acknowledgement baseline: a bare Bolt `AsyncApp` whose `/flow` only acknowledges,
served exactly as the bot serves Slack (aiohttp, bolt's aiohttp adapter, the same signature
verification and Bolt settings). `python -m bench.bare_app`, configured like the bot by
SLACK_BOT_TOKEN, SLACK_SIGNING_SECRET, SLACK_API_URL and PORT; stops on SIGTERM."""

from __future__ import annotations

import asyncio
import logging
import os
import signal

from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request
from slack_bolt.async_app import AsyncAck, AsyncApp
from slack_sdk.web.async_client import AsyncWebClient

BOLT_KEY = web.AppKey("bolt", AsyncApp)


def make_bolt() -> AsyncApp:
    client = AsyncWebClient(
        token=os.environ["SLACK_BOT_TOKEN"], base_url=os.environ["SLACK_API_URL"]
    )
    # The same options as bot/app.py, so the middleware chain is the same.
    bolt = AsyncApp(
        client=client,
        signing_secret=os.environ["SLACK_SIGNING_SECRET"],
        process_before_response=False,
        raise_error_for_unhandled_request=False,
    )

    @bolt.command("/flow")
    async def flow_command(ack: AsyncAck) -> None:
        await ack()

    return bolt


async def slack_events(request: web.Request) -> web.Response:
    # bot/server.py's slack_events, minus the "not configured" answer.
    bolt_response = await request.app[BOLT_KEY].async_dispatch(await to_bolt_request(request))
    return await to_aiohttp_response(bolt_response)


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def serve(port: int) -> None:
    app = web.Application(client_max_size=1024 * 1024)
    app[BOLT_KEY] = make_bolt()
    app.router.add_post("/slack/events", slack_events)
    app.router.add_get("/healthz", healthz)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "0.0.0.0", port).start()
    stop = asyncio.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        asyncio.get_running_loop().add_signal_handler(signum, stop.set)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING)
    asyncio.run(serve(int(os.environ.get("PORT", "3000"))))

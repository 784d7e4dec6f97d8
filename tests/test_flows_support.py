"""Helpers for the flow tests (no tests here): waiting, finding views, importing flows."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable
from typing import Any, TypeVar

from emulator.driver import DriverResponse
from emulator.server import SlackEmulator, texts
from tests.conftest import BotHarness

T = TypeVar("T")
JSON = dict[str, Any]


async def eventually(check: Callable[[], T | None], timeout: float = 5.0) -> T:
    """The first truthy result of `check`, polled: the bot answers after acknowledging."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError("the expected result did not come in time")
        await asyncio.sleep(0.02)


async def settle(seconds: float = 0.3) -> None:
    """Give the bot time to do what it should NOT do (post, save …) before checking."""
    await asyncio.sleep(seconds)


def top_view(emulator: SlackEmulator, user: str, callback_id: str | None = None) -> JSON | None:
    views = [
        v
        for v in emulator.views.values()
        if v.get("user") == user and v["stack"] and v["stack"][-1] == v["id"]
    ]
    if callback_id is not None:
        views = [v for v in views if v.get("callback_id") == callback_id]
    return views[-1] if views else None


async def wait_view(emulator: SlackEmulator, user: str, callback_id: str) -> JSON:
    return await eventually(lambda: top_view(emulator, user, callback_id))


def all_text(obj: Any) -> str:
    if isinstance(obj, dict) and "blocks" in obj:
        return "\n".join([str(obj.get("text", "")), *texts(obj["blocks"])])
    return "\n".join(texts(obj))


def ephemerals_for(emulator: SlackEmulator, user: str, since: int = 0) -> list[JSON]:
    return [e for e in emulator.ephemerals[since:] if e["user"] == user]


async def wait_ephemeral(emulator: SlackEmulator, user: str, contains: str, since: int = 0) -> JSON:
    def find() -> JSON | None:
        hits = [e for e in ephemerals_for(emulator, user, since) if contains in all_text(e)]
        return hits[-1] if hits else None

    return await eventually(find)


async def command(bot: BotHarness, user: str, text: str, contains: str) -> JSON:
    """Run `/flow text` and wait for the ephemeral answer containing `contains`."""
    since = len(bot.emulator.ephemerals)
    response = await bot.driver.slash(user, text)
    assert response.ok, response
    return await wait_ephemeral(bot.emulator, user, contains, since)


async def import_through_modal(bot: BotHarness, user: str, text: str) -> DriverResponse:
    """`/flow import`, paste `text` into the editor, submit."""
    await bot.driver.slash(user, "import")
    view = await wait_view(bot.emulator, user, "flow_editor")
    return await bot.driver.fill_and_submit(user, view["id"], {"definition": text})


def field_errors(response: DriverResponse) -> dict[str, str]:
    assert response.ok, response
    body = response.json or {}
    assert body.get("response_action") == "errors", body
    return dict(body["errors"])


_CODE = re.compile(r"```(.*?)```", re.DOTALL)


def code_blocks(messages: list[JSON]) -> str:
    """The text of every code block in these messages, in order, unescaped."""
    parts = [
        match
        for message in messages
        for text in texts(message["blocks"])
        for match in _CODE.findall(text)
    ]
    joined = "".join(parts)
    return joined.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


async def flow_doc(bot: BotHarness, name: str) -> JSON | None:
    doc: JSON | None = await bot.db["flows"].find_one({"name_key": name.casefold()})
    return doc

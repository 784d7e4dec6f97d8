"""Helpers for the contract tests (no tests here): the outside checker's view of the bot.

A Slack user types `/flow …` and clicks; an operator sends HTTP. What they can observe is
checked: the answer they see (ephemeral, within 3 s, readable), and that a refused command
changed nothing (every document of every collection, and what Slack shows).
"""

from __future__ import annotations

import asyncio
import re
import time
from dataclasses import dataclass
from typing import Any

from emulator.driver import DriverResponse
from emulator.server import texts
from tests.conftest import BotHarness

JSON = dict[str, Any]

# What a person must never read: Python reprs, tracebacks, internal errors.
_RAW = re.compile(
    r"\bNone\b|\[\]|\['|\{\}|\{'|<flows\.|<handlers\.|<cards\.|object at 0x|Traceback"
    r"|\bdatetime\.|\bFlowRecord\(|\bRunRecord\("
)
CRASH = "Something went wrong"


def answer_text(message: JSON) -> str:
    """The fallback text and every text of the blocks, one per line."""
    return "\n".join([str(message.get("text") or ""), *texts(message.get("blocks") or [])])


def reads_well(message: JSON) -> str:
    """The answer's text, after checking that a person can read it: not empty, no reprs,
    no traceback, no crash. Returns the text for further checks."""
    text = answer_text(message)
    assert str(message.get("text") or "").strip(), f"an answer without text: {message}"
    assert list(texts(message.get("blocks") or [])) or message.get("text"), message
    raw = _RAW.search(text)
    assert raw is None, f"raw Python in an answer ({raw.group(0)!r}): {text}"
    assert CRASH not in text, text
    return text


async def eventually(check: Any, timeout: float = 8.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {check}")
        await asyncio.sleep(0.02)


@dataclass
class Answer:
    response: DriverResponse
    ephemerals: list[JSON]

    @property
    def text(self) -> str:
        return "\n---\n".join(answer_text(e) for e in self.ephemerals)


async def slash(
    bot: BotHarness,
    user: str,
    text: str,
    *,
    expect: int | None = 1,
    settle: float = 0.25,
    channel: str = "C0GENERAL",
) -> Answer:
    """Type `/flow text` as `user`; wait for the ephemeral answers (`expect` of them, then a
    little longer to see that no more come). `expect=0` waits `settle` only."""
    emulator = bot.emulator
    since = len(emulator.ephemerals)
    response = await bot.driver.slash(user, text, channel=channel)
    assert response.status == 200, (text, response)
    assert not response.timed_out, f"/flow {text} took {response.elapsed:.2f}s"
    assert response.error is None, (text, response.error)

    def mine() -> list[JSON]:
        return [e for e in emulator.ephemerals[since:] if e["user"] == user]

    if expect:
        await eventually(lambda: len(mine()) >= expect)
    await asyncio.sleep(settle)
    return Answer(response, mine())


async def state_of(bot: BotHarness) -> JSON:
    """Everything a command could change: every document of every collection, what Slack
    shows in channels and DMs, open modals and home tabs."""
    db: JSON = {}
    for name in sorted(await bot.db.list_collection_names()):
        docs = [doc async for doc in bot.db[name].find({})]
        db[name] = sorted(repr(sorted(doc.items())) for doc in docs)
    emulator = bot.emulator
    messages = {
        channel: [(m["ts"], m["text"], m["updated"]) for m in msgs]
        for channel, msgs in emulator.messages.items()
    }
    return {
        "db": db,
        "messages": messages,
        "views": sorted(emulator.views),
        "home": {user: view["hash"] for user, view in emulator.home_views.items()},
    }


def diff(before: JSON, after: JSON) -> list[str]:
    """What changed between two `state_of` snapshots, briefly."""
    changes: list[str] = []
    for key in ("messages", "views", "home"):
        if before[key] != after[key]:
            changes.append(f"{key}: {before[key]} -> {after[key]}")
    for name in sorted(set(before["db"]) | set(after["db"])):
        old, new = before["db"].get(name, []), after["db"].get(name, [])
        if old != new:
            changes.append(
                f"collection {name}: {len(old)} -> {len(new)} documents, contents differ"
            )
    return changes


def by_label(view: JSON, values: dict[str, str]) -> dict[str, str]:
    """Modal inputs keyed by their visible label (case-insensitive prefix) → block ids."""
    out: dict[str, str] = {}
    for label, value in values.items():
        matches = [
            str(block["block_id"])
            for block in view.get("blocks") or []
            if block.get("type") == "input"
            and str((block.get("label") or {}).get("text", "")).lower().startswith(label.lower())
        ]
        assert len(matches) == 1, (label, [b.get("label") for b in view["blocks"]])
        out[matches[0]] = value
    return out

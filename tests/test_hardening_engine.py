"""Issue 19: no input stalls the bot, no run loops forever, no step repeats after a crash.

From outside: flows saved through the catalog, runs started by signed `/flow run`
commands and events, Slack served by the emulator over HTTP.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from flows.definition import DefinitionError, parse_definition
from flows.templating import DEFAULT_SECONDS, TemplateError, render_text
from tests.support import (
    ALICE,
    BOB,
    BotHarness,
    create_flow,
    finished_run,
    runs_of,
    slash,
)

HOSTILE_TEMPLATE = """
name: Heavy
steps:
  - type: post_message
    channel: "#general"
    text: >-
      {% for i in range(2000) %}{% set x = ('a'*999999).replace('a','b') %}{% endfor %}done
"""


async def _help_times(bot: BotHarness, user: str, count: int) -> list[float]:
    times = []
    for _ in range(count):
        start = time.perf_counter()
        answer = await slash(bot, user, "help", settle=0)
        times.append(time.perf_counter() - start)
        assert "/flow" in answer.text
        await asyncio.sleep(0.05)
    return times


async def test_a_hostile_template_fails_its_step_and_never_holds_the_bot(bot: BotHarness) -> None:
    flow = await create_flow(bot, HOSTILE_TEMPLATE)
    await _help_times(bot, BOB, 1)  # warm up: the first answer compiles and caches
    for _ in range(3):
        response = await bot.driver.slash(ALICE, "run Heavy")
        assert response.ok and response.elapsed < 0.3
    times = await _help_times(bot, BOB, 6)
    runs = await finished_run(bot, flow.id, count=3)
    assert max(times) < 0.3, times
    for run in runs:
        assert run.status == "failed"
        assert "took too long" in (run.error or ""), run.error
    assert "done" not in " ".join(m["text"] for m in bot.emulator.messages_in("#general"))


def test_a_render_on_the_event_loop_stops_at_its_budget() -> None:
    source = "{% for i in range(5000) %}{% set x = ('a'*999999).replace('a','b') %}{% endfor %}"
    start = time.thread_time()
    with pytest.raises(TemplateError, match="took too long"):
        render_text(source, {})
    assert time.thread_time() - start < DEFAULT_SECONDS + 0.05
    with pytest.raises(TemplateError, match="number too large"):
        render_text(
            "{% set n = namespace(x=3**50000) %}{% for i in range(40) %}"
            "{% set n.x = n.x * n.x %}{% endfor %}",
            {},
        )


CATASTROPHIC = """
name: Backtracker
kind: automated
trigger: {type: message, channel: "#incidents", pattern: '(a+)+$'}
steps:
  - {type: post_message, channel: "#general", text: "matched"}
"""


async def test_a_catastrophic_pattern_matches_in_linear_time(bot: BotHarness) -> None:
    bot.emulator.add_channel("C0INCIDENTS", "incidents", members=[ALICE, BOB])
    flow = await create_flow(bot, CATASTROPHIC)
    hostile = "a" * 27 + "!"
    start = time.perf_counter()
    for channel in ("C0INCIDENTS", "C0GENERAL"):
        response = await bot.driver.event(bot.driver.message_event(BOB, channel, hostile))
        assert response.status == 200
    times = await _help_times(bot, BOB, 2)
    assert time.perf_counter() - start < 1.5 and max(times) < 0.3, times
    await asyncio.sleep(0.2)
    assert await runs_of(bot, flow.id) == []  # "…a!" does not end in a's: no match
    await bot.driver.event(bot.driver.message_event(BOB, "C0INCIDENTS", "a" * 5000))
    [run] = await finished_run(bot, flow.id)
    assert run.status == "succeeded"


@pytest.mark.parametrize(
    ("pattern", "words"),
    [
        (r"(\w+) \1", "backreferences"),
        ("(?=deploy)", "lookahead"),
        ("(?<!no )deploy", "lookbehind"),
    ],
)
def test_what_re2_cannot_run_is_refused_when_saved(pattern: str, words: str) -> None:
    source = CATASTROPHIC.replace("'(a+)+$'", f"'{pattern}'")
    with pytest.raises(DefinitionError) as refused:
        parse_definition(source)
    assert words in str(refused.value)

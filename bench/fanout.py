"""Fan-out under Slack's rate limit: the emulator allows one `chat.postMessage` per second
per channel (HTTP 429 with Retry-After: 1 past it). 300 runs start at once, 100 for each of
3 flows whose notify channels differ; each run's notification is posted through the bot's
Messenger (slack_sdk's retry handlers wait out the 429s). Figures: the time until every run
has finished against the ideal (100 s: each channel takes one message a second), and the
notifications Slack never received (counted in the emulator). The bot is built in this
process (`bot.app.build`).
"""

from __future__ import annotations

import logging
import time

from bench.common import ALICE, TEAM, Env, Section, make_emulator, say, settings_for
from bot.app import build
from flows.definition import parse_definition
from flows.records import RunTrigger

NAME = "fanout"
TITLE = "Fan-out under the rate limit"
CHANNELS = ("C0FANA", "C0FANB", "C0FANC")

FLOW = """\
name: Fan {channel}
notify: "{channel}"
steps:
  - {{id: note, type: set_variable, name: done, value: "yes"}}
"""


class Warnings(logging.Handler):
    """Counts the bot's warnings by logger (a given-up notification is one)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(f"{record.name}: {record.getMessage()}")


async def run(env: Env) -> Section:
    section = Section(NAME, TITLE)
    per_channel = env.size(100, 20)
    total = per_channel * len(CHANNELS)
    ideal = float(per_channel)  # one message per second in each channel, in parallel
    emulator = make_emulator()
    for channel in CHANNELS:
        emulator.add_channel(channel, channel.lower())
    await emulator.start()
    # Paced as in production: one message a second per channel.
    settings = settings_for(emulator, env, env.db_name(NAME))
    settings = settings.model_copy(update={"flowbot_posts_per_channel": 1.0})
    flowbot = build(settings, env.mongo.uri)
    runner, catalog = flowbot.deps.runner, flowbot.deps.catalog
    assert runner is not None and catalog is not None
    # The bot's own warnings (not printed: hundreds are expected here) tell what it gave up.
    warnings, bot_log = Warnings(), logging.getLogger("handlers")
    saved = bot_log.level, bot_log.propagate
    bot_log.setLevel(logging.WARNING)
    bot_log.propagate = False
    bot_log.addHandler(warnings)
    try:
        await flowbot.start()
        flows = [
            (await catalog.create(TEAM, ALICE, parse_definition(FLOW.format(channel=c)))).flow
            for c in CHANNELS
        ]
        emulator.set_rate_limit("chat.postMessage", per_channel_per_second=1, retry_after=1)
        say(f"{total} runs notifying {len(CHANNELS)} channels; ideal {ideal:.0f} s")
        start = time.perf_counter()
        for _ in range(per_channel):
            for flow in flows:
                await runner.start_run(flow, RunTrigger(type="manual"))
        await runner.idle()
        elapsed = time.perf_counter() - start
        delivered = sum(len(emulator.messages_in(c)) for c in CHANNELS)
        section.add(
            f"{total} notifications to {len(CHANNELS)} channels, all runs finished",
            elapsed,
            ideal,
            "s",
            "ideal: 1 message/s per channel",
        )
        section.add("notifications lost", total - delivered, 0, "", "none lost")
        given_up = [m for m in warnings.messages if "notify channel" in m]
        example = f', e.g. "{given_up[0]}"' if given_up else ""
        section.note(
            f"{total} runs started at once, 3 flows with a notify channel each;"
            f" {delivered}/{total} notifications in the emulator, {emulator.rate_limited_count}"
            f" answers 429, {len(given_up)} notify posts given up by the bot{example}."
        )
    finally:
        bot_log.removeHandler(warnings)
        bot_log.level, bot_log.propagate = saved
        await flowbot.stop()
        await emulator.stop()
    return section

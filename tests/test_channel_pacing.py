"""Posts are paced per channel at Slack's rate (issue 20): about one message a second in
a channel, after a short burst from a quiet one, counted from Slack's answer to the
previous post, so Slack seldom has to say 429; channels do not wait for each other."""

from __future__ import annotations

import asyncio

from adapters.slack import ChannelTurns, SlackMessenger, make_client
from emulator.server import SlackEmulator


class FakeTime:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds


async def test_a_burst_then_one_post_a_second_per_channel() -> None:
    clock = FakeTime()
    turns = ChannelTurns(1.0, burst=2, now=clock, sleep=clock.sleep)
    sent: list[tuple[str, float]] = []

    async def post(channel: str) -> None:
        async with turns.turn(channel, post=True):
            sent.append((channel, clock.now))

    for _ in range(5):
        await post("C1")
    await post("C2")  # another channel: no wait
    assert sent == [("C1", 0), ("C1", 0), ("C1", 1), ("C1", 2), ("C1", 3), ("C2", 3)]
    clock.now += 10  # quiet for a while: the burst is back
    await post("C1")
    await post("C1")
    assert [t for _, t in sent[-2:]] == [13, 13]


async def test_after_slack_held_a_post_back_the_burst_waits_for_a_quiet_channel() -> None:
    clock = FakeTime()
    turns = ChannelTurns(1.0, burst=2, now=clock, sleep=clock.sleep)
    sent: list[float] = []
    for held in (0.0, 1.5, 0.0, 0.0):  # the second post met a 429 and waited it out
        async with turns.turn("C1", post=True):
            sent.append(clock.now)
            clock.now += held
    assert sent == [0, 0, 2.5, 3.5]


async def test_updates_take_turns_but_are_not_paced() -> None:
    clock = FakeTime()
    turns = ChannelTurns(1.0, burst=1, now=clock, sleep=clock.sleep)
    for _ in range(3):
        async with turns.turn("C1"):
            pass
    assert clock.now == 0


async def test_no_pacing_when_turned_off() -> None:
    clock = FakeTime()
    turns = ChannelTurns(0, now=clock, sleep=clock.sleep)
    for _ in range(5):
        async with turns.turn("C1", post=True):
            pass
    assert clock.now == 0


async def test_paced_posts_reach_a_rate_limited_slack_without_a_429(
    emulator: SlackEmulator,
) -> None:
    # Scaled up (20 a second) so the test stays fast; the emulator allows no burst.
    emulator.set_rate_limit("chat.postMessage", per_channel_per_second=20, retry_after=1)
    client = make_client(emulator.bot_token, emulator.api_url)
    messenger = SlackMessenger(client, ChannelTurns(20, burst=1))
    texts = [f"m{n}" for n in range(8)]
    await asyncio.gather(*(messenger.post_message("C0GENERAL", t) for t in texts))
    await asyncio.gather(*(messenger.post_message("C0FINANCE", t) for t in texts[:3]))
    assert [m["text"] for m in emulator.messages_in("C0GENERAL")] == texts
    assert len(emulator.messages_in("C0FINANCE")) == 3
    assert emulator.rate_limited_count == 0

"""Acknowledgements first (bot/ack_gate.py): a listener's work after its `ack()` waits
while other Slack requests are being acknowledged, never for its own request, and not
forever."""

from __future__ import annotations

import asyncio

from bot.ack_gate import AckGate, GatedAck
from flows.foreground import Foreground
from tests.support import ALICE, BotHarness, create_flow, finished_run, runs_of, settle


async def test_work_after_an_ack_waits_until_no_request_is_being_acknowledged() -> None:
    gate = AckGate(max_wait=60)
    order: list[str] = []
    release = asyncio.Event()

    async def request() -> None:
        with gate.acknowledging():
            await release.wait()
            order.append("acknowledged")

    async def listener() -> None:
        ack = GatedAck(gate)
        await ack(text="ok")
        assert ack.response is not None and ack.response.status == 200
        order.append("work after ack")

    requests = [asyncio.create_task(request()) for _ in range(3)]
    await asyncio.sleep(0)
    work = asyncio.create_task(listener())
    for _ in range(5):
        await asyncio.sleep(0)
    assert order == []  # the ack is set at once; the work waits
    release.set()
    await asyncio.gather(*requests, work)
    assert order == ["acknowledged"] * 3 + ["work after ack"]
    assert gate.in_flight == 0


async def test_a_request_being_acknowledged_holds_the_foreground() -> None:
    # Decisions' leftovers (flows/foreground.py) wait while a request is acknowledged.
    foreground = Foreground(max_wait=60)
    gate = AckGate(max_wait=60, foreground=foreground)
    with gate.acknowledging():
        assert foreground.busy == 1
    assert foreground.busy == 0


async def test_an_ack_in_the_requests_own_task_does_not_wait() -> None:
    # Bolt acknowledges events itself, in the request's task, before their listeners run.
    gate = AckGate(max_wait=60)
    with gate.acknowledging():
        ack = GatedAck(gate)
        await ack()  # in this task: returns at once (else it would wait 60 s)
        assert ack.response is not None


async def test_the_wait_is_bounded_under_sustained_load() -> None:
    gate = AckGate(max_wait=0.01)
    release = asyncio.Event()

    async def request() -> None:
        with gate.acknowledging():
            await release.wait()

    busy = asyncio.create_task(request())
    await asyncio.sleep(0)
    await asyncio.wait_for(gate.wait(), timeout=5)  # gave up waiting: the work goes on
    assert gate.in_flight == 1
    release.set()
    await busy
    await gate.wait()  # idle: at once


async def test_a_gap_inside_a_burst_does_not_let_work_in_before_later_acks() -> None:
    # The requests of a burst arrive one after the other: between two of them nobody is
    # being acknowledged for a moment, which must not open the gate.
    gate = AckGate(max_wait=60, settle=60)
    order: list[str] = []

    async def listener() -> None:
        await GatedAck(gate)()
        order.append("work after ack")

    with gate.acknowledging():
        work = asyncio.create_task(listener())
        with gate.acknowledging():  # a second request arrives before the first's ack
            await asyncio.sleep(0)
    for _ in range(5):
        await asyncio.sleep(0)
    assert order == [] and gate.in_flight == 0  # between two requests: still closed
    with gate.acknowledging():
        order.append("third acknowledged")
    gate.settle = 0
    with gate.acknowledging():  # the last of the burst; the gate opens right after it
        pass
    await asyncio.wait_for(work, timeout=5)
    assert order == ["third acknowledged", "work after ack"]


async def test_a_lone_request_goes_on_at_once() -> None:
    # A click with nobody else around: its run resumes without waiting for the settle.
    gate = AckGate(max_wait=60, settle=60)
    done = asyncio.Event()

    async def listener() -> None:
        await GatedAck(gate)()
        done.set()

    with gate.acknowledging():
        work = asyncio.create_task(listener())
        await asyncio.wait_for(done.wait(), timeout=5)  # before its request even ended
    await work


async def test_the_bots_listeners_work_after_the_other_acknowledgements(bot: BotHarness) -> None:
    # Wired end to end: Bolt gives every request a plain `ack` before any middleware runs,
    # and the bot's must be the gated one, or a burst's work delays its acknowledgements.
    flow = await create_flow(
        bot, "name: Gated\nsteps:\n  - {id: note, type: set_variable, name: x, value: y}\n"
    )
    gate = bot.flowbot.ack_gate
    gate.max_wait = 60
    with gate.acknowledging():  # another Slack request, still being acknowledged
        response = await bot.driver.slash(ALICE, "run Gated")
        assert response.status == 200  # acknowledged at once …
        await settle()
        assert await runs_of(bot, flow.id) == []  # … its run waits behind the other
    await finished_run(bot, flow.id)  # and goes on once that one is acknowledged

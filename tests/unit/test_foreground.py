"""`flows.foreground`: background pieces wait for the foreground, run one at a time, and
never wait longer than `max_wait`."""

from __future__ import annotations

import asyncio

from flows.foreground import Foreground


async def _piece(foreground: Foreground, name: str, log: list[str], gate: asyncio.Event) -> None:
    async with foreground.background():
        log.append(f"{name} starts")
        await gate.wait()
        log.append(f"{name} ends")


async def test_background_waits_for_the_foreground_then_goes_one_piece_at_a_time() -> None:
    foreground = Foreground(max_wait=60)
    log: list[str] = []
    go = asyncio.Event()
    click = foreground.hold()
    pieces = [asyncio.create_task(_piece(foreground, n, log, go)) for n in ("a", "b")]
    await asyncio.sleep(0.01)
    assert log == []  # a click is in the foreground
    click.release()
    click.release()  # idempotent
    await asyncio.sleep(0.01)
    assert log == ["a starts"]  # one piece at a time, in the order they asked
    second_click = foreground.hold()
    go.set()
    await asyncio.sleep(0.01)
    assert log == ["a starts", "a ends"]  # the next waits for the new click
    second_click.release()
    await asyncio.gather(*pieces)
    assert log == ["a starts", "a ends", "b starts", "b ends"]
    assert foreground.busy == 0 and foreground.running == 0


async def test_a_piece_goes_on_after_max_wait_under_sustained_foreground() -> None:
    foreground = Foreground(max_wait=0.02)
    log: list[str] = []
    go = asyncio.Event()
    go.set()
    with foreground.hold():
        await asyncio.wait_for(_piece(foreground, "a", log, go), 5)
        assert log == ["a starts", "a ends"]


async def test_a_cancelled_waiter_passes_its_turn_on() -> None:
    foreground = Foreground(max_wait=60)
    log: list[str] = []
    go = asyncio.Event()
    go.set()
    click = foreground.hold()
    first = asyncio.create_task(_piece(foreground, "a", log, go))
    second = asyncio.create_task(_piece(foreground, "b", log, go))
    await asyncio.sleep(0.01)
    click.release()  # wakes "a" …
    first.cancel()  # … which is cancelled before it runs: "b" goes instead
    await asyncio.wait_for(second, 5)
    assert log == ["b starts", "b ends"]


async def test_a_running_piece_pauses_for_a_click_and_only_a_piece_does() -> None:
    foreground = Foreground(max_wait=60)
    log: list[str] = []
    go = asyncio.Event()

    async def long_piece() -> None:
        async with foreground.background():
            log.append("first read")
            await go.wait()
            await foreground.pause()
            log.append("second read")

    piece = asyncio.create_task(long_piece())
    await asyncio.sleep(0.01)
    click = foreground.hold()
    await asyncio.wait_for(foreground.pause(), 1)  # outside a piece: at once
    go.set()
    await asyncio.sleep(0.01)
    assert log == ["first read"]  # paused while the click is in the foreground
    click.release()
    await asyncio.wait_for(piece, 5)
    assert log == ["first read", "second read"]

"""`python -m emulator [--port 3001] [--with-bot]`: a local Slack to try Flowbot without Slack.
With `--with-bot` it runs `python -m bot` against it, sends stdin lines such as
`U0ALICE /flow help` as signed slash commands and prints what the user would see."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys
import threading

import aiohttp

from .driver import SlackDriver
from .server import SlackEmulator, texts

TOKEN = "xoxb-sandbox"
SIGNING_SECRET = "sandbox-signing-secret"


def seed(emu: SlackEmulator) -> None:
    emu.add_user("U0ALICE", "alice", is_admin=True)
    emu.add_user("U0BOB", "bob")
    emu.add_user("U0CAROL", "carol")
    emu.add_channel("C0GENERAL", "general", ["U0ALICE", "U0BOB", "U0CAROL"])
    emu.add_channel("C0FINANCE", "finance", ["U0ALICE", "U0BOB"])
    emu.add_usergroup("S0LEADS", "leads", ["U0BOB"])


def show(kind: str, item: dict) -> None:
    where = item.get("channel") or ""
    lines = [item.get("text") or "", *texts(item.get("blocks") or [])]
    print(f"[{kind} {where}] " + "\n    ".join(line for line in lines if line))


def stdin_lines(loop: asyncio.AbstractEventLoop) -> asyncio.Queue[str]:
    """Lines from stdin on a daemon thread ("" once closed), so exiting never waits on it."""
    queue: asyncio.Queue[str] = asyncio.Queue()

    def read() -> None:
        for line in sys.stdin:
            loop.call_soon_threadsafe(queue.put_nowait, line)
        loop.call_soon_threadsafe(queue.put_nowait, "")

    threading.Thread(target=read, daemon=True).start()
    return queue


async def repl(emu: SlackEmulator, driver: SlackDriver) -> None:
    queue = stdin_lines(asyncio.get_running_loop())
    print("type commands like: U0ALICE /flow help")
    while line := await queue.get():
        parts = [*line.split(maxsplit=2), ""]
        if len(parts) < 3 or not parts[1].startswith("/"):
            print("usage: <user id> /flow <text>   e.g. U0ALICE /flow help")
            continue
        seen_eph = len(emu.ephemerals)
        seen = {c: len(m) for c, m in emu.messages.items()}
        try:
            resp = await driver.slash(parts[0], parts[2].strip(), parts[1])
        except aiohttp.ClientError as exc:
            print(f"[error] the bot is unreachable: {exc}")
            continue
        if resp.error:
            print(f"[error] {resp.error} (HTTP {resp.status})")
        await asyncio.sleep(1.0)  # let acknowledged work finish
        for eph in emu.ephemerals[seen_eph:]:
            show("ephemeral", eph)
        for channel, msgs in emu.messages.items():
            for msg in msgs[seen.get(channel, 0) :]:
                show("message", msg)
    print("stdin closed; still serving (Ctrl-C to stop)")


async def wait_healthy(url: str, proc: asyncio.subprocess.Process) -> bool:
    async with aiohttp.ClientSession() as session:
        for _ in range(120):
            if proc.returncode is not None:
                return False
            with contextlib.suppress(aiohttp.ClientError):
                async with session.get(url) as res:
                    if res.status == 200:
                        return True
            await asyncio.sleep(0.5)
    return False


async def main(port: int, with_bot: bool, bot_port: int) -> None:
    emu = SlackEmulator(bot_token=TOKEN)
    seed(emu)
    await emu.start("127.0.0.1", port)
    env = {"SLACK_API_URL": emu.api_url, "SLACK_BOT_TOKEN": TOKEN}
    env["SLACK_SIGNING_SECRET"] = SIGNING_SECRET
    print(f"Slack emulator on {emu.base_url}; point the bot at it with:")
    print("\n".join(f"  export {key}={value}" for key, value in env.items()))
    stop = asyncio.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        asyncio.get_running_loop().add_signal_handler(signum, stop.set)
    proc, driver, task = None, None, None
    try:
        if with_bot:
            child_env = {**os.environ, **env, "PORT": str(bot_port)}
            proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "bot", env=child_env)
            if not await wait_healthy(f"http://127.0.0.1:{bot_port}/healthz", proc):
                print("the bot did not become healthy; see its log above")
                return
            driver = SlackDriver(f"http://127.0.0.1:{bot_port}/slack/events", SIGNING_SECRET, emu)
            task = asyncio.create_task(repl(emu, driver))
        await stop.wait()
    finally:
        if task is not None:
            task.cancel()
        if driver is not None:
            await driver.close()
        if proc is not None and proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.terminate()
            await proc.wait()
        await emu.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m emulator", description=__doc__)
    parser.add_argument("--port", type=int, default=3001, help="emulator port (default 3001)")
    parser.add_argument("--with-bot", action="store_true", help="also run `python -m bot`")
    parser.add_argument("--bot-port", type=int, default=3000, help="bot port (default 3000)")
    args = parser.parse_args()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main(args.port, args.with_bot, args.bot_port))

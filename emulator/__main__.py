"""`python -m emulator --with-bot` (`make sandbox`): a local Slack in the browser, at
http://localhost:3001 (`SANDBOX_PORT`), with the bot wired to it and data of its own (an
in-memory database unless `--data DIR`). Without `--with-bot`: the Slack emulator alone."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import errno
import os
import signal
import sys
import tempfile

import aiohttp

from storage.embedded import EmbeddedMongo, free_port

from .sandbox import Sandbox, seed
from .server import SlackEmulator

TOKEN = "xoxb-sandbox"
SIGNING_SECRET = "sandbox-signing-secret"
# Encrypts the sandbox's connection secrets; its data is thrown away (or kept in --data).
SECRET_KEY = "c2FuZGJveC1rZXktbm90LWZvci1wcm9kdWN0aW9uISE="


def say(line: str) -> None:
    print(f"sandbox: {line}", file=sys.stderr, flush=True)


async def wait_healthy(url: str, proc: asyncio.subprocess.Process, timeout: float = 60) -> bool:
    async with aiohttp.ClientSession() as session:
        for _ in range(int(timeout / 0.2)):
            if proc.returncode is not None:
                return False
            with contextlib.suppress(aiohttp.ClientError, asyncio.TimeoutError):
                async with session.get(url, timeout=aiohttp.ClientTimeout(total=2)) as res:
                    if res.status == 200:
                        return True
            await asyncio.sleep(0.2)
    return False


async def main(port: int, with_bot: bool, bot_port: int, data: str | None) -> int:
    emu = SlackEmulator(bot_token=TOKEN)
    seed(emu)
    bot_port = bot_port or free_port()
    bot_url = f"http://127.0.0.1:{bot_port}"
    sandbox = Sandbox(emu, bot_url, SIGNING_SECRET) if with_bot else None
    try:
        await emu.start("127.0.0.1", port)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            say(
                f"port {port} is already in use (another sandbox?); stop it, "
                "or pick another port with SANDBOX_PORT=3002 make sandbox"
            )
        else:
            say(f"cannot listen on port {port}: {exc.strerror or exc}")
        return 1
    stop = asyncio.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        asyncio.get_running_loop().add_signal_handler(signum, stop.set)
    env = {"SLACK_API_URL": emu.api_url, "SLACK_BOT_TOKEN": TOKEN}
    env["SLACK_SIGNING_SECRET"] = SIGNING_SECRET
    if not with_bot:
        print(f"Slack emulator on {emu.base_url}; point the bot at it with:", flush=True)
        print("\n".join(f"  export {key}={value}" for key, value in env.items()), flush=True)
        await stop.wait()
        await emu.stop()
        return 0
    assert sandbox is not None
    db = EmbeddedMongo(os.path.join(data, "db") if data else ":memory:")
    proc: asyncio.subprocess.Process | None = None
    code = 0
    with tempfile.TemporaryDirectory(prefix="flowbot-sandbox-") as scratch:
        try:
            try:
                await db.astart()
            except RuntimeError as exc:
                say(f"the sandbox database did not start: {exc}")
                return 1
            child_env = {
                **os.environ,
                **env,
                "PORT": str(bot_port),
                "MONGODB_URI": db.uri,
                "MONGODB_DB": "sandbox",
                "FLOWBOT_DATA_DIR": data or scratch,
                "FLOWBOT_SECRET_KEY": SECRET_KEY,
                "FLOWBOT_PUBLIC_URL": bot_url,
                # http_request steps may call the sandbox's sample API on this machine
                "FLOWBOT_ALLOWED_HTTP_HOSTS": "localhost,127.0.0.1",
                "LOG_LEVEL": os.environ.get("LOG_LEVEL", "WARNING"),
            }
            proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "bot", env=child_env)
            if not await wait_healthy(f"{bot_url}/healthz", proc):
                say("the bot did not start (see its log above); stopping")
                return 1
            where = f"its data in {data}" if data else "its data in memory, gone when it stops"
            print(
                f"Flowbot sandbox: open http://localhost:{port} ({where}; Ctrl-C stops it)",
                flush=True,
            )
            bot_exit = asyncio.create_task(proc.wait())
            stopped = asyncio.create_task(stop.wait())
            await asyncio.wait({bot_exit, stopped}, return_when=asyncio.FIRST_COMPLETED)
            stopped.cancel()
            if bot_exit.done():
                say(f"the bot stopped unexpectedly (exit code {proc.returncode}); stopping")
                code = 1
            else:
                bot_exit.cancel()
        finally:
            if proc is not None and proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.terminate()
                await proc.wait()
            await sandbox.close()
            await emu.stop()
            await db.astop()
    return code


def default_port() -> int:
    raw = os.environ.get("SANDBOX_PORT", "3001")
    try:
        return int(raw)
    except ValueError:
        raise SystemExit(f"sandbox: SANDBOX_PORT must be a port number, not {raw!r}") from None


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m emulator", description=__doc__)
    parser.add_argument(
        "--port",
        type=int,
        default=None,
        help="page and emulator port (default $SANDBOX_PORT or 3001)",
    )
    parser.add_argument("--with-bot", action="store_true", help="run the bot: the sandbox")
    parser.add_argument("--bot-port", type=int, default=0, help="bot port (default: a free one)")
    parser.add_argument("--data", default=None, help="keep the sandbox's data in this folder")
    args = parser.parse_args()
    port = args.port if args.port is not None else default_port()
    if args.data and os.path.abspath(args.data) == os.path.abspath("data"):
        raise SystemExit("sandbox: ./data belongs to `make run`; pick another folder for --data")
    exit_code = 0
    with contextlib.suppress(KeyboardInterrupt):
        exit_code = asyncio.run(main(port, args.with_bot, args.bot_port, args.data))
    sys.exit(exit_code)

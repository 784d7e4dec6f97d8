"""Two real bot processes: `python -m bot` (a subprocess) and one built in this process, on
one database, after downtime: a run_once flow's missed slots make exactly one run.

The flow is made by a bot whose fake clock is three hours behind, so its schedule state
says it last ran then; both processes then start on the system clock and apply the misfire
policy. Firing slot after slot on the system clock, with both processes up, is
`test_schedules_replicas.py`.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import aiohttp

from bot.app import build
from bot.settings import Settings
from emulator.server import SlackEmulator
from flows.definition import parse_definition
from flows.scheduling import schedule_run_key
from storage.embedded import free_port
from storage.runs_repo import from_doc
from tests.conftest import ALICE, BOT_TOKEN, SIGNING_SECRET, TEAM, make_settings
from tests.fakes import FakeClock

ROOT = Path(__file__).resolve().parent.parent


async def healthy(url: str) -> bool:
    try:
        async with (
            aiohttp.ClientSession() as session,
            session.get(url, timeout=aiohttp.ClientTimeout(total=2)) as response,
        ):
            return response.status == 200
    except (aiohttp.ClientError, asyncio.TimeoutError):
        return False


@dataclass
class BotProcess:
    """A `python -m bot` subprocess; `log` is its stderr (LOG_LEVEL=INFO)."""

    process: asyncio.subprocess.Process
    port: int
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log_text(self) -> str:
        return self.log.read_text()


@asynccontextmanager
async def bot_process(settings: Settings, workdir: Path) -> AsyncIterator[BotProcess]:
    """`python -m bot` on the settings' Slack emulator and database, serving (so started:
    its schedules restored) when this yields; stopped with SIGINT on exit."""
    port = free_port()
    secret = settings.flowbot_secret_key
    assert secret is not None and settings.mongodb_uri is not None
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "MONGODB_"))}
    env.update(
        SLACK_BOT_TOKEN=BOT_TOKEN,
        SLACK_SIGNING_SECRET=SIGNING_SECRET,
        SLACK_API_URL=settings.slack_api_url,
        MONGODB_URI=settings.mongodb_uri,
        MONGODB_DB=settings.mongodb_db,
        PORT=str(port),
        FLOWBOT_DATA_DIR=str(workdir),
        FLOWBOT_SECRET_KEY=secret.get_secret_value(),
        LOG_LEVEL="INFO",
    )
    log_path = workdir / "bot.log"
    with log_path.open("w") as log_file:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bot",
            env=env,
            cwd=ROOT,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=log_file,
        )
        try:
            deadline = time.monotonic() + 60
            while not await healthy(f"http://127.0.0.1:{port}/healthz"):
                assert process.returncode is None, log_path.read_text()
                assert time.monotonic() < deadline, "python -m bot did not start"
                await asyncio.sleep(0.1)
            yield BotProcess(process, port, log_path)
        finally:
            if process.returncode is None:
                process.send_signal(signal.SIGINT)
            try:
                await asyncio.wait_for(process.wait(), 30)
            finally:
                if process.returncode is None:
                    process.kill()
                    await process.wait()


async def test_python_m_bot_and_an_in_process_bot_run_missed_slots_once(
    emulator: SlackEmulator, mongo_uri: str, db_name: str, tmp_path: Path
) -> None:
    now = datetime.now(timezone.utc)
    minute = (now - timedelta(minutes=10)).minute  # the newest slot was ~10 minutes ago
    text = f"""
name: Hourly sync
kind: scheduled
trigger: {{type: schedule, cron: "{minute} * * * *", misfire: run_once}}
steps:
  - {{type: post_message, channel: "#general", text: "sync {{{{ trigger.missed }}}}"}}
"""
    settings = make_settings(emulator, mongo_uri, db_name)
    maker = build(settings, mongo_uri, clock=FakeClock(now - timedelta(hours=3, minutes=5)))
    await maker.start()
    assert maker.deps.catalog is not None
    flow = (await maker.deps.catalog.create(TEAM, ALICE, parse_definition(text))).flow
    await maker.stop()
    newest = (now - timedelta(minutes=10)).replace(second=0, microsecond=0)

    other = None
    async with bot_process(settings, tmp_path) as bot:
        try:
            # Serving means started: the subprocess has applied the misfire policy.
            other = build(settings, mongo_uri)
            await other.start()
            runs = other.storage.db["runs"]

            async def finished() -> list[dict[str, object]]:
                docs = await runs.find({"flow_id": flow.id}).to_list(None)
                return docs if docs and all(d["status"] == "succeeded" for d in docs) else []

            deadline = time.monotonic() + 15
            while not await finished():
                assert time.monotonic() < deadline, await runs.find({}).to_list(None)
                await asyncio.sleep(0.1)
            await asyncio.sleep(1.0)  # both processes are up: nothing more happens
            [doc] = await runs.find({"flow_id": flow.id}).to_list(None)
            run = from_doc(doc)
            assert run.run_key == schedule_run_key(flow.id, newest)
            assert run.trigger.data["missed"] == 3
            assert [m["text"] for m in emulator.messages_in("#general")] == ["sync 3"]
        finally:
            if other is not None:
                await other.stop()
    stderr = bot.log_text()
    assert "Traceback" not in stderr, stderr
    # The subprocess, started first, is the one that ran it.
    assert f"scheduled run {run.id}" in stderr

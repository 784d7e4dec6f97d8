"""Two real bot processes: `python -m bot` (a subprocess) and one built in this process, on
one database, after downtime: a run_once flow's missed slots make exactly one run.

The flow is made by a bot whose fake clock is three hours behind, so its schedule state
says it last ran then; both processes then start on the system clock and apply the misfire
policy. Firing slot after slot on the system clock, with both processes up, is
`test_schedules_replicas.py`.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone
from pathlib import Path

from emulator.server import SlackEmulator
from flows.scheduling import schedule_run_key
from tests.fakes import FakeClock
from tests.support import (
    bot_process,
    create_flow,
    finished_run,
    make_settings,
    runs_of,
    start_flowbot,
)


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
    maker = await start_flowbot(settings, FakeClock(now - timedelta(hours=3, minutes=5)))
    flow = await create_flow(maker, text)
    await maker.stop()
    newest = (now - timedelta(minutes=10)).replace(second=0, microsecond=0)

    async with bot_process(settings, tmp_path) as bot:
        # Serving means started: the subprocess has applied the misfire policy.
        other = await start_flowbot(settings)
        try:
            await finished_run(other, flow.id)
            await asyncio.sleep(1.0)  # both processes are up: nothing more happens
            [run] = await runs_of(other, flow.id)
            assert run.status == "succeeded", run.error
            assert run.run_key == schedule_run_key(flow.id, newest)
            assert run.trigger.data["missed"] == 3
            assert [m["text"] for m in emulator.messages_in("#general")] == ["sync 3"]
        finally:
            await other.stop()
    stderr = bot.log_text()
    assert "Traceback" not in stderr, stderr
    # The subprocess, started first, is the one that ran it.
    assert f"scheduled run {run.id}" in stderr

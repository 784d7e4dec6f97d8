"""Operating Flowbot: /metrics that move with runs and rate limits, JSON logs carrying
run ids, `python -m bot --help`, and one-line start-up failures with a non-zero exit."""

from __future__ import annotations

import fcntl
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from bot.app import build
from bot.settings import Settings
from emulator.driver import SlackDriver
from emulator.server import SlackEmulator
from storage.embedded import free_port
from tests.fakes import FakeClock
from tests.support import (
    ALICE,
    BOT_TOKEN,
    ROOT,
    SIGNING_SECRET,
    BotHarness,
    approval_dm,
    bot_process,
    create_flow,
    eventually,
    finished_run,
    make_settings,
    runs_of,
    save_flow,
    start_flowbot,
    waiting_run,
)

SIMPLE = """
name: Hello
steps:
  - {id: hello, type: post_message, channel: "#general", text: "hello"}
  - {id: again, type: post_message, channel: "#general", text: "again"}
"""

BROKEN = """
name: Broken
steps:
  - {id: oops, type: post_message, channel: "#general", text: "{{ vars.nothing.deeper }}"}
"""

APPROVAL = """
name: Laptop
steps:
  - {id: ask, type: approval, approvers: ["<@U0BOB>"], title: "Laptop please"}
"""


async def scrape(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    async with aiohttp.ClientSession() as session, session.get(url + "/metrics") as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain")
        text = await response.text()
    return parse(text)


def parse(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    samples: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(
    samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str
) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


async def test_metrics_count_runs_steps_slack_calls_429s_and_acks(bot: BotHarness) -> None:
    before = await scrape(bot.url)
    assert value(before, "flowbot_runs_started_total", trigger="manual") == 0
    flow = await create_flow(bot, SIMPLE)
    broken = await create_flow(bot, BROKEN)
    bot.emulator.fail_next("chat.postMessage", 429, count=1)  # retried after Retry-After

    assert (await bot.driver.slash(ALICE, "run Hello")).ok
    [run] = await finished_run(bot, flow.id)
    assert run.status == "succeeded"
    assert (await bot.driver.slash(ALICE, "run Broken")).ok
    [failed] = await finished_run(bot, broken.id)
    assert failed.status == "failed"

    after = await scrape(bot.url)
    assert value(after, "flowbot_runs_started_total", trigger="manual") == 2
    assert value(after, "flowbot_runs_ended_total", status="succeeded") == 1
    assert value(after, "flowbot_runs_ended_total", status="failed") == 1
    steps = "flowbot_step_duration_seconds_count"
    assert value(after, steps, type="post_message", status="succeeded") == 2
    assert value(after, steps, type="post_message", status="failed") == 1
    assert value(after, "flowbot_slack_api_rate_limited_total", method="chat.postMessage") == 1
    assert (
        value(after, "flowbot_slack_api_calls_total", method="chat.postMessage", outcome="ok") >= 2
    )
    assert value(after, "flowbot_ack_latency_seconds_count", kind="command") == 2
    assert 0 < value(after, "flowbot_ack_latency_seconds_sum", kind="command") < 6

    # No person, flow or run is a label.
    labels = {v for (_, pairs) in after for (_, v) in pairs}
    assert not {ALICE, flow.id, run.id, broken.id} & labels


async def test_metrics_gauges_show_waiting_runs_and_pending_approvals(bot: BotHarness) -> None:
    flow = await create_flow(bot, APPROVAL)
    assert (await bot.driver.slash(ALICE, "run Laptop")).ok
    run = await waiting_run(bot, flow.id)
    to_bob = await approval_dm(bot, "U0BOB", "Laptop please")
    samples = await scrape(bot.url)
    assert value(samples, "flowbot_waiting_runs") == 1
    assert value(samples, "flowbot_pending_approvals") == 1
    assert (
        value(samples, "flowbot_step_duration_seconds_count", type="approval", status="succeeded")
        == 0
    )

    assert (await bot.driver.click("U0BOB", to_bob, "approval:Approve")).ok
    [done] = await finished_run(bot, flow.id)
    assert done.id == run.id and done.status == "succeeded"
    samples = await scrape(bot.url)
    assert value(samples, "flowbot_waiting_runs") == 0
    assert value(samples, "flowbot_pending_approvals") == 0
    assert (
        value(samples, "flowbot_step_duration_seconds_count", type="approval", status="succeeded")
        == 1
    )
    assert (
        value(samples, "flowbot_slack_api_calls_total", method="chat.postMessage", outcome="ok")
        >= 1
    )


async def test_json_logs_carry_run_ids_and_bolt_says_nothing_at_start(
    emulator: SlackEmulator,
    mongo_uri: str,
    db_name: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = make_settings(emulator, mongo_uri, db_name)
    setup = build(settings, mongo_uri)
    await setup.storage.ensure_indexes()
    broken = (await save_flow(setup, BROKEN)).flow
    monkeypatch.setenv("LOG_FORMAT", "json")
    monkeypatch.setenv("SLACK_BOT_TOKEN", BOT_TOKEN)  # what made Bolt warn at start
    async with bot_process(settings, tmp_path) as process:
        driver = SlackDriver(process.url + "/slack/events", SIGNING_SECRET, emulator)
        try:
            assert (await driver.slash(ALICE, "run Broken")).ok
        finally:
            await driver.close()

        def logged_run() -> list[dict[str, object]]:
            lines = [json.loads(line) for line in process.log_text().splitlines() if line]
            about = [entry for entry in lines if entry.get("run_id")]
            return about if any("failed" in str(e["message"]) for e in about) else []

        about_run = await eventually(logged_run, timeout=20)
    lines = process.log_text().splitlines()
    entries = [json.loads(line) for line in lines]  # every line is one JSON object
    assert all({"time", "level", "logger", "message"} <= set(e) for e in entries)
    [run] = await runs_of(setup, broken.id)
    assert run.status == "failed"
    mine = [e for e in about_run if e["run_id"] == run.id]
    assert any("started" in str(e["message"]) for e in mine)
    assert any("failed at step oops" in str(e["message"]) for e in mine)
    assert all(re.fullmatch(r"R[0-9a-f]{16}", str(e["run_id"])) for e in about_run)
    assert not [e for e in entries if e["logger"].startswith("slack_bolt")]
    assert "Traceback" not in "\n".join(str(e["message"]) for e in entries)
    setup.storage.close()


HOURLY = """
name: Hourly report
kind: scheduled
trigger: {type: schedule, cron: "0 * * * *", timezone: Europe/Paris, misfire: skip}
steps:
  - {type: post_message, channel: "#general", text: "report"}
"""


async def test_schedule_lateness_is_measured_when_a_slot_runs_late(
    emulator: SlackEmulator, mongo_uri: str, db_name: str
) -> None:
    # A fake clock in 2099: APScheduler's real-time wake-ups never fire; the 12:00 slot is
    # run by the schedule service at start, 20 s late.
    clock = FakeClock(datetime(2099, 1, 5, 9, 0, 30, tzinfo=timezone.utc))
    settings = make_settings(emulator, mongo_uri, db_name)
    first = await start_flowbot(settings, clock)
    try:
        flow = await create_flow(first, HOURLY)
    finally:
        await first.stop()
    clock.advance(timedelta(hours=2, minutes=59, seconds=50))
    second = await start_flowbot(settings, clock)
    try:
        [run] = await finished_run(second, flow.id)
        assert run.trigger.type == "schedule"
        samples = parse(second.metrics.exposition().decode())
    finally:
        await second.stop()
    assert value(samples, "flowbot_runs_started_total", trigger="schedule") == 1
    assert value(samples, "flowbot_schedule_lateness_seconds_count") == 1
    assert value(samples, "flowbot_schedule_lateness_seconds_sum") == 20
    assert value(samples, "flowbot_schedule_lateness_seconds_bucket", le="15.0") == 0
    assert value(samples, "flowbot_schedule_lateness_seconds_bucket", le="60.0") == 1


# ------------------------------------------------------------------ start-up


def python_m_bot(
    env: dict[str, str], *args: str, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    base = {
        k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "MONGODB_", "FLOWBOT_"))
    }
    return subprocess.run(
        [sys.executable, "-m", "bot", *args],
        env={**base, **env},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def one_line_failure(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("flowbot:")]
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_a_taken_port_fails_in_one_line(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("0.0.0.0", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = python_m_bot({"PORT": str(port), "FLOWBOT_DATA_DIR": str(tmp_path)})
    line = one_line_failure(result)
    assert f"port {port} is taken" in line and "PORT" in line
    assert not (tmp_path / "db").exists()  # nothing was started


def test_an_unreachable_mongodb_fails_in_one_line_without_its_password(tmp_path: Path) -> None:
    uri = "mongodb://flow:s3cret@127.0.0.1:1/?serverSelectionTimeoutMS=300"
    started = time.monotonic()
    result = python_m_bot(
        {"MONGODB_URI": uri, "PORT": str(free_port()), "FLOWBOT_DATA_DIR": str(tmp_path)}
    )
    line = one_line_failure(result)
    assert "cannot reach MongoDB at 127.0.0.1:1" in line and "MONGODB_URI" in line
    assert "s3cret" not in result.stderr
    assert time.monotonic() - started < 30


def test_a_data_folder_in_use_fails_in_one_line(tmp_path: Path) -> None:
    tmp_path.mkdir(exist_ok=True)
    with (tmp_path / "flowbot.lock").open("a+") as held:
        fcntl.flock(held.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)  # another Flowbot
        held.write("4242")
        held.flush()
        result = python_m_bot({"PORT": str(free_port()), "FLOWBOT_DATA_DIR": str(tmp_path)})
        # Flows as code on the embedded database while the server runs: refused too.
        export = python_m_bot(
            {"FLOWBOT_DATA_DIR": str(tmp_path)}, "flows", "export", "X", "--team", "T1"
        )
    line = one_line_failure(result)
    assert "used by another Flowbot (pid 4242)" in line and "FLOWBOT_DATA_DIR" in line
    assert "used by another Flowbot" in one_line_failure(export)
    assert not (tmp_path / "db").exists()


def test_the_embedded_database_with_slack_configured_warns_at_start(tmp_path: Path) -> None:
    port = free_port()
    log_path = tmp_path / "bot.log"
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "MONGODB_", "FLOWBOT_"))
    }
    env |= {
        "SLACK_BOT_TOKEN": BOT_TOKEN,
        "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "SLACK_API_URL": "http://127.0.0.1:1/api/",
        "PORT": str(port),
        "FLOWBOT_DATA_DIR": str(tmp_path / "data"),
    }
    with log_path.open("w") as log_file:
        process = subprocess.Popen(
            [sys.executable, "-m", "bot"],
            env=env,
            cwd=ROOT,
            stderr=log_file,
            stdout=subprocess.DEVNULL,
        )
    try:
        deadline = time.monotonic() + 60
        while "listening on" not in log_path.read_text():
            assert process.poll() is None, log_path.read_text()
            assert time.monotonic() < deadline
            time.sleep(0.1)
        # A second Flowbot on the same data folder refuses to start.
        second = python_m_bot(
            {"PORT": str(free_port()), "FLOWBOT_DATA_DIR": str(tmp_path / "data")}
        )
        assert "used by another Flowbot" in one_line_failure(second)
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(30)
    text = log_path.read_text()
    assert "embedded database is for trying Flowbot, not for production" in text
    assert "will be unused" not in text and "Traceback" not in text
    assert process.returncode == 0


# ------------------------------------------------------------------ --help and README


def test_help_lists_the_commands_and_every_setting_and_the_readme_too() -> None:
    result = python_m_bot({}, "--help")
    assert result.returncode == 0
    for command in ("python -m bot [run]", "flows import", "flows export"):
        assert command in result.stdout
    readme = (ROOT / "README.md").read_text()
    for name in Settings.model_fields:
        assert name.upper() in result.stdout, name
        assert f"`{name.upper()}`" in readme, f"README's settings table lacks {name.upper()}"

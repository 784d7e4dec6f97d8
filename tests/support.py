"""What the tests share (no tests here): the workspace's people, the bot on real parts
(in-process, restartable, or as a `python -m bot` subprocess), polling, flows made through
the catalog as `/flow new` would, and what a Slack user or an operator sees of the bot.

Fixtures are in conftest.py; everything here is a plain function or class.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import os
import re
import signal
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from bot.app import Flowbot, Overrides, build
from bot.server import Server
from bot.settings import Settings
from emulator.driver import DriverResponse, SlackDriver
from emulator.server import SlackEmulator, elements, texts
from flows.approvals import ApprovalRecord
from flows.catalog import SaveResult
from flows.connections import ConnectionRecord
from flows.definition import parse_definition
from flows.gallery import get_template
from flows.permissions import resolve_access
from flows.ports import Clock
from flows.records import FlowRecord, RunRecord, Share
from handlers.deps import HandlerDeps
from storage.approvals_repo import ApprovalsRepo
from storage.embedded import free_port
from storage.runs_repo import from_doc

JSON = dict[str, Any]
ROOT = Path(__file__).resolve().parent.parent

# ------------------------------------------------------------------ the workspace

SIGNING_SECRET = "test-signing-secret"
BOT_TOKEN = "xoxb-test"
TEAM = "T0TEAM"
ALICE, BOB, CAROL, DAVE, ADMIN = "U0ALICE", "U0BOB", "U0CAROL", "U0DAVE", "U0ADMIN"
SECRET_KEY = "Zm9vYmFyYmF6cXV4Zm9vYmFyYmF6cXV4Zm9vYmFyYmE="


def make_settings(
    emulator: SlackEmulator, mongo_uri: str, db_name: str, **extra: object
) -> Settings:
    values: dict[str, object] = {
        "slack_bot_token": BOT_TOKEN,
        "slack_signing_secret": SIGNING_SECRET,
        "slack_api_url": emulator.api_url,
        "mongodb_uri": mongo_uri,
        "mongodb_db": db_name,
        "port": 0,
        "flowbot_secret_key": SECRET_KEY,
    }
    values.update(extra)
    return Settings.model_validate(values)


# ------------------------------------------------------------------ the bot, in this process


@dataclass
class BotHarness:
    emulator: SlackEmulator
    driver: SlackDriver
    flowbot: Flowbot
    server: Server
    settings: Settings

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def db(self):  # type: ignore[no-untyped-def]
        return self.flowbot.storage.db


def flowbot_of(target: BotHarness | Flowbot) -> Flowbot:
    return target.flowbot if isinstance(target, BotHarness) else target


def deps(target: BotHarness | Flowbot) -> HandlerDeps:
    """The bot's services: catalog, runner, sharing, connections …"""
    return flowbot_of(target).deps


async def start_bot(
    emulator: SlackEmulator, settings: Settings, clock: Clock | None = None
) -> BotHarness:
    """The bot serving HTTP on a free port, with a driver signing requests to it."""
    assert settings.mongodb_uri is not None
    flowbot = build(settings, settings.mongodb_uri, Overrides(clock=clock))
    server = Server(flowbot, host="127.0.0.1", port=0)
    await server.start()
    driver = SlackDriver(server.url + "/slack/events", SIGNING_SECRET, emulator)
    return BotHarness(emulator, driver, flowbot, server, settings)


async def stop_bot(harness: BotHarness) -> None:
    await harness.driver.close()
    await harness.server.stop()


@asynccontextmanager
async def running_bot(
    emulator: SlackEmulator, mongo_uri: str, db_name: str, **settings: object
) -> AsyncIterator[BotHarness]:
    harness = await start_bot(emulator, make_settings(emulator, mongo_uri, db_name, **settings))
    try:
        yield harness
    finally:
        await stop_bot(harness)


class RestartableBot:
    """The bot serving HTTP, stopped and started again in-process on the same database
    (a restart, a crash, a rolling deploy); on a fake clock if given one."""

    def __init__(
        self, emulator: SlackEmulator, mongo_uri: str, db_name: str, clock: Clock | None = None
    ) -> None:
        self.emulator = emulator
        self.mongo_uri = mongo_uri
        self.db_name = db_name
        self.clock = clock
        self.settings = make_settings(emulator, mongo_uri, db_name)
        self.harness: BotHarness | None = None

    @property
    def running(self) -> BotHarness:
        assert self.harness is not None, "the bot is not running"
        return self.harness

    async def start(self) -> BotHarness:
        self.harness = await start_bot(self.emulator, self.settings, self.clock)
        return self.harness

    async def stop(self) -> None:
        if self.harness is not None:
            await stop_bot(self.harness)
            self.harness = None

    async def restart(self) -> BotHarness:
        await self.stop()
        return await self.start()


async def start_flowbot(settings: Settings, clock: Clock | None = None) -> Flowbot:
    """Another bot process on the same database, in-process and without HTTP: started (its
    services running) until `await flowbot.stop()`."""
    assert settings.mongodb_uri is not None
    flowbot = build(settings, settings.mongodb_uri, Overrides(clock=clock))
    await flowbot.start()
    return flowbot


# ------------------------------------------------------------------ the bot as `python -m bot`


def bot_env(*, strip: tuple[str, ...] = ("SLACK_", "MONGODB_"), **values: str) -> dict[str, str]:
    """This process's environment without the settings named by `strip`, plus `values`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(strip)}
    env.update(values)
    return env


async def healthy(url: str) -> bool:
    try:
        async with (
            aiohttp.ClientSession() as session,
            session.get(url + "/healthz", timeout=aiohttp.ClientTimeout(total=2)) as response,
        ):
            return response.status == 200
    except (aiohttp.ClientError, asyncio.TimeoutError):
        return False


@dataclass
class BotProcess:
    """A `python -m bot` subprocess (its own process group); `log` is its stderr."""

    process: asyncio.subprocess.Process
    port: int
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")

    async def kill(self) -> None:
        """SIGKILL, as a crash: nothing is cleaned up."""
        os.killpg(self.process.pid, signal.SIGKILL)
        await asyncio.wait_for(self.process.wait(), 10)


@asynccontextmanager
async def bot_process(
    settings: Settings | None, workdir: Path, *, port: int | None = None
) -> AsyncIterator[BotProcess]:
    """`python -m bot` on the settings' Slack emulator and database (None: no Slack, and its
    own embedded database), its data in `workdir`/data and its stderr in `workdir`/bot.log,
    LOG_LEVEL=INFO. Serving (so started: its schedules restored) when this yields; stopped
    with SIGINT on exit if still running."""
    port = port or free_port()
    values = {"PORT": str(port), "FLOWBOT_DATA_DIR": str(workdir / "data"), "LOG_LEVEL": "INFO"}
    if settings is not None:
        secret = settings.flowbot_secret_key
        assert secret is not None and settings.mongodb_uri is not None
        values |= {
            "SLACK_BOT_TOKEN": BOT_TOKEN,
            "SLACK_SIGNING_SECRET": SIGNING_SECRET,
            "SLACK_API_URL": settings.slack_api_url,
            "MONGODB_URI": settings.mongodb_uri,
            "MONGODB_DB": settings.mongodb_db,
            "FLOWBOT_SECRET_KEY": secret.get_secret_value(),
        }
        if settings.flowbot_allowed_http_hosts:
            values["FLOWBOT_ALLOWED_HTTP_HOSTS"] = settings.flowbot_allowed_http_hosts
        values["FLOWBOT_POSTS_PER_CHANNEL"] = str(settings.flowbot_posts_per_channel)
    log_path = workdir / "bot.log"
    with log_path.open("a") as log_file:  # a file, not a pipe nobody reads (it would fill up)
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bot",
            env=bot_env(strip=("SLACK_", "MONGODB_", "FLOWBOT_"), **values),
            cwd=ROOT,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=log_file,
            start_new_session=True,
        )
    bot = BotProcess(process, port, log_path)
    try:
        deadline = time.monotonic() + 60
        while not await healthy(bot.url):
            assert process.returncode is None, f"the bot exited: {bot.log_text()}"
            assert time.monotonic() < deadline, "python -m bot did not start"
            await asyncio.sleep(0.1)
        yield bot
    except BaseException:
        print(bot.log_text()[-5000:])
        raise
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGINT)
        try:
            await asyncio.wait_for(process.wait(), 30)
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()


# ------------------------------------------------------------------ waiting


async def eventually(
    check: Callable[[], Any], timeout: float = 15.0, interval: float | None = None
) -> Any:
    """The first truthy result of `check` (sync, or async: awaited), polled: the bot answers
    after acknowledging. In-memory checks are polled every 20 ms, database ones every 50 ms."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        awaited = inspect.isawaitable(value)
        if awaited:
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {check}: {value!r:.300}")
        await asyncio.sleep(interval or (0.05 if awaited else 0.02))


async def settle(seconds: float = 0.3) -> None:
    """Give the bot time to do what it should NOT do (post, save, run …) before checking."""
    await asyncio.sleep(seconds)


# ------------------------------------------------------------------ flows and runs


def template_source(key: str) -> str:
    """The YAML of the gallery's template `key`."""
    template = get_template(key)
    assert template is not None, key
    return template.source


async def save_flow(target: BotHarness | Flowbot, source: str, user: str = ALICE) -> SaveResult:
    """`source` (YAML or JSON) created by `user` through the catalog, as `/flow new` does."""
    return await deps(target).catalog.create(TEAM, user, parse_definition(source))


async def create_flow(target: BotHarness | Flowbot, source: str, user: str = ALICE) -> FlowRecord:
    return (await save_flow(target, source, user)).flow


async def plant_share(
    bot: BotHarness, flow_id: str, principal: str, role: str, added_by: str = ALICE
) -> None:
    """A share written straight into the store (the sharing service is not under test)."""
    share = Share(
        principal=principal,
        role=role,  # type: ignore[arg-type]
        added_by=added_by,
        added_at=bot.flowbot.deps.clock.now(),
    )
    await bot.db["flows"].update_one({"_id": flow_id}, {"$push": {"shares": share.model_dump()}})


async def flow_doc(bot: BotHarness, name: str) -> JSON | None:
    doc: JSON | None = await bot.db["flows"].find_one({"name_key": name.casefold()})
    return doc


async def runs_of(target: BotHarness | Flowbot, flow_id: str) -> list[RunRecord]:
    cursor = flowbot_of(target).storage.db["runs"].find({"flow_id": flow_id})
    return [from_doc(doc) async for doc in cursor.sort("created_at", 1)]


async def finished_run(
    target: BotHarness | Flowbot, flow_id: str, count: int = 1
) -> list[RunRecord]:
    """The flow's runs once there are `count` (at least) and all of them have finished."""

    async def done() -> list[RunRecord] | None:
        runs = await runs_of(target, flow_id)
        return runs if len(runs) >= count and all(r.finished for r in runs) else None

    runs: list[RunRecord] = await eventually(done)
    return runs


async def at_least(runs: Awaitable[list[RunRecord]], count: int) -> list[RunRecord] | None:
    found = await runs
    return found if len(found) >= count else None


async def waiting_run(bot: BotHarness, flow_id: str) -> RunRecord:
    """The flow's latest run, once it is parked (waiting)."""

    async def parked() -> RunRecord | None:
        runs = await runs_of(bot, flow_id)
        return runs[-1] if runs and runs[-1].status == "waiting" else None

    run: RunRecord = await eventually(parked)
    return run


def texts_in(bot: BotHarness, channel: str) -> list[str]:
    return [m["text"] for m in bot.emulator.messages_in(channel)]


# ------------------------------------------------------------------ what a Slack user sees


def answer_text(message: JSON) -> str:
    """The fallback text and every text of the blocks, one per line."""
    return "\n".join([str(message.get("text") or ""), *texts(message.get("blocks") or [])])


def all_text(obj: Any) -> str:
    """A message's text and its blocks' (or every text of blocks)."""
    if isinstance(obj, dict) and "blocks" in obj:
        return answer_text(obj)
    return "\n".join(texts(obj))


def buttons_of(message: JSON) -> list[JSON]:
    """Every button of a message or view: in actions blocks and as section accessories."""
    return [
        element
        for block in message.get("blocks") or []
        for element in elements(block)
        if element.get("type") == "button"
    ]


def values_of(message: JSON, action_id: str) -> list[str]:
    """The values of the buttons with this action id."""
    return [str(b.get("value")) for b in buttons_of(message) if b.get("action_id") == action_id]


def button(message: JSON, label: str) -> JSON:
    """The interactive element a person sees labelled `label`."""
    for block in message.get("blocks") or []:
        for element in elements(block):
            if (element.get("text") or {}).get("text") == label:
                return element
    raise LookupError(f"no button {label!r} in {answer_text(message)!r}")


def has_buttons(message: JSON) -> bool:
    return any(b.get("type") == "actions" for b in message.get("blocks") or [])


def ephemerals_for(bot: BotHarness, user: str, since: int = 0) -> list[JSON]:
    return [e for e in bot.emulator.ephemerals[since:] if e["user"] == user]


async def next_ephemeral(bot: BotHarness, user: str, since: int) -> JSON:
    """The first ephemeral message to `user` after the first `since` ones."""
    found: JSON = await eventually(lambda: next(iter(ephemerals_for(bot, user, since)), None))
    return found


async def wait_ephemeral(
    bot: BotHarness,
    user: str,
    contains: str,
    since: int = 0,
    *,
    text_of: Callable[[JSON], str] = all_text,
) -> JSON:
    """The latest ephemeral message to `user` (after the first `since`) containing `contains`."""

    def find() -> JSON | None:
        hits = [e for e in ephemerals_for(bot, user, since) if contains in text_of(e)]
        return hits[-1] if hits else None

    found: JSON = await eventually(find)
    return found


def dms(bot: BotHarness, user: str, contains: str = "") -> list[JSON]:
    """The bot's DMs to `user` (containing `contains`)."""
    return [m for m in bot.emulator.messages_in(user) if contains in all_text(m)]


async def wait_dm(bot: BotHarness, user: str, contains: str) -> JSON:
    found: list[JSON] = await eventually(lambda: dms(bot, user, contains))
    return found[-1]


def top_view(
    bot: BotHarness, user: str, callback_id: str | None = None, title: str | None = None
) -> JSON | None:
    """The latest modal on top of its stack that `user` has open (with that callback id or
    title)."""
    views = [
        v
        for v in bot.emulator.views.values()
        if v.get("user") == user
        and v["stack"]
        and v["stack"][-1] == v["id"]
        and callback_id in (None, v.get("callback_id"))
        and title in (None, (v.get("title") or {}).get("text"))
    ]
    return views[-1] if views else None


async def wait_view(
    bot: BotHarness, user: str, callback_id: str | None = None, title: str | None = None
) -> JSON:
    view: JSON = await eventually(lambda: top_view(bot, user, callback_id, title))
    return view


def user_mention(user: str) -> str:
    """A user as Slack escapes a mention in a slash command."""
    return f"<@{user}|{user[2:].lower()}>"


def group_mention(group: str) -> str:
    return f"<!subteam^{group}|@{group[2:].lower()}>"


def channel_mention(channel: str) -> str:
    return f"<#{channel}|{channel[2:].lower()}>"


# ------------------------------------------------------------------ typing /flow …


@dataclass
class Answer:
    response: DriverResponse
    ephemerals: list[JSON]

    @property
    def text(self) -> str:
        return "\n---\n".join(answer_text(e) for e in self.ephemerals)


async def slash(
    bot: BotHarness,
    user: str,
    text: str,
    *,
    expect: int | None = 1,
    settle: float = 0.25,
    channel: str = "C0GENERAL",
) -> Answer:
    """Type `/flow text` as `user`; wait for the ephemeral answers (`expect` of them, then
    `settle` seconds longer to see that no more come). `expect=0` waits `settle` only."""
    since = len(bot.emulator.ephemerals)
    response = await bot.driver.slash(user, text, channel=channel)
    assert response.status == 200, (text, response)
    assert not response.timed_out, f"/flow {text} took {response.elapsed:.2f}s"
    assert response.error is None, (text, response.error)
    if expect:
        await eventually(lambda: len(ephemerals_for(bot, user, since)) >= expect)
    await asyncio.sleep(settle)
    return Answer(response, ephemerals_for(bot, user, since))


async def first_reply(bot: BotHarness, user: str, text: str, channel: str = "C0GENERAL") -> JSON:
    """`/flow text` by `user`; the first ephemeral answer that follows (acks included)."""
    return (await slash(bot, user, text, settle=0, channel=channel)).ephemerals[0]


async def command(
    bot: BotHarness,
    user: str,
    text: str,
    contains: str,
    *,
    text_of: Callable[[JSON], str] = all_text,
) -> JSON:
    """`/flow text` by `user`; the ephemeral answer containing `contains`."""
    since = len(bot.emulator.ephemerals)
    response = await bot.driver.slash(user, text)
    assert response.ok, response
    return await wait_ephemeral(bot, user, contains, since, text_of=text_of)


async def import_through_modal(bot: BotHarness, user: str, text: str) -> DriverResponse:
    """`/flow import`, paste `text` into the editor, submit."""
    await bot.driver.slash(user, "import")
    view = await wait_view(bot, user, "flow_editor")
    return await bot.driver.fill_and_submit(user, view["id"], {"definition": text})


def field_errors(response: DriverResponse) -> dict[str, str]:
    assert response.ok, response
    body = response.json or {}
    assert body.get("response_action") == "errors", body
    return dict(body["errors"])


def by_label(view: JSON, values: dict[str, str]) -> dict[str, str]:
    """Modal inputs keyed by their visible label (case-insensitive prefix) → block ids."""
    out: dict[str, str] = {}
    for label, value in values.items():
        matches = [
            str(block["block_id"])
            for block in view.get("blocks") or []
            if block.get("type") == "input"
            and str((block.get("label") or {}).get("text", "")).lower().startswith(label.lower())
        ]
        assert len(matches) == 1, (label, [b.get("label") for b in view["blocks"]])
        out[matches[0]] = value
    return out


_CODE = re.compile(r"```(.*?)```", re.DOTALL)


def code_blocks(messages: list[JSON]) -> str:
    """The text of every code block in these messages, in order, unescaped."""
    parts = [
        match
        for message in messages
        for text in texts(message["blocks"])
        for match in _CODE.findall(text)
    ]
    joined = "".join(parts)
    return joined.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


# ------------------------------------------------------------------ answers that read well

# What a person must never read: Python reprs, tracebacks, internal errors.
_RAW = re.compile(
    r"\bNone\b|\[\]|\['|\{\}|\{'|<flows\.|<handlers\.|<cards\.|object at 0x|Traceback"
    r"|\bdatetime\.|\bFlowRecord\(|\bRunRecord\("
)
CRASH = "Something went wrong"


def reads_well(message: JSON) -> str:
    """The answer's text, after checking that a person can read it: not empty, no reprs,
    no traceback, no crash. Returns the text for further checks."""
    text = answer_text(message)
    assert str(message.get("text") or "").strip(), f"an answer without text: {message}"
    assert list(texts(message.get("blocks") or [])) or message.get("text"), message
    raw = _RAW.search(text)
    assert raw is None, f"raw Python in an answer ({raw.group(0)!r}): {text}"
    assert CRASH not in text, text
    return text


# ------------------------------------------------------------------ everything stored


async def documents(bot: BotHarness) -> dict[str, list[JSON]]:
    """Every document of every collection, by collection."""
    found: dict[str, list[JSON]] = {}
    for name in sorted(await bot.db.list_collection_names()):
        found[name] = [doc async for doc in bot.db[name].find({})]
    return found


DECISION_LOGS = frozenset({"trigger_log"})


async def state_of(bot: BotHarness) -> JSON:
    """Everything a command could change: every document of every collection, what Slack
    shows in channels and DMs, open modals and home tabs."""
    db = {
        name: sorted(repr(sorted(doc.items())) for doc in docs)
        for name, docs in (await documents(bot)).items()
        # The trigger log records refusals too (a wrong webhook token: SPEC 14); it is a
        # log of decisions, not state a command changes.
        if name not in DECISION_LOGS
    }
    emulator = bot.emulator
    messages = {
        channel: [(m["ts"], m["text"], m["updated"]) for m in msgs]
        for channel, msgs in emulator.messages.items()
    }
    return {
        "db": db,
        "messages": messages,
        "views": sorted(emulator.views),
        "home": {user: view["hash"] for user, view in emulator.home_views.items()},
    }


def diff(before: JSON, after: JSON) -> list[str]:
    """What changed between two `state_of` snapshots, briefly."""
    changes: list[str] = []
    for key in ("messages", "views", "home"):
        if before[key] != after[key]:
            changes.append(f"{key}: {before[key]} -> {after[key]}")
    for name in sorted(set(before["db"]) | set(after["db"])):
        old, new = before["db"].get(name, []), after["db"].get(name, [])
        if old != new:
            changes.append(
                f"collection {name}: {len(old)} -> {len(new)} documents, contents differ"
            )
    return changes


# ------------------------------------------------------------------ approvals


def blocks_text(message: JSON) -> str:
    return json.dumps(message.get("blocks") or []) + message.get("text", "")


async def approval_dm(bot: BotHarness, user: str, title: str) -> JSON:
    """The DM carrying the buttons of the approval titled `title`."""

    def find() -> JSON | None:
        for message in bot.emulator.messages_in(user):
            if title in message["text"] and has_buttons(message):
                return message
        return None

    found: JSON = await eventually(find)
    return found


async def approval_of(bot: BotHarness, run_id: str, step_id: str = "ask") -> ApprovalRecord:
    record = await ApprovalsRepo(bot.db).get_for_step(run_id, step_id)
    assert record is not None
    return record


async def comment_on(
    bot: BotHarness, user: str, message: JSON, option: str, comment: str
) -> tuple[JSON, DriverResponse]:
    """`user` clicks Comment… on the approval `message`, picks `option` and writes `comment`
    in the modal, and submits it: (the modal, the answer to the submission)."""
    assert (await bot.driver.click(user, message, "approval_comment")).ok
    view = await wait_view(bot, user, "approval_comment")
    values = {"option": option, "comment": comment}
    return view, await bot.driver.fill_and_submit(user, view["id"], values)


def response_texts(bot: BotHarness, user: str) -> list[str]:
    """What the bot answered `user` through response URLs (ephemeral answers to clicks)."""
    return [p.get("text", "") for p in bot.emulator.response_url_posts if p.get("user") == user]


# ------------------------------------------------------------------ connections


async def create_connection(
    bot: BotHarness,
    user: str,
    name: str,
    base_url: str,
    token: str = "",
    *,
    header: tuple[str, str] | None = None,
) -> ConnectionRecord:
    """`user`'s connection, as the connect modal saves it: a bearer `token`, or with `header`
    (its name, its value) a header connection."""
    fields: JSON = {"kind": "http_bearer", "secrets": {"token": token}}
    if header is not None:
        header_name, value = header
        fields = {"kind": "http_header", "secrets": {"value": value}, "header_name": header_name}
    return await deps(bot).connections.create(TEAM, user, name=name, base_url=base_url, **fields)


async def attach(
    bot: BotHarness, flow: FlowRecord, slot: str, connection_id: str, user: str = ALICE
) -> None:
    """`user` fills the flow's connection slot with their connection, as the flow's
    Connections modal does."""
    access = await resolve_access(flow, user, deps(bot).directory)
    await deps(bot).connections.attach(flow, access, user, slot, connection_id)


# ------------------------------------------------------------------ sharing

INSTANT = """
name: Expenses
kind: instant
description: File an expense
steps:
  - type: post_message
    channel: "#finance"
    text: "Expense filed by <@{{ run.started_by }}>"
"""

SCHEDULED = """
name: Nightly
kind: scheduled
trigger: {type: schedule, cron: "0 3 * * *", timezone: UTC}
steps:
  - type: post_message
    channel: "#general"
    text: "Nightly report"
"""


# ------------------------------------------------------------------ HTTP


async def http_request(
    method: str,
    url: str,
    *,
    data: bytes | str | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, str, Any]:
    """(status, content type, parsed JSON body or None)."""
    async with (
        aiohttp.ClientSession() as session,
        session.request(method, url, data=data, headers=headers or {}) as response,
    ):
        text = await response.text()
        try:
            body = json.loads(text)
        except ValueError:
            body = None
        return response.status, response.content_type, body


async def post_webhook(
    bot: BotHarness,
    flow_id: str,
    body: bytes | str = b"{}",
    headers: dict[str, str] | None = None,
) -> tuple[int, JSON]:
    """`POST /hooks/<flow id>` (JSON unless said otherwise); (status, the JSON answer)."""
    status, _, answer = await http_request(
        "POST",
        f"{bot.url}/hooks/{flow_id}",
        data=body,
        headers={"Content-Type": "application/json", **(headers or {})},
    )
    assert isinstance(answer, dict), (status, answer)
    return status, answer


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@asynccontextmanager
async def local_http_server(
    handle: Handler, method: str = "*", path: str = "/{tail:.*}"
) -> AsyncIterator[str]:
    """An HTTP server on 127.0.0.1 (an external API, for the bot); yields its base URL."""
    app = web.Application()
    app.router.add_route(method, path, handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


async def recorded(request: web.Request) -> JSON:
    """What an external API was sent."""
    return {
        "method": request.method,
        "path": request.path,
        "query": dict(request.query),
        "headers": dict(request.headers),
        "body": await request.read(),
    }

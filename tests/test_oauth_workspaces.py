"""Many workspaces through OAuth v2 (SPEC 15, issue 17), from outside: installs that
follow Slack's redirects, each workspace served with its own bot token, an uninstalled
workspace no longer served, refused install links."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import aiohttp
import pytest
import yaml

from bot.app import build
from bot.oauth import BOT_SCOPES
from bot.server import Server
from emulator.driver import SlackDriver
from emulator.server import SlackEmulator
from flows.definition import parse_definition
from flows.records import RunTrigger
from flows.scheduling import ScheduleService
from flows.testing.fakes import FakeClock
from tests.support import (
    ALICE,
    ROOT,
    BotHarness,
    deps,
    eventually,
    finished_run,
    make_settings,
    post_webhook,
    runs_of,
    start_bot,
    stop_bot,
)

ALPHA, BETA = "T1ALPHA", "T2BETA"
COOKIE = "slack-app-oauth-state"
POSTER = """
name: Hello
steps:
  - {id: hi, type: post_message, channel: "#general", text: "hello from {{ run.id }}"}
"""


@pytest.fixture
async def clock() -> FakeClock:
    return FakeClock(datetime.now(UTC))


@pytest.fixture
async def oauth_bot(
    emulator: SlackEmulator, mongo_uri: str, db_name: str, clock: FakeClock
) -> AsyncIterator[BotHarness]:
    emulator.oauth.add_team(ALPHA, "alpha")
    emulator.oauth.add_team(BETA, "beta")
    settings = make_settings(
        emulator,
        mongo_uri,
        db_name,
        slack_bot_token=None,
        slack_client_id=emulator.oauth.client_id,
        slack_client_secret=emulator.oauth.client_secret,
        slack_state_secret="state-secret-for-tests",
    )
    harness = await start_bot(emulator, settings, clock)
    emulator.oauth.redirect_uri = harness.url + "/slack/oauth_redirect"
    try:
        yield harness
    finally:
        await stop_bot(harness)


async def start_install(session: aiohttp.ClientSession, bot: BotHarness) -> tuple[str, str]:
    """GET /slack/install: Slack's authorize URL it redirects to, and the state cookie."""
    async with session.get(bot.url + "/slack/install", allow_redirects=False) as response:
        assert response.status == 302, await response.text()
        return response.headers["Location"], response.cookies[COOKIE].value


async def install(bot: BotHarness, team: str) -> tuple[int, str]:
    """Someone of `team` installs Flowbot: the install link, Slack's authorize page (they
    click Allow), back to the bot's redirect URL with the browser's state cookie."""
    bot.emulator.oauth.installing = team
    async with aiohttp.ClientSession() as session:
        authorize, cookie = await start_install(session, bot)
        assert authorize.startswith(bot.emulator.base_url + "oauth/v2/authorize?")
        async with session.get(authorize, allow_redirects=False) as slack:
            assert slack.status == 302, await slack.text()
            back = slack.headers["Location"]
        async with session.get(back, headers={"Cookie": f"{COOKIE}={cookie}"}) as response:
            return response.status, await response.text()


async def test_two_workspaces_are_installed_and_each_is_served_with_its_own_token(
    oauth_bot: BotHarness,
) -> None:
    bot, oauth = oauth_bot, oauth_bot.emulator.oauth
    for team in (ALPHA, BETA):
        status, page = await install(bot, team)
        assert status == 200 and "Flowbot is installed" in page, page
    assert await bot.db["slack_bots"].count_documents({}) == 2
    stored = await bot.db["slack_bots"].find_one({})
    assert stored is not None and "xoxb-" not in str(stored)  # tokens are sealed at rest

    # A /flow command in each workspace: answered with that workspace's token.
    for team in (ALPHA, BETA):
        before = len(oauth.token_calls)
        response = await bot.driver.slash(ALICE, "new", team=team)
        assert response.status == 200 and response.error is None
        await eventually(lambda n=before: any(c[0] == "views.open" for c in oauth.token_calls[n:]))
        calls = oauth.token_calls[before:]
        assert {t for _, t, _ in calls} == {team}, calls
        assert {token for _, _, token in calls} == {oauth.teams[team].bot_token}

    # A run started in BETA posts with BETA's token, even though nothing waits on it.
    flow = (await deps(bot).catalog.create(BETA, ALICE, parse_definition(POSTER))).flow
    before = len(oauth.token_calls)
    response = await bot.driver.slash(ALICE, "run Hello", team=BETA)
    assert response.status == 200
    run = (await finished_run(bot, flow.id))[0]
    assert run.status == "succeeded", run
    posts = [c for c in oauth.token_calls[before:] if c[0] == "chat.postMessage"]
    assert posts and {team for _, team, _ in posts} == {BETA}
    assert any(run.id in m.get("text", "") for m in bot.emulator.messages_in("C0GENERAL"))


async def test_an_uninstalled_workspace_is_no_longer_served(oauth_bot: BotHarness) -> None:
    bot, oauth = oauth_bot, oauth_bot.emulator.oauth
    for team in (ALPHA, BETA):
        assert (await install(bot, team))[0] == 200

    oauth.uninstall(BETA)  # Slack revokes the tokens, then tells the app
    response = await bot.driver.event({"type": "app_uninstalled"}, team=BETA)
    assert response.status == 200
    await eventually(lambda: _count(bot, BETA, 0))

    before = len(oauth.token_calls)
    await bot.driver.slash(ALICE, "new", team=BETA)
    await eventually(lambda: bot.emulator.response_url_posts)
    assert "no longer available" in str(bot.emulator.response_url_posts[-1])
    assert not [c for c in oauth.token_calls[before:] if c[1] == BETA]

    # The other workspace is still served.
    await bot.driver.slash(ALICE, "new", team=ALPHA)
    await eventually(lambda: any(c[1] == ALPHA for c in oauth.token_calls[before:]))


EVERY_MINUTE = """
name: Minutely
kind: scheduled
trigger: {type: schedule, every: 1m, misfire: run_once}
steps:
  - {type: post_message, channel: "#general", text: "tick {{ trigger.slot }}"}
"""


HOOK = """
name: Hook
trigger: {type: webhook}
steps:
  - {type: post_message, channel: "#general", text: "hooked"}
"""


async def test_an_uninstalled_workspace_gets_no_scheduled_or_webhook_runs(
    oauth_bot: BotHarness, clock: FakeClock
) -> None:
    bot, oauth = oauth_bot, oauth_bot.emulator.oauth
    for team in (ALPHA, BETA):
        assert (await install(bot, team))[0] == 200
    catalog = deps(bot).catalog
    flows = {
        t: (await catalog.create(t, ALICE, parse_definition(EVERY_MINUTE))).flow
        for t in (ALPHA, BETA)
    }
    hook = await catalog.create(BETA, ALICE, parse_definition(HOOK))
    oauth.uninstall(BETA)
    await bot.driver.event({"type": "app_uninstalled"}, team=BETA)
    await eventually(lambda: _count(bot, BETA, 0))

    clock.advance(timedelta(minutes=2))
    schedules = next(s for s in bot.flowbot.services if isinstance(s, ScheduleService))
    for team, flow in flows.items():
        await schedules.tick(team, flow.id)
    assert (await finished_run(bot, flows[ALPHA].id))[0].status == "succeeded"
    assert await runs_of(bot, flows[BETA].id) == []

    status, answer = await post_webhook(
        bot, hook.flow.id, b"{}", {"X-Flowbot-Token": str(hook.webhook_token)}
    )
    assert (status, answer["error"]) == (409, "workspace_uninstalled"), answer
    assert await runs_of(bot, hook.flow.id) == []
    assert not [c for c in oauth.token_calls if c[1] == BETA and c[0] == "chat.postMessage"]


async def _count(bot: BotHarness, team: str, expected: int) -> bool:
    found = await bot.db["slack_bots"].count_documents({"_id": f"-:{team}"})
    return bool(found == expected)


async def test_a_forged_used_or_expired_state_gets_a_clear_4xx_page(
    oauth_bot: BotHarness, clock: FakeClock
) -> None:
    bot = oauth_bot
    bot.emulator.oauth.installing = ALPHA
    redirect = bot.url + "/slack/oauth_redirect"
    async with aiohttp.ClientSession() as session:
        _, cookie = await start_install(session, bot)
        state = cookie  # the state Slack would send back
        cases = {
            "forged": ("forged.0123", {"Cookie": f"{COOKIE}=forged.0123"}),
            "no cookie": (state, {}),
        }
        for name, (sent, headers) in cases.items():
            async with session.get(
                redirect, params={"code": "x", "state": sent}, headers=headers
            ) as response:
                page = await response.text()
                assert response.status == 400, (name, page)
                assert "Flowbot was not installed" in page and "install link" in page, name

        # Ten minutes later the link has expired.
        clock.advance(timedelta(minutes=11))
        async with session.get(
            redirect, params={"code": "x", "state": state}, headers={"Cookie": f"{COOKIE}={state}"}
        ) as response:
            page = await response.text()
            assert response.status == 400 and "expired" in page, page
    assert await bot.db["slack_bots"].count_documents({}) == 0


async def test_a_rotating_token_is_refreshed_before_it_expires_for_a_run_with_no_request(
    oauth_bot: BotHarness,
) -> None:
    bot, oauth = oauth_bot, oauth_bot.emulator.oauth
    oauth.rotation = True
    oauth.first_lifetime = 30 * 60  # within the 120 minutes before expiry: refresh it
    assert (await install(bot, BETA))[0] == 200
    first = oauth.teams[BETA].bot_token
    flow = (await deps(bot).catalog.create(BETA, ALICE, parse_definition(POSTER))).flow
    before = len(oauth.token_calls)
    # A run nobody asked for in Slack (as a schedule starts one): no request, no Bolt.
    await deps(bot).runner.start_run(flow, RunTrigger(type="schedule"))
    run = (await finished_run(bot, flow.id))[0]
    assert run.status == "succeeded", run
    assert oauth.refreshed == 1
    posts = [c for c in oauth.token_calls[before:] if c[0] == "chat.postMessage"]
    assert posts and {token for _, _, token in posts} == {oauth.teams[BETA].bot_token} != {first}
    stored = await MongoInstallationStoreOf(bot).async_find_bot(enterprise_id=None, team_id=BETA)
    assert stored is not None and stored.bot_token == oauth.teams[BETA].bot_token


def MongoInstallationStoreOf(bot: BotHarness):  # type: ignore[no-untyped-def]
    assert bot.flowbot.oauth is not None
    return bot.flowbot.oauth.store


async def test_many_workspaces_over_socket_mode_use_each_workspace_s_token(
    emulator: SlackEmulator, mongo_uri: str, db_name: str
) -> None:
    oauth = emulator.oauth
    oauth.add_team(BETA, "beta")
    settings = make_settings(
        emulator,
        mongo_uri,
        db_name,
        slack_bot_token=None,
        slack_signing_secret=None,
        slack_app_token=emulator.socket_mode.app_token,
        slack_client_id=oauth.client_id,
        slack_client_secret=oauth.client_secret,
        slack_state_secret="state-secret-for-tests",
    )
    flowbot = build(settings, mongo_uri)
    server = Server(flowbot, host="127.0.0.1", port=0)
    await server.start()
    bot = BotHarness(emulator, SlackDriver.over_socket(emulator), flowbot, server, settings)
    try:
        await emulator.socket_mode.wait_connected()
        oauth.redirect_uri = bot.url + "/slack/oauth_redirect"
        assert (await install(bot, BETA))[0] == 200
        before = len(oauth.token_calls)
        response = await bot.driver.slash(ALICE, "new", team=BETA)
        assert response.status == 200
        await eventually(lambda: any(c[0] == "views.open" for c in oauth.token_calls[before:]))
        assert {c[2] for c in oauth.token_calls[before:]} == {oauth.teams[BETA].bot_token}
    finally:
        await stop_bot(bot)


def test_the_install_asks_for_the_manifest_s_bot_scopes() -> None:
    manifest = yaml.safe_load((ROOT / "slack-manifest.yml").read_text())
    assert list(BOT_SCOPES) == manifest["oauth_config"]["scopes"]["bot"]


def test_oauth_settings_come_together_and_replace_the_bot_token(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from bot.settings import SettingsError, load_settings

    for name in ("SLACK_BOT_TOKEN", "SLACK_CLIENT_SECRET", "SLACK_STATE_SECRET"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SLACK_CLIENT_ID", "1111.2222")
    with pytest.raises(SettingsError, match="SLACK_CLIENT_SECRET, SLACK_STATE_SECRET"):
        load_settings()
    monkeypatch.setenv("SLACK_CLIENT_SECRET", "s")
    monkeypatch.setenv("SLACK_STATE_SECRET", "t")
    assert load_settings().oauth
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-1")
    with pytest.raises(SettingsError, match="unset it with SLACK_CLIENT_ID"):
        load_settings()


async def test_an_oauth_bot_starts_without_a_bolt_warning(
    emulator: SlackEmulator, mongo_uri: str, db_name: str, caplog: pytest.LogCaptureFixture
) -> None:
    settings = make_settings(
        emulator,
        mongo_uri,
        db_name,
        slack_bot_token=None,
        slack_client_id="1111.2222",
        slack_client_secret="s",
        slack_state_secret="t",
    )
    harness = await start_bot(emulator, settings)
    await stop_bot(harness)
    warnings = [r for r in caplog.records if r.levelname in ("WARNING", "ERROR")]
    assert warnings == [], [r.getMessage() for r in warnings]

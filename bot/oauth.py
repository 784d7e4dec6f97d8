"""Many workspaces: Slack's OAuth v2 install (Bolt's AsyncOAuthFlow) and its stores.

With SLACK_CLIENT_ID, SLACK_CLIENT_SECRET and SLACK_STATE_SECRET (instead of one
SLACK_BOT_TOKEN), `GET /slack/install` sends the installer to Slack's authorize page and
`GET /slack/oauth_redirect` completes the install (`oauth.v2.access`); installations and
states live in MongoDB (`storage.installations_repo`), tokens sealed with the bot's key.
Every Slack call then uses the token of the workspace it is for (`adapters.workspaces`)."""

from __future__ import annotations

import html
from dataclasses import dataclass

from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request
from slack_bolt.oauth.async_callback_options import (
    AsyncCallbackOptions,
    AsyncFailureArgs,
    AsyncSuccessArgs,
)
from slack_bolt.oauth.async_oauth_flow import AsyncOAuthFlow
from slack_bolt.oauth.async_oauth_settings import AsyncOAuthSettings
from slack_bolt.response import BoltResponse
from slack_sdk.oauth.token_rotation.async_rotator import AsyncTokenRotator

from adapters.installation_store import MongoInstallationStore, MongoOAuthStateStore
from adapters.workspaces import (
    SlackInstallations,
    TeamClients,
    TeamTokens,
    WorkspaceWebClient,
    make_workspace_client,
)
from bot.settings import Settings
from flows.metrics import Metrics
from flows.ports import Clock
from flows.sealed import MetadataSeal
from flows.secrets import SecretBox
from storage.installations_repo import InstallationsRepo
from storage.mongo import Storage

INSTALL_PATH = "/slack/install"
REDIRECT_PATH = "/slack/oauth_redirect"
STATE_SECONDS = 600  # an install started more than 10 minutes ago is refused

# The bot scopes Flowbot asks for: slack-manifest.yml's (a test keeps them the same).
BOT_SCOPES = (
    "commands",
    "chat:write",
    "chat:write.public",
    "im:write",
    "users:read",
    "users:read.email",
    "usergroups:read",
    "channels:read",
    "groups:read",
    "channels:history",
    "groups:history",
    "reactions:read",
    "reactions:write",
    "channels:manage",
    "groups:write",
    "channels:join",
    "metadata.message:read",
)

# Why an install was refused, in words for the person installing.
REFUSALS = {
    "invalid_browser": "This install link was started in another browser (or its cookie "
    "expired). Start again from the install link.",
    "invalid_state": "This install link has expired or was already used. Start again from "
    "the install link.",
    "missing_code": "Slack did not send an authorization code. Start again from the install link.",
    "invalid_code": "Slack refused the authorization code (used or expired). Start again "
    "from the install link.",
    "access_denied": "The install was cancelled in Slack; nothing was installed.",
    "storage_error": "The installation could not be saved. Try again in a minute.",
}


@dataclass
class OAuth:
    """What OAuth mode adds: the stores, the per-workspace tokens and clients, the flow."""

    store: MongoInstallationStore
    states: MongoOAuthStateStore
    tokens: TeamTokens
    clients: TeamClients
    installations: SlackInstallations
    client: WorkspaceWebClient  # the client every port holds
    settings: AsyncOAuthSettings


def authorize_url(api_url: str) -> str:
    """Slack's authorize page next to its Web API (https://slack.com/oauth/v2/authorize)."""
    base = api_url.rstrip("/")
    base = base[: -len("/api")] if base.endswith("/api") else base
    return f"{base}/oauth/v2/authorize"


def build_oauth(
    settings: Settings,
    storage: Storage,
    box: SecretBox,
    clock: Clock,
    metrics: Metrics,
    seal: MetadataSeal | None = None,
) -> OAuth:
    assert settings.slack_client_id and settings.slack_client_secret
    assert settings.slack_state_secret
    records = InstallationsRepo(storage.db)
    storage.add(records)
    store = MongoInstallationStore(records, box)
    states = MongoOAuthStateStore(
        records, settings.slack_state_secret.get_secret_value(), clock, STATE_SECONDS
    )
    secret = settings.slack_client_secret.get_secret_value()
    minutes = settings.slack_token_rotation_minutes
    tokens = TeamTokens(store, rotation_minutes=minutes)
    client = make_workspace_client(tokens, settings.slack_api_url, metrics, seal)
    tokens.rotator = AsyncTokenRotator(
        client_id=settings.slack_client_id, client_secret=secret, client=client
    )
    clients = TeamClients(client)
    redirect = (
        f"{settings.flowbot_public_url}{REDIRECT_PATH}" if settings.flowbot_public_url else None
    )
    oauth_settings = AsyncOAuthSettings(
        client_id=settings.slack_client_id,
        client_secret=secret,
        scopes=list(BOT_SCOPES),
        redirect_uri=redirect,
        install_path=INSTALL_PATH,
        redirect_uri_path=REDIRECT_PATH,
        install_page_rendering_enabled=False,  # straight to Slack's authorize page
        authorization_url=authorize_url(settings.slack_api_url),
        installation_store=store,
        installation_store_bot_only=True,
        token_rotation_expiration_minutes=minutes,
        state_store=states,
        state_expiration_seconds=STATE_SECONDS,
        callback_options=AsyncCallbackOptions(success=_installed, failure=_refused),
    )
    return OAuth(
        store=store,
        states=states,
        tokens=tokens,
        clients=clients,
        installations=SlackInstallations(store, clients),
        client=client,
        settings=oauth_settings,
    )


def _page(title: str, text: str, status: int) -> BoltResponse:
    body = (
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title></head><body>"
        f"<h1>{html.escape(title)}</h1><p>{html.escape(text)}</p></body></html>"
    )
    return BoltResponse(
        status=status, body=body, headers={"Content-Type": "text/html; charset=utf-8"}
    )


async def _installed(args: AsyncSuccessArgs) -> BoltResponse:
    team = args.installation.team_name or args.installation.team_id or "your workspace"
    return _page(
        "Flowbot is installed",
        f"Flowbot is installed in {team}. In Slack, type /flow help to start.",
        200,
    )


async def _refused(args: AsyncFailureArgs) -> BoltResponse:
    text = REFUSALS.get(args.reason, "The install did not complete. Start again.")
    status = 400 if args.suggested_status_code < 500 else args.suggested_status_code
    return _page("Flowbot was not installed", text, status)


def oauth_routes(app: web.Application, flow: AsyncOAuthFlow) -> None:
    """`GET /slack/install` and `GET /slack/oauth_redirect` on the bot's web app."""

    async def install(request: web.Request) -> web.Response:
        return await to_aiohttp_response(
            await flow.handle_installation(await to_bolt_request(request))
        )

    async def redirect(request: web.Request) -> web.Response:
        return await to_aiohttp_response(await flow.handle_callback(await to_bolt_request(request)))

    app.router.add_get(INSTALL_PATH, install)
    app.router.add_get(REDIRECT_PATH, redirect)

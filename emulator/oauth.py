"""Slack's OAuth v2 for a distributed app, and the other workspaces the emulator hosts.

The emulator's own workspace (`SlackEmulator.team_id`, token `bot_token`) is always
there; `add_team` hosts another one. `GET /oauth/v2/authorize` plays the person who
clicks *Allow*: it issues a code for the team in `installing` and sends the browser back
to the app's redirect URI with it (and the app's `state`). `oauth.v2.access` exchanges
the code for that team's bot token (or, with `rotation`, a rotating one and a refresh
token; `grant_type=refresh_token` renews it). Every Web API call is authenticated with
one of the hosted teams' tokens; `token_calls` records which (method, team, token), so
tests can check which workspace's token each call used."""

from __future__ import annotations

import base64
import secrets
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from aiohttp import web

if TYPE_CHECKING:
    from emulator.server import SlackEmulator

JSON = dict[str, Any]


@dataclass
class Team:
    id: str
    name: str
    bot_token: str
    bot_user_id: str = "U0BOT"
    bot_id: str = "B0BOT"
    installed: bool = True  # False once uninstalled: its tokens answer account_inactive
    refresh_token: str | None = None
    expires_at: float | None = None  # rotating tokens: when `bot_token` expires
    # earlier rotating tokens and their expiry: valid until then, as in Slack
    old_tokens: dict[str, float] = field(default_factory=dict)


class OAuthEmulator:
    def __init__(
        self,
        emulator: SlackEmulator,
        client_id: str = "1111.2222",
        client_secret: str = "emulator-client-secret",
    ) -> None:
        self.emulator = emulator
        self.client_id = client_id
        self.client_secret = client_secret
        self.teams: dict[str, Team] = {}
        self.installing: str | None = None  # the team the next authorize installs into
        self.installer = "U0INSTALLER"
        self.redirect_uri: str | None = None  # the app's Redirect URL (OAuth & Permissions)
        self.rotation = False  # oauth.v2.access hands out rotating tokens
        self.token_lifetime = 12 * 3600
        self.first_lifetime: int | None = None  # the install's token (None: token_lifetime)
        self._codes: dict[str, tuple[str, str | None, float]] = {}
        self.refreshed = 0  # tokens renewed with a refresh token
        self.token_calls: list[tuple[str, str, str]] = []

    def mount(self, app: web.Application) -> None:
        app.router.add_get("/oauth/v2/authorize", self._authorize)
        app.router.add_post("/api/oauth.v2.access", self._access)

    # ---------------------------------------------------------------- workspaces

    def add_team(self, team_id: str, name: str | None = None) -> Team:
        team = Team(team_id, name or team_id.lower(), f"xoxb-{team_id}-{secrets.token_hex(6)}")
        self.teams[team_id] = team
        return team

    def primary(self) -> Team:
        emu = self.emulator
        return Team(emu.team_id, emu.team_domain, emu.bot_token, emu.bot_user_id, emu.bot_id)

    def team_of_token(self, token: str) -> Team | None:
        if token == self.emulator.bot_token:
            return self.primary()
        return next(
            (t for t in self.teams.values() if token == t.bot_token or token in t.old_tokens),
            None,
        )

    def check_token(self, method: str, token: str) -> str | None:
        """The error for a token that is not a hosted team's (None: fine)."""
        team = self.team_of_token(token)
        if team is None:
            return "invalid_auth"
        if not team.installed:
            return "account_inactive"
        expires = team.old_tokens.get(token, team.expires_at if token == team.bot_token else None)
        if expires is not None and expires < time.time():
            return "token_expired"
        self.token_calls.append((method, team.id, token))
        return None

    def auth_test(self, token: str) -> JSON | None:
        team = self.team_of_token(token)
        if team is None or team.id == self.emulator.team_id:
            return None  # the emulator's own answer
        return {
            "url": f"https://{team.name}.slack.com/",
            "team": team.name,
            "user": "flowbot",
            "team_id": team.id,
            "user_id": team.bot_user_id,
            "bot_id": team.bot_id,
            "is_enterprise_install": False,
        }

    def uninstall(self, team_id: str) -> None:
        """The workspace removes the app: its tokens stop working (then send the event)."""
        self.teams[team_id].installed = False

    def calls_of(self, team_id: str) -> list[str]:
        return [method for method, team, _ in self.token_calls if team == team_id]

    # ---------------------------------------------------------------- HTTP

    async def _authorize(self, request: web.Request) -> web.Response:
        q = request.query
        if q.get("client_id") != self.client_id:
            return web.Response(status=400, text="invalid_client_id")
        redirect_uri = q.get("redirect_uri") or self.redirect_uri
        if not redirect_uri:
            return web.Response(status=400, text="no redirect_uri (set one for the app)")
        team_id = self.installing
        if team_id is None or team_id not in self.teams:
            return web.Response(status=400, text="no workspace to install into")
        code = secrets.token_hex(12)
        self._codes[code] = (team_id, q.get("redirect_uri"), time.time() + 600)
        query = {"code": code, "state": q.get("state", "")}
        raise web.HTTPFound(f"{redirect_uri}?{urlencode(query)}")

    def _client_ok(self, request: web.Request, form: Any) -> bool:
        header = request.headers.get("Authorization", "")
        if header.startswith("Basic "):
            user, _, password = base64.b64decode(header[6:]).decode().partition(":")
        else:
            user, password = form.get("client_id", ""), form.get("client_secret", "")
        return bool(user == self.client_id and password == self.client_secret)

    async def _access(self, request: web.Request) -> web.Response:
        form = await request.post()
        self.emulator.calls.append(("oauth.v2.access", dict(form)))
        if not self._client_ok(request, form):
            return web.json_response({"ok": False, "error": "invalid_client_id"})
        if form.get("grant_type") == "refresh_token":
            return self._refresh(str(form.get("refresh_token", "")))
        issued = self._codes.pop(str(form.get("code", "")), None)
        if issued is None or issued[2] < time.time():
            return web.json_response({"ok": False, "error": "invalid_code"})
        team = self.teams[issued[0]]
        if issued[1] and form.get("redirect_uri") and form.get("redirect_uri") != issued[1]:
            return web.json_response({"ok": False, "error": "bad_redirect_uri"})
        team.installed = True
        return web.json_response(self._grant(team, new_token=False))

    def _refresh(self, refresh_token: str) -> web.Response:
        team = next((t for t in self.teams.values() if t.refresh_token == refresh_token), None)
        if team is None or not team.installed:
            return web.json_response({"ok": False, "error": "invalid_refresh_token"})
        return web.json_response(self._grant(team, new_token=True))

    def _grant(self, team: Team, *, new_token: bool) -> JSON:
        if self.rotation:
            lifetime = self.token_lifetime
            if not new_token and self.first_lifetime is not None:
                lifetime = self.first_lifetime
            if team.expires_at is not None:
                team.old_tokens[team.bot_token] = team.expires_at
            team.bot_token = f"xoxe.xoxb-{team.id}-{secrets.token_hex(6)}"
            team.refresh_token = team.refresh_token or f"xoxe-1-{secrets.token_hex(8)}"
            team.expires_at = time.time() + lifetime
            self.refreshed += new_token
        answer: JSON = {
            "ok": True,
            "app_id": self.emulator.app_id,
            "authed_user": {"id": self.installer},
            "scope": "commands,chat:write",
            "token_type": "bot",
            "access_token": team.bot_token,
            "bot_user_id": team.bot_user_id,
            "team": {"id": team.id, "name": team.name},
            "enterprise": None,
            "is_enterprise_install": False,
        }
        if self.rotation:
            answer["refresh_token"] = team.refresh_token
            answer["expires_in"] = int(team.expires_at - time.time()) if team.expires_at else 0
        return answer

"""Each workspace's Slack calls with that workspace's bot token.

Single-token mode (SLACK_BOT_TOKEN) needs none of this: the one client serves the one
workspace. With OAuth (many workspaces), `WorkspaceWebClient` is the client every port
holds: each call takes the bot token of the workspace the current work is for
(`flows.workspace_context.current_team`: bound per request, per run, per background
item), or of the team the client was made for (`TeamClients.for_team`). Tokens come from
the installation store, cached for a minute, and rotating tokens are refreshed
`rotation_minutes` before they expire (saved back, so every replica sees the new one).
A workspace without an installation (uninstalled, tokens revoked) gets Slack's own
`account_inactive`, as if Slack had answered it."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from slack_sdk.errors import SlackApiError
from slack_sdk.oauth.installation_store.async_installation_store import (
    AsyncInstallationStore,
)
from slack_sdk.oauth.token_rotation.async_rotator import AsyncTokenRotator
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.web.async_slack_response import AsyncSlackResponse

from adapters.sealing_client import SealingWebClient
from adapters.slack import RETRY_HANDLERS
from flows.metrics import Metrics
from flows.sealed import MetadataSeal
from flows.workspace_context import current_team

log = logging.getLogger(__name__)

# Slack's answers meaning "this token is no longer good": read the store again next time.
STALE_TOKEN_ERRORS = frozenset(
    {"invalid_auth", "account_inactive", "token_revoked", "token_expired", "not_authed"}
)


def _refused(error: str, message: str) -> SlackApiError:
    return SlackApiError(message, {"ok": False, "error": error})  # type: ignore[arg-type]


class TeamTokens:
    """team id → its bot token, from the installation store; rotated before expiry."""

    def __init__(
        self,
        store: AsyncInstallationStore,
        rotator: AsyncTokenRotator | None = None,
        *,
        rotation_minutes: int = 120,
        ttl: float = 60.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.rotator = rotator
        self.rotation_minutes = rotation_minutes
        self.ttl = ttl
        self.monotonic = monotonic
        # team → (token, its expiry in epoch seconds or None, when it was read)
        self._cache: dict[str, tuple[str, float | None, float]] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    def forget(self, team_id: str | None = None) -> None:
        """Read `team_id`'s installation again next time (every team's when None)."""
        if team_id is None:
            self._cache.clear()
        else:
            self._cache.pop(team_id, None)

    def _fresh(self, team_id: str) -> str | None:
        hit = self._cache.get(team_id)
        if hit is None or self.monotonic() - hit[2] >= self.ttl:
            return None
        token, expires_at, _ = hit
        if expires_at is not None and expires_at - time.time() < self.rotation_minutes * 60:
            return None  # due for rotation
        return token

    async def token(self, team_id: str | None) -> str:
        if not team_id:
            raise _refused("not_authed", "a Slack call outside any workspace")
        cached = self._fresh(team_id)
        if cached is not None:
            return cached
        async with self._locks.setdefault(team_id, asyncio.Lock()):
            cached = self._fresh(team_id)
            if cached is not None:
                return cached
            return await self._load(team_id)

    async def serves(self, team_id: str) -> bool:
        """Whether the app is installed in `team_id` (its token can be had)."""
        try:
            await self.token(team_id)
        except SlackApiError:
            return False
        return True

    async def _load(self, team_id: str) -> str:
        bot = await self.store.async_find_bot(enterprise_id=None, team_id=team_id)
        if bot is None or not bot.bot_token:
            self._cache.pop(team_id, None)
            raise _refused("account_inactive", f"Flowbot is not installed in {team_id}")
        if bot.bot_refresh_token and bot.bot_token_expires_at and self.rotator is not None:
            refreshed = await self.rotator.perform_bot_token_rotation(
                bot=bot, minutes_before_expiration=self.rotation_minutes
            )
            if refreshed is not None:
                await self.store.async_save_bot(refreshed)
                log.info("bot token of %s rotated", team_id)
                bot = refreshed
        expires = float(bot.bot_token_expires_at) if bot.bot_token_expires_at else None
        self._cache[team_id] = (bot.bot_token, expires, self.monotonic())
        return bot.bot_token


def _explicit_token(kwargs: dict[str, Any]) -> bool:
    return any("token" in (kwargs.get(part) or {}) for part in ("params", "data", "json"))


class WorkspaceWebClient(SealingWebClient):
    """A Web API client whose every call carries the current workspace's bot token (and
    seals views' metadata, and is counted, as the single-token client is)."""

    def __init__(
        self,
        tokens: TeamTokens,
        *,
        team_id: str | None = None,
        seal: MetadataSeal | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(seal, **kwargs)
        self.tokens = tokens
        self.fixed_team = team_id

    async def api_call(self, api_method: str, **kwargs: Any) -> AsyncSlackResponse:
        # oauth.* authenticate with the app's credentials; a caller's own token wins.
        if api_method.startswith("oauth.") or _explicit_token(kwargs):
            return await super().api_call(api_method, **kwargs)
        team = self.fixed_team or current_team.get()
        token = await self.tokens.token(team)
        headers = dict(kwargs.pop("headers", None) or {})
        headers["Authorization"] = f"Bearer {token}"
        try:
            return await super().api_call(api_method, headers=headers, **kwargs)
        except SlackApiError as exc:
            if exc.response is not None and exc.response.get("error") in STALE_TOKEN_ERRORS:
                self.tokens.forget(team)
            raise


def make_workspace_client(
    tokens: TeamTokens, base_url: str, metrics: Metrics, seal: MetadataSeal | None = None
) -> WorkspaceWebClient:
    client = WorkspaceWebClient(tokens, base_url=base_url, timeout=15, metrics=metrics, seal=seal)
    client.retry_handlers.extend(RETRY_HANDLERS)
    return client


class TeamClients:
    """team id → a client with that workspace's token (the one client in single-token
    mode). For work done outside a request or a run that knows its team."""

    def __init__(self, client: AsyncWebClient) -> None:
        self.client = client
        self._clients: dict[str, AsyncWebClient] = {}

    def for_team(self, team_id: str) -> AsyncWebClient:
        if not isinstance(self.client, WorkspaceWebClient):
            return self.client
        client = self._clients.get(team_id)
        if client is None:
            client = WorkspaceWebClient(
                self.client.tokens,
                base_url=self.client.base_url,
                timeout=self.client.timeout,
                metrics=self.client.metrics,
                team_id=team_id,
                seal=self.client.seal,
            )
            client.retry_handlers.extend(RETRY_HANDLERS)
            self._clients[team_id] = client
        return client

    def forget(self, team_id: str) -> None:
        self._clients.pop(team_id, None)
        if isinstance(self.client, WorkspaceWebClient):
            self.client.tokens.forget(team_id)


class SlackInstallations:
    """Implements `flows.workspace_context.Installations` on the installation store."""

    def __init__(self, store: AsyncInstallationStore, clients: TeamClients) -> None:
        self.store = store
        self.clients = clients

    async def uninstalled(self, enterprise_id: str | None, team_id: str | None) -> None:
        await self.store.async_delete_all(enterprise_id=enterprise_id, team_id=team_id)
        if team_id:
            self.clients.forget(team_id)
        log.info("Flowbot was uninstalled from %s: its installation is deleted", team_id)

    async def tokens_revoked(
        self, enterprise_id: str | None, team_id: str | None, bot_revoked: bool
    ) -> None:
        # Flowbot asks for no user tokens: the installations only matter for their bot.
        if bot_revoked:
            await self.uninstalled(enterprise_id, team_id)

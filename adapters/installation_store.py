"""slack_sdk's async installation and OAuth state stores, on `InstallationRecords`.

Bolt's OAuth flow saves what `oauth.v2.access` returns here; Bolt's authorize and the
per-workspace clients (`adapters.workspaces`) read it. Installations are sealed with the
bot's SecretBox (FLOWBOT_SECRET_KEY): a database dump alone does not give the tokens away.
States are random, signed with SLACK_STATE_SECRET (a forged one is refused without a
database read) and single-use; they expire after `expiration` seconds."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import secrets
from datetime import timedelta
from logging import Logger
from typing import Any

from slack_sdk.oauth.installation_store.async_installation_store import (
    AsyncInstallationStore,
)
from slack_sdk.oauth.installation_store.models.bot import Bot
from slack_sdk.oauth.installation_store.models.installation import Installation
from slack_sdk.oauth.state_store.async_state_store import AsyncOAuthStateStore

from flows.ports import Clock
from flows.secrets import SecretBox
from flows.workspace_context import InstallationRecords

log = logging.getLogger(__name__)


def workspace_key(
    enterprise_id: str | None, team_id: str | None, is_enterprise_install: bool | None = False
) -> str:
    """One workspace; an org-wide (Enterprise Grid) install covers every team of the org."""
    team = None if is_enterprise_install else team_id
    return f"{enterprise_id or '-'}:{team or '-'}"


class MongoInstallationStore(AsyncInstallationStore):
    def __init__(self, records: InstallationRecords, box: SecretBox) -> None:
        self.records = records
        self.box = box

    @property
    def logger(self) -> Logger:
        return log

    def _seal(self, data: dict[str, Any]) -> str:
        return self.box.encrypt({"json": json.dumps(data, default=str)})

    def _open(self, sealed: str | None) -> dict[str, Any] | None:
        if sealed is None:
            return None
        data: dict[str, Any] = json.loads(self.box.decrypt(sealed)["json"])
        return data

    async def async_save(self, installation: Installation) -> None:
        key = workspace_key(
            installation.enterprise_id, installation.team_id, installation.is_enterprise_install
        )
        sealed = self._seal(dict(vars(installation)))
        await self.records.save_installation(key, None, sealed)
        await self.records.save_installation(key, installation.user_id, sealed)
        if installation.bot_token:
            await self.async_save_bot(installation.to_bot())

    async def async_save_bot(self, bot: Bot) -> None:
        key = workspace_key(bot.enterprise_id, bot.team_id, bot.is_enterprise_install)
        await self.records.save_bot(key, self._seal(dict(vars(bot))))

    async def async_find_bot(
        self,
        *,
        enterprise_id: str | None,
        team_id: str | None,
        is_enterprise_install: bool | None = False,
    ) -> Bot | None:
        key = workspace_key(enterprise_id, team_id, is_enterprise_install)
        data = self._open(await self.records.find_bot(key))
        return Bot(**data) if data else None

    async def async_find_installation(
        self,
        *,
        enterprise_id: str | None,
        team_id: str | None,
        user_id: str | None = None,
        is_enterprise_install: bool | None = False,
    ) -> Installation | None:
        key = workspace_key(enterprise_id, team_id, is_enterprise_install)
        data = self._open(await self.records.find_installation(key, user_id))
        return Installation(**data) if data else None

    async def async_delete_bot(self, *, enterprise_id: str | None, team_id: str | None) -> None:
        await self.records.delete_bot(workspace_key(enterprise_id, team_id))

    async def async_delete_installation(
        self, *, enterprise_id: str | None, team_id: str | None, user_id: str | None = None
    ) -> None:
        await self.records.delete_installations(workspace_key(enterprise_id, team_id), user_id)

    async def async_delete_all(self, *, enterprise_id: str | None, team_id: str | None) -> None:
        await self.async_delete_bot(enterprise_id=enterprise_id, team_id=team_id)
        await self.async_delete_installation(enterprise_id=enterprise_id, team_id=team_id)


class MongoOAuthStateStore(AsyncOAuthStateStore):
    def __init__(
        self, records: InstallationRecords, secret: str, clock: Clock, expiration: int = 600
    ) -> None:
        self.records = records
        self.secret = secret.encode()
        self.clock = clock
        self.expiration = expiration

    @property
    def logger(self) -> Logger:
        return log

    def _sign(self, nonce: str) -> str:
        return hmac.new(self.secret, nonce.encode(), hashlib.sha256).hexdigest()[:32]

    async def async_issue(self, *args: Any, **kwargs: Any) -> str:
        nonce = secrets.token_urlsafe(24)
        expires_at = self.clock.now() + timedelta(seconds=self.expiration)
        await self.records.issue_state(nonce, expires_at)
        return f"{nonce}.{self._sign(nonce)}"

    async def async_consume(self, state: str) -> bool:
        nonce, _, signature = state.rpartition(".")
        if not nonce or not hmac.compare_digest(signature, self._sign(nonce)):
            return False
        return await self.records.consume_state(nonce, self.clock.now())

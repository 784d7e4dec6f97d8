"""Cross-cutting ports: what the engine needs from the outside world.

Each area keeps its own storage Protocol next to its service (FlowStore in
`flows.catalog`, RunStore in `flows.runner`, …). Adapters live in `storage/` (the
database) and `adapters/` (Slack); tests use real adapters, and fakes only for the clock
and ids.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from typing import Any, Protocol

from flows.records import MessageRef


class Clock(Protocol):
    def now(self) -> datetime: ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(timezone.utc)


class IdGenerator(Protocol):
    def new_id(self, prefix: str) -> str: ...


class RandomIds:
    """Short, URL-safe, unguessable ids such as `F3k9x…`."""

    def new_id(self, prefix: str) -> str:
        return prefix + secrets.token_hex(8)


class Messenger(Protocol):
    """Posting to Slack on behalf of a run (post_message, send_dm) and for notifications.

    `metadata` is Slack message metadata (`{"event_type": …, "event_payload": {…}}`): a
    run's posts carry `flows.triggers.run_message_metadata`, so that a flow triggered by
    them knows how deep the chain already is."""

    async def post_message(
        self,
        channel: str,
        text: str,
        blocks: Sequence[dict[str, Any]] | None = None,
        *,
        metadata: Mapping[str, Any] | None = None,
        thread_ts: str | None = None,
        reply_broadcast: bool = False,
    ) -> MessageRef: ...

    async def update_message(
        self, ref: MessageRef, text: str, blocks: Sequence[dict[str, Any]] | None = None
    ) -> None: ...

    async def send_dm(
        self,
        user: str,
        text: str,
        blocks: Sequence[dict[str, Any]] | None = None,
        *,
        metadata: Mapping[str, Any] | None = None,
    ) -> MessageRef: ...

    async def post_ephemeral(
        self, channel: str, user: str, text: str, blocks: Sequence[dict[str, Any]] | None = None
    ) -> None: ...


class Directory(Protocol):
    """Who is in a user group or a channel, and who administers the workspace."""

    async def usergroup_members(self, team_id: str, group_id: str) -> frozenset[str]: ...

    async def channel_members(self, team_id: str, channel_id: str) -> frozenset[str]: ...

    async def is_workspace_admin(self, team_id: str, user_id: str) -> bool: ...

    async def resolve_channel(self, team_id: str, channel: str) -> str: ...

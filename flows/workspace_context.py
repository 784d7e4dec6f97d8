"""Which workspace the current work is for: a context variable the Slack client reads.

With many workspaces installed (OAuth), every call to Slack must carry the bot token of
the workspace it is about. Requests bind their team as Bolt dispatches them; each task
driving a run binds the run's team (`flows.runner`); background work about one record
binds that record's team. Tasks copy the context they are created in, so everything a
request or a run starts is about the same workspace. `adapters.workspaces` reads it."""

from __future__ import annotations

from collections.abc import Awaitable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import datetime
from typing import Protocol, TypeVar

T = TypeVar("T")

current_team: ContextVar[str | None] = ContextVar("flowbot_team_id", default=None)


@contextmanager
def acting_for(team_id: str | None) -> Iterator[None]:
    """Within the block, Slack calls use `team_id`'s token."""
    token = current_team.set(team_id or None)
    try:
        yield
    finally:
        current_team.reset(token)


async def for_team(team_id: str, work: Awaitable[T]) -> T:
    """Await `work` for `team_id` (inside the task that does it)."""
    current_team.set(team_id)
    return await work


class Installations(Protocol):
    """The workspaces the app is installed in (OAuth mode), as Slack's events change them."""

    async def uninstalled(self, enterprise_id: str | None, team_id: str | None) -> None:
        """`app_uninstalled`: forget the workspace and its tokens."""

    async def tokens_revoked(
        self, enterprise_id: str | None, team_id: str | None, bot_revoked: bool
    ) -> None:
        """`tokens_revoked`: the bot token (or users' tokens) no longer work."""


class InstallationRecords(Protocol):
    """Where installations (sealed: their tokens are encrypted) and OAuth states live.

    `key` names a workspace (or an Enterprise Grid organisation); `user` is the installing
    person, None for the latest installation of the workspace."""

    async def save_bot(self, key: str, sealed: str) -> None: ...

    async def find_bot(self, key: str) -> str | None: ...

    async def delete_bot(self, key: str) -> None: ...

    async def save_installation(self, key: str, user: str | None, sealed: str) -> None: ...

    async def find_installation(self, key: str, user: str | None) -> str | None: ...

    async def delete_installations(self, key: str, user: str | None) -> None:
        """`user` None: every installation of the workspace."""

    async def issue_state(self, state: str, expires_at: datetime) -> None: ...

    async def consume_state(self, state: str, now: datetime) -> bool:
        """True once for a state issued and not expired; it is gone afterwards."""

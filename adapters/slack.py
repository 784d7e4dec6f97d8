"""Slack's Web API client and the engine's Messenger and Directory ports on it (slack_sdk)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler,
    AsyncRateLimitErrorRetryHandler,
    AsyncServerErrorRetryHandler,
)
from slack_sdk.web.async_client import AsyncWebClient

from adapters.sealing_client import SealingWebClient
from flows.metrics import Metrics
from flows.post_recovery import RunPost
from flows.records import MessageRef
from flows.sealed import MetadataSeal

# Slack answers 429 with Retry-After under load: wait and retry instead of dropping posts.
RETRY_HANDLERS = [
    AsyncRateLimitErrorRetryHandler(max_retry_count=20),
    AsyncServerErrorRetryHandler(max_retry_count=3),
    AsyncConnectionErrorRetryHandler(max_retry_count=3),
]


def make_client(
    token: str,
    base_url: str,
    metrics: Metrics | None = None,
    seal: MetadataSeal | None = None,
) -> AsyncWebClient:
    """The client, with retries; counted (calls, outcomes, 429s) when given `metrics`;
    with `seal`, views' private_metadata is sealed on the way out."""
    client = (
        SealingWebClient(seal, token=token, base_url=base_url, timeout=15, metrics=metrics)
        if seal is not None or metrics is not None
        else AsyncWebClient(token=token, base_url=base_url, timeout=15)
    )
    client.retry_handlers.extend(RETRY_HANDLERS)
    return client


class ChannelTurns:
    """One write at a time per channel, and posts paced at Slack's rate.

    Slack allows about one message per second per channel, with short bursts. Hundreds of
    runs posting to one channel at once would all be answered 429 and retry together, and
    some would run out of retries; taking turns, a channel's messages keep the order they
    were sent in, and each post waits its turn at `per_second` (after a burst of `burst`
    from an idle channel), counted from Slack's answer to the previous post, so Slack
    seldom has to say 429. A 429 still happens (another app, a tighter limit): only the
    writer at the head waits out `Retry-After`, and nothing is dropped. `per_second` 0:
    no pacing (an API-compatible server without the limit)."""

    def __init__(
        self,
        per_second: float = 1.0,
        burst: int = 2,
        *,
        now: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._locks: dict[str, asyncio.Lock] = {}
        self._waiting: dict[str, int] = {}
        self.interval = 1.0 / per_second if per_second > 0 else 0.0
        self.burst = float(max(1, burst))
        # channel -> (posts it may send at once, when Slack answered its last post).
        self._bucket: dict[str, tuple[float, float]] = {}
        self._now, self._sleep = now, sleep

    @asynccontextmanager
    async def turn(self, channel: str, *, post: bool = False) -> AsyncIterator[None]:
        lock = self._locks.setdefault(channel, asyncio.Lock())
        self._waiting[channel] = self._waiting.get(channel, 0) + 1
        try:
            async with lock:
                if post and self.interval:
                    await self._pace(channel)
                started = self._now()
                try:
                    yield
                finally:
                    if post and self.interval:
                        self._posted(channel, started)
        finally:
            self._waiting[channel] -= 1
            if not self._waiting[channel]:  # forget idle channels
                del self._waiting[channel]
                del self._locks[channel]

    async def _pace(self, channel: str) -> None:
        # A token bucket of `burst` posts, refilled at `per_second` from Slack's answer to
        # the previous post (never while a post is in flight), whole tokens only: a
        # channel without burst left waits a full interval after the previous answer.
        tokens, answered = self._bucket.get(channel, (self.burst, float("-inf")))
        tokens = min(self.burst, tokens + (self._now() - answered) / self.interval)
        if tokens < 1:
            await self._sleep((1 - tokens) * self.interval)
            tokens = 1.0
        self._bucket[channel] = (float(int(tokens)) - 1, answered)

    def _posted(self, channel: str, started: float) -> None:
        now = self._now()
        tokens = self._bucket[channel][0]
        if now - started > self.interval:
            tokens = 0.0  # Slack held the post back (a 429): no burst left
        self._bucket[channel] = (tokens, now)
        if len(self._bucket) > 1000:  # forget channels whose bucket is full again
            self._bucket = {
                c: (t, at)
                for c, (t, at) in self._bucket.items()
                if t + (now - at) / self.interval < self.burst
            }


class SlackMessenger:
    def __init__(self, client: AsyncWebClient, turns: ChannelTurns | None = None) -> None:
        self.client = client
        self.turns = turns or ChannelTurns()

    async def post_message(
        self,
        channel: str,
        text: str,
        blocks: Sequence[dict[str, Any]] | None = None,
        *,
        metadata: Mapping[str, Any] | None = None,
        thread_ts: str | None = None,
        reply_broadcast: bool = False,
    ) -> MessageRef:
        async with self.turns.turn(channel, post=True):
            response = await self.client.chat_postMessage(
                channel=channel,
                text=text,
                blocks=list(blocks) if blocks else None,
                unfurl_links=False,
                metadata=dict(metadata) if metadata else None,
                thread_ts=thread_ts,
                reply_broadcast=reply_broadcast if thread_ts else None,
            )
        return MessageRef(channel=str(response["channel"]), ts=str(response["ts"]))

    async def update_message(
        self, ref: MessageRef, text: str, blocks: Sequence[dict[str, Any]] | None = None
    ) -> None:
        async with self.turns.turn(ref.channel):
            await self.client.chat_update(
                channel=ref.channel, ts=ref.ts, text=text, blocks=list(blocks) if blocks else []
            )

    async def send_dm(
        self,
        user: str,
        text: str,
        blocks: Sequence[dict[str, Any]] | None = None,
        *,
        metadata: Mapping[str, Any] | None = None,
    ) -> MessageRef:
        opened = await self.client.conversations_open(users=user)
        channel = str(opened["channel"]["id"])
        return await self.post_message(channel, text, blocks, metadata=metadata)

    async def find_run_post(
        self, channel: str, since: datetime, post: RunPost
    ) -> MessageRef | None:
        """A run's post by its metadata (`flows.post_recovery`), in the channel's history
        since `since` (a minute earlier, for clocks apart), newest first, 5 pages at most."""
        if channel[:1] in ("U", "W"):
            opened = await self.client.conversations_open(users=channel)
            channel = str(opened["channel"]["id"])
        oldest = f"{since.timestamp() - 60:.6f}"
        cursor: str | None = None
        for _ in range(5):
            page = await self.client.conversations_history(
                channel=channel, oldest=oldest, limit=200, include_all_metadata=True, cursor=cursor
            )
            for message in page.get("messages") or []:
                if post.is_it(message):
                    return MessageRef(channel=channel, ts=str(message["ts"]))
            cursor = (page.get("response_metadata") or {}).get("next_cursor") or None
            if not cursor:
                break
        return None

    async def post_ephemeral(
        self, channel: str, user: str, text: str, blocks: Sequence[dict[str, Any]] | None = None
    ) -> None:
        await self.client.chat_postEphemeral(
            channel=channel, user=user, text=text, blocks=list(blocks) if blocks else None
        )


class SlackDirectory:
    """Group and channel membership and admin flags, cached briefly.

    A short cache keeps a burst of permission checks cheap while someone removed from a
    group loses access within `ttl` seconds.
    """

    def __init__(
        self,
        client: AsyncWebClient,
        ttl: float = 30.0,
        for_team: Callable[[str], AsyncWebClient] | None = None,
    ) -> None:
        self.client = client
        self.ttl = ttl
        # Many workspaces: each question asked with the token of the team it is about.
        self.for_team = for_team or (lambda team_id: client)
        self._cache: dict[tuple[str, str, str], tuple[float, Any]] = {}

    def _cached(self, key: tuple[str, str, str]) -> Any:
        hit = self._cache.get(key)
        if hit and time.monotonic() - hit[0] < self.ttl:
            return hit[1]
        return None

    def _store(self, key: tuple[str, str, str], value: Any) -> Any:
        self._cache[key] = (time.monotonic(), value)
        return value

    def invalidate(self) -> None:
        self._cache.clear()

    async def usergroup_members(self, team_id: str, group_id: str) -> frozenset[str]:
        key = (team_id, "group", group_id)
        cached = self._cached(key)
        if cached is not None:
            return frozenset(cached)
        try:
            response = await self.for_team(team_id).usergroups_users_list(usergroup=group_id)
            users = frozenset(response.get("users") or [])
        except SlackApiError:
            users = frozenset()
        return frozenset(self._store(key, users))

    async def channel_members(self, team_id: str, channel_id: str) -> frozenset[str]:
        key = (team_id, "channel", channel_id)
        cached = self._cached(key)
        if cached is not None:
            return frozenset(cached)
        members: set[str] = set()
        cursor: str | None = None
        try:
            while True:
                response = await self.for_team(team_id).conversations_members(
                    channel=channel_id, limit=200, cursor=cursor
                )
                members.update(response.get("members") or [])
                cursor = (response.get("response_metadata") or {}).get("next_cursor") or None
                if not cursor:
                    break
        except SlackApiError:
            members = set()
        return frozenset(self._store(key, frozenset(members)))

    async def is_workspace_admin(self, team_id: str, user_id: str) -> bool:
        key = (team_id, "admin", user_id)
        cached = self._cached(key)
        if cached is not None:
            return bool(cached)
        try:
            response = await self.for_team(team_id).users_info(user=user_id)
            user = response.get("user") or {}
            admin = bool(user.get("is_admin") or user.get("is_owner"))
        except SlackApiError:
            admin = False
        return bool(self._store(key, admin))

    async def resolve_channel(self, team_id: str, channel: str) -> str:
        """`<#C1|name>` → C1; `#name` and ids pass through (chat.postMessage takes both)."""
        channel = channel.strip()
        if channel.startswith("<#") and channel.endswith(">"):
            return channel[2:-1].split("|", 1)[0]
        return channel

    async def channel_id(self, team_id: str, name: str) -> str | None:
        """Through `conversations.list` (the channels the bot can see), cached like
        membership. Used where an id is needed (a channel's members), not for posting."""
        key = (team_id, "name", name)
        cached = self._cached(key)
        if cached is not None:
            return str(cached) or None
        found = ""
        cursor: str | None = None
        try:
            while not found:
                response = await self.client.conversations_list(
                    types="public_channel,private_channel",
                    exclude_archived=True,
                    limit=1000,
                    cursor=cursor,
                )
                for item in response.get("channels") or []:
                    if item.get("name") == name:
                        found = str(item.get("id") or "")
                cursor = (response.get("response_metadata") or {}).get("next_cursor") or None
                if not cursor:
                    break
        except SlackApiError:  # a missing scope, rate limited: not found, not cached
            return None
        return str(self._store(key, found)) or None

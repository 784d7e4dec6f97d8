"""`flows.triggers.ChannelNames` on Slack's Web API: the channel names triggers compare."""

from __future__ import annotations

import logging
import time

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

log = logging.getLogger(__name__)


class SlackChannelNames:
    """`flows.triggers.ChannelNames` through `conversations.info`, cached a few minutes
    (a renamed channel matches its new name after `ttl` seconds at most)."""

    def __init__(self, client: AsyncWebClient, ttl: float = 300.0, miss_ttl: float = 30.0):
        self.client = client
        self.ttl = ttl
        self.miss_ttl = miss_ttl
        self._cache: dict[tuple[str, str], tuple[float, str | None]] = {}

    async def channel_name(self, team_id: str, channel_id: str) -> str | None:
        key = (team_id, channel_id)
        hit = self._cache.get(key)
        if hit is not None:
            age = time.monotonic() - hit[0]
            if age < (self.ttl if hit[1] is not None else self.miss_ttl):
                return hit[1]
        try:
            response = await self.client.conversations_info(channel=channel_id)
            name = (response.get("channel") or {}).get("name")
        except SlackApiError as exc:
            log.info("conversations.info %s failed: %s", channel_id, exc.response.get("error"))
            name = None
        if len(self._cache) > 10_000:
            self._cache.clear()
        self._cache[key] = (time.monotonic(), str(name) if name else None)
        return str(name) if name else None

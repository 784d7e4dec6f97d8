"""`flows.slack_actions.SlackActions` on Slack's Web API: the calls of the Slack action
steps, with Slack's refusals raised as `SlackRefused` (the step words them)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.web.async_slack_response import AsyncSlackResponse

from adapters.slack import ChannelTurns
from flows.slack_actions import ChannelInfo, SlackRefused, SlackUser


def _info(channel: dict[str, Any]) -> ChannelInfo:
    return ChannelInfo(
        id=str(channel["id"]),
        name=str(channel.get("name") or ""),
        is_private=bool(channel.get("is_private")),
        is_member=bool(channel.get("is_member", True)),
    )


class SlackActionsApi:
    def __init__(self, client: AsyncWebClient, turns: ChannelTurns | None = None) -> None:
        self.client = client
        self.turns = turns or ChannelTurns()
        self._bot_user: str | None = None

    async def _call(
        self, method: str, call: Callable[..., Awaitable[AsyncSlackResponse]], **kwargs: Any
    ) -> AsyncSlackResponse:
        try:
            return await call(**kwargs)
        except SlackApiError as exc:
            code = exc.response.get("error") if exc.response is not None else None
            raise SlackRefused(method, str(code or "request_failed")) from None

    async def update_message(
        self, channel: str, ts: str, text: str, blocks: Sequence[dict[str, Any]] | None
    ) -> None:
        async with self.turns.turn(channel):
            await self._call(
                "chat.update",
                self.client.chat_update,
                channel=channel,
                ts=ts,
                text=text,
                blocks=list(blocks) if blocks else [],
            )

    async def add_reaction(self, channel: str, ts: str, name: str) -> None:
        await self._call(
            "reactions.add", self.client.reactions_add, channel=channel, timestamp=ts, name=name
        )

    async def create_channel(self, name: str, private: bool) -> ChannelInfo:
        response = await self._call(
            "conversations.create", self.client.conversations_create, name=name, is_private=private
        )
        return _info(response["channel"])

    async def _pages(self) -> AsyncIterator[dict[str, Any]]:
        cursor: str | None = None
        while True:
            response = await self._call(
                "conversations.list",
                self.client.conversations_list,
                types="public_channel,private_channel",
                exclude_archived=True,
                limit=1000,
                cursor=cursor,
            )
            for channel in response.get("channels") or []:
                yield channel
            cursor = (response.get("response_metadata") or {}).get("next_cursor") or None
            if not cursor:
                return

    async def find_channel(self, name: str) -> ChannelInfo | None:
        async for channel in self._pages():
            if channel.get("name") == name:
                return _info(channel)
        return None

    async def join_channel(self, channel: str) -> None:
        await self._call("conversations.join", self.client.conversations_join, channel=channel)

    async def channel_members(self, channel: str) -> frozenset[str]:
        members: set[str] = set()
        cursor: str | None = None
        while True:
            response = await self._call(
                "conversations.members",
                self.client.conversations_members,
                channel=channel,
                limit=1000,
                cursor=cursor,
            )
            members.update(response.get("members") or [])
            cursor = (response.get("response_metadata") or {}).get("next_cursor") or None
            if not cursor:
                return frozenset(members)

    async def _bot(self) -> str:
        if self._bot_user is None:
            response = await self._call("auth.test", self.client.auth_test)
            self._bot_user = str(response["user_id"])
        return self._bot_user

    async def invite(self, channel: str, users: Sequence[str]) -> None:
        bot = await self._bot()
        people = [u for u in users if u != bot]  # the bot is in already (cant_invite_self)
        for start in range(0, len(people), 1000):  # Slack takes up to 1000 at a time
            await self._call(
                "conversations.invite",
                self.client.conversations_invite,
                channel=channel,
                users=people[start : start + 1000],
            )

    async def set_topic(self, channel: str, topic: str) -> None:
        await self._call(
            "conversations.setTopic",
            self.client.conversations_setTopic,
            channel=channel,
            topic=topic,
        )

    async def lookup_by_email(self, email: str) -> SlackUser:
        response = await self._call(
            "users.lookupByEmail", self.client.users_lookupByEmail, email=email
        )
        user = response["user"]
        profile = user.get("profile") or {}
        return SlackUser(
            id=str(user["id"]),
            name=str(user.get("name") or ""),
            real_name=str(user.get("real_name") or profile.get("real_name") or ""),
            tz=user.get("tz"),
            email=profile.get("email"),
        )

"""The port the Slack action steps (SPEC §13) use, and how Slack's refusals read as step
errors. `adapters/slack_actions.py` implements it on the Web API; the executors are in
`flows/slack_steps.py`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol


@dataclass(frozen=True)
class ChannelInfo:
    id: str
    name: str
    is_private: bool = False
    is_member: bool = True


@dataclass(frozen=True)
class SlackUser:
    id: str
    name: str
    real_name: str
    tz: str | None
    email: str | None


class SlackRefused(Exception):
    """Slack answered `{"ok": false, "error": code}` to `method`."""

    def __init__(self, method: str, code: str) -> None:
        super().__init__(f"{method}: {code}")
        self.method = method
        self.code = code


class SlackActions(Protocol):
    """What the Slack action steps ask of Slack. Every method raises `SlackRefused`."""

    async def update_message(
        self, channel: str, ts: str, text: str, blocks: Sequence[dict[str, Any]] | None
    ) -> None: ...

    async def add_reaction(self, channel: str, ts: str, name: str) -> None: ...

    async def create_channel(self, name: str, private: bool) -> ChannelInfo: ...

    async def find_channel(self, name: str) -> ChannelInfo | None:
        """A channel the bot can see, by name (public ones, and private ones it is in)."""
        ...

    async def join_channel(self, channel: str) -> None: ...

    async def channel_members(self, channel: str) -> frozenset[str]:
        """Who is in the channel now (not cached: a step compares before inviting)."""
        ...

    async def invite(self, channel: str, users: Sequence[str]) -> None: ...

    async def set_topic(self, channel: str, topic: str) -> None: ...

    async def lookup_by_email(self, email: str) -> SlackUser: ...


# Slack's error codes → what a flow's owner should read (and can do about it).
_WORDS: dict[str, str] = {
    "channel_not_found": "Slack has no channel {channel} that the bot can see",
    "not_in_channel": "the bot is not in {channel}: add it with /invite @Flowbot there",
    "is_archived": "{channel} is archived",
    "message_not_found": "there is no message {ts} in {channel}",
    "cant_update_message": "the message {ts} was not posted by the bot, so it cannot be edited",
    "edit_window_closed": "the message {ts} is too old to be edited",
    "name_taken": "a channel named #{name} already exists (set if_exists: use to use it)",
    "invalid_name_specials": "#{name} is not a valid channel name",
    "invalid_name": "#{name} is not a valid channel name",
    "invalid_name_maxlength": "#{name} is longer than 80 characters",
    "restricted_action": "the workspace does not let the bot do this ({method})",
    "users_not_found": "no one in this workspace has the email {email}",
    "user_not_found": "one of the people is not in this workspace",
    "user_is_restricted": "a guest cannot be invited to {channel}",
    "cant_invite": "someone cannot be invited to {channel}",
    "invalid_name_reaction": "Slack has no emoji :{emoji}:",
    "too_many_reactions": "the message has too many reactions already",
    "too_long": "the topic is longer than Slack allows (250 characters)",
    "missing_scope": "the app is missing a permission for {method}: reinstall it with the "
    "scopes in slack-manifest.yml",
    "ratelimited": "Slack is rate limiting {method}; try again later",
}
_FIELDS: dict[str, str] = {
    "channel_not_found": "channel",
    "not_in_channel": "channel",
    "is_archived": "channel",
    "message_not_found": "ts",
    "cant_update_message": "ts",
    "edit_window_closed": "ts",
    "name_taken": "name",
    "invalid_name_specials": "name",
    "invalid_name": "name",
    "invalid_name_maxlength": "name",
    "users_not_found": "email",
    "user_not_found": "users",
    "user_is_restricted": "users",
    "cant_invite": "users",
    "invalid_name_reaction": "emoji",
    "too_long": "topic",
}


class _Blank(dict[str, str]):
    def __missing__(self, key: str) -> str:
        return "?"


def slack_words(refused: SlackRefused, **context: str) -> tuple[str, str | None]:
    """The message and the step field for a refusal (`invalid_name` of reactions.add is
    about the emoji, of conversations.create about the name)."""
    code = refused.code
    if code == "invalid_name" and refused.method == "reactions.add":
        code = "invalid_name_reaction"
    if code.startswith("invalid_name_") and code not in _WORDS:
        code = "invalid_name"
    template = _WORDS.get(code)
    if template is None:
        return f"Slack refused {refused.method}: {refused.code}", None
    values = _Blank(context, method=refused.method)
    return template.format_map(values), _FIELDS.get(code)

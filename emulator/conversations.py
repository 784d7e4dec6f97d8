"""Slack's channel, reaction and membership methods for the emulator, with Slack's own
error codes: reactions.add, conversations.create, .invite, .setTopic, .list and .join.

State lives where tests read it: a message's `reactions` (`[{name, users, count}]`, as
Slack returns them), a channel's `members`, `topic` (`{value, creator, last_set}`),
`creator`, `is_private` and `is_member` (whether the bot is in it).
"""

from __future__ import annotations

import base64
import re
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from emulator.server import JSON, SlackError, truthy

if TYPE_CHECKING:
    from emulator.server import SlackEmulator

_NAME_OK = re.compile(r"[a-z0-9_\-]+")
_EMOJI = re.compile(r"[a-z0-9_+'\-]+(?:::skin-tone-[2-6])?")
TOPIC_MAX = 250
NAME_MAX = 80


def _split(value: Any) -> list[str]:
    items = value.split(",") if isinstance(value, str) else list(value or [])
    return [str(u).strip() for u in items if str(u).strip()]


class ConversationMethods:
    """Mounted by `SlackEmulator`: `methods()` are added to its Web API."""

    def __init__(self, emulator: SlackEmulator) -> None:
        self.emu = emulator
        # Emoji names Slack does not know (reactions.add answers invalid_name).
        self.unknown_emoji: set[str] = {"not_an_emoji"}

    def methods(self) -> dict[str, Callable[[JSON], JSON]]:
        return {
            "reactions.add": self.reactions_add,
            "conversations.create": self.create,
            "conversations.invite": self.invite,
            "conversations.setTopic": self.set_topic,
            "conversations.list": self.list,
            "conversations.join": self.join,
        }

    # ---------------------------------------------------------------- helpers

    def _channel(self, ref: Any, *, member: bool = True) -> JSON:
        """A channel the bot can act in: private ones it is not in are invisible."""
        channel = self.emu.channels[self.emu.resolve_channel(ref)]
        if channel.get("is_private") and not channel.get("is_member"):
            raise SlackError("channel_not_found")
        if channel.get("is_archived"):
            raise SlackError("is_archived")
        if member and not channel.get("is_member"):
            raise SlackError("not_in_channel")
        return channel

    def reactions(self, channel: str, ts: str) -> dict[str, list[str]]:
        """Emoji name → who reacted, for a stored message (for tests)."""
        msg = self.emu.find_message(self.emu.resolve_channel(channel), ts) or {}
        return {r["name"]: list(r["users"]) for r in msg.get("reactions", [])}

    # ---------------------------------------------------------------- methods

    def reactions_add(self, p: JSON) -> JSON:
        channel = self._channel(p.get("channel"), member=False)
        msg = self.emu.find_message(channel["id"], p.get("timestamp"))
        if msg is None:
            raise SlackError("message_not_found")
        name = str(p.get("name") or "")
        if not _EMOJI.fullmatch(name) or name in self.unknown_emoji:
            raise SlackError("invalid_name")
        reactions: list[JSON] = msg.setdefault("reactions", [])
        found = next((r for r in reactions if r["name"] == name), None)
        if found is None:
            found = {"name": name, "users": [], "count": 0}
            reactions.append(found)
        if self.emu.bot_user_id in found["users"]:
            raise SlackError("already_reacted")
        if len(reactions) > 50:
            raise SlackError("too_many_reactions")
        found["users"].append(self.emu.bot_user_id)
        found["count"] = len(found["users"])
        return {}

    def _check_name(self, name: str) -> None:
        if not name:
            raise SlackError("invalid_name_required")
        if len(name) > NAME_MAX:
            raise SlackError("invalid_name_maxlength")
        if not _NAME_OK.fullmatch(name):
            raise SlackError("invalid_name_specials")
        if not re.search(r"[a-z0-9]", name):
            raise SlackError("invalid_name_punctuation")
        if any(c.get("name") == name for c in self.emu.channels.values()):
            raise SlackError("name_taken")

    def create(self, p: JSON) -> JSON:
        name = str(p.get("name") or "")
        self._check_name(name)
        private = truthy(p.get("is_private"))
        prefix = "G" if private else "C"
        cid = f"{prefix}0NEW{len(self.emu.channels) + 1:05d}"
        while cid in self.emu.channels:
            cid += "X"
        channel = self.emu.add_channel(cid, name, [self.emu.bot_user_id], is_private=private)
        channel["creator"] = self.emu.bot_user_id
        channel["topic"] = {"value": "", "creator": "", "last_set": 0}
        return {"channel": {k: v for k, v in channel.items() if k != "members"}}

    def invite(self, p: JSON) -> JSON:
        channel = self._channel(p.get("channel"))
        users = _split(p.get("users"))
        if not users:
            raise SlackError("no_user")
        if len(users) > 1000:
            raise SlackError("too_many_users")
        errors: list[JSON] = []
        for user in users:
            error = None
            if user == self.emu.bot_user_id:
                error = "cant_invite_self"
            elif user in channel["members"]:
                error = "already_in_channel"
            else:
                try:
                    self.emu.get_user(user)
                except SlackError:
                    error = "user_not_found"
            if error:
                errors.append({"user": user, "ok": False, "error": error})
        if errors and not truthy(p.get("force")):
            raise SlackError(errors[0]["error"], errors=errors)
        bad = {e["user"] for e in errors}
        channel["members"].extend(u for u in users if u not in bad)
        info = {k: v for k, v in channel.items() if k != "members"}
        return {"channel": info, **({"errors": errors} if errors else {})}

    def set_topic(self, p: JSON) -> JSON:
        channel = self._channel(p.get("channel"))
        topic = str(p.get("topic") or "")
        if len(topic) > TOPIC_MAX:
            raise SlackError("too_long")
        channel["topic"] = {
            "value": topic,
            "creator": self.emu.bot_user_id,
            "last_set": int(time.time()),
        }
        return {"channel": {k: v for k, v in channel.items() if k != "members"}}

    def join(self, p: JSON) -> JSON:
        channel = self._channel(p.get("channel"), member=False)
        if channel.get("is_private") or channel.get("is_im"):
            raise SlackError("method_not_supported_for_channel_type")
        channel["is_member"] = True
        if self.emu.bot_user_id not in channel["members"]:
            channel["members"].append(self.emu.bot_user_id)
        return {"channel": {k: v for k, v in channel.items() if k != "members"}}

    def list(self, p: JSON) -> JSON:
        types = set(_split(p.get("types") or "public_channel"))
        out = []
        for channel in self.emu.channels.values():
            if channel.get("is_im") or channel.get("is_mpim"):
                continue
            private = bool(channel.get("is_private"))
            if ("private_channel" if private else "public_channel") not in types:
                continue
            if private and not channel.get("is_member"):
                continue
            if channel.get("is_archived") and truthy(p.get("exclude_archived")):
                continue
            out.append({k: v for k, v in channel.items() if k != "members"})
        try:
            limit = min(max(int(p.get("limit") or 100), 1), 1000)
            cursor = p.get("cursor")
            offset = int(base64.b64decode(cursor).decode().split(":")[1]) if cursor else 0
        except (ValueError, IndexError) as exc:
            raise SlackError("invalid_cursor") from exc
        end = offset + limit
        more = end < len(out)
        next_cursor = base64.b64encode(f"offset:{end}".encode()).decode() if more else ""
        return {"channels": out[offset:end], "response_metadata": {"next_cursor": next_cursor}}

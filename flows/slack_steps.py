"""Executors of the Slack action steps (SPEC §13): update_message, add_reaction,
create_channel, invite_to_channel, set_channel_topic, lookup_user. None of them waits.
Slack's refusals become step errors worded by `flows.slack_actions.slack_words`."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from flows.definition import (
    AddReactionStep,
    CreateChannelStep,
    InviteToChannelStep,
    LookupUserStep,
    SetChannelTopicStep,
    UpdateMessageStep,
    normalise_channel_name,
)
from flows.ports import Directory
from flows.retries import SLACK_TRANSIENT
from flows.run_model import Done, ExecutorRegistry, Outcome, StepContext, StepFailed
from flows.slack_actions import SlackActions, SlackRefused, slack_words
from flows.slack_ids import (
    CHANNEL_NAME,
    mention,
    parse_channel,
    parse_principal,
    principal_kind,
    split_principals,
)

_TS = re.compile(r"\d+\.\d+")
_EMOJI = re.compile(r"[a-z0-9_+'\-]+(?:::skin-tone-[2-6])?")


def refused(exc: SlackRefused, **context: str) -> StepFailed:
    message, field = slack_words(exc, **context)
    # Slack's rate limits and server errors pass: a step with `retry` tries again.
    return StepFailed(message, field, transient=exc.code in SLACK_TRANSIENT)


async def message_ts(ctx: StepContext, field: str, source: str) -> str:
    ts = (await ctx.text(field, source)).strip()
    if not _TS.fullmatch(ts):
        raise StepFailed(f"{ts!r} is not a message ts (such as 1700000000.000100)", field)
    return ts


class _Base:
    def __init__(self, actions: SlackActions) -> None:
        self.actions = actions

    async def resume(self, step: Any, ctx: StepContext, payload: Mapping[str, Any]) -> Outcome:
        raise StepFailed(f"a {step.type} step does not wait, so it cannot be resumed")

    async def channel(self, ctx: StepContext, source: str, field: str = "channel") -> str:
        """A channel id from `<#C…>`, `C…` or `#name` (looked up among those the bot sees)."""
        raw = (await ctx.text(field, source)).strip()
        found = parse_channel(raw, allow_dm=True)
        if found:
            return found
        if CHANNEL_NAME.fullmatch(raw) or re.fullmatch(r"[a-z0-9_\-]{1,80}", raw):
            try:
                info = await self.actions.find_channel(raw.lstrip("#"))
            except SlackRefused as exc:
                raise refused(exc, channel=raw) from None
            if info is not None:
                return info.id
            raise StepFailed(f"Slack has no channel {raw} that the bot can see", field)
        raise StepFailed(f"{raw!r} is not a channel (expected #name, an id or <#C…>)", field)


class UpdateMessageExecutor(_Base):
    async def execute(self, step: UpdateMessageStep, ctx: StepContext) -> Outcome:
        channel = await self.channel(ctx, step.channel)
        ts = await message_ts(ctx, "ts", step.ts)
        text = await ctx.text("text", step.text)
        blocks = await ctx.native("blocks", step.blocks) if step.blocks else None
        if blocks is not None and not (
            isinstance(blocks, list) and all(isinstance(b, dict) for b in blocks)
        ):
            raise StepFailed("expected a list of Block Kit blocks", "blocks")
        if not text.strip() and not blocks:
            raise StepFailed("the message is empty", "text")
        try:
            await self.actions.update_message(channel, ts, text or "(message)", blocks)
        except SlackRefused as exc:
            raise refused(exc, channel=mention(channel), ts=ts) from None
        return Done({"channel": channel, "ts": ts, "text": text})


class AddReactionExecutor(_Base):
    async def execute(self, step: AddReactionStep, ctx: StepContext) -> Outcome:
        channel = await self.channel(ctx, step.channel)
        ts = await message_ts(ctx, "ts", step.ts)
        emoji = (await ctx.text("emoji", step.emoji)).strip().strip(":").lower()
        if not _EMOJI.fullmatch(emoji):
            raise StepFailed(f"{emoji!r} is not an emoji name", "emoji")
        already = False
        try:
            await self.actions.add_reaction(channel, ts, emoji)
        except SlackRefused as exc:
            if exc.code != "already_reacted":
                raise refused(exc, channel=mention(channel), ts=ts, emoji=emoji) from None
            already = True
        return Done({"channel": channel, "ts": ts, "emoji": emoji, "already": already})


class CreateChannelExecutor(_Base):
    async def execute(self, step: CreateChannelStep, ctx: StepContext) -> Outcome:
        raw = await ctx.text("name", step.name)
        name = normalise_channel_name(raw)
        if not name:
            raise StepFailed(f"{raw!r} has no letter or digit to make a channel name from", "name")
        try:
            info = await self.actions.create_channel(name, step.private)
            return Done({"channel": info.id, "name": info.name, "created": True})
        except SlackRefused as exc:
            if exc.code != "name_taken" or step.if_exists != "use":
                raise refused(exc, name=name) from None
        return Done(await self._existing(name))

    async def _existing(self, name: str) -> dict[str, Any]:
        try:
            info = await self.actions.find_channel(name)
            if info is not None and not info.is_member and not info.is_private:
                await self.actions.join_channel(info.id)
        except SlackRefused as exc:
            raise refused(exc, name=name, channel=f"#{name}") from None
        if info is None:
            raise StepFailed(
                f"#{name} exists but the bot cannot see it (a private channel it is not in, "
                "or an archived one)",
                "name",
            )
        return {"channel": info.id, "name": info.name, "created": False}


class InviteToChannelExecutor(_Base):
    def __init__(self, actions: SlackActions, directory: Directory) -> None:
        super().__init__(actions)
        self.directory = directory

    async def _people(self, ctx: StepContext, step: InviteToChannelStep) -> list[str]:
        people: list[str] = []
        rendered = [await ctx.text(f"users[{i}]", u) for i, u in enumerate(step.users)]
        for token in split_principals(rendered):
            principal = parse_principal(token)
            kind = principal_kind(principal) if principal else None
            if principal is None or kind == "channel":
                raise StepFailed(f"{token!r} is not a person or a user group", "users")
            if kind == "group":
                members = await self.directory.usergroup_members(ctx.team_id, principal)
                if not members:
                    raise StepFailed(
                        f"the user group {mention(principal)} has no members (or does not exist)",
                        "users",
                    )
                people.extend(sorted(members))
            else:
                people.append(principal)
        return list(dict.fromkeys(people))

    async def execute(self, step: InviteToChannelStep, ctx: StepContext) -> Outcome:
        channel = await self.channel(ctx, step.channel)
        people = await self._people(ctx, step)
        if not people:
            raise StepFailed("no one to invite", "users")
        where = mention(channel)
        try:
            members = await self.actions.channel_members(channel)
        except SlackRefused as exc:
            raise refused(exc, channel=where) from None
        invite = [p for p in people if p not in members]
        try:
            if invite:
                await self.actions.invite(channel, invite)
        except SlackRefused as exc:
            # Someone joined in between: they are in, which is what was asked.
            if exc.code != "already_in_channel":
                raise refused(exc, channel=where) from None
        already = [p for p in people if p in members]
        return Done({"channel": channel, "invited": invite, "already_in": already})


class SetChannelTopicExecutor(_Base):
    async def execute(self, step: SetChannelTopicStep, ctx: StepContext) -> Outcome:
        channel = await self.channel(ctx, step.channel)
        topic = (await ctx.text("topic", step.topic)).strip()
        if len(topic) > 250:
            raise StepFailed(f"the topic has {len(topic)} characters; Slack allows 250", "topic")
        try:
            await self.actions.set_topic(channel, topic)
        except SlackRefused as exc:
            raise refused(exc, channel=mention(channel)) from None
        return Done({"channel": channel, "topic": topic})


class LookupUserExecutor(_Base):
    no_outside_effect = True  # a read: its result rides along with the run's next write

    async def execute(self, step: LookupUserStep, ctx: StepContext) -> Outcome:
        email = (await ctx.text("email", step.email)).strip()
        if "@" not in email:
            raise StepFailed(f"{email!r} is not an email address", "email")
        try:
            user = await self.actions.lookup_by_email(email)
        except SlackRefused as exc:
            raise refused(exc, email=email) from None
        return Done(
            {
                "user": user.id,
                "name": user.name,
                "real_name": user.real_name,
                "tz": user.tz,
                "email": user.email or email,
            }
        )


def register_slack_steps(
    executors: ExecutorRegistry, actions: SlackActions, directory: Directory
) -> None:
    executors.register("update_message", UpdateMessageExecutor(actions))
    executors.register("add_reaction", AddReactionExecutor(actions))
    executors.register("create_channel", CreateChannelExecutor(actions))
    executors.register("invite_to_channel", InviteToChannelExecutor(actions, directory))
    executors.register("set_channel_topic", SetChannelTopicExecutor(actions))
    executors.register("lookup_user", LookupUserExecutor(actions))

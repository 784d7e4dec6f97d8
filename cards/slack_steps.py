"""How `/flow show` summarises the Slack action steps (plain text; the caller escapes)."""

from __future__ import annotations

from typing import Any

from flows.definition import (
    AddReactionStep,
    CreateChannelStep,
    InviteToChannelStep,
    LookupUserStep,
    PostMessageStep,
    SetChannelTopicStep,
    UpdateMessageStep,
)


def _post(step: PostMessageStep) -> str:
    if not step.thread_ts:
        return f"post in {step.channel}"
    also = " (also in the channel)" if step.reply_broadcast else ""
    return f"reply in {step.channel}, thread {step.thread_ts}{also}"


def _create(step: CreateChannelStep) -> str:
    kind = "private channel" if step.private else "channel"
    reuse = ", or use it if it exists" if step.if_exists == "use" else ""
    return f"create {kind} #{step.name}{reuse}"


_SUMMARIES: dict[type[Any], Any] = {
    PostMessageStep: _post,
    UpdateMessageStep: lambda s: f"update message {s.ts} in {s.channel}",
    AddReactionStep: lambda s: f"react :{s.emoji.strip(':')}: to {s.ts} in {s.channel}",
    CreateChannelStep: _create,
    InviteToChannelStep: lambda s: f"invite {', '.join(s.users)} to {s.channel}",
    SetChannelTopicStep: lambda s: f"set the topic of {s.channel}: {s.topic}",
    LookupUserStep: lambda s: f"look up the person with email {s.email}",
}


def slack_step_summary(step: Any) -> str | None:
    """The summary of a Slack action step (and of a thread reply), or None."""
    summary = _SUMMARIES.get(type(step))
    return str(summary(step)) if summary else None

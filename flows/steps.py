"""The built-in step executors (SPEC §3): post_message, send_dm, condition, delay and
set_variable. `approval` and `http_request` come with their own areas, which register
their executors in the same `ExecutorRegistry`.

Messages a run posts carry Slack message metadata naming the run and its depth
(`flows.triggers.run_message_metadata`), so a flow they trigger continues the chain's depth.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from typing import Any

from flows.control import ForEachExecutor, ParallelExecutor, SwitchExecutor
from flows.definition import (
    ConditionStep,
    DelayStep,
    PostMessageStep,
    SendDmStep,
    SetVariableStep,
)
from flows.ports import Directory, Messenger
from flows.post_recovery import find_earlier_post
from flows.run_model import Done, ExecutorRegistry, Outcome, Park, StepContext, StepFailed
from flows.slack_ids import CONVERSATION_MENTION, USER_ID, USER_MENTION
from flows.triggers import run_message_metadata
from flows.try_step import TryExecutor


class _Instant:
    """Executors of steps that never park: a resume is a bug in the caller."""

    async def resume(self, step: Any, ctx: StepContext, payload: Mapping[str, Any]) -> Outcome:
        raise StepFailed(f"a {step.type} step does not wait, so it cannot be resumed")


async def _blocks(
    ctx: StepContext, blocks: list[dict[str, Any]] | None
) -> list[dict[str, Any]] | None:
    if not blocks:
        return None
    rendered = await ctx.native("blocks", blocks)
    if not isinstance(rendered, list) or not all(isinstance(b, dict) for b in rendered):
        raise StepFailed("expected a list of Block Kit blocks", "blocks")
    return rendered


def _fallback_text(text: str, blocks: list[dict[str, Any]] | None) -> str:
    if text.strip():
        return text
    if blocks:
        return "(message)"
    raise StepFailed("the message is empty", "text")


class PostMessageExecutor(_Instant):
    """Posts in a channel; outputs `channel`, `ts` and `text`. A channel the bot can't
    post to fails the step with Slack's error."""

    def __init__(self, messenger: Messenger, directory: Directory) -> None:
        self.messenger = messenger
        self.directory = directory

    async def execute(self, step: PostMessageStep, ctx: StepContext) -> Outcome:
        target = (await ctx.text("channel", step.channel)).strip()
        if not target:
            raise StepFailed("the channel is empty", "channel")
        mention = CONVERSATION_MENTION.fullmatch(target)
        if mention:
            channel = mention.group(1)
        else:
            user = USER_MENTION.fullmatch(target)
            channel = (
                user.group(1) if user else await self.directory.resolve_channel(ctx.team_id, target)
            )
        text = await ctx.text("text", step.text)
        blocks = await _blocks(ctx, step.blocks)
        thread_ts = (await ctx.text("thread_ts", step.thread_ts)).strip() or None
        if thread_ts is not None and not re.fullmatch(r"\d+\.\d+", thread_ts):
            raise StepFailed(f"{thread_ts!r} is not a message ts", "thread_ts")
        message = _fallback_text(text, blocks)
        # A reply in a thread is not in the channel's history: only top-level posts are
        # looked up after a crash.
        ref = None if thread_ts else await find_earlier_post(self.messenger, channel, message, ctx)
        if ref is None:
            ref = await self.messenger.post_message(
                channel,
                message,
                blocks,
                metadata=run_message_metadata(ctx.run),
                thread_ts=thread_ts,
                reply_broadcast=step.reply_broadcast,
            )
        output = {"channel": ref.channel, "ts": ref.ts, "text": text}
        return Done({**output, "thread_ts": thread_ts} if thread_ts else output)


class SendDmExecutor(_Instant):
    """A direct message from the bot; outputs `user`, `channel` and `ts`."""

    def __init__(self, messenger: Messenger) -> None:
        self.messenger = messenger

    async def execute(self, step: SendDmStep, ctx: StepContext) -> Outcome:
        raw = (await ctx.text("user", step.user)).strip()
        mention = USER_MENTION.fullmatch(raw)
        user = mention.group(1) if mention else raw
        if not USER_ID.fullmatch(user):
            raise StepFailed(f"{raw!r} is not a user", "user")
        text = await ctx.text("text", step.text)
        blocks = await _blocks(ctx, step.blocks)
        message = _fallback_text(text, blocks)
        ref = await find_earlier_post(self.messenger, user, message, ctx)
        if ref is None:
            metadata = run_message_metadata(ctx.run)
            ref = await self.messenger.send_dm(user, message, blocks, metadata=metadata)
        return Done({"user": user, "channel": ref.channel, "ts": ref.ts, "text": text})


class ConditionExecutor(_Instant):
    """Evaluates `if`; records the branch taken (`then` or `else`) so that a resumed run
    follows the same path."""

    no_outside_effect = True  # its result rides along with the run's next write

    async def execute(self, step: ConditionStep, ctx: StepContext) -> Outcome:
        result = await ctx.is_true("if", step.if_)
        return Done({"result": result, "branch": "then" if result else "else"})

    def children(self, step: ConditionStep, output: Mapping[str, Any]) -> Sequence[Any]:
        return step.then if output.get("branch") == "then" else step.else_


def _parse_until(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise StepFailed(
            f"expected an ISO date-time like 2024-05-31T09:00:00+02:00, got {text!r}", "until"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


class DelayExecutor:
    """Parks the run until the time comes (durable: the run is stored as waiting)."""

    no_outside_effect = True  # its result rides along with the run's next write

    async def execute(self, step: DelayStep, ctx: StepContext) -> Outcome:
        now = ctx.now()
        if step.duration is not None:
            delta = step.duration_delta
            assert delta is not None
            wake_at = now + delta
        else:
            wake_at = _parse_until(await ctx.text("until", step.until))
        if wake_at <= now:
            return Done({"until": wake_at.isoformat(), "waited": 0})
        return Park(wake_at=wake_at, waiting_for="delay", output={"until": wake_at.isoformat()})

    async def resume(
        self, step: DelayStep, ctx: StepContext, payload: Mapping[str, Any]
    ) -> Outcome:
        recorded = ctx.run.steps.get(ctx.step_id)
        until = recorded.output.get("until") if recorded else None
        wake_at = _parse_until(until) if isinstance(until, str) else ctx.run.wake_at
        if wake_at is None or ctx.now() >= wake_at:
            started = recorded.started_at if recorded else None
            waited = (ctx.now() - started).total_seconds() if started else 0
            return Done({"until": wake_at.isoformat() if wake_at else None, "waited": waited})
        # Woken early (not a timer, or a clock that lags): wait on.
        return Park(wake_at=wake_at, waiting_for="delay", output={"until": wake_at.isoformat()})


class SetVariableExecutor(_Instant):
    """`vars.<name>` = the value (a template keeps its native type)."""

    no_outside_effect = True  # its result rides along with the run's next write

    async def execute(self, step: SetVariableStep, ctx: StepContext) -> Outcome:
        value = await ctx.native("value", step.value)
        ctx.set_var(step.name, value)
        return Done({"name": step.name, "value": value})


def builtin_executors(messenger: Messenger, directory: Directory) -> ExecutorRegistry:
    """A registry with the built-in step types; other areas `register` theirs."""
    return ExecutorRegistry(
        {
            "post_message": PostMessageExecutor(messenger, directory),
            "send_dm": SendDmExecutor(messenger),
            "condition": ConditionExecutor(),
            "delay": DelayExecutor(),
            "set_variable": SetVariableExecutor(),
            "switch": SwitchExecutor(),
            "for_each": ForEachExecutor(),
            "parallel": ParallelExecutor(),
            "try": TryExecutor(),
        }
    )


__all__ = [
    "ConditionExecutor",
    "DelayExecutor",
    "PostMessageExecutor",
    "SendDmExecutor",
    "SetVariableExecutor",
    "builtin_executors",
]

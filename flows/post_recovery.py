"""Posting once across a crash.

When a run is picked up after its driver died (or was interrupted at a shutdown), a step
that was running (several, in parallel branches) may have posted already, just before the
crash, without being recorded. The steps such a drive starts before it records its first
step are "in doubt" (`StepContext.in_doubt`): the first unrecorded step, or one per
branch of a parallel group. Before posting,
`find_earlier_post` looks in the channel's recent history (Slack's conversations.history
with `include_all_metadata`) for a message carrying this run's metadata
(`flows.triggers.run_message_metadata`) with the same text that no recorded step of the
run posted, and the step takes that message instead of posting again. A reply in a
thread is not in the channel's history and is posted again.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

from flows.records import MessageRef
from flows.run_model import StepContext
from flows.triggers import METADATA_EVENT_TYPE

__all__ = ["PostFinder", "RunPost", "find_earlier_post"]

log = logging.getLogger(__name__)


@runtime_checkable
class PostFinder(Protocol):
    """A messenger that can look a run's post up in a channel (or a user's DM)."""

    async def find_run_post(
        self, channel: str, since: datetime, post: RunPost
    ) -> MessageRef | None:
        """The newest message since `since` in `channel` (a user id: their DM) that is
        `post` (see `RunPost.is_it`); None if there is none."""
        ...


@dataclass(frozen=True)
class RunPost:
    """What identifies a run's post: the run's metadata, its text, and a ts that no
    recorded step of the run has."""

    run_id: str
    text: str
    recorded: frozenset[str]

    def is_it(self, message: Mapping[str, Any]) -> bool:
        metadata = message.get("metadata")
        if not isinstance(metadata, Mapping) or metadata.get("event_type") != METADATA_EVENT_TYPE:
            return False
        payload = metadata.get("event_payload")
        return (
            isinstance(payload, Mapping)
            and payload.get("run_id") == self.run_id
            and message.get("text") == self.text
            and str(message.get("ts")) not in self.recorded
        )


async def find_earlier_post(
    messenger: Any, channel: str, text: str, ctx: StepContext
) -> MessageRef | None:
    """The message this step posted before a crash, if the step is in doubt and it can be
    found; None means: post it (now for the first time, as far as can be known)."""
    if not ctx.in_doubt or not isinstance(messenger, PostFinder):
        return None
    recorded = frozenset(
        str(r.output["ts"]) for r in ctx.run.steps.values() if isinstance(r.output.get("ts"), str)
    )
    since = ctx.run.started_at or ctx.run.created_at
    try:
        return await messenger.find_run_post(channel, since, RunPost(ctx.run.id, text, recorded))
    except Exception:
        # Not knowing is no reason to fail the run: post (at least once).
        log.warning("run %s: could not look for step %s's post", ctx.run.id, ctx.step_id)
        return None

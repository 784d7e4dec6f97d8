"""Hand-written fakes of the outgoing ports (`flows.ports`): deterministic and inspectable.

A unit test wires a use case with these and the stores of `flows.testing.memory`; no
HTTP, no database, no real time.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any, Literal

from flows.approval_model import ApprovalMessage, ApprovalRecord
from flows.records import MessageRef, RunRecord
from flows.run_model import RunEvent


class FakeClock:
    """`flows.ports.Clock` that moves only when a test says so."""

    def __init__(self, start: datetime | None = None) -> None:
        self.current = start or datetime(2026, 11, 2, 9, 0, tzinfo=timezone.utc)

    def now(self) -> datetime:
        return self.current

    def advance(self, delta: timedelta) -> None:
        self.current += delta


class SequentialIds:
    """`flows.ports.IdGenerator`: `R000001`, `R000002`, … (one counter for all prefixes)."""

    def __init__(self) -> None:
        self._counter = itertools.count(1)

    def new_id(self, prefix: str) -> str:
        return f"{prefix}{next(self._counter):06d}"


class SlackError(Exception):
    """What a Messenger raises for a channel it cannot post to (Slack's error code)."""

    def __init__(self, error: str) -> None:
        super().__init__(f"Slack error: {error}")
        self.error = error


@dataclass
class SentMessage:
    """One message the RecordingMessenger was asked to post (or post ephemerally)."""

    channel: str
    text: str
    ts: str
    blocks: list[dict[str, Any]] | None = None
    metadata: dict[str, Any] | None = None
    user: str | None = None  # the recipient of a DM or an ephemeral message
    ephemeral: bool = False
    updates: list[str] = field(default_factory=list)  # texts of later updates
    thread_ts: str | None = None  # a reply in this message's thread
    reply_broadcast: bool = False


class RecordingMessenger:
    """`flows.ports.Messenger` that keeps every message in `sent`, in order.

    DMs go to the channel `D<user id>`. Posting to a channel in `missing_channels`
    raises `SlackError("channel_not_found")`, as Slack does."""

    def __init__(self, missing_channels: Iterable[str] = ()) -> None:
        self.sent: list[SentMessage] = []
        self.missing_channels = set(missing_channels)
        self._ts = itertools.count(1)

    def _new_ts(self) -> str:
        return f"1700000000.{next(self._ts):06d}"

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
        if channel in self.missing_channels:
            raise SlackError("channel_not_found")
        message = SentMessage(
            channel=channel,
            text=text,
            ts=self._new_ts(),
            blocks=list(blocks) if blocks else None,
            metadata=dict(metadata) if metadata else None,
            thread_ts=thread_ts,
            reply_broadcast=reply_broadcast,
        )
        self.sent.append(message)
        return MessageRef(channel=channel, ts=message.ts)

    async def update_message(
        self, ref: MessageRef, text: str, blocks: Sequence[dict[str, Any]] | None = None
    ) -> None:
        for message in self.sent:
            if message.channel == ref.channel and message.ts == ref.ts:
                message.updates.append(text)
                return
        raise SlackError("message_not_found")

    async def send_dm(
        self,
        user: str,
        text: str,
        blocks: Sequence[dict[str, Any]] | None = None,
        *,
        metadata: Mapping[str, Any] | None = None,
    ) -> MessageRef:
        ref = await self.post_message(f"D{user}", text, blocks, metadata=metadata)
        self.sent[-1].user = user
        return ref

    async def post_ephemeral(
        self, channel: str, user: str, text: str, blocks: Sequence[dict[str, Any]] | None = None
    ) -> None:
        message = SentMessage(
            channel=channel,
            text=text,
            ts=self._new_ts(),
            blocks=list(blocks) if blocks else None,
            user=user,
            ephemeral=True,
        )
        self.sent.append(message)

    # --- what tests read

    def texts_in(self, channel: str) -> list[str]:
        """Texts posted in `channel` (ephemeral ones included), oldest first."""
        return [m.text for m in self.sent if m.channel == channel]

    def dms_to(self, user: str) -> list[str]:
        return self.texts_in(f"D{user}")


class FixedDirectory:
    """`flows.ports.Directory` with fixed members, for every team.

    `channels` maps channel ids to members, `groups` user-group ids to members; `names`
    maps channel names (`general`) to ids, which `resolve_channel` uses for `#general`."""

    def __init__(
        self,
        *,
        groups: Mapping[str, Iterable[str]] | None = None,
        channels: Mapping[str, Iterable[str]] | None = None,
        admins: Iterable[str] = (),
        names: Mapping[str, str] | None = None,
    ) -> None:
        self.groups = {k: frozenset(v) for k, v in (groups or {}).items()}
        self.channels = {k: frozenset(v) for k, v in (channels or {}).items()}
        self.admins = frozenset(admins)
        self.names = dict(names or {})

    async def usergroup_members(self, team_id: str, group_id: str) -> frozenset[str]:
        return self.groups.get(group_id, frozenset())

    async def channel_members(self, team_id: str, channel_id: str) -> frozenset[str]:
        return self.channels.get(channel_id, frozenset())

    async def is_workspace_admin(self, team_id: str, user_id: str) -> bool:
        return user_id in self.admins

    async def resolve_channel(self, team_id: str, channel: str) -> str:
        channel = channel.strip()
        if channel.startswith("<#") and channel.endswith(">"):
            return channel[2:-1].split("|", 1)[0]
        if channel.startswith("#"):
            return self.names.get(channel[1:], channel)
        return channel


class RecordingRunNotifier:
    """`flows.run_model.RunNotifier` that keeps (run id, status, event) of every call."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str, RunEvent]] = []

    async def run_event(self, run: RunRecord, event: RunEvent) -> MessageRef | None:
        self.events.append((run.id, run.status, event))
        return run.notify_message

    def events_of(self, run_id: str) -> list[RunEvent]:
        return [event for rid, _status, event in self.events if rid == run_id]


class RecordingApprovalNotifier:
    """`flows.approval_model.ApprovalNotifier` that records each call as (what, approval
    id, detail). A request is "posted" as one DM per approver (or one post in the
    approval's channel); `bot` is the bot's own user id."""

    def __init__(self, bot: str | None = None) -> None:
        self.bot = bot
        self.calls: list[tuple[str, str, Any]] = []
        self._ts = itertools.count(1)

    def _ref(self, channel: str, approver: str | None = None) -> ApprovalMessage:
        return ApprovalMessage(
            channel=channel, ts=f"1800000000.{next(self._ts):06d}", approver=approver
        )

    async def send_request(self, record: ApprovalRecord) -> list[ApprovalMessage]:
        self.calls.append(("request", record.id, list(record.approvers)))
        if record.channel:
            return [self._ref(record.channel)]
        return [self._ref(f"D{user}", user) for user in record.approvers]

    async def show_progress(self, record: ApprovalRecord) -> None:
        self.calls.append(("progress", record.id, len(record.responses)))

    async def show_outcome(self, record: ApprovalRecord) -> None:
        self.calls.append(("outcome", record.id, record.outcome))

    async def remind(self, record: ApprovalRecord, users: Sequence[str]) -> None:
        self.calls.append(("remind", record.id, list(users)))

    async def tell_requester(self, record: ApprovalRecord) -> None:
        self.calls.append(("tell_requester", record.id, record.outcome))

    async def notify(self, record: ApprovalRecord, event: Literal["requested", "decided"]) -> None:
        self.calls.append(("notify", record.id, event))

    async def bot_user(self) -> str | None:
        return self.bot

    async def refresh_lists(self, record: ApprovalRecord) -> None:
        self.calls.append(("refresh_lists", record.id, None))

    def kinds(self, approval_id: str | None = None) -> list[str]:
        """What was done, in order (for one approval if given)."""
        return [kind for kind, aid, _ in self.calls if approval_id in (None, aid)]


__all__ = [
    "FakeClock",
    "FixedDirectory",
    "RecordingApprovalNotifier",
    "RecordingMessenger",
    "RecordingRunNotifier",
    "SentMessage",
    "SequentialIds",
    "SlackError",
]


if TYPE_CHECKING:
    # mypy proves each fake implements its port.
    from flows.approval_model import ApprovalNotifier
    from flows.ports import Clock, Directory, IdGenerator, Messenger
    from flows.run_model import RunNotifier

    _clock: Clock = FakeClock()
    _ids: IdGenerator = SequentialIds()
    _messenger: Messenger = RecordingMessenger()
    _directory: Directory = FixedDirectory()
    _run_notifier: RunNotifier = RecordingRunNotifier()
    _approval_notifier: ApprovalNotifier = RecordingApprovalNotifier()

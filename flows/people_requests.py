"""The one "waiting for people" core of approvals (`flows.approvals`) and asks
(`flows.asks`): the request made once per run and step and posted once, the background
work after a decision (bounded at stop), the run resumed (and again at start after a
crash), pending requests cancelled with their run, and the timers (expire, remind).

Each area keeps its own rules in its own module: how a request is made (`_new_record`),
what happens once one expires (`_after_expiry`) and how people are reminded (`_remind`);
approvals' modes and quorum, asks' fields and answers.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, Generic, TypeVar

from flows.approval_model import RunResumer, UnknownApprover, UnknownChannelName
from flows.foreground import Foreground, Hold
from flows.people_request_model import R, RequestNotifier, RequestStore, WaitingRequest
from flows.ports import Clock, Directory, IdGenerator
from flows.records import RunRecord
from flows.runner import CancelRequest, Done, Outcome, Park, StepContext, StepFailed, is_timer
from flows.slack_ids import (
    CHANNEL_ID,
    CHANNEL_NAME,
    parse_principal,
    principal_kind,
    split_principals,
)
from flows.workspace_context import acting_for

log = logging.getLogger(__name__)

# The area's request (templates rendered), as its executor builds it.
Q = TypeVar("Q", bound=WaitingRequest)


# ------------------------------------------------------------------ the people asked


async def resolve_principal(team_id: str, raw: str, directory: Directory) -> str:
    """A person, group or channel as written (a mention, an id, or a channel's `#name`,
    looked up in the directory) → its id; `UnknownApprover` if it is none of those."""
    principal = parse_principal(raw)
    if principal is not None:
        return principal
    if CHANNEL_NAME.fullmatch(raw.strip()):
        found = await directory.channel_id(team_id, raw.strip()[1:])
        if found and CHANNEL_ID.fullmatch(found):
            return found
        raise UnknownChannelName(raw.strip())
    raise UnknownApprover(raw)


async def resolve_principals(
    team_id: str, principals: Sequence[str], directory: Directory
) -> list[str]:
    """`resolve_principal` for each entry (in order)."""
    return [await resolve_principal(team_id, raw, directory) for raw in principals]


async def expand_approvers(
    team_id: str, principals: Sequence[str], directory: Directory, exclude: Iterable[str] = ()
) -> list[str]:
    """Users, user groups and channels → approver user ids (in order, without repeats)."""
    skip = set(exclude)
    users: list[str] = []
    for raw in principals:
        principal = await resolve_principal(team_id, raw, directory)
        kind = principal_kind(principal)
        if kind == "group":
            members: Iterable[str] = sorted(await directory.usergroup_members(team_id, principal))
        elif kind == "channel":
            members = sorted(await directory.channel_members(team_id, principal))
        else:
            members = [principal]
        for user in members:
            if user not in skip and user not in users:
                users.append(user)
    return users


def deadlines(
    now: datetime, timeout: timedelta | None, reminder: timedelta | None
) -> tuple[datetime | None, datetime | None]:
    """(timeout_at, reminder_at); a reminder that would fall before now is dropped."""
    timeout_at = now + timeout if timeout else None
    if reminder is None:
        return timeout_at, None
    reminder_at = timeout_at - reminder if timeout_at else now + reminder
    return timeout_at, reminder_at if reminder_at > now else None


# ------------------------------------------------------------------ the service


class PeopleRequestService(Generic[R, Q]):
    """The shared use cases; also a `Service` (start: resume runs a crash left waiting).

    `noun` and `closed` word the logs ("approval", "decided"; "ask", "answered")."""

    noun = "request"
    closed = "closed"

    def __init__(
        self,
        store: RequestStore[R],
        notifier: RequestNotifier[R],
        directory: Directory,
        clock: Clock,
        ids: IdGenerator,
        resumer: RunResumer | None = None,
        foreground: Foreground | None = None,
    ) -> None:
        self.store = store
        self.notifier = notifier
        self.directory = directory
        self.clock = clock
        self.ids = ids
        self.resumer = resumer
        # A decision's run goes on before anyone's leftovers (flows.foreground).
        self.foreground = foreground or Foreground()
        # How long `stop` waits for decisions still being carried out (messages, resume).
        self.stop_grace = 10.0
        # How long a decision's messages wait for the resumed run to go on (seconds).
        self.went_on_patience = 1.0
        self._tasks: set[asyncio.Task[None]] = set()

    def now(self) -> datetime:
        return self.clock.now()

    # --- Service

    async def start(self) -> None:
        self._spawn(self._resume_unresumed())

    async def stop(self) -> None:
        """Let decisions being carried out finish (within `stop_grace`), then cancel."""
        tasks = list(self._tasks)
        if not tasks:
            return
        _done, pending = await asyncio.wait(tasks, timeout=self.stop_grace)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def wait_idle(self) -> None:
        """Wait until decisions being carried out are done (tests, shutdown)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def _resume_unresumed(self) -> None:
        """A crash between a decision and the run's resumption: finish the job at start
        (messages show the outcome again; notices are not sent twice)."""
        try:
            for record in await self.store.unresumed():
                with acting_for(record.team_id):
                    await self._quietly(self.notifier.show_outcome(record), "outcome update")
                    await self._resume_run(record)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("resuming %s %ss failed", self.closed, self.noun)

    # --- requests

    async def _new_record(self, req: Q) -> R:
        """The record `req` asks for; an `ApprovalError` if it cannot be made as written."""
        raise NotImplementedError

    async def request(self, req: Q) -> R:
        """Create the request for (run, step) once and post its buttons once."""
        record = await self.store.get_for_step(req.run_id, req.step_id)
        if record is None:
            record = await self.store.create(await self._new_record(req))
        if record.requested or not record.pending:
            return record
        messages = await self.notifier.send_request(record)
        await self.store.set_messages(record.id, messages)
        await self._quietly(self.notifier.notify(record, "requested"), "requested notice")
        await self._quietly(self.notifier.refresh_lists(record), "pending lists")
        fresh = await self.store.get(record.id)
        return fresh or record.model_copy(update={"messages": messages, "requested": True})

    async def _people(
        self, team_id: str, entries: Sequence[str]
    ) -> tuple[list[str], list[str], list[str]]:
        """(the entries as ids, the people they expand to, who is left out: the bot)."""
        bot_user = await self.notifier.bot_user()
        principals = await resolve_principals(team_id, split_principals(entries), self.directory)
        exclude = [bot_user] if bot_user else []
        people = await expand_approvers(team_id, principals, self.directory, exclude=exclude)
        return principals, people, exclude

    def _common_fields(self, req: Q, id_prefix: str) -> dict[str, Any]:
        """The record's fields every kind takes from its request: ids, the flow, the
        requester, the text, and the deadlines (from now)."""
        now = self.clock.now()
        timeout_at, reminder_at = deadlines(now, req.timeout, req.reminder)
        return {
            "id": self.ids.new_id(id_prefix),
            "team_id": req.team_id,
            "run_id": req.run_id,
            "step_id": req.step_id,
            "flow_id": req.flow_id,
            "flow_name": req.flow_name,
            "requester": req.requester,
            "title": req.title,
            "details": req.details,
            "created_at": now,
            "timeout_at": timeout_at,
            "reminder_at": reminder_at,
        }

    async def pending_for(self, team_id: str, user: str) -> list[R]:
        return await self.store.pending_for(team_id, user)

    async def pending_page(self, team_id: str, user: str, limit: int) -> tuple[list[R], int]:
        """The oldest `limit` pending for `user`, and how many in all (the App Home)."""
        return await self.store.pending_page(team_id, user, limit)

    # --- after a decision

    async def _resume_run(self, record: R) -> None:
        if self.resumer is None:
            log.warning("%s %s %s but no runner is attached", self.noun, record.id, self.closed)
            return
        try:
            await self.resumer.resume(record.run_id, record.step_id, record.output())
        except Exception:
            log.exception("resuming run %s after %s %s failed", record.run_id, self.noun, record.id)
            return
        await self.store.mark_resumed(record.id)

    async def _resume_first(self, record: R) -> bool:
        """Resume the run, then wait until it went on past the step (its next step done,
        or it parked or ended; `went_on_patience` at most): the decision's messages and
        notices come after, so they do not compete with the run's next Slack call.
        False if the run could not be resumed (the request stays unresumed)."""
        if self.resumer is None:
            log.warning("%s %s %s but no runner is attached", self.noun, record.id, self.closed)
            return False
        went_on: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        try:
            resumed = await self.resumer.resume(
                record.run_id, record.step_id, record.output(), went_on=went_on
            )
        except Exception:
            log.exception("resuming run %s after %s %s failed", record.run_id, self.noun, record.id)
            return False
        if resumed:
            try:
                await asyncio.wait_for(asyncio.shield(went_on), self.went_on_patience)
            except asyncio.TimeoutError:
                pass
        return True

    async def _conclude_decided(self, record: R, hold: Hold | None = None) -> None:
        """After a decision (an answer): the run goes on first (the decision's `hold` on
        the foreground ends then), then the area's messages and notices (`_after_decided`),
        each once nothing is in the foreground, then the request is marked resumed: a crash
        before that mark shows the outcome again at start (`_resume_unresumed`)."""
        try:
            resumed = await self._resume_first(record)
        finally:
            if hold is not None:
                hold.release()
        await self._after_decided(record)
        await self._later("pending lists", lambda: self.notifier.refresh_lists(record))
        if resumed:
            async with self.foreground.background():
                await self.store.mark_resumed(record.id)

    async def _after_decided(self, record: R) -> None:
        """The messages and notices once `record` was decided (answered)."""
        raise NotImplementedError

    async def _later(self, what: str, work: Callable[[], Awaitable[Any]]) -> None:
        """Background work after a decision: once nothing is in the foreground."""
        async with self.foreground.background():
            await self._quietly(work(), what)

    async def _quietly(self, coro: Any, what: str) -> None:
        try:
            await coro
        except Exception:
            log.exception("%s %s failed", self.noun, what)

    # --- cancelling

    async def on_run_cancelled(self, run: RunRecord, request: CancelRequest) -> None:
        """The run was cancelled (a `flows.runner.CancelListener`): its pending requests
        are cancelled now, so that no click counts any more; their messages and the
        pending lists are updated in the background."""
        for record in await self.store.pending_of_run(run.id):
            cancelled = await self.store.cancel(record.id, self.now(), request.reason, request.by)
            if cancelled is not None:  # else a decision got there first: it stands
                self._spawn(self._conclude_closed(cancelled))

    async def cancel_step(self, run_id: str, step_id: str, reason: str) -> None:
        """The step's pending request is cancelled (its container timed out)."""
        record = await self.store.get_for_step(run_id, step_id)
        if record is None or not record.pending:
            return
        cancelled = await self.store.cancel(record.id, self.now(), reason, None)
        if cancelled is not None:
            self._spawn(self._conclude_closed(cancelled))

    async def _conclude_closed(self, record: R) -> None:
        await self._quietly(self.notifier.show_outcome(record), "closed update")
        await self._quietly(self.notifier.refresh_lists(record), "pending lists")

    # --- timers

    async def on_timer(self, run_id: str, step_id: str) -> R | None:
        """A timer wake-up of the parked step: expire if due, remind if due.

        Returns the record (closed or still pending, with its next wake-up), or None if
        there is none for this step."""
        record = await self.store.get_for_step(run_id, step_id)
        if record is None or not record.pending:
            return record
        now = self.now()
        if record.timeout_at is not None and now >= record.timeout_at:
            expired = await self.store.expire(record.id, now)
            if expired is None:  # a decision came meanwhile
                return await self.store.get(record.id)
            await self._after_expiry(expired)
            return expired
        if record.reminder_at is not None and not record.reminded and now >= record.reminder_at:
            if await self.store.mark_reminded(record.id):
                await self._quietly(self._remind(record), "reminder")
            return await self.store.get(record.id)
        return record

    async def _after_expiry(self, record: R) -> None:
        """Messages, notices and lists once `record` expired."""
        raise NotImplementedError

    async def _remind(self, record: R) -> None:
        """Remind the people still to answer."""
        raise NotImplementedError


class PeopleRequestExecutor(Generic[R]):
    """The runner's executor part both kinds share: resume (a timer, or a decision's
    payload) and settle (Done once closed, failed once cancelled, else park with wake_at
    = the reminder or the timeout, so both survive restarts).

    `what` words the failures ("approval", "form"); `waiting_prefix` names the wait."""

    what = "request"
    waiting_prefix = ""
    id_key = ""  # the record's id in the step's output ("approval_id", "ask_id")

    def __init__(self, service: PeopleRequestService[R, Any]) -> None:
        self.service = service

    def _step_key(self, step: Any, ctx: StepContext) -> str:
        """The step id the record is stored under."""
        return ctx.step_id

    async def abandon(self, step: Any, ctx: StepContext, reason: str) -> None:
        """The waiting step will not go on (its container timed out): close it."""
        await self.service.cancel_step(ctx.run.id, ctx.step_id, reason)

    def _parked(self, record: R) -> dict[str, Any]:
        """The step's output while it waits."""
        raise NotImplementedError

    def _decision_of(self, ctx: StepContext, payload: Mapping[str, Any]) -> bool:
        """Is `payload` the closed output of this step's request (`record.output()`)?"""
        waiting = ctx.run.steps.get(ctx.step_id)
        request_id = waiting.output.get(self.id_key) if waiting is not None else None
        return (
            bool(payload.get("outcome"))
            and request_id is not None
            and payload.get(self.id_key) == request_id
        )

    async def resume(self, step: Any, ctx: StepContext, payload: Mapping[str, Any]) -> Outcome:
        key = self._step_key(step, ctx)
        if is_timer(payload):
            record = await self.service.on_timer(ctx.run.id, key)
        elif self._decision_of(ctx, payload):
            # The service resumed the run with the closed record's output (final once
            # closed): no read on the way to the run's next step; it marks the resume.
            return Done(dict(payload))
        else:
            record = await self.service.store.get_for_step(ctx.run.id, key)
        if record is None:
            raise StepFailed(f"the {self.what} request of this step is missing")
        return await self._settle(record, mark=is_timer(payload))

    async def _settle(self, record: R, *, mark: bool = True) -> Outcome:
        if record.status == "cancelled":
            # Only a cancelled run's request is cancelled: this run is being stopped.
            reason = record.cancel_reason or "cancelled"
            raise StepFailed(f"the {self.what} was cancelled: {reason}")
        if not record.pending:
            if mark:
                await self.service.store.mark_resumed(record.id)
            return Done(record.output())
        return Park(
            wake_at=record.next_wake(),
            waiting_for=self.waiting_prefix + record.id,
            output=self._parked(record),
        )


async def rendered_notify_channel(ctx: StepContext) -> str | None:
    """The flow's notify channel (SPEC §8) as rendered for this run; None when none."""
    notify = ctx.run.definition.notify
    return (await ctx.text("notify", notify)).strip() or None if notify else None

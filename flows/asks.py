"""The `ask` step's use cases (SPEC §13): a run parks until one of the people asked fills
in the form (or it expires). What an ask is (record, ports) is in `flows.ask_model`.

Built like approvals (`flows.approvals`) and sharing their pieces: the people asked are
expanded as approvers are, deadlines and reminders are the same, the runner's durable
wake-ups carry the timers, and a cancelled run cancels its pending asks.

- `AskService`: make the request (once per run and step), check a Fill in click, record
  the first valid submission exactly once (a compare-and-set in the store), expire and
  remind, resume the run.
- `AskStepExecutor`: the runner's executor for `ask` steps.
- `read_answers`: typed answers from raw form values, with the flow inputs' coercion.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine, Mapping, Sequence
from typing import Any

from flows.approval_model import ApprovalError, NoApprovers
from flows.approvals import deadlines, expand_approvers, resolve_principals
from flows.ask_model import (
    WAITING_PREFIX,
    AskNotifier,
    AskRecord,
    AskRequest,
    AskResult,
    AskRunResumer,
    AskStore,
)
from flows.definition import AskStep, FlowInput
from flows.ports import Clock, Directory, IdGenerator
from flows.records import RunRecord
from flows.runner import CancelRequest, Done, Outcome, Park, StepContext, StepFailed, is_timer
from flows.slack_ids import principal_kind, split_principals
from flows.workspace_context import acting_for

log = logging.getLogger(__name__)

REQUIRED = "Required."


def read_answers(
    fields: Sequence[FlowInput], raw: Mapping[str, str | None]
) -> tuple[dict[str, Any], dict[str, str]]:
    """(typed answers, errors by field id) from what was typed or picked, by field id.

    The same rules as the "Run flow" modal: required fields must be given, each value is
    coerced to its field's type; an optional field left empty takes its default."""
    answers: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for spec in fields:
        value = raw.get(spec.id)
        if value is None or not str(value).strip():
            if spec.required:
                errors[spec.id] = REQUIRED
            else:
                answers[spec.id] = spec.default
            continue
        try:
            answers[spec.id] = spec.coerce(str(value))
        except ValueError as exc:
            errors[spec.id] = str(exc)[:150]
    return answers, errors


def _is_channel(principal: str) -> bool:
    return bool(principal) and principal_kind(principal) == "channel"


class AskService:
    """The ask step's use cases; also a `Service` (start: resume runs a crash left)."""

    def __init__(
        self,
        store: AskStore,
        notifier: AskNotifier,
        directory: Directory,
        clock: Clock,
        ids: IdGenerator,
        resumer: AskRunResumer | None = None,
    ) -> None:
        self.store = store
        self.notifier = notifier
        self.directory = directory
        self.clock = clock
        self.ids = ids
        self.resumer = resumer
        self.stop_grace = 10.0
        self._tasks: set[asyncio.Task[None]] = set()

    # --- Service

    async def start(self) -> None:
        self._spawn(self._resume_unresumed())

    async def stop(self) -> None:
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
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def _resume_unresumed(self) -> None:
        try:
            for record in await self.store.unresumed():
                with acting_for(record.team_id):
                    await self._quietly(self.notifier.show_outcome(record), "outcome update")
                    await self._resume_run(record)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("resuming answered asks failed")

    # --- requests

    async def request(self, req: AskRequest) -> AskRecord:
        """Create the ask for (run, step) once and post its Fill in buttons once."""
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

    async def _new_record(self, req: AskRequest) -> AskRecord:
        """The ask `req` makes; an `ApprovalError` (the approvers' refusals: unknown or
        empty `to`) if it cannot be made as written."""
        bot_user = await self.notifier.bot_user()
        principals = await resolve_principals(req.team_id, split_principals(req.to), self.directory)
        people = await expand_approvers(
            req.team_id, principals, self.directory, exclude=[bot_user] if bot_user else []
        )
        channels = [p for p in principals if _is_channel(p)]
        others = [p for p in principals if not _is_channel(p)]
        notify_channel = (
            await self.directory.resolve_channel(req.team_id, req.notify_channel)
            if req.notify_channel
            else None
        )
        exclude = [bot_user] if bot_user else []
        direct = await expand_approvers(req.team_id, others, self.directory, exclude=exclude)
        if not people:
            raise NoApprovers()
        now = self.clock.now()
        timeout_at, reminder_at = deadlines(now, req.timeout, req.reminder)
        return AskRecord(
            id=self.ids.new_id("Q"),
            team_id=req.team_id,
            run_id=req.run_id,
            step_id=req.step_id,
            flow_id=req.flow_id,
            flow_name=req.flow_name,
            requester=req.requester,
            notify_channel=notify_channel,
            title=req.title,
            details=req.details,
            fields=list(req.fields),
            principals=principals,
            people=people,
            channels=channels,
            direct=direct,
            created_at=now,
            timeout_at=timeout_at,
            reminder_at=reminder_at,
        )

    # --- filling in

    async def pending_for(self, team_id: str, user: str) -> list[AskRecord]:
        return await self.store.pending_for(team_id, user)

    async def check(self, ask_id: str, user: str) -> AskResult:
        """May this person fill in the form now? (Before opening the modal.)"""
        record = await self._current(ask_id, user)
        return self._refusal(record, user) or AskResult("open", record)

    async def _current(self, ask_id: str, user: str) -> AskRecord | None:
        """The ask; still pending only if its run still waits for it. A run cancelled
        while this process was down before its forms were closed (the cancel listener
        never ran) has its form closed now, when someone asked tries to fill it in."""
        record = await self.store.get(ask_id)
        if record is None or not record.pending or user not in record.people:
            return record
        run = await self.resumer.get(record.run_id) if self.resumer is not None else None
        if run is None or not run.finished:
            return record
        reason = "the run was cancelled" if run.status == "cancelled" else "the run ended"
        closed = await self.store.cancel(record.id, self.clock.now(), reason, None)
        if closed is None:  # answered, expired or closed meanwhile
            return await self.store.get(ask_id)
        self._spawn(self._conclude_closed(closed))
        return closed

    def _refusal(self, record: AskRecord | None, user: str) -> AskResult | None:
        if record is None:
            return AskResult("not_found")
        if user not in record.people:
            return AskResult("not_asked", record)
        if record.status == "pending":
            return None
        kind = "already_answered" if record.status == "answered" else record.status
        return AskResult(kind, record)  # type: ignore[arg-type]

    async def submit(self, ask_id: str, user: str, raw: Mapping[str, str | None]) -> AskResult:
        """A filled-in form: field errors, or the one answer (compare-and-set)."""
        record = await self._current(ask_id, user)
        refusal = self._refusal(record, user)
        if refusal is not None:
            return refusal
        assert record is not None
        answers, errors = read_answers(record.fields, raw)
        if errors:
            return AskResult("invalid", record, errors)
        answered = await self.store.answer(record.id, user, answers, self.clock.now())
        if answered is None:  # someone else's submission, the timeout or a cancel came first
            return self._refusal(await self.store.get(ask_id), user) or AskResult(
                "not_found", record
            )
        self._spawn(self._conclude(answered))
        return AskResult("answered", answered)

    async def _conclude(self, record: AskRecord) -> None:
        # The run goes on first; the form's messages are updated while it does.
        await self._resume_run(record)
        await self._quietly(self.notifier.show_outcome(record), "outcome update")
        await self._quietly(self.notifier.notify(record, "closed"), "answered notice")
        await self._quietly(self.notifier.refresh_lists(record), "pending lists")

    async def _resume_run(self, record: AskRecord) -> None:
        if self.resumer is None:
            log.warning("ask %s answered but no runner is attached", record.id)
            return
        try:
            await self.resumer.resume(record.run_id, record.step_id, record.output())
        except Exception:
            log.exception("resuming run %s after ask %s failed", record.run_id, record.id)
            return
        await self.store.mark_resumed(record.id)

    async def _quietly(self, coro: Any, what: str) -> None:
        try:
            await coro
        except Exception:
            log.exception("ask %s failed", what)

    # --- cancelling and timers

    async def on_run_cancelled(self, run: RunRecord, request: CancelRequest) -> None:
        """A `flows.runner.CancelListener`: the run's pending asks are cancelled."""
        for record in await self.store.pending_of_run(run.id):
            now = self.clock.now()
            cancelled = await self.store.cancel(record.id, now, request.reason, request.by)
            if cancelled is not None:
                self._spawn(self._conclude_closed(cancelled))

    async def cancel_step(self, run_id: str, step_id: str, reason: str) -> None:
        """The step's pending ask is cancelled (its container timed out)."""
        record = await self.store.get_for_step(run_id, step_id)
        if record is None or not record.pending:
            return
        cancelled = await self.store.cancel(record.id, self.clock.now(), reason, None)
        if cancelled is not None:
            self._spawn(self._conclude_closed(cancelled))

    async def _conclude_closed(self, record: AskRecord) -> None:
        await self._quietly(self.notifier.show_outcome(record), "closed update")
        await self._quietly(self.notifier.refresh_lists(record), "pending lists")

    async def on_timer(self, run_id: str, step_id: str) -> AskRecord | None:
        """A timer wake-up of the parked step: expire if due, remind if due."""
        record = await self.store.get_for_step(run_id, step_id)
        if record is None or not record.pending:
            return record
        now = self.clock.now()
        if record.timeout_at is not None and now >= record.timeout_at:
            expired = await self.store.expire(record.id, now)
            if expired is None:  # answered meanwhile
                return await self.store.get(record.id)
            await self._conclude_closed(expired)
            await self._quietly(self.notifier.notify(expired, "closed"), "expired notice")
            if expired.requester:
                await self._quietly(self.notifier.tell_requester(expired), "requester notice")
            return expired
        if record.reminder_at is not None and not record.reminded and now >= record.reminder_at:
            if await self.store.mark_reminded(record.id):
                await self._quietly(self.notifier.remind(record), "reminder")
            return await self.store.get(record.id)
        return record


class AskStepExecutor:
    """The runner's executor for `ask` steps (registered as "ask")."""

    def __init__(self, service: AskService) -> None:
        self.service = service

    async def abandon(self, step: Any, ctx: StepContext, reason: str) -> None:
        """The waiting step will not go on (its container timed out): close it."""
        await self.service.cancel_step(ctx.run.id, ctx.step_id, reason)

    async def execute(self, step: AskStep, ctx: StepContext) -> Outcome:
        run = ctx.run
        request = AskRequest(
            team_id=run.team_id,
            run_id=run.id,
            step_id=step.id,
            flow_id=run.flow_id,
            flow_name=run.flow_name,
            requester=run.started_by,
            notify_channel=await _notify_channel(ctx),
            title=(await ctx.text("title", step.title)).strip() or "Form",
            details=(await ctx.text("details", step.details)).strip() if step.details else "",
            to=[await ctx.text("to", entry) for entry in step.to],
            fields=list(step.fields),
            timeout=step.timeout_delta,
            reminder=step.reminder_delta,
        )
        try:
            record = await self.service.request(request)
        except NoApprovers:
            raise StepFailed("nobody to ask (empty groups or channels?)", "to") from None
        except ApprovalError as exc:
            raise StepFailed(str(exc).replace("approver", "`to` entry"), "to") from None
        return await self._settle(record)

    async def resume(self, step: AskStep, ctx: StepContext, payload: Mapping[str, Any]) -> Outcome:
        if is_timer(payload):
            record = await self.service.on_timer(ctx.run.id, step.id)
        else:
            record = await self.service.store.get_for_step(ctx.run.id, step.id)
        if record is None:
            raise StepFailed("the form request of this step is missing")
        return await self._settle(record)

    async def _settle(self, record: AskRecord) -> Outcome:
        if record.status == "cancelled":
            raise StepFailed(f"the form was cancelled: {record.cancel_reason or 'cancelled'}")
        if not record.pending:
            await self.service.store.mark_resumed(record.id)
            return Done(record.output())
        return Park(
            wake_at=record.next_wake(),
            waiting_for=WAITING_PREFIX + record.id,
            output={"ask_id": record.id, "asked": list(record.people)},
        )


async def _notify_channel(ctx: StepContext) -> str | None:
    notify = ctx.run.definition.notify
    return (await ctx.text("notify", notify)).strip() or None if notify else None

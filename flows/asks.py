"""The `ask` step's use cases (SPEC §13): a run parks until one of the people asked fills
in the form (or it expires). What an ask is (record, ports) is in `flows.ask_model`.

The waiting is the one core approvals (`flows.approvals`) use too, `flows.people_requests`:
the people asked are expanded as approvers are, deadlines and reminders are the same, the
runner's durable wake-ups carry the timers, and a cancelled run cancels its pending asks.

- `AskService`: make the request (once per run and step), check a Fill in click, record
  the first valid submission exactly once (a compare-and-set in the store), expire and
  remind, resume the run.
- `AskStepExecutor`: the runner's executor for `ask` steps.
- `read_answers`: typed answers from raw form values, with the flow inputs' coercion.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from flows.approval_model import ApprovalError, NoApprovers
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
from flows.foreground import Foreground
from flows.people_requests import (
    PeopleRequestExecutor,
    PeopleRequestService,
    expand_approvers,
    rendered_notify_channel,
)
from flows.ports import Clock, Directory, IdGenerator
from flows.runner import Outcome, StepContext, StepFailed
from flows.slack_ids import principal_kind

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


class AskService(PeopleRequestService[AskRecord, AskRequest]):
    """The ask step's use cases; also a `Service` (start: resume runs a crash left). The
    waiting itself (posting once, resuming, cancelling, timers) is `flows.people_requests`;
    the fields and the one answer are here."""

    noun = "ask"
    closed = "answered"
    store: AskStore
    notifier: AskNotifier
    resumer: AskRunResumer | None

    def __init__(
        self,
        store: AskStore,
        notifier: AskNotifier,
        directory: Directory,
        clock: Clock,
        ids: IdGenerator,
        resumer: AskRunResumer | None = None,
        foreground: Foreground | None = None,
    ) -> None:
        super().__init__(store, notifier, directory, clock, ids, resumer, foreground)

    # --- requests

    async def _new_record(self, req: AskRequest) -> AskRecord:
        """The ask `req` makes; an `ApprovalError` (the approvers' refusals: unknown or
        empty `to`) if it cannot be made as written."""
        principals, people, exclude = await self._people(req.team_id, req.to)
        channels = [p for p in principals if _is_channel(p)]
        others = [p for p in principals if not _is_channel(p)]
        notify_channel = (
            await self.directory.resolve_channel(req.team_id, req.notify_channel)
            if req.notify_channel
            else None
        )
        direct = await expand_approvers(req.team_id, others, self.directory, exclude=exclude)
        if not people:
            raise NoApprovers()
        return AskRecord(
            **self._common_fields(req, "Q"),
            notify_channel=notify_channel,
            fields=list(req.fields),
            principals=principals,
            people=people,
            channels=channels,
            direct=direct,
        )

    # --- filling in

    async def check(self, ask_id: str, user: str, team_id: str | None = None) -> AskResult:
        """May this person fill in the form now? (Before opening the modal.) `team_id`: the
        person's workspace (from Slack's payload); another workspace's ask is not found."""
        record = await self._current(ask_id, user, team_id)
        return self._refusal(record, user) or AskResult("open", record)

    async def _current(
        self, ask_id: str, user: str, team_id: str | None = None
    ) -> AskRecord | None:
        """The ask; still pending only if its run still waits for it. A run cancelled
        while this process was down before its forms were closed (the cancel listener
        never ran) has its form closed now, when someone asked tries to fill it in."""
        record = await self.store.get(ask_id)
        if record is not None and team_id is not None and record.team_id != team_id:
            return None  # issue 19: looked up in the person's workspace only
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

    async def submit(
        self,
        ask_id: str,
        user: str,
        raw: Mapping[str, str | None],
        team_id: str | None = None,
    ) -> AskResult:
        """A filled-in form: field errors, or the one answer (compare-and-set). `team_id`:
        as for `check`."""
        record = await self._current(ask_id, user, team_id)
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
        # The run goes on first, the form's messages are updated after.
        self._spawn(self._conclude_decided(answered, self.foreground.hold()))
        return AskResult("answered", answered)

    async def _after_decided(self, record: AskRecord) -> None:
        await self._later("outcome update", lambda: self.notifier.show_outcome(record))
        await self._later("answered notice", lambda: self.notifier.notify(record, "closed"))

    # --- timers

    async def _after_expiry(self, record: AskRecord) -> None:
        await self._conclude_closed(record)
        await self._quietly(self.notifier.notify(record, "closed"), "expired notice")
        if record.requester:
            await self._quietly(self.notifier.tell_requester(record), "requester notice")

    async def _remind(self, record: AskRecord) -> None:
        await self.notifier.remind(record)


class AskStepExecutor(PeopleRequestExecutor[AskRecord]):
    """The runner's executor for `ask` steps (registered as "ask")."""

    what = "form"
    waiting_prefix = WAITING_PREFIX
    id_key = "ask_id"
    service: AskService

    def __init__(self, service: AskService) -> None:
        super().__init__(service)

    async def execute(self, step: AskStep, ctx: StepContext) -> Outcome:
        run = ctx.run
        request = AskRequest(
            team_id=run.team_id,
            run_id=run.id,
            step_id=ctx.step_id,  # in a loop, this iteration's step (`each[1]/q`)
            flow_id=run.flow_id,
            flow_name=run.flow_name,
            requester=run.started_by,
            notify_channel=await rendered_notify_channel(ctx),
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

    def _parked(self, record: AskRecord) -> dict[str, Any]:
        return {"ask_id": record.id, "asked": list(record.people)}

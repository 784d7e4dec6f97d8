"""Approvals in Slack: the buttons, the comment modal, `/flow approvals`, and the
`ApprovalNotifier` that posts and updates the approval messages."""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import re
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Literal

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncRespond
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from cards import approvals as cards
from cards.common import Message
from flows.approvals import ApprovalMessage, ApprovalRecord, ApprovalService, RespondResult
from flows.ports import Messenger
from flows.records import MessageRef
from handlers import home
from handlers.commands import CommandContext, subcommand
from handlers.deps import HandlerDeps

log = logging.getLogger(__name__)

ACTION_PATTERN = re.compile("^" + re.escape(cards.ACTION_PREFIX))
HOME_SECTION = "pending_approvals"


class SlackApprovalNotifier:
    """Implements `flows.approvals.ApprovalNotifier` with `cards.approvals`."""

    def __init__(self, messenger: Messenger, client: AsyncWebClient) -> None:
        self.messenger = messenger
        self.client = client
        self._bot_user: str | None = None
        # Set by `register`: re-publishes someone's App Home (team_id, user_id).
        self.refresh_home: Callable[[str, str], Awaitable[None]] | None = None

    async def send_request(self, record: ApprovalRecord) -> list[ApprovalMessage]:
        card = cards.request_message(record)
        if record.channel:
            ref = await self.messenger.post_message(record.channel, card["text"], card["blocks"])
            return [ApprovalMessage(channel=ref.channel, ts=ref.ts)]

        async def dm(user: str) -> ApprovalMessage | None:
            try:
                ref = await self.messenger.send_dm(user, card["text"], card["blocks"])
            except SlackApiError as exc:
                log.warning("approval %s: DM to %s failed: %s", record.id, user, exc)
                return None
            return ApprovalMessage(channel=ref.channel, ts=ref.ts, approver=user)

        sent = await asyncio.gather(*(dm(user) for user in record.approvers))
        return [m for m in sent if m is not None]

    async def _update_all(self, record: ApprovalRecord, card: Message) -> None:
        async def update(item: ApprovalMessage) -> None:
            try:
                ref = MessageRef(channel=item.channel, ts=item.ts)
                await self.messenger.update_message(ref, card["text"], card["blocks"])
            except SlackApiError as exc:
                log.warning("approval %s: updating %s failed: %s", record.id, item.ts, exc)

        await asyncio.gather(*(update(item) for item in record.messages))

    async def show_progress(self, record: ApprovalRecord) -> None:
        await self._update_all(record, cards.request_message(record))

    async def show_outcome(self, record: ApprovalRecord) -> None:
        if record.cancelled:
            await self._update_all(record, cards.cancelled_message(record))
            return
        await self._update_all(record, cards.decided_message(record))

    async def remind(self, record: ApprovalRecord, users: Sequence[str]) -> None:
        card = cards.reminder_message(record)
        for user in users:
            try:
                await self.messenger.send_dm(user, card["text"], card["blocks"])
            except SlackApiError as exc:
                log.warning("approval %s: reminder to %s failed: %s", record.id, user, exc)

    async def tell_requester(self, record: ApprovalRecord) -> None:
        if record.requester:
            card = cards.requester_notice(record)
            await self.messenger.send_dm(record.requester, card["text"], card["blocks"])

    async def notify(self, record: ApprovalRecord, event: Literal["requested", "decided"]) -> None:
        if not record.notify_channel:
            return
        card = (
            cards.requested_notice(record) if event == "requested" else cards.decided_notice(record)
        )
        await self.messenger.post_message(record.notify_channel, card["text"], card["blocks"])

    async def refresh_lists(self, record: ApprovalRecord) -> None:
        if self.refresh_home is None:
            return
        for user in record.approvers:
            try:
                await self.refresh_home(record.team_id, user)
            except Exception:
                log.exception("approval %s: refreshing the home of %s failed", record.id, user)

    async def bot_user(self) -> str | None:
        if self._bot_user is None:
            try:
                response = await self.client.auth_test()
                self._bot_user = str(response.get("user_id") or "")
            except SlackApiError:
                return None
        return self._bot_user or None


# ------------------------------------------------------------------ listeners


def _answer_card(result: RespondResult, user: str) -> Message | None:
    """The ephemeral answer to a click or a comment (None: the updated message says it)."""
    record = result.record
    if result.kind == "not_approver":
        return cards.not_approver()
    if result.kind == "not_found" or record is None:
        return cards.not_found()
    if result.kind == "already_decided":
        return cards.already_decided(record)
    if result.kind == "cancelled":
        return cards.cancelled(record)
    if result.kind == "already_responded":
        return cards.already_responded(record, user)
    if result.kind == "unknown_option":
        return cards.unknown_option()
    if result.kind == "recorded":
        return cards.recorded(record, user)
    return None


async def _reply(
    respond: AsyncRespond, result: RespondResult, user: str, from_ephemeral: bool
) -> None:
    card = _answer_card(result, user)
    if card is None and from_ephemeral and result.record is not None:
        # Decided from a /flow approvals list: the list itself is not updated, say it here.
        card = cards.decided_notice(result.record)
    if card is None:
        return
    try:
        await respond(**card, response_type="ephemeral", replace_original=False)
    except Exception:
        log.exception("answering an approval click failed")


def _service(deps: HandlerDeps) -> ApprovalService:
    return deps.approvals


async def _refresh_home(deps: HandlerDeps, team_id: str, user: str) -> None:
    try:
        await home.publish_home(deps, team_id, user)
    except Exception:
        log.exception("refreshing the home of %s failed", user)


def _user(body: dict[str, Any]) -> str:
    return str((body.get("user") or {}).get("id") or "")


async def handle_click(
    body: dict[str, Any], action: dict[str, Any], respond: AsyncRespond, deps: HandlerDeps
) -> None:
    """An option button: record the response (compare-and-set), answer ephemerally."""
    user = _user(body)
    approval_id = str(action.get("value") or "")
    option = cards.option_of(str(action.get("action_id") or ""))
    from_ephemeral = bool((body.get("container") or {}).get("is_ephemeral"))
    result = await _service(deps).respond(approval_id, user, option)
    if body.get("response_url"):
        await _reply(respond, result, user, from_ephemeral)
    elif not result.counted:
        # From the App Home (no response_url): show the list as it is now.
        await _refresh_home(deps, str((body.get("team") or {}).get("id") or ""), user)


async def handle_comment_button(
    body: dict[str, Any], action: dict[str, Any], respond: AsyncRespond, deps: HandlerDeps
) -> None:
    """ "Comment…": open the modal (options and a comment) if this person may answer."""
    user = _user(body)
    approval_id = str(action.get("value") or "")
    check = await _service(deps).check(approval_id, user)
    if not check.counted or check.record is None:
        if body.get("response_url"):
            await _reply(respond, check, user, from_ephemeral=False)
        else:
            await _refresh_home(deps, str((body.get("team") or {}).get("id") or ""), user)
        return
    metadata = {
        "a": approval_id,
        "u": body.get("response_url") or "",
        "e": bool((body.get("container") or {}).get("is_ephemeral")),
    }
    await deps.client.views_open(
        trigger_id=str(body.get("trigger_id") or ""),
        view=cards.comment_modal(check.record, metadata),
    )


async def handle_comment(body: dict[str, Any], view: dict[str, Any], deps: HandlerDeps) -> None:
    """The comment modal was submitted: record the chosen option with the comment."""
    user = _user(body)
    try:
        metadata = json.loads(view.get("private_metadata") or "{}")
    except ValueError:
        return
    values = (view.get("state") or {}).get("values") or {}
    chosen = (values.get(cards.OPTION_BLOCK) or {}).get(cards.OPTION_ACTION) or {}
    option = str((chosen.get("selected_option") or {}).get("value") or "")
    typed = (values.get(cards.COMMENT_BLOCK) or {}).get(cards.COMMENT_ACTION) or {}
    comment = typed.get("value") or None
    result = await _service(deps).respond(str(metadata.get("a")), user, option, comment)
    response_url = str(metadata.get("u") or "")
    if response_url:
        await _reply(AsyncRespond(response_url=response_url), result, user, bool(metadata.get("e")))
    elif (card := _answer_card(result, user)) is not None and result.record is not None:
        await deps.messenger.send_dm(user, card["text"], card["blocks"])


def register(app: AsyncApp, deps: HandlerDeps) -> None:
    home.home_sections[HOME_SECTION] = pending_approvals_section
    if deps.approvals is not None and isinstance(deps.approvals.notifier, SlackApprovalNotifier):
        deps.approvals.notifier.refresh_home = functools.partial(home.publish_home, deps)

    @app.action(ACTION_PATTERN)
    async def approval_click(
        ack: AsyncAck, body: dict[str, Any], action: dict[str, Any], respond: AsyncRespond
    ) -> None:
        await ack()
        try:
            await handle_click(body, action, respond, deps)
        except Exception:
            log.exception("approval click failed")

    @app.action(cards.COMMENT_BUTTON)
    async def approval_comment_button(
        ack: AsyncAck, body: dict[str, Any], action: dict[str, Any], respond: AsyncRespond
    ) -> None:
        await ack()
        try:
            await handle_comment_button(body, action, respond, deps)
        except Exception:
            log.exception("approval comment button failed")

    @app.view(cards.COMMENT_CALLBACK)
    async def approval_comment(ack: AsyncAck, body: dict[str, Any], view: dict[str, Any]) -> None:
        # Close the modal at once; the answer follows ephemerally like a click's.
        await ack()
        try:
            await handle_comment(body, view, deps)
        except Exception:
            log.exception("approval comment failed")


@subcommand(
    "approvals", "/flow approvals", "List the approvals waiting for you, with buttons", max_args=0
)
async def _approvals(ctx: CommandContext) -> None:
    records = await _service(ctx.deps).pending_for(ctx.team_id, ctx.user_id)
    await ctx.reply(**cards.pending_list(records))


async def pending_approvals_section(
    deps: HandlerDeps, team_id: str, user: str
) -> list[dict[str, Any]]:
    """For the App Home: the "Pending approvals" blocks of `user` (empty when none)."""
    return cards.pending_approvals_blocks(await deps.approvals.pending_for(team_id, user))

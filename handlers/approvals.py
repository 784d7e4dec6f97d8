"""Approvals in Slack: the option buttons, the comment modal, `/flow approvals` and the App
Home's "Pending approvals" section. Whether a response counts is decided by
`flows.approvals`; the approval messages themselves are posted by
`adapters.approval_notifier`."""

from __future__ import annotations

import json
import re
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncBoltContext, AsyncRespond

from cards import approvals as cards
from cards import asks as ask_cards
from flows.approval_model import RespondResult
from handlers import home
from handlers.commands import CommandContext, Confirm, Subcommand, ack_reading_first
from handlers.deps import HandlerDeps

ACTION_PATTERN = re.compile("^" + re.escape(cards.ACTION_PREFIX))
# The name of `pending_approvals_section` among the App Home's sections (bot.app lists it).
HOME_SECTION = "pending_approvals"
# The comment modal's `flows.modal_context.ModalContext` kind.
COMMENT_MODAL = "approval_comment"


def _from_ephemeral(body: dict[str, Any]) -> bool:
    return bool((body.get("container") or {}).get("is_ephemeral"))


async def _reply(
    respond: AsyncRespond, result: RespondResult, user: str, from_ephemeral: bool
) -> None:
    card = cards.answer(result, user, from_ephemeral)
    if card is not None:
        await respond(**card, response_type="ephemeral", replace_original=False)


async def handle_click(
    context: AsyncBoltContext,
    body: dict[str, Any],
    action: dict[str, Any],
    respond: AsyncRespond,
    deps: HandlerDeps,
    confirm: Confirm,
) -> None:
    """An option button: record the response (compare-and-set), answer ephemerally. The
    click's delivery is recorded while the approval is read (`confirm` before writing)."""
    user = context.user_id or ""
    option = cards.option_of(str(action.get("action_id") or ""))
    result = await deps.approvals.respond(
        str(action.get("value") or ""),
        user,
        option,
        team_id=context.team_id or "",
        before_write=confirm,
    )
    await confirm()  # a refusal too is answered only once
    if body.get("response_url"):
        await _reply(respond, result, user, _from_ephemeral(body))
    elif not result.counted:
        # From the App Home (no response_url): show the list as it is now.
        await home.publish_home(deps, context.team_id or "", user)


async def handle_comment_button(
    context: AsyncBoltContext,
    body: dict[str, Any],
    action: dict[str, Any],
    respond: AsyncRespond,
    deps: HandlerDeps,
) -> None:
    """ "Comment…": open the modal (options and a comment) if this person may answer."""
    user = context.user_id or ""
    approval_id = str(action.get("value") or "")
    check = await deps.approvals.check(approval_id, user, team_id=context.team_id or "")
    if check.counted and check.record is not None:
        # Kept on the server; the modal carries the context's id only (issue 19).
        context_id = await deps.modal_contexts.open(
            context.team_id or "",
            user,
            COMMENT_MODAL,
            str(body.get("response_url") or ""),
            approval=approval_id,
            ephemeral="1" if _from_ephemeral(body) else None,
        )
        view = cards.comment_modal(check.record, {"c": context_id})
        await deps.client.views_open(trigger_id=str(body.get("trigger_id") or ""), view=view)
    elif body.get("response_url"):
        await _reply(respond, check, user, from_ephemeral=False)
    else:
        await home.publish_home(deps, context.team_id or "", user)


def _chosen(view: dict[str, Any]) -> tuple[str, str | None]:
    """(the option, the comment) as submitted in the comment modal."""
    values = (view.get("state") or {}).get("values") or {}
    chosen = (values.get(cards.OPTION_BLOCK) or {}).get(cards.OPTION_ACTION) or {}
    typed = (values.get(cards.COMMENT_BLOCK) or {}).get(cards.COMMENT_ACTION) or {}
    return str((chosen.get("selected_option") or {}).get("value") or ""), (
        typed.get("value") or None
    )


def _context_id(view: dict[str, Any]) -> str:
    try:
        metadata = json.loads(view.get("private_metadata") or "{}")
    except ValueError:
        return ""
    return str(metadata.get("c") or "") if isinstance(metadata, dict) else ""


async def handle_comment(
    context: AsyncBoltContext, view: dict[str, Any], deps: HandlerDeps
) -> None:
    """The comment modal was submitted: record the chosen option with the comment, and
    answer where the button was clicked (the response URL kept when the modal opened),
    else in a DM."""
    team, user = context.team_id or "", context.user_id or ""
    opened = await deps.modal_contexts.find(_context_id(view), team, user, COMMENT_MODAL)
    if opened is None:  # not a modal this bot opened for this person here: nothing counts
        return
    option, comment = _chosen(view)
    result = await deps.approvals.respond(
        opened.data.get("approval", ""), user, option, comment, team_id=team
    )
    if opened.response_url:
        respond = AsyncRespond(response_url=opened.response_url)
        await _reply(respond, result, user, opened.data.get("ephemeral") == "1")
    elif (card := cards.answer(result, user)) is not None and result.record is not None:
        await deps.messenger.send_dm(user, card["text"], card["blocks"])


def register(app: AsyncApp, deps: HandlerDeps) -> None:
    @app.action(ACTION_PATTERN)
    async def approval_click(
        ack: AsyncAck,
        context: AsyncBoltContext,
        body: dict[str, Any],
        action: dict[str, Any],
        respond: AsyncRespond,
    ) -> None:
        confirm = await ack_reading_first(ack)
        await handle_click(context, body, action, respond, deps, confirm)

    @app.action(cards.COMMENT_BUTTON)
    async def approval_comment_button(
        ack: AsyncAck,
        context: AsyncBoltContext,
        body: dict[str, Any],
        action: dict[str, Any],
        respond: AsyncRespond,
    ) -> None:
        await ack()
        await handle_comment_button(context, body, action, respond, deps)

    @app.view(cards.COMMENT_CALLBACK)
    async def approval_comment(
        ack: AsyncAck, context: AsyncBoltContext, view: dict[str, Any]
    ) -> None:
        # Close the modal at once; the answer follows ephemerally like a click's.
        await ack()
        await handle_comment(context, view, deps)


async def _approvals(ctx: CommandContext) -> None:
    records = await ctx.deps.approvals.pending_for(ctx.team_id, ctx.user_id)
    asks = await ctx.deps.asks.pending_for(ctx.team_id, ctx.user_id)
    if asks and not records:
        await ctx.reply(**ask_cards.with_pending_asks(ask_cards.no_approvals(), asks))
        return
    await ctx.reply(**ask_cards.with_pending_asks(cards.pending_list(records), asks))


async def pending_approvals_section(
    deps: HandlerDeps, team_id: str, user_id: str
) -> list[dict[str, Any]]:
    """The App Home's "Pending approvals" blocks of one person (empty when none): a
    `HomeSection` for the App Home's list of sections."""
    # Only the first LIST_LIMIT are loaded (the rest counted): a decision refreshes the
    # Homes of its approvers, right after the resumed run's next step.
    records, total = await deps.approvals.pending_page(team_id, user_id, cards.LIST_LIMIT)
    return cards.pending_approvals_blocks(records, total)


SUBCOMMANDS: list[Subcommand] = [
    Subcommand(
        "approvals",
        "/flow approvals",
        "List the approvals waiting for you, with buttons",
        _approvals,
        max_args=0,
    ),
]

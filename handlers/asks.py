"""The `ask` step in Slack: the **Fill in** button opens the form, the submitted form is
recorded (or its field errors shown on the fields), the pending forms in the App Home.
Whether a person may answer and whether an answer counts is decided by `flows.asks`; the
request messages are posted by `adapters.ask_notifier`."""

from __future__ import annotations

import json
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncBoltContext, AsyncRespond

from cards import asks as cards
from cards.runs import INPUT_ACTION
from handlers import home
from handlers.deps import HandlerDeps
from handlers.run_commands import selected_value

# The name of `pending_asks_section` among the App Home's sections (bot.app lists it).
HOME_SECTION = "pending_asks"


async def handle_fill(
    context: AsyncBoltContext,
    body: dict[str, Any],
    action: dict[str, Any],
    respond: AsyncRespond,
    deps: HandlerDeps,
) -> None:
    """Fill in: open the form if this person was asked and it is still open."""
    user = context.user_id or ""
    ask_id = str(action.get("value") or "")
    check = await deps.asks.check(ask_id, user, team_id=context.team_id or "")
    if check.kind == "open" and check.record is not None:
        view = cards.form_modal(check.record, {"a": ask_id})
        await deps.client.views_open(trigger_id=str(body.get("trigger_id") or ""), view=view)
    elif body.get("response_url"):
        await respond(**cards.refusal(check), response_type="ephemeral", replace_original=False)
    else:
        await home.publish_home(deps, context.team_id or "", user)


def _raw_values(view: dict[str, Any]) -> dict[str, str | None]:
    """Field id → what was typed or picked."""
    values = (view.get("state") or {}).get("values") or {}
    raw: dict[str, str | None] = {}
    for block_id, elements in values.items():
        if block_id.startswith(cards.FIELD_PREFIX):
            element = (elements or {}).get(INPUT_ACTION) or {}
            raw[block_id[len(cards.FIELD_PREFIX) :]] = selected_value(element)
    return raw


async def handle_submit(
    ack: AsyncAck, context: AsyncBoltContext, view: dict[str, Any], deps: HandlerDeps
) -> None:
    """The form was submitted: errors on the fields, a notice if it cannot count, or
    close the modal (the messages then show who answered)."""
    try:
        ask_id = str(json.loads(view.get("private_metadata") or "{}").get("a") or "")
    except ValueError:
        ask_id = ""
    result = await deps.asks.submit(
        ask_id, context.user_id or "", _raw_values(view), team_id=context.team_id or ""
    )
    if result.kind == "invalid":
        await ack(response_action="errors", errors=cards.field_errors(result.errors))
    elif result.kind == "answered":
        await ack()
    else:
        await ack(response_action="update", view=cards.notice_view(result))


def register(app: AsyncApp, deps: HandlerDeps) -> None:
    @app.action(cards.FILL_BUTTON)
    async def ask_fill(
        ack: AsyncAck,
        context: AsyncBoltContext,
        body: dict[str, Any],
        action: dict[str, Any],
        respond: AsyncRespond,
    ) -> None:
        await ack()
        await handle_fill(context, body, action, respond, deps)

    @app.view(cards.SUBMIT_CALLBACK)
    async def ask_submit(ack: AsyncAck, context: AsyncBoltContext, view: dict[str, Any]) -> None:
        # Validation needs the store (a read and one compare-and-set): well within 3 s.
        await handle_submit(ack, context, view, deps)


async def pending_asks_section(
    deps: HandlerDeps, team_id: str, user_id: str
) -> list[dict[str, Any]]:
    """The App Home's "Forms to fill in" blocks of one person (empty when none)."""
    records, total = await deps.asks.pending_page(team_id, user_id, cards.LIST_LIMIT)
    return cards.pending_asks_blocks(records, total)

"""`/flow webhook <flow> [regenerate]`: a webhook flow's address, and a new secret token.

Owners only (Action.EDIT). The token is shown once, ephemerally, right after it is made;
Flowbot keeps only its sha256, and the previous token stops working at once.
"""

from __future__ import annotations

from cards import schedules as schedule_cards
from cards.common import error_message, escape
from flows.definition import WebhookTrigger
from flows.permissions import Action
from flows.triggers import TOKEN_HEADER
from handlers.commands import CommandContext, UsageError, subcommand
from handlers.flow_commands import catalog_errors, catalog_of

REGENERATE = "regenerate"


@subcommand(
    "webhook",
    "/flow webhook <flow> [regenerate]",
    "Show a webhook flow's address; regenerate its secret token",
)
@catalog_errors
async def webhook_command(ctx: CommandContext) -> None:
    args = list(ctx.args)
    regenerate = len(args) > 1 and args[-1].lower() == REGENERATE
    if regenerate:
        args.pop()
    if not args:
        raise UsageError("Name the flow.")
    triggers = ctx.deps.triggers
    if triggers is None:
        raise RuntimeError("automated triggers are not wired (bot.app)")
    flow, _ = await catalog_of(ctx.deps).authorize(
        ctx.team_id, ctx.user_id, " ".join(args), Action.EDIT
    )
    if not isinstance(flow.definition.trigger, WebhookTrigger):
        await ctx.reply(
            **error_message(
                f"*{escape(flow.name)}* is not started by a webhook (its trigger is "
                f"`{flow.definition.trigger.type}`).",
                None,
            )
        )
        return
    token = await triggers.regenerate_webhook_token(flow) if regenerate else None
    await ctx.reply(
        **schedule_cards.webhook_message(
            flow.name, flow.id, flow.enabled, token, TOKEN_HEADER, triggers.public_url
        )
    )

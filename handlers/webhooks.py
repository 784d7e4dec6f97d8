"""`/flow webhook <flow> [regenerate]`: a webhook flow's address, and a new secret token.

Owners only (Action.EDIT). The token is shown once, ephemerally, right after it is made;
Flowbot keeps only its sha256, and the previous token stops working at once. The address is
`<FLOWBOT_PUBLIC_URL>/hooks/<flow id>`; without the setting, the path and how to complete it.
"""

from __future__ import annotations

from cards import schedules as schedule_cards
from cards.common import context, error_message, escape
from flows.definition import WebhookTrigger
from flows.permissions import Action
from flows.triggers import TOKEN_HEADER
from handlers.commands import CommandContext, UsageError, subcommand
from handlers.flow_commands import catalog_errors, catalog_of

REGENERATE = "regenerate"
# Where the bot is reached from outside (bot.settings); without it only the path is known.
PUBLIC_URL_SETTING = "FLOWBOT_PUBLIC_URL"


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
    reply = schedule_cards.webhook_message(
        flow.name, flow.id, flow.enabled, token, TOKEN_HEADER, triggers.public_url
    )
    if not triggers.public_url:
        reply["blocks"].append(
            context(
                f"Prefix `/hooks/{flow.id}` with the bot's public URL; set "
                f"`{PUBLIC_URL_SETTING}` to have the full address shown here."
            )
        )
    await ctx.reply(**reply)

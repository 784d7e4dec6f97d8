"""`/flow webhook <flow> [regenerate]`: a webhook flow's address, and a new secret token.

Owners only (`FlowCatalog.webhook` decides). The token is shown once, ephemerally, right
after it is made; Flowbot keeps only its sha256, and the previous token stops working at
once. The address is `<FLOWBOT_PUBLIC_URL>/hooks/<flow id>`; without the setting, the path
and how to complete it.
"""

from __future__ import annotations

from cards import schedules as schedule_cards
from flows.triggers import TOKEN_HEADER
from handlers.commands import CommandContext, Subcommand, UsageError

REGENERATE = "regenerate"
# Where the bot is reached from outside (bot.settings); without it only the path is known.
PUBLIC_URL_SETTING = "FLOWBOT_PUBLIC_URL"


async def webhook_command(ctx: CommandContext) -> None:
    args = list(ctx.args)
    regenerate = len(args) > 1 and args[-1].lower() == REGENERATE
    if regenerate:
        args.pop()
    if not args:
        raise UsageError("Name the flow.")
    address = await ctx.deps.catalog.webhook(ctx.team_id, ctx.user_id, " ".join(args), regenerate)
    flow, public_url = address.flow, ctx.deps.triggers.public_url
    await ctx.reply(
        **schedule_cards.webhook_message(
            flow.name,
            flow.id,
            flow.enabled,
            address.token,
            TOKEN_HEADER,
            public_url,
            base_url_setting=PUBLIC_URL_SETTING,
        )
    )


SUBCOMMANDS: list[Subcommand] = [
    Subcommand(
        "webhook",
        "/flow webhook <flow> [regenerate]",
        "Show a webhook flow's address; regenerate its secret token",
        webhook_command,
    ),
]

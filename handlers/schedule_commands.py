"""`/flow next`, `/flow why`, `/flow backfill` (SPEC §14): listeners only.

`flows.schedule_insight.ScheduleInsight` decides (owners only, through
`flows.permissions`) and refuses with data; `cards.schedule_insight` words the answers.
"""

from __future__ import annotations

from cards import schedule_insight as cards
from flows.definition import ScheduleTrigger
from flows.schedule_insight import ScheduleInsight
from handlers.commands import CommandContext, Subcommand, UsageError

NEXT_USAGE = "/flow next <flow> [N]"
WHY_USAGE = "/flow why <flow> [N]"
BACKFILL_USAGE = "/flow backfill <flow> <from> <to>"


def _insight(ctx: CommandContext) -> ScheduleInsight:
    assert ctx.deps.insight is not None
    return ctx.deps.insight


def flow_and_count(args: list[str]) -> tuple[str, int]:
    """`<flow> [N]`: a trailing number is the count (0: the default)."""
    if not args:
        raise UsageError("Name the flow.")
    if len(args) > 1 and args[-1].isdigit():
        return " ".join(args[:-1]), int(args[-1])
    return " ".join(args), 0


def _tz(trigger: object) -> str:
    return trigger.timezone if isinstance(trigger, ScheduleTrigger) else "UTC"


async def next_command(ctx: CommandContext) -> None:
    ref, count = flow_and_count(ctx.args)
    answer = await _insight(ctx).next_runs(ctx.team_id, ctx.user_id, ref, count)
    await ctx.reply(**cards.next_message(answer.flow.name, answer.trigger.timezone, answer.times))


async def why_command(ctx: CommandContext) -> None:
    ref, count = flow_and_count(ctx.args)
    answer = await _insight(ctx).why(ctx.team_id, ctx.user_id, ref, count)
    tz = _tz(answer.flow.definition.trigger)
    kind = answer.flow.definition.trigger.type
    await ctx.reply(
        **cards.why_message(answer.flow.name, tz, answer.decisions, answer.unmatched, kind)
    )


async def backfill_command(ctx: CommandContext) -> None:
    if len(ctx.args) < 3:
        raise UsageError("Name the flow and the range: `<flow> <from> <to>`.")
    ref, start, end = " ".join(ctx.args[:-2]), ctx.args[-2], ctx.args[-1]
    done = await _insight(ctx).backfill(ctx.team_id, ctx.user_id, ref, start, end)
    await ctx.reply(
        **cards.backfill_message(
            done.flow.name, done.trigger.timezone, done.start, done.end, done.started, done.already
        )
    )


SUBCOMMANDS: list[Subcommand] = [
    Subcommand("next", NEXT_USAGE, "The next firing times of a scheduled flow", next_command),
    Subcommand(
        "why", WHY_USAGE, "Why a flow ran or did not: its last trigger decisions", why_command
    ),
    Subcommand(
        "backfill", BACKFILL_USAGE, "Run a schedule's past slots once each", backfill_command
    ),
]

"""`/flow cancel|retry|rerun <run id>` and the Cancel / Retry / Rerun buttons of a run's
notify message (SPEC §12). Listeners only: `flows.run_control.RunControl` decides
(through `flows.permissions`) and refuses with data; `cards.run_control` words it. A
refusal is a short ephemeral answer and changes nothing."""

from __future__ import annotations

from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncRespond

from cards import run_control as cards
from cards.errors import describe
from flows.errors import FlowbotError
from flows.run_control import ControlAction, Controlled, RunControl
from flows.run_requests import RunNotFound
from handlers.commands import CommandContext, Subcommand, UsageError
from handlers.deps import HandlerDeps

Body = dict[str, Any]


def _control(deps: HandlerDeps) -> RunControl:
    assert deps.run_control is not None, "bot.app wires RunControl"
    return deps.run_control


async def _act(
    control: RunControl, action: ControlAction, team_id: str, user_id: str, run_id: str
) -> Controlled:
    if action == "cancel":
        return await control.cancel(team_id, user_id, run_id)
    if action == "retry":
        return await control.retry(team_id, user_id, run_id)
    return await control.rerun(team_id, user_id, run_id)


def _command(action: ControlAction) -> Any:
    async def handle(ctx: CommandContext) -> None:
        if len(ctx.args) != 1:
            raise UsageError("Give the run id (history, details and notifications show it).")
        try:
            done = await _act(_control(ctx.deps), action, ctx.team_id, ctx.user_id, ctx.args[0])
        except RunNotFound as exc:  # a typed id that names no run: a typing mistake
            raise UsageError(cards.unknown_run_id(exc.run_id)) from None
        await ctx.reply(**cards.controlled(done))

    return handle


SUBCOMMANDS: list[Subcommand] = [
    Subcommand(
        "cancel",
        "/flow cancel <run id>",
        "Cancel a run in progress (owners, and whoever started it)",
        _command("cancel"),
    ),
    Subcommand(
        "retry",
        "/flow retry <run id>",
        "Continue a failed run from the step that failed (owners)",
        _command("retry"),
    ),
    Subcommand(
        "rerun",
        "/flow rerun <run id>",
        "Run the flow again with a run's inputs",
        _command("rerun"),
    ),
]


async def _clicked(
    deps: HandlerDeps, action: ControlAction, body: Body, respond: AsyncRespond
) -> None:
    user_id = str((body.get("user") or {}).get("id") or "")
    team = body.get("team") or {}
    team_id = str(team.get("id") or (body.get("user") or {}).get("team_id") or "")
    run_id = str(((body.get("actions") or [{}])[0]).get("value") or "")
    try:
        done = await _act(_control(deps), action, team_id, user_id, run_id)
    except FlowbotError as refusal:
        text = describe(refusal)
        await respond(text=text, response_type="ephemeral", replace_original=False)
        return
    card = cards.controlled(done)
    await respond(**card, response_type="ephemeral", replace_original=False)


def register(app: AsyncApp, deps: HandlerDeps) -> None:
    for action_id, action in (
        (cards.CANCEL_ACTION, "cancel"),
        (cards.RETRY_ACTION, "retry"),
        (cards.RERUN_ACTION, "rerun"),
    ):
        _listen(app, deps, action_id, action)  # type: ignore[arg-type]


def _listen(app: AsyncApp, deps: HandlerDeps, action_id: str, action: ControlAction) -> None:
    @app.action(action_id)
    async def clicked(ack: AsyncAck, body: Body, respond: AsyncRespond) -> None:
        await ack()
        await _clicked(deps, action, body, respond)

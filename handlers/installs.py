"""Many workspaces (OAuth): which workspace a request is for, and installs going away.

`BindWorkspace` is a global middleware: everything a request starts (listeners, the runs
and notices they cause) calls Slack with the token of the request's workspace. In OAuth
mode `register` also listens to `app_uninstalled` (the workspace removed the app: its
installation and tokens are forgotten; it is no longer served) and `tokens_revoked`."""

from __future__ import annotations

from typing import Any

from slack_bolt.async_app import AsyncApp, AsyncBoltContext
from slack_bolt.request.async_request import AsyncBoltRequest

from flows.workspace_context import Installations, current_team
from handlers.middleware import RequestMiddleware


class BindWorkspace(RequestMiddleware):
    async def before(self, req: AsyncBoltRequest) -> None:
        # Bolt runs the listeners after its middleware returns (its `next` only says "go
        # on"), in tasks that copy this task's context: bound for the rest of the request's
        # task.
        current_team.set(req.context.team_id or None)


def register(app: AsyncApp, installations: Installations) -> None:
    async def on_uninstalled(context: AsyncBoltContext) -> None:
        await installations.uninstalled(context.enterprise_id, context.team_id)

    async def on_tokens_revoked(body: dict[str, Any], context: AsyncBoltContext) -> None:
        tokens = (body.get("event") or {}).get("tokens") or {}
        await installations.tokens_revoked(
            context.enterprise_id, context.team_id, bot_revoked=bool(tokens.get("bot"))
        )

    app.event("app_uninstalled")(on_uninstalled)
    app.event("tokens_revoked")(on_tokens_revoked)

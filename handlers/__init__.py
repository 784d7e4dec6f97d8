"""Thin Slack listeners: parse, ask `flows`, render with `cards`."""

from __future__ import annotations

from slack_bolt.async_app import AsyncApp

from handlers.deps import HandlerDeps


def register_all(app: AsyncApp, deps: HandlerDeps) -> None:
    from handlers import commands

    commands.register(app, deps)
    # Feature areas register their subcommands, actions, views and events here.
    from handlers import flow_commands, home

    home.register(app, deps)
    flow_commands.register(app, deps)
    from handlers import run_commands

    run_commands.register(app, deps)
    from handlers import sharing

    sharing.register(app, deps)
    from handlers import approvals

    approvals.register(app, deps)
    from handlers import connections

    connections.register(app, deps)
    from handlers import events, webhooks  # noqa: F401 - webhooks: `/flow webhook`

    events.register(app, deps)

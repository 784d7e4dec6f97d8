"""Thin Slack listeners: parse, ask `flows`, render with `cards`."""

from __future__ import annotations

from slack_bolt.async_app import AsyncApp

from handlers.deps import HandlerDeps


def register_all(app: AsyncApp, deps: HandlerDeps) -> None:
    from handlers import commands

    commands.register(app, deps)
    # Feature areas register their subcommands, actions, views and events here.

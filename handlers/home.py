"""The App Home tab: published when someone opens it, and refreshed by other areas through
`publish_home(deps, team_id, user_id)`."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from slack_bolt.async_app import AsyncApp

from cards import home as home_cards
from flows.home import home_flows, welcome_seen
from handlers.deps import HandlerDeps, HomeSection

log = logging.getLogger(__name__)


async def _sections(
    deps: HandlerDeps, team_id: str, user_id: str
) -> dict[str, list[dict[str, Any]]]:
    """The sections other areas add (`deps.home_sections`), built for this person."""

    async def one(name: str, build: HomeSection) -> list[dict[str, Any]] | None:
        try:
            return await build(deps, team_id, user_id)
        except Exception:
            # One broken section must not blank the whole tab.
            log.exception("home section %s failed for %s", name, user_id)
            return None

    # Built at once (their reads overlap), kept in their order.
    built = await asyncio.gather(*(one(name, build) for name, build in deps.home_sections))
    names = [name for name, _ in deps.home_sections]
    return {name: blocks for name, blocks in zip(names, built, strict=True) if blocks is not None}


async def publish_home(deps: HandlerDeps, team_id: str, user_id: str) -> None:
    """Build and publish the home tab of one person (safe to call at any time)."""
    # The flows and the sections are read at once: a decision refreshes its approvers'
    # Homes while the next click may be on its way.
    flows, sections = await asyncio.gather(
        home_flows(deps.catalog, deps.users, team_id, user_id),
        _sections(deps, team_id, user_id),
    )
    view = home_cards.home_view(
        flows.owned,
        welcome=flows.welcome,
        runnable=flows.runnable,
        sections=sections,
    )
    await deps.client.views_publish(user_id=user_id, view=view)


def register(app: AsyncApp, deps: HandlerDeps) -> None:
    @app.event("app_home_opened")
    async def home_opened(event: dict[str, Any], body: dict[str, Any]) -> None:
        if event.get("tab", "home") != "home":
            return
        user_id = str(event.get("user", ""))
        team_id = str(body.get("team_id") or event.get("team") or "")
        if not user_id:
            return
        await publish_home(deps, team_id, user_id)
        await welcome_seen(deps.users, team_id, user_id, deps.clock.now())

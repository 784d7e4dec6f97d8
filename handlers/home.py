"""The App Home tab: published when someone opens it, and refreshed by other areas through
`publish_home(deps, team_id, user_id)`."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from slack_bolt.async_app import AsyncApp

from cards import home as home_cards
from flows.home import home_flows, welcome_seen
from handlers.deps import HandlerDeps

log = logging.getLogger(__name__)

Pause = Callable[[], Awaitable[None]]


async def _no_pause() -> None:
    pass


async def _sections(
    deps: HandlerDeps, team_id: str, user_id: str, pause: Pause = _no_pause
) -> dict[str, list[dict[str, Any]]]:
    """The sections other areas add (`deps.home_sections`), built for this person."""
    sections: dict[str, list[dict[str, Any]]] = {}
    for name, build in deps.home_sections:
        await pause()
        try:
            sections[name] = await build(deps, team_id, user_id)
        except Exception:
            # One broken section must not blank the whole tab.
            log.exception("home section %s failed for %s", name, user_id)
    return sections


async def publish_home(
    deps: HandlerDeps, team_id: str, user_id: str, pause: Pause = _no_pause
) -> None:
    """Build and publish the home tab of one person (safe to call at any time). `pause`
    is awaited between its reads: a refresh in the background lets clicks go first
    (`flows.foreground.Foreground.pause`)."""
    flows = await home_flows(deps.catalog, deps.users, team_id, user_id)
    view = home_cards.home_view(
        flows.owned,
        welcome=flows.welcome,
        runnable=flows.runnable,
        sections=await _sections(deps, team_id, user_id, pause),
    )
    await pause()
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

"""The App Home tab: published when someone opens it, and refreshed by other areas through
`publish_home(deps, team_id, user_id)`."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from slack_bolt.async_app import AsyncApp

from cards import home as home_cards
from flows.permissions import Action, allowed
from handlers.deps import HandlerDeps

log = logging.getLogger(__name__)

# Other areas add sections by name ("my_buttons" fills My buttons; pending approvals …):
# an async function (deps, team_id, user_id) → blocks.
HomeSection = Callable[[HandlerDeps, str, str], Awaitable[list[dict[str, Any]]]]
home_sections: dict[str, HomeSection] = {}


async def publish_home(deps: HandlerDeps, team_id: str, user_id: str) -> None:
    """Build and publish the home tab of one person (safe to call at any time)."""
    listed = await deps.catalog.list_for(team_id, user_id)
    owned = [item for item in listed if item.access.is_owner]
    runnable = frozenset(
        item.flow.id
        for item in owned
        if item.flow.kind == "instant"
        and item.flow.enabled
        and allowed(Action.RUN, item.flow, item.access)
    )
    sections: dict[str, list[dict[str, Any]]] = {}
    for name, build in list(home_sections.items()):
        try:
            sections[name] = await build(deps, team_id, user_id)
        except Exception:
            # One broken section must not blank the whole tab.
            log.exception("home section %s failed for %s", name, user_id)
    view = home_cards.home_view(
        [item.flow for item in owned],
        welcome=not await deps.users.has_seen_welcome(team_id, user_id),
        runnable=runnable,
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
        try:
            await publish_home(deps, team_id, user_id)
            # Seen once it was shown: the next opening goes straight to the flows.
            await deps.users.mark_welcome_seen(team_id, user_id, deps.clock.now())
        except Exception:
            log.exception("publishing the home tab of %s failed", user_id)

"""What a person's App Home shows of their flows: the use case behind the home tab."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from flows.catalog import FlowCatalog, UserStore
from flows.permissions import Action, allowed
from flows.records import FlowRecord


@dataclass(frozen=True)
class HomeFlows:
    owned: list[FlowRecord]  # the flows the person owns, by name
    runnable: frozenset[str]  # ids of those that get a Run button
    welcome: bool  # first visit: the welcome is shown


async def home_flows(
    catalog: FlowCatalog, users: UserStore, team_id: str, user_id: str
) -> HomeFlows:
    listed = await catalog.list_for(team_id, user_id)
    owned = [item for item in listed if item.access.is_owner]
    runnable = frozenset(
        item.flow.id
        for item in owned
        if item.flow.kind == "instant"
        and item.flow.enabled
        and allowed(Action.RUN, item.flow, item.access)
    )
    return HomeFlows(
        owned=[item.flow for item in owned],
        runnable=runnable,
        welcome=not await users.has_seen_welcome(team_id, user_id),
    )


async def welcome_seen(users: UserStore, team_id: str, user_id: str, at: datetime) -> None:
    """Seen once it was shown: the next opening goes straight to the flows."""
    await users.mark_welcome_seen(team_id, user_id, at)

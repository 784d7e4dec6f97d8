"""My buttons: the instant flows someone may run that were shared with them (directly or
through a group or channel), each "added", "removed" or still "new" (the App Home banner).
Access is read live, so a button whose access went away disappears."""

from __future__ import annotations

from flows.permissions import Action, allowed, resolve_access
from flows.records import FlowRecord
from flows.sharing.base import SharingCore
from flows.sharing.errors import SharingRefused
from flows.sharing.model import ButtonItem, MyButtons


def _by_name(item: ButtonItem) -> str:
    return item.flow.name.casefold()


class ButtonShelf(SharingCore):
    async def my_buttons(self, team_id: str, user_id: str) -> MyButtons:
        states = await self.buttons.states(team_id, user_id)
        added: list[ButtonItem] = []
        new: list[ButtonItem] = []
        removed: list[ButtonItem] = []
        for flow in await self.flows.list_candidates(team_id, user_id):
            if flow.kind != "instant" or flow.creator == user_id:
                continue
            access = await resolve_access(flow, user_id, self.directory)
            if not allowed(Action.RUN, flow, access):
                continue
            state = states.get(flow.id)
            if state is None:
                new.append(ButtonItem(flow, access, "new"))
            elif state.status == "added":
                added.append(ButtonItem(flow, access, "added"))
            else:
                removed.append(ButtonItem(flow, access, "removed"))
        key = _by_name
        return MyButtons(sorted(added, key=key), sorted(new, key=key), sorted(removed, key=key))

    async def add_button(self, team_id: str, user_id: str, flow_id: str) -> FlowRecord:
        flow = await self.find(team_id, flow_id)
        access = await resolve_access(flow, user_id, self.directory)
        if not allowed(Action.RUN, flow, access):
            raise SharingRefused("add_button", user_id, flow.name)
        await self.buttons.set_status(team_id, user_id, flow.id, "added", self.clock.now())
        return flow

    async def remove_button(self, team_id: str, user_id: str, flow_id: str) -> FlowRecord:
        """Anyone may take a button off their own shelf (it stays shared with them)."""
        flow = await self.find(team_id, flow_id)
        await self.buttons.set_status(team_id, user_id, flow.id, "removed", self.clock.now())
        return flow

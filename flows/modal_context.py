"""What a modal needs when it is submitted, kept on the server (issue 19).

A view's `private_metadata` comes back inside a payload, so it is untrusted input: it
carries only the random id of a `ModalContext` (sealed on top, `flows.sealed`). The
context holds what the listener needs: where to answer (the response URL of the slash
command or click that opened the modal, taken from Slack's payload then), the flow, the
slot… A context is found only by the workspace, the person and the kind of modal it was
made for, and for `KEEP`: a submission naming another modal's context, another person's,
or none finds nothing, and no address it carries is ever used.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol

from flows.ports import Clock

# Slack keeps a modal open for hours at most; its context is kept a day.
KEEP = timedelta(days=1)
_ID_BYTES = 18


@dataclass(frozen=True)
class ModalContext:
    id: str
    team_id: str
    user_id: str
    kind: str  # "run", "approval_comment", "connection"…
    created_at: datetime
    # Where to answer: the response URL of the command or click that opened the modal.
    response_url: str = ""
    # Ids and flags the listener needs (flow id, slot, channel, view id…).
    data: dict[str, str] = field(default_factory=dict)


class ModalContextStore(Protocol):
    async def put(self, context: ModalContext) -> None: ...

    async def get(
        self, context_id: str, team_id: str, user_id: str, kind: str
    ) -> ModalContext | None:
        """The context with this id made for this workspace, person and kind; else None."""
        ...


class ModalContexts:
    """Opens a context when a modal is opened; finds it again when the modal comes back."""

    def __init__(self, store: ModalContextStore, clock: Clock) -> None:
        self.store = store
        self.clock = clock

    async def open(
        self, team_id: str, user_id: str, kind: str, response_url: str = "", **data: str | None
    ) -> str:
        """A new context; returns its id, all the modal's metadata will carry."""
        context = ModalContext(
            id=secrets.token_urlsafe(_ID_BYTES),
            team_id=team_id,
            user_id=user_id,
            kind=kind,
            created_at=self.clock.now(),
            response_url=response_url or "",
            data={key: str(value) for key, value in data.items() if value is not None},
        )
        await self.store.put(context)
        return context.id

    async def find(
        self, metadata: object, team_id: str, user_id: str, kind: str
    ) -> ModalContext | None:
        """The context a submitted modal's metadata names, if it is this person's, in this
        workspace, of this kind, and not expired; else None."""
        if not isinstance(metadata, str) or not metadata or len(metadata) > 64:
            return None
        if not team_id or not user_id:
            return None
        context = await self.store.get(metadata, team_id, user_id, kind)
        if context is None or self.clock.now() - context.created_at > KEEP:
            return None
        return context

"""`MemoryModalContexts`: `flows.modal_context.ModalContextStore` in memory (MongoDB:
`storage.modal_contexts_repo`). No TTL: `ModalContexts` checks the age itself."""

from __future__ import annotations

from dataclasses import replace

from flows.modal_context import ModalContext


class MemoryModalContexts:
    def __init__(self) -> None:
        self._contexts: dict[str, ModalContext] = {}

    async def put(self, context: ModalContext) -> None:
        if context.id in self._contexts:
            raise ValueError(f"duplicate modal context {context.id}")  # as _id is unique
        self._contexts[context.id] = replace(context, data=dict(context.data))

    async def get(
        self, context_id: str, team_id: str, user_id: str, kind: str
    ) -> ModalContext | None:
        found = self._contexts.get(context_id)
        if found is None or (found.team_id, found.user_id, found.kind) != (
            team_id,
            user_id,
            kind,
        ):
            return None
        return replace(found, data=dict(found.data))

"""The composition root: settings → storage, Slack client, services, Bolt app."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Protocol

from slack_bolt.async_app import AsyncApp

import handlers
from bot.settings import Settings
from flows.ports import Clock, IdGenerator, RandomIds, SystemClock
from handlers.deps import HandlerDeps
from handlers.slack_adapters import SlackDirectory, SlackMessenger, make_client
from storage.mongo import Storage

log = logging.getLogger(__name__)


class Service(Protocol):
    """Something with background work: started after the indexes, stopped before the DB."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


@dataclass
class Flowbot:
    settings: Settings
    storage: Storage
    deps: HandlerDeps
    bolt: AsyncApp | None
    services: list[Service] = field(default_factory=list)

    async def start(self) -> None:
        await self.storage.ensure_indexes()
        for service in self.services:
            await service.start()

    async def stop(self) -> None:
        for service in reversed(self.services):
            try:
                await service.stop()
            except Exception:
                log.exception("stopping %s failed", type(service).__name__)
        self.storage.close()


def build(
    settings: Settings,
    mongodb_uri: str,
    clock: Clock | None = None,
    ids: IdGenerator | None = None,
) -> Flowbot:
    clock = clock or SystemClock()
    ids = ids or RandomIds()
    storage = Storage(mongodb_uri, settings.mongodb_db)
    token = settings.slack_bot_token.get_secret_value() if settings.slack_bot_token else ""
    client = make_client(token, settings.slack_api_url)
    messenger = SlackMessenger(client)
    directory = SlackDirectory(client)
    services: list[Service] = []

    # --- flows: definitions and authoring (issue 3)

    # --- runs: the engine (issue 4)

    # --- sharing (issue 5)

    # --- approvals (issue 6)

    # --- connections (issue 7)

    # --- schedules and events (issue 8)

    deps = HandlerDeps(
        client=client,
        messenger=messenger,
        directory=directory,
        clock=clock,
        ids=ids,
    )

    bolt: AsyncApp | None = None
    if settings.slack_configured:
        assert settings.slack_signing_secret is not None
        bolt = AsyncApp(
            client=client,
            signing_secret=settings.slack_signing_secret.get_secret_value(),
            process_before_response=False,
            raise_error_for_unhandled_request=False,
        )
        handlers.register_all(bolt, deps)
    return Flowbot(settings=settings, storage=storage, deps=deps, bolt=bolt, services=services)

"""What the Slack listeners need, passed explicitly (built in `bot.app`)."""

from __future__ import annotations

from dataclasses import dataclass

from slack_sdk.web.async_client import AsyncWebClient

from flows.ports import Clock, Directory, IdGenerator, Messenger


@dataclass
class HandlerDeps:
    client: AsyncWebClient
    messenger: Messenger
    directory: Directory
    clock: Clock
    ids: IdGenerator
    # Services of the feature areas are added below, one line each.

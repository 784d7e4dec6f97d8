"""Run notifications in Slack: `flows.run_model.RunNotifier` implemented with the Web API.

- One message per run in the flow's notify channel: posted when the run starts, updated
  (chat.update) as it progresses, ending with succeeded or failed (error, failing step),
  or cancelled (why: the flow was deleted, by whom).
- Whoever started an instant run sees its result (a cancellation too): ephemeral through
  the slash command's response_url while it is valid, else a DM.

Every call goes through the client's slack_sdk retry handlers (429 with Retry-After,
server errors): nothing is dropped.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from slack_sdk.errors import SlackApiError
from slack_sdk.webhook.async_client import AsyncWebhookClient

from adapters.response_urls import ResponseUrls
from adapters.slack import RETRY_HANDLERS
from cards import runs as run_cards
from flows.ports import Clock, Directory, Messenger
from flows.records import MessageRef, RunRecord
from flows.run_model import RunEvent

log = logging.getLogger(__name__)

# Slack accepts up to 5 answers through a response_url within 30 minutes.
RESPONSE_URL_LIFETIME = timedelta(minutes=29)


def describe_error(exc: BaseException) -> str:
    """A step's error as people should read it: Slack's own error code for API errors."""
    if isinstance(exc, SlackApiError):
        error = exc.response.get("error") if exc.response is not None else None
        return f"Slack error: {error or 'request failed'}"
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class SlackRunNotifier:
    def __init__(
        self,
        messenger: Messenger,
        directory: Directory,
        clock: Clock,
        response_urls: ResponseUrls | None = None,
    ) -> None:
        self.messenger = messenger
        self.directory = directory
        self.clock = clock
        # Answers to response URLs share the app's connections (adapters/response_urls.py).
        self.response_urls = response_urls

    async def run_event(self, run: RunRecord, event: RunEvent) -> MessageRef | None:
        ref = await self._notify_channel(run)
        if event in ("finished", "cancelled"):
            await self._tell_starter(run)
        return ref

    async def _notify_channel(self, run: RunRecord) -> MessageRef | None:
        ref = run.notify_message
        target = run.definition.notify
        if not target:
            return ref
        card = run_cards.run_notice(run, self.clock.now())
        try:
            if ref is None:
                channel = await self.directory.resolve_channel(run.team_id, target)
                return await self.messenger.post_message(channel, card["text"], card["blocks"])
            await self.messenger.update_message(ref, card["text"], card["blocks"])
        except SlackApiError as exc:
            log.warning("run %s: notify channel %s: %s", run.id, target, describe_error(exc))
        return ref

    async def _tell_starter(self, run: RunRecord) -> None:
        user = run.trigger.user if run.trigger.type == "manual" else None
        if not user:
            return
        card = run_cards.run_result(run, self.clock.now())
        if run.reply_to and run.reply_to.startswith(("http://", "https://")):
            fresh = self.clock.now() - run.created_at < RESPONSE_URL_LIFETIME
            if fresh and await self._respond(run.reply_to, card):
                return
        try:
            await self.messenger.send_dm(user, card["text"], card["blocks"])
        except SlackApiError as exc:
            log.warning("run %s: could not tell %s: %s", run.id, user, describe_error(exc))

    async def _respond(self, response_url: str, card: run_cards.Message) -> bool:
        client = (
            self.response_urls.client(response_url, RETRY_HANDLERS)
            if self.response_urls is not None
            else AsyncWebhookClient(response_url, retry_handlers=list(RETRY_HANDLERS))
        )
        try:
            response = await client.send(
                text=card["text"],
                blocks=card["blocks"],
                response_type="ephemeral",
                replace_original=False,
            )
        except Exception:
            log.warning("response_url answer failed", exc_info=True)
            return False
        return response.status_code == 200

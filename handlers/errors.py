"""The app-wide error handler: what a listener did not handle ends here, once.

It is logged with its traceback; the person who clicked or typed is answered through the
payload's `response_url` when there is one (slash commands, block actions): a refusal
(`FlowbotError`) in its words from `cards.errors`, anything else as a failure that changed
nothing. Listeners therefore have no `except Exception` of their own.
"""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt.async_app import AsyncApp
from slack_bolt.context.respond.async_respond import AsyncRespond

from cards.errors import failure_message
from flows.errors import FlowbotError

log = logging.getLogger(__name__)


class RepeatedDelivery(Exception):
    """A click delivered again (replayed after a restart), found once acknowledged: its
    listener stops there, before doing anything; nobody is answered."""


def _what(body: dict[str, Any]) -> str:
    """The request, briefly, for the log: `/flow run …`, `block_actions run_flow` …"""
    if body.get("command"):
        return f"{body['command']} {str(body.get('text') or '').split(' ', 1)[0]}".strip()
    kind = str(body.get("type") or "request")
    if kind == "block_actions":
        actions = body.get("actions") or [{}]
        return f"{kind} {actions[0].get('action_id', '')}".strip()
    if kind == "view_submission":
        return f"{kind} {(body.get('view') or {}).get('callback_id', '')}".strip()
    if kind == "event_callback":
        return f"event {(body.get('event') or {}).get('type', '')}".strip()
    return kind


async def handle_error(error: Exception, body: dict[str, Any], respond: AsyncRespond) -> None:
    if isinstance(error, RepeatedDelivery):
        log.info("ignoring a repeated %s delivery", _what(body))
        return
    if isinstance(error, FlowbotError):
        log.info("%s refused: %r", _what(body), error)
    else:
        log.error("%s failed", _what(body), exc_info=error)
    if not body.get("response_url"):
        return  # views and events: nobody to answer in place
    try:
        await respond(**failure_message(error), response_type="ephemeral")
    except Exception:
        log.exception("answering the failure of %s failed", _what(body))


def register(app: AsyncApp) -> None:
    app.error(handle_error)

"""Logging: plain lines or `LOG_FORMAT=json` (one JSON object per line), each carrying the
request id or run id it is about (`flows.log_context`), and the request-id middleware."""

from __future__ import annotations

import json
import logging
import secrets
import sys
import time
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

from aiohttp import web

from flows import log_context

RECEIVED_AT = web.RequestKey("received_at", float)


class ContextFilter(logging.Filter):
    """Puts `request_id` and `run_id` on every record (None when not about one)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = log_context.request_id.get()
        if not hasattr(record, "run_id"):
            record.run_id = log_context.run_id.get()
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, timezone.utc).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key in ("request_id", "run_id"):
            value = getattr(record, key, None)
            if value:
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        about = [
            f"{key}={value}"
            for key in ("request_id", "run_id")
            if (value := getattr(record, key, None))
        ]
        return f"{line} [{' '.join(about)}]" if about else line


def configure_logging(level: str, fmt: str = "text") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(ContextFilter())
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    logging.getLogger("slack_bolt").setLevel(max(logging.getLevelName(level), logging.WARNING))
    bolt = logging.getLogger("slack_bolt.AsyncApp")
    if not any(isinstance(f, _DropClientTokenWarning) for f in bolt.filters):
        bolt.addFilter(_DropClientTokenWarning())


class _DropClientTokenWarning(logging.Filter):
    """Bolt warns "`token` will be unused" when SLACK_BOT_TOKEN is in the environment and
    an `AsyncApp` gets a client: ours is made from that very token (with retries and
    metrics), so the warning is wrong here. Only that message is dropped."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "`token` will be unused" not in record.getMessage()


def new_request_id() -> str:
    return "req-" + secrets.token_hex(6)


def bind_request_id(request: web.Request) -> str:
    """Gives the request an id (a sane incoming X-Request-Id is kept), bound for its logs
    and for the tasks it starts; the response echoes it (`bot.server.request_frame`)."""
    request[RECEIVED_AT] = time.monotonic()
    incoming = request.headers.get("X-Request-Id", "")
    rid = incoming if 0 < len(incoming) <= 64 and incoming.isprintable() else new_request_id()
    log_context.bind_request(rid)
    return rid


def request_age(request: web.Request) -> float:
    return time.monotonic() - request.get(RECEIVED_AT, time.monotonic())


def request_kind(body: Mapping[str, Any]) -> str:
    """A Slack request's kind, for the ack latency label: command, block_actions,
    view_submission, event_callback …"""
    if body.get("command"):
        return "command"
    kind = body.get("type")
    if isinstance(kind, str) and kind.replace("_", "").isalpha() and len(kind) <= 40:
        return kind
    return "other"

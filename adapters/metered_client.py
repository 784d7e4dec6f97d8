"""Slack's Web API client, counted: calls by method and outcome, and every HTTP 429.

`make_client` (adapters/slack.py) builds it; the counts go to the `flows.metrics.Metrics`
port. A 429 is counted when Slack answers it, before the rate-limit retry handler waits
out `Retry-After`, so retried calls show up too."""

from __future__ import annotations

import re
import time
from typing import Any

from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.async_handler import AsyncRetryHandler
from slack_sdk.http_retry.request import HttpRequest
from slack_sdk.http_retry.response import HttpResponse
from slack_sdk.http_retry.state import RetryState
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.web.async_slack_response import AsyncSlackResponse

from flows.metrics import Metrics

_ERROR_CODE = re.compile(r"[a-z_]{1,48}")
_METHOD = re.compile(r"[A-Za-z.]{1,64}")


def _method_label(name: str) -> str:
    return name if _METHOD.fullmatch(name) else "other"


def _outcome(exc: SlackApiError) -> str:
    """Slack's error code (a fixed vocabulary: channel_not_found, ratelimited …)."""
    response = exc.response
    error = response.get("error") if response is not None else None
    return error if isinstance(error, str) and _ERROR_CODE.fullmatch(error) else "error"


class RateLimitCounter(AsyncRetryHandler):
    """First among the retry handlers: never retries itself, counts each 429 it sees."""

    def __init__(self, metrics: Metrics) -> None:
        super().__init__(max_retry_count=0)
        self.metrics = metrics

    async def can_retry_async(
        self,
        *,
        state: RetryState,
        request: HttpRequest,
        response: HttpResponse | None = None,
        error: Exception | None = None,
    ) -> bool:
        if response is not None and response.status_code == 429:
            self.metrics.slack_rate_limited(_method_label(request.url.rsplit("/", 1)[-1]))
        return False


class MeteredWebClient(AsyncWebClient):
    """Counts every call when given `metrics` (None: a plain client)."""

    def __init__(self, *args: Any, metrics: Metrics | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.metrics = metrics
        if metrics is not None:
            self.retry_handlers.insert(0, RateLimitCounter(metrics))

    async def api_call(self, api_method: str, **kwargs: Any) -> AsyncSlackResponse:
        if self.metrics is None:
            return await super().api_call(api_method, **kwargs)
        started = time.monotonic()
        outcome = "exception"
        try:
            response = await super().api_call(api_method, **kwargs)
            outcome = "ok"
            return response
        except SlackApiError as exc:
            outcome = _outcome(exc)
            raise
        finally:
            self.metrics.slack_call(_method_label(api_method), outcome, time.monotonic() - started)

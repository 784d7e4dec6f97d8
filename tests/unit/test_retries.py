"""Which failures are transient (retried) and how long the waits between tries are."""

from __future__ import annotations

from datetime import timedelta

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_slack_response import AsyncSlackResponse

from flows.definition.failure import RetryPolicy
from flows.retries import classify, retry_after_seconds, transient_status


def slack_error(status: int, code: str, headers: dict[str, str] | None = None) -> SlackApiError:
    response = AsyncSlackResponse(
        client=None,
        http_verb="POST",
        api_url="https://slack.com/api/chat.postMessage",
        req_args={},
        data={"ok": False, "error": code},
        headers=headers or {},
        status_code=status,
    )
    return SlackApiError(code, response)


def test_transient_http_statuses() -> None:
    assert [
        s for s in (200, 400, 401, 404, 408, 409, 429, 500, 502, 503) if transient_status(s)
    ] == [
        408,
        429,
        500,
        502,
        503,
    ]
    assert not transient_status(None)


def test_slack_rate_limits_and_server_errors_are_transient_refusals_are_not() -> None:
    assert classify(slack_error(429, "ratelimited", {"Retry-After": "7"})) == (True, 7.0)
    assert classify(slack_error(500, "fatal_error")) == (True, None)
    assert classify(slack_error(200, "internal_error")) == (True, None)
    assert classify(slack_error(200, "channel_not_found")) == (False, None)
    assert classify(TimeoutError()) == (True, None)
    assert classify(ConnectionResetError()) == (True, None)
    assert classify(ValueError("bad")) == (False, None)
    assert classify(FileNotFoundError()) == (False, None)


def test_backoff_doubles_up_to_its_ceiling() -> None:
    policy = RetryPolicy(attempts=6, backoff="2s", max_backoff="10s")
    waits = [policy.wait_before(n).total_seconds() for n in range(2, 7)]
    assert waits == [2, 4, 8, 10, 10]
    assert RetryPolicy().wait_before(2) == timedelta(seconds=1)


def test_retry_after_in_seconds_or_as_a_date() -> None:
    assert retry_after_seconds("12") == 12
    assert retry_after_seconds(None) is None
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT") == 0
    assert retry_after_seconds("soon") is None

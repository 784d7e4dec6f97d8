"""Words for the refusals `flows` raises as data (`flows.errors.FlowbotError`).

Each area words its own errors in its cards module (`describe_<area>_error`, returning
None for errors it does not know); `describe` asks them in turn. Add an area's function to
`_AREAS` when it gains errors of its own.
"""

from __future__ import annotations

from collections.abc import Callable

from cards.approvals import describe_approvals_error
from cards.common import Message, error_message, escape
from cards.connections import describe_connections_error
from cards.flows import describe_flows_error
from cards.run_control import describe_run_control_error
from cards.runs import describe_runs_error
from cards.schedule_insight import describe_schedule_error
from cards.sharing import describe_sharing_error
from flows.errors import FlowbotError, FlowNotFound, NotAllowed

# The answer to a request that failed unexpectedly (after it was logged).
FAILURE = "Something went wrong; nothing was changed."

_VERBS = {
    "view": "see",
    "edit": "edit",
    "delete": "delete",
    "export": "export",
    "run": "run",
}


def describe_common_error(error: FlowbotError) -> str | None:
    if isinstance(error, FlowNotFound):
        return f"There is no flow named `{escape(error.ref)}` in this workspace."
    if isinstance(error, NotAllowed):
        if error.reason:
            return error.reason
        verb = _VERBS.get(error.action, error.action.replace("_", " "))
        return f"You can't {verb} flow *{escape(error.flow_name)}*: only its owners can."
    return None


_AREAS: list[Callable[[FlowbotError], str | None]] = [
    describe_common_error,
    describe_flows_error,
    describe_runs_error,
    describe_approvals_error,
    describe_sharing_error,
    describe_connections_error,
    describe_schedule_error,
    describe_run_control_error,
]


def describe(error: FlowbotError) -> str:
    """The mrkdwn sentence shown to the person whose request was refused."""
    for area in _AREAS:
        text = area(error)
        if text is not None:
            return text
    return escape(str(error))


def failure_message(error: BaseException) -> Message:
    """The ephemeral answer to a request that raised `error`: a refusal in its own words,
    anything else as a failure that changed nothing."""
    if isinstance(error, FlowbotError):
        return error_message(describe(error), None)
    return error_message(FAILURE, None)

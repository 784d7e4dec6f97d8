"""Words for the refusals `flows` raises as data (`flows.errors.FlowbotError`).

Each area words its own errors in its cards module (`describe_<area>_error`, returning
None for errors it does not know); `describe` asks them in turn. Add an area's function to
`_AREAS` when it gains errors of its own.
"""

from __future__ import annotations

from collections.abc import Callable

from flows.errors import FlowbotError, FlowNotFound, NotAllowed

_VERBS = {
    "view": "see",
    "edit": "edit",
    "delete": "delete",
    "export": "export",
    "run": "run",
}


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def describe_common_error(error: FlowbotError) -> str | None:
    if isinstance(error, FlowNotFound):
        return f"There is no flow named `{_escape(error.ref)}` in this workspace."
    if isinstance(error, NotAllowed):
        if error.reason:
            return error.reason
        verb = _VERBS.get(error.action, error.action.replace("_", " "))
        return f"You can't {verb} flow *{_escape(error.flow_name)}*: only its owners can."
    return None


_AREAS: list[Callable[[FlowbotError], str | None]] = [describe_common_error]


def describe(error: FlowbotError) -> str:
    """The mrkdwn sentence shown to the person whose request was refused."""
    for area in _AREAS:
        text = area(error)
        if text is not None:
            return text
    return _escape(str(error))

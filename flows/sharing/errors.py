"""Sharing's refusals, as data (which operation, which flow, which person).

`cards.sharing.describe_sharing_error` words them. An unknown flow is
`flows.errors.FlowNotFound`, as everywhere.
"""

from __future__ import annotations

from typing import Literal

from flows.errors import FlowbotError

# What `flows.permissions` refused. Each is worded on its own in `cards.sharing`.
RefusedOperation = Literal[
    "share",
    "unshare",
    "see_users",
    "see_audit",
    "share_link",
    "keep_managing",  # the sharing list changed under us and the actor lost the right
    "answer_request",
    "add_button",
    "set_creators",
]
# Where an instant flow (a button) was needed.
ButtonPurpose = Literal["run_only_share", "link", "request", "approve"]


class SharingError(FlowbotError):
    """A refused sharing operation; nothing was changed."""


class SharingRefused(SharingError):
    """`flows.permissions` said no. `flow_name` is None for workspace-wide settings."""

    def __init__(self, operation: RefusedOperation, user_id: str, flow_name: str | None) -> None:
        super().__init__(f"{user_id} may not {operation.replace('_', ' ')} ({flow_name or '-'})")
        self.operation: RefusedOperation = operation
        self.user_id = user_id
        self.flow_name = flow_name


class NotAButton(SharingError):
    """The operation exists for instant flows only; `kind` is the flow's kind now."""

    def __init__(self, purpose: ButtonPurpose, flow_name: str, kind: str) -> None:
        super().__init__(f"{flow_name!r} is a {kind} flow, not a button ({purpose})")
        self.purpose: ButtonPurpose = purpose
        self.flow_name = flow_name
        self.kind = kind


class SharingConflict(SharingError):
    """The sharing list kept changing under us; the change was not made."""

    def __init__(self, flow_name: str) -> None:
        super().__init__(f"the sharing list of {flow_name!r} kept changing")
        self.flow_name = flow_name


class RequestGone(SharingError):
    """The access request (or the flow it asked for: `flow_name` set) no longer exists."""

    def __init__(self, request_id: str, flow_name: str | None = None) -> None:
        gone = f"flow {flow_name!r}" if flow_name else "request"
        super().__init__(f"access request {request_id}: the {gone} no longer exists")
        self.request_id = request_id
        self.flow_name = flow_name


class BadCreatorsList(SharingError):
    """The creation policy names something that is no user, user group or channel."""

    def __init__(self, invalid: list[str]) -> None:
        super().__init__(f"not users, groups or channels: {invalid}")
        self.invalid = invalid


class LinkNotPosted(SharingError):
    """The link could not be posted in `channel` (mostly: the bot is not a member)."""

    def __init__(self, flow_name: str, channel: str) -> None:
        super().__init__(f"could not post a link to {flow_name!r} in {channel}")
        self.flow_name = flow_name
        self.channel = channel

"""Refusals as data. A use case raises one of these; `cards.errors` words it for Slack.

Domain errors carry what was refused, which flow, which person: never Slack mrkdwn. An
area's own errors subclass `FlowbotError` next to its use cases and keep their data in
attributes; `str()` of one is a plain-text fallback for logs and the CLI.
"""

from __future__ import annotations

from typing import ClassVar


class FlowbotError(Exception):
    """A refused operation; nothing was changed."""

    # A slash command refused with this error shows the subcommand's usage line too:
    # true for mistakes in what was typed (an unknown flow, slot or connection name).
    typing_mistake: ClassVar[bool] = False


class FlowNotFound(FlowbotError):
    """No flow with this name or id in the workspace (or none the person may see)."""

    typing_mistake = True

    def __init__(self, ref: str) -> None:
        super().__init__(f"There is no flow named {ref!r} in this workspace.")
        self.ref = ref


class NotAllowed(FlowbotError):
    """`flows.permissions` said no. `action` is the permission's name (an `Action` value)."""

    def __init__(self, action: str, flow_name: str, user_id: str, reason: str = "") -> None:
        super().__init__(f"{user_id} may not {action} flow {flow_name!r}. {reason}".strip())
        self.action = action
        self.flow_name = flow_name
        self.user_id = user_id
        self.reason = reason

"""Refusals of the connections area, as data (`cards.connections` words them).

Every error keeps what was refused and which flow, slot or connection it concerns; none
holds a secret. `field` names the connect form's field at fault (name, base_url,
header_name or a secret field) or, for a run's choices, the slot; None when no field is.
"""

from __future__ import annotations

from collections.abc import Sequence

from flows.errors import FlowbotError


class ConnectionProblem(FlowbotError):
    """A connection operation was refused; nothing was changed."""

    # `/flow connect` and `/flow connections` show their usage with every refusal.
    typing_mistake = True

    field: str | None = None


# --------------------------------------------------------------------------- the form


class UnknownConnectionKind(ConnectionProblem):
    def __init__(self, kind: str) -> None:
        super().__init__(f"Unknown connection type {kind!r}.")
        self.kind = kind


class InvalidSecretField(ConnectionProblem):
    """A secret field is missing, too long or holds a line break (`problem`: "required",
    "too_long", "line_break")."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"The field {field} is refused: {problem.replace('_', ' ')}.")
        self.field = field
        self.problem = problem


class ColonInUserName(ConnectionProblem):
    field = "username"

    def __init__(self) -> None:
        super().__init__("The user name may not contain ':'.")


class MissingName(ConnectionProblem):
    field = "name"

    def __init__(self) -> None:
        super().__init__("A connection needs a name.")


class NameTooLong(ConnectionProblem):
    field = "name"

    def __init__(self, limit: int) -> None:
        super().__init__(f"A connection name has at most {limit} characters.")
        self.limit = limit


class InvalidHeaderName(ConnectionProblem):
    field = "header_name"

    def __init__(self) -> None:
        super().__init__("The header name must be a single word such as X-API-Key.")


class ReservedHeaderName(ConnectionProblem):
    field = "header_name"

    def __init__(self, header_name: str) -> None:
        super().__init__(f"The header {header_name} cannot carry a credential.")
        self.header_name = header_name


class InvalidBaseUrl(ConnectionProblem):
    """`reason` is `flows.http_policy`'s plain sentence (it names no secret)."""

    field = "base_url"

    def __init__(self, reason: str) -> None:
        super().__init__(f"Base URL: {reason}.")
        self.reason = reason


class DuplicateConnectionName(ConnectionProblem):
    field = "name"

    def __init__(self, name: str) -> None:
        super().__init__(f"You already have a connection named {name!r}.")
        self.name = name


# --------------------------------------------------------------------------- own connections


class ConnectionNotFound(ConnectionProblem):
    """Not the person's own connection (or none at all: they learn nothing about connections
    that are not theirs). `name` when it was looked up by name."""

    def __init__(self, name: str | None = None) -> None:
        what = f"named {name!r}" if name is not None else "with this id"
        super().__init__(f"There is no connection {what} of yours.")
        self.name = name


# --------------------------------------------------------------------------- flow slots


class ConnectionsNotAllowed(ConnectionProblem):
    """`flows.permissions` refused: `what` is "attach" (fill a slot), "change" (empty a slot
    or choose what run-only users do) or "view" (open the flow's slots)."""

    def __init__(self, what: str, flow_name: str, user_id: str) -> None:
        super().__init__(f"{user_id} may not {what} the connections of flow {flow_name!r}.")
        self.what = what
        self.flow_name = flow_name
        self.user_id = user_id


class NoSuchSlot(ConnectionProblem):
    def __init__(self, flow_name: str, slot: str, slots: Sequence[str]) -> None:
        super().__init__(f"Flow {flow_name!r} has no connection slot {slot!r}.")
        self.flow_name = flow_name
        self.slot = slot
        self.slots = list(slots)


class SlotKindMismatch(ConnectionProblem):
    def __init__(
        self, slot: str, slot_kind: str, connection_name: str, connection_kind: str
    ) -> None:
        super().__init__(
            f"Slot {slot!r} needs a {slot_kind} connection; {connection_name!r} "
            f"is a {connection_kind}."
        )
        self.slot = slot
        self.slot_kind = slot_kind
        self.connection_name = connection_name
        self.connection_kind = connection_kind


class FlowGone(ConnectionProblem):
    def __init__(self, flow_name: str) -> None:
        super().__init__(f"Flow {flow_name!r} no longer exists.")
        self.flow_name = flow_name


class BindingsChanged(ConnectionProblem):
    """Others kept changing the flow's slots while this change was retried."""

    def __init__(self, flow_name: str) -> None:
        super().__init__(f"The connections of flow {flow_name!r} changed meanwhile.")
        self.flow_name = flow_name


# --------------------------------------------------------------------------- a run's choices


class RunnerChoiceProblem(ConnectionProblem):
    """The run modal's choice for `slot` is refused: `problem` is "missing", "not_yours" or
    "wrong_kind"."""

    def __init__(self, slot: str, problem: str) -> None:
        super().__init__(f"The connection for slot {slot!r} is refused: {problem}.")
        self.field = slot
        self.slot = slot
        self.problem = problem

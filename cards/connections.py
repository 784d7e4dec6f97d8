"""Block Kit for connections: the connect modal, my connections, a flow's connection slots,
and the run modal's per-slot picker. Cards never receive a secret: only masked hints."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from slack_sdk.models.blocks import (
    ConfirmObject,
    InputBlock,
    MarkdownTextObject,
    Option,
    PlainTextInputElement,
    StaticSelectElement,
)

from cards.common import (
    Message,
    actions,
    button,
    context,
    escape,
    header,
    info_message,
    message,
    modal,
    plain,
    section,
)
from flows.connections import (
    FIELD_LABELS,
    HEADER_NAME_KINDS,
    KIND_LABELS,
    KINDS,
    OPTIONAL_SECRET_FIELDS,
    SECRET_FIELDS,
    Attached,
    BindingsChanged,
    ColonInUserName,
    ConnectionNotFound,
    ConnectionRecord,
    ConnectionsNotAllowed,
    DeleteAsked,
    DuplicateConnectionName,
    FlowGone,
    InvalidBaseUrl,
    InvalidHeaderName,
    InvalidSecretField,
    MissingName,
    NameTooLong,
    NoSuchSlot,
    OwnConnection,
    ReservedHeaderName,
    RunnerChoiceProblem,
    RunnerSlot,
    Saved,
    SlotKindMismatch,
    SlotTarget,
    UnknownConnectionKind,
    kind_label,
)
from flows.errors import FlowbotError

# Action ids and callback ids (the handlers listen to these).
SAVE_CALLBACK = "conn_save"
FLOW_CALLBACK = "conn_flow"
KIND_ACTION = "conn_kind"
NEW_ACTION = "conn_new"
UPDATE_ACTION = "conn_update"
DELETE_ACTION = "conn_delete"
DELETE_CONFIRM_ACTION = "conn_delete_confirm"
LIST_ACTION = "conn_list"
# A submitted connect form the bot has no record of (issue 19: not opened by this person
# in this workspace, or over a day old).
FORM_NOT_FOUND = "This form is no longer valid: close it and start again."
SLOT_ATTACH_ACTION = "conn_slot_attach"
SLOT_DETACH_ACTION = "conn_slot_detach"
SLOT_MODE_ACTION = "conn_slot_mode"
RUNNER_PICK_ACTION = "conn_pick"
# Input block ids of the connect modal.
KIND_BLOCK = "conn_kind"
NAME_BLOCK = "conn_name"
BASE_URL_BLOCK = "conn_base_url"
HEADER_NAME_BLOCK = "conn_header_name"
SECRET_BLOCK_PREFIX = "conn_secret_"
# Run modal: one input block per slot the runner provides.
RUNNER_BLOCK_PREFIX = "conn_slot:"

MODE_OWNER = "owner"
MODE_RUNNER = "runner"
MODE_LABELS = {
    MODE_OWNER: "Run-only users: use the owner's connection",
    MODE_RUNNER: "Run-only users: provided by the run-only user",
}


def option(text: str, value: str) -> Option:
    return Option(text=plain(text), value=value)


def _text_input(
    block_id: str,
    label: str,
    max_length: int,
    *,
    hint: str | None = None,
    initial: str = "",
    placeholder: str | None = None,
    optional: bool = False,
) -> InputBlock:
    return InputBlock(
        block_id=block_id,
        label=plain(label),
        hint=plain(hint, 150) if hint else None,
        optional=optional or None,
        element=PlainTextInputElement(
            action_id="value",
            initial_value=initial or None,
            placeholder=plain(placeholder) if placeholder else None,
            max_length=max_length,
        ),
    )


def kind_options(kinds: Sequence[tuple[str, str]]) -> list[Option]:
    return [option(label, kind) for kind, label in kinds]


def connect_modal(
    *,
    kinds: Sequence[tuple[str, str]],
    kind: str,
    secret_fields: Sequence[tuple[str, str, bool]],
    metadata: Mapping[str, Any],
    asks_header_name: bool = False,
    name: str = "",
    base_url: str = "",
    header_name: str = "",
    updating: str | None = None,
    intro: str | None = None,
) -> dict[str, Any]:
    """The new-connection modal, or with `updating` (the connection's name) the
    update-credentials modal. secret_fields: (field, label, optional). Secret inputs are
    always empty: a secret never goes back to Slack."""
    blocks: list[Any] = []
    if intro:
        blocks.append(section(intro))
    if updating is None:
        current = next((label for k, label in kinds if k == kind), kind)
        blocks.append(
            InputBlock(
                block_id=KIND_BLOCK,
                label=plain("Type"),
                dispatch_action=True,
                element=StaticSelectElement(
                    action_id=KIND_ACTION,
                    options=kind_options(kinds),
                    initial_option=option(current, kind),
                ),
            )
        )
    blocks.append(
        _text_input(
            NAME_BLOCK,
            "Name",
            80,
            hint="How you pick it for a flow, e.g. “Ledger API”",
            initial=name,
        )
    )
    blocks.append(
        _text_input(
            BASE_URL_BLOCK,
            "Base URL",
            2000,
            hint="Steps add their path to it, e.g. https://api.example.com/v1",
            initial=base_url,
            placeholder="https://api.example.com",
        )
    )
    if asks_header_name:
        blocks.append(
            _text_input(
                HEADER_NAME_BLOCK, "Header name", 100, initial=header_name, placeholder="X-API-Key"
            )
        )
    for field, label, optional in secret_fields:
        blocks.append(_text_input(SECRET_BLOCK_PREFIX + field, label, 4000, optional=optional))
    blocks.append(
        context(
            ":lock: Stored encrypted. Nobody can read it back — not flow "
            "co-owners, not you: Flowbot only ever shows the last characters."
        )
    )
    return modal(
        "Update credentials" if updating else "New connection",
        blocks,
        SAVE_CALLBACK,
        submit="Save",
        metadata=json.dumps(dict(metadata), separators=(",", ":")),
    )


def connection_line(
    name: str, label: str, base_url: str, hint: str, header_name: str | None = None
) -> str:
    credential = f"{escape(header_name)}: `{hint}`" if header_name else f"`{hint}`"
    return f"*{escape(name)}* — {escape(label)}\n{escape(base_url)} · {credential}"


def my_connections_message(
    connections: Sequence[Mapping[str, Any]], notice: str | None = None
) -> Message:
    """connections: dicts with id, name, label, base_url, hint, header_name, used_by."""
    blocks: list[dict[str, Any]] = []
    if notice:
        blocks.append(section(notice))
    blocks.append(header("My connections"))
    if not connections:
        blocks.append(section("You have no connections yet. Create one with `/flow connect`."))
    for item in connections[:14]:
        text = connection_line(
            item["name"], item["label"], item["base_url"], item["hint"], item.get("header_name")
        )
        used_by = item.get("used_by") or []
        if used_by:
            text += "\nUsed by " + ", ".join(f"“{escape(n)}”" for n in used_by[:10])
        blocks.append(section(text))
        # A connection no flow uses: Slack's own dialog confirms. One in use: Flowbot
        # answers with the flows it would break and asks again.
        confirm = None if used_by else _confirm_delete(item["name"])
        blocks.append(
            actions(
                button("Update credentials", UPDATE_ACTION, item["id"]),
                button("Delete", DELETE_ACTION, item["id"], "danger", confirm),
                block_id=f"conn:{item['id']}",
            )
        )
    blocks.append(actions(button("New connection", NEW_ACTION, "new"), block_id="conn:new"))
    blocks.append(
        context(
            "Attach one to a flow with `/flow connections <flow>` "
            "or `/flow connect <flow> <slot> <connection name>`."
        )
    )
    summary = notice or f"My connections: {len(connections)}"
    return message(summary, *blocks)


def delete_confirm_message(connection_id: str, name: str, flow_names: Sequence[str]) -> Message:
    names = "\n".join(f"• “{escape(n)}”" for n in flow_names[:20])
    if len(flow_names) > 20:
        names += f"\n• …and {len(flow_names) - 20} more"
    text = (
        f":warning: *{escape(name)}* is used by these flows; deleting it breaks them until an "
        f"owner attaches another connection:\n{names}"
    )
    return message(
        f"Deleting {name} breaks {len(flow_names)} flow(s). Delete anyway?",
        section(text),
        actions(
            button("Delete anyway", DELETE_CONFIRM_ACTION, connection_id, "danger"),
            button("Cancel", LIST_ACTION, "cancel"),
            block_id=f"conn_confirm:{connection_id}",
        ),
    )


def confirm_dialog(title: str, text: str, confirm: str, style: str | None = None) -> ConfirmObject:
    return ConfirmObject(
        title=plain(title, 100),
        text=MarkdownTextObject(text=text),
        confirm=plain(confirm, 30),
        deny=plain("Cancel", 30),
        style=style,
    )


def _confirm_delete(name: str) -> ConfirmObject:
    text = f"Delete *{escape(name)}*? This cannot be undone."
    return confirm_dialog("Delete connection?", text, "Delete", "danger")


def runner_slot_blocks(slots: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Run modal: for each slot the runner provides, a picker of their own connections.

    slots: dicts with slot, kind_label, description, options (list of (id, label))."""
    blocks: list[dict[str, Any]] = []
    for item in slots:
        slot = item["slot"]
        label = f"Your connection for {slot}"
        options = item.get("options") or []
        if options:
            blocks.append(
                InputBlock(
                    block_id=RUNNER_BLOCK_PREFIX + slot,
                    label=plain(label, 2000),
                    hint=plain(
                        f"{item['kind_label']}. "
                        + (item.get("description") or "The flow acts with your credentials."),
                        2000,
                    ),
                    element=StaticSelectElement(
                        action_id=RUNNER_PICK_ACTION,
                        placeholder=plain("Choose one of your connections"),
                        options=[option(text, cid) for cid, text in options[:100]],
                        initial_option=option(options[0][1], options[0][0])
                        if len(options) == 1
                        else None,
                    ),
                ).to_dict()
            )
        else:
            blocks.append(
                section(
                    f":key: This flow needs your own *{escape(item['kind_label'])}* "
                    f"connection for `{escape(slot)}`. Create one with `/flow connect`, "
                    "then run the flow again."
                )
            )
    return blocks


# --------------------------------------------------------------------------- from use cases


def connect_form(
    kind: str,
    metadata: Mapping[str, Any],
    *,
    name: str = "",
    base_url: str = "",
    header_name: str = "",
    updating: ConnectionRecord | None = None,
    intro: str | None = None,
) -> dict[str, Any]:
    """The connect modal for a kind (secret fields empty), or new credentials for one."""
    return connect_modal(
        kinds=[(k, KIND_LABELS[k]) for k in KINDS],
        kind=kind,
        secret_fields=[
            (field, FIELD_LABELS[field], field in OPTIONAL_SECRET_FIELDS)
            for field in SECRET_FIELDS[kind]
        ],
        metadata=metadata,
        asks_header_name=kind in HEADER_NAME_KINDS,
        name=name,
        base_url=base_url,
        header_name=header_name,
        updating=updating.name if updating else None,
        intro=intro,
    )


def new_for_slot_intro(target: SlotTarget) -> str:
    return f"A new connection for slot `{target.slot}` of *{escape(target.flow.name)}*."


def update_form(record: ConnectionRecord, metadata: Mapping[str, Any]) -> dict[str, Any]:
    return connect_form(
        record.kind,
        metadata,
        name=record.name,
        base_url=record.base_url,
        header_name=record.header_name or "",
        updating=record,
        intro=f"New credentials for *{escape(record.name)}* ({record.label}); "
        f"the current ones end in `{record.hint}`. Flows using it switch at once.",
    )


def my_connections(listing: Sequence[OwnConnection], notice: str | None = None) -> Message:
    return my_connections_message(
        [
            {
                "id": own.record.id,
                "name": own.record.name,
                "label": own.record.label,
                "base_url": own.record.base_url,
                "hint": own.record.hint,
                "header_name": own.record.header_name,
                "used_by": own.used_by,
            }
            for own in listing
        ],
        notice,
    )


def attached_message(attached: Attached) -> Message:
    return info_message(
        f":link: Slot `{attached.slot}` of *{escape(attached.flow.name)}* now uses your "
        f"connection *{escape(attached.record.name)}*: its steps act as you. Co-owners can "
        "use it in this flow only, and nobody can read it."
    )


def saved_notice(saved: Saved) -> str:
    verb = "Updated" if saved.updated else "Saved"
    notice = f":lock: {verb} *{escape(saved.record.name)}* (`{saved.record.hint}`)."
    if saved.flow is None:
        return notice
    if saved.attach_refused is not None:
        return notice + f" :warning: {describe_connections_error(saved.attach_refused)}"
    slot = escape(saved.slot or "")
    return notice + f" Slot `{slot}` of *{escape(saved.flow.name)}* now uses it."


def deleted_notice(asked: DeleteAsked) -> str:
    notice = f":wastebasket: Deleted *{escape(asked.record.name)}*."
    if asked.used_by:
        names = ", ".join(f"“{escape(name)}”" for name in asked.used_by)
        notice += f" These flows need another connection now: {names}."
    return notice


def delete_answer(asked: DeleteAsked) -> Message:
    """Deleted: the refreshed list; in use: the flows it would break, asking again."""
    if not asked.deleted:
        return delete_confirm_message(asked.record.id, asked.record.name, asked.used_by)
    return my_connections(asked.listing, deleted_notice(asked))


def slot_kind_label(kind: str | None) -> str:
    return kind_label(kind) if kind in KINDS else "HTTP"


def runner_pickers(slots: Sequence[RunnerSlot]) -> list[dict[str, Any]]:
    return runner_slot_blocks(
        [
            {
                "slot": wanted.slot,
                "kind_label": slot_kind_label(wanted.kind),
                "description": wanted.description,
                "options": [(c.id, f"{c.name} ({c.host})") for c in wanted.options],
            }
            for wanted in slots
        ]
    )


# --------------------------------------------------------------------------- refusals

Wording = Callable[[Any, Callable[[str], str]], str]


def _secret_field(error: InvalidSecretField, esc: Callable[[str], str]) -> str:
    label = FIELD_LABELS.get(error.field or "", error.field or "")
    if error.problem == "too_long":
        return f"{label} is too long."
    if error.problem == "line_break":
        return f"{label} may not contain line breaks."
    return f"{label} is required."


def _not_found(error: ConnectionNotFound, esc: Callable[[str], str]) -> str:
    if error.name is None:
        return "That connection does not exist or is not yours."
    return f"You have no connection named “{esc(error.name)}”. Create one with `/flow connect`."


def _not_allowed(error: ConnectionsNotAllowed, esc: Callable[[str], str]) -> str:
    flow = esc(error.flow_name)
    if error.what == "view":
        return f"You don't have access to “{flow}”."
    if error.what == "change":
        return f"Only owners of “{flow}” can change its connections."
    return f"Only owners of “{flow}” can attach connections to it."


def _no_such_slot(error: NoSuchSlot, esc: Callable[[str], str]) -> str:
    names = ", ".join(f"`{esc(s)}`" for s in error.slots) or "none"
    return (
        f"“{esc(error.flow_name)}” has no connection slot `{esc(error.slot)}` (its slots: {names})."
    )


def _runner_choice(error: RunnerChoiceProblem, esc: Callable[[str], str]) -> str:
    slot = esc(error.slot)
    if error.problem == "missing":
        return f"Choose one of your connections for `{slot}` (or create one with `/flow connect`)."
    if error.problem == "wrong_kind":
        return f"The connection chosen for `{slot}` has the wrong type."
    return f"The connection chosen for `{slot}` is not yours."


_WORDINGS: dict[type[FlowbotError], Wording] = {
    UnknownConnectionKind: lambda e, esc: f"Unknown connection type {esc(repr(e.kind))}.",
    InvalidSecretField: _secret_field,
    ColonInUserName: lambda e, esc: "The user name may not contain ':'.",
    MissingName: lambda e, esc: "A connection needs a name.",
    NameTooLong: lambda e, esc: f"A connection name has at most {e.limit} characters.",
    InvalidHeaderName: lambda e, esc: "The header name must be a single word such as X-API-Key.",
    ReservedHeaderName: lambda e, esc: (
        f"The header {esc(e.header_name)} cannot carry a credential."
    ),
    InvalidBaseUrl: lambda e, esc: f"Base URL: {esc(e.reason)}.",
    DuplicateConnectionName: lambda e, esc: f"You already have a connection named “{esc(e.name)}”.",
    ConnectionNotFound: _not_found,
    ConnectionsNotAllowed: _not_allowed,
    NoSuchSlot: _no_such_slot,
    SlotKindMismatch: lambda e, esc: (
        f"Slot `{esc(e.slot)}` needs a {e.slot_kind} connection; "
        f"“{esc(e.connection_name)}” is a {e.connection_kind}."
    ),
    FlowGone: lambda e, esc: f"“{esc(e.flow_name)}” no longer exists.",
    BindingsChanged: lambda e, esc: "The flow's connections changed meanwhile; try again.",
    RunnerChoiceProblem: _runner_choice,
}


def _worded(error: FlowbotError, esc: Callable[[str], str]) -> str | None:
    wording = _WORDINGS.get(type(error))
    return wording(error, esc) if wording is not None else None


def describe_connections_error(error: FlowbotError) -> str | None:
    """The mrkdwn sentence for a refusal of the connections area (None: not one)."""
    return _worded(error, escape)


def plain_error(error: FlowbotError) -> str:
    """The same sentence for a modal's input error (plain text: names shown as typed)."""
    text = _worded(error, lambda text: text)
    return text if text is not None else str(error)

"""Block Kit for connections: the connect modal, my connections, a flow's connection slots,
and the run modal's per-slot picker. Cards never receive a secret: only masked hints."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from slack_sdk.models.blocks import (
    ConfirmObject,
    DividerBlock,
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
    message,
    modal,
    plain,
    section,
)

# Action ids and callback ids (the handlers listen to these).
SAVE_CALLBACK = "conn_save"
FLOW_CALLBACK = "conn_flow"
KIND_ACTION = "conn_kind"
NEW_ACTION = "conn_new"
UPDATE_ACTION = "conn_update"
DELETE_ACTION = "conn_delete"
DELETE_CONFIRM_ACTION = "conn_delete_confirm"
LIST_ACTION = "conn_list"
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


def _option(text: str, value: str) -> Option:
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
    return [_option(label, kind) for kind, label in kinds]


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
                    initial_option=_option(current, kind),
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


def _confirm(title: str, text: str, confirm: str, style: str | None = None) -> ConfirmObject:
    return ConfirmObject(
        title=plain(title, 100),
        text=MarkdownTextObject(text=text),
        confirm=plain(confirm, 30),
        deny=plain("Cancel", 30),
        style=style,
    )


def _confirm_delete(name: str) -> ConfirmObject:
    text = f"Delete *{escape(name)}*? This cannot be undone."
    return _confirm("Delete connection?", text, "Delete", "danger")


def flow_connections_modal(
    *,
    flow_id: str,
    flow_name: str,
    slots: Sequence[Mapping[str, Any]],
    is_owner: bool,
    notice: str | None = None,
) -> dict[str, Any]:
    """A flow's connection slots.

    slots: dicts with slot, kind_label, description, filled_text (who and what fills it,
    never a secret), filled (bool), mine (list of (connection id, label) the viewer may
    attach), selected (connection id of the viewer's that fills it, or None),
    runner_provides (bool), show_mode (offer the run-only choice), runner_text (what a
    run-only viewer is told)."""
    blocks: list[Any] = []
    if notice:
        blocks.append(section(notice))
    if not slots:
        blocks.append(
            section(
                f"“{escape(flow_name)}” declares no connection slots "
                "(`connections:` in its definition)."
            )
        )
    for item in slots:
        slot = item["slot"]
        head = f"*`{escape(slot)}`* — {escape(item['kind_label'])}"
        if item.get("description"):
            head += f"\n{escape(item['description'])}"
        head += f"\n{item['filled_text']}"
        blocks.append(DividerBlock())
        blocks.append(section(head))
        if is_owner:
            elements: list[Any] = []
            mine = item.get("mine") or []
            if mine:
                options = [_option(label, f"{slot}|{cid}") for cid, label in mine[:100]]
                initial = next(
                    (o for o in options if o.value == f"{slot}|{item.get('selected')}"), None
                )
                elements.append(
                    StaticSelectElement(
                        action_id=SLOT_ATTACH_ACTION,
                        placeholder=plain("Attach one of my connections"),
                        options=options,
                        initial_option=initial,
                    )
                )
            if item.get("show_mode", True):
                # Run-only sharing exists for instant flows only.
                modes = [_option(MODE_LABELS[m], f"{slot}|{m}") for m in (MODE_OWNER, MODE_RUNNER)]
                chosen = MODE_RUNNER if item.get("runner_provides") else MODE_OWNER
                elements.append(
                    StaticSelectElement(
                        action_id=SLOT_MODE_ACTION,
                        options=modes,
                        initial_option=modes[0] if chosen == MODE_OWNER else modes[1],
                    )
                )
            if item.get("filled"):
                text = (
                    f"Steps using `{escape(slot)}` fail until an owner attaches a connection again."
                )
                confirm = _confirm("Empty this slot?", text, "Remove")
                elements.append(button("Remove", SLOT_DETACH_ACTION, slot, confirm=confirm))
            elements.append(button("New connection", NEW_ACTION, slot))
            blocks.append(actions(*elements, block_id=f"conn_slot_actions:{slot}"))
        elif item.get("runner_text"):
            blocks.append(context(item["runner_text"]))
    if is_owner:
        blocks.append(
            context(
                "You can attach only your own connections; steps using a slot act as the "
                "person whose connection fills it. Co-owners use it in this flow only and "
                "never see its secret."
            )
        )
    return modal("Connections", blocks[:100], FLOW_CALLBACK, close="Done", metadata=flow_id)


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
                        options=[_option(text, cid) for cid, text in options[:100]],
                        initial_option=_option(options[0][1], options[0][0])
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

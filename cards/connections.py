"""Block Kit for connections: the connect modal, my connections, a flow's connection slots,
and the run modal's per-slot picker. Cards never receive a secret: only masked hints."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from slack_sdk.models.blocks import (
    ActionsBlock,
    ButtonElement,
    ConfirmObject,
    ContextBlock,
    DividerBlock,
    HeaderBlock,
    InputBlock,
    MarkdownTextObject,
    Option,
    PlainTextInputElement,
    PlainTextObject,
    SectionBlock,
    StaticSelectElement,
)
from slack_sdk.models.views import View

from cards.common import Message, clip, context, escape, message, section

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


def _plain(text: str, limit: int = 75) -> PlainTextObject:
    return PlainTextObject(text=clip(text, limit), emoji=True)


def _option(text: str, value: str) -> Option:
    return Option(text=_plain(text), value=value)


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
        blocks.append(SectionBlock(text=MarkdownTextObject(text=clip(intro))))
    if updating is None:
        current = next((label for k, label in kinds if k == kind), kind)
        blocks.append(
            InputBlock(
                block_id=KIND_BLOCK,
                label=_plain("Type"),
                dispatch_action=True,
                element=StaticSelectElement(
                    action_id=KIND_ACTION,
                    options=kind_options(kinds),
                    initial_option=_option(current, kind),
                ),
            )
        )
    blocks.append(
        InputBlock(
            block_id=NAME_BLOCK,
            label=_plain("Name"),
            hint=_plain("How you pick it for a flow, e.g. “Ledger API”", 150),
            element=PlainTextInputElement(
                action_id="value", initial_value=name or None, max_length=80
            ),
        )
    )
    blocks.append(
        InputBlock(
            block_id=BASE_URL_BLOCK,
            label=_plain("Base URL"),
            hint=_plain("Steps add their path to it, e.g. https://api.example.com/v1", 150),
            element=PlainTextInputElement(
                action_id="value",
                initial_value=base_url or None,
                placeholder=_plain("https://api.example.com"),
                max_length=2000,
            ),
        )
    )
    if asks_header_name:
        blocks.append(
            InputBlock(
                block_id=HEADER_NAME_BLOCK,
                label=_plain("Header name"),
                element=PlainTextInputElement(
                    action_id="value",
                    initial_value=header_name or None,
                    placeholder=_plain("X-API-Key"),
                    max_length=100,
                ),
            )
        )
    for field, label, optional in secret_fields:
        blocks.append(
            InputBlock(
                block_id=SECRET_BLOCK_PREFIX + field,
                label=_plain(label),
                optional=optional or None,
                element=PlainTextInputElement(action_id="value", max_length=4000),
            )
        )
    blocks.append(
        ContextBlock(
            elements=[
                MarkdownTextObject(
                    text=":lock: Stored encrypted. Nobody can read it back — not flow "
                    "co-owners, not you: Flowbot only ever shows the last characters."
                )
            ]
        )
    )
    view = View(
        type="modal",
        callback_id=SAVE_CALLBACK,
        title=_plain("Update credentials" if updating else "New connection", 24),
        submit=_plain("Save", 24),
        close=_plain("Cancel", 24),
        private_metadata=json.dumps(dict(metadata), separators=(",", ":")),
        blocks=blocks,
    )
    return view.to_dict()


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
    blocks.append(HeaderBlock(text=_plain("My connections", 150)).to_dict())
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
        blocks.append(
            ActionsBlock(
                block_id=f"conn:{item['id']}",
                elements=[
                    ButtonElement(
                        text=_plain("Update credentials"),
                        action_id=UPDATE_ACTION,
                        value=item["id"],
                    ),
                    ButtonElement(
                        text=_plain("Delete"),
                        action_id=DELETE_ACTION,
                        value=item["id"],
                        style="danger",
                        # A connection no flow uses: Slack's own dialog confirms. One in use:
                        # Flowbot answers with the flows it would break and asks again.
                        confirm=None if used_by else _confirm_delete(item["name"]),
                    ),
                ],
            ).to_dict()
        )
    blocks.append(
        ActionsBlock(
            block_id="conn:new",
            elements=[
                ButtonElement(text=_plain("New connection"), action_id=NEW_ACTION, value="new")
            ],
        ).to_dict()
    )
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
        ActionsBlock(
            block_id=f"conn_confirm:{connection_id}",
            elements=[
                ButtonElement(
                    text=_plain("Delete anyway"),
                    action_id=DELETE_CONFIRM_ACTION,
                    value=connection_id,
                    style="danger",
                ),
                ButtonElement(text=_plain("Cancel"), action_id=LIST_ACTION, value="cancel"),
            ],
        ).to_dict(),
    )


def _confirm_delete(name: str) -> ConfirmObject:
    return ConfirmObject(
        title=_plain("Delete connection?", 100),
        text=MarkdownTextObject(text=f"Delete *{escape(name)}*? This cannot be undone."),
        confirm=_plain("Delete", 30),
        deny=_plain("Cancel", 30),
        style="danger",
    )


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
        blocks.append(SectionBlock(text=MarkdownTextObject(text=clip(notice))))
    if not slots:
        blocks.append(
            SectionBlock(
                text=MarkdownTextObject(
                    text=f"“{escape(flow_name)}” declares no connection slots "
                    "(`connections:` in its definition)."
                )
            )
        )
    for item in slots:
        slot = item["slot"]
        head = f"*`{escape(slot)}`* — {escape(item['kind_label'])}"
        if item.get("description"):
            head += f"\n{escape(item['description'])}"
        head += f"\n{item['filled_text']}"
        blocks.append(DividerBlock())
        blocks.append(SectionBlock(text=MarkdownTextObject(text=clip(head))))
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
                        placeholder=_plain("Attach one of my connections"),
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
                elements.append(
                    ButtonElement(
                        text=_plain("Remove"),
                        action_id=SLOT_DETACH_ACTION,
                        value=slot,
                        confirm=ConfirmObject(
                            title=_plain("Empty this slot?", 100),
                            text=MarkdownTextObject(
                                text=f"Steps using `{escape(slot)}` fail until an owner "
                                "attaches a connection again."
                            ),
                            confirm=_plain("Remove", 30),
                            deny=_plain("Cancel", 30),
                        ),
                    )
                )
            elements.append(
                ButtonElement(text=_plain("New connection"), action_id=NEW_ACTION, value=slot)
            )
            blocks.append(ActionsBlock(block_id=f"conn_slot_actions:{slot}", elements=elements))
        elif item.get("runner_text"):
            blocks.append(
                ContextBlock(elements=[MarkdownTextObject(text=clip(item["runner_text"]))])
            )
    if is_owner:
        blocks.append(
            ContextBlock(
                elements=[
                    MarkdownTextObject(
                        text="You can attach only your own connections; steps using a slot "
                        "act as the person whose connection fills it. Co-owners use it in "
                        "this flow only and never see its secret."
                    )
                ]
            )
        )
    view = View(
        type="modal",
        callback_id=FLOW_CALLBACK,
        title=_plain("Connections", 24),
        close=_plain("Done", 24),
        private_metadata=flow_id,
        blocks=blocks[:100],
    )
    return view.to_dict()


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
                    label=_plain(label, 2000),
                    hint=_plain(
                        f"{item['kind_label']}. "
                        + (item.get("description") or "The flow acts with your credentials."),
                        2000,
                    ),
                    element=StaticSelectElement(
                        action_id=RUNNER_PICK_ACTION,
                        placeholder=_plain("Choose one of your connections"),
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

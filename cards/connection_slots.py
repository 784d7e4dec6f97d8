"""Block Kit for a flow's connection slots (`/flow connections <flow>`): who fills each
slot (never a secret; a hint only to the connection's owner), and for owners the controls
to attach, empty and choose what run-only users do."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from slack_sdk.models.blocks import DividerBlock, StaticSelectElement

from cards.common import actions, button, context, escape, modal, plain, section
from cards.connections import (
    FLOW_CALLBACK,
    MODE_LABELS,
    MODE_OWNER,
    MODE_RUNNER,
    NEW_ACTION,
    SLOT_ATTACH_ACTION,
    SLOT_DETACH_ACTION,
    SLOT_MODE_ACTION,
    confirm_dialog,
    describe_connections_error,
    option,
    slot_kind_label,
)
from flows.connections import SlotChanged, SlotsPanel, SlotState


def _attach_select(slot: str, item: Mapping[str, Any]) -> StaticSelectElement | None:
    mine = item.get("mine") or []
    if not mine:
        return None
    options = [option(label, f"{slot}|{cid}") for cid, label in mine[:100]]
    initial = next((o for o in options if o.value == f"{slot}|{item.get('selected')}"), None)
    return StaticSelectElement(
        action_id=SLOT_ATTACH_ACTION,
        placeholder=plain("Attach one of my connections"),
        options=options,
        initial_option=initial,
    )


def _mode_select(slot: str, runner_provides: bool) -> StaticSelectElement:
    modes = [option(MODE_LABELS[m], f"{slot}|{m}") for m in (MODE_OWNER, MODE_RUNNER)]
    return StaticSelectElement(
        action_id=SLOT_MODE_ACTION,
        options=modes,
        initial_option=modes[1] if runner_provides else modes[0],
    )


def _owner_actions(item: Mapping[str, Any]) -> dict[str, Any]:
    slot = item["slot"]
    elements: list[Any] = []
    attach = _attach_select(slot, item)
    if attach is not None:
        elements.append(attach)
    if item.get("show_mode", True):
        # Run-only sharing exists for instant flows only.
        elements.append(_mode_select(slot, bool(item.get("runner_provides"))))
    if item.get("filled"):
        text = f"Steps using `{escape(slot)}` fail until an owner attaches a connection again."
        confirm = confirm_dialog("Empty this slot?", text, "Remove")
        elements.append(button("Remove", SLOT_DETACH_ACTION, slot, confirm=confirm))
    elements.append(button("New connection", NEW_ACTION, slot))
    return actions(*elements, block_id=f"conn_slot_actions:{slot}")


def _slot_blocks(item: Mapping[str, Any], is_owner: bool) -> list[Any]:
    head = f"*`{escape(item['slot'])}`* — {escape(item['kind_label'])}"
    if item.get("description"):
        head += f"\n{escape(item['description'])}"
    head += f"\n{item['filled_text']}"
    blocks: list[Any] = [DividerBlock(), section(head)]
    if is_owner:
        blocks.append(_owner_actions(item))
    elif item.get("runner_text"):
        blocks.append(context(item["runner_text"]))
    return blocks


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
        blocks.extend(_slot_blocks(item, is_owner))
    if is_owner:
        blocks.append(
            context(
                "You can attach only your own connections; steps using a slot act as the "
                "person whose connection fills it. Co-owners use it in this flow only and "
                "never see its secret."
            )
        )
    return modal("Connections", blocks[:100], FLOW_CALLBACK, close="Done", metadata=flow_id)


def _filled_text(state: SlotState, viewer: str) -> str:
    record = state.connection
    if record is None:
        if state.binding.connection_id:
            return ":warning: _Its connection was deleted: attach another._"
        return "_Empty: steps using it fail until an owner attaches a connection._"
    whose = "your" if record.owner == viewer else f"<@{record.owner}>'s"
    text = f"Uses {whose} connection *{escape(record.name)}* ({escape(record.host)})"
    if record.owner == viewer:
        text += f" · `{record.hint}`"
    return text


def _runner_text(state: SlotState) -> str:
    if state.runner_provides:
        return ":key: When you run it, you choose one of your own connections for this."
    return "Runs with the owner's connection."


def _panel_item(panel: SlotsPanel, state: SlotState) -> dict[str, Any]:
    flow, viewer = panel.flow, panel.viewer
    filled = _filled_text(state, viewer)
    if panel.may_attach and flow.kind == "instant":
        filled += "\nRun-only users " + (
            "provide their own connection."
            if state.runner_provides
            else "use the owner's connection."
        )
    mine = state.connection is not None and state.connection.owner == viewer
    return {
        "slot": state.slot,
        "kind_label": slot_kind_label(state.kind),
        "description": state.description,
        "filled_text": filled,
        "filled": state.binding.connection_id is not None,
        "mine": [(c.id, f"{c.name} ({c.host})") for c in panel.fitting(state)],
        "selected": state.connection.id if mine and state.connection else None,
        "runner_provides": state.runner_provides,
        "show_mode": flow.kind == "instant",
        "runner_text": _runner_text(state),
    }


def slots_panel(panel: SlotsPanel, notice: str | None = None) -> dict[str, Any]:
    """The flow's Connections modal, as the panel's viewer may see it."""
    return flow_connections_modal(
        flow_id=panel.flow.id,
        flow_name=panel.flow.name,
        slots=[_panel_item(panel, state) for state in panel.slots],
        is_owner=panel.may_attach,
        notice=notice,
    )


def slot_changed_notice(changed: SlotChanged) -> str:
    if changed.refused is not None:
        return f":warning: {describe_connections_error(changed.refused)}"
    change, slot = changed.change, escape(changed.change.slot)
    if change.what == "attach":
        return f":link: `{slot}` now uses your connection."
    if change.what == "detach":
        return f"`{slot}` is empty now."
    return f"`{slot}`: " + (
        "run-only users provide their own connection."
        if change.runner_provides
        else "run-only users use the owner's connection."
    )

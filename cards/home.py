"""The App Home tab: a welcome on first use, my flows, My buttons."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from slack_sdk.models.blocks import DividerBlock, Option, OverflowMenuElement, SectionBlock
from slack_sdk.models.blocks.basic_components import MarkdownTextObject
from slack_sdk.models.views import View

from cards.common import (
    VIEW_BLOCK_LIMIT,
    actions,
    button,
    clip,
    context,
    escape,
    header,
    section,
)
from flows.records import FlowRecord

GET_STARTED_ACTION = "home_get_started"
NEW_FLOW_ACTION = "home_new_flow"
FLOW_MENU_ACTION = "home_flow_menu"
RUN_FLOW_ACTION = "run_flow"  # handled by the runs area
MY_BUTTONS_BLOCK = "my_buttons"

# Home views take 100 blocks: keep room for the welcome, headers and My buttons.
HOME_FLOW_LIMIT = 30

WELCOME = (
    ":wave: *Welcome to Flowbot!* Flows automate work in Slack: run them with a button or "
    "`/flow run`, on a schedule, or when something happens in a channel.\n"
    "*What Flowbot stores about you:* your Slack user id, the flows you create, the runs "
    "you start with the inputs you give them, and your connections to other services "
    "(encrypted; their secrets are never shown back)."
)


def flow_menu_value(verb: str, flow_id: str) -> str:
    return f"{verb}:{flow_id}"


def parse_flow_menu_value(value: str) -> tuple[str, str]:
    verb, _, flow_id = value.partition(":")
    return verb, flow_id


def _flow_blocks(flow: FlowRecord, can_run: bool) -> list[dict[str, Any]]:
    state = ":large_green_circle: on" if flow.enabled else ":white_circle: off"
    text = f"*{escape(flow.name)}*\n{flow.kind} · {state} · version {flow.version}"
    if flow.definition.description:
        text += f"\n{escape(clip(flow.definition.description, 200))}"
    menu = OverflowMenuElement(
        action_id=FLOW_MENU_ACTION,
        options=[
            Option(value=flow_menu_value("show", flow.id), text="Show"),
            Option(value=flow_menu_value("edit", flow.id), text="Edit"),
        ],
    )
    blocks = [
        SectionBlock(
            block_id=f"flow_{flow.id}", text=MarkdownTextObject(text=text), accessory=menu
        ).to_dict()
    ]
    if can_run:
        run = button("Run", RUN_FLOW_ACTION, flow.id, "primary")
        blocks.append(actions(run, block_id=f"run_{flow.id}"))
    return blocks


def home_view(
    flows: Sequence[FlowRecord],
    *,
    welcome: bool,
    runnable: frozenset[str] = frozenset(),
    sections: Mapping[str, Sequence[dict[str, Any]]] | None = None,
) -> dict[str, Any]:
    """`flows`: the flows I own; `runnable`: ids of those that get a Run button.

    `sections`: blocks other areas add, by name; "my_buttons" fills the My buttons section,
    the others follow it in order."""
    sections = sections or {}
    blocks: list[dict[str, Any]] = []
    if welcome:
        start = button("Get started", GET_STARTED_ACTION, style="primary")
        blocks.append(section(WELCOME))
        blocks.append(actions(start, block_id="welcome"))
        blocks.append(DividerBlock().to_dict())
    blocks.append(header("My flows"))
    if flows:
        for flow in flows[:HOME_FLOW_LIMIT]:
            blocks += _flow_blocks(flow, flow.id in runnable)
        if len(flows) > HOME_FLOW_LIMIT:
            rest = len(flows) - HOME_FLOW_LIMIT
            blocks.append(context(f"… and {rest} more: `/flow list` shows them all."))
    else:
        blocks.append(
            section("No flows yet. Start from a template with *New flow* or `/flow new`.")
        )
    blocks.append(actions(button("New flow", NEW_FLOW_ACTION), block_id="home_new"))
    blocks.append(DividerBlock().to_dict())
    blocks.append(header("My buttons", MY_BUTTONS_BLOCK))
    my_buttons = sections.get(MY_BUTTONS_BLOCK)
    if my_buttons:
        blocks += my_buttons
    else:
        blocks.append(context("Buttons people share with you appear here."))
    for name, extra in sections.items():
        if name != MY_BUTTONS_BLOCK and extra:
            blocks.append(DividerBlock().to_dict())
            blocks += extra
    return View(type="home", blocks=blocks[:VIEW_BLOCK_LIMIT]).to_dict()

"""Modals for authoring flows: the template gallery, the YAML/JSON editor, the result."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from slack_sdk.models.blocks import InputBlock, Option, PlainTextInputElement, StaticSelectElement

from cards.common import VIEW_BLOCK_LIMIT, clip, context, escape, modal, section
from flows.definition import dump_yaml
from flows.records import FlowRecord

View_ = dict[str, Any]

GALLERY_CALLBACK = "flow_gallery"
GALLERY_BLOCK = "template"
GALLERY_PICK_ACTION = "flow_gallery_pick"

EDITOR_CALLBACK = "flow_editor"
EDITOR_BLOCK = "definition"
EDITOR_ACTION = "definition_text"
# Slack's limit for a plain_text_input; longer flows are imported with the CLI.
EDITOR_MAX_CHARS = 3000
# Slack shows field errors under the input; keep them to the size of a hint.
FIELD_ERROR_LIMIT = 2000

NOTHING_PASTED = "Paste a flow definition in YAML or JSON."
DELETED_WHILE_EDITING = "This flow was deleted while you were editing; nothing was saved."


@dataclass(frozen=True)
class TemplateChoice:
    key: str
    title: str
    description: str = ""


@dataclass(frozen=True)
class EditorState:
    """What the editor modal remembers between opening and submitting (private_metadata)."""

    flow_id: str | None = None
    version: int | None = None
    channel_id: str | None = None

    def dump(self) -> str:
        data = {"flow_id": self.flow_id, "version": self.version, "channel_id": self.channel_id}
        return json.dumps({k: v for k, v in data.items() if v is not None})

    @classmethod
    def load(cls, raw: str | None) -> EditorState:
        try:
            data = json.loads(raw or "{}")
        except ValueError:
            data = {}
        if not isinstance(data, dict):
            data = {}
        version = data.get("version")
        return cls(
            flow_id=data.get("flow_id") if isinstance(data.get("flow_id"), str) else None,
            version=version if isinstance(version, int) else None,
            channel_id=data.get("channel_id") if isinstance(data.get("channel_id"), str) else None,
        )


def gallery_modal(templates: Sequence[TemplateChoice], channel_id: str | None) -> View_:
    options = [
        Option(
            value=t.key,
            text=clip(t.title, 75),
            description=clip(t.description, 75) if t.description else None,
        )
        for t in templates[:100]
    ]
    pick = InputBlock(
        block_id=GALLERY_BLOCK,
        dispatch_action=True,
        label="Start from",
        element=StaticSelectElement(
            action_id=GALLERY_PICK_ACTION, placeholder="Pick a template", options=options
        ),
    )
    lines = "\n".join(f"• *{escape(t.title)}*: {escape(t.description)}" for t in templates)
    blocks = [
        section("Pick a template to start from. You can change everything in the next step."),
        pick.to_dict(),
    ]
    if lines:
        blocks.append(context(lines))
    return modal(
        "New flow",
        blocks,
        callback_id=GALLERY_CALLBACK,
        submit="Next",
        metadata=EditorState(channel_id=channel_id).dump(),
    )


def editor_modal(
    state: EditorState, text: str, *, title: str, intro: str, submit: str = "Save"
) -> View_:
    editor = InputBlock(
        block_id=EDITOR_BLOCK,
        label="Definition (YAML or JSON)",
        hint="Every problem is listed here when you save; nothing is saved until it is valid.",
        element=PlainTextInputElement(
            action_id=EDITOR_ACTION,
            multiline=True,
            initial_value=text or None,
            max_length=EDITOR_MAX_CHARS,
            placeholder="name: My flow\nsteps:\n  - type: post_message …",
        ),
    )
    blocks = [section(intro), editor.to_dict()]
    return modal(title, blocks, EDITOR_CALLBACK, submit=submit, metadata=state.dump())


def flow_editor_modal(flow: FlowRecord, channel_id: str | None) -> View_ | None:
    """The editor prefilled with the flow, or None if its YAML is too long for Slack."""
    text = dump_yaml(flow.definition)
    if len(text) > EDITOR_MAX_CHARS:
        return None
    intro = (
        f"Editing *{escape(flow.name)}*, version {flow.version}. "
        "Saving makes a new version; earlier ones are kept."
    )
    state = EditorState(flow.id, flow.version, channel_id)
    return editor_modal(state, text, title="Edit flow", intro=intro)


def too_long_to_edit() -> str:
    return (
        f"This flow is too long for Slack's editor ({EDITOR_MAX_CHARS} characters). Export "
        "it, edit the file, and import it with "
        "`python -m bot flows import FILE --team T --user U`."
    )


def template_editor_modal(title: str, source: str, state: EditorState) -> View_:
    intro = f"Template *{escape(title)}*. Change what you need (the name first), then Save."
    return editor_modal(state, source, title="New flow", intro=intro)


def import_modal(channel_id: str | None) -> View_:
    return editor_modal(
        EditorState(channel_id=channel_id),
        "",
        title="Import a flow",
        intro="Paste a flow definition in YAML or JSON (`/flow export` writes one).",
        submit="Import",
    )


def saved_modal(flow_name: str, flow_id: str, version: int, webhook_token: str | None) -> View_:
    """Shown in place of the editor when there is something to see once (a webhook token)."""
    blocks = [section(f":white_check_mark: *{escape(flow_name)}* saved (version {version}).")]
    if webhook_token:
        blocks.append(
            section(
                "*Webhook token* (shown only now, Flowbot keeps only a hash of it):\n"
                f"```{webhook_token}```\n"
                f"Send `POST /hooks/{flow_id}` with this token to start the flow."
            )
        )
    return modal("Flow saved", blocks, callback_id="flow_saved", close="Done")


def format_field_errors(lines: Sequence[str], limit: int = FIELD_ERROR_LIMIT) -> str:
    """Every error on its own line, cut to `limit` with a count of what was left out."""
    out: list[str] = []
    for index, line in enumerate(lines):
        left_after = len(lines) - index - 1
        reserve = len(f"\n… and {left_after} more") if left_after else 0
        if out and len("\n".join([*out, line])) + reserve > limit:
            out.append(f"… and {len(lines) - index} more")
            break
        out.append(line)
    return clip("\n".join(out), limit)


def field_errors(lines: Sequence[str]) -> dict[str, Any]:
    """The answer to an editor submission that saved nothing: the errors under the field."""
    return {"response_action": "errors", "errors": {EDITOR_BLOCK: format_field_errors(lines)}}


def message_modal(title: str, blocks: list[dict[str, Any]]) -> View_:
    """A read-only modal (a flow card opened from App Home, a refusal)."""
    return modal(title, blocks[:VIEW_BLOCK_LIMIT], callback_id="flow_info", close="Close")

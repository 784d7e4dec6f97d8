"""Sharing cards: share / unshare answers, `/flow users`, the audit trail, the "shared with
you" DM, link messages, access requests, My buttons and the creation policy.

Buttons carry the flow id (or the access request id) as `value`; a Remove button of
`/flow users` carries `<flow id> <principal>`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from slack_sdk.models.blocks import DividerBlock, MarkdownTextObject, SectionBlock

from cards.common import (
    Message,
    actions,
    button,
    clip,
    context,
    error_message,
    escape,
    message,
    section,
    slack_date,
)
from cards.common import (
    header as header_block,
)
from cards.home import RUN_FLOW_ACTION
from flows.errors import FlowbotError
from flows.records import FlowRecord, Role
from flows.sharing import (
    AccessRequest,
    AuditEntry,
    BadCreatorsList,
    ButtonItem,
    LinkNotPosted,
    MyButtons,
    NotAButton,
    PrincipalRefusal,
    RequestGone,
    ShareLine,
    ShareResult,
    SharingConflict,
    SharingRefused,
    UnshareResult,
    UsersView,
    WorkspacePolicy,
)
from flows.slack_ids import mention

ADD_BUTTON_ACTION = "sharing:add_button"
REMOVE_BUTTON_ACTION = "sharing:remove_button"
REMOVE_SHARE_ACTION = "sharing:remove_share"
REQUEST_ACCESS_ACTION = "sharing:request_access"
APPROVE_ACTION = "sharing:approve"
DENY_ACTION = "sharing:deny"
LINK_RUN_ACTION = "sharing:link_run"
# My buttons run through the runs area's App Home action (value: the flow id).
RUN_ACTION = RUN_FLOW_ACTION

# /flow users: one message holds 50 blocks; list this many shares, then "and N more".
USERS_LIMIT = 40
MEMBERS_SHOWN = 8
# My buttons (App Home: 100 blocks in all, two per button): added ones, then new / removed.
ADDED_LIMIT = 10
OTHERS_LIMIT = 5


def _name(flow: FlowRecord) -> str:
    return f"*{escape(flow.name)}*"


ROLE_LABELS: dict[str, str] = {"creator": "creator", "owner": "co-owner", "runner": "run-only"}

# Why one principal of a share / unshare was left out.
PRINCIPAL_REFUSALS: dict[PrincipalRefusal, str] = {
    "is_creator": "is the creator and always owns the flow",
    "cannot_add": "can't be added",
    "creator_unremovable": "is the creator and can never be removed",
    "not_shared": "isn't on the sharing list",
    "cannot_remove": "can't be removed",
}

# What a button of a flow that no longer exists (or is no longer shared) answers.
GONE = "This flow no longer exists, or it is no longer shared with you."


def role_label(role: str) -> str:
    return ROLE_LABELS.get(role, role)


def _list(principals: Sequence[str]) -> str:
    return ", ".join(mention(p) for p in principals)


def _refused_line(principal: str, why: PrincipalRefusal) -> str:
    return f"{mention(principal)} {PRINCIPAL_REFUSALS[why]}."


# ------------------------------------------------------------------ refusals


# `flows.permissions` said no: `{name}` is the flow's name.
_REFUSED_OPERATIONS: dict[str, str] = {
    "share": "You can't share {name}: only its owners and workspace admins can.",
    "unshare": (
        "You can't change who {name} is shared with: only its owners and workspace admins can."
    ),
    "see_users": "Only the owners of {name} (and workspace admins) can see who it is shared with.",
    "see_audit": "Only the owners of {name} (and workspace admins) can see its sharing history.",
    "share_link": "You can't share a link to {name}: only people who may run it can.",
    "keep_managing": "You can no longer change who {name} is shared with.",
    "answer_request": "Only the owners of {name} can answer access requests.",
    "add_button": "{name} is not shared with you (any more).",
    "set_creators": "Only workspace admins and owners can change who may create flows.",
}
# An instant flow (a button) was needed: `{name}`, `{kind}` the flow's name and kind.
_NOT_A_BUTTON: dict[str, str] = {
    "run_only_share": (
        "{name} is a {kind} flow: run-only sharing is for instant flows (buttons). "
        "Share it `as owner` to let people run it on demand."
    ),
    "link": "{name} is a {kind} flow; only instant flows (buttons) have links.",
    "request": "{name} is not a button; ask its owners directly.",
    "approve": "{name} is no longer a button.",
}


def describe_sharing_error(error: FlowbotError) -> str | None:
    """The words for sharing's refusals (`flows.sharing.errors`); None for others."""
    if isinstance(error, SharingRefused):
        name = f"*{escape(error.flow_name or '')}*"
        return _REFUSED_OPERATIONS[error.operation].format(name=name)
    if isinstance(error, NotAButton):
        name = f"*{escape(error.flow_name)}*"
        return _NOT_A_BUTTON[error.purpose].format(name=name, kind=error.kind)
    if isinstance(error, SharingConflict):
        return "The sharing list changed under us several times; try again."
    if isinstance(error, RequestGone):
        if error.flow_name is None:
            return "That access request no longer exists."
        return f"The flow *{escape(error.flow_name)}* no longer exists."
    if isinstance(error, BadCreatorsList):
        return "List people, user groups or channels, or say `everyone`."
    if isinstance(error, LinkNotPosted):
        return f"I couldn't post in <#{error.channel}>: invite me there (`/invite @Flowbot`)."
    return None


def principal_refused(principal: str, why: PrincipalRefusal) -> Message:
    """The Remove button of `/flow users` did not remove `principal`."""
    return error_message(_refused_line(principal, why), None)


# ------------------------------------------------------------------ share / unshare answers


def share_result(result: ShareResult) -> Message:
    flow = result.flow
    lines = []
    if result.added:
        who = _list([c.principal for c in result.added])
        lines.append(
            f":white_check_mark: Shared {_name(flow)} with {who} as *{role_label(result.role)}*."
        )
    for change in result.changed:
        lines.append(
            f":arrows_counterclockwise: {mention(change.principal)} is now "
            f"*{role_label(change.role)}* (was {role_label(change.previous_role or '')})."
        )
    if result.unchanged:
        lines.append(
            f"{_list(result.unchanged)} already had {_name(flow)} as *{role_label(result.role)}*."
        )
    for principal, why in result.refused:
        lines.append(f":warning: {_refused_line(principal, why)}")
    if result.added or result.changed:
        lines.append("_They have been told, with a button to add it to their buttons._")
    text = "\n".join(lines) or "Nothing changed."
    return message(f"Sharing of {flow.name} updated", section(text))


def unshare_result(result: UnshareResult) -> Message:
    flow = result.flow
    lines = []
    if result.removed:
        who = _list([c.principal for c in result.removed])
        lines.append(f":white_check_mark: {_name(flow)} is no longer shared with {who}.")
    for principal, why in result.refused:
        lines.append(f":warning: {_refused_line(principal, why)}")
    text = "\n".join(lines) or "Nothing changed."
    return message(f"Sharing of {flow.name} updated", section(text))


# ------------------------------------------------------------------ /flow users and audit


def remove_value(flow_id: str, principal: str) -> str:
    return f"{flow_id} {principal}"


def parse_remove_value(value: str) -> tuple[str, str]:
    flow_id, _, principal = value.partition(" ")
    return flow_id, principal


def _line_text(line: ShareLine) -> str:
    who = mention(line.principal)
    if line.kind == "group":
        who += " (user group)"
    elif line.kind == "channel":
        who += " (channel members)"
    text = f"{who} — *{role_label(line.role)}*"
    if line.role == "creator":
        text += " · can't be removed"
    elif line.added_by:
        text += f" · added by <@{line.added_by}>"
        if line.added_at:
            text += f" {slack_date(line.added_at)}"
    if line.members is not None:
        shown = ", ".join(f"<@{u}>" for u in line.members[:MEMBERS_SHOWN])
        more = len(line.members) - MEMBERS_SHOWN
        if more > 0:
            shown += f" and {more} more"
        text += f"\n    through it: {shown or 'nobody at the moment'}"
    return text


def users_list(view: UsersView) -> Message:
    flow = view.flow
    blocks: list[dict[str, Any]] = [
        header_block(f"Who can use {flow.name}"),
        context(
            f"{flow.kind.capitalize()} flow · co-owners can edit, share and delete it"
            + (" · run-only users can run it" if flow.kind == "instant" else "")
        ),
    ]
    if not view.lines:
        blocks.append(section("You can no longer see who this flow is shared with."))
        return message(f"Who can use {flow.name}", *blocks)
    for line in view.lines[:USERS_LIMIT]:
        block = SectionBlock(text=MarkdownTextObject(text=clip(_line_text(line))))
        if line.removable:
            block.accessory = button(
                "Remove", REMOVE_SHARE_ACTION, remove_value(flow.id, line.principal), "danger"
            )
        blocks.append(block.to_dict())
    if len(view.lines) > USERS_LIMIT:
        blocks.append(context(f"…and {len(view.lines) - USERS_LIMIT} more."))
    if view.audit:
        blocks.append(DividerBlock().to_dict())
        recent = "\n".join(audit_line(entry) for entry in view.audit)
        blocks.append(context(f"*Recent changes* (`/flow audit {escape(flow.name)}`)\n{recent}"))
    return message(f"Who can use {flow.name}", *blocks)


def audit_line(entry: AuditEntry) -> str:
    who = f"<@{entry.actor}>"
    target = mention(entry.principal) if entry.principal else ""
    if entry.kind == "shared":
        what = f"shared it with {target} as {role_label(entry.role or '')}"
    elif entry.kind == "role_changed":
        what = (
            f"made {target} {role_label(entry.role or '')} "
            f"(was {role_label(entry.previous_role or '')})"
        )
    elif entry.kind == "unshared":
        what = f"removed {target} ({role_label(entry.previous_role or '')})"
    elif entry.kind == "access_requested":
        what = "requested access"
    elif entry.kind == "access_approved":
        what = f"approved access for {target} (run-only)"
    elif entry.kind == "access_denied":
        what = f"denied access to {target}"
    else:
        what = f"changed who may create flows: {escape(entry.detail or '')}"
    return f"{slack_date(entry.at)} {who} {what}"


def audit_list(flow: FlowRecord, entries: Sequence[AuditEntry]) -> Message:
    blocks: list[dict[str, Any]] = [header_block(f"Sharing history of {flow.name}")]
    if not entries:
        blocks.append(section("No sharing changes yet."))
    else:
        lines = [audit_line(entry) for entry in entries]
        # Sections hold 3000 characters: split the lines over several.
        chunk: list[str] = []
        for line in lines:
            if sum(len(x) + 1 for x in chunk) + len(line) > 2800:
                blocks.append(section("\n".join(chunk)))
                chunk = []
            chunk.append(line)
        if chunk:
            blocks.append(section("\n".join(chunk)))
    return message(f"Sharing history of {flow.name}", *blocks)


# ------------------------------------------------------------------ telling recipients


def shared_with_you(flow: FlowRecord, actor: str, role: Role, via: str | None) -> Message:
    """The DM to a recipient (or, `via` a channel, the post in that channel)."""
    is_button = flow.kind == "instant"
    thing = "the button" if is_button else f"the {flow.kind} flow"
    if via is not None and via.startswith(("C", "G")):
        whom = "this channel"
    elif via is not None:
        whom = f"you (through {mention(via)})"
    else:
        whom = "you"
    if role == "owner":
        text = f"<@{actor}> shared {thing} {_name(flow)} with {whom} as a *co-owner*"
        text += ": you can run, edit, share and delete it."
    else:
        text = f"<@{actor}> shared {thing} {_name(flow)} with {whom}."
    blocks = [section(text)]
    if flow.definition.description:
        blocks.append(context(escape(clip(flow.definition.description, 500))))
    if is_button:
        blocks.append(actions(button("Add to my buttons", ADD_BUTTON_ACTION, flow.id, "primary")))
    plain = f"<@{actor}> shared {thing} {flow.name} with {whom}"
    return message(plain, *blocks)


def button_added(flow: FlowRecord) -> Message:
    return message(
        f"{flow.name} is in your buttons",
        section(
            f":white_check_mark: {_name(flow)} is in *My buttons* on the Flowbot Home tab "
            "(and in `/flow buttons`)."
        ),
    )


def button_removed(flow: FlowRecord) -> Message:
    return message(
        f"{flow.name} was removed from your buttons",
        section(
            f"{_name(flow)} was removed from *My buttons*. It stays shared with you: add it "
            "back from the Home tab or `/flow buttons`."
        ),
        actions(button("Add it back", ADD_BUTTON_ACTION, flow.id)),
    )


# ------------------------------------------------------------------ links and access requests


def link_message(flow: FlowRecord, actor: str, run_action: str = LINK_RUN_ACTION) -> Message:
    blocks = [section(f":zap: <@{actor}> shared a link to the button {_name(flow)}.")]
    if flow.definition.description:
        blocks.append(context(escape(clip(flow.definition.description, 500))))
    blocks.append(actions(button(f"Run {flow.name}", run_action, flow.id, "primary")))
    blocks.append(context("Only people it is shared with can run it; others can ask for access."))
    return message(f"{flow.name}: a button shared by <@{actor}>", *blocks)


def link_posted(flow: FlowRecord, channel: str) -> Message:
    return message(
        f"Posted a link to {flow.name}",
        section(f":white_check_mark: Posted a link to {_name(flow)} in <#{channel}>."),
    )


def request_offer(flow: FlowRecord) -> Message:
    text = (
        f":lock: You can't run {_name(flow)}: it isn't shared with you. "
        "A link grants nothing by itself, but you can ask its owners."
    )
    return message(
        f"You can't run {flow.name}",
        section(text),
        actions(button("Request access", REQUEST_ACCESS_ACTION, flow.id, "primary")),
    )


def request_sent(flow: FlowRecord, owners_told: int, already_pending: bool) -> Message:
    if already_pending:
        text = f":hourglass: You already asked for access to {_name(flow)}; its owners will answer."
    else:
        text = (
            f":email: Asked the owners of {_name(flow)} for access "
            f"({owners_told} {'person' if owners_told == 1 else 'people'}). "
            "You'll get a DM with their answer."
        )
    return message(f"Access to {flow.name} requested", section(text))


def already_allowed(flow: FlowRecord) -> Message:
    return message(
        f"You can already run {flow.name}",
        section(f"You can already run {_name(flow)}."),
    )


def access_request(request: AccessRequest, flow: FlowRecord) -> Message:
    """The DM to each owner, with Approve / Deny."""
    text = (
        f":raising_hand: <@{request.requester}> asks to run the button {_name(flow)}. "
        "Approving adds them as a *run-only* user."
    )
    return message(
        f"<@{request.requester}> asks to run {flow.name}",
        section(text),
        actions(
            button("Approve", APPROVE_ACTION, request.id, "primary"),
            button("Deny", DENY_ACTION, request.id, "danger"),
            block_id=f"access:{request.id}",
        ),
    )


def _decision(request: AccessRequest) -> str:
    if request.status == "approved":
        return f":white_check_mark: *Approved* by <@{request.decided_by}>"
    if request.status == "denied":
        return f":x: *Denied* by <@{request.decided_by}>"
    return ":hourglass: Waiting for an owner"


def access_request_closed(request: AccessRequest, flow: FlowRecord | None) -> Message:
    name = _name(flow) if flow else f"*{escape(request.flow_name)}*"
    text = f"<@{request.requester}> asked to run the button {name}.\n{_decision(request)}"
    return message(
        f"Access request for {request.flow_name}: {request.status}",
        section(text),
    )


def access_answer(request: AccessRequest, flow: FlowRecord) -> Message:
    """The DM telling the requester the answer."""
    if request.status == "approved":
        return message(
            f"You can now run {flow.name}",
            section(
                f":white_check_mark: <@{request.decided_by}> approved your request: you can "
                f"now run the button {_name(flow)}."
            ),
            actions(button("Add to my buttons", ADD_BUTTON_ACTION, flow.id, "primary")),
        )
    return message(
        f"Your request to run {flow.name} was denied",
        section(f":x: <@{request.decided_by}> denied your request to run {_name(flow)}."),
    )


def already_decided(request: AccessRequest) -> Message:
    return message(
        "This request was already answered",
        section(f"This request was already answered: {_decision(request)}."),
    )


# ------------------------------------------------------------------ My buttons


def _button_row(item: ButtonItem, run_action: str) -> list[dict[str, Any]]:
    flow = item.flow
    via = f" (through {mention(item.access.via)})" if item.access.via else ""
    role = "co-owner" if item.access.is_owner else "run-only"
    text = f"{_name(flow)}{via} · {role}"
    if not flow.enabled:
        text += " · _turned off_"
    if flow.definition.description:
        text += f"\n{escape(clip(flow.definition.description, 200))}"
    if item.status == "added":
        elements = [
            button("Run", run_action, flow.id, "primary"),
            button("Remove", REMOVE_BUTTON_ACTION, flow.id),
        ]
    else:
        elements = [button("Add to my buttons", ADD_BUTTON_ACTION, flow.id, "primary")]
    return [
        section(text),
        actions(*elements, block_id=f"mybuttons:{item.status}:{flow.id}"),
    ]


def _rows(items: Sequence[ButtonItem], limit: int, run_action: str) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = []
    for item in items[:limit]:
        blocks.extend(_button_row(item, run_action))
    if len(items) > limit:
        blocks.append(context(f"…and {len(items) - limit} more: `/flow buttons` lists them."))
    return blocks


def my_buttons_blocks(
    buttons: MyButtons, run_action: str = RUN_ACTION, *, header: bool = True
) -> list[dict[str, Any]]:
    """The My buttons section (App Home and `/flow buttons`): banner, added, new, removed.
    The App Home has its own header (`header=False`). At most 46 blocks."""
    blocks: list[dict[str, Any]] = []
    if header:
        blocks.append(header_block("My buttons"))
    if buttons.banner:
        count = len(buttons.new)
        noun = "button is" if count == 1 else "buttons are"
        blocks.append(section(f":sparkles: *{count} new {noun} available* — shared with you."))
    if buttons.added:
        blocks += _rows(buttons.added, ADDED_LIMIT, run_action)
    elif not buttons.new:
        blocks.append(context("Buttons shared with you appear here once you add them."))
    if buttons.new:
        blocks.append(context("*New — shared with you*"))
        blocks += _rows(buttons.new, OTHERS_LIMIT, run_action)
    if buttons.removed:
        blocks.append(context("*Shared with you, removed from My buttons*"))
        blocks += _rows(buttons.removed, OTHERS_LIMIT, run_action)
    return blocks


def my_buttons_message(buttons: MyButtons, run_action: str = RUN_ACTION) -> Message:
    blocks = my_buttons_blocks(buttons, run_action)
    return message("My buttons", *blocks[:50])


# ------------------------------------------------------------------ creation policy


def policy_message(policy: WorkspacePolicy) -> Message:
    if policy.creators is None:
        text = "*Everyone* in this workspace may create flows."
    else:
        text = f"Only {_list(policy.creators)} (and workspace admins) may create flows."
    if policy.updated_by and policy.updated_at:
        text += f"\n_Set by <@{policy.updated_by}> {slack_date(policy.updated_at)}._"
    return message("Who may create flows", section(text))

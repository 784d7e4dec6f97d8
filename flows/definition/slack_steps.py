"""Slack action steps (SPEC §13): update a message, react, create a channel, invite
people, set a topic, look a person up by email. `post_message` and `send_dm` live in
`steps.py`; these are the other things Slack Workflow Builder's built-in steps do."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BeforeValidator, Field, model_validator

from flows.definition.errors import fail
from flows.definition.fields import channel_target, is_template, str_list
from flows.definition.step_base import StepBase, check_text_or_blocks
from flows.slack_ids import parse_principal, principal_kind, split_principals

_EMOJI = re.compile(r":?[a-z0-9_+'\-]+(?:::skin-tone-[2-6])?:?")
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
TOPIC_MAX = 250


def _ts(value: Any) -> Any:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        raise ValueError('quote a message ts ("1700000000.000100"): YAML reads it as a number')
    if isinstance(value, str):
        value = value.strip()
        if not is_template(value) and not re.fullmatch(r"\d+\.\d+", value):
            raise ValueError(
                f"invalid message ts {value!r} (expected 1700000000.000100 or a template "
                "such as {{ steps.post.ts }})"
            )
    return value


def _emoji(value: str) -> str:
    value = value.strip()
    if is_template(value) or _EMOJI.fullmatch(value):
        return value
    raise ValueError(f"invalid emoji {value!r} (expected a name such as white_check_mark)")


def _invitee(value: str) -> str:
    value = value.strip()
    if is_template(value):
        return value
    principal = parse_principal(value)
    if principal is None:
        raise ValueError(
            f"invalid person {value!r} (expected <@U…>, <!subteam^S…>, an id or a template)"
        )
    if principal_kind(principal) == "channel":
        raise ValueError(f"{value!r} is a channel: invite people or user groups")
    return value


def _one_or_many(value: Any) -> Any:
    """`users: "<@U1> <@U2>"` is two people; a template stays one entry (rendered later)."""
    if isinstance(value, str):
        return [value] if is_template(value) else split_principals([value])
    return str_list(value)


def _email(value: str) -> str:
    value = value.strip()
    if is_template(value) or _EMAIL.fullmatch(value):
        return value
    raise ValueError(f"invalid email {value!r}")


def _channel_name(value: str) -> str:
    value = value.strip()
    if not value:
        raise ValueError("the channel name is empty")
    if not is_template(value) and not normalise_channel_name(value):
        raise ValueError(f"{value!r} has no letter or digit to make a channel name from")
    return value


def normalise_channel_name(name: str) -> str:
    """Slack's rules: lower case, letters, digits, `-` and `_`, at most 80 characters.
    Spaces, dots and other characters become `-` (`Inc 2024.05.31` → `inc-2024-05-31`)."""
    name = name.strip().lstrip("#").lower()
    name = re.sub(r"[^\w\-]+", "-", name, flags=re.ASCII)
    name = re.sub(r"-{2,}", "-", name).strip("-_")
    return name[:80].rstrip("-_")


Channel = Annotated[str, AfterValidator(channel_target)]
MessageTs = Annotated[str, BeforeValidator(_ts)]


class UpdateMessageStep(StepBase):
    """Replace the text and/or blocks of a message the bot posted. Outputs `channel`, `ts`."""

    type: Literal["update_message"] = "update_message"
    channel: Channel
    ts: MessageTs
    text: str | None = None
    blocks: list[dict[str, Any]] | None = None

    @model_validator(mode="after")
    def _check(self) -> UpdateMessageStep:
        check_text_or_blocks(self.text, self.blocks)
        return self


class AddReactionStep(StepBase):
    """React to a message with `emoji` (a name, colons optional). Already there: fine."""

    type: Literal["add_reaction"] = "add_reaction"
    channel: Channel
    ts: MessageTs
    emoji: Annotated[str, AfterValidator(_emoji)]


class CreateChannelStep(StepBase):
    """Create a channel; `name` is made to fit Slack's rules. Outputs `channel` (its id),
    `name` and `created` (false when `if_exists: use` found it)."""

    type: Literal["create_channel"] = "create_channel"
    name: Annotated[str, AfterValidator(_channel_name)]  # type: ignore[assignment]
    private: bool = False
    if_exists: Literal["fail", "use"] = "fail"


class InviteToChannelStep(StepBase):
    """Invite people and user groups (expanded to their members). People already in the
    channel are fine. Outputs `channel`, `invited` and `already_in`."""

    type: Literal["invite_to_channel"] = "invite_to_channel"
    channel: Channel
    users: Annotated[
        list[Annotated[str, AfterValidator(_invitee)]], BeforeValidator(_one_or_many)
    ] = Field(min_length=1, max_length=1000)


class SetChannelTopicStep(StepBase):
    """Set a channel's topic (at most 250 characters). Outputs `channel`, `topic`."""

    type: Literal["set_channel_topic"] = "set_channel_topic"
    channel: Channel
    topic: str = Field(max_length=TOPIC_MAX * 4)

    @model_validator(mode="after")
    def _check(self) -> SetChannelTopicStep:
        if not is_template(self.topic) and len(self.topic) > TOPIC_MAX:
            fail([("topic", f"at most {TOPIC_MAX} characters (Slack's limit)")])
        return self


class LookupUserStep(StepBase):
    """Find a person by email. Outputs `user` (id), `name`, `real_name`, `tz`, `email`.
    Nobody with that email fails the step."""

    type: Literal["lookup_user"] = "lookup_user"
    email: Annotated[str, AfterValidator(_email)]


SLACK_STEP_CLASSES: dict[str, type[StepBase]] = {
    "update_message": UpdateMessageStep,
    "add_reaction": AddReactionStep,
    "create_channel": CreateChannelStep,
    "invite_to_channel": InviteToChannelStep,
    "set_channel_topic": SetChannelTopicStep,
    "lookup_user": LookupUserStep,
}
SLACK_TEMPLATE_FIELDS: dict[str, tuple[str, ...]] = {
    "update_message": ("channel", "ts", "text", "blocks"),
    "add_reaction": ("channel", "ts", "emoji"),
    "create_channel": ("name",),
    "invite_to_channel": ("channel", "users"),
    "set_channel_topic": ("channel", "topic"),
    "lookup_user": ("email",),
}

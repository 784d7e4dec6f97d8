"""Slack ids and the escaped mentions Slack sends: the one place that parses them.

Slack escapes people, groups and channels in command text and in messages as
`<@U…|name>`, `<!subteam^S…|handle>` and `<#C…|name>`; flow definitions may also use
bare ids. Every module that reads a person, group or channel asks this one.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

# Unanchored, for finding mentions inside text; `fullmatch` them to check a whole token.
USER_MENTION = re.compile(r"<@([UW][A-Z0-9]+)(?:\|[^>]*)?>")
GROUP_MENTION = re.compile(r"<!subteam\^(S[A-Z0-9]+)(?:\|[^>]*)?>")
CHANNEL_MENTION = re.compile(r"<#([CG][A-Z0-9]+)(?:\|[^>]*)?>")
# A DM's id (D…) may stand where a channel does in a step's `channel`.
CONVERSATION_MENTION = re.compile(r"<#([CGD][A-Z0-9]+)(?:\|[^>]*)?>")

USER_ID = re.compile(r"[UW][A-Z0-9]{2,}")
GROUP_ID = re.compile(r"S[A-Z0-9]{2,}")
CHANNEL_ID = re.compile(r"[CG][A-Z0-9]{2,}")
CONVERSATION_ID = re.compile(r"[CGDUW][A-Z0-9]{2,}")
# U…/W… users, S… user groups, C…/G… channels (G: legacy private channels).
PRINCIPAL_ID = re.compile(r"[UWSCG][A-Z0-9]{2,}")
CHANNEL_NAME = re.compile(r"#[^\s#<>|,]{1,80}")

# One mention, or one word between spaces and commas.
_TOKEN = re.compile(r"<[^>]*>|[^\s,<>]+")


def _mentioned(text: str, *patterns: re.Pattern[str]) -> str | None:
    text = text.strip()
    for pattern in patterns:
        match = pattern.fullmatch(text)
        if match:
            return match.group(1)
    return None


def parse_user(text: str) -> str | None:
    """`<@U1|x>` or a bare `U1` → U1; anything else → None."""
    found = _mentioned(text, USER_MENTION)
    if found:
        return found
    text = text.strip()
    return text if USER_ID.fullmatch(text) else None


def parse_channel(text: str, *, allow_dm: bool = False) -> str | None:
    """`<#C1|x>` or a bare `C1` (and `D…` when `allow_dm`) → the id; a `#name` → None."""
    found = _mentioned(text, CONVERSATION_MENTION if allow_dm else CHANNEL_MENTION)
    if found:
        return found
    text = text.strip()
    if allow_dm:
        return text if re.fullmatch(r"[CGD][A-Z0-9]{2,}", text) else None
    return text if CHANNEL_ID.fullmatch(text) else None


def parse_mention(text: str) -> str | None:
    """An escaped mention only: `<@U1|x>` → U1, `<!subteam^S1|x>` → S1, `<#C1|x>` → C1."""
    return _mentioned(text, USER_MENTION, GROUP_MENTION, CHANNEL_MENTION)


def parse_principal(text: str) -> str | None:
    """An escaped mention or a bare user, group or channel id → the id; else None."""
    found = parse_mention(text)
    if found:
        return found
    text = text.strip()
    return text if PRINCIPAL_ID.fullmatch(text) else None


def is_principal(principal: str) -> bool:
    return bool(PRINCIPAL_ID.fullmatch(principal))


def principal_kind(principal: str) -> str:
    """ "user", "group" or "channel" (by Slack's id prefixes)."""
    if principal.startswith("S"):
        return "group"
    if principal.startswith(("C", "G")):
        return "channel"
    return "user"


def looks_like_mention(token: str) -> bool:
    """Typed as a person, group or channel (escaped by Slack, or `@name` / `#name`)."""
    return token.startswith(("<@", "<!subteam", "<#", "@", "#"))


def split_principals(values: Iterable[str]) -> list[str]:
    """Rendered entries may hold several mentions separated by spaces or commas."""
    out: list[str] = []
    for value in values:
        out.extend(_TOKEN.findall(value))
    return out


def mention(principal: str) -> str:
    """How Slack shows a principal in mrkdwn."""
    if principal.startswith("S"):
        return f"<!subteam^{principal}>"
    if principal.startswith(("C", "G")):
        return f"<#{principal}>"
    return f"<@{principal}>"

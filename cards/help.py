"""The `/flow help` card."""

from __future__ import annotations

from collections.abc import Sequence

from cards.common import Message, context, message, section


def usage_line() -> str:
    return (
        "/flow help | list | new | import | show | edit | export | run | share | unshare"
        " | users | history | on | off | delete | link | buttons | connections | connect"
        " | approvals"
    )


def help_message(subcommands: Sequence[tuple[str, str]]) -> Message:
    """subcommands: (usage, summary) pairs in display order."""
    lines = "\n".join(f"`{usage}` — {summary}" for usage, summary in subcommands)
    return message(
        "Flowbot help: run, share and approve flows from Slack.",
        section("*Flowbot* brings flows to Slack: run them, share them, approve their steps."),
        section(lines or "`/flow help`"),
        context('Names with spaces go in double quotes: `/flow run "Expense approval" amount=12`'),
    )


def subcommand_help(usage: str, summary: str) -> Message:
    """`/flow help <subcommand>`: what it does and how to type it."""
    return message(
        f"{summary}. Usage: {usage}",
        section(f"{summary}.\nUsage: `{usage}`"),
        context('Names with spaces go in double quotes: `/flow run "Expense approval" amount=12`'),
    )

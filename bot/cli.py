"""Flows as code for administrators: `python -m bot flows import|export`."""

from __future__ import annotations

import sys

from bot.settings import Settings


def flows_cli(settings: Settings, argv: list[str]) -> int:
    print("usage: python -m bot flows import FILE --team T --user U", file=sys.stderr)
    return 2

"""Flows as code for administrators: `python -m bot flows import|export`.

    python -m bot flows import FILE --team T --user U   create, or save as a new version
    python -m bot flows export NAME --team T            print the YAML to stdout

The database is MONGODB_URI, or the embedded one under FLOWBOT_DATA_DIR (as the server
uses; stop the server first, the embedded database takes one process at a time).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from adapters.slack import SlackDirectory, make_client
from bot.settings import Settings
from bot.startup import DataDirLock, StartupError
from cards.errors import describe
from flows.catalog import FlowCatalog, FlowNotFound, SaveResult
from flows.definition import DefinitionError, dump_yaml, parse_definition
from flows.errors import FlowbotError
from flows.ports import RandomIds, SystemClock
from storage.embedded import EmbeddedMongo
from storage.flows_repo import MongoFlowStore
from storage.mongo import Storage


class OfflineDirectory:
    """Without Slack: nobody is in a group or channel, nobody is an admin. The acting user
    then needs to be the flow's creator or a co-owner named directly."""

    async def usergroup_members(self, team_id: str, group_id: str) -> frozenset[str]:
        return frozenset()

    async def channel_members(self, team_id: str, channel_id: str) -> frozenset[str]:
        return frozenset()

    async def is_workspace_admin(self, team_id: str, user_id: str) -> bool:
        return False

    async def resolve_channel(self, team_id: str, channel: str) -> str:
        return channel

    async def channel_id(self, team_id: str, name: str) -> str | None:
        return None


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bot flows", description="Flows as code: import and export definitions."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    importing = commands.add_parser(
        "import", help="create a flow from a YAML/JSON file, or save a new version of it"
    )
    importing.add_argument("file", type=Path, help="the definition (YAML or JSON); - for stdin")
    importing.add_argument("--team", required=True, help="workspace id (T…)")
    importing.add_argument("--user", required=True, help="who creates or edits it (U…)")
    exporting = commands.add_parser("export", help="print a flow's definition as YAML")
    exporting.add_argument("flow", help="the flow's name or id")
    exporting.add_argument("--team", required=True, help="workspace id (T…)")
    return parser


@asynccontextmanager
async def open_catalog(settings: Settings) -> AsyncIterator[FlowCatalog]:
    embedded: EmbeddedMongo | None = None
    lock = DataDirLock(settings.flowbot_data_dir)
    uri = settings.mongodb_uri
    if uri is None:
        lock.acquire()  # the embedded database takes one process at a time
        embedded = EmbeddedMongo(settings.flowbot_data_dir / "db")
        await embedded.astart()
        uri = embedded.uri
    storage = Storage(uri, settings.mongodb_db)
    try:
        store = MongoFlowStore(storage.db)
        storage.add(store)
        await storage.ensure_indexes()
        directory = (
            SlackDirectory(
                make_client(settings.slack_bot_token.get_secret_value(), settings.slack_api_url)
            )
            if settings.slack_bot_token is not None
            else OfflineDirectory()
        )
        yield FlowCatalog(store, directory, SystemClock(), RandomIds())
    finally:
        storage.close()
        if embedded is not None:
            await embedded.astop()
        lock.release()


def _read(path: Path) -> str:
    if str(path) == "-":
        return sys.stdin.read()
    return path.read_text(encoding="utf-8")


async def import_flow(settings: Settings, path: Path, team: str, user: str) -> int:
    try:
        text = _read(path)
    except (OSError, UnicodeDecodeError) as exc:
        print(f"flowbot: cannot read {path}: {exc}", file=sys.stderr)
        return 1
    try:
        definition = parse_definition(text)
    except DefinitionError as exc:
        print(f"flowbot: {path} is not a valid flow definition:", file=sys.stderr)
        for error in exc.errors:
            print(f"  {error}", file=sys.stderr)
        return 1
    async with open_catalog(settings) as catalog:
        try:
            existing = await catalog.find(team, definition.name)
        except FlowNotFound:
            existing = None
        try:
            if existing is None:
                result = await catalog.create(team, user, definition)
            else:
                result = await catalog.update_definition(team, user, existing.id, definition)
        except FlowbotError as exc:
            print(f"flowbot: {_plain(describe(exc))}", file=sys.stderr)
            return 1
        except DefinitionError as exc:  # a call_flow step that does not fit its child
            print(f"flowbot: {path} is not a valid flow definition:", file=sys.stderr)
            for error in exc.errors:
                print(f"  {error}", file=sys.stderr)
            return 1
    _report(result)
    return 0


def _report(result: SaveResult) -> None:
    flow = result.flow
    verb = "created" if result.created else "updated"
    print(f"{verb} flow {flow.name!r} ({flow.id}), version {flow.version}", file=sys.stderr)
    if result.webhook_token:
        # Shown once, like in Slack: only its hash is stored.
        print(f"webhook token (shown once): {result.webhook_token}", file=sys.stderr)


async def export_flow(settings: Settings, ref: str, team: str) -> int:
    async with open_catalog(settings) as catalog:
        try:
            flow = await catalog.find(team, ref)
        except FlowNotFound as exc:
            print(f"flowbot: {_plain(describe(exc))}", file=sys.stderr)
            return 1
    sys.stdout.write(dump_yaml(flow.definition))
    return 0


def _plain(text: str) -> str:
    """Slack mrkdwn to terminal text."""
    for mark in ("*", "`"):
        text = text.replace(mark, "")
    return text


def flows_cli(settings: Settings, argv: list[str]) -> int:
    parser = make_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse printed the usage
        return int(exc.code or 0)
    try:
        if args.command == "import":
            return asyncio.run(import_flow(settings, args.file, args.team, args.user))
        return asyncio.run(export_flow(settings, args.flow, args.team))
    except StartupError as exc:  # e.g. the server holds the data folder
        print(f"flowbot: {exc}", file=sys.stderr)
        return 1

"""`python -m bot`: run the bot; `python -m bot flows import|export …`: flows as code;
`python -m bot --help`: the commands and every setting.

A start that cannot work (MongoDB unreachable, the data folder used by another Flowbot,
the port taken, the embedded database missing) prints one line and exits 1."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
import sys

from pymongo.errors import PyMongoError

from bot.logs import configure_logging
from bot.settings import Settings, SettingsError, load_settings
from bot.startup import (
    DataDirLock,
    StartupError,
    check_embedded_installed,
    check_port_free,
    mongo_hosts,
    port_error,
)
from bot.usage import COMMANDS, full_help
from storage.embedded import EmbeddedMongo

log = logging.getLogger("bot")

NO_SLACK_HELP = """\
Slack is not configured: Flowbot serves /healthz, but refuses Slack requests until you set
  SLACK_BOT_TOKEN       the bot token (xoxb-…) from your Slack app's "OAuth & Permissions"
  SLACK_SIGNING_SECRET  from your Slack app's "Basic Information" (HTTP), or
  SLACK_APP_TOKEN       an app-level token (xapp-…) instead, for Socket Mode (no public URL)
Many workspaces: SLACK_CLIENT_ID, SLACK_CLIENT_SECRET and SLACK_STATE_SECRET instead of
  SLACK_BOT_TOKEN; workspaces then install Flowbot at /slack/install.
To try it locally without Slack, run `make sandbox` (a Slack emulator plus the bot).
See README.md for installing slack-manifest.yml in a real workspace."""

EMBEDDED_WITH_SLACK = (
    "Slack is configured but MONGODB_URI is unset: the embedded database is for trying "
    "Flowbot, not for production (one process only, no replicas, no replica set): set "
    "MONGODB_URI to a MongoDB replica set (README: Deployment)"
)


async def _start_embedded(settings: Settings, lock: DataDirLock) -> EmbeddedMongo:
    check_embedded_installed()
    lock.acquire()
    embedded = EmbeddedMongo(settings.flowbot_data_dir / "db")
    log.info("MONGODB_URI is unset: starting the embedded database under %s", embedded.storage_path)
    try:
        await embedded.astart()
    except RuntimeError as exc:
        raise StartupError(
            f"the embedded database under {embedded.storage_path} did not start ({exc}): "
            "see the lines above, or set MONGODB_URI"
        ) from None
    return embedded


async def serve(settings: Settings) -> None:
    from bot.app import build
    from bot.server import Server

    check_port_free(settings.port)
    lock = DataDirLock(settings.flowbot_data_dir)
    embedded: EmbeddedMongo | None = None
    uri = settings.mongodb_uri
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    server: Server | None = None
    try:
        if uri is None:
            embedded = await _start_embedded(settings, lock)
            uri = embedded.uri
            if settings.slack_configured:
                log.warning(EMBEDDED_WITH_SLACK)
        flowbot = build(settings, uri)
        server = Server(flowbot, port=settings.port)
        try:
            await server.start()
        except PyMongoError as exc:
            where = "the embedded database" if embedded else mongo_hosts(uri)
            raise StartupError(
                f"cannot reach MongoDB at {where} ({type(exc).__name__}): "
                "is it running and is MONGODB_URI right?"
            ) from None
        except OSError as exc:
            raise port_error(settings.port, exc) from None
        # What start built (modules, the app, its listeners, the stores) lives as long as
        # the process: kept out of the collector's passes, a full collection under load
        # scans only what requests and runs made since, not the whole program.
        gc.freeze()
        # A young collection every 10,000 allocations, not 700: most of a request's objects
        # are freed by their reference counts before it, so each pass scans fewer
        # survivors and there are far fewer passes (a tenth of an acknowledgement's CPU
        # went to the collector).
        gc.set_threshold(10_000, 10, 10)
        if not settings.slack_configured:
            log.warning(NO_SLACK_HELP)
        via = "Socket Mode" if settings.socket_mode else "POST /slack/events"
        log.info("Flowbot listening on %s (Slack: %s)", server.url, via)
        if settings.oauth and settings.slack_configured:
            log.info("many workspaces: install Flowbot at %s/slack/install", server.url)
        await stop.wait()
        log.info("shutting down")
    finally:
        if server is not None:
            await server.stop()
        if embedded is not None:
            await embedded.astop()
        lock.release()


def main(argv: list[str]) -> int:
    if argv and argv[0] in ("-h", "--help", "help"):
        print(full_help())
        return 0
    try:
        settings = load_settings()
    except SettingsError as exc:
        print(f"flowbot: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level, settings.log_format)
    if argv and argv[0] == "flows":
        from bot.cli import flows_cli

        return flows_cli(settings, argv[1:])
    if argv and argv[0] not in ("run", "serve"):
        print(COMMANDS, file=sys.stderr)
        return 2
    with contextlib.suppress(KeyboardInterrupt):
        try:
            asyncio.run(serve(settings))
        except (StartupError, RuntimeError) as exc:
            print(f"flowbot: {exc}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""`python -m bot`: run the bot; `python -m bot flows import|export …`: flows as code."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys

from bot.settings import Settings, SettingsError, load_settings
from storage.embedded import EmbeddedMongo

log = logging.getLogger("bot")

NO_SLACK_HELP = """\
Slack is not configured: Flowbot serves /healthz, but refuses Slack requests until you set
  SLACK_BOT_TOKEN       the bot token (xoxb-…) from your Slack app's "OAuth & Permissions"
  SLACK_SIGNING_SECRET  from your Slack app's "Basic Information" (HTTP), or
  SLACK_APP_TOKEN       an app-level token (xapp-…) instead, for Socket Mode (no public URL)
To try it locally without Slack, run `make sandbox` (a Slack emulator plus the bot).
See README.md for installing slack-manifest.yml in a real workspace."""


def configure_logging(level: str) -> None:
    logging.basicConfig(
        level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )
    logging.getLogger("slack_bolt").setLevel(max(logging.getLevelName(level), logging.WARNING))


async def serve(settings: Settings) -> None:
    from bot.app import build
    from bot.server import Server

    embedded: EmbeddedMongo | None = None
    uri = settings.mongodb_uri
    if uri is None:
        embedded = EmbeddedMongo(settings.flowbot_data_dir / "db")
        log.info(
            "MONGODB_URI is unset: starting the embedded database under %s", embedded.storage_path
        )
        await embedded.astart()
        uri = embedded.uri
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    server: Server | None = None
    try:
        flowbot = build(settings, uri)
        server = Server(flowbot, port=settings.port)
        await server.start()
        if not settings.slack_configured:
            log.warning(NO_SLACK_HELP)
        via = "Socket Mode" if settings.socket_mode else "POST /slack/events"
        log.info("Flowbot listening on %s (Slack: %s)", server.url, via)
        await stop.wait()
        log.info("shutting down")
    finally:
        if server is not None:
            await server.stop()
        if embedded is not None:
            await embedded.astop()


def main(argv: list[str]) -> int:
    try:
        settings = load_settings()
    except SettingsError as exc:
        print(f"flowbot: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level)
    if argv and argv[0] == "flows":
        from bot.cli import flows_cli

        return flows_cli(settings, argv[1:])
    if argv and argv[0] not in ("run", "serve"):
        print("usage: python -m bot [run] | python -m bot flows import|export …", file=sys.stderr)
        return 2
    with contextlib.suppress(KeyboardInterrupt):
        try:
            asyncio.run(serve(settings))
        except RuntimeError as exc:
            print(f"flowbot: {exc}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""`python -m bot --help`: the commands and every setting (from `bot.settings.Settings`)."""

from __future__ import annotations

from bot.settings import Settings

COMMANDS = """\
usage: python -m bot [run]                        serve Slack, /healthz, /metrics, /hooks/
       python -m bot flows import FILE --team T --user U
                                                  create a flow from YAML/JSON, or a new version
       python -m bot flows export NAME --team T  print a flow's definition as YAML
       python -m bot --help                       this text"""

# What each setting means; a setting missing here is still listed, with its default.
MEANINGS: dict[str, str] = {
    "slack_bot_token": "the bot token (xoxb-…); without it Slack requests get 503",
    "slack_signing_secret": "verifies that requests come from Slack",
    "slack_api_url": "where Slack's Web API is (tests and the sandbox: the emulator)",
    "mongodb_uri": "a MongoDB (mongodb://…); unset: the embedded database under the data folder",
    "mongodb_db": "the database name",
    "port": "the HTTP port",
    "log_level": "DEBUG, INFO, WARNING, ERROR or CRITICAL",
    "log_format": "text, or json (one JSON object per line, with request_id / run_id)",
    "flowbot_secret_key": "Fernet key(s) for connection secrets, newest first; "
    "unset: generated into the data folder",
    "flowbot_data_dir": "the embedded database, the generated key and the lock file",
    "flowbot_allowed_http_hosts": "hosts http_request steps may reach although private",
    "flowbot_max_trigger_depth": "how deep flows may trigger each other (1-20)",
    "flowbot_public_url": "the bot's public base URL, shown in webhook addresses",
}


def _default(name: str) -> str:
    field = Settings.model_fields[name]
    value = field.default
    if value is None or value == "":
        return "unset"
    return str(getattr(value, "value", value))


def settings_help() -> str:
    lines = ["settings (environment variables):"]
    for name in Settings.model_fields:
        meaning = MEANINGS.get(name) or Settings.model_fields[name].description or ""
        lines.append(f"  {name.upper():<28} {meaning} [default: {_default(name)}]")
    return "\n".join(lines)


def full_help() -> str:
    return f"{COMMANDS}\n\n{settings_help()}\n\nSee README.md (Settings, Deployment)."

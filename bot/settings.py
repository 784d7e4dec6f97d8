"""Configuration from the environment (pydantic-settings)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from flows.durations import parse_duration


class SettingsError(Exception):
    """A setting has a wrong value; the message is one line naming the variable."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="", case_sensitive=False, extra="ignore")

    slack_bot_token: SecretStr | None = None
    slack_signing_secret: SecretStr | None = None
    # An app-level token (xapp-…, scope connections:write): Socket Mode instead of HTTP.
    slack_app_token: SecretStr | None = None
    slack_api_url: str = "https://slack.com/api/"
    # Many workspaces (OAuth v2): the app's credentials instead of one SLACK_BOT_TOKEN.
    slack_client_id: str | None = None
    slack_client_secret: SecretStr | None = None
    slack_state_secret: SecretStr | None = None
    # Rotating bot tokens are refreshed this many minutes before they expire.
    slack_token_rotation_minutes: int = Field(default=120, ge=5, le=720)
    mongodb_uri: str | None = None
    mongodb_db: str = Field(default="flowbot", min_length=1, max_length=63)
    port: int = Field(default=3000, ge=0, le=65535)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"
    # text: one readable line per record; json: one JSON object per line
    log_format: Literal["text", "json"] = "text"
    flowbot_secret_key: SecretStr | None = None
    flowbot_data_dir: Path = Path("data")
    # Hosts http_request steps may reach even though they are private or loopback.
    flowbot_allowed_http_hosts: str = ""
    # A chain of flows triggering each other stops at this depth.
    flowbot_max_trigger_depth: int = Field(default=3, ge=1, le=20)
    # The bot's public base URL (what Slack reaches), shown in webhook addresses.
    flowbot_public_url: str | None = None
    # Finished runs are deleted this long after they finish (a TTL index on `finished_at`).
    flowbot_run_retention: timedelta = timedelta(days=30)
    # Posts per second per channel the bot paces itself to (Slack's limit); 0: no pacing.
    flowbot_posts_per_channel: float = Field(default=1.0, ge=0, le=100)

    @field_validator("flowbot_run_retention", mode="before")
    @classmethod
    def _retention(cls, value: object) -> object:
        if isinstance(value, str):
            retention = parse_duration(value)  # a ValueError names the expected form
            if retention < timedelta(hours=1):
                raise ValueError("at least 1h (a run's history must outlive the run)")
            return retention
        return value

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @field_validator("log_format", mode="before")
    @classmethod
    def _lower(cls, value: object) -> object:
        return value.strip().lower() or "text" if isinstance(value, str) else value

    @field_validator("slack_api_url")
    @classmethod
    def _api_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must be an http(s) URL such as https://slack.com/api/")
        return value if value.endswith("/") else value + "/"

    @field_validator("flowbot_public_url")
    @classmethod
    def _public_url(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        value = value.strip()
        parsed = urlsplit(value)
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            raise ValueError("must be an http(s) URL such as https://flowbot.example.com")
        if parsed.query or parsed.fragment:
            raise ValueError("must be a base URL, without ?query or #fragment")
        return value.rstrip("/")

    @field_validator("mongodb_uri")
    @classmethod
    def _mongodb_uri(cls, value: str | None) -> str | None:
        if value in (None, ""):
            return None
        assert value is not None
        if not value.startswith(("mongodb://", "mongodb+srv://")):
            raise ValueError("must start with mongodb:// or mongodb+srv://")
        return value

    @field_validator(
        "slack_bot_token",
        "slack_signing_secret",
        "slack_app_token",
        "slack_client_id",
        "slack_client_secret",
        "slack_state_secret",
        "flowbot_secret_key",
        mode="before",
    )
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        return None if value == "" else value

    @field_validator("slack_app_token")
    @classmethod
    def _app_token(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not value.get_secret_value().startswith("xapp-"):
            raise ValueError("must be an app-level token (xapp-…) with the connections:write scope")
        return value

    @property
    def socket_mode(self) -> bool:
        """Slack reaches the bot over a Socket Mode connection (SLACK_APP_TOKEN set)."""
        return self.slack_app_token is not None

    @property
    def oauth(self) -> bool:
        """Many workspaces: installed through OAuth v2, each with its own bot token."""
        return (
            self.slack_client_id is not None
            and self.slack_client_secret is not None
            and self.slack_state_secret is not None
        )

    @property
    def slack_configured(self) -> bool:
        """A bot token (or OAuth installs), and a way for Slack's requests to arrive: signed
        HTTP requests (SLACK_SIGNING_SECRET) or a Socket Mode connection (SLACK_APP_TOKEN)."""
        return (self.slack_bot_token is not None or self.oauth) and (
            self.slack_signing_secret is not None or self.slack_app_token is not None
        )

    @property
    def allowed_http_hosts(self) -> frozenset[str]:
        return frozenset(
            h.strip().lower() for h in self.flowbot_allowed_http_hosts.split(",") if h.strip()
        )


def load_settings() -> Settings:
    """Read the environment; a wrong value raises SettingsError naming the variable."""
    try:
        settings = Settings()
    except ValidationError as exc:
        first = exc.errors()[0]
        name = str(first["loc"][0]).upper() if first["loc"] else "?"
        raise SettingsError(f"invalid setting {name}: {first['msg']}") from None
    check_oauth(settings)
    return settings


OAUTH_SETTINGS = ("slack_client_id", "slack_client_secret", "slack_state_secret")


def check_oauth(settings: Settings) -> None:
    """OAuth needs its three settings together, and replaces SLACK_BOT_TOKEN."""
    given = [name for name in OAUTH_SETTINGS if getattr(settings, name) is not None]
    if given and len(given) < len(OAUTH_SETTINGS):
        missing = ", ".join(n.upper() for n in OAUTH_SETTINGS if n not in given)
        raise SettingsError(f"invalid setting {given[0].upper()}: OAuth also needs {missing}")
    if given and settings.slack_bot_token is not None:
        raise SettingsError(
            "invalid setting SLACK_BOT_TOKEN: unset it with SLACK_CLIENT_ID (many workspaces: "
            "each installation brings its own bot token)"
        )

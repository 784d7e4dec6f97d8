"""The key ring that encrypts connection secrets.

`FLOWBOT_SECRET_KEY` holds one Fernet key, or several separated by commas, newest first
(rotation: prepend a new key, restart — connections are re-encrypted at start — and drop the
old key later). Without it, a key is generated once into `FLOWBOT_DATA_DIR/secret.key`
(mode 0600) and reused on every start. Keys never reach the logs.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from bot.settings import Settings
from flows.secrets import SecretBox, SecretKeyError, generate_key, parse_keys

log = logging.getLogger(__name__)

KEY_FILE = "secret.key"


class SecretKeyConfigError(RuntimeError):
    """The key setting or file is malformed; one line naming it (`python -m bot` prints it)."""


def key_file(settings: Settings) -> Path:
    return settings.flowbot_data_dir / KEY_FILE


def _read_or_create(path: Path) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        # O_EXCL: two processes starting together cannot both write a different key.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        mode = path.stat().st_mode & 0o777
        if mode & 0o077:
            log.warning("%s is readable by others (mode %o); setting it to 0600", path, mode)
            path.chmod(0o600)
        return path.read_text(encoding="ascii").strip()
    with os.fdopen(fd, "w", encoding="ascii") as handle:
        handle.write(generate_key() + "\n")
    log.info("FLOWBOT_SECRET_KEY is unset: generated a connection key into %s", path)
    return path.read_text(encoding="ascii").strip()


def load_keys(settings: Settings) -> list[str]:
    """The key ring, newest first. A malformed key raises SecretKeyConfigError."""
    if settings.flowbot_secret_key is not None:
        source, value = "FLOWBOT_SECRET_KEY", settings.flowbot_secret_key.get_secret_value()
    else:
        path = key_file(settings)
        source, value = str(path), _read_or_create(path)
    try:
        return parse_keys(value)
    except SecretKeyError as exc:
        raise SecretKeyConfigError(f"invalid setting {source}: {exc}") from None


def load_secret_box(settings: Settings) -> SecretBox:
    return SecretBox(load_keys(settings))

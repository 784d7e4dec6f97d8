"""Start-up checks and their one-line failures: what cannot work is said in one line
naming the cause and what to do, with a non-zero exit and no traceback."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import importlib.util
import os
import socket
from pathlib import Path
from typing import IO

from pymongo.uri_parser import parse_uri


class StartupError(Exception):
    """A start that cannot work; the message is the one line shown."""


def mongo_hosts(uri: str) -> str:
    """The hosts of a MongoDB URI, without user or password (for messages)."""
    try:
        nodes = parse_uri(uri, validate=False, warn=True)["nodelist"]
        return ", ".join(f"{host}:{port}" for host, port in nodes) or "?"
    except Exception:
        return "the host in MONGODB_URI"


def check_port_free(port: int, host: str = "0.0.0.0") -> None:
    if port == 0:
        return
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            raise port_error(port, exc) from None


def port_error(port: int, exc: OSError) -> StartupError:
    if exc.errno == errno.EADDRINUSE:
        return StartupError(
            f"port {port} is taken by another program: stop it, or set PORT to a free port"
        )
    return StartupError(f"cannot listen on port {port} ({exc.strerror}): set PORT to another one")


def check_embedded_installed() -> None:
    if importlib.util.find_spec("secantus") is None:
        raise StartupError(
            "MONGODB_URI is unset and the embedded database is not installed: "
            "set MONGODB_URI to your MongoDB, or `pip install secantusdb` (make run does)"
        )


class DataDirLock:
    """One Flowbot per data folder: an exclusive lock on `<dir>/flowbot.lock`, held while
    the bot runs (the OS releases it when the process dies, even by SIGKILL)."""

    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / "flowbot.lock"
        self._file: IO[str] | None = None

    def acquire(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            handle = self.path.open("a+")
        except OSError as exc:
            raise StartupError(
                f"cannot use the data folder {self.path.parent} ({exc.strerror}): "
                "set FLOWBOT_DATA_DIR to a writable folder"
            ) from None
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.seek(0)
            holder = handle.read().strip() or "?"
            handle.close()
            raise StartupError(
                f"the data folder {self.path.parent} is used by another Flowbot (pid {holder}): "
                "stop it, or set FLOWBOT_DATA_DIR to another folder"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        self._file = handle

    def release(self) -> None:
        handle, self._file = self._file, None
        if handle is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
            handle.close()

"""The embedded MongoDB-compatible server (SecantusDB) run as a child process."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from pymongo import MongoClient
from pymongo.errors import PyMongoError

log = logging.getLogger(__name__)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _die_with_parent() -> None:
    """Linux: the database gets SIGTERM if the bot dies, even by SIGKILL (no orphan lock)."""
    import ctypes

    pr_set_pdeathsig = 1
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)


class EmbeddedMongo:
    """Starts `secantusd-py` on a free port, waits until it answers, stops it on exit.

    `storage_path` is a directory, or ":memory:" for an ephemeral store (tests).
    """

    def __init__(self, storage_path: str | Path, port: int | None = None) -> None:
        self.storage_path = str(storage_path)
        self.port = port or free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def uri(self) -> str:
        # retryWrites=false: SecantusDB records every retryable write in a map it prunes by
        # scanning on each write, so with pymongo's default a long-running bot slows down
        # write after write (59 → 11 runs/s within 3,500 runs; flat without it). A single
        # embedded server has no failover for a retry to cover anyway.
        # journal=true: an acknowledged write survives a kill of the database (without it
        # the last ~10-20 ms of acknowledged writes were lost), at ~1.5x an insert's cost.
        return (
            f"mongodb://127.0.0.1:{self.port}/?directConnection=true&retryWrites=false&journal=true"
        )

    def start(self, timeout: float = 45.0) -> None:
        if self.storage_path != ":memory:":
            Path(self.storage_path).mkdir(parents=True, exist_ok=True)
        command = [
            sys.executable,
            "-c",
            "import sys; from secantus.cli import main; sys.exit(main())",
            "--storage-path",
            self.storage_path,
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--log-level",
            "WARNING",
        ]
        # Own process group: a Ctrl-C in the terminal reaches us, and we stop the child cleanly.
        self.process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            preexec_fn=_die_with_parent if sys.platform == "linux" else None,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"the embedded database exited with code {self.process.returncode}"
                )
            if self._answers():
                log.info("embedded database ready on port %d (%s)", self.port, self.storage_path)
                return
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"the embedded database did not answer within {timeout:.0f}s")

    def _answers(self) -> bool:
        client: MongoClient[dict[str, object]] = MongoClient(
            self.uri, serverSelectionTimeoutMS=300, connectTimeoutMS=300
        )
        try:
            client.admin.command("ping")
            return True
        except PyMongoError:
            return False
        finally:
            client.close()

    def stop(self, timeout: float = 10.0) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()

    async def astart(self) -> None:
        await asyncio.to_thread(self.start)

    async def astop(self) -> None:
        await asyncio.to_thread(self.stop)

    def __enter__(self) -> EmbeddedMongo:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

"""What the sections share: figures and the table, percentiles, the machine, and the real
parts (the embedded database, the Slack emulator, the bot as a child process)."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import inspect
import os
import platform
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any

import aiohttp
from pymongo import monitoring

from bot.settings import Settings
from emulator.server import SlackEmulator
from storage.embedded import EmbeddedMongo, free_port

ROOT = Path(__file__).resolve().parent.parent
SIGNING_SECRET = "bench-signing-secret"
BOT_TOKEN = "xoxb-bench"
TEAM = "T0TEAM"
ALICE, BOB = "U0ALICE", "U0BOB"
GENERAL = "C0GENERAL"


def three_step_flow(name: str) -> str:
    """The benches' 3-step instant flow: a post, a condition, a post in its branch."""
    return f"""\
name: {name}
steps:
  - {{id: first, type: post_message, channel: "{GENERAL}", text: "first {{{{ run.id }}}}"}}
  - id: check
    type: condition
    if: "{{{{ steps.first.ts != '' }}}}"
    then:
      - {{id: second, type: post_message, channel: "{GENERAL}", text: "second {{{{ run.id }}}}"}}
"""


# A fixed Fernet key, so that no key file is generated (connections are not exercised).
SECRET_KEY = "Zm9vYmFyYmF6cXV4Zm9vYmFyYmF6cXV4Zm9vYmFyYmE="


def say(text: str) -> None:
    """Progress on stdout, so a long run shows what it is doing."""
    print(f"  {time.strftime('%H:%M:%S')} {text}", flush=True)


# ------------------------------------------------------------------ figures


@dataclass
class Figure:
    name: str
    value: float
    baseline: float | None
    unit: str
    baseline_is: str = ""
    higher_is_better: bool = False

    @property
    def ratio(self) -> float | None:
        """Flowbot's cost over the baseline's: above 1 means slower, bigger or later."""
        if not self.baseline or not self.value:
            return None
        return self.baseline / self.value if self.higher_is_better else self.value / self.baseline

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "ratio": self.ratio}


@dataclass
class Section:
    name: str
    title: str
    figures: list[Figure] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0
    error: str | None = None

    def add(
        self,
        name: str,
        value: float,
        baseline: float | None,
        unit: str,
        baseline_is: str = "",
        *,
        higher_is_better: bool = False,
    ) -> None:
        figure = Figure(name, value, baseline, unit, baseline_is, higher_is_better)
        self.figures.append(figure)
        base = "—" if baseline is None else fmt(baseline, unit)
        say(f"{name}: {fmt(value, unit)} (baseline {base}, ratio {fmt_ratio(figure.ratio)})")

    def note(self, text: str) -> None:
        self.notes.append(text)
        say(text)

    def as_dict(self) -> dict[str, Any]:
        return {
            "title": self.title,
            "seconds": round(self.seconds, 1),
            "error": self.error,
            "figures": [f.as_dict() for f in self.figures],
            "notes": self.notes,
        }


def fmt(value: float, unit: str) -> str:
    if value != value:  # NaN: nothing was measured
        return "n/a"
    digits = 0 if abs(value) >= 100 or float(value).is_integer() else 1 if abs(value) >= 10 else 2
    return f"{value:,.{digits}f} {unit}".strip()


def fmt_ratio(ratio: float | None) -> str:
    return "—" if ratio is None else f"{ratio:.2f}×"


def markdown_table(sections: Sequence[Section]) -> str:
    lines = [
        "| section | figure | Flowbot | baseline | ratio | baseline is |",
        "| --- | --- | ---: | ---: | ---: | --- |",
    ]
    for section in sections:
        if section.error:
            lines.append(f"| {section.name} | **failed**: {section.error} | | | | |")
        for f in section.figures:
            base = "—" if f.baseline is None else fmt(f.baseline, f.unit)
            lines.append(
                f"| {section.name} | {f.name} | {fmt(f.value, f.unit)} | {base}"
                f" | {fmt_ratio(f.ratio)} | {f.baseline_is} |"
            )
    notes = [f"- **{s.name}**: {n}" for s in sections for n in s.notes]
    return "\n".join(lines + (["", *notes] if notes else []))


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile, interpolated between the two nearest ranks (NaN if empty)."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    pos = (len(ordered) - 1) * q / 100
    low = int(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


# ------------------------------------------------------------------ the machine


def machine() -> dict[str, Any]:
    cpu = platform.processor() or "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    ram_gib = float("nan")
    with contextlib.suppress(OSError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                ram_gib = int(line.split()[1]) / 1024 / 1024
    return {
        "nproc": len(os.sched_getaffinity(0))
        if hasattr(os, "sched_getaffinity")
        else os.cpu_count(),
        "cpu": cpu,
        "ram_gib": round(ram_gib, 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def rss_mib(pid: int | str = "self") -> float:
    """Resident memory of a process (Linux /proc/<pid>/status VmRSS), in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


def cpu_seconds(pid: int | str = "self") -> float:
    """User + system CPU time a process has used so far (Linux /proc/<pid>/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# ------------------------------------------------------------------ the real parts


@dataclass
class Env:
    """What a section runs with: its sizes, its database server, the scratch folder."""

    quick: bool
    mongo: EmbeddedMongo
    workdir: Path

    def size(self, full: int, quick: int) -> int:
        return quick if self.quick else full

    def db_name(self, section: str) -> str:
        return f"bench_{section}_{uuid.uuid4().hex[:8]}"


@contextlib.asynccontextmanager
async def fresh_server(env: Env) -> AsyncIterator[Env]:
    """`env` with a new embedded database server, for a part of a section: SecantusDB's
    writes slow down for good after about 10,000 of them in a server's life (see README)."""
    mongo = EmbeddedMongo(":memory:")
    await mongo.astart()
    try:
        yield dataclasses.replace(env, mongo=mongo)
    finally:
        await mongo.astop()


def make_emulator() -> SlackEmulator:
    slack = SlackEmulator(bot_token=BOT_TOKEN, team_id=TEAM)
    slack.add_user(ALICE, "alice")
    slack.add_user(BOB, "bob")
    slack.add_channel(GENERAL, "general", members=[ALICE, BOB])
    return slack


def settings_for(emulator: SlackEmulator, env: Env, db_name: str) -> Settings:
    """Settings of a bot built in this process (as tests/conftest.py makes them)."""
    return Settings.model_validate(
        {
            "slack_bot_token": BOT_TOKEN,
            "slack_signing_secret": SIGNING_SECRET,
            "slack_api_url": emulator.api_url,
            "mongodb_uri": env.mongo.uri,
            "mongodb_db": db_name,
            "port": 0,
            "flowbot_secret_key": SECRET_KEY,
            "flowbot_data_dir": str(env.workdir),
            # The emulator limits no rate here: measure the bot, not Slack's pacing
            # (the fanout section turns it on with a rate-limited emulator).
            "flowbot_posts_per_channel": 0,
        }
    )


def bot_environ(emulator: SlackEmulator, env: Env, db_name: str) -> dict[str, str]:
    """The environment of `python -m bot` pointed at the emulator and the embedded DB."""
    return {
        "SLACK_BOT_TOKEN": BOT_TOKEN,
        "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "SLACK_API_URL": emulator.api_url,
        "MONGODB_URI": env.mongo.uri,
        "MONGODB_DB": db_name,
        "FLOWBOT_SECRET_KEY": SECRET_KEY,
        "FLOWBOT_DATA_DIR": str(env.workdir),
        "FLOWBOT_POSTS_PER_CHANNEL": "0",  # as in `settings_for`
        "LOG_LEVEL": "WARNING",
    }


class Child:
    """A child process serving HTTP (`python -m bot`, the bare app) on a free port; its
    output goes to a log file in the scratch folder, and it is stopped by its own pid."""

    def __init__(self, name: str, module: str, environ: dict[str, str], workdir: Path) -> None:
        self.name = name
        self.module = module
        self.port = free_port()
        self.environ = {**os.environ, **environ, "PORT": str(self.port)}
        self.log_path = workdir / f"{name}.log"
        self.process: asyncio.subprocess.Process | None = None
        self._log: IO[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    async def start(self, timeout: float = 60.0) -> None:
        self._log = self.log_path.open("wb")
        self.process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            self.module,
            cwd=ROOT,
            env=self.environ,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout
        async with aiohttp.ClientSession() as session:
            while time.monotonic() < deadline:
                if self.process.returncode is not None:
                    break
                with contextlib.suppress(aiohttp.ClientError):
                    async with session.get(self.url + "/healthz") as res:
                        if res.status == 200:
                            return
                await asyncio.sleep(0.1)
        tail = self.log_path.read_text(errors="replace")[-2000:]
        await self.stop()
        raise RuntimeError(f"{self.name} did not become healthy:\n{tail}")

    async def stop(self) -> None:
        process, self.process = self.process, None
        if process is not None and process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.terminate()
            try:
                await asyncio.wait_for(process.wait(), 15)
            except asyncio.TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                await process.wait()
        if self._log is not None:
            self._log.close()
            self._log = None


async def import_flow(environ: dict[str, str], workdir: Path, yaml_text: str) -> None:
    """Create a flow as an administrator would: `python -m bot flows import FILE`."""
    path = workdir / f"flow-{uuid.uuid4().hex[:8]}.yaml"
    path.write_text(yaml_text)
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        "flows",
        "import",
        str(path),
        "--team",
        TEAM,
        "--user",
        ALICE,
        cwd=ROOT,
        env={**os.environ, **environ},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    output, _ = await process.communicate()
    if process.returncode != 0:
        raise RuntimeError(f"flows import failed: {output.decode(errors='replace')}")


async def wait_until(
    predicate: Callable[[], Awaitable[bool] | bool], timeout: float, interval: float = 0.02
) -> bool:
    """Poll until `predicate` is true (False after `timeout` seconds)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return True
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(interval)


# ------------------------------------------------------------------ MongoDB round trips


BACKGROUND_FIND = "background find"


def _periodic(find: Any) -> bool:
    """A read made on a timer, not by one run: the waker's polls (finds on `runs` by state,
    not by `_id`) and the failure-streak batch (one read a second for all successes)."""
    collection = find.get("find")
    return collection == "failure_streaks" or (
        collection == "runs" and "_id" not in (find.get("filter") or {})
    )


class CommandCounter(monitoring.CommandListener):
    """Counts every command MongoDB clients send (one per round trip), by name."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self.active = False
        self._lock = threading.Lock()

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if self.active:
            name = event.command_name
            if name == "find" and _periodic(event.command):
                name = BACKGROUND_FIND
            with self._lock:
                self.counts[name] += 1

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass

    def take(self) -> Counter[str]:
        with self._lock:
            taken, self.counts = self.counts, Counter()
        return taken


_COUNTER: CommandCounter | None = None


def command_counter() -> CommandCounter:
    """The process-wide counter. `storage.mongo.Storage` creates its client itself, so the
    listener is registered globally: every client created afterwards reports to it."""
    global _COUNTER
    if _COUNTER is None:
        _COUNTER = CommandCounter()
        monitoring.register(_COUNTER)
    return _COUNTER

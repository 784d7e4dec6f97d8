"""`python -m bench [section …] [--quick]`: run the benchmarks, print the table, write
bench/results.json. Sections: ack, throughput, schedules, approvals, fanout, endurance (all by
default).

Each section gets a fresh embedded database server (SecantusDB, in memory) and its own
Slack emulator.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
import tempfile
import time
import traceback
from datetime import datetime, timezone
from pathlib import Path
from types import ModuleType

from bench import ack, approvals, endurance, fanout, schedules, throughput
from bench.common import Env, Section, machine, markdown_table
from storage.embedded import EmbeddedMongo

SECTIONS: dict[str, ModuleType] = {
    module.NAME: module for module in (ack, throughput, schedules, approvals, fanout, endurance)
}
RESULTS = Path(__file__).resolve().parent / "results.json"


def machine_line(info: dict[str, object]) -> str:
    return (
        f"{info['nproc']} CPUs ({info['cpu']}), {info['ram_gib']} GiB RAM,"
        f" Python {info['python']}, {info['platform']}"
    )


async def main(names: list[str], quick: bool, output: Path) -> int:
    started = time.perf_counter()
    info = machine()
    print(f"Flowbot benchmarks{' (--quick)' if quick else ''} on {machine_line(info)}", flush=True)
    results: list[Section] = []
    with tempfile.TemporaryDirectory(prefix="flowbot-bench-") as workdir:
        for name in names:
            module = SECTIONS[name]
            print(f"\n== {name}: {module.TITLE}", flush=True)
            section_start = time.perf_counter()
            # A fresh database server per section: SecantusDB's writes slow down for good
            # after about 10,000 of them in a server's life (see README).
            mongo = EmbeddedMongo(":memory:")
            await mongo.astart()
            env = Env(quick=quick, mongo=mongo, workdir=Path(workdir))
            try:
                section: Section = await module.run(env)
            except Exception as exc:
                # One broken section must not hide the figures of the others.
                traceback.print_exc()
                for log in sorted(env.workdir.glob("*.log")):
                    lines = log.read_text().splitlines()[-15:]
                    print(f"-- last lines of {log.name}:", *lines, sep="\n")
                section = Section(name, module.TITLE, error=f"{type(exc).__name__}: {exc}")
            finally:
                await mongo.astop()
            section.seconds = time.perf_counter() - section_start
            results.append(section)
    wall = time.perf_counter() - started
    table = markdown_table(results)
    print(f"\n{table}\n\nTotal wall time: {wall:.0f} s on {machine_line(info)}", flush=True)
    document = (
        json.dumps(
            {
                "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                "quick": quick,
                "machine": info,
                "wall_seconds": round(wall, 1),
                "sections": {s.name: s.as_dict() for s in results},
                "table": table,
            },
            indent=2,
        )
        + "\n"
    )
    await asyncio.to_thread(output.write_text, document)
    print(f"Results written to {output}")
    return 1 if any(s.error for s in results) else 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("sections", nargs="*", metavar="section", help=", ".join(SECTIONS))
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke run")
    parser.add_argument("--output", type=Path, default=RESULTS, help="results JSON file")
    args = parser.parse_args()
    unknown = [name for name in args.sections if name not in SECTIONS]
    if unknown:
        parser.error(f"unknown section {unknown[0]!r} (choose from {', '.join(SECTIONS)})")
    # The bot's warnings are expected under overload (e.g. rate limits); errors still show.
    logging.basicConfig(level=logging.ERROR, format="%(levelname)s %(name)s: %(message)s")
    sys.exit(asyncio.run(main(args.sections or list(SECTIONS), args.quick, args.output)))

"""The schedule-lateness baseline: a bare APScheduler `AsyncIOScheduler` firing no-op jobs.

`python -m bench.bare_scheduler` reads a JSON list of epoch seconds on stdin, arms one
`DateTrigger` job per entry (with the job defaults flows/scheduling.py uses) and, once all
have fired (or 30 s after the last one was due), prints each job's lateness in seconds as a
JSON list.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import time
from datetime import datetime, timezone

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.date import DateTrigger


async def main() -> None:
    slots: list[float] = json.loads(sys.stdin.read())
    scheduler = AsyncIOScheduler(
        timezone=timezone.utc,
        job_defaults={"misfire_grace_time": None, "coalesce": True, "max_instances": 1},
    )
    lateness: list[float] = []
    done = asyncio.Event()

    async def job(slot: float) -> None:
        lateness.append(time.time() - slot)
        if len(lateness) == len(slots):
            done.set()

    scheduler.start()
    for i, slot in enumerate(slots):
        when = datetime.fromtimestamp(slot, timezone.utc)
        scheduler.add_job(
            job, DateTrigger(run_date=when, timezone=timezone.utc), args=[slot], id=f"j{i}"
        )
    with contextlib.suppress(asyncio.TimeoutError):
        await asyncio.wait_for(done.wait(), max(slots, default=0) - time.time() + 30)
    scheduler.shutdown(wait=False)
    print(json.dumps(lateness))


if __name__ == "__main__":
    asyncio.run(main())

"""`MemoryRunSlots`: per flow, the runs holding a concurrency slot (MongoDB:
`storage.run_slots_repo.MongoRunSlots`)."""

from __future__ import annotations


class MemoryRunSlots:
    def __init__(self) -> None:
        self._runs: dict[str, list[str]] = {}

    async def take(self, flow_id: str, run_id: str, limit: int) -> bool:
        runs = self._runs.setdefault(flow_id, [])
        if run_id in runs:
            return True
        if len(runs) >= limit:
            return False
        runs.append(run_id)
        return True

    async def release(self, flow_id: str, run_id: str) -> None:
        runs = self._runs.get(flow_id, [])
        if run_id in runs:
            runs.remove(run_id)

    async def holders(self, flow_id: str) -> list[str]:
        return list(self._runs.get(flow_id, []))

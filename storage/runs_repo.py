"""The `runs` collection: MongoDB adapter of `flows.run_model.RunStore`.

A run document is the RunRecord (`_id` = run id) plus fields the engine never sees as
record fields: `lease_owner` and `lease_until` (which process drives the run, until
when), `pending_resume` (the wake-up payload a claimed run has not consumed yet, so a
crash in between replays it) and `cancel_requested` (a cancel asked of a run a process
drives right now: its next step-boundary write is refused, and the driver ends it).

Writes per run: one insert, one `$set` per finished step, one final update. Every write
after the insert is a compare-and-set on the lease owner and status (and the absence of
`cancel_requested`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from datetime import date, datetime, timedelta, timezone
from typing import Any, Literal

from motor.motor_asyncio import AsyncIOMotorCollection, AsyncIOMotorDatabase
from pymongo import ASCENDING, DESCENDING
from pymongo.errors import DuplicateKeyError

from flows.definition import definition_from_storage, to_dict
from flows.records import MessageRef, RunRecord, StepResult
from flows.run_model import (
    TIMER,
    CancelRequest,
    CancelResult,
    Claim,
    DuplicateRun,
    Lease,
    RunInProgress,
)
from storage.newest import newest

Doc = dict[str, Any]

_UNFINISHED = ["queued", "waiting", "running"]

_UNSET_LEASE = {"lease_owner": "", "lease_until": "", "pending_resume": ""}
CANCEL_FLAG = "cancel_requested"
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)  # before any wake_at
RETENTION_INDEX = "retention"
_UNSET_ENDED = {**_UNSET_LEASE, CANCEL_FLAG: ""}


def bson_safe(value: Any) -> Any:
    """Plain data MongoDB stores: dates (without a time) become ISO strings, integers
    beyond 64 bits their text (`flows.storable` did so already for step results)."""
    if isinstance(value, int) and not isinstance(value, bool) and not -(2**63) <= value < 2**63:
        return str(value)
    if isinstance(value, Mapping):
        return {str(k): bson_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [bson_safe(v) for v in value]
    if isinstance(value, date) and not isinstance(value, datetime):
        return value.isoformat()
    return value


def step_key(step_id: str) -> str:
    """Step ids inside conditions hold dots (`route.then1`); MongoDB paths can't."""
    return step_id.replace(".", "~")


def step_id_of(key: str) -> str:
    return key.replace("~", ".")


def to_doc(run: RunRecord) -> Doc:
    doc = bson_safe(run.model_dump(mode="python", exclude={"id", "definition", "steps"}))
    doc["_id"] = run.id
    doc["definition"] = to_dict(run.definition)
    doc["steps"] = {step_key(k): _step(v) for k, v in run.steps.items()}
    if doc.get("run_key") is None:
        # The unique index is sparse: a missing key is not indexed, a null one would be.
        doc.pop("run_key", None)
    return doc


def from_doc(doc: Doc) -> RunRecord:
    data = {k: v for k, v in doc.items() if k not in ("_id", *_UNSET_ENDED)}
    data["id"] = doc["_id"]
    data["definition"] = definition_from_storage(doc["definition"])
    data["steps"] = {step_id_of(k): v for k, v in (doc.get("steps") or {}).items()}
    return RunRecord.model_validate(data)


def _step(result: StepResult) -> Doc:
    return bson_safe(result.model_dump(mode="python"))


def _steps(earlier: Sequence[StepResult], result: StepResult | None = None) -> Doc:
    """`$set` fields of finished steps: those that rode along, then this write's own."""
    done = [*earlier, *([result] if result is not None else [])]
    return {f"steps.{step_key(r.step_id)}": _step(r) for r in done}


def _waiting_step(doc: Doc) -> str | None:
    for step_id, result in (doc.get("steps") or {}).items():
        if isinstance(result, Mapping) and result.get("status") == "waiting":
            return step_id_of(str(step_id))
    return None


def _pending(doc: Doc) -> tuple[str, dict[str, Any]] | None:
    pending = doc.get("pending_resume")
    if isinstance(pending, Mapping) and pending.get("step_id"):
        return str(pending["step_id"]), dict(pending.get("payload") or {})
    return None


def _cancel_doc(request: CancelRequest) -> Doc:
    return {"reason": request.reason, "by": request.by, "at": request.at, "words": request.words}


def _cancel_request(doc: Doc) -> CancelRequest | None:
    flag = doc.get(CANCEL_FLAG)
    if not isinstance(flag, Mapping):
        return None
    by = flag.get("by")
    words = flag.get("words")
    return CancelRequest(
        reason=str(flag.get("reason") or "cancelled"),
        by=by,
        at=flag["at"],
        words=words if isinstance(words, str) else None,
    )


def _claim(doc: Doc, resume: tuple[str, dict[str, Any]] | None, after_crash: bool = False) -> Claim:
    crashes = doc.get("crashes")
    crashes = crashes if isinstance(crashes, int) else 0
    return Claim(from_doc(doc), resume, _cancel_request(doc), crashes, after_crash)


def _ended_cancelled(at: datetime, request: CancelRequest, error_step: str | None) -> Doc:
    return {
        "status": "cancelled",
        "cancelled_by": request.by,
        "held": False,
        "finished_at": at,
        "error": request.error,
        "error_step": error_step,
        "wake_at": None,
        "waiting_for": None,
    }


class MongoRunStore:
    def __init__(self, db: AsyncIOMotorDatabase[Doc], retention: timedelta | None = None) -> None:
        self.collection: AsyncIOMotorCollection[Doc] = db["runs"]
        # Finished runs expire this long after `finished_at` (None: kept forever).
        self.retention = retention

    async def ensure_indexes(self) -> None:
        runs = self.collection
        # History of a flow, newest first; and a run-only user's own runs.
        await runs.create_index(
            [("team_id", ASCENDING), ("flow_id", ASCENDING), ("created_at", DESCENDING)],
            name="history",
        )
        await runs.create_index(
            [
                ("team_id", ASCENDING),
                ("flow_id", ASCENDING),
                ("started_by", ASCENDING),
                ("created_at", DESCENDING),
            ],
            name="history_by_starter",
        )
        # The waker: parked runs by wake_at, crashed runs by lease expiry.
        await runs.create_index([("status", ASCENDING), ("wake_at", ASCENDING)], name="waiting")
        await runs.create_index([("status", ASCENDING), ("lease_until", ASCENDING)], name="leases")
        # Runs queued at a shutdown, not those held for a concurrency slot (the waker).
        await runs.create_index([("status", ASCENDING), ("held", ASCENDING)], name="queued")
        # Runs queued for a concurrency slot, oldest first (flows.concurrency).
        await runs.create_index(
            [("held", ASCENDING), ("flow_id", ASCENDING), ("created_at", ASCENDING)],
            name="held",
        )
        # The runs of some flows in progress (schedules' overlap policies, `in_progress_of`).
        await runs.create_index([("status", ASCENDING), ("flow_id", ASCENDING)], name="in_progress")
        # One scheduled slot or event, one run (issue 8).
        await runs.create_index("run_key", name="run_key", unique=True, sparse=True)
        await self._ensure_retention()

    async def _ensure_retention(self) -> None:
        """A TTL index on `finished_at`: an unfinished run has none, so it never expires.

        A changed retention is applied in place (`collMod`); none drops the index."""
        existing = await self.collection.index_information()
        if self.retention is None:
            if RETENTION_INDEX in existing:
                await self.collection.drop_index(RETENTION_INDEX)
            return
        seconds = max(1, int(self.retention.total_seconds()))
        current = existing.get(RETENTION_INDEX)
        if current is None:
            await self.collection.create_index(
                "finished_at", name=RETENTION_INDEX, expireAfterSeconds=seconds
            )
        elif current.get("expireAfterSeconds") != seconds:
            await self.collection.database.command(
                "collMod",
                self.collection.name,
                index={"name": RETENTION_INDEX, "expireAfterSeconds": seconds},
            )

    # --- writes

    async def insert(self, run: RunRecord, lease: Lease | None) -> None:
        doc = to_doc(run)
        if lease is not None:
            doc["status"] = "running"
            doc["lease_owner"] = lease.owner
            doc["lease_until"] = lease.until
        try:
            await self.collection.insert_one(doc)
        except DuplicateKeyError as exc:
            raise DuplicateRun(run.run_key or run.id) from exc

    def _ours(self, run_id: str, lease: Lease) -> Doc:
        # A run asked to stop takes no more writes: its driver ends it (`end_cancelled`).
        return {
            "_id": run_id,
            "status": "running",
            "lease_owner": lease.owner,
            CANCEL_FLAG: {"$exists": False},
        }

    async def record_step(
        self,
        run_id: str,
        lease: Lease,
        result: StepResult,
        extra: Mapping[str, Any],
        *,
        earlier: Sequence[StepResult] = (),
    ) -> bool:
        update = {
            "$set": {
                **_steps(earlier, result),
                "lease_until": lease.until,
                **bson_safe(extra),
            },
            "$unset": {"pending_resume": ""},
        }
        outcome = await self.collection.update_one(self._ours(run_id, lease), update)
        return outcome.matched_count == 1

    async def park(
        self,
        run_id: str,
        lease: Lease,
        result: StepResult,
        wake_at: datetime | None,
        waiting_for: str | None,
        extra: Mapping[str, Any],
        *,
        earlier: Sequence[StepResult] = (),
    ) -> bool:
        update = {
            "$set": {
                **_steps(earlier, result),
                "status": "waiting",
                "wake_at": wake_at,
                "waiting_for": waiting_for,
                **bson_safe(extra),
            },
            "$unset": _UNSET_LEASE,
        }
        outcome = await self.collection.update_one(self._ours(run_id, lease), update)
        return outcome.matched_count == 1

    async def finish(
        self,
        run_id: str,
        lease: Lease,
        status: Literal["succeeded", "failed", "cancelled"],
        finished_at: datetime,
        error: str | None,
        error_step: str | None,
        result: StepResult | None,
        extra: Mapping[str, Any],
        *,
        earlier: Sequence[StepResult] = (),
    ) -> bool:
        fields: Doc = {
            "status": status,
            "finished_at": finished_at,
            "error": error,
            "error_step": error_step,
            "wake_at": None,
            "waiting_for": None,
            **bson_safe(extra),
            **_steps(earlier, result),
        }
        update = {"$set": fields, "$unset": _UNSET_LEASE}
        outcome = await self.collection.update_one(self._ours(run_id, lease), update)
        return outcome.matched_count == 1

    async def record_notify(self, run_id: str, ref: MessageRef) -> None:
        await self.collection.update_one(
            {"_id": run_id}, {"$set": {"notify_message": ref.model_dump()}}
        )

    async def requeue(self, run_id: str, owner: str) -> None:
        await self.collection.update_one(
            {"_id": run_id, "status": "running", "lease_owner": owner},
            {"$set": {"status": "queued"}, "$unset": {"lease_owner": "", "lease_until": ""}},
        )

    async def renew(self, run_ids: Sequence[str], lease: Lease) -> None:
        if not run_ids:
            return
        await self.collection.update_many(
            {"_id": {"$in": list(run_ids)}, "status": "running", "lease_owner": lease.owner},
            {"$set": {"lease_until": lease.until}},
        )

    # --- claims

    def _lease_fields(self, lease: Lease) -> Doc:
        return {"status": "running", "lease_owner": lease.owner, "lease_until": lease.until}

    async def claim_waiting(
        self, run_id: str, step_id: str, payload: Mapping[str, Any], lease: Lease
    ) -> Claim | None:
        resume = {"step_id": step_id, "payload": bson_safe(payload)}
        # Compare-and-set with `update_one` (served by `_id`), then a read by `_id`:
        # `find_one_and_update` would make the embedded server scan (see `_after`).
        outcome = await self.collection.update_one(
            # A queued run (claimed for a timer, then a shutdown) takes the news too.
            {
                "_id": run_id,
                "status": {"$in": ["waiting", "queued"]},
                f"steps.{step_key(step_id)}.status": "waiting",
            },
            {"$set": {**self._lease_fields(lease), "pending_resume": resume}},
        )
        doc = await self._after(outcome.matched_count, run_id, lease)
        if doc is None:
            return None
        return _claim(doc, (step_id, dict(payload)))

    async def _after(self, matched: int, run_id: str, lease: Lease) -> Doc | None:
        """The run a compare-and-set just leased to us, read by `_id` alone.

        SecantusDB serves `findAndModify` by re-issuing `{_id, $and: [query]}`, which no
        index serves; `update_one` on `{_id, ...}` rides the `_id`, and so does this read.
        """
        if matched != 1:
            return None
        doc = await self.collection.find_one({"_id": run_id})
        if doc is None or doc.get("lease_owner") != lease.owner:
            return None  # pragma: no cover - taken over between the write and the read
        return doc

    async def claim_due(self, now: datetime, lease: Lease, limit: int) -> list[Claim]:
        # Reads find the candidates (an idle poll writes nothing); each is then claimed
        # with a compare-and-set on what was read, so two processes never both win.
        # Three finds, each served by an index (`waiting` or `leases`), not one `$or`.
        claims: list[Claim] = []
        for query in (
            # queued at a shutdown (not those waiting for a concurrency slot)
            {"status": "queued", "held": False},
            # its time has come; bounded below too: SecantusDB reads every index entry up
            # to a range's end, and the runs that wait for people (no wake_at) sort first
            {"status": "waiting", "wake_at": {"$gte": _EPOCH, "$lte": now}},
            {"status": "running", "lease_until": {"$lt": now}},  # its driver died
        ):
            if len(claims) >= limit:
                break
            due = self.collection.find(
                query,
                projection={"status": 1, "wake_at": 1, "lease_until": 1, "steps": 1},
                limit=limit - len(claims),
            )
            async for candidate in due:
                claim = await self._claim_candidate(candidate, lease)
                if claim is not None:
                    claims.append(claim)
        return claims

    async def _claim_candidate(self, candidate: Doc, lease: Lease) -> Claim | None:
        status = candidate.get("status")
        fields = self._lease_fields(lease)
        condition: Doc = {"_id": candidate["_id"], "status": status}
        if status == "waiting":
            condition["wake_at"] = candidate.get("wake_at")
            step_id = _waiting_step(candidate)
            if step_id is not None:
                # The waiting step gets the TIMER payload.
                fields["pending_resume"] = {"step_id": step_id, "payload": dict(TIMER)}
        update: Doc = {"$set": fields}
        if status == "running":
            condition["lease_until"] = candidate.get("lease_until")
            update["$inc"] = {"crashes": 1}  # its driver died: counted
        outcome = await self.collection.update_one(condition, update)
        doc = await self._after(outcome.matched_count, candidate["_id"], lease)
        if doc is None:
            return None
        # A run that was running or queued (stopped mid-step) may be half done.
        return _claim(doc, _pending(doc), status in ("running", "queued"))

    # --- cancelling

    async def cancel_flow_runs(
        self, team_id: str, flow_id: str, request: CancelRequest
    ) -> CancelResult:
        result = CancelResult()
        # The unfinished runs, then the flow's among them. `status` comes first: the
        # embedded server serves such a filter by its first clause an index leads with
        # (`waiting`, `leases`, `queued`), and by `team_id` it read all of the workspace's
        # runs (100,000 stored: 4.1 s; this way 1.5 ms). MongoDB picks its own index.
        unfinished = self.collection.find(
            {"status": {"$in": _UNFINISHED}, "team_id": team_id, "flow_id": flow_id},
            projection={"_id": 1},
        )
        for run_id in [doc["_id"] async for doc in unfinished]:
            outcome = await self._cancel_one(run_id, request)
            if isinstance(outcome, RunRecord):
                result.cancelled.append(outcome)
            elif outcome:
                result.requested.append(run_id)
        return result

    async def _cancel_one(self, run_id: str, request: CancelRequest) -> RunRecord | bool:
        """The run cancelled (its record), True if asked to stop, False if it finished."""
        # Each failed compare-and-set means the run moved on (claimed, parked, finished):
        # look again. A run moves a bounded number of times, so this ends.
        for _ in range(100):
            doc = await self.collection.find_one(
                {"_id": run_id},
                projection={"status": 1, "lease_owner": 1, "lease_until": 1, "steps": 1},
            )
            status = doc.get("status") if doc else None
            if doc is None or status not in _UNFINISHED:
                return False
            lease_until = doc.get("lease_until")
            abandoned = status == "running" and (
                not isinstance(lease_until, datetime) or lease_until < request.at
            )
            if status == "running" and not abandoned:
                # Driven right now: its driver stops at the next step boundary.
                flagged = await self.collection.update_one(
                    {"_id": run_id, "status": "running", "lease_owner": doc.get("lease_owner")},
                    {"$set": {CANCEL_FLAG: _cancel_doc(request)}},
                )
                if flagged.matched_count == 1:
                    return True
                continue
            condition: Doc = {"_id": run_id, "status": status}
            if status == "running":
                condition["lease_until"] = lease_until
            stopped_at = _waiting_step(doc) if status == "waiting" else None
            outcome = await self.collection.update_one(
                condition,
                {
                    "$set": _ended_cancelled(request.at, request, stopped_at),
                    "$unset": _UNSET_ENDED,
                },
            )
            ended = (
                await self.collection.find_one({"_id": run_id}) if outcome.matched_count else None
            )
            if ended is not None:
                return from_doc(ended)
        return False  # pragma: no cover - a run that never stops moving

    async def cancel_run(self, run_id: str, request: CancelRequest) -> RunRecord | bool:
        """One run (`/flow cancel`): its record if now cancelled, True if its driver was
        asked to stop, False if it had ended."""
        return await self._cancel_one(run_id, request)

    async def reopen(
        self, run_id: str, failed: Sequence[str], retry: Mapping[str, Any], held: bool
    ) -> RunRecord | None:
        """A failed run goes on (`/flow retry`): its failed steps are forgotten and it is
        queued for the waker (held: for a concurrency slot). None if it is not failed."""
        unset: Doc = {f"steps.{step_key(k)}": "" for k in failed}
        update = {
            "$set": {
                "status": "queued",
                "held": held,
                "error": None,
                "error_step": None,
                "finished_at": None,
                "outputs": {},
            },
            "$push": {"retries": bson_safe(retry)},
            **({"$unset": unset} if unset else {}),
        }
        # `update_one` with the expected state, then a read by `_id` (see `_after`).
        outcome = await self.collection.update_one({"_id": run_id, "status": "failed"}, update)
        if outcome.matched_count != 1:
            return None
        doc = await self.collection.find_one({"_id": run_id})
        return from_doc(doc) if doc is not None else None

    async def oldest_held(self, flow_id: str) -> RunRecord | None:
        doc = await self.collection.find_one(
            {"held": True, "flow_id": flow_id, "status": "queued"},
            sort=[("created_at", ASCENDING)],
        )
        return from_doc(doc) if doc is not None else None

    async def held_flows(self, limit: int) -> list[tuple[str, int]]:
        found: dict[str, int] = {}
        cursor = self.collection.find(
            {"held": True, "status": "queued"},
            projection={"flow_id": 1, "definition.concurrency": 1},
            limit=limit * 10,
        )
        async for doc in cursor:
            limit_of = (doc.get("definition") or {}).get("concurrency") or 1
            found.setdefault(str(doc["flow_id"]), int(limit_of))
        return list(found.items())[:limit]

    async def unhold(self, run_id: str) -> bool:
        outcome = await self.collection.update_one(
            {"_id": run_id, "status": "queued", "held": True}, {"$set": {"held": False}}
        )
        return outcome.matched_count == 1

    async def end_cancelled(
        self,
        run_id: str,
        lease: Lease,
        finished_at: datetime,
        error_step: str | None,
        result: StepResult | None,
        extra: Mapping[str, Any],
        *,
        earlier: Sequence[StepResult] = (),
    ) -> CancelRequest | None:
        # Read by `_id` alone (an index serves it everywhere), then compare here.
        doc = await self.collection.find_one(
            {"_id": run_id}, projection={CANCEL_FLAG: 1, "status": 1, "lease_owner": 1}
        )
        ours = doc is not None and doc.get("status") == "running"
        ours = ours and doc is not None and doc.get("lease_owner") == lease.owner
        request = _cancel_request(doc) if ours and doc is not None else None
        if request is None:
            return None
        fields: Doc = {
            **_ended_cancelled(finished_at, request, error_step),
            **bson_safe(extra),
            **_steps(earlier, result),
        }
        outcome = await self.collection.update_one(
            {"_id": run_id, "status": "running", "lease_owner": lease.owner},
            {"$set": fields, "$unset": _UNSET_ENDED},
        )
        return request if outcome.matched_count == 1 else None

    # --- reads

    async def get(self, run_id: str) -> RunRecord | None:
        doc = await self.collection.find_one({"_id": run_id})
        return from_doc(doc) if doc is not None else None

    async def history(
        self, team_id: str, flow_id: str, limit: int, started_by: str | None = None
    ) -> list[RunRecord]:
        # Read window by window of `created_at` (`storage.newest`), each a range on the
        # last key of the `history` (or `history_by_starter`) index.
        query: Doc = {"team_id": team_id, "flow_id": flow_id}
        if started_by is not None:
            query["started_by"] = started_by
        docs = await newest(
            self.collection, query, "created_at", limit, [("created_at", DESCENDING)]
        )
        return [from_doc(doc) for doc in docs]

    async def in_progress_of(self, flow_ids: Sequence[str]) -> dict[str, list[RunInProgress]]:
        found: dict[str, list[RunInProgress]] = {}
        if not flow_ids:
            return found
        ids = list(flow_ids)

        async def of_status(status: str) -> list[Doc]:
            # One `$in` per query: SecantusDB serves no index to two (one read per status).
            cursor = self.collection.find(
                {"status": status, "flow_id": {"$in": ids}},
                projection={"flow_id": 1, "status": 1, "run_key": 1},
            )
            return [doc async for doc in cursor]

        for docs in await asyncio.gather(*(of_status(status) for status in _UNFINISHED)):
            for doc in docs:
                run = RunInProgress(doc["_id"], doc["flow_id"], doc["status"], doc.get("run_key"))
                found.setdefault(run.flow_id, []).append(run)
        return found

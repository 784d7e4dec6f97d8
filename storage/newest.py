"""The newest documents of a list that grows (a flow's runs, its trigger log), read window
by window of their time field instead of in one sorted read.

The embedded server reads every document a filter's index bounds select and only then
sorts and limits: `find({team_id, flow_id}).sort(created_at: -1).limit(20)` read all of a
flow's runs to return 20 (1,000 runs: 38 ms, growing with the history). A range on the
time field bounds the read to the documents in it, when the filter's equalities and then
that field lead an index. The first window is the last `FIRST_SPAN` (and the future: a
clock may be ahead); each next one begins where the last ended and reaches further back
(`next_span`, sized on what was found so far); one that would reach past `LAST_SPAN` takes
all that is older. So the result is that of one sorted read (the windows do not overlap
and go back in time, each sorted in full). MongoDB serves each read from the index without
a sort (equalities, then a range on the sorted key).

A window costs a round trip (0.7 ms on the embedded server), a document read in one about
0.04 ms: the windows grow fast, faster still while they find nothing. A flow with no runs
costs 4 reads; one run every 33 minutes, 2 (the last hour, then about 15 hours).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta, timezone
from typing import Any

from motor.motor_asyncio import AsyncIOMotorCollection

Doc = dict[str, Any]

FIRST_SPAN = timedelta(hours=1)
LAST_SPAN = timedelta(days=45)  # beyond it, finished runs are gone (30 days' retention)


def next_span(span: timedelta, before: int, found: int, wanted: int) -> timedelta:
    """How far back the next window reaches. The windows up to `span` ago held `found`
    documents of the `wanted`, `before` of them up to the window before: none new, 32
    times as far; else at that pace, the rest and half as many more (2 to 16 times)."""
    if found == before:
        return span * 32
    return span * min(16.0, max(2.0, 1.5 * wanted / found))


async def newest(
    collection: AsyncIOMotorCollection[Doc],
    query: Mapping[str, Any],
    field: str,
    limit: int,
    sort: Sequence[tuple[str, int]],
) -> list[Doc]:
    """The first `limit` documents matching `query` in `sort` order, which begins with
    `field` descending (a date). A limit of 0 or less: all of them, in one read."""
    assert sort[0] == (field, -1), sort
    if limit <= 0:
        return [doc async for doc in collection.find(dict(query), sort=list(sort), limit=limit)]
    now = datetime.now(timezone.utc)
    found: list[Doc] = []
    span = FIRST_SPAN
    window: Doc = {"$gte": now - span}
    while True:
        known = len(found)
        cursor = collection.find(
            {**query, field: window}, sort=list(sort), limit=limit - len(found)
        )
        found.extend([doc async for doc in cursor])
        if len(found) >= limit or "$gte" not in window:
            return found
        before = window["$gte"]
        span = next_span(span, known, len(found), limit)
        window = {"$lt": before} if span >= LAST_SPAN else {"$gte": now - span, "$lt": before}

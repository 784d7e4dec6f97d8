"""Issue 19: values every step can store, runs that end instead of looping, effects that
an API can de-duplicate, secrets hidden in every common encoding.

From outside: signed `/flow run` commands, the emulator, the embedded database, and a
local HTTP server standing in for an external API.
"""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import quote, unquote

import pytest
from aiohttp import web

from flows.records import FlowRecord
from tests.support import (
    ALICE,
    JSON,
    BotHarness,
    attach,
    create_connection,
    create_flow,
    finished_run,
    local_http_server,
    runs_of,
    settle,
    texts_in,
)

TOKEN = "sk-live-Zq8rT2mV9xLp4WcY"


class Api:
    """An external API: records what it was sent, answers what `answer` says."""

    def __init__(self) -> None:
        self.url = ""
        self.seen: list[JSON] = []
        self.answers: dict[str, Any] = {}

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.seen.append(
            {
                "path": request.path,
                "key": request.headers.get("Idempotency-Key"),
                "auth": request.headers.get("Authorization"),
            }
        )
        answer = self.answers.get(request.path, {"ok": True})
        if isinstance(answer, bytes):
            return web.Response(body=answer, content_type="application/json")
        return web.json_response(answer)


@pytest.fixture
async def api() -> AsyncIterator[Api]:
    server = Api()
    async with local_http_server(server.handle) as url:
        server.url = url
        yield server


async def with_api(bot: BotHarness, api: Api, source: str) -> FlowRecord:
    flow = await create_flow(bot, source)
    record = await create_connection(bot, ALICE, "Shop", api.url, TOKEN)
    await attach(bot, flow, "api", record.id)
    return flow


async def run_once(bot: BotHarness, flow: FlowRecord, text: str) -> Any:
    response = await bot.driver.slash(ALICE, text)
    assert response.ok and response.elapsed < 3
    [run] = await finished_run(bot, flow.id)
    return run


# ------------------------------------------------------------------ storable values

BIG = """
name: Big
connections: [{slot: api, kind: http_bearer}]
steps:
  - {id: big, type: set_variable, name: big, value: "{{ 2**64 }}"}
  - {id: order, type: http_request, connection: api, method: POST, path: /orders}
  - {type: post_message, channel: "#general", text: "{{ vars.big }} {{ steps.order.body.id }}"}
"""


async def test_numbers_beyond_64_bits_are_kept_as_text(http_bot: BotHarness, api: Api) -> None:
    api.answers["/orders"] = b'{"id": 18446744073709551616, "odd\\u0000key": -99999999999999999999}'
    flow = await with_api(http_bot, api, BIG)
    run = await run_once(http_bot, flow, "run Big")
    assert run.status == "succeeded", run.error
    assert run.vars == {"big": "18446744073709551616"}
    body = run.steps["order"].output["body"]
    assert body == {"id": "18446744073709551616", "odd\ufffdkey": "-99999999999999999999"}
    assert texts_in(http_bot, "#general") == ["18446744073709551616 18446744073709551616"]
    assert len(api.seen) == 1


HUGE = """
name: Hoarder
connections: [{slot: api, kind: http_bearer}]
steps:
""" + "".join(
    f"  - {{id: get{i}, type: http_request, connection: api, path: /blob}}\n" for i in range(18)
)


async def test_a_step_that_cannot_be_recorded_fails_the_run_once(
    http_bot: BotHarness, api: Api
) -> None:
    # Each answer is ~1 MB: the 17th no longer fits in a run's record (16 MB).
    api.answers["/blob"] = {"blob": "x" * 1_000_000}
    flow = await with_api(http_bot, api, HUGE)
    run = await run_once(http_bot, flow, "run Hoarder")
    assert run.status == "failed"
    assert "could not be recorded" in (run.error or ""), run.error
    sent = len(api.seen)
    assert sent < 18
    await settle(0.5)
    assert len(api.seen) == sent and len(await runs_of(http_bot, flow.id)) == 1


async def test_a_run_whose_driver_keeps_crashing_is_failed(bot: BotHarness) -> None:
    flow = await create_flow(
        bot, 'name: Fragile\nsteps:\n  - {type: post_message, channel: "#general", text: hi}\n'
    )
    response = await bot.driver.slash(ALICE, "run Fragile")
    assert response.ok
    [done] = await finished_run(bot, flow.id)
    # As if its driver had died mid-run for the third time (the lease ran out): claimed
    # once more, that is a fourth crash.
    await bot.db["runs"].update_one(
        {"_id": done.id},
        {
            "$set": {
                "status": "running",
                "lease_owner": "dead-process",
                "lease_until": datetime.now(timezone.utc) - timedelta(seconds=1),
                "crashes": 3,
                "steps": {},
            },
            "$unset": {"finished_at": "", "error": ""},
        },
    )
    bot.emulator.messages.clear()
    [run] = await finished_run(bot, flow.id)
    assert run.status == "failed" and "crashed repeatedly" in (run.error or ""), run.error
    assert texts_in(bot, "#general") == []  # nothing repeated
    doc = await bot.db["runs"].find_one({"_id": run.id})
    assert doc is not None and doc["crashes"] == 4


# ------------------------------------------------------------------ idempotency keys

TWO_CALLS = """
name: Orders
connections: [{slot: api, kind: http_bearer}]
steps:
  - {id: create, type: http_request, connection: api, method: POST, path: /orders}
  - {id: again, type: http_request, connection: api, method: POST, path: /orders,
     headers: {Idempotency-Key: "mine-{{ run.id }}"}}
"""


async def test_every_call_carries_an_idempotency_key_stable_for_its_run_step(
    http_bot: BotHarness, api: Api
) -> None:
    flow = await with_api(http_bot, api, TWO_CALLS)
    run = await run_once(http_bot, flow, "run Orders")
    assert run.status == "succeeded", run.error
    assert [s["key"] for s in api.seen] == [f"{run.id}:create", f"mine-{run.id}"]


LOOPED = """
name: Looped
connections: [{slot: api, kind: http_bearer}]
steps:
  - id: each
    type: for_each
    items: "{{ [1, 2] }}"
    steps:
      - {id: call, type: http_request, connection: api, method: POST, path: /orders}
"""


async def test_a_call_in_a_loop_has_a_key_per_iteration(http_bot: BotHarness, api: Api) -> None:
    flow = await with_api(http_bot, api, LOOPED)
    run = await run_once(http_bot, flow, "run Looped")
    assert run.status == "succeeded", run.error
    keys = sorted(s["key"] for s in api.seen)
    assert keys == [f"{run.id}:each[0]/call", f"{run.id}:each[1]/call"]


# ------------------------------------------------------------------ secrets in encodings


def encodings(secret: str) -> dict[str, str]:
    raw = secret.encode()
    return {
        "plain": secret,
        "upper": secret.upper(),
        "lower": secret.lower(),
        "base64": base64.b64encode(raw).decode(),
        "basic": base64.b64encode(b"user:" + raw).decode(),
        "shifted": base64.b64encode(b"ab" + raw + b"!").decode(),
        "urlsafe": base64.urlsafe_b64encode(b"x" + raw).decode().rstrip("="),
        "hex": raw.hex(),
        "HEX": raw.hex().upper(),
        "url": quote(f"token={secret}&x=1 /", safe=""),
        "header": f"Bearer {secret}",
    }


def readings(value: str) -> list[str]:
    """`value` as it reads decoded in each common encoding (where it decodes)."""
    out = [value, unquote(value)]
    for word in value.replace("•", " ").split():
        padded = word + "=" * (-len(word) % 4)
        for decode in (base64.b64decode, base64.urlsafe_b64decode):
            try:
                out.append(decode(padded).decode("utf-8", "replace"))
            except ValueError:
                pass
        try:
            out.append(bytes.fromhex(word).decode("utf-8", "replace"))
        except ValueError:
            pass
    return out


ECHO = """
name: Echo
connections: [{slot: api, kind: http_bearer}]
steps:
  - {id: echo, type: http_request, connection: api, path: /echo}
  - {type: post_message, channel: "#general", text: "{{ steps.echo.body.values() | join(' ') }}"}
"""


async def test_secrets_are_hidden_in_every_common_encoding(http_bot: BotHarness, api: Api) -> None:
    api.answers["/echo"] = encodings(TOKEN)
    flow = await with_api(http_bot, api, ECHO)
    run = await run_once(http_bot, flow, "run Echo")
    assert run.status == "succeeded", run.error
    body = run.steps["echo"].output["body"]
    assert set(body) == set(encodings(TOKEN))
    posted = " ".join(texts_in(http_bot, "#general"))
    for name, value in [*body.items(), ("posted", posted)]:
        for text in readings(value):
            assert TOKEN.lower() not in text.lower(), (name, value)
        assert "••••" in value, name
    assert api.seen[0]["auth"] == f"Bearer {TOKEN}"  # the API got the real one

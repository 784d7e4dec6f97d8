"""Connections end to end: Slack (emulator, signed requests), the embedded MongoDB, and a
real aiohttp server on 127.0.0.1 standing in for the external API (allowed through
FLOWBOT_ALLOWED_HTTP_HOSTS=127.0.0.1 in these tests' settings)."""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web
from cryptography.fernet import Fernet

from cards import connections as cards
from emulator import SlackEmulator, state_values
from flows.connections import ConnectionRecord
from flows.permissions import resolve_access
from flows.secrets import SecretBox, key_id
from tests.support import (
    ALICE,
    BOB,
    CAROL,
    JSON,
    TEAM,
    BotHarness,
    attach,
    command,
    create_connection,
    create_flow,
    deps,
    documents,
    eventually,
    finished_run,
    local_http_server,
    plant_share,
    recorded,
    running_bot,
    runs_of,
    wait_ephemeral,
    wait_view,
)

ALICE_TOKEN = "alice-ledger-token-7f3a9c2e41"
BOB_TOKEN = "bob-own-token-55d0e81b2c"
ALICE_NEW_TOKEN = "alice-rotated-token-0b9d2f6a"
HEADER_SECRET = "hdr-value-a1b2c3d4e5f6"
BASIC_USER = "svc-user-9911"
BASIC_PASSWORD = "basic-pass-q8w7e6r5t4"
SECRETS = [ALICE_TOKEN, BOB_TOKEN, ALICE_NEW_TOKEN, HEADER_SECRET, BASIC_USER, BASIC_PASSWORD]
# What the connect modal asks for a header and a basic-auth connection.
HEADER_FIELDS = {"header_name": "X-API-Key", "value": HEADER_SECRET}
BASIC_FIELDS = {"username": BASIC_USER, "password": BASIC_PASSWORD}


def dump(value: Any, default: Any = str) -> str:
    return json.dumps(value, ensure_ascii=False, default=default)


# --------------------------------------------------------------------------- the external API


@dataclass
class Api:
    url: str = ""
    seen: list[JSON] = field(default_factory=list)

    def auth(self) -> list[str | None]:
        return [s["headers"].get("Authorization") for s in self.seen]


@pytest.fixture
async def api() -> AsyncIterator[Api]:
    server = Api()

    async def handle(request: web.Request) -> web.StreamResponse:
        seen = await recorded(request)
        seen["json"] = json.loads(seen.pop("body") or "null")
        server.seen.append(seen)
        if request.path.endswith("/missing"):
            return web.json_response({"error": "no such thing"}, status=404)
        if request.path.endswith("/text"):
            return web.Response(text="plain words", headers={"X-Reply": "yes"})
        if request.path.endswith("/echo"):
            # A careless API that echoes the credential back.
            return web.json_response({"you_sent": dict(request.headers)})
        return web.json_response({"ok": True, "got": seen["json"]})

    async with local_http_server(handle) as url:
        server.url = url + "/v1"
        yield server


# --------------------------------------------------------------------------- helpers


async def said(bot: BotHarness, user: str, text: str, answer: str) -> JSON:
    """`/flow text` by `user`: the new ephemeral answer containing `answer` (anywhere in it),
    as it is now."""
    return dict(await command(bot, user, text, answer, text_of=dump))


async def ephemeral_with(bot: BotHarness, user: str, text: str) -> JSON:
    """The latest ephemeral message to `user` containing `text` (anywhere in it), as it is
    now."""
    return dict(await wait_ephemeral(bot, user, text, text_of=dump))


def connect_form(name: str | None = None, base_url: str | None = None, **fields: str) -> JSON:
    """The connect modal's inputs by block id: the name, the base URL, the header name and
    the secret fields (by field name)."""
    inputs: JSON = {}
    if name is not None:
        inputs[cards.NAME_BLOCK] = name
    if base_url is not None:
        inputs[cards.BASE_URL_BLOCK] = base_url
    for field_name, value in fields.items():
        if field_name == "header_name":
            inputs[cards.HEADER_NAME_BLOCK] = value
        else:
            inputs[cards.SECRET_BLOCK_PREFIX + field_name] = value
    return inputs


async def connect_via_modal(
    bot: BotHarness, user: str, name: str, base_url: str, secrets: dict[str, str], kind: str = ""
) -> ConnectionRecord:
    await bot.driver.slash(user, "connect")
    view = await wait_view(bot, user, cards.SAVE_CALLBACK)
    if kind:
        await select_in_view(bot, user, view, cards.KIND_ACTION, kind, with_state=True)
        wanted = cards.SECRET_BLOCK_PREFIX + next(f for f in secrets if f != "header_name")

        def updated() -> JSON | None:
            current = bot.emulator.views[view["id"]]
            return current if any(b.get("block_id") == wanted for b in current["blocks"]) else None

        view = await eventually(updated)
    answer = await bot.driver.fill_and_submit(
        user, view["id"], connect_form(name, base_url, **secrets)
    )
    assert answer.ok, answer.error or answer.text
    assert answer.json is None or "errors" not in answer.json, answer.json
    return await eventually(lambda: _find_connection(bot, user, name))


async def _find_connection(bot: BotHarness, user: str, name: str) -> ConnectionRecord | None:
    for record in await deps(bot).connections.mine(TEAM, user):
        if record.name == name:
            return record
    return None


async def select_in_view(
    bot: BotHarness,
    user: str,
    view: JSON,
    action_id: str,
    value: str,
    *,
    with_state: bool = False,
) -> None:
    for block in view["blocks"]:
        elements = [block["element"]] if "element" in block else block.get("elements") or []
        for element in elements:
            if element.get("action_id") != action_id:
                continue
            option = next(o for o in element["options"] if o["value"] == value)
            answer = await bot.driver.block_action(
                user,
                action_id,
                block_id=block["block_id"],
                view=view,
                action={"type": element["type"], "selected_option": option},
                values=state_values(view) if with_state else None,
            )
            assert answer.ok, answer.error
            return
    raise LookupError(f"no {action_id} in the view")


async def bindings(bot: BotHarness, flow_id: str) -> dict[str, JSON]:
    doc = await bot.db["flows"].find_one({"_id": flow_id})
    assert doc is not None
    return {b["slot"]: b for b in doc.get("bindings") or []}


def ledger_flow(name: str = "Expenses", path: str = "/expenses") -> str:
    return f"""
name: {name}
inputs:
  - {{id: amount, type: number, required: true}}
connections:
  - {{slot: ledger, kind: http_bearer, description: "The ledger API"}}
steps:
  - id: call
    type: http_request
    connection: ledger
    method: POST
    path: "{path}"
    json: {{amount: "{{{{ inputs.amount }}}}"}}
  - {{type: post_message, channel: "#general", text: "ledger said {{{{ steps.call.status }}}}"}}
"""


async def run_and_wait(bot: BotHarness, user: str, text: str, flow_id: str, count: int) -> Any:
    await bot.driver.slash(user, text)
    runs = await finished_run(bot, flow_id, count)
    return runs[-1]


# --------------------------------------------------------------------------- creating


async def test_connect_modal_stores_ciphertext_and_lists_it_masked(
    http_bot: BotHarness, api: Api
) -> None:
    record = await connect_via_modal(http_bot, ALICE, "Ledger", api.url, {"token": ALICE_TOKEN})
    assert record.kind == "http_bearer" and record.base_url == api.url
    assert record.hint == "••••" + ALICE_TOKEN[-4:]
    doc = await http_bot.db["connections"].find_one({"_id": record.id})
    assert doc is not None
    assert ALICE_TOKEN not in dump(doc, default=str)
    assert SecretBox([http_bot.settings.flowbot_secret_key.get_secret_value()]).decrypt(  # type: ignore[union-attr]
        doc["ciphertext"]
    ) == {"token": ALICE_TOKEN}
    # The saved notice and `/flow connections` show the masked hint, with both buttons.
    listing = await said(http_bot, ALICE, "connections", "My connections")
    text = dump(listing)
    assert "Ledger" in text and "••••" + ALICE_TOKEN[-4:] in text and ALICE_TOKEN not in text
    assert "Update credentials" in text and cards.DELETE_ACTION in text
    # Nobody else sees it.
    assert "Ledger" not in dump(await said(http_bot, BOB, "connections", "My connections"))


async def test_kinds_header_and_basic_and_form_errors(http_bot: BotHarness, api: Api) -> None:
    header = await connect_via_modal(
        http_bot, ALICE, "Keyed", api.url, HEADER_FIELDS, kind="http_header"
    )
    assert header.kind == "http_header" and header.header_name == "X-API-Key"
    basic = await connect_via_modal(
        http_bot, ALICE, "Basic one", api.url, BASIC_FIELDS, kind="http_basic"
    )
    assert basic.kind == "http_basic" and basic.hint == "••••" + BASIC_PASSWORD[-4:]
    # Switching the type re-rendered the modal without ever sending a secret to Slack.
    assert not any(s in dump(http_bot.emulator.calls) for s in SECRETS)
    # Wrong values are refused on their field and nothing is stored.
    await http_bot.driver.slash(ALICE, "connect")
    view = await wait_view(http_bot, ALICE, cards.SAVE_CALLBACK)
    answer = await http_bot.driver.fill_and_submit(
        ALICE,
        view["id"],
        connect_form("Bad", "https://user:pw@api.example.com", token="x" * 20),
    )
    assert answer.json is not None and answer.json["response_action"] == "errors"
    assert cards.BASE_URL_BLOCK in answer.json["errors"]
    duplicate = await http_bot.driver.fill_and_submit(
        ALICE,
        view["id"],
        connect_form("keyed", api.url, token="y" * 20),
    )
    assert duplicate.json is not None and cards.NAME_BLOCK in duplicate.json["errors"]
    assert len(await deps(http_bot).connections.mine(TEAM, ALICE)) == 2


# --------------------------------------------------------------------------- slots and runs


async def test_owner_attaches_and_steps_act_as_that_connection(
    http_bot: BotHarness, api: Api
) -> None:
    flow = await create_flow(http_bot, ledger_flow())
    record = await create_connection(http_bot, ALICE, "Ledger", api.url, ALICE_TOKEN)
    # Before attaching, the step fails saying what to do.
    run = await run_and_wait(http_bot, ALICE, "run Expenses amount=3", flow.id, 1)
    assert run.status == "failed" and "has no connection" in (run.error or "")
    assert api.seen == []
    await said(http_bot, ALICE, "connect Expenses ledger Ledger", "now uses your connection")
    slot = (await bindings(http_bot, flow.id))["ledger"]
    assert slot["connection_id"] == record.id and slot["added_by"] == ALICE
    run = await run_and_wait(http_bot, ALICE, "run Expenses amount=3", flow.id, 2)
    assert run.status == "succeeded", run.error
    assert run.steps["call"].output["status"] == 200
    assert run.steps["call"].output["body"] == {"ok": True, "got": {"amount": 3}}
    assert api.seen[-1]["path"] == "/v1/expenses" and api.seen[-1]["method"] == "POST"
    assert api.auth() == [f"Bearer {ALICE_TOKEN}"]


async def test_create_a_connection_right_into_a_slot(http_bot: BotHarness, api: Api) -> None:
    flow = await create_flow(http_bot, ledger_flow())
    # `/flow connect <flow> <slot>`: the modal creates the connection and attaches it.
    await http_bot.driver.slash(ALICE, "connect Expenses ledger")
    view = await wait_view(http_bot, ALICE, cards.SAVE_CALLBACK)
    assert "slot `ledger`" in dump(view)
    answer = await http_bot.driver.fill_and_submit(
        ALICE,
        view["id"],
        connect_form("Ledger", api.url, token=ALICE_TOKEN),
    )
    assert answer.ok, answer.error
    await ephemeral_with(http_bot, ALICE, "now uses it")
    record = await _find_connection(http_bot, ALICE, "Ledger")
    assert record is not None
    slot = (await bindings(http_bot, flow.id))["ledger"]
    assert slot["connection_id"] == record.id and slot["added_by"] == ALICE

    # From a flow's Connections modal, "New connection" stacks the form on top of it and
    # the panel shows the new connection in the slot afterwards.
    await said(http_bot, BOB, "connections Expenses", "don't have access")
    await plant_share(http_bot, flow.id, BOB, "owner")
    panel = await _reopen_panel(http_bot, BOB, "Expenses")
    await http_bot.driver.click_in_view(BOB, panel["id"], cards.NEW_ACTION, "ledger")
    pushed = await eventually(
        lambda: next(
            (
                v
                for v in http_bot.emulator.views.values()
                if v.get("previous_view_id") == panel["id"]
            ),
            None,
        )
    )
    answer = await http_bot.driver.fill_and_submit(
        BOB,
        pushed["id"],
        connect_form("Bob's ledger", api.url, token=BOB_TOKEN),
    )
    assert answer.ok, answer.error
    await eventually(lambda: _slot_is(http_bot, flow.id, "added_by", BOB))
    await eventually(lambda: "Uses your connection *Bob's ledger*" in dump(http_bot.emulator.views))
    run = await run_and_wait(http_bot, ALICE, "run Expenses amount=1", flow.id, 1)
    assert run.status == "succeeded" and api.auth() == [f"Bearer {BOB_TOKEN}"]
    # Any owner may empty a slot ("Remove").
    panel = await _reopen_panel(http_bot, ALICE, "Expenses")
    await http_bot.driver.click_in_view(ALICE, panel["id"], cards.SLOT_DETACH_ACTION, "ledger")
    await eventually(lambda: _slot_is(http_bot, flow.id, "connection_id", None))
    await eventually(lambda: "is empty now" in dump(http_bot.emulator.views.get(panel["id"])))


async def test_connect_usage_errors(http_bot: BotHarness, api: Api) -> None:
    flow = await create_flow(http_bot, ledger_flow())
    await create_connection(http_bot, ALICE, "Ledger", api.url, ALICE_TOKEN)
    for text, expected in [
        ("connect Expenses", "Name the flow's slot"),
        ("connect Nope ledger Ledger", "no flow named"),
        ("connect Expenses ledgr Ledger", "no connection slot `ledgr`"),
        ("connect Expenses ledger Missing", "no connection named"),
    ]:
        answer = await said(http_bot, ALICE, text, expected)
        assert "Usage: `/flow connect [<flow> <slot> [<connection name>]]`" in dump(answer)
    assert (await bindings(http_bot, flow.id)) == {}


async def test_run_only_user_is_asked_for_their_own_connection(
    http_bot: BotHarness, api: Api
) -> None:
    flow = await create_flow(http_bot, ledger_flow())
    alice_conn = await create_connection(http_bot, ALICE, "Ledger", api.url, ALICE_TOKEN)
    await create_connection(http_bot, BOB, "My ledger", api.url, BOB_TOKEN)
    await plant_share(http_bot, flow.id, BOB, "runner")
    await plant_share(http_bot, flow.id, CAROL, "runner")
    # The owner attaches her connection and, in the flow's Connections modal, sets the slot
    # to "provided by the run-only user".
    await http_bot.driver.slash(ALICE, "connections Expenses")
    panel = await wait_view(http_bot, ALICE, cards.FLOW_CALLBACK)
    await select_in_view(
        http_bot, ALICE, panel, cards.SLOT_ATTACH_ACTION, f"ledger|{alice_conn.id}"
    )
    await eventually(lambda: _slot_is(http_bot, flow.id, "connection_id", alice_conn.id))
    # The panel is re-rendered after each change (as a person sees it, then acts again).
    await eventually(
        lambda: "Uses your connection *Ledger*" in dump(http_bot.emulator.views[panel["id"]])
    )
    panel = http_bot.emulator.views[panel["id"]]
    await select_in_view(http_bot, ALICE, panel, cards.SLOT_MODE_ACTION, "ledger|runner")
    await eventually(lambda: _slot_is(http_bot, flow.id, "runner_provides", True))
    await eventually(
        lambda: "Run-only users provide their own" in dump(http_bot.emulator.views[panel["id"]])
    )

    # Bob (run-only) runs it: the modal asks for one of his own connections.
    await http_bot.driver.slash(BOB, "run Expenses amount=5")
    modal = await wait_view(http_bot, BOB, "run_flow_modal")
    picker = next(b for b in modal["blocks"] if b.get("block_id") == "conn_slot:ledger")
    options = picker["element"]["options"]
    assert [o["text"]["text"].split(" (")[0] for o in options] == ["My ledger"]
    assert alice_conn.id not in dump(modal)
    answer = await http_bot.driver.view_submission(BOB, modal["id"])
    assert answer.ok, answer.error
    [run] = await finished_run(http_bot, flow.id)
    assert run.status == "succeeded", run.error
    assert api.auth() == [f"Bearer {BOB_TOKEN}"]  # his credential, not the owner's

    # The owner runs it with her own connection.
    run = await run_and_wait(http_bot, ALICE, "run Expenses amount=6", flow.id, 2)
    assert run.status == "succeeded" and api.auth()[-1] == f"Bearer {ALICE_TOKEN}"

    # Carol has no connection: the modal tells her to create one and refuses to run.
    await http_bot.driver.slash(CAROL, "run Expenses amount=7")
    modal = await wait_view(http_bot, CAROL, "run_flow_modal")
    assert "/flow connect" in dump(modal)
    refused = await http_bot.driver.view_submission(CAROL, modal["id"])
    assert refused.json is not None and refused.json["response_action"] == "update"
    assert len(await runs_of(http_bot, flow.id)) == 2

    # A forged submission naming the owner's connection is refused on the field.
    await http_bot.driver.slash(BOB, "run Expenses amount=8")
    modal = await wait_view(http_bot, BOB, "run_flow_modal")
    forged = state_values(modal)
    forged["conn_slot:ledger"][cards.RUNNER_PICK_ACTION]["selected_option"] = {
        "text": {"type": "plain_text", "text": "x"},
        "value": alice_conn.id,
    }
    answer = await http_bot.driver.view_submission(BOB, modal["id"], forged)
    assert answer.json is not None and "conn_slot:ledger" in answer.json["errors"]
    assert len(await runs_of(http_bot, flow.id)) == 2

    # Back to "use the owner's connection": Bob runs without being asked, as Alice.
    panel_view = await _reopen_panel(http_bot, ALICE, "Expenses")
    await select_in_view(http_bot, ALICE, panel_view, cards.SLOT_MODE_ACTION, "ledger|owner")
    await eventually(lambda: _slot_is(http_bot, flow.id, "runner_provides", False))
    run = await run_and_wait(http_bot, BOB, "run Expenses amount=9", flow.id, 3)
    assert run.status == "succeeded" and api.auth()[-1] == f"Bearer {ALICE_TOKEN}"


async def _reopen_panel(bot: BotHarness, user: str, flow_name: str) -> JSON:
    before = {v for v in bot.emulator.views}
    await bot.driver.slash(user, f"connections {flow_name}")
    found: JSON = await eventually(
        lambda: next(
            (
                v
                for k, v in bot.emulator.views.items()
                if k not in before and v["callback_id"] == cards.FLOW_CALLBACK
            ),
            None,
        )
    )
    return found


async def _slot_is(bot: BotHarness, flow_id: str, key: str, value: Any) -> bool:
    slot = (await bindings(bot, flow_id)).get("ledger") or {}
    return bool(slot.get(key) == value)


async def test_co_owner_can_neither_read_nor_reuse_a_connection(
    http_bot: BotHarness, api: Api
) -> None:
    flow = await create_flow(http_bot, ledger_flow())
    alice_conn = await create_connection(http_bot, ALICE, "Ledger", api.url, ALICE_TOKEN)
    await attach(http_bot, flow, "ledger", alice_conn.id)
    await plant_share(http_bot, flow.id, BOB, "owner")
    other = await create_flow(http_bot, ledger_flow("Bob's flow"), user=BOB)

    # Not among his connections, not attachable by name elsewhere.
    assert "Ledger" not in dump(await said(http_bot, BOB, "connections", "My connections"))
    await said(http_bot, BOB, 'connect "Bob\'s flow" ledger Ledger', "no connection named")
    # Nor by a forged select value in his flow's Connections modal.
    await http_bot.driver.slash(BOB, 'connections "Bob\'s flow"')
    panel = await wait_view(http_bot, BOB, cards.FLOW_CALLBACK)
    await http_bot.driver.block_action(
        BOB,
        cards.SLOT_ATTACH_ACTION,
        block_id="conn_slot_actions:ledger",
        view=panel,
        action={
            "type": "static_select",
            "selected_option": {
                "text": {"type": "plain_text", "text": "x"},
                "value": f"ledger|{alice_conn.id}",
            },
        },
    )
    await eventually(lambda: "not yours" in dump(http_bot.emulator.views.get(panel["id"])))
    assert (await bindings(http_bot, other.id)).get("ledger", {}).get("connection_id") is None
    # Nor update or delete it with forged buttons.
    for action in (cards.UPDATE_ACTION, cards.DELETE_ACTION, cards.DELETE_CONFIRM_ACTION):
        await http_bot.driver.block_action(BOB, action, alice_conn.id, channel="C0GENERAL")
    await eventually(
        lambda: (
            sum("is not yours" in dump(e) for e in http_bot.emulator.ephemerals if e["user"] == BOB)
            == 3
        )
    )
    assert await http_bot.db["connections"].count_documents({"_id": alice_conn.id}) == 1
    assert (
        await deps(http_bot).connections.own(TEAM, ALICE, alice_conn.id)
    ).hint == alice_conn.hint

    # In the shared flow he sees who fills the slot, never the hint or the secret...
    shared_panel = await _reopen_panel(http_bot, BOB, "Expenses")
    text = dump(shared_panel)
    assert f"<@{ALICE}>'s connection *Ledger*" in text and alice_conn.hint not in text
    # ...and runs of this flow use it, acting as Alice.
    run = await run_and_wait(http_bot, BOB, "run Expenses amount=1", flow.id, 1)
    assert run.status == "succeeded" and api.auth() == [f"Bearer {ALICE_TOKEN}"]

    # A slot Bob fills with his own connection acts as Bob, and records him.
    bob_conn = await create_connection(http_bot, BOB, "Bob ledger", api.url, BOB_TOKEN)
    shared_panel = await _reopen_panel(http_bot, BOB, "Expenses")
    await select_in_view(
        http_bot, BOB, shared_panel, cards.SLOT_ATTACH_ACTION, f"ledger|{bob_conn.id}"
    )
    await eventually(lambda: _slot_is(http_bot, flow.id, "added_by", BOB))
    run = await run_and_wait(http_bot, ALICE, "run Expenses amount=2", flow.id, 2)
    assert run.status == "succeeded" and api.auth()[-1] == f"Bearer {BOB_TOKEN}"
    # Carol, with no access, is told so.
    await said(http_bot, CAROL, "connections Expenses", "don't have access")


async def test_update_credentials_and_delete_with_confirmation(
    http_bot: BotHarness, api: Api
) -> None:
    flow = await create_flow(http_bot, ledger_flow())
    record = await create_connection(http_bot, ALICE, "Ledger", api.url, ALICE_TOKEN)
    unused = await create_connection(http_bot, ALICE, "Spare", api.url, "spare-token-123456789")
    await said(http_bot, ALICE, "connect Expenses ledger Ledger", "now uses your connection")

    # Update credentials: a modal with empty secret fields; the flow switches at once.
    listing = await said(http_bot, ALICE, "connections", "Used by")
    await http_bot.driver.click(ALICE, listing, cards.UPDATE_ACTION, record.id)
    view = await wait_view(http_bot, ALICE, cards.SAVE_CALLBACK)
    secret_input = next(
        b for b in view["blocks"] if b.get("block_id") == cards.SECRET_BLOCK_PREFIX + "token"
    )
    assert "initial_value" not in secret_input["element"]
    answer = await http_bot.driver.fill_and_submit(
        ALICE, view["id"], connect_form(token=ALICE_NEW_TOKEN)
    )
    assert answer.ok, answer.error
    await ephemeral_with(http_bot, ALICE, "••••" + ALICE_NEW_TOKEN[-4:])
    run = await run_and_wait(http_bot, ALICE, "run Expenses amount=1", flow.id, 1)
    assert run.status == "succeeded" and api.auth() == [f"Bearer {ALICE_NEW_TOKEN}"]

    # Deleting an unused one just deletes it.
    listing = await ephemeral_with(http_bot, ALICE, "My connections")
    await http_bot.driver.click(ALICE, listing, cards.DELETE_ACTION, unused.id)
    await ephemeral_with(http_bot, ALICE, "Deleted *Spare*")
    assert await http_bot.db["connections"].count_documents({"_id": unused.id}) == 0

    # Deleting one a flow uses names the flow and asks first.
    listing = await ephemeral_with(http_bot, ALICE, "Deleted *Spare*")
    await http_bot.driver.click(ALICE, listing, cards.DELETE_ACTION, record.id)
    confirm = await ephemeral_with(http_bot, ALICE, "Delete anyway")
    assert "Expenses" in dump(confirm)
    assert await http_bot.db["connections"].count_documents({"_id": record.id}) == 1
    await http_bot.driver.click(ALICE, confirm, cards.DELETE_CONFIRM_ACTION, record.id)
    await ephemeral_with(http_bot, ALICE, "need another connection")
    assert await http_bot.db["connections"].count_documents({"_id": record.id}) == 0
    assert (await bindings(http_bot, flow.id))["ledger"]["connection_id"] is None
    run = await run_and_wait(http_bot, ALICE, "run Expenses amount=1", flow.id, 2)
    assert run.status == "failed" and "has no connection" in (run.error or "")


# --------------------------------------------------------------------------- the request


async def test_http_request_outputs_failures_and_scrubbing(http_bot: BotHarness, api: Api) -> None:
    yaml_text = """
name: Calls
connections:
  - {slot: api, kind: http_header}
steps:
  - {id: text, type: http_request, connection: api, path: "/text",
     query: {q: "{{ run.started_by }}"}, headers: {X-Trace: "t-1"}}
  - {id: echo, type: http_request, connection: api, path: "/echo"}
  - {id: gone, type: http_request, connection: api, method: DELETE, path: "/missing"}
  - {type: post_message, channel: "#general", text: "never"}
"""
    flow = await create_flow(http_bot, yaml_text)
    header = ("X-API-Key", HEADER_SECRET)
    record = await create_connection(http_bot, ALICE, "Keyed", api.url, header=header)
    await said(http_bot, ALICE, "connect Calls api Keyed", "now uses your connection")
    await http_bot.driver.slash(ALICE, "run Calls")
    [run] = await finished_run(http_bot, flow.id)
    assert run.status == "failed"
    text = run.steps["text"].output
    assert text["status"] == 200 and text["body"] == "plain words"
    assert text["headers"]["x-reply"] == "yes"
    assert api.seen[0]["query"] == {"q": ALICE}
    assert api.seen[0]["headers"]["X-Trace"] == "t-1"
    assert api.seen[0]["headers"]["X-API-Key"] == HEADER_SECRET
    echoed = dump(run.steps["echo"].output)
    assert HEADER_SECRET not in echoed and "••••" in echoed
    assert run.error_step == "gone" and "HTTP 404" in (run.error or "")
    assert run.steps["gone"].error is not None and "404" in run.steps["gone"].error
    assert record.id  # the credential went out only as the header


async def test_private_addresses_are_refused_without_the_setting(
    emulator: SlackEmulator, mongo_uri: str, db_name: str, api: Api
) -> None:
    async with running_bot(emulator, mongo_uri, db_name) as bot:
        targets = {
            "Loopback": api.url,
            "Private": "http://10.0.0.1/v1",
            "Metadata": "http://169.254.169.254/latest",
        }
        for index, (name, base_url) in enumerate(targets.items(), start=1):
            flow = await create_flow(bot, ledger_flow(name=f"Flow {name}"))
            record = await create_connection(bot, ALICE, name, base_url, ALICE_TOKEN)
            await attach(bot, flow, "ledger", record.id)
            await bot.driver.slash(ALICE, f'run "Flow {name}" amount={index}')
            [run] = await finished_run(bot, flow.id)
            assert run.status == "failed"
            assert "FLOWBOT_ALLOWED_HTTP_HOSTS" in (run.error or ""), run.error
        assert api.seen == []


# --------------------------------------------------------------------------- keys


async def test_key_rotation_reencrypts_at_start_without_losing_connections(
    emulator: SlackEmulator, mongo_uri: str, db_name: str, api: Api
) -> None:
    old_key, new_key = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    allow = {"flowbot_allowed_http_hosts": "127.0.0.1"}
    async with running_bot(emulator, mongo_uri, db_name, flowbot_secret_key=old_key, **allow) as b:
        flow = await create_flow(b, ledger_flow())
        record = await create_connection(b, ALICE, "Ledger", api.url, ALICE_TOKEN)
        await attach(b, flow, "ledger", record.id)
        before = await b.db["connections"].find_one({"_id": record.id})
    assert before is not None and before["key_id"] == key_id(old_key)
    ring = f"{new_key},{old_key}"
    async with running_bot(emulator, mongo_uri, db_name, flowbot_secret_key=ring, **allow) as b:
        after = await b.db["connections"].find_one({"_id": record.id})
        assert after is not None and after["key_id"] == key_id(new_key)
        assert after["ciphertext"] != before["ciphertext"]
        assert SecretBox([new_key]).decrypt(after["ciphertext"]) == {"token": ALICE_TOKEN}
    # The old key can go now: the connection still works.
    async with running_bot(emulator, mongo_uri, db_name, flowbot_secret_key=new_key, **allow) as b:
        run = await run_and_wait(b, ALICE, "run Expenses amount=4", flow.id, 1)
        assert run.status == "succeeded", run.error
        assert api.auth() == [f"Bearer {ALICE_TOKEN}"]


async def test_without_a_key_setting_one_is_generated_once_into_the_data_dir(
    emulator: SlackEmulator, mongo_uri: str, db_name: str, tmp_path: Any
) -> None:
    data = tmp_path / "data"
    extra = {"flowbot_secret_key": None, "flowbot_data_dir": data}
    async with running_bot(emulator, mongo_uri, db_name, **extra) as bot:
        record = await create_connection(bot, ALICE, "Ledger", "https://api.example.com", "t" * 20)
    key = (data / "secret.key").read_text().strip()
    assert (data / "secret.key").stat().st_mode & 0o777 == 0o600
    async with running_bot(emulator, mongo_uri, db_name, **extra) as bot:
        assert (data / "secret.key").read_text().strip() == key
        doc = await bot.db["connections"].find_one({"_id": record.id})
        assert doc is not None and SecretBox([key]).decrypt(doc["ciphertext"])["token"] == "t" * 20


# --------------------------------------------------------------------------- the secret scan


@pytest.fixture
def debug_logs(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    caplog.set_level(logging.DEBUG)
    for name in ("slack_bolt", "slack_sdk", "aiohttp", "pymongo", "motor", "flows", "bot"):
        logging.getLogger(name).setLevel(logging.DEBUG)
    yield caplog


async def test_no_secret_in_logs_slack_calls_exports_runs_or_database(
    emulator: SlackEmulator,
    mongo_uri: str,
    db_name: str,
    api: Api,
    debug_logs: pytest.LogCaptureFixture,
) -> None:
    async with running_bot(
        emulator, mongo_uri, db_name, flowbot_allowed_http_hosts="127.0.0.1"
    ) as bot:
        flow = await create_flow(bot, ledger_flow())
        # Connections made through Slack (the secrets travel in the modal submissions).
        alice = await connect_via_modal(bot, ALICE, "Ledger", api.url, {"token": ALICE_TOKEN})
        await connect_via_modal(bot, BOB, "Mine", api.url, {"token": BOB_TOKEN})
        await connect_via_modal(bot, ALICE, "Keyed", api.url, HEADER_FIELDS, kind="http_header")
        await connect_via_modal(bot, ALICE, "Basic", api.url, BASIC_FIELDS, kind="http_basic")
        await said(bot, ALICE, "connect Expenses ledger Ledger", "now uses your connection")
        # Update credentials through the modal.
        listing = await said(bot, ALICE, "connections", "My connections")
        await bot.driver.click(ALICE, listing, cards.UPDATE_ACTION, alice.id)
        view = await wait_view(bot, ALICE, cards.SAVE_CALLBACK)
        await bot.driver.fill_and_submit(ALICE, view["id"], connect_form(token=ALICE_NEW_TOKEN))
        await ephemeral_with(bot, ALICE, "Updated")
        # Runs: the owner's, a run-only user's own connection, a failing one, an echo.
        access = await resolve_access(flow, ALICE, deps(bot).directory)
        await deps(bot).connections.set_runner_provides(flow, access, ALICE, "ledger", True)
        await plant_share(bot, flow.id, BOB, "runner")
        await run_and_wait(bot, ALICE, "run Expenses amount=1", flow.id, 1)
        await bot.driver.slash(BOB, "run Expenses amount=2")
        modal = await wait_view(bot, BOB, "run_flow_modal")
        await bot.driver.view_submission(BOB, modal["id"])
        await finished_run(bot, flow.id, 2)
        echo = await create_flow(bot, ledger_flow(name="Echo", path="/echo"))
        await said(bot, ALICE, "connect Echo ledger Ledger", "Slot `ledger` of *Echo*")
        await run_and_wait(bot, ALICE, "run Echo amount=3", echo.id, 1)
        failing = await create_flow(bot, ledger_flow(name="Broken", path="/missing"))
        await said(bot, ALICE, "connect Broken ledger Ledger", "Slot `ledger` of *Broken*")
        broken = await run_and_wait(bot, ALICE, "run Broken amount=4", failing.id, 1)
        assert broken.status == "failed"
        # Exports and listings.
        for typed in ("export Expenses", "show Expenses", "connections", "history Expenses"):
            await bot.driver.slash(ALICE, typed)
        await bot.driver.slash(ALICE, "connections Expenses")
        await wait_view(bot, ALICE, cards.FLOW_CALLBACK)
        assert api.auth()[:2] == [f"Bearer {ALICE_NEW_TOKEN}", f"Bearer {BOB_TOKEN}"]

        # The scan.
        forbidden = [*SECRETS, base64.b64encode(f"{BASIC_USER}:{BASIC_PASSWORD}".encode()).decode()]
        haystacks: dict[str, str] = {
            "logs": "\n".join(
                r.getMessage() + (str(r.exc_info) if r.exc_info else "") for r in debug_logs.records
            ),
            "emulator.calls": dump(bot.emulator.calls, default=str),
            "response_url_posts": dump(bot.emulator.response_url_posts, default=str),
            "ephemerals": dump(bot.emulator.ephemerals, default=str),
            "messages": dump(bot.emulator.messages, default=str),
            "views": dump(bot.emulator.views, default=str),
        }
        for name, docs in (await documents(bot)).items():
            haystacks[f"db.{name}"] = dump(docs, default=str)
        assert any(
            ALICE_NEW_TOKEN[-4:] in text for text in haystacks.values()
        )  # the masked hint is there...
        assert "db.connections" in haystacks and "db.runs" in haystacks
        for where, text in haystacks.items():
            for secret in forbidden:
                assert secret not in text, f"a secret leaked into {where}"

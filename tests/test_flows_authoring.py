"""Authoring flows in Slack: the gallery, the import/edit modal, validation, versions."""

from __future__ import annotations

import hashlib
import re
from typing import Any

import pytest

from flows.definition import parse_definition
from flows.gallery import list_templates
from tests.support import (
    ALICE,
    BOB,
    BotHarness,
    all_text,
    code_blocks,
    command,
    create_flow,
    ephemerals_for,
    field_errors,
    flow_doc,
    import_through_modal,
    settle,
    wait_ephemeral,
    wait_view,
)

TEMPLATES = list_templates()

SIMPLE = """\
name: Coffee order
kind: instant
inputs:
  - {id: drink, label: Drink, type: choice, choices: [espresso, latte], required: true}
steps:
  - id: tell
    type: post_message
    channel: "#general"
    text: "<@{{ run.started_by }}> wants a {{ inputs.drink }}"
"""


async def test_at_least_five_templates_are_offered() -> None:
    assert len(TEMPLATES) >= 5


@pytest.mark.parametrize("template", TEMPLATES, ids=[t.key for t in TEMPLATES])
async def test_each_template_imports_through_the_modal_and_exports_back(
    bot: BotHarness, template: Any
) -> None:
    response = await import_through_modal(bot, ALICE, template.source)
    assert response.ok, response
    body = response.json or {}
    assert body.get("response_action") in (None, "update"), body

    doc = await flow_doc(bot, template.title)
    assert doc is not None and doc["version"] == 1 and doc["creator"] == ALICE
    await wait_ephemeral(bot, ALICE, f"Created *{template.title}*")

    since = len(bot.emulator.ephemerals)
    await bot.driver.slash(ALICE, f'export "{template.title}"')
    first = await wait_ephemeral(bot, ALICE, "/flow import", since)
    await settle(0.2)
    exported = [e for e in ephemerals_for(bot, ALICE, since) if "```" in all_text(e)]
    assert first in exported
    assert parse_definition(code_blocks(exported)) == template.definition()


async def test_a_webhook_flow_shows_its_token_once_and_stores_only_its_hash(
    bot: BotHarness,
) -> None:
    source = next(t for t in TEMPLATES if t.key == "webhook-to-channel").source
    response = await import_through_modal(bot, ALICE, source)
    assert response.ok and response.json and response.json["response_action"] == "update"
    shown = all_text(response.json["view"])
    token = re.search(r"```(\S+)```", shown)
    assert token is not None
    doc = await flow_doc(bot, "Webhook to channel")
    assert doc is not None
    assert doc["webhook_token_hash"] == hashlib.sha256(token.group(1).encode()).hexdigest()
    assert token.group(1) not in str(doc)
    confirmation = await wait_ephemeral(bot, ALICE, "Created")
    assert token.group(1) not in all_text(confirmation)


async def test_new_opens_the_gallery_and_a_pick_opens_the_prefilled_editor(
    bot: BotHarness,
) -> None:
    await bot.driver.slash(ALICE, "new")
    gallery = await wait_view(bot, ALICE, "flow_gallery")
    assert "Expense approval" in all_text(gallery["blocks"])
    picked = {
        "type": "static_select",
        "selected_option": {
            "text": {"type": "plain_text", "text": "Expense approval"},
            "value": "expense-approval",
        },
    }
    response = await bot.driver.block_action(
        ALICE, "flow_gallery_pick", block_id="template", view=gallery, action=picked
    )
    assert response.ok
    editor = await wait_view(bot, ALICE, "flow_editor")
    assert editor["id"] == gallery["id"]  # updated in place, as views.update does
    prefilled = editor["blocks"][1]["element"]["initial_value"]
    assert "name: Expense approval" in prefilled

    saved = await bot.driver.fill_and_submit(ALICE, editor["id"], {})
    assert saved.ok and not (saved.json or {}).get("response_action")
    assert await flow_doc(bot, "Expense approval") is not None


async def test_the_gallery_submit_button_moves_on_to_the_editor(bot: BotHarness) -> None:
    await bot.driver.slash(ALICE, "new")
    gallery = await wait_view(bot, ALICE, "flow_gallery")
    response = await bot.driver.fill_and_submit(ALICE, gallery["id"], {"template": "blank"})
    assert response.ok and response.json and response.json["response_action"] == "update"
    editor = await wait_view(bot, ALICE, "flow_editor")
    assert "My new flow" in editor["blocks"][1]["element"]["initial_value"]


MALFORMED = {
    "bad yaml": ("name: [unclosed\nsteps: []\n", ["yaml: line"]),
    "unknown step type": (
        "name: X\nsteps:\n  - {type: teleport, to: mars}\n",
        ["steps[0].type: unknown step type 'teleport'"],
    ),
    "missing field and wrong type": (
        "name: X\ninputs:\n  - {id: n, type: number, required: maybe}\n"
        "steps:\n  - {type: post_message, text: hi}\n",
        ["inputs[0].required", "steps[0].channel: field required"],
    ),
    "unknown input in a template": (
        'name: X\nsteps:\n  - {type: post_message, channel: "#a", text: "{{ inputs.nope }}"}\n',
        ["steps[0].text", "nope"],
    ),
    "bad json": ('{"name": "X", "steps": [}', ["json: line 1"]),
}


@pytest.mark.parametrize("case", list(MALFORMED), ids=list(MALFORMED))
async def test_a_malformed_definition_is_refused_on_the_field_and_nothing_is_saved(
    bot: BotHarness, case: str
) -> None:
    source, expected = MALFORMED[case]
    response = await import_through_modal(bot, ALICE, source)
    errors = field_errors(response)
    assert list(errors) == ["definition"]
    for fragment in expected:
        assert fragment in errors["definition"], errors
    await settle()
    assert await bot.db["flows"].count_documents({}) == 0
    assert bot.emulator.views  # the modal stays open with the text in it


async def test_every_error_is_listed_one_per_line(bot: BotHarness) -> None:
    source = (
        "name: X\nkind: instant\nsteps:\n"
        "  - {type: post_message, text: hi}\n"
        "  - {type: send_dm, text: hi}\n"
        "  - {type: delay}\n"
        "  - {type: teleport}\n"
    )
    errors = field_errors(await import_through_modal(bot, ALICE, source))["definition"]
    lines = errors.splitlines()
    assert any(line.startswith("steps[0].channel") for line in lines)
    assert any(line.startswith("steps[1].user") for line in lines)
    assert any(line.startswith("steps[2]") for line in lines)
    assert any(line.startswith("steps[3].type") for line in lines)


async def test_a_flood_of_errors_is_clipped_to_slacks_limit(bot: BotHarness) -> None:
    steps = "".join("  - {type: x}\n" for _ in range(150))
    errors = field_errors(await import_through_modal(bot, ALICE, f"name: X\nsteps:\n{steps}"))
    text = errors["definition"]
    assert len(text) <= 2000
    assert re.search(r"… and \d+ more$", text)


async def test_names_collide_ignoring_case(bot: BotHarness) -> None:
    assert (await import_through_modal(bot, ALICE, SIMPLE)).ok
    other = SIMPLE.replace("Coffee order", "COFFEE ORDER")
    errors = field_errors(await import_through_modal(bot, BOB, other))
    assert "already exists" in errors["definition"]
    assert await bot.db["flows"].count_documents({}) == 1


async def test_edit_saves_a_new_version_and_keeps_the_old_one(bot: BotHarness) -> None:
    await import_through_modal(bot, ALICE, SIMPLE)
    await bot.driver.slash(ALICE, 'edit "coffee order"')
    editor = await wait_view(bot, ALICE, "flow_editor")
    current = editor["blocks"][1]["element"]["initial_value"]
    assert "Coffee order" in current
    changed = current.replace("wants a", "would love a")
    response = await bot.driver.fill_and_submit(ALICE, editor["id"], {"definition": changed})
    assert response.ok and not (response.json or {}).get("response_action")

    doc = await flow_doc(bot, "Coffee order")
    assert doc is not None and doc["version"] == 2
    assert "would love a" in str(doc["definition"])
    old = await bot.db["flow_versions"].find_one({"flow_id": doc["_id"], "version": 1})
    assert old is not None and "wants a" in str(old["definition"])
    await wait_ephemeral(bot, ALICE, "Saved *Coffee order* (version 2)")


async def test_a_concurrent_edit_is_refused_and_nothing_is_lost(bot: BotHarness) -> None:
    await import_through_modal(bot, ALICE, SIMPLE)
    doc = await flow_doc(bot, "Coffee order")
    assert doc is not None
    # Bob becomes a co-owner so that both may edit.
    share = {"principal": BOB, "role": "owner", "added_by": ALICE, "added_at": doc["created_at"]}
    await bot.db["flows"].update_one({"_id": doc["_id"]}, {"$push": {"shares": share}})

    await bot.driver.slash(ALICE, "edit Coffee order")
    alice_editor = await wait_view(bot, ALICE, "flow_editor")
    await bot.driver.slash(BOB, "edit Coffee order")
    bob_editor = await wait_view(bot, BOB, "flow_editor")

    alice_text = SIMPLE.replace("wants a", "ALICE")
    bob_text = SIMPLE.replace("wants a", "BOB")
    first = await bot.driver.fill_and_submit(ALICE, alice_editor["id"], {"definition": alice_text})
    assert first.ok and not (first.json or {}).get("response_action")
    second = await bot.driver.fill_and_submit(BOB, bob_editor["id"], {"definition": bob_text})
    message = field_errors(second)["definition"]
    assert "<@U0ALICE> saved version 2" in message and "version 1" in message
    assert "Nothing was overwritten" in message

    doc = await flow_doc(bot, "Coffee order")
    assert doc is not None and doc["version"] == 2 and "ALICE" in str(doc["definition"])
    assert BOB in {v["user"] for v in bot.emulator.views.values()}  # Bob's text is still open


async def test_bob_cannot_edit_alices_flow(bot: BotHarness) -> None:
    await import_through_modal(bot, ALICE, SIMPLE)
    answer = await command(bot, BOB, "edit Coffee order", "can't edit")
    assert "only its owners" in all_text(answer)
    await settle()
    assert not any(v.get("user") == BOB for v in bot.emulator.views.values())


async def test_edit_of_an_unknown_flow_and_without_a_name_gives_usage(bot: BotHarness) -> None:
    answer = await command(bot, ALICE, "edit Nope", "no flow named")
    assert "/flow edit <flow>" in all_text(answer)
    answer = await command(bot, ALICE, "edit", "Name the flow")
    assert "/flow edit <flow>" in all_text(answer)


async def test_long_exports_are_split_into_several_code_blocks(bot: BotHarness) -> None:
    steps = "".join(
        f'  - {{id: s{i}, type: post_message, channel: "#general", text: "line {i} '
        + "x" * 60
        + '"}\n'
        for i in range(60)
    )
    source = f"name: Long one\nsteps:\n{steps}"
    await create_flow(bot, source)
    since = len(bot.emulator.ephemerals)
    await bot.driver.slash(ALICE, "export Long one")
    await wait_ephemeral(bot, ALICE, "/flow import", since)
    await settle(0.3)
    exported = [e for e in ephemerals_for(bot, ALICE, since) if "```" in all_text(e)]
    sections = [b for e in exported for b in e["blocks"] if "```" in all_text([b])]
    assert len(sections) > 1
    assert all(len(all_text([b])) <= 3000 for b in sections)
    assert parse_definition(code_blocks(exported)) == parse_definition(source)

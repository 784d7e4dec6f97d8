"""The App Home tab: a welcome on first use, then my flows with Run buttons."""

from __future__ import annotations

from handlers.home import publish_home
from tests.support import (
    ALICE,
    BOB,
    JSON,
    TEAM,
    BotHarness,
    all_text,
    create_flow,
    eventually,
    template_source,
    values_of,
    wait_view,
)

EXPENSE = template_source("expense-approval")
STANDUP = template_source("daily-standup")


async def open_home(bot: BotHarness, user: str) -> JSON:
    before = bot.emulator.home_views.get(user, {}).get("hash")
    await bot.driver.event(bot.driver.app_home_opened(user))
    return await eventually(
        lambda: (
            bot.emulator.home_views.get(user)
            if bot.emulator.home_views.get(user, {}).get("hash") != before
            else None
        )
    )


async def test_first_visit_welcomes_then_the_next_shows_flows(bot: BotHarness) -> None:
    home = await open_home(bot, ALICE)
    text = all_text(home["blocks"])
    assert "Welcome to Flowbot" in text
    for stored in ("Slack user id", "flows you create", "runs", "inputs", "encrypted"):
        assert stored in text
    assert "Get started" in text and "My buttons" in text and "No flows yet" in text
    # Recorded right after publishing: wait for it before opening again.
    seen = await eventually(lambda: bot.db["users"].find_one({"user_id": ALICE, "team_id": TEAM}))
    assert seen["welcome_seen_at"]

    button = await create_flow(bot, EXPENSE)
    schedule = await create_flow(bot, STANDUP)
    home = await open_home(bot, ALICE)
    text = all_text(home["blocks"])
    assert "Welcome to Flowbot" not in text
    assert "Expense approval" in text and "Daily standup reminder" in text
    assert "instant · :large_green_circle: on · version 1" in text
    runs = values_of(home, "run_flow")
    assert runs == [button.id]  # instant flows only
    assert schedule.id not in runs


async def test_get_started_opens_the_gallery(bot: BotHarness) -> None:
    await open_home(bot, BOB)
    response = await bot.driver.click_home(BOB, "home_get_started")
    assert response.ok
    gallery = await wait_view(bot, BOB, "flow_gallery")
    assert "Expense approval" in all_text(gallery["blocks"])


async def test_home_overflow_opens_show_and_edit(bot: BotHarness) -> None:
    flow = await create_flow(bot, EXPENSE)
    await open_home(bot, ALICE)
    home = bot.emulator.home_views[ALICE]
    menu = {
        "type": "overflow",
        "selected_option": {"text": {"type": "plain_text", "text": "Edit"}, "value": ""},
    }
    menu["selected_option"]["value"] = f"edit:{flow.id}"  # type: ignore[index]
    await bot.driver.block_action(
        ALICE, "home_flow_menu", block_id=f"flow_{flow.id}", view=home, action=menu
    )
    editor = await wait_view(bot, ALICE, "flow_editor")
    assert "Expense approval" in editor["blocks"][1]["element"]["initial_value"]

    menu["selected_option"]["value"] = f"show:{flow.id}"  # type: ignore[index]
    await bot.driver.block_action(
        BOB, "home_flow_menu", block_id=f"flow_{flow.id}", view=home, action=menu
    )
    refusal = await wait_view(bot, BOB, "flow_info")
    assert "can't see" in all_text(refusal["blocks"])


async def test_publish_home_refreshes_after_changes(bot: BotHarness) -> None:
    await publish_home(bot.flowbot.deps, TEAM, ALICE)
    assert "No flows yet" in all_text(bot.emulator.home_views[ALICE]["blocks"])
    # Not opened by Alice yet: the welcome waits for her.
    assert "Welcome to Flowbot" in all_text(bot.emulator.home_views[ALICE]["blocks"])
    assert await bot.db["users"].count_documents({}) == 0

    since = bot.emulator.home_views[ALICE]["hash"]
    await bot.driver.slash(ALICE, "import")
    editor = await wait_view(bot, ALICE, "flow_editor")
    await bot.driver.fill_and_submit(ALICE, editor["id"], {"definition": EXPENSE})
    home = await eventually(
        lambda: (
            bot.emulator.home_views[ALICE]
            if bot.emulator.home_views[ALICE]["hash"] != since
            else None
        )
    )
    assert "Expense approval" in all_text(home["blocks"])

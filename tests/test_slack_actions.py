"""Slack action steps (SPEC §13) from outside: flows imported through `/flow import`, run
with signed `/flow run`, and the emulator's channels, members, topics, reactions and
messages checked afterwards."""

from __future__ import annotations

import copy
from typing import Any

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from flows.definition import DefinitionError, normalise_channel_name, parse_definition
from flows.records import RunRecord
from tests.support import (
    ALICE,
    BOB,
    CAROL,
    DAVE,
    BotHarness,
    all_text,
    by_label,
    eventually,
    field_errors,
    finished_run,
    flow_doc,
    has_buttons,
    import_through_modal,
    template_source,
    wait_view,
)


async def imported(bot: BotHarness, source: str) -> str:
    response = await import_through_modal(bot, ALICE, source)
    assert response.ok and not (response.json or {}).get("errors"), response.json
    name = source.split("name:", 1)[1].splitlines()[0].strip()
    doc = await flow_doc(bot, name)
    assert doc is not None
    return str(doc["_id"])


async def run_flow(bot: BotHarness, source: str, args: str = "") -> RunRecord:
    flow_id = await imported(bot, source)
    name = source.split("name:", 1)[1].splitlines()[0].strip()
    response = await bot.driver.slash(ALICE, f'run "{name}" {args}'.strip())
    assert response.ok and response.elapsed < 3
    [run] = await finished_run(bot, flow_id)
    return run


def out(run: RunRecord, step: str) -> dict[str, Any]:
    return run.steps[step].output


THREAD = """
name: Thread
steps:
  - {id: post, type: post_message, channel: "#general", text: "Deploy started"}
  - id: reply
    type: post_message
    channel: "{{ steps.post.channel }}"
    thread_ts: "{{ steps.post.ts }}"
    text: "step 1 done"
  - id: loud
    type: post_message
    channel: "{{ steps.post.channel }}"
    thread_ts: "{{ steps.post.ts }}"
    reply_broadcast: true
    text: "all done"
  - id: edit
    type: update_message
    channel: "{{ steps.post.channel }}"
    ts: "{{ steps.post.ts }}"
    text: "Deploy finished"
  - id: react
    type: add_reaction
    channel: "{{ steps.post.channel }}"
    ts: "{{ steps.post.ts }}"
    emoji: ":white_check_mark:"
  - id: again
    type: add_reaction
    channel: "#general"
    ts: "{{ steps.post.ts }}"
    emoji: white_check_mark
"""


async def test_replies_in_a_thread_updates_and_reacts(bot: BotHarness) -> None:
    run = await run_flow(bot, THREAD)
    assert run.status == "succeeded", run.error
    post = out(run, "post")
    assert post["channel"] == "C0GENERAL" and post["ts"]
    messages = {m["ts"]: m for m in bot.emulator.messages_in("#general")}
    parent = messages[post["ts"]]
    reply, loud = messages[out(run, "reply")["ts"]], messages[out(run, "loud")["ts"]]
    assert reply["thread_ts"] == post["ts"] and not reply.get("reply_broadcast")
    assert loud["thread_ts"] == post["ts"] and loud["reply_broadcast"] is True
    assert out(run, "reply")["thread_ts"] == post["ts"]
    # Updated in place; one reaction by the bot, the second add is no error.
    assert parent["text"] == "Deploy finished" and parent["updated"] == 1
    assert bot.emulator.conversations.reactions("C0GENERAL", post["ts"]) == {
        "white_check_mark": ["U0BOT"]
    }
    assert out(run, "react")["already"] is False and out(run, "again")["already"] is True


INCIDENT_ROOM = """
name: Room
inputs:
  - {id: title, type: text}
steps:
  - {id: room, type: create_channel, name: "INC {{ inputs.title }}", private: false}
  - id: invite
    type: invite_to_channel
    channel: "{{ steps.room.channel }}"
    users: ["<!subteam^S0ONCALL|oncall>", "<@U0ALICE>", "{{ run.started_by }}"]
  - id: topic
    type: set_channel_topic
    channel: "{{ steps.room.channel }}"
    topic: "Incident: {{ inputs.title }}"
  - id: again
    type: invite_to_channel
    channel: "{{ steps.room.channel }}"
    users: "<@U0BOB> <@U0CAROL>"
"""


async def test_creates_a_channel_invites_a_group_and_sets_the_topic(bot: BotHarness) -> None:
    bot.emulator.add_usergroup("S0ONCALL", "oncall", users=[BOB, CAROL])
    run = await run_flow(bot, INCIDENT_ROOM, 'title="DB down: 5.31"')
    assert run.status == "succeeded", run.error
    room = out(run, "room")
    assert room["name"] == "inc-db-down-5-31" and room["created"] is True
    channel = bot.emulator.channels[room["channel"]]
    assert channel["name"] == "inc-db-down-5-31" and not channel["is_private"]
    assert set(channel["members"]) == {"U0BOT", ALICE, BOB, CAROL}
    assert out(run, "invite")["invited"] == [BOB, CAROL, ALICE]
    assert channel["topic"]["value"] == "Incident: DB down: 5.31"
    # People already in the channel are fine: nobody is invited twice.
    assert out(run, "again") == {
        "channel": room["channel"],
        "invited": [],
        "already_in": [BOB, CAROL],
    }
    invites = [p for m, p in bot.emulator.calls if m == "conversations.invite"]
    assert len(invites) == 1


async def test_if_exists_fail_or_use(bot: BotHarness) -> None:
    bot.emulator.add_channel("C0WAR", "war-room", members=[DAVE])
    bot.emulator.channels["C0WAR"]["is_member"] = False
    fail = await run_flow(
        bot, "name: Fail\nsteps:\n  - {id: room, type: create_channel, name: War Room}"
    )
    assert fail.status == "failed"
    assert fail.error == (
        "step room, field name: a channel named #war-room already exists "
        "(set if_exists: use to use it)"
    )
    use = await run_flow(
        bot,
        "name: Use\nsteps:\n"
        "  - {id: room, type: create_channel, name: '#War-Room', if_exists: use}\n"
        "  - {id: inv, type: invite_to_channel, channel: '{{ steps.room.channel }}', "
        "users: [U0BOB]}",
    )
    assert use.status == "succeeded", use.error
    assert out(use, "room") == {"channel": "C0WAR", "name": "war-room", "created": False}
    # The bot joined the public channel, so it could invite.
    assert set(bot.emulator.channels["C0WAR"]["members"]) == {DAVE, "U0BOT", BOB}


async def test_private_channel(bot: BotHarness) -> None:
    run = await run_flow(
        bot,
        "name: Secret\nsteps:\n  - {id: room, type: create_channel, name: hr-case, private: true}",
    )
    assert run.status == "succeeded", run.error
    channel = bot.emulator.channels[out(run, "room")["channel"]]
    assert channel["is_private"] and channel["id"].startswith("G")


async def test_lookup_user_by_email(bot: BotHarness) -> None:
    bot.emulator.add_user(
        "U0ERIN", "erin", real_name="Erin Ops", email="erin@example.com", tz="Europe/Paris"
    )
    source = """
name: Who
inputs: [{id: email, type: text}]
steps:
  - {id: who, type: lookup_user, email: "{{ inputs.email }}"}
  - {id: dm, type: send_dm, user: "{{ steps.who.user }}", text: "Hi {{ steps.who.real_name }}"}
"""
    run = await run_flow(bot, source, "email=ERIN@example.com")
    assert run.status == "succeeded", run.error
    assert out(run, "who") == {
        "user": "U0ERIN",
        "name": "erin",
        "real_name": "Erin Ops",
        "tz": "Europe/Paris",
        "email": "erin@example.com",
    }
    assert bot.emulator.messages_in("U0ERIN")[-1]["text"] == "Hi Erin Ops"
    missing = await run_flow(
        bot, source.replace("name: Who", "name: Who2"), "email=nobody@example.com"
    )
    assert missing.status == "failed"
    assert (
        missing.error
        == "step who, field email: no one in this workspace has the email nobody@example.com"
    )


ERRORS = """
name: Errors
steps:
  - {id: step, type: %s}
"""


async def test_slack_errors_read_as_clear_step_errors(bot: BotHarness) -> None:
    bot.emulator.add_channel("C0OUT", "outside", members=[ALICE])
    bot.emulator.channels["C0OUT"]["is_member"] = False
    cases = {
        "set_channel_topic, channel: C0OUT, topic: x": "step step, field channel: the bot is not "
        "in <#C0OUT>: add it with /invite @Flowbot there",
        "invite_to_channel, channel: '#nowhere', users: [U0BOB]": "step step, field channel: "
        "Slack has no channel #nowhere that the bot can see",
        "invite_to_channel, channel: C0NOPE, users: [U0BOB]": "step step, field channel: Slack "
        "has no channel <#C0NOPE> that the bot can see",
        "add_reaction, channel: C0GENERAL, ts: '1.000001', emoji: tada": "step step, field ts: "
        "there is no message 1.000001 in <#C0GENERAL>",
        "update_message, channel: C0GENERAL, ts: '1.000001', text: x": "step step, field ts: "
        "there is no message 1.000001 in <#C0GENERAL>",
        "add_reaction, channel: C0GENERAL, ts: '{{ steps.x }}', emoji: tada": None,
    }
    for index, (step, error) in enumerate(cases.items()):
        source = ERRORS.replace("Errors", f"Errors{index}") % step
        if error is None:  # an unknown step in a template is refused on import
            response = await import_through_modal(bot, ALICE, source)
            assert "unknown step 'x'" in field_errors(response)["definition"]
            continue
        run = await run_flow(bot, source)
        assert (run.status, run.error) == ("failed", error)
    assert bot.emulator.channels["C0OUT"].get("topic") is None


async def test_update_message_not_posted_by_the_bot_and_unknown_emoji(bot: BotHarness) -> None:
    theirs = bot.emulator._store_message("C0GENERAL", "mine", None, user=ALICE)
    base = "name: N{n}\nsteps:\n  - {{id: step, type: {step}}}"
    update = base.format(
        n=1, step=f"update_message, channel: C0GENERAL, ts: '{theirs['ts']}', text: x"
    )
    run = await run_flow(bot, update)
    assert run.error == (
        f"step step, field ts: the message {theirs['ts']} was not posted by the bot, "
        "so it cannot be edited"
    )
    react = base.format(
        n=2, step=f"add_reaction, channel: '#general', ts: '{theirs['ts']}', emoji: not_an_emoji"
    )
    run = await run_flow(bot, react)
    assert run.error == "step step, field emoji: Slack has no emoji :not_an_emoji:"


async def test_every_shape_error_at_once_with_its_place(bot: BotHarness) -> None:
    source = """
name: Bad
steps:
  - {type: post_message, channel: "#general", text: hi, reply_broadcast: true}
  - {type: update_message, channel: "#general", ts: "yesterday", text: x}
  - {type: add_reaction, channel: "#general", ts: "1.2", emoji: "two words"}
  - {type: create_channel, name: "!!!", if_exists: maybe}
  - {type: invite_to_channel, channel: "#general", users: ["<#C0GENERAL>", bob]}
  - {type: set_channel_topic, channel: "#general", topic: "%s"}
  - {type: lookup_user, email: nope}
""" % ("x" * 251)
    errors = field_errors(await import_through_modal(bot, ALICE, source))["definition"]
    for place in (
        "steps[0].reply_broadcast",
        "steps[1].ts",
        "steps[2].emoji",
        "steps[3].name",
        "steps[3].if_exists",
        "steps[4].users[0]",
        "steps[4].users[1]",
        "steps[5].topic",
        "steps[6].email",
    ):
        assert place in errors, (place, errors)


def test_channel_names_follow_slacks_rules() -> None:
    assert normalise_channel_name("Inc 2024.05.31 -- Big Outage!!") == "inc-2024-05-31-big-outage"
    assert normalise_channel_name("#Ops_Team") == "ops_team"
    assert normalise_channel_name("Café déjà vu") == "caf-d-j-vu"
    assert len(normalise_channel_name("x" * 200)) == 80
    try:
        parse_definition("name: X\nsteps:\n  - {type: create_channel, name: '***'}")
    except DefinitionError as exc:
        assert "steps[0].name" in str(exc)
    else:
        raise AssertionError("a name without letters or digits is refused")


async def test_show_and_export_render_the_new_steps(bot: BotHarness) -> None:
    await imported(bot, INCIDENT_ROOM)
    await bot.driver.slash(ALICE, "show Room")

    def shown() -> str | None:
        posts = [all_text(p) for p in bot.emulator.response_url_posts]
        return next((t for t in posts if "create channel" in t), None)

    text = await eventually(shown)
    assert "invite_to_channel: invite " in text
    assert "set the topic of" in text
    await bot.driver.slash(ALICE, "export Room")

    def exported() -> str | None:
        posts = [all_text(p) for p in bot.emulator.response_url_posts]
        return next((t for t in posts if "type: create_channel" in t), None)

    yaml_text = await eventually(exported)
    assert "type: invite_to_channel" in yaml_text and "type: set_channel_topic" in yaml_text


async def test_incident_room_template(bot: BotHarness) -> None:
    bot.emulator.add_usergroup("S0ONCALL", "oncall", users=[BOB, CAROL])
    source = template_source("incident-room")
    flow_id = await imported(bot, source)
    await bot.driver.slash(ALICE, 'run "Incident room" title="Checkout 500s" severity=SEV1')
    # The reporter is asked for details with a Fill in button, then the run goes on.
    form = copy.deepcopy(
        (await eventually(lambda: [m for m in bot.emulator.messages_in(ALICE) if has_buttons(m)]))[
            -1
        ]
    )
    assert "Incident details: Checkout 500s" in all_text(form)
    assert (await bot.driver.click(ALICE, form, "ask_fill")).ok
    view = await wait_view(bot, ALICE, "ask_submit")
    values = by_label(view, {"Who or what is affected?": "EU shoppers"})
    assert (await bot.driver.fill_and_submit(ALICE, view["id"], values)).ok
    [run] = await finished_run(bot, flow_id)
    assert run.status == "succeeded", run.error
    room = out(run, "room")
    assert room["name"].startswith("inc-") and room["name"].endswith("-checkout-500s")
    channel = bot.emulator.channels[room["channel"]]
    assert set(channel["members"]) == {"U0BOT", ALICE, BOB, CAROL}
    assert channel["topic"]["value"] == f"SEV1: Checkout 500s · reported by <@{ALICE}>"
    summary, reply = bot.emulator.messages_in(room["channel"])
    assert summary["text"].startswith(":rotating_light: *SEV1: Checkout 500s*")
    assert "Impact: EU shoppers" in summary["text"]
    assert reply["thread_ts"] == summary["ts"] and "3 people" in reply["text"]
    assert bot.emulator.conversations.reactions(room["channel"], summary["ts"]) == {
        "eyes": ["U0BOT"]
    }


async def test_the_emulator_answers_with_slacks_errors(bot: BotHarness) -> None:
    client = AsyncWebClient(token="xoxb-test", base_url=bot.emulator.api_url)

    async def error(method: str, **params: Any) -> str:
        try:
            await client.api_call(method, json=params)
        except SlackApiError as exc:
            return str(exc.response["error"])
        return "ok"

    assert await error("conversations.create", name="Has Spaces") == "invalid_name_specials"
    assert await error("conversations.create", name="x" * 81) == "invalid_name_maxlength"
    assert await error("conversations.create", name="general") == "name_taken"
    assert await error("conversations.invite", channel="C0GENERAL", users=BOB) == (
        "already_in_channel"
    )
    assert await error("conversations.invite", channel="C0GENERAL", users="U0BOT") == (
        "cant_invite_self"
    )
    assert await error("conversations.setTopic", channel="C0GENERAL", topic="x" * 251) == (
        "too_long"
    )
    assert await error("users.lookupByEmail", email="nobody@example.com") == "users_not_found"
    posted = await client.chat_postMessage(channel="C0GENERAL", text="hi")
    assert (
        await error("reactions.add", channel="C0GENERAL", timestamp=posted["ts"], name="x") == "ok"
    )
    assert await error("reactions.add", channel="C0GENERAL", timestamp=posted["ts"], name="x") == (
        "already_reacted"
    )
    # Private channels the bot is not in are invisible.
    bot.emulator.add_channel("G0HIDDEN", "hidden", is_private=True)
    bot.emulator.channels["G0HIDDEN"]["is_member"] = False
    listed = await client.conversations_list(types="public_channel,private_channel")
    names = {c["name"] for c in listed["channels"]}
    assert "general" in names and "hidden" not in names
    assert await error("conversations.setTopic", channel="G0HIDDEN", topic="x") == (
        "channel_not_found"
    )

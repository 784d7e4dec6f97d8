"""Control-flow steps on the engine (SPEC §11): switch, for_each (in order and at once),
parallel, flow outputs; waits inside loops and branches; no step repeated on resume."""

from __future__ import annotations

from datetime import timedelta

from tests.builders import flow_record
from tests.unit.conftest import Engine

SWITCH = """
name: Router
inputs:
  - {id: team, type: text}
outputs:
  routed: "{{ steps.route.case }}"
steps:
  - id: route
    type: switch
    value: "{{ inputs.team }}"
    cases:
      sales:
        - {id: to_sales, type: post_message, channel: "#general", text: "sales"}
      2:
        - {id: to_two, type: post_message, channel: "#general", text: "two"}
    default:
      - {id: other, type: post_message, channel: "#general", text: "other {{ inputs.team }}"}
"""


async def test_switch_takes_the_matching_case_or_the_default(engine: Engine) -> None:
    flow = flow_record(SWITCH)
    sales = await engine.run(flow, team="sales")
    assert sales.status == "succeeded", sales.error
    assert sales.steps["route"].output["case"] == "sales"
    assert sales.outputs == {"routed": "sales"}
    two = await engine.run(flow, team=" 2 ")
    assert two.steps["route"].output["case"] == "2"
    other = await engine.run(flow, team="ops")
    assert other.steps["route"].output["case"] == "default"
    assert engine.messenger.texts_in("C0GENERAL") == ["sales", "two", "other ops"]


LOOP = """
name: Greeter
inputs:
  - {id: names, type: text}
outputs:
  greeted: "{{ steps.each.count }}"
steps:
  - id: each
    type: for_each
    items: "{{ inputs.names.split(',') }}"
    steps:
      - {id: hi, type: post_message, channel: "#general", text: "{{ index }}:{{ item }}"}
      - {id: echo, type: set_variable, name: last, value: "{{ steps.hi.text }}"}
  - {id: done, type: post_message, channel: "#general", text: "{{ steps.each.results[1].hi.text }}"}
"""


async def test_for_each_runs_the_body_per_item_in_order(engine: Engine) -> None:
    run = await engine.run(flow_record(LOOP), names="ann,bob,cy")
    assert run.status == "succeeded", run.error
    assert engine.messenger.texts_in("C0GENERAL") == ["0:ann", "1:bob", "2:cy", "1:bob"]
    out = run.steps["each"].output
    assert out["count"] == 3
    assert [r["hi"]["text"] for r in out["results"]] == ["0:ann", "1:bob", "2:cy"]
    assert run.steps["each[2]/echo"].output["value"] == "2:cy"
    assert run.outputs == {"greeted": 3}


async def test_for_each_refuses_more_than_1000_items(engine: Engine) -> None:
    run = await engine.run(flow_record(LOOP), names=",".join(["x"] * 1001))
    assert run.status == "failed"
    assert "at most 1000" in (run.error or "")
    assert engine.messenger.texts_in("C0GENERAL") == []


CONCURRENT = """
name: Waves
steps:
  - id: each
    type: for_each
    items: [1, 2, 3, 4, 5]
    concurrency: 2
    steps:
      - {id: wait, type: delay, duration: 1m}
      - {id: hi, type: post_message, channel: "#general", text: "{{ item }}"}
"""


async def test_concurrent_iterations_wait_together_and_resume(engine: Engine) -> None:
    run = await engine.run(flow_record(CONCURRENT))
    assert run.status == "waiting"
    waiting = [k for k, r in run.steps.items() if r.status == "waiting"]
    assert sorted(waiting) == ["each[0]/wait", "each[1]/wait"]
    rounds = 0
    while run.status == "waiting" and rounds < 10:
        await engine.later(timedelta(minutes=1))
        got = await engine.runs.get(run.id)
        assert got is not None
        run = got
        rounds += 1
    assert run.status == "succeeded", run.error
    assert rounds == 3  # 2 at once: items 1-2, 3-4, 5
    assert sorted(engine.messenger.texts_in("C0GENERAL")) == ["1", "2", "3", "4", "5"]
    assert [r["hi"]["text"] for r in run.steps["each"].output["results"]] == list("12345")


PARALLEL = """
name: Both
steps:
  - id: ask
    type: parallel
    branches:
      - - {id: a1, type: post_message, channel: "#general", text: "a"}
        - {id: a2, type: delay, duration: 5m}
      - - {id: b1, type: post_message, channel: "#nowhere", text: "b"}
      - - {id: c1, type: post_message, channel: "#general", text: "c"}
  - {id: after, type: post_message, channel: "#general", text: "after"}
"""


async def test_parallel_fails_after_every_branch_ended(engine: Engine) -> None:
    run = await engine.run(flow_record(PARALLEL))
    # Branch 2 failed, branch 1 still waits: the step ends only when all ended.
    assert run.status == "waiting"
    assert run.steps["b1"].status == "failed"
    await engine.later(timedelta(minutes=5))
    done = await engine.runs.get(run.id)
    assert done is not None and done.status == "failed"
    assert done.error_step == "ask"
    assert "branch 2 of 3 failed" in (done.error or "")
    assert done.steps["a2"].status == "succeeded"
    assert engine.messenger.texts_in("C0GENERAL") == ["a", "c"]


async def test_parallel_outputs_per_branch(engine: Engine) -> None:
    flow = flow_record(PARALLEL.replace("#nowhere", "#general"))
    run = await engine.run(flow)
    await engine.later(timedelta(minutes=5))
    done = await engine.runs.get(run.id)
    assert done is not None
    assert done.status == "succeeded", done.error
    branches = done.steps["ask"].output["branches"]
    assert branches[1]["b1"]["text"] == "b"
    assert set(branches[0]) == {"a1", "a2"}


TWO_TEAMS = """
name: Two teams
steps:
  - id: both
    type: parallel
    branches:
      - - {id: sec, type: approval, approvers: ["<@U0BOB>"], title: "security"}
      - - {id: legal, type: approval, approvers: ["<@U0CAROL>"], title: "legal"}
  - id: verdict
    type: switch
    value: "{{ steps.sec.outcome == 'approved' and steps.legal.outcome == 'approved' }}"
    cases:
      "true":
        - {id: go, type: post_message, channel: "#general", text: "go"}
    default:
      - {id: halt, type: post_message, channel: "#general", text: "stop"}
"""


async def test_two_approvals_in_parallel_wait_together(engine: Engine) -> None:
    run = await engine.run(flow_record(TWO_TEAMS))
    assert run.status == "waiting"
    assert {k for k, r in run.steps.items() if r.status == "waiting"} == {"sec", "legal"}
    sec = await engine.approval_store.get_for_step(run.id, "sec")
    legal = await engine.approval_store.get_for_step(run.id, "legal")
    assert sec is not None and legal is not None
    await engine.approvals.respond(legal.id, "U0CAROL", "Approve")
    await engine.settle()
    half = await engine.runs.get(run.id)
    assert half is not None and half.status == "waiting"
    assert half.steps["legal"].status == "succeeded"
    await engine.approvals.respond(sec.id, "U0BOB", "Approve")
    await engine.settle()
    done = await engine.runs.get(run.id)
    assert done is not None
    assert done.status == "succeeded", done.error
    assert done.steps["verdict"].output["case"] == "true"
    assert engine.messenger.texts_in("C0GENERAL") == ["go"]


APPROVE_EACH = """
name: Each asks
steps:
  - id: each
    type: for_each
    items: ["<@U0BOB>", "<@U0CAROL>"]
    concurrency: 2
    steps:
      - {id: ask, type: approval, approvers: ["{{ item }}"], title: "ok {{ index }}?"}
      - {id: said, type: post_message, channel: "#general",
         text: "{{ item }} {{ steps.ask.outcome }}"}
"""


async def test_approvals_in_loop_iterations_resume_their_own_iteration(engine: Engine) -> None:
    run = await engine.run(flow_record(APPROVE_EACH))
    assert run.status == "waiting"
    second = await engine.approval_store.get_for_step(run.id, "each[1]/ask")
    assert second is not None
    await engine.approvals.respond(second.id, "U0CAROL", "Reject")
    await engine.settle()
    assert engine.messenger.texts_in("C0GENERAL") == ["<@U0CAROL> rejected"]
    first = await engine.approval_store.get_for_step(run.id, "each[0]/ask")
    assert first is not None
    await engine.approvals.respond(first.id, "U0BOB", "Approve")
    await engine.settle()
    done = await engine.runs.get(run.id)
    assert done is not None and done.status == "succeeded", done.error
    assert engine.messenger.texts_in("C0GENERAL") == ["<@U0CAROL> rejected", "<@U0BOB> approved"]
    results = done.steps["each"].output["results"]
    assert [r["ask"]["outcome"] for r in results] == ["approved", "rejected"]


async def test_a_loop_of_n_posts_costs_about_n_writes(engine: Engine) -> None:
    writes = 0
    original = engine.runs.record_step

    async def counted(*args: object, **kwargs: object) -> bool:
        nonlocal writes
        writes += 1
        return await original(*args, **kwargs)  # type: ignore[arg-type]

    engine.runs.record_step = counted  # type: ignore[method-assign]
    items = ", ".join(str(i) for i in range(50))
    source = f"""
name: Many
steps:
  - id: outer
    type: switch
    value: a
    cases:
      a:
        - id: each
          type: for_each
          items: [{items}]
          steps:
            - {{id: hi, type: post_message, channel: "#general", text: "{{{{ item }}}}"}}
"""
    run = await engine.run(flow_record(source))
    assert run.status == "succeeded", run.error
    assert len(engine.messenger.texts_in("C0GENERAL")) == 50
    # 50 posts, the switch, the loop's start and end: not 50 × the nesting depth.
    assert writes <= 50 + 3


NESTED = """
name: Grid
steps:
  - id: rows
    type: for_each
    items: [a, b]
    steps:
      - {id: row, type: set_variable, name: row, value: "{{ item }}"}
      - id: cols
        type: for_each
        items: [1, 2]
        concurrency: 2
        steps:
          - id: odd
            type: condition
            if: "{{ item == 1 }}"
            then:
              - {id: cell, type: post_message, channel: "#general",
                 text: "{{ steps.row.value }}{{ item }}"}
"""


async def test_loops_nest_and_see_their_own_iteration(engine: Engine) -> None:
    run = await engine.run(flow_record(NESTED))
    assert run.status == "succeeded", run.error
    assert engine.messenger.texts_in("C0GENERAL") == ["a1", "b1"]
    assert run.steps["rows[1]/cols[0]/cell"].output["text"] == "b1"
    inner = run.steps["rows[0]/cols"].output["results"]
    assert [sorted(r) for r in inner] == [["cell", "odd"], ["odd"]]

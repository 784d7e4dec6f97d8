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

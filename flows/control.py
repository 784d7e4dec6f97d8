"""Control-flow step executors (SPEC §11): switch, for_each and parallel.

`switch` is a branching step like `condition`: it records the case it took, and the
runner runs that case's steps (and follows the same case after a restart).

`for_each` and `parallel` run their own steps through the runner's `Body`. An iteration's
steps are recorded under `<loop>[<index>]/<step id>` (see `flows.run_model.Scope`), a
branch's under their own ids (unique in the flow), so a resumed run skips what finished
and resumes what waited. A loop records its items once when it starts (its template is
not evaluated again after a restart); a body step with an outside effect is written
before the next one starts (flows.run_writes), the loop's end rides along with the next
write: a loop of N posts costs about N writes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from flows.definition.steps import (
    MAX_ITEMS,
    ForEachStep,
    ParallelStep,
    SwitchStep,
    nested_bodies,
)
from flows.records import RunRecord, StepResult
from flows.run_model import Body, Done, Outcome, StepContext, StepFailed


class _NoResume:
    async def resume(self, step: Any, ctx: StepContext, payload: Mapping[str, Any]) -> Outcome:
        raise StepFailed(f"a {step.type} step does not wait itself, so it cannot be resumed")


def _as_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


class SwitchExecutor(_NoResume):
    """Compares `value` (as text) with each case; records the case taken (`case`: the
    key, `default`, or None when nothing matched and there is no default)."""

    no_outside_effect = True  # its result rides along with the run's next write

    async def execute(self, step: SwitchStep, ctx: StepContext) -> Outcome:
        value = _as_text(await ctx.native("value", step.value))
        for key in step.cases:
            if key.strip() == value:
                return Done({"case": key, "value": value})
        return Done({"case": "default" if step.default else None, "value": value})

    def children(self, step: SwitchStep, output: Mapping[str, Any]) -> Sequence[Any]:
        case = output.get("case")
        if case is None:
            return []
        if case in step.cases:
            return step.cases[case]
        return step.default if case == "default" else []


def _outputs_under(run: RunRecord, prefix: str) -> dict[str, Any]:
    """step id → output of the results recorded directly under `prefix`."""
    size = len(prefix)
    return {
        key[size:]: dict(result.output)
        for key, result in run.steps.items()
        if key.startswith(prefix) and "/" not in key[size:] and result.status == "succeeded"
    }


async def _items(step: ForEachStep, ctx: StepContext) -> list[Any]:
    items = await ctx.native("items", step.items)
    if isinstance(items, (tuple, set, frozenset)):
        items = list(items)
    if isinstance(items, Mapping):
        items = [{"key": k, "value": v} for k, v in items.items()]
    if not isinstance(items, list):
        raise StepFailed(f"expected a list of items, got {type(items).__name__}", "items")
    if len(items) > MAX_ITEMS:
        raise StepFailed(f"{len(items)} items: a for_each takes at most {MAX_ITEMS}", "items")
    return items


class ForEachExecutor(_NoResume):
    """Runs the body once per item, `concurrency` at a time (1: one after another, in
    order). Output: `count`, and `results` (per item, body step id → output)."""

    # Its own start and end touch nothing outside (each body step is judged by itself).
    no_outside_effect = True

    async def execute(self, step: Any, ctx: StepContext) -> Outcome:
        raise StepFailed("a for_each step runs through the runner")

    @staticmethod
    async def _started(step: ForEachStep, ctx: StepContext, body: Body) -> list[Any]:
        """The loop's items: recorded when it started, or evaluated and recorded now."""
        recorded = ctx.run.steps.get(ctx.step_id)
        if recorded is not None and recorded.status == "running" and "items" in recorded.output:
            return list(recorded.output.get("items") or [])  # a resumed loop
        items = await _items(step, ctx)
        # Started already (a `timeout` recorded its deadline): keep that, and its start.
        before = recorded if recorded is not None and recorded.status == "running" else None
        started = StepResult(
            step_id=ctx.step_id,
            type=step.type,
            status="running",
            output={**(before.output if before else {}), "items": items, "count": len(items)},
            started_at=before.started_at if before and before.started_at else ctx.now(),
        )
        await body.record(started)
        return items

    async def run_body(self, step: ForEachStep, ctx: StepContext, body: Body) -> Done:
        items = await self._started(step, ctx, body)
        scopes = [ctx.scope.iteration(ctx.step_id, i, item) for i, item in enumerate(items)]

        def job(index: int) -> Any:
            return lambda: body.run(step.steps, scopes[index])

        errors = await body.group([job(i) for i in range(len(items))], step.concurrency)
        if errors:
            failed = [i for i in range(len(items)) if self._failed(ctx.run, scopes[i].key(""))]
            which = f"item {failed[0] + 1}" if failed else "an item"
            raise StepFailed(f"{which} of {len(items)} failed: {errors[0]}")
        results = [_outputs_under(ctx.run, scope.key("")) for scope in scopes]
        return Done({"count": len(items), "results": results})

    @staticmethod
    def _failed(run: RunRecord, prefix: str) -> bool:
        return any(
            key.startswith(prefix) and result.status == "failed"
            for key, result in run.steps.items()
        )


def _branch_ids(steps: Sequence[Any]) -> list[str]:
    """The ids of a branch's steps, nested ones included."""
    ids: list[str] = []
    for step in steps:
        ids.append(step.id)
        for _name, _where, body in nested_bodies(step):
            ids += _branch_ids(body)
    return ids


class ParallelExecutor(_NoResume):
    """Starts every branch at once; ends when all ended, failing (then) if one failed.
    Output: `branches` (per branch, step id → output)."""

    # Its own start and end touch nothing outside (each body step is judged by itself).
    no_outside_effect = True

    async def execute(self, step: Any, ctx: StepContext) -> Outcome:
        raise StepFailed("a parallel step runs through the runner")

    async def run_body(self, step: ParallelStep, ctx: StepContext, body: Body) -> Done:
        scope = ctx.scope

        def job(branch: list[Any]) -> Any:
            return lambda: body.run(branch, scope)

        errors = await body.group([job(b) for b in step.branches], len(step.branches))
        run = ctx.run
        if errors:
            failed = [
                n + 1
                for n, branch in enumerate(step.branches)
                if any(
                    run.steps.get(scope.key(i)) is not None
                    and run.steps[scope.key(i)].status == "failed"
                    for i in _branch_ids(branch)
                )
            ]
            names = ", ".join(str(n) for n in failed) or "?"
            plural = "es" if len(failed) > 1 else ""
            raise StepFailed(f"branch{plural} {names} of {len(step.branches)} failed: {errors[0]}")
        outputs = []
        for branch in step.branches:
            found = {i: run.steps.get(scope.key(i)) for i in _branch_ids(branch)}
            outputs.append({i: dict(r.output) for i, r in found.items() if r is not None})
        return Done({"branches": outputs})


__all__ = ["ForEachExecutor", "ParallelExecutor", "SwitchExecutor"]

"""The `try` step (SPEC §12): run `steps`; when one fails, run `catch` (its templates see
`error.step` and `error.message`); then `finally`, whatever happened.

The body runs through the runner's `Body.attempt`, so a failed body step is recorded
(`failed`) and the run goes on to `catch`. After a wait or a restart the body is run
again: finished steps are skipped and the recorded failure is found again, so `catch`
sees the same error and resumes where it waited. A failure in `catch` or `finally` fails
the try step, and so the run; a body failure without `catch` too, after `finally`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flows.definition.steps import TryStep
from flows.run_model import Body, Done, Outcome, Scope, StepContext, StepError, StepFailed


def _error_scope(scope: Scope, error: StepError) -> Scope:
    return Scope(scope.prefixes, {**scope.locals, "error": _error_view(error)})


def _error_view(error: StepError) -> dict[str, Any]:
    step = error.step.rsplit("/", 1)[-1]
    return {"step": step, "message": error.message, "key": error.step}


class TryExecutor:
    """Output: `caught` (a body step failed and catch ran) and `error` (that failure:
    `step`, `message`), so later steps can look at what happened."""

    # Its own start and end touch nothing outside (each body step is judged by itself).
    no_outside_effect = True

    async def execute(self, step: Any, ctx: StepContext) -> Outcome:
        raise StepFailed("a try step runs through the runner")

    async def resume(self, step: Any, ctx: StepContext, payload: Mapping[str, Any]) -> Outcome:
        raise StepFailed("a try step does not wait itself, so it cannot be resumed")

    async def run_body(self, step: TryStep, ctx: StepContext, body: Body) -> Done:
        scope = ctx.scope
        error = await body.attempt(step.steps, scope)
        catch_error: StepError | None = None
        if error is not None and step.catch:
            catch_error = await body.attempt(step.catch, _error_scope(scope, error))
        final_error = await body.attempt(step.finally_, scope) if step.finally_ else None
        for where, failed in (("catch", catch_error), ("finally", final_error)):
            if failed is not None:
                raise StepFailed(f"{where} step {failed.step} failed: {failed.message}")
        if error is not None and not step.catch:
            raise StepFailed(f"step {error.step} failed: {error.message}")
        view = _error_view(error) if error is not None else None
        return Done({"caught": error is not None, "error": view})


__all__ = ["TryExecutor"]

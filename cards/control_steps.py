"""`/flow show` lines for the control-flow steps (SPEC §11)."""

from __future__ import annotations

from typing import Any

from cards.common import escape

CONTROL_STEPS = ("for_each", "parallel", "switch", "call_flow", "try")


def control_summary(step: Any) -> str:
    """One line: what the step does (plain text, escaped by the caller)."""
    if step.type == "for_each":
        items = step.items if isinstance(step.items, str) else f"{len(step.items)} items"
        at_once = f", {step.concurrency} at a time" if step.concurrency > 1 else ", in order"
        return f"for each of {items}{at_once}"
    if step.type == "parallel":
        return f"{len(step.branches)} branches at once"
    if step.type == "switch":
        return f"switch on {step.value}"
    if step.type == "try":
        return (
            "try steps"
            + (", catch failures" if step.catch else "")
            + (", then finally" if step.finally_ else "")
        )
    names = ", ".join(step.inputs) if step.inputs else "no inputs"
    wait = "and wait for it" if step.wait else "without waiting"
    return f"run flow {step.flow} ({names}) {wait}"


def control_bodies(step: Any) -> list[tuple[str, list[Any]]]:
    """The nested step lists, each with its label (`each item`, `branch 2`, `case sales`)."""
    if step.type == "for_each":
        return [("each item", step.steps)]
    if step.type == "parallel":
        return [(f"branch {n + 1}", body) for n, body in enumerate(step.branches)]
    if step.type == "switch":
        cases = [(f"case {escape(key)}", body) for key, body in step.cases.items()]
        return cases + ([("default", step.default)] if step.default else [])
    if step.type == "try":
        bodies = [("try", step.steps), ("catch", step.catch), ("finally", step.finally_)]
        return [(label, body) for label, body in bodies if body]
    return []


def failure_policy(step: Any) -> str:
    """` (retry 3 tries from 1s, timeout 30s, on error continue)` or ``."""
    parts = []
    retry = getattr(step, "retry", None)
    if retry is not None:
        parts.append(f"retry {retry.attempts} tries from {retry.backoff} up to {retry.max_backoff}")
    timeout = getattr(step, "timeout", None)
    if isinstance(timeout, str) and step.type not in ("approval", "ask"):
        parts.append(f"timeout {timeout}")
    if getattr(step, "on_error", "fail") == "continue":
        parts.append("on error continue")
    return f" ({', '.join(parts)})" if parts else ""

"""Sandboxed Jinja templates for flow text fields.

Every text field of a step is a template over a context the runner builds from plain
data::

    {"inputs": {...}, "trigger": {...}, "steps": {step_id: {...outputs}},
     "run": {"id", "started_by", "flow", ...}, "vars": {...}}

Templates run in an immutable sandbox: no access to Python internals (``_``-prefixed or
interpreter attributes), no mutation of lists and dicts, no imports or includes. They also
cannot exhaust the bot: output is capped at :data:`MAX_OUTPUT` characters, ``range()`` at
:data:`MAX_RANGE` items, loops at :data:`MAX_LOOP_ITERATIONS` iterations per render, and
every value a template builds (repetition, concatenation, literals, filter and method
results) at :data:`MAX_VALUE_SIZE` characters, and integers at :data:`MAX_INT_BITS` bits.
Each render also has a CPU time budget, checked in every sandbox hook (loops, calls,
operators, attributes, output): :data:`DEFAULT_SECONDS`, or what :func:`time_limit` gives
(`flows.template_worker` renders step fields in worker threads with 250 ms each).
"""

from __future__ import annotations

import contextvars
import functools
import gc
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from string import Formatter
from typing import Any

import jinja2
from jinja2 import nodes
from jinja2.environment import Template, TemplateExpression
from jinja2.runtime import Context, StrictUndefined, Undefined
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.utils import Namespace, pass_eval_context
from jinja2.visitor import NodeTransformer

__all__ = [
    "CONTEXT_NAMES",
    "DEFAULT_SECONDS",
    "ENV",
    "MAX_INT_BITS",
    "MAX_LOOP_ITERATIONS",
    "MAX_OUTPUT",
    "MAX_RANGE",
    "MAX_VALUE_SIZE",
    "TemplateError",
    "check_syntax",
    "is_truthy",
    "render_text",
    "render_value",
    "time_limit",
]

#: Top-level names the runner puts in the context of every template.
CONTEXT_NAMES: tuple[str, ...] = ("inputs", "trigger", "steps", "run", "vars")

#: CPU time of a render not given another by :func:`time_limit` (one on the event loop,
#: which must not be held longer).
DEFAULT_SECONDS = 0.08
MAX_OUTPUT = 100_000
MAX_RANGE = 10_000
MAX_LOOP_ITERATIONS = 100_000
MAX_VALUE_SIZE = 1_000_000
# Everything a render produces, including text buffered by macros and ``{% set %}``
# blocks that may be discarded later.
_MAX_PRODUCED = 1_000_000

_FALSY_STRINGS = frozenset({"false", "no", "0", "", "none", "off"})


class TemplateError(Exception):
    """A template could not be compiled or rendered. The message is short and human."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class _GcTime(threading.local):
    """This thread's CPU time spent collecting garbage: a full collection (~70 ms here)
    can land in any render, and it is not the template's doing."""

    spent = 0.0
    started: float | None = None


_GC_TIME = _GcTime()


def _on_gc(phase: str, info: dict[str, Any]) -> None:
    if phase == "start":
        _GC_TIME.started = time.thread_time()
    elif _GC_TIME.started is not None:
        _GC_TIME.spent += time.thread_time() - _GC_TIME.started
        _GC_TIME.started = None


def _template_cpu() -> float:
    """The thread's CPU clock without its garbage collections."""
    return time.thread_time() - _GC_TIME.spent


def _template_wall() -> float:
    """A wall clock without this thread's garbage collections (they take as long)."""
    return time.monotonic() - _GC_TIME.spent


def _watch_gc() -> None:
    if _on_gc not in gc.callbacks:  # registered by the first budget, not at import
        gc.callbacks.append(_on_gc)


class _Budget:
    __slots__ = ("cpu_deadline", "loops", "produced", "seconds", "wall_deadline")

    def __init__(self, seconds: float | None = None) -> None:
        self.loops = MAX_LOOP_ITERATIONS
        self.produced = _MAX_PRODUCED
        self.seconds = seconds
        if seconds is not None:
            _watch_gc()
        self.cpu_deadline = _template_cpu() + seconds if seconds is not None else None
        # A thread starved of the interpreter lock uses no CPU: bound its wall time too.
        self.wall_deadline = _template_wall() + seconds * 20 if seconds is not None else None

    def tick(self) -> None:
        """Raise once the render has used its time (checked in every sandbox hook)."""
        if self.cpu_deadline is None:
            return
        if _template_cpu() > self.cpu_deadline or (
            self.wall_deadline is not None and _template_wall() > self.wall_deadline
        ):
            ms = round((self.seconds or 0) * 1000)
            raise TemplateError(f"template took too long (over {ms} ms)")


_BUDGET: contextvars.ContextVar[_Budget | None] = contextvars.ContextVar(
    "flowbot_template_budget", default=None
)


def _budget() -> _Budget:
    budget = _BUDGET.get()
    if budget is None:  # used outside render_text / render_value: fresh limits per call
        budget = _Budget()
    return budget


@contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    """Renders inside get ``seconds`` of CPU time in all (the thread's CPU clock, so the
    limit holds in a worker thread that shares the interpreter); over it a render raises
    TemplateError("template took too long …")."""
    token = _BUDGET.set(_Budget(seconds))
    try:
        yield
    finally:
        _BUDGET.reset(token)


def _tick() -> None:
    budget = _BUDGET.get()
    if budget is not None:
        budget.tick()


@contextmanager
def _render_scope() -> Iterator[None]:
    """Fresh size and loop limits; the time limit of the enclosing :func:`time_limit`."""
    outer = _BUDGET.get()
    # Outside `time_limit` (a render on the event loop): :data:`DEFAULT_SECONDS`.
    budget = _Budget(DEFAULT_SECONDS if outer is None else None)
    if outer is not None:
        budget.seconds = outer.seconds
        budget.cpu_deadline, budget.wall_deadline = outer.cpu_deadline, outer.wall_deadline
    token = _BUDGET.set(budget)
    try:
        yield
    finally:
        _BUDGET.reset(token)


def _check_size(value: Any, limit: int = MAX_VALUE_SIZE) -> Any:
    """Raise if ``value`` (strings and containers, shared parts counted each time) is too big.

    Runs in time bounded by ``limit`` whatever the shape of ``value``.
    """
    total = 0
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, (str, bytes)):
            total += len(item)
        elif isinstance(item, Mapping):
            total += 1 + 2 * len(item)
            if total <= limit:
                for key, val in item.items():
                    stack.append(key)
                    stack.append(val)
        elif isinstance(item, (list, tuple, set, frozenset, range)):
            total += 1 + len(item)
            if total <= limit and not isinstance(item, range):
                stack.extend(item)
        else:
            total += 1
        if total > limit:
            raise TemplateError(f"value too large (over {limit} characters)")
    return value


def _check_int(value: Any, what: str, limit: int = MAX_OUTPUT) -> None:
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > limit:
        raise TemplateError(f"{what} too large (at most {limit})")


_PERCENT_SPEC = re.compile(r"%(?:\([^)]*\))?[-#0 +]*(\*|\d+)?(?:\.(\*|\d+))?")
_NUMBERS = re.compile(r"\d+")


def _check_percent_format(fmt: str) -> None:
    for width, precision in _PERCENT_SPEC.findall(fmt):
        for part in (width, precision):
            if part == "*" or (part and int(part) > MAX_OUTPUT):
                raise TemplateError("format width too large")


def _check_brace_format(fmt: str) -> None:
    try:
        parsed = list(Formatter().parse(fmt))
    except ValueError:
        return  # str.format raises its own error
    for _literal, _field, spec, _conversion in parsed:
        if spec and ("{" in spec or any(int(n) > MAX_OUTPUT for n in _NUMBERS.findall(spec))):
            raise TemplateError("format width too large")


def _safe_range(*args: int) -> range:
    rng = range(*args)
    if len(rng) > MAX_RANGE:
        raise TemplateError(f"range() is limited to {MAX_RANGE} items")
    return rng


class _Namespace(Namespace):
    """``namespace()`` whose attributes cannot hold oversized values."""

    def __setitem__(self, name: str, value: Any) -> None:
        _check_size(value)
        super().__setitem__(name, value)


def _finalize_value(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, Undefined):
        return str(value)  # raises for StrictUndefined / unsafe attributes
    _check_size(value)
    text = value if isinstance(value, str) else str(value)
    budget = _budget()
    budget.tick()
    budget.produced -= len(text)
    if budget.produced < 0:
        raise TemplateError(f"template output too large (over {MAX_OUTPUT} characters)")
    return text


@pass_eval_context
def _finalize(_eval_ctx: Any, value: Any) -> str:
    # pass_eval_context keeps jinja from folding constants at compile time, so every
    # piece of output, constant or not, is counted against the render's budget.
    return _finalize_value(value)


def _guard_filter(name: str, func: Callable[..., Any]) -> Callable[..., Any]:
    passes_arg = getattr(func, "jinja_pass_arg", None) is not None

    @functools.wraps(func)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        _tick()
        value_at = 1 if passes_arg else 0
        value, params = (
            args[value_at] if len(args) > value_at else None,
            args[value_at + 1 :],
        )
        if name in ("center", "indent", "batch", "slice", "tojson", "truncate", "wordwrap"):
            for param in (*params, *kwargs.values()):
                _check_int(param, f"{name}() argument")
        elif name == "format" and isinstance(value, str):
            _check_percent_format(value)
        elif name == "join" and value is not None:
            items = list(value)
            sep = params[0] if params else kwargs.get("d", "")
            _estimate(len(str(sep)) * max(len(items) - 1, 0) + sum(_rough_len(i) for i in items))
            args = (*args[:value_at], items, *params)
        elif name == "replace" and isinstance(value, str) and len(params) >= 2:
            _estimate_replace(value, params[0], params[1])
        result = func(*args, **kwargs)
        if not isinstance(result, Iterator):
            _check_size(result)
        return result

    return guarded


def _rough_len(item: Any) -> int:
    return len(item) if isinstance(item, str) else len(str(_check_size(item)))


def _estimate(size: int) -> None:
    if size > MAX_VALUE_SIZE:
        raise TemplateError(f"value too large (over {MAX_VALUE_SIZE} characters)")


def _estimate_replace(text: str, old: Any, new: Any) -> None:
    if not isinstance(old, str) or not isinstance(new, str):
        return
    hits = text.count(old) if old else len(text) + 1
    _estimate(len(text) + hits * max(len(new) - len(old), 0))


#: Integers a template computes stay below this many bits (multiplying two of them is
#: one C call whose time grows with their size; 2**64 and far beyond are fine).
MAX_INT_BITS = 100_000


def _check_int_operands(operator: str, left: Any, right: Any) -> None:
    if not (isinstance(left, int) and isinstance(right, int)):
        return
    if operator == "*" and left.bit_length() + right.bit_length() > MAX_INT_BITS:
        raise TemplateError("number too large")
    if operator == "+" and max(left.bit_length(), right.bit_length()) >= MAX_INT_BITS:
        raise TemplateError("number too large")


_PADDING_METHODS = frozenset({"center", "ljust", "rjust", "zfill"})


class _Guards(NodeTransformer):
    """Rewrite a template's syntax tree so loops, concatenation, literals and constant
    text go through the environment's budget checks."""

    @staticmethod
    def _call(attr: str, arg: nodes.Node, lineno: int | None) -> nodes.Call:
        return nodes.Call(
            nodes.EnvironmentAttribute(attr), [arg], [], None, None, lineno=lineno or 1
        )

    def visit_For(self, node: nodes.For, *args: Any, **kwargs: Any) -> nodes.Node:
        self.generic_visit(node)
        node.iter = self._call("flowbot_iter", node.iter, node.lineno)
        return node

    def visit_Concat(self, node: nodes.Concat, *args: Any, **kwargs: Any) -> nodes.Node:
        self.generic_visit(node)
        return self._call(
            "flowbot_concat", nodes.Tuple(list(node.nodes), "load", lineno=node.lineno), node.lineno
        )

    def _literal(self, node: nodes.Node) -> nodes.Node:
        self.generic_visit(node)
        return self._call("flowbot_value", node, node.lineno)

    def visit_List(self, node: nodes.List, *args: Any, **kwargs: Any) -> nodes.Node:
        return self._literal(node)

    def visit_Dict(self, node: nodes.Dict, *args: Any, **kwargs: Any) -> nodes.Node:
        return self._literal(node)

    def visit_Tuple(self, node: nodes.Tuple, *args: Any, **kwargs: Any) -> nodes.Node:
        if node.ctx != "load":
            return node
        return self._literal(node)

    def visit_TemplateData(self, node: nodes.TemplateData, *args: Any, **kwargs: Any) -> nodes.Node:
        return self._call("flowbot_text", nodes.Const(node.data), node.lineno)


class FlowEnvironment(ImmutableSandboxedEnvironment):
    """The immutable sandbox with resource limits. Use the module-level :data:`ENV`."""

    intercepted_binops = frozenset({"*", "**", "%", "+"})

    def __init__(self) -> None:
        super().__init__(
            undefined=StrictUndefined,
            autoescape=False,
            finalize=_finalize,
            extensions=(),
            auto_reload=False,
        )
        self.globals.pop("lipsum", None)
        self.globals["range"] = _safe_range
        self.globals["namespace"] = _Namespace
        self.filters = {name: _guard_filter(name, f) for name, f in self.filters.items()}

    # --- hooks called by the rewritten syntax tree -------------------------------------
    def flowbot_iter(self, iterable: Iterable[Any]) -> Iterator[Any]:
        budget = _budget()
        for item in iterable:
            budget.tick()
            budget.loops -= 1
            if budget.loops < 0:
                raise TemplateError(f"too many loop iterations (over {MAX_LOOP_ITERATIONS})")
            yield item

    def flowbot_concat(self, parts: tuple[Any, ...]) -> str:
        _tick()
        texts = [str(_check_size(part)) for part in parts]
        _estimate(sum(len(t) for t in texts))
        return "".join(texts)

    def flowbot_value(self, value: Any) -> Any:
        _tick()
        return _check_size(value)

    def flowbot_text(self, text: str) -> str:
        return text

    # --- sandbox overrides ---------------------------------------------------------------
    def _generate(  # type: ignore[override]
        self,
        source: nodes.Template,
        name: str | None,
        filename: str | None,
        defer_init: bool = False,
    ) -> str:
        source = _Guards().visit(source)
        return super()._generate(source, name, filename, defer_init=defer_init)

    def getattr(self, obj: Any, attribute: str) -> Any:
        _tick()
        return super().getattr(obj, attribute)

    def getitem(self, obj: Any, argument: Any) -> Any:
        _tick()
        return super().getitem(obj, argument)

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        _tick()
        _check_int_operands(operator, left, right)
        if operator == "*":
            for seq, times in ((left, right), (right, left)):
                if isinstance(seq, (str, list, tuple)) and isinstance(times, int):
                    size = len(seq) if isinstance(seq, str) else len(str(_check_size(seq)))
                    _estimate(size * max(times, 0))
        elif operator == "**":
            if isinstance(left, int) and isinstance(right, int) and abs(left) > 1:
                if right * max(abs(left).bit_length(), 1) > 100_000:
                    raise TemplateError("number too large")
        elif operator == "%" and isinstance(left, str):
            _check_percent_format(left)
        return _check_size(super().call_binop(context, operator, left, right))

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        owner = getattr(value, "__self__", None)
        if isinstance(owner, str) and getattr(value, "__name__", "") in ("format", "format_map"):
            _check_brace_format(owner)
        return super().wrap_str_format(value)

    def call(  # type: ignore[override]
        self, context: Context, obj: Any, /, *args: Any, **kwargs: Any
    ) -> Any:
        _tick()
        owner = getattr(obj, "__self__", None)
        if isinstance(owner, str):
            method = getattr(obj, "__name__", "")
            if method in _PADDING_METHODS:
                for param in (*args, *kwargs.values()):
                    _check_int(param, f"{method}() width")
            elif method == "expandtabs":
                for param in (*args, *kwargs.values()):
                    _check_int(param, "expandtabs() size", 64)
            elif method == "replace" and len(args) >= 2:
                _estimate_replace(owner, args[0], args[1])
            elif method == "join" and args:
                items = list(args[0])
                _estimate(len(owner) * max(len(items) - 1, 0) + sum(_rough_len(i) for i in items))
                args = (items, *args[1:])
        result = super().call(context, obj, *args, **kwargs)
        if not isinstance(result, (Iterator, Undefined)):
            _check_size(result)
        return result


#: The single sandboxed environment every flow template is compiled with.
ENV = FlowEnvironment()


@dataclass(frozen=True)
class _Expression:
    source: str
    compiled: TemplateExpression


def _describe(exc: BaseException) -> str:
    if isinstance(exc, TemplateError):
        return exc.message
    if isinstance(exc, jinja2.TemplateSyntaxError):
        where = f" (line {exc.lineno})" if exc.lineno and exc.lineno > 1 else ""
        return f"template syntax error: {exc.message}{where}"
    if isinstance(exc, jinja2.TemplateError):
        return exc.message or type(exc).__name__
    if isinstance(exc, RecursionError):
        return "template recursion too deep"
    if isinstance(exc, MemoryError):
        return "template used too much memory"
    message = str(exc)
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__


@functools.lru_cache(maxsize=1024)
def _template(source: str) -> Template:
    try:
        return ENV.from_string(source)
    except Exception as exc:
        raise TemplateError(_describe(exc)) from None


_SINGLE = re.compile(r"\A\s*\{\{[-+]?(?P<expr>.*?)[-+]?\}\}\s*\Z", re.DOTALL)


@functools.lru_cache(maxsize=1024)
def _single_expression(source: str) -> _Expression | None:
    """The compiled expression if ``source`` is exactly one ``{{ expr }}``, else None."""
    match = _SINGLE.match(source)
    if match is None:
        return None
    try:
        tree = ENV.parse(source)
    except jinja2.TemplateSyntaxError as exc:
        raise TemplateError(_describe(exc)) from None
    if len(tree.body) != 1 or not isinstance(tree.body[0], nodes.Output):
        return None
    children = [
        child
        for child in tree.body[0].nodes
        if not (isinstance(child, nodes.TemplateData) and not child.data.strip())
    ]
    if len(children) != 1 or isinstance(children[0], nodes.TemplateData):
        return None
    expr = match.group("expr")
    try:
        compiled = ENV.compile_expression(expr, undefined_to_none=False)
    except jinja2.TemplateSyntaxError:
        return None  # e.g. "{{ '}}' }}": render it as text instead
    return _Expression(expr, compiled)


def check_syntax(source: str) -> None:
    """Raise :class:`TemplateError` if ``source`` is not a valid template."""
    _template(source)


def render_text(source: str, context: Mapping[str, Any]) -> str:
    """Render ``source`` as text. Undefined names and attributes raise TemplateError."""
    template = _template(source)
    chunks: list[str] = []
    size = 0
    try:
        with _render_scope():
            for chunk in template.generate(dict(context)):
                size += len(chunk)
                if size > MAX_OUTPUT:
                    raise TemplateError(f"template output too large (over {MAX_OUTPUT} characters)")
                chunks.append(chunk)
    except Exception as exc:
        raise TemplateError(_describe(exc)) from None
    return "".join(chunks)


def _native(value: Any) -> Any:
    if isinstance(value, Undefined):
        value._fail_with_undefined_error()
    if value is None or isinstance(value, (bool, int, float)):
        return value
    if isinstance(value, str):
        return str(value)  # plain str, also for Markup
    if isinstance(value, Mapping):
        return {_native(k): _native(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, range)):
        return [_native(v) for v in value]
    return str(value)


def render_value(source: Any, context: Mapping[str, Any]) -> Any:
    """Render a value that may hold templates, keeping native types where possible.

    A string that is exactly one ``{{ expr }}`` evaluates to the expression's value
    (number, bool, list, dict, None…); other strings render as text; dicts and lists are
    rendered recursively; anything else is returned unchanged.
    """
    if isinstance(source, str):
        expression = _single_expression(source)
        if expression is None:
            return render_text(source, context)
        try:
            with _render_scope():
                result = _native(_check_size(expression.compiled(dict(context))))
        except Exception as exc:
            raise TemplateError(_describe(exc)) from None
        if isinstance(result, str) and len(result) > MAX_OUTPUT:
            raise TemplateError(f"template output too large (over {MAX_OUTPUT} characters)")
        return result
    if isinstance(source, Mapping):
        return {key: render_value(value, context) for key, value in source.items()}
    if isinstance(source, (list, tuple)):
        return [render_value(value, context) for value in source]
    return source


def is_truthy(value: Any) -> bool:
    """Python truthiness, except that the strings "false", "no", "0", "", "none" and "off"
    (any case, surrounding spaces ignored) are false."""
    if isinstance(value, Undefined):
        return False
    if isinstance(value, str):
        return value.strip().lower() not in _FALSY_STRINGS
    return bool(value)

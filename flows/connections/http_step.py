"""The `http_request` step: one request through a connection, with its secret turned into
headers here and nowhere else, and scrubbed from everything returned or raised."""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from flows.connections.model import (
    HEADER_NAME,
    METHODS,
    RESERVED_HEADERS,
    RUN_CHOICES_KEY,
    ConnectionRecord,
)
from flows.connections.scrubbing import scrub_forms
from flows.definition import HttpRequestStep
from flows.http_policy import (
    DEFAULT_TIMEOUT,
    MAX_RESPONSE_BYTES,
    MAX_TIMEOUT,
    HttpClient,
    HttpFailed,
    HttpRefused,
    HttpRequest,
    HttpResponse,
    HttpTooLarge,
    join_url,
    origin_of,
)
from flows.permissions import resolve_access
from flows.ports import Directory
from flows.retries import retry_after_seconds, transient_status
from flows.runner import Done, Outcome, StepContext, StepFailed
from flows.secrets import SecretBox, SecretUnavailable
from flows.triggers import DEPTH_HEADER

if TYPE_CHECKING:
    from flows.connections.core import ConnectionCore

log = logging.getLogger(__name__)

# The replacement for a secret found in a response or an error.
REDACTED = "••••"
# Values shorter than this are not scrubbed from responses (they would match everywhere).
MIN_SCRUB_LENGTH = 4
_LINE_BREAKS = "\r\n\x00"


IDEMPOTENCY_HEADER = "Idempotency-Key"


def idempotency_key(ctx: StepContext) -> str:
    """`<run id>:<step key>`: the step key names the iteration in a for_each body
    (`loop[2]/call`), and a called flow's run id derives from its caller's step."""
    return f"{ctx.run.id}:{ctx.step_id}"


class HttpStepFailed(Exception):
    """An http_request step failed; the message is safe to show and to store in the run.
    `status` is the HTTP status for a non-2xx answer, None when there was no answer."""

    def __init__(
        self,
        message: str,
        status: int | None = None,
        *,
        transient: bool = False,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        # Worth trying again (408, 429, 5xx, a timeout, a lost connection: flows.retries).
        self.transient = transient or transient_status(status)
        self.retry_after = retry_after


@dataclass(frozen=True)
class StepRequest:
    """What a step asks for, already rendered; `path` is joined to the base URL."""

    method: str = "GET"
    path: str = ""
    headers: Mapping[str, Any] | None = None
    query: Mapping[str, Any] | None = None
    json_body: Any = None
    send_json: bool = False
    timeout: float | None = None


# --------------------------------------------------------------------------- secrets


def auth_headers(record: ConnectionRecord, values: Mapping[str, str]) -> dict[str, str]:
    if record.kind == "http_bearer":
        return {"Authorization": f"Bearer {values['token']}"}
    if record.kind == "http_header":
        assert record.header_name is not None
        return {record.header_name: values["value"]}
    pair = f"{values['username']}:{values.get('password', '')}".encode()
    return {"Authorization": "Basic " + base64.b64encode(pair).decode("ascii")}


def scrub_list(values: Mapping[str, str], headers: Mapping[str, str]) -> list[str]:
    candidates = {v for v in values.values() if len(v) >= MIN_SCRUB_LENGTH}
    for value in headers.values():
        candidates.add(value)
        if " " in value:
            candidates.add(value.split(" ", 1)[1])
    # Longest first: "Bearer abc" before "abc".
    return sorted((c for c in candidates if len(c) >= MIN_SCRUB_LENGTH), key=len, reverse=True)


def scrub(value: Any, secrets: Sequence[str]) -> Any:
    """Replace every occurrence of a secret, verbatim or encoded (base64, URL-safe base64,
    hex, percent-encoding) and in any letter case, in strings nested in lists and dicts
    (`flows.connections.scrubbing`)."""
    if not secrets:
        return value
    return scrub_forms(value, secrets, REDACTED, MIN_SCRUB_LENGTH)


# --------------------------------------------------------------------------- the request


def query_pairs(query: Mapping[str, Any] | None) -> tuple[tuple[str, str], ...]:
    pairs: list[tuple[str, str]] = []
    for key, value in (query or {}).items():
        items = value if isinstance(value, list | tuple) else [value]
        for item in items:
            if item is None:
                continue
            text = ("true" if item else "false") if isinstance(item, bool) else str(item)
            pairs.append((str(key), text))
    return tuple(pairs)


def step_headers(headers: Mapping[str, Any] | None) -> dict[str, str]:
    """The step's own headers; those the transport owns, and line breaks, are refused."""
    checked: dict[str, str] = {}
    for name, value in (headers or {}).items():
        name = str(name).strip()
        if not HEADER_NAME.match(name) or name.lower() in RESERVED_HEADERS:
            raise HttpStepFailed(f"the header {name!r} cannot be set by a step")
        text = "" if value is None else str(value)
        if any(ch in text for ch in _LINE_BREAKS):
            raise HttpStepFailed(f"the header {name} contains a line break")
        checked[name] = text
    return checked


def with_credential(headers: dict[str, str], auth: Mapping[str, str]) -> dict[str, str]:
    """The connection's credential wins over any header of the same name."""
    auth_names = {k.lower() for k in auth}
    merged = {k: v for k, v in headers.items() if k.lower() not in auth_names}
    merged.update(auth)
    return merged


def _json_body(step: StepRequest, headers: dict[str, str]) -> bytes | None:
    if not step.send_json:
        return None
    if not any(k.lower() == "content-type" for k in headers):
        headers["Content-Type"] = "application/json"
    return json.dumps(step.json_body, default=str).encode("utf-8")


def _parsed_body(response: HttpResponse) -> Any:
    """JSON when it parses, else the text."""
    text = response.body.decode("utf-8", errors="replace")
    try:
        return json.loads(text) if text.strip() else text
    except ValueError:
        return text


def _wait(timeout: float | None) -> float:
    return DEFAULT_TIMEOUT if timeout is None else max(0.1, min(float(timeout), MAX_TIMEOUT))


class ConnectionCaller:
    """Sends steps' requests through connections (the only reader of decrypted values)."""

    def __init__(
        self,
        box: SecretBox,
        http: HttpClient | None,
        max_response_bytes: int = MAX_RESPONSE_BYTES,
    ) -> None:
        self.box = box
        self.http = http
        self.max_response_bytes = max_response_bytes

    async def request(self, record: ConnectionRecord, step: StepRequest) -> dict[str, Any]:
        """Send one request through a connection; returns {status, body, headers}.

        The path may not change the base URL's scheme, host or port. A non-2xx status
        raises HttpStepFailed with the status; nothing returned or raised contains the
        connection's secret."""
        if self.http is None:
            raise HttpStepFailed("outbound HTTP is not configured")
        method = (step.method or "GET").upper()
        if method not in METHODS:
            raise HttpStepFailed(f"unsupported HTTP method {method}")
        try:
            values = self.box.decrypt(record.ciphertext)
        except SecretUnavailable as exc:
            raise HttpStepFailed(f"connection “{record.name}”: {exc}") from None
        auth = auth_headers(record, values)
        secrets = scrub_list(values, auth)
        try:
            return await self._send(self.http, record, auth, secrets, method, step)
        except HttpStepFailed as exc:
            message = str(scrub(str(exc), secrets))
            raise HttpStepFailed(
                message, exc.status, transient=exc.transient, retry_after=exc.retry_after
            ) from None
        except Exception as exc:
            # Whatever went wrong, its text and traceback stay here: they may hold a secret.
            raise HttpStepFailed(f"the request failed ({type(exc).__name__})") from None

    async def _send(
        self,
        http: HttpClient,
        record: ConnectionRecord,
        auth: Mapping[str, str],
        secrets: Sequence[str],
        method: str,
        step: StepRequest,
    ) -> dict[str, Any]:
        try:
            url = join_url(record.base_url, str(step.path or ""))
        except HttpRefused as exc:
            raise HttpStepFailed(str(exc)) from None
        headers = step_headers(step.headers)
        body = _json_body(step, headers)
        headers.setdefault("Accept", "application/json, */*;q=0.5")
        request = HttpRequest(
            method=method,
            url=url,
            headers=tuple(with_credential(headers, auth).items()),
            query=query_pairs(step.query),
            body=body,
            timeout=_wait(step.timeout),
            max_response_bytes=self.max_response_bytes,
        )
        host = origin_of(url).host
        try:
            response = await http.send(request)
        except (HttpRefused, HttpFailed) as exc:
            # A timeout or a lost connection may pass; a refusal or a size cap won't.
            lasting = isinstance(exc, (HttpRefused, HttpTooLarge))
            raise HttpStepFailed(str(exc), transient=not lasting) from None
        output = {
            "status": response.status,
            "body": scrub(_parsed_body(response), secrets),
            "headers": scrub(dict(response.headers), secrets),
        }
        log.info(
            "http_request %s %s via connection %s: %d", method, host, record.id, response.status
        )
        if not 200 <= response.status < 300:
            raise HttpStepFailed(
                f"{method} {host} answered HTTP {response.status}",
                status=response.status,
                retry_after=retry_after_seconds(response.headers.get("retry-after")),
            )
        return output


# --------------------------------------------------------------------------- the step


class HttpRequestExecutor:
    """The `http_request` step (registered in the runner's ExecutorRegistry by bot.app).

    Renders path, headers, query and json (templates), picks the slot's connection for this
    run (`ConnectionService.connection_for_step`: the runner's own for a slot "provided by
    the run-only user" on a run they started, else the one attached to the slot) and sends
    the request through it, with `X-Flowbot-Depth: <run depth>` so that a chain of flows
    through webhooks stops at the maximum depth. Outputs `status`, `body` (JSON when it
    parses, else text) and `headers`; a non-2xx status fails the step with the status."""

    def __init__(self, service: ConnectionCore, directory: Directory) -> None:
        self.service = service
        self.directory = directory

    async def execute(self, step: HttpRequestStep, ctx: StepContext) -> Outcome:
        run = ctx.run
        flow = await self.service.flows.get(run.team_id, run.flow_id)
        if flow is None:
            raise StepFailed("the flow no longer exists")
        # Only a person who started the run by hand can have provided a connection; a
        # schedule or an event runs with the connections attached to the slots.
        starter = run.started_by if run.trigger.type == "manual" else None
        starter_is_owner = True
        if starter:
            access = await resolve_access(flow, starter, self.directory)
            starter_is_owner = access.is_owner
        choices = run.trigger.data.get(RUN_CHOICES_KEY) or {}
        request = await self._rendered(step, ctx)
        try:
            record = await self.service.connection_for_step(
                flow,
                step.connection,
                starter,
                {str(k): str(v) for k, v in choices.items()} if isinstance(choices, dict) else {},
                starter_is_owner,
            )
            output = await self.service.caller.request(record, request)
        except HttpStepFailed as exc:
            raise StepFailed(
                str(exc),
                transient=exc.transient,
                retry_after=exc.retry_after,
                output={"status": exc.status},
            ) from None
        return Done(output)

    @staticmethod
    async def _rendered(step: HttpRequestStep, ctx: StepContext) -> StepRequest:
        headers = {
            name: await ctx.text(f"headers.{name}", value)
            for name, value in step.headers.items()
            if name.strip().lower() != DEPTH_HEADER.lower()
        }
        # A call into a Flowbot webhook (this one or another) continues the chain's depth;
        # a step cannot set it lower.
        headers[DEPTH_HEADER] = str(ctx.run.depth)
        # The same key each time this step of this run is sent (a resumed run after a
        # crash), so an API that honours Idempotency-Key drops the repeat. A step's own
        # header wins.
        if not any(name.strip().lower() == IDEMPOTENCY_HEADER.lower() for name in headers):
            headers[IDEMPOTENCY_HEADER] = idempotency_key(ctx)
        send_json = step.json_ is not None
        return StepRequest(
            method=step.method,
            path=await ctx.text("path", step.path),
            headers=headers,
            query={
                name: await ctx.native(f"query.{name}", value) for name, value in step.query.items()
            },
            json_body=await ctx.native("json", step.json_) if send_json else None,
            send_json=send_json,
            timeout=step.timeout,
        )

    async def resume(
        self, step: HttpRequestStep, ctx: StepContext, payload: Mapping[str, Any]
    ) -> Outcome:
        raise StepFailed("an http_request step does not wait, so it cannot be resumed")

"""The HTTP server: Slack requests, health, webhooks. A thin aiohttp adapter."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response

import bot
from adapters.sealing_client import seal_answer
from bot.app import Flowbot
from bot.logs import bind_request_id, request_age, request_kind
from bot.metrics import metrics_handler
from bot.oauth import oauth_routes
from bot.slack_requests import BadRequest, CheckedBoltRequest, check_request, signature_is_valid
from bot.webhooks import webhook_handler

FLOWBOT_KEY = web.AppKey("flowbot", Flowbot)
log = logging.getLogger(__name__)

NOT_CONFIGURED = {
    "error": "slack_not_configured",
    "message": "Set SLACK_BOT_TOKEN and SLACK_SIGNING_SECRET to accept Slack requests.",
}
SOCKET_MODE_ONLY = {
    "error": "socket_mode_only",
    "message": "Slack's requests arrive over Socket Mode; set SLACK_SIGNING_SECRET to accept "
    "them over HTTP too.",
}


async def slack_events(request: web.Request) -> web.Response:
    # Counted while acknowledged: listeners' work after their ack() waits (bot/ack_gate.py).
    with request.app[FLOWBOT_KEY].ack_gate.acknowledging():
        return await _acknowledge(request)


async def _acknowledge(request: web.Request) -> web.Response:
    flowbot = request.app[FLOWBOT_KEY]
    if flowbot.bolt is None:
        return web.json_response(NOT_CONFIGURED, status=503)
    secret = flowbot.settings.slack_signing_secret
    if secret is None:
        # Socket Mode without a signing secret: nothing sent over HTTP can be verified.
        return web.json_response(SOCKET_MODE_ONLY, status=404)
    raw = await request.read()
    if not signature_is_valid(secret.get_secret_value(), raw, request.headers):
        # Checked before anything is parsed or decoded: a garbled unsigned body is a 401 too.
        return web.json_response({"error": "invalid request"}, status=401)
    try:
        checked = check_request(raw, request.content_type)
    except BadRequest as exc:
        log.info("refused a signed Slack request: %s", exc.message)
        return web.json_response({"error": "invalid_body", "message": exc.message}, status=400)
    bolt_request = CheckedBoltRequest(checked, request.query_string, request.headers)
    bolt_response = await flowbot.bolt.async_dispatch(bolt_request)
    # Bolt acknowledges before the listeners' work (process_before_response=False).
    flowbot.metrics.acknowledged(request_kind(bolt_request.body), request_age(request))
    bolt_response.body = seal_answer(flowbot.deps.client, bolt_response.body)
    return await to_aiohttp_response(bolt_response)


async def healthz(request: web.Request) -> web.Response:
    flowbot = request.app[FLOWBOT_KEY]
    db_ok = await flowbot.storage.ping()
    body = {"status": "ok" if db_ok else "degraded", "db": "ok" if db_ok else "unreachable"}
    body["version"] = bot.__version__
    body["socket"] = await flowbot.socket.state() if flowbot.socket is not None else "off"
    return web.json_response(body, status=200 if db_ok else 503)


@web.middleware
async def request_frame(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Each request gets an id (`bind_request_id`), echoed in X-Request-Id; every error of
    our routes is JSON, aiohttp's own (404, 405, 413) included. One middleware, not two:
    aiohttp wraps each middleware anew for every request."""
    rid = bind_request_id(request)
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        error = (exc.reason or "error").lower().replace(" ", "_")
        response = web.json_response(
            {"ok": False, "error": error, "message": exc.text or exc.reason},
            status=exc.status,
            headers={k: v for k, v in exc.headers.items() if k.lower() == "allow"},
        )
    except Exception:
        log.exception("%s %s failed", request.method, request.path)
        response = web.json_response({"ok": False, "error": "internal_error"}, status=500)
    response.headers["X-Request-Id"] = rid
    return response


def create_web_app(flowbot: Flowbot) -> web.Application:
    # Slack payloads are small; webhooks are capped lower in their own handler.
    app = web.Application(client_max_size=1024 * 1024, middlewares=[request_frame])
    app[FLOWBOT_KEY] = flowbot
    app.router.add_post("/slack/events", slack_events)
    app.router.add_get("/healthz", healthz)
    if flowbot.counts is not None:
        app.router.add_get("/metrics", metrics_handler(flowbot.metrics, flowbot.counts))
    app.router.add_post("/hooks/{flow_id}", webhook_handler(FLOWBOT_KEY))
    if flowbot.bolt is not None and flowbot.bolt.oauth_flow is not None:
        oauth_routes(app, flowbot.bolt.oauth_flow)  # GET /slack/install, /slack/oauth_redirect
    return app


class Server:
    """Runs the web app on a port (0 picks a free one) until stopped."""

    def __init__(self, flowbot: Flowbot, host: str = "0.0.0.0", port: int = 3000) -> None:
        self.flowbot = flowbot
        self.host = host
        self.port = port
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        await self.flowbot.start()
        self._runner = web.AppRunner(create_web_app(self.flowbot), access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        server = site._server
        if self.port == 0 and server is not None:
            sockets = getattr(server, "sockets", None) or []
            self.port = int(sockets[0].getsockname()[1])

    @property
    def url(self) -> str:
        host = "127.0.0.1" if self.host in ("0.0.0.0", "") else self.host
        return f"http://{host}:{self.port}"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        await self.flowbot.stop()

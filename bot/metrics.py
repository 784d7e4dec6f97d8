"""`GET /metrics`: the engine's `flows.metrics.Metrics` port on prometheus-client.

Each bot has its own `CollectorRegistry` (several bots in one test process don't mix
figures). Counters and histograms move as things happen; the gauges of waiting runs and
pending approvals are read from the database when Prometheus scrapes."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from aiohttp import web
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

from flows.metrics import OperationalCounts

log = logging.getLogger(__name__)

# Seconds: steps range from milliseconds (a message) to days (an approval).
STEP_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 3600, 86400)
ACK_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 3, 5)
LATENESS_BUCKETS = (0.1, 0.5, 1, 5, 15, 60, 300, 900, 3600)


class PrometheusMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.runs_started = Counter(
            "flowbot_runs_started", "Runs started, by trigger type.", ["trigger"], registry=r
        )
        self.runs_ended = Counter(
            "flowbot_runs_ended", "Runs ended, by final status.", ["status"], registry=r
        )
        self.step_seconds = Histogram(
            "flowbot_step_duration_seconds",
            "Time from a step's start to its end (waits included), by step type and status.",
            ["type", "status"],
            buckets=STEP_BUCKETS,
            registry=r,
        )
        self.lateness = Histogram(
            "flowbot_schedule_lateness_seconds",
            "How long after its slot a scheduled run started.",
            buckets=LATENESS_BUCKETS,
            registry=r,
        )
        self.slack_calls = Counter(
            "flowbot_slack_api_calls",
            "Slack Web API calls by method and outcome (ok, a Slack error code, or exception).",
            ["method", "outcome"],
            registry=r,
        )
        self.slack_seconds = Histogram(
            "flowbot_slack_api_duration_seconds",
            "Slack Web API call time, retries included, by method.",
            ["method"],
            registry=r,
        )
        self.rate_limited = Counter(
            "flowbot_slack_api_rate_limited",
            "HTTP 429 answers from Slack (each one, retried or not), by method.",
            ["method"],
            registry=r,
        )
        self.ack_seconds = Histogram(
            "flowbot_ack_latency_seconds",
            "Time from receiving a Slack request to acknowledging it, by kind.",
            ["kind"],
            buckets=ACK_BUCKETS,
            registry=r,
        )
        self.waiting_runs = Gauge(
            "flowbot_waiting_runs", "Runs parked (approval, wait, …), all workspaces.", registry=r
        )
        self.pending_approvals = Gauge(
            "flowbot_pending_approvals", "Approvals not decided yet.", registry=r
        )
        self.scrape_errors = Counter(
            "flowbot_metrics_scrape_errors", "Gauges that could not be read.", registry=r
        )

    # --- flows.metrics.Metrics

    def run_started(self, trigger: str) -> None:
        self.runs_started.labels(trigger).inc()

    def run_ended(self, status: str) -> None:
        self.runs_ended.labels(status).inc()

    def step_finished(self, step_type: str, status: str, seconds: float) -> None:
        self.step_seconds.labels(step_type, status).observe(seconds)

    def schedule_lateness(self, seconds: float) -> None:
        self.lateness.observe(seconds)

    def slack_call(self, method: str, outcome: str, seconds: float) -> None:
        self.slack_calls.labels(method, outcome).inc()
        self.slack_seconds.labels(method).observe(seconds)

    def slack_rate_limited(self, method: str) -> None:
        self.rate_limited.labels(method).inc()

    def acknowledged(self, kind: str, seconds: float) -> None:
        self.ack_seconds.labels(kind).observe(seconds)

    # --- the scrape

    async def refresh(self, counts: OperationalCounts) -> None:
        try:
            self.waiting_runs.set(await counts.waiting_runs())
            self.pending_approvals.set(await counts.pending_approvals())
        except Exception as exc:
            # The figures keep their last values; /healthz tells whether the DB answers.
            log.warning("reading gauges for /metrics failed: %s", type(exc).__name__)
            self.scrape_errors.inc()

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


def metrics_handler(
    metrics: PrometheusMetrics, counts: OperationalCounts
) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def handle(request: web.Request) -> web.Response:
        await metrics.refresh(counts)
        response = web.Response(body=metrics.exposition())
        response.headers["Content-Type"] = CONTENT_TYPE_LATEST
        return response

    return handle

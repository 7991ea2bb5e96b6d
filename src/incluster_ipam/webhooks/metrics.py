"""Metrics of the webhook server: controller-runtime's request, latency and in-flight metrics (same names and
labels, so dashboards made for Cluster API providers work unchanged), and our count of reviews answered
with an error instead of a decision.

`webhook` is the request path, or "other" for a path we do not serve (so a scanner cannot grow the label
set); `code` is the HTTP status. An admission denial is a decision, not an error; an error is a review the
server could not decide: malformed or oversized, not received in time, a lookup that failed or is not
ready yet, a bug, or a conversion that failed. Reasons are a short fixed set.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

#: Error reasons by the HTTP status the server answered with (when it answered outside a review).
HTTP_REASONS = {400: "BadRequest", 408: "Timeout", 413: "RequestEntityTooLarge"}
CONVERSION_FAILED = "ConversionFailed"
OTHER_PATH = "other"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class WebhookMetrics:
    """One set per server; `middleware` counts every request, handlers call `error`. `build_app` sets
    `paths` to the paths it serves."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        registry = registry if registry is not None else CollectorRegistry()
        self.paths: frozenset[str] = frozenset()
        self.requests = Counter(
            "controller_runtime_webhook_requests",
            "Total number of admission and conversion requests by HTTP status code.",
            ["webhook", "code"],
            registry=registry,
        )
        self.latency = Histogram(
            "controller_runtime_webhook_latency_seconds",
            "Histogram of the latency of processing admission and conversion requests.",
            ["webhook"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
            registry=registry,
        )
        self.in_flight = Gauge(
            "controller_runtime_webhook_requests_in_flight",
            "Current number of admission and conversion requests being served.",
            ["webhook"],
            registry=registry,
        )
        self.errors = Counter(
            "incluster_ipam_webhook_errors",
            "Reviews answered with an error instead of a decision, by reason.",
            ["webhook", "reason"],
            registry=registry,
        )

    def webhook(self, path: str) -> str:
        return path if path in self.paths else OTHER_PATH

    def error(self, path: str, reason: str) -> None:
        self.errors.labels(self.webhook(path), reason).inc()

    def http_error(self, path: str, status: int) -> None:
        self.error(path, HTTP_REASONS.get(status, f"HTTP{status}"))

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        webhook = self.webhook(request.path)
        started = time.perf_counter()
        code = 500
        self.in_flight.labels(webhook).inc()
        try:
            response = await handler(request)
            code = response.status
            return response
        except web.HTTPException as exc:
            code = exc.status
            raise
        except Exception:  # aiohttp answers 500
            self.error(request.path, "InternalError")
            raise
        finally:
            self.in_flight.labels(webhook).dec()
            self.latency.labels(webhook).observe(time.perf_counter() - started)
            self.requests.labels(webhook, str(code)).inc()

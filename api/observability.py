"""Per-request plumbing as pure ASGI middlewares: request id, access log line, Prometheus metrics, and the
metrics' own port.

A pure ASGI middleware (not BaseHTTPMiddleware) keeps the per-request overhead to a few microseconds.
"""

from __future__ import annotations

import json
import logging
import re
import time
import uuid
from collections.abc import Callable, Iterable
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from taskplatform.api.errors import PROBLEM_MEDIA_TYPE, internal_error_body, problem_response

log = logging.getLogger("taskplatform.api.request")
_REQUEST_ID_OK = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


class Metrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.requests = Counter(
            "http_requests_total",
            "HTTP requests by route template, method and status.",
            ["method", "route", "status"],
            registry=registry,
        )
        self.latency = Histogram(
            "http_request_duration_seconds",
            "HTTP request latency by route template and method.",
            ["method", "route"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
            registry=registry,
        )


class PoolCollector(Collector):
    """Reads the connection pool's counters at scrape time instead of tracking them per checkout."""

    def __init__(self, stats: Callable[[], dict[str, int]]) -> None:
        self._stats = stats

    def collect(self) -> Iterable[GaugeMetricFamily]:
        stats = self._stats()
        gauge = GaugeMetricFamily("db_pool_connections", "Database pool connections by state.", labels=["state"])
        gauge.add_metric(["in_use"], stats["in_use"])
        gauge.add_metric(["idle"], stats["idle"])
        yield gauge
        yield GaugeMetricFamily(
            "db_pool_waiting_requests", "Requests waiting for a pooled connection.", value=stats.get("waiting", 0)
        )


METRICS_PATH = "/metrics"


class MetricsPortMiddleware:
    """Prometheus' /metrics for the requests that arrived on the metrics port (METRICS_PORT), and nothing else
    there; the API's own port has no /metrics. So the metrics stay off the port the Service publishes, which
    may be a LoadBalancer. Told by the port the connection came in on (the ASGI scope's `server`, the local
    address of the socket), which no request header can change. Scrapes are neither logged nor counted."""

    def __init__(self, app: ASGIApp, port: int, registry: CollectorRegistry) -> None:
        self.app = app
        self.port = port
        self.registry = registry

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        server = scope.get("server")
        if scope["type"] != "http" or server is None or server[1] != self.port:
            await self.app(scope, receive, send)
            return
        response: Response
        request = Request(scope)
        if scope["path"] != METRICS_PATH:
            response = problem_response(request, 404, "not-found", "Not Found", f"Only {METRICS_PATH} is served here.")
        elif scope["method"] != "GET":
            response = problem_response(
                request, 405, "method-not-allowed", "Method Not Allowed", headers={"Allow": "GET"}
            )
        else:
            response = Response(generate_latest(self.registry), media_type=CONTENT_TYPE_LATEST)
        await response(scope, receive, send)


class RequestContextMiddleware:
    def __init__(self, app: ASGIApp, metrics: Metrics, log_requests: bool = True) -> None:
        self.app = app
        self.metrics = metrics
        self.log_requests = log_requests

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        request_id = _incoming_request_id(scope) or uuid.uuid4().hex
        state = scope.setdefault("state", {})
        state["request_id"] = request_id
        start = time.perf_counter()
        status = 500
        started = False

        async def send_with_id(message: Message) -> None:
            nonlocal status, started
            if message["type"] == "http.response.start":
                started = True
                status = message["status"]
                headers = list(message.get("headers", []))
                headers.append((b"x-request-id", request_id.encode()))
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            status = 500
            log.exception("unhandled error", extra={"request_id": request_id, "path": scope.get("path")})
            if not started:
                body = json.dumps(internal_error_body(request_id, scope.get("path", ""))).encode()
                await send_with_id(
                    {
                        "type": "http.response.start",
                        "status": 500,
                        "headers": [
                            (b"content-type", PROBLEM_MEDIA_TYPE.encode()),
                            (b"content-length", str(len(body)).encode()),
                        ],
                    }
                )
                await send({"type": "http.response.body", "body": body})
        finally:
            elapsed = time.perf_counter() - start
            route = _route_template(scope)
            method = scope.get("method", "")
            self.metrics.requests.labels(method, route, str(status)).inc()
            self.metrics.latency.labels(method, route).observe(elapsed)
            if self.log_requests:
                log.info(
                    "request",
                    extra={
                        "request_id": request_id,
                        "user_id": state.get("user_id"),
                        "method": method,
                        "route": route,
                        "path": scope.get("path"),
                        "status": status,
                        "latency_ms": round(elapsed * 1000, 2),
                    },
                )


def _incoming_request_id(scope: Scope) -> str | None:
    for name, value in scope.get("headers", ()):
        if name == b"x-request-id":
            candidate: str = value.decode("latin-1")
            # Echo only ids that are safe to put in logs and headers; otherwise mint our own.
            return candidate if _REQUEST_ID_OK.match(candidate) else None
    return None


def _route_template(scope: Scope) -> str:
    # The route template, not the raw path, keeps metric label cardinality bounded.
    route: Any = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else "<unmatched>"

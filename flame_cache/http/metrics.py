"""Prometheus metrics of the HTTP mirror and of the store it serves.

Request counts are labelled by route template (not by key), so the number of
series stays bounded however many objects there are.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send


class StoreCollector(Collector):
    """Object counts and bytes, read from the store at scrape time."""

    def __init__(self, usage: Callable[[], dict[str, int]]) -> None:
        self._usage = usage

    def collect(self) -> Iterator[GaugeMetricFamily]:
        usage = self._usage()
        yield GaugeMetricFamily("flame_cache_objects", "Objects in the cache", value=usage["objects"])
        yield GaugeMetricFamily(
            "flame_cache_stored_bytes", "Bytes of all objects (bases and deltas)", value=usage["stored_bytes"]
        )
        yield GaugeMetricFamily("flame_cache_loaded_objects", "Objects held in memory", value=usage["loaded"])
        yield GaugeMetricFamily(
            "flame_cache_loaded_bytes", "Bytes of objects held in memory", value=usage["loaded_bytes"]
        )


class Metrics:
    """The registry and counters of one app."""

    def __init__(self, usage: Callable[[], dict[str, int]]) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "flame_cache_http_requests",
            "HTTP requests by method, route and status",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.received = Counter(
            "flame_cache_http_received_bytes", "Request body bytes received", registry=self.registry
        )
        self.sent = Counter("flame_cache_http_sent_bytes", "Response body bytes sent", registry=self.registry)
        self.reads = Counter(
            "flame_cache_http_reads",
            "Object reads by result: hit, miss (404) or not_modified (304, or nothing newer to send)",
            ["result"],
            registry=self.registry,
        )
        self.registry.register(StoreCollector(usage))

    def hit(self) -> None:
        self.reads.labels("hit").inc()

    def miss(self) -> None:
        self.reads.labels("miss").inc()

    def not_modified(self) -> None:
        self.reads.labels("not_modified").inc()


class MetricsMiddleware:
    """Counts every request and the body bytes it moved (pure ASGI, so
    streamed bodies pass through untouched)."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        metrics = self.metrics
        status = 500

        async def counting_receive() -> Message:
            message = await receive()
            if message["type"] == "http.request":
                metrics.received.inc(len(message.get("body", b"")))
            return message

        async def counting_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "http.response.body":
                metrics.sent.inc(len(message.get("body", b"")))
            await send(message)

        try:
            await self.app(scope, counting_receive, counting_send)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            metrics.requests.labels(scope["method"], template, str(status)).inc()

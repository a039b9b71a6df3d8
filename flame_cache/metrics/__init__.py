"""Prometheus metrics of both protocols and of the store (SPEC 10).

`requests.RequestMetrics`: what Flight and HTTP report each request to;
`store.StoreCollector`: the store's size and counters, read at scrape time;
`registry.Metrics`: the one registry /metrics serves. Imports nothing of the
protocols, so either can use it.
"""

from flame_cache.metrics.registry import Metrics
from flame_cache.metrics.requests import FLIGHT, HTTP, PROTOCOLS, RequestMetrics

__all__ = ["FLIGHT", "HTTP", "PROTOCOLS", "Metrics", "RequestMetrics"]

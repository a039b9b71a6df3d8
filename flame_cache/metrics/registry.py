"""The one registry /metrics serves: requests of both protocols, the store, the process."""

from __future__ import annotations

from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, GCCollector, PlatformCollector, ProcessCollector

from flame_cache.metrics.requests import RequestMetrics
from flame_cache.metrics.store import StoreCollector

if TYPE_CHECKING:
    from flame_cache.store import Store


class Metrics:
    """The process's metrics over one store: `requests` is what Flight and
    HTTP report to; `registry` what /metrics serves (with prometheus-client's
    process, platform and garbage-collector collectors)."""

    def __init__(self, store: Store) -> None:
        self.requests = RequestMetrics()
        self.registry = CollectorRegistry()
        self.registry.register(self.requests)
        self.registry.register(StoreCollector(store))
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        GCCollector(registry=self.registry)

"""The store's size and what it let go of, read at scrape time (SPEC 10).

Nothing here runs per request: the gauges come from the index and the
capacity accounting when /metrics is scraped, the counters from the store's
`StoreStats`, which its paths keep as things happen.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from flame_cache.store import Store


class StoreCollector(Collector):
    """`flame_cache_objects`, `_disk_bytes`, `_memory_bytes`, `_memory_objects`,
    `_evictions_total{reason}`, `_quarantines_total`, `_checksum_failures_total`."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def collect(self) -> Iterator[Metric]:
        store = self._store
        usage = store.index.usage()
        counts = store.stats.counts()
        yield GaugeMetricFamily("flame_cache_objects", "Objects in the cache", value=usage["objects"])
        yield GaugeMetricFamily(
            "flame_cache_disk_bytes",
            "Bytes of object files on disk (exact under cache.capacity; else the objects' sizes; 0 with storage none)",
            value=store.disk_bytes(),
        )
        yield GaugeMetricFamily("flame_cache_memory_bytes", "Bytes of objects held in memory", value=usage["loaded_bytes"])
        yield GaugeMetricFamily("flame_cache_memory_objects", "Objects held in memory", value=usage["loaded"])
        evictions = CounterMetricFamily(
            "flame_cache_evictions",
            "Objects let go of, by reason: memory (dropped from memory by cache.eviction), "
            "capacity (deleted to stay under cache.capacity), expiry (deleted when expired)",
            labels=("reason",),
        )
        for reason, count in store.stats.evictions().items():
            evictions.add_metric((reason,), count)
        yield evictions
        yield CounterMetricFamily(
            "flame_cache_quarantines", "Damaged objects set aside in .quarantine", value=counts["quarantines"]
        )
        yield CounterMetricFamily(
            "flame_cache_checksum_failures",
            "Objects set aside because their data did not match the checksum their file carries",
            value=counts["checksum_mismatches"],
        )

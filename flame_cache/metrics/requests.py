"""Requests on both protocols, counted cheaply on the hot path (SPEC 10).

`RequestMetrics` is the one place either protocol reports a request to.
Each Python call in a request's path costs microseconds in gRPC's threads,
so a request only appends to lists, itself, with no call of ours: its start
to the protocol's in-flight list (`in_flight(protocol)`), its end, as one
tuple, to the reported ones (`report`, the deque's append) and a pop of the
in-flight list (`list.append`, `.pop` and `deque.append` are atomic: no
lock; flight/rpc.py and http/edge.py do so). `observe(...)` reports a
request that was never in flight (refused before it began). `sum()` folds the reported requests
into the sums, under a lock: a background thread does so every SUM_EVERY
seconds, and each scrape before it reads them. The Prometheus families
(`flame_cache_requests_total`, `flame_cache_request_seconds`,
`flame_cache_request_bytes_total`, `flame_cache_requests_in_flight`) are
made from the sums when /metrics is scraped. (prometheus-client's own
Counter, Histogram and Gauge take a lock per value and per call: about five
times the cost for the same figures, `python -m bench.metrics_cost`.)

Labels stay low-cardinality by contract: `operation` is an RPC name or a
route template (never a key or a path), `outcome` a gRPC code or an HTTP
status, `protocol` one of PROTOCOLS.
"""

from __future__ import annotations

import bisect
import threading
import time
import weakref
from collections import deque
from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

FLIGHT, HTTP = "flight", "http"
PROTOCOLS = (FLIGHT, HTTP)
# Upper bounds, in seconds, from 0.1 ms (a not-modified read) to a minute (a large object over a slow link).
BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
_BOUNDS = [*map(str, BUCKETS), "+Inf"]
SUM_EVERY = 1.0  # seconds between the background sums: what waits to be summed stays small
_CHUNK = 512  # requests summed under the lock at a time, so the summing thread lets go of the GIL between


class _Series:
    """One (protocol, operation): a histogram's buckets (not cumulative) and
    sum, the count of each outcome, the bytes received and sent."""

    __slots__ = ("buckets", "seconds", "outcomes", "received", "sent")

    def __init__(self) -> None:
        self.buckets = [0] * (len(BUCKETS) + 1)  # the last: past the largest bound
        self.seconds = 0.0
        self.outcomes: dict[str, int] = {}
        self.received = self.sent = 0


class RequestMetrics(Collector):
    """Requests by protocol, operation and outcome: counts, latency, bytes,
    and those in flight. Thread-safe; register it with a CollectorRegistry.
    `sum_every` (seconds; None: only on a scrape) paces the background sums."""

    def __init__(self, sum_every: float | None = SUM_EVERY) -> None:
        self._flying: dict[str, list[bool]] = {protocol: [] for protocol in PROTOCOLS}  # one item a request
        self._reported: deque[tuple[str, str, str, float, int, int]] = deque()  # ended, not summed yet
        # report((protocol, operation, outcome, seconds, received, sent)): one request that ended (deque.append)
        self.report = self._reported.append
        self._lock = threading.Lock()  # the sums
        self._series: dict[tuple[str, str], _Series] = {}
        if sum_every is not None:
            threading.Thread(target=_sum_every, args=(weakref.ref(self), sum_every), name="request-metrics", daemon=True).start()

    def in_flight(self, protocol: str) -> list[bool]:
        """`protocol`'s requests in flight, one item each: append one as a
        request starts, pop one as it ends."""
        return self._flying[protocol]

    def observe(self, protocol: str, operation: str, outcome: str, seconds: float, received: int = 0, sent: int = 0) -> None:
        """One whole request that took `seconds`, never in flight (refused
        before it began); KeyError for a protocol not in PROTOCOLS."""
        if protocol not in PROTOCOLS:
            raise KeyError(f"protocol {protocol!r} is none of {PROTOCOLS}")
        self.report((protocol, operation, outcome, seconds, received, sent))

    def sum(self) -> None:
        """Fold the requests reported so far into the sums, some at a time."""
        reported = self._reported
        while reported:
            with self._lock:
                for _ in range(min(len(reported), _CHUNK)):
                    protocol, operation, outcome, seconds, received, sent = reported.popleft()
                    series = self._series.get((protocol, operation))
                    if series is None:
                        series = self._series[(protocol, operation)] = _Series()
                    series.buckets[bisect.bisect_left(BUCKETS, seconds)] += 1
                    series.seconds += seconds
                    series.received += received
                    series.sent += sent
                    outcomes = series.outcomes
                    outcomes[outcome] = outcomes.get(outcome, 0) + 1
            time.sleep(0)  # let requests' threads have the GIL

    def collect(self) -> Iterator[Metric]:
        """The four families, from a copy of the sums taken under the lock,
        once everything reported so far is summed."""
        self.sum()
        received, sent = dict.fromkeys(PROTOCOLS, 0), dict.fromkeys(PROTOCOLS, 0)
        with self._lock:
            series = [(key, list(s.buckets), s.seconds, dict(s.outcomes)) for key, s in self._series.items()]
            for (protocol, _), one in self._series.items():
                received[protocol] += one.received
                sent[protocol] += one.sent
        in_flight = {protocol: len(flying) for protocol, flying in self._flying.items()}
        requests = CounterMetricFamily(
            "flame_cache_requests",
            "Requests by protocol, operation (an RPC or a route template) and outcome (a gRPC code or an HTTP status)",
            labels=("protocol", "operation", "outcome"),
        )
        latency = HistogramMetricFamily(
            "flame_cache_request_seconds",
            "Time to serve a request, by protocol and operation (Flight: the handler, up to handing its stream to gRPC)",
            labels=("protocol", "operation"),
        )
        for (protocol, operation), buckets, seconds, outcomes in sorted(series):
            for outcome, count in sorted(outcomes.items()):
                requests.add_metric((protocol, operation, outcome), count)
            cumulative, total = [], 0
            for bound, count in zip(_BOUNDS, buckets):
                total += count
                cumulative.append((bound, total))
            latency.add_metric((protocol, operation), cumulative, seconds)
        moved = CounterMetricFamily(
            "flame_cache_request_bytes",
            "Bytes received and sent by requests, by protocol (HTTP: bodies; Flight: record batches' buffers)",
            labels=("protocol", "direction"),
        )
        flying = GaugeMetricFamily("flame_cache_requests_in_flight", "Requests being served, by protocol", labels=("protocol",))
        for protocol in PROTOCOLS:
            moved.add_metric((protocol, "in"), received[protocol])
            moved.add_metric((protocol, "out"), sent[protocol])
            flying.add_metric((protocol,), in_flight[protocol])
        yield from (requests, latency, moved, flying)


def _sum_every(metrics: weakref.ReferenceType[RequestMetrics], seconds: float) -> None:
    """The background sums, until `metrics` is gone."""
    while True:
        time.sleep(seconds)
        alive = metrics()
        if alive is None:
            return
        alive.sum()
        del alive

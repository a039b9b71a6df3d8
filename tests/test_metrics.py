"""/metrics (SPEC 10) against real server processes: both protocols' requests by
operation and outcome, latency and bytes, requests in flight, the store's gauges and
counters (evictions by reason, quarantines, checksum failures), `admin` under
cache.auth. Counters are compared before and after known operations: each must move
by exactly what those operations did.

About 5 s.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pyarrow.flight as flight
import pytest
from prometheus_client.parser import text_string_to_metric_families

from flame_cache.metrics import RequestMetrics
from tests.flamepy_scripts import run_flamepy
from tests.flight_client import get, opaque, put, put_path
from tests.http_client import RAW, object_path
from tests.secure_server import SecureServer, bearer
from tests.server import CacheServer
from tests.test_capacity import files_bytes
from tests.test_checksums import QUIET, flip_inside

Sample = tuple[str, tuple[tuple[str, str], ...]]  # a sample's name and its labels, sorted
KiB = 1024
DASHBOARD = Path(__file__).resolve().parent.parent / "deploy" / "grafana" / "flame-cache.json"


def key(name: str, **labels: str) -> Sample:
    return name, tuple(sorted(labels.items()))


def requests(protocol: str, operation: str, outcome: str) -> Sample:
    return key("flame_cache_requests_total", protocol=protocol, operation=operation, outcome=outcome)


def moved(protocol: str, direction: str) -> Sample:
    return key("flame_cache_request_bytes_total", protocol=protocol, direction=direction)


SCRAPES = requests("http", "GET /metrics", "200")
HTTP_OUT = moved("http", "out")


class Scraper:
    """Scrapes /metrics through `http`, keeping each answer's size: the
    scrapes are requests too, counted (with their bytes) by the next one."""

    def __init__(self, http: httpx.Client) -> None:
        self.http = http
        self.sizes: list[int] = []

    def __call__(self) -> dict[Sample, float]:
        """Every sample /metrics serves, parsed as Prometheus does."""
        response = self.http.get("/metrics")
        assert response.status_code == 200, response.text
        self.sizes.append(len(response.content))
        return {
            (sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(response.text)
            for sample in family.samples
        }

    def settled(
        self, before: dict[Sample, float], expected: dict[Sample, float], http_out: int | None = None
    ) -> dict[Sample, float]:
        """A scrape in which every `expected` counter has moved by exactly its
        amount since the scrape `before` (the last but the ones this makes), as
        have the scrapes' own count and, given `http_out` (the other answers'
        bytes), HTTP's bytes out. A request is counted as it ends, which can be a
        moment after its client has the answer, so this asks again for up to 5 s."""
        mark = len(self.sizes) - 1
        deadline = time.monotonic() + 5
        while True:
            after = self()
            earlier = self.sizes[mark:-1]  # the scrapes this one counts
            wanted = {**expected, SCRAPES: expected.get(SCRAPES, 0) + len(earlier)}
            if http_out is not None:
                wanted[HTTP_OUT] = http_out + sum(earlier)
            moves = {sample: after.get(sample, 0) - before.get(sample, 0) for sample in wanted}
            if moves == wanted or time.monotonic() > deadline:
                assert moves == wanted
                return after
            time.sleep(0.05)


# -- requests -------------------------------------------------------------------------


def test_latency_buckets_hold_what_is_at_most_their_bound() -> None:
    """0.1 ms (a bound) in its own bucket, 0.3 ms in 0.5 ms's, 2 minutes only in +Inf."""
    metrics = RequestMetrics()
    for seconds in (0.0001, 0.0003, 120.0):
        metrics.observe("http", "GET /healthz", "200", seconds)
    (histogram,) = [family for family in metrics.collect() if family.name == "flame_cache_request_seconds"]
    buckets = {s.labels["le"]: s.value for s in histogram.samples if s.name.endswith("_bucket")}
    assert (buckets["0.0001"], buckets["0.00025"], buckets["0.0005"], buckets["60.0"], buckets["+Inf"]) == (1, 1, 2, 2, 3)
    assert {s.name: s.value for s in histogram.samples if not s.name.endswith("_bucket")} == {
        "flame_cache_request_seconds_count": 3,
        "flame_cache_request_seconds_sum": pytest.approx(120.0004),
    }


SERVER_OPTIONS = dict(with_http=True, **QUIET)


@pytest.fixture
def http(server: CacheServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.http_url, timeout=30) as client:
        yield client


def test_each_request_is_counted_by_protocol_operation_and_outcome(server: CacheServer, http: httpx.Client) -> None:
    scrape = Scraper(http)
    data = b"m" * 3000
    table = opaque(data)
    with server.client() as client:
        before = scrape()
        put(client, flight.FlightDescriptor.for_path("met/req/one"), table)
        got = get(client, "met/req/one:0")
        with pytest.raises(KeyError):
            get(client, "met/req/missing:0")
        client.get_flight_info(flight.FlightDescriptor.for_path("met/req/one"))
        list(client.list_flights(b"met/req"))
        (stats,) = client.do_action(flight.Action("STATS", b""))
        with pytest.raises(NotImplementedError):  # UNIMPLEMENTED
            list(client.do_action(flight.Action("NO-SUCH-ACTION", b"")))
        (deleted,) = client.do_action(flight.Action("DELETE", b"met/req/one"))
    answers = [
        http.put(object_path("met/req/two"), content=data, headers={"Content-Type": RAW}),
        http.get(object_path("met/req/two")),
        http.get(object_path("met/req/two"), headers={"If-None-Match": '"1"'}),
        http.get(object_path("met/req/missing")),
        http.head(object_path("met/req/two")),
        http.get("/no/such/route"),
    ]
    assert [a.status_code for a in answers] == [201, 200, 304, 404, 200, 404]

    expected = {
        requests("flight", "DoPut", "OK"): 1,
        requests("flight", "DoGet", "OK"): 1,
        requests("flight", "DoGet", "NOT_FOUND"): 1,
        requests("flight", "GetFlightInfo", "OK"): 1,
        requests("flight", "ListFlights", "OK"): 1,
        requests("flight", "DoAction STATS", "OK"): 1,
        requests("flight", "DoAction", "UNIMPLEMENTED"): 1,
        requests("flight", "DoAction DELETE", "OK"): 1,
        requests("http", "PUT /v1/objects/{key}", "201"): 1,
        requests("http", "GET /v1/objects/{key}", "200"): 1,
        requests("http", "GET /v1/objects/{key}", "304"): 1,
        requests("http", "GET /v1/objects/{key}", "404"): 1,
        requests("http", "HEAD /v1/objects/{key}", "200"): 1,
        requests("http", "GET unmatched", "404"): 1,
        key("flame_cache_request_seconds_count", protocol="flight", operation="DoGet"): 2,
        key("flame_cache_request_seconds_bucket", protocol="flight", operation="DoGet", le="+Inf"): 2,
        key("flame_cache_request_seconds_count", protocol="http", operation="GET /v1/objects/{key}"): 3,
        # Flight: DoPut's batches as they came, DELETE's body; DoGet's table, STATS' and DELETE's answers
        moved("flight", "in"): sum(batch.get_total_buffer_size() for batch in table.to_batches()) + len(b"met/req/one"),
        moved("flight", "out"): got.get_total_buffer_size() + stats.body.size + deleted.body.size,
        moved("http", "in"): len(data),
        key("flame_cache_requests_in_flight", protocol="flight"): 0,
        key("flame_cache_requests_in_flight", protocol="http"): 0,  # the scrape being served, before and after
    }
    after = scrape.settled(before, expected, http_out=sum(len(a.content) for a in answers))
    assert after[key("flame_cache_requests_in_flight", protocol="http")] == 1
    took = key("flame_cache_request_seconds_sum", protocol="flight", operation="DoGet")
    assert 0 < after[took] - before.get(took, 0) < 5
    operations = {dict(labels).get("operation", "") for name, labels in after if name == "flame_cache_requests_total"}
    assert not any("met/" in operation for operation in operations), operations  # templates, never keys


def test_flamepy_calls_are_counted_under_flight(server: CacheServer, http: httpx.Client, tmp_path: Path) -> None:
    """flamepy (the real package, in a process of its own) puts, gets, and gets a
    key never put: /metrics shows exactly those three DoPut and DoGet calls under
    the Flight protocol, OK, OK and NOT_FOUND, and the object's bytes both ways."""
    scrape = Scraper(http)
    before = scrape()
    done = run_flamepy(server.endpoint, tmp_path / "home", "put_get_missing", "met/flamepy", {"w": list(range(500))})
    assert done["got"] == {"w": list(range(500))}
    assert done["missing"] is not None and "met/flamepy/never-put" in done["missing"], done
    expected = {
        requests("flight", "DoPut", "OK"): 1,
        requests("flight", "DoGet", "OK"): 1,
        requests("flight", "DoGet", "NOT_FOUND"): 1,
    }
    after = scrape.settled(before, expected)
    flight_calls = {
        dict(labels)["operation"]: value - before.get((name, labels), 0)
        for (name, labels), value in after.items()
        if name == "flame_cache_requests_total" and dict(labels)["protocol"] == "flight"
    }
    assert {operation for operation, count in flight_calls.items() if count} == {"DoPut", "DoGet"}, flight_calls
    for direction in ("in", "out"):  # a pickled list of 500 ints is more than 1 KiB
        assert after[moved("flight", direction)] - before.get(moved("flight", direction), 0) > KiB


def test_requests_in_flight_are_counted_until_they_end(server: CacheServer, http: httpx.Client) -> None:
    """An HTTP upload whose body waits and a Flight DoPut not done writing are in
    flight (HTTP's count also holds the scrape that reports it) until they end."""
    scrape = Scraper(http)
    release = threading.Event()

    def body() -> Iterator[bytes]:
        yield b"a" * 1000
        release.wait(30)
        yield b"b" * 1000

    uploader = threading.Thread(
        target=lambda: httpx.put(f"{server.http_url}{object_path('met/fly/http')}", content=body(), headers={"Content-Type": RAW})
    )
    uploader.start()
    with server.client() as client:
        writer, reader = client.do_put(flight.FlightDescriptor.for_path("met/fly/flight"), opaque(b"c").schema)
        writer.write_table(opaque(b"c" * 1000))
        flying = lambda samples: (samples[key("flame_cache_requests_in_flight", protocol="flight")], samples[key("flame_cache_requests_in_flight", protocol="http")])  # noqa: E731
        deadline = time.monotonic() + 10
        while flying(now := scrape()) != (1, 2) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert flying(now) == (1, 2)
        writer.done_writing()
        assert reader.read() is not None
        writer.close()
    release.set()
    uploader.join(30)
    deadline = time.monotonic() + 5
    while flying(now := scrape()) != (0, 1) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert flying(now) == (0, 1)


def test_checksum_failures_and_quarantines_are_counted(server: CacheServer, http: httpx.Client) -> None:
    """VERIFY finds a flipped byte (a checksum failure, and a quarantine) and a file
    cut short (a quarantine only: its framing is damaged, no checksum compared)."""
    data = bytes(range(256)) * 8
    with server.client() as client:
        put_path(client, "met/crc/flipped", data)
        put_path(client, "met/crc/cut", data)
    scrape = Scraper(http)
    before = scrape()
    flip_inside(server.storage / "met/crc/flipped.arrow", data)
    cut = server.storage / "met/crc/cut.arrow"
    cut.write_bytes(cut.read_bytes()[: len(data) // 2])
    with server.client() as client:
        (answer,) = client.do_action(flight.Action("VERIFY", b"met/crc/flipped"))
    assert json.loads(answer.body.to_pybytes())["set_aside"] == [{"key": "met/crc/flipped", "reason": "its checksum does not match"}]
    verified = http.post("/v1/verify", params={"target": "met/crc/cut"})
    assert [entry["key"] for entry in verified.json()["set_aside"]] == ["met/crc/cut"]
    scrape.settled(
        before,
        {
            key("flame_cache_quarantines_total"): 2,
            key("flame_cache_checksum_failures_total"): 1,
            key("flame_cache_objects"): -2,
            requests("flight", "DoAction VERIFY", "OK"): 1,
            requests("http", "POST /v1/verify", "200"): 1,
        },
    )


# -- the store -------------------------------------------------------------------------


def test_store_gauges_and_evictions_by_reason(make_server) -> None:
    """Objects of 400 KiB under `capacity: 1M` and `max_memory: 600K`: memory keeps
    one, the disk two; then one expires. Every gauge is what the storage holds."""
    size = 400 * KiB
    server = make_server(with_http=True, capacity="1M", eviction={"max_memory": "600K"}, expiry_sweep="0.2s", **QUIET)
    root = server.storage
    http = httpx.Client(base_url=server.http_url, timeout=30)
    scrape = Scraper(http)

    def store(objects: int, disk: int, memory_bytes: int, in_memory: int, **evictions: int) -> dict[Sample, float]:
        samples = scrape()
        assert {
            "objects": samples[key("flame_cache_objects")],
            "disk": samples[key("flame_cache_disk_bytes")],
            "memory": samples[key("flame_cache_memory_bytes")],
            "in memory": samples[key("flame_cache_memory_objects")],
            **{reason: samples[key("flame_cache_evictions_total", reason=reason)] for reason in ("memory", "capacity", "expiry")},
        } == {
            "objects": objects,
            "disk": disk,
            "memory": memory_bytes,
            "in memory": in_memory,
            **{reason: evictions.get(reason, 0) for reason in ("memory", "capacity", "expiry")},
        }
        return samples

    store(0, 0, 0, 0)
    with server.client() as client:
        put_path(client, "met/store/a", b"a" * size)
        assert http.put(object_path("met/store/b"), content=b"b" * size, headers={"Content-Type": RAW}).status_code == 201
        # memory holds 800 KiB > 600K: a is dropped from it (still on disk)
        store(2, files_bytes(root), size, 1, memory=1)
        put_path(client, "met/store/c", b"c" * size)
        # 1.2 MiB of files > 1M: a, least recently used, is evicted; memory drops b for c
        store(2, files_bytes(root), size, 1, memory=2, capacity=1)
        put_path(client, "met/store/d", b"d" * 100)
        (answer,) = client.do_action(flight.Action("EXPIRE", json.dumps({"key": "met/store/d", "ttl": 0.3}).encode()))
    deadline = time.monotonic() + 10
    while scrape()[key("flame_cache_evictions_total", reason="expiry")] == 0 and time.monotonic() < deadline:
        time.sleep(0.1)
    store(2, files_bytes(root), size, 1, memory=2, capacity=1, expiry=1)
    http.close()


# -- cache.auth ------------------------------------------------------------------------


ADMIN, READER = secrets.token_urlsafe(32), secrets.token_urlsafe(32)


def test_metrics_need_admin_and_refusals_are_counted(tmp_path: Path) -> None:
    auth = {
        "tokens": [
            {"name": "ops", "token_sha256": hashlib.sha256(ADMIN.encode()).hexdigest(), "scopes": ["admin:*"]},
            {"name": "app", "token_sha256": hashlib.sha256(READER.encode()).hexdigest(), "scopes": ["read:*"]},
        ]
    }
    server = SecureServer(tmp_path, tmp_path / "storage", auth=auth).start()
    try:
        with server.http(ADMIN) as admin, server.http(READER) as reader, server.http() as anonymous:
            scrape = Scraper(admin)
            before = scrape()
            assert anonymous.get("/metrics").status_code == 401
            assert reader.get("/metrics").status_code == 403
            assert anonymous.get(object_path("met/auth/o")).status_code == 401
            assert reader.put(object_path("met/auth/o"), content=b"x", headers={"Content-Type": RAW}).status_code == 403
            with server.client() as client:
                with pytest.raises(flight.FlightUnauthenticatedError):
                    get(client, "met/auth/o:0")
                with pytest.raises(KeyError):
                    client.do_get(flight.Ticket(b"met/auth/o:0"), options=bearer(READER)).read_all()
                with pytest.raises(flight.FlightUnauthorizedError):
                    list(client.do_action(flight.Action("DELETE", b"met/auth/o"), options=bearer(READER)))
                # refused by the middleware, before any handler, as UNAUTHENTICATED (pyarrow's client
                # raises every status of GetSchema as OSError)
                with pytest.raises(OSError, match="needs a token"):
                    client.get_schema(flight.FlightDescriptor.for_path("met/auth/o"))
                client.authenticate_basic_token(b"ops", ADMIN.encode())
                with pytest.raises(flight.FlightUnauthenticatedError):
                    client.authenticate_basic_token(b"ops", b"not the token")
            scrape.settled(
                before,
                {
                    requests("http", "GET /metrics", "401"): 1,
                    requests("http", "GET /metrics", "403"): 1,
                    requests("http", "GET /v1/objects/{key}", "401"): 1,
                    requests("http", "PUT /v1/objects/{key}", "403"): 1,
                    requests("flight", "DoGet", "UNAUTHENTICATED"): 1,
                    requests("flight", "DoGet", "NOT_FOUND"): 1,
                    requests("flight", "DoAction DELETE", "PERMISSION_DENIED"): 1,
                    requests("flight", "GetSchema", "UNAUTHENTICATED"): 1,
                    requests("flight", "Handshake", "OK"): 1,
                    requests("flight", "Handshake", "UNAUTHENTICATED"): 1,
                },
            )
    finally:
        server.stop()


# -- the Grafana dashboard -------------------------------------------------------------


# PromQL's words that are not metric names: functions, aggregations, keywords
PROMQL = {
    "sum", "avg", "min", "max", "count", "rate", "irate", "increase", "delta", "histogram_quantile", "topk",
    "bottomk", "abs", "clamp_min", "clamp_max", "label_replace", "vector", "scalar", "time", "by", "without",
    "on", "ignoring", "group_left", "group_right", "and", "or", "unless", "offset", "bool",
}  # fmt: skip


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects: what is left once strings,
    label matchers, ranges, `by (...)` lists, numbers and PromQL's own words
    are taken out. Grafana's `label_values(metric, label)` names `metric`."""
    expr = re.sub(r"label_values\(\s*([\w:]+)\s*,[^)]*\)", r"\1", expr)
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', "", expr)
    expr = re.sub(r"\{[^}]*\}|\[[^\]]*\]", "", expr)
    expr = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", expr)
    return {word for word in re.findall(r"(?<![\w.$])[A-Za-z_:][\w:]*", expr)} - PROMQL


def dashboard_expressions(dashboard: dict) -> list[tuple[str, str]]:
    """(where, expr) of every panel's target (rows' panels too) and every query variable."""
    found = []
    panels = list(dashboard["panels"])
    while panels:
        panel = panels.pop(0)
        panels += panel.get("panels", [])
        for target in panel.get("targets", []):
            found.append((panel["title"], target["expr"]))
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            query = variable["query"]
            found.append((f"${variable['name']}", query["query"] if isinstance(query, dict) else query))
    return found


def test_metric_names_of_an_expression() -> None:
    assert metric_names(
        'histogram_quantile(0.99, sum by (le, protocol) (rate(flame_cache_request_seconds_bucket{outcome!~"OK|4.."}[$__rate_interval])))'
    ) == {"flame_cache_request_seconds_bucket"}
    assert metric_names("sum(rate(a_sum[5m])) / sum(rate(a_count[5m])) + b") == {"a_sum", "a_count", "b"}
    assert metric_names("label_values(flame_cache_objects, instance)") == {"flame_cache_objects"}


def test_the_dashboard_uses_only_metrics_the_server_serves(server: CacheServer, http: httpx.Client) -> None:
    with server.client() as client:  # requests on both protocols, one of them refused
        put_path(client, "met/dash/o", b"dashboard")
        get(client, "met/dash/o:0")
        with pytest.raises(KeyError):
            get(client, "met/dash/missing:0")
    assert http.get(object_path("met/dash/o")).status_code == 200
    served = {name for name, _ in Scraper(http)()}
    dashboard = json.loads(DASHBOARD.read_text())
    (source,) = [v for v in dashboard["templating"]["list"] if v["type"] == "datasource"]
    assert source["query"] == "prometheus"
    expressions = dashboard_expressions(dashboard)
    assert len(expressions) >= 15
    used: set[str] = set()
    for where, expr in expressions:
        names = metric_names(expr)
        assert names, (where, expr)
        assert names <= served, f"{where}: {sorted(names - served)} not in /metrics ({expr})"
        used |= names
    families = {re.sub(r"_(total|bucket|sum|count)$", "", name) for name in used}
    assert {
        "flame_cache_requests", "flame_cache_request_seconds", "flame_cache_request_bytes",
        "flame_cache_requests_in_flight", "flame_cache_objects", "flame_cache_disk_bytes", "flame_cache_memory_bytes",
        "flame_cache_evictions", "flame_cache_quarantines", "flame_cache_checksum_failures",
    } <= families  # fmt: skip
    panels = [p for p in dashboard["panels"] if p["type"] != "row"]
    assert all(p["datasource"]["uid"] == "${datasource}" for p in panels)

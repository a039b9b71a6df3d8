"""What the metrics (SPEC 10) cost a request, measured piece by piece.

    python -m bench.metrics_cost [--calls 200000] [--flight-calls 5000] [--rounds 3]

Rows (medians over --rounds; each row's own time, the loop's subtracted):
- a request's in-flight entry and report: what every request of either protocol pays
  (two appends and a pop), and `sum()` per request (what the background thread
  pays to fold one into the sums: a bucket, the outcome, the bytes); the same
  figures kept with prometheus-client's Counter, Histogram and Gauge, for
  comparison;
- Flight: `flight.rpc.rpc` (errors, failure log, metrics) around a handler that
  does nothing but one `sent` (what DoGet adds), against the same handler in a
  wrapper that only catches errors, as the one before the metrics did;
- HTTP: one request (start, one body message) through the edge (http/edge.py,
  which reports to the metrics) to an ASGI app that answers at once, against
  the app alone, and against the edge with its reporting made no-ops;
- a pyarrow Python ServerMiddleware that does nothing (start_call returns an
  instance whose call_completed passes), measured as the server's CPU per 1 KiB
  DoGet of a bare pyarrow.flight server (its own process, a client in another),
  with and without it: why Flight's metrics are not a middleware.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from flame_cache.flight.metrics import sent
from flame_cache.flight.rpc import Meter, rpc
from flame_cache.http.edge import Edge
from flame_cache.http.metrics import Operations
from flame_cache.http.origins import AllowedHosts
from flame_cache.metrics.requests import BUCKETS, RequestMetrics

REPO = Path(__file__).resolve().parent.parent


def per_call(function: Callable[[], object], calls: int) -> float:
    """Microseconds one call of `function` takes, a plain loop's time subtracted."""
    started = time.perf_counter()
    for _ in range(calls):
        function()
    spent = time.perf_counter() - started
    started = time.perf_counter()
    for _ in range(calls):
        pass
    return (spent - (time.perf_counter() - started)) / calls * 1e6


def request_metrics() -> Callable[[], None]:
    requests = RequestMetrics(sum_every=None)
    flying, report = requests.in_flight("flight"), requests.report

    def one() -> None:  # what flight/rpc.py and http/edge.py do for a request
        flying.append(True)
        started = time.perf_counter()
        report(("flight", "DoGet", "OK", time.perf_counter() - started, 1024, 2048))
        flying.pop()

    return one


def summing(calls: int) -> float:
    """Microseconds `RequestMetrics.sum` takes per reported request."""
    requests = RequestMetrics(sum_every=None)
    for _ in range(calls):
        requests.observe("flight", "DoGet", "OK", 0.0003, 1024, 2048)
    started = time.perf_counter()
    requests.sum()
    return (time.perf_counter() - started) / calls * 1e6


def prometheus_client_metrics() -> Callable[[], None]:
    registry = CollectorRegistry()
    total = Counter("r", "r", ["protocol", "operation", "outcome"], registry=registry).labels("flight", "DoGet", "OK")
    seconds = Histogram("s", "s", ["protocol", "operation"], buckets=BUCKETS, registry=registry).labels("flight", "DoGet")
    moved = Counter("b", "b", ["protocol", "direction"], registry=registry)
    received, sending = moved.labels("flight", "in"), moved.labels("flight", "out")
    flying = Gauge("f", "f", ["protocol"], registry=registry).labels("flight")

    def one() -> None:  # the children looked up once, as a careful caller would
        flying.inc()
        started = time.perf_counter()
        total.inc()
        seconds.observe(time.perf_counter() - started)
        received.inc(1024)
        sending.inc(2048)
        flying.dec()

    return one


class _Server:
    meter = Meter(RequestMetrics(sum_every=None))

    def do_get(self, context: object, ticket: object) -> None:
        sent(context, 2048)


def errors_only(method: Callable) -> Callable:
    """A wrapper that catches and re-raises, as every handler had before the metrics."""

    def wrapper(self, context, *args):  # noqa: ANN001, ANN202
        try:
            return method(self, context, *args)
        except Exception:
            raise

    return wrapper


def flight_wrapper() -> tuple[Callable[[], None], Callable[[], None]]:
    server, context = _Server(), object()
    wrapped, baseline = rpc(_Server.do_get), errors_only(_Server.do_get)
    return (lambda: wrapped(server, context, None)), (lambda: baseline(server, context, None))


def http_edge(calls: int) -> tuple[float, float, float]:
    """Microseconds per request: through the edge (http/edge.py: its rules,
    Date, the failure log's check, the metrics), through the same edge with
    its reporting and naming made no-ops, and the app alone."""
    start = {"type": "http.response.start", "status": 200, "headers": []}
    body = {"type": "http.response.body", "body": b"x" * 1024}
    request = {"type": "http.request", "body": b"", "more_body": False}

    async def app(scope, receive, send) -> None:  # noqa: ANN001 (ASGI)
        await receive()
        await send(dict(start))
        await send(body)

    async def receive() -> dict:
        return request

    async def send(message: dict) -> None:
        pass

    scope = {"type": "http", "method": "GET", "path": "/v1/objects/a/b/c", "raw_path": b"/v1/objects/a/b/c",
             "query_string": b"", "headers": [(b"host", b"127.0.0.1")], "server": ("127.0.0.1", 80)}  # fmt: skip
    hosts = AllowedHosts(["127.0.0.1"])
    edge = Edge(app, hosts, RequestMetrics(sum_every=None), Operations([]))
    silent = Edge(app, hosts, RequestMetrics(sum_every=None), Operations([]))
    silent.report = lambda record: None
    silent.operations = _Unnamed()

    async def run(target) -> float:  # noqa: ANN001
        started = time.perf_counter()
        for _ in range(calls):
            await target(dict(scope), receive, send)
        return (time.perf_counter() - started) / calls * 1e6

    loop = asyncio.new_event_loop()
    try:
        return tuple(loop.run_until_complete(run(target)) for target in (edge, silent, app))  # type: ignore[return-value]
    finally:
        loop.close()


class _Unnamed:
    def name(self, scope: object) -> str:
        return ""


FLIGHT_SERVER = textwrap.dedent(
    """
    import sys
    import pyarrow as pa, pyarrow.flight as flight

    class Nothing(flight.ServerMiddleware):
        def call_completed(self, exception):
            pass

    class Factory(flight.ServerMiddlewareFactory):
        def start_call(self, info, headers):
            return Nothing()

    TABLE = pa.table({"data": [b"x" * 1024]})

    class Server(flight.FlightServerBase):
        def do_get(self, context, ticket):
            return flight.RecordBatchStream(TABLE)

    server = Server("grpc://127.0.0.1:0", middleware={"m": Factory()} if sys.argv[1] == "on" else {})
    print(server.port, flush=True)
    server.serve()
    """
)
FLIGHT_CLIENT = textwrap.dedent(
    """
    import sys, time
    import pyarrow.flight as flight
    client = flight.FlightClient(f"grpc://127.0.0.1:{sys.argv[1]}")
    ticket = flight.Ticket(b"k")
    for _ in range(300):  # connected, warm
        client.do_get(ticket).read_all()
    print("ready", flush=True)
    sys.stdin.readline()
    started = time.perf_counter()
    for _ in range(int(sys.argv[2])):
        client.do_get(ticket).read_all()
    print(time.perf_counter() - started, flush=True)
    """
)


def server_cpu(pid: int) -> float:
    """User plus system seconds of a process, from /proc/<pid>/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / 100  # clock ticks (USER_HZ = 100)


def flight_middleware(middleware: str, calls: int) -> tuple[float, float]:
    """(server CPU µs, wall µs) per DoGet with the no-op middleware `on` or `off`."""
    server = subprocess.Popen([sys.executable, "-c", FLIGHT_SERVER, middleware], stdout=subprocess.PIPE, text=True)
    try:
        port = server.stdout.readline().strip()
        client = subprocess.Popen(
            [sys.executable, "-c", FLIGHT_CLIENT, port, str(calls)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        assert client.stdout.readline().strip() == "ready"
        cpu = server_cpu(server.pid)
        wall, _ = client.communicate("go\n")
        return (server_cpu(server.pid) - cpu) / calls * 1e6, float(wall) / calls * 1e6
    finally:
        server.kill()
        server.wait()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.metrics_cost", description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=200_000, help="calls per in-process row and round")
    parser.add_argument("--flight-calls", type=int, default=5000, help="DoGets per middleware row and round (0: skip)")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    rows: dict[str, list[float]] = {}
    for _ in range(args.rounds):
        rows.setdefault("RequestMetrics: in flight + report", []).append(per_call(request_metrics(), args.calls))
        rows.setdefault("RequestMetrics sum, per request (background thread)", []).append(summing(args.calls))
        rows.setdefault("prometheus-client Counter/Histogram/Gauge, same figures", []).append(
            per_call(prometheus_client_metrics(), args.calls)
        )
        wrapped, bare = flight_wrapper()
        rows.setdefault("Flight: rpc wrapper + sent, less an errors-only wrapper", []).append(
            per_call(wrapped, args.calls) - per_call(bare, args.calls)
        )
        through, silent, alone = http_edge(args.calls // 4)
        rows.setdefault("HTTP: through the edge (all its rules and the metrics), less the app alone", []).append(through - alone)
        rows.setdefault("HTTP: of that, the metrics (the edge less the edge reporting nothing)", []).append(through - silent)
        if args.flight_calls:
            for state in ("off", "on"):
                cpu, wall = flight_middleware(state, args.flight_calls)
                rows.setdefault(f"pyarrow: server CPU per 1 KiB DoGet, no-op Python middleware {state}", []).append(cpu)
                rows.setdefault(f"pyarrow: wall time per 1 KiB DoGet, no-op Python middleware {state}", []).append(wall)
    width = max(map(len, rows))
    print(f"{'row':<{width}}  median µs  (rounds)")
    for name, values in rows.items():
        print(f"{name:<{width}}  {statistics.median(values):9.2f}  ({', '.join(f'{v:.2f}' for v in values)})")


if __name__ == "__main__":
    main()

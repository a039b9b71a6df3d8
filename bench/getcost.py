"""Where the time of a large get goes: the client or the server.

flamepy reads an object as one `base` row, so its bytes travel as one gRPC
message. This times gets of one object with that ticket and with the
`chunked:` ticket (the same bytes as 4 MiB rows, which flamepy 0.6 refuses:
it wants exactly one base row), and counts per get the CPU time of the client
(this process: user, system, minor page faults) and of the server (from
/proc). Run alone, on a quiet machine:

    python -m bench.getcost --size 64M
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path

import pyarrow.flight as flight

from bench.clients import FlightAdapter, Payload, data_bytes
from bench.report import parse_size
from bench.servers import FlameCache

TICKETS = {"one row (flamepy)": "{key}:0", "chunked: 4 MiB rows": "chunked:{key}:0"}


def server_cpu(pid: int) -> float:
    """User plus system seconds of a process, from /proc/<pid>/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / 100  # utime, stime in clock ticks (USER_HZ = 100)


def measure(client: flight.FlightClient, pid: int, ticket: str, size: int, seconds: float) -> dict[str, float]:
    def get() -> None:
        if data_bytes(client.do_get(flight.Ticket(ticket.encode())).read_all()) != size:
            raise RuntimeError(f"{ticket}: wrong length")

    get()  # warm: object mapped, connection open
    before, server_before, count = resource.getrusage(resource.RUSAGE_SELF), server_cpu(pid), 0
    started = time.perf_counter()
    while time.perf_counter() - started < seconds or count < 3:
        get()
        count += 1
    elapsed = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_SELF)
    return {
        "GB/s": count * size / elapsed / 1e9,
        "ms/get": elapsed / count * 1e3,
        "client user ms": (after.ru_utime - before.ru_utime) / count * 1e3,
        "client sys ms": (after.ru_stime - before.ru_stime) / count * 1e3,
        "client faults": (after.ru_minflt - before.ru_minflt) / count,
        "server cpu ms": (server_cpu(pid) - server_before) / count * 1e3,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="64M", help="object size (default 64M)")
    parser.add_argument("--seconds", type=float, default=3.0, help="timed seconds per ticket form")
    args = parser.parse_args(argv)
    size = parse_size(args.size)
    with tempfile.TemporaryDirectory(prefix="flame-getcost-") as scratch:
        server = FlameCache(Path(scratch))
        server.start()
        try:
            adapter = FlightAdapter(server.endpoint)
            adapter.put("bench/getcost/obj", Payload(size))
            rows = {
                name: measure(adapter.client, server.pid, form.format(key="bench/getcost/obj"), size, args.seconds)
                for name, form in TICKETS.items()
            }
            adapter.close()
        finally:
            server.stop()
    columns = list(next(iter(rows.values())))
    print(f"get of {args.size} over Flight, per get")
    print(f"| ticket | {' | '.join(columns)} |\n|---|{'---|' * len(columns)}")
    for name, row in rows.items():
        print(f"| {name} | {' | '.join(f'{value:,.2f}' if value < 100 else f'{value:,.0f}' for value in row.values())} |")


if __name__ == "__main__":
    main()

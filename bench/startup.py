"""Start-up with many objects on disk, and the index's memory per object.

The objects are written straight into flame-cache's on-disk layout
(`<root>/bench/sess<NNN>/<uuid>.arrow`, an Arrow IPC file of flamepy's opaque
rows `version: uint64 = 1, data: binary`): one file is made with pyarrow and
written once per session folder, and every other object of that folder is a
hard link to it. That takes seconds where writing 100,000 small files takes
a minute on a loaded disk, and the server cannot tell: it lists names, and
reads only the object asked for. (A session holds 1,000 objects, far below
ext4's 65,000 links per file.)

Start-up time is from process spawn until a DoGet of one of those objects
answers with its bytes; the client dials a fresh connection every few
milliseconds (a fresh one each time, so gRPC's reconnect back-off does not
add to the figure). Index memory is the server's RSS right after that first
answer, minus the RSS of a server holding one object measured the same way
(its first get reads that object, so both have read one object and set up
pyarrow's memory pool for it), divided by the objects the first one holds
more. The files were just written, so the page cache is warm.
"""

from __future__ import annotations

import os
import re
import socket
import statistics
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pyarrow.flight as flight

from bench import procmem
from bench.clients import data_bytes, make_bytes
from bench.servers import FlameCache

SESSIONS = 100


def object_file_bytes(size: int) -> bytes:
    schema = pa.schema([("version", pa.uint64()), ("data", pa.binary())])
    batch = pa.record_batch([pa.array([1], pa.uint64()), pa.array([make_bytes(size)], pa.binary())], schema=schema)
    sink = pa.BufferOutputStream()
    with pa.ipc.new_file(sink, schema) as writer:
        writer.write_batch(batch)
    return sink.getvalue().to_pybytes()


def generate(root: Path, count: int, size: int = 1024) -> str:
    """Write `count` objects under `root`; returns the key of one of them."""
    blob = object_file_bytes(size)
    per_session = -(-count // SESSIONS)
    first = None
    written = 0
    for s in range(SESSIONS):
        folder = root / "bench" / f"sess{s:03d}"
        folder.mkdir(parents=True, exist_ok=True)
        source = None
        for _ in range(min(per_session, count - written)):
            name = str(uuid.uuid4())
            path = folder / f"{name}.arrow"
            if source is None:
                path.write_bytes(blob)
                source = path
            else:
                os.link(source, path)
            written += 1
            first = first or f"bench/sess{s:03d}/{name}"
        if written >= count:
            break
    return first


def _time_to_first_get(server: FlameCache, key: str, expect: int | None, timeout: float = 120.0) -> float:
    """Seconds from spawn until DoGet `<key>:0` answers (NOT_FOUND counts when `expect` is None)."""
    server.spawn()
    deadline = server.started_at + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"flame-cache exited with {server.process.returncode}:\n{server.log()[-3000:]}")
        try:
            socket.create_connection(("127.0.0.1", server.port), timeout=0.05).close()
        except OSError:
            time.sleep(0.002)
            continue
        try:
            with flight.FlightClient(server.endpoint) as client:
                table = client.do_get(
                    flight.Ticket(f"{key}:0".encode()), flight.FlightCallOptions(timeout=30)
                ).read_all()
            if expect is not None and data_bytes(table) != expect:
                raise RuntimeError(f"first get of {key}: {data_bytes(table)} bytes, expected {expect}")
            return time.monotonic() - server.started_at
        except flight.FlightUnavailableError:
            time.sleep(0.002)
        except flight.FlightError as exc:
            if expect is None and ("not found" in str(exc).lower() or isinstance(exc, KeyError)):
                return time.monotonic() - server.started_at
            raise
        except KeyError:
            if expect is None:
                return time.monotonic() - server.started_at
            raise
    raise RuntimeError(f"flame-cache did not answer within {timeout}s")


_INDEXED = re.compile(r"indexed (\d+) object\(s\) in .* in ([0-9.]+)s")


def measure(workdir: Path, count: int, repeats: int, progress: Callable[[str], None], size: int = 1024) -> dict:
    full_root = workdir / "startup-store"
    empty_root = workdir / "startup-empty"
    empty_root.mkdir(parents=True, exist_ok=True)
    single_key = generate(empty_root, 1, size)
    progress(f"start-up: writing {count:,} objects of {size} B into {full_root}")
    t = time.monotonic()
    key = generate(full_root, count, size)
    generated = time.monotonic() - t

    def runs(storage: Path, key: str, what: str) -> tuple[list[float], list[int], list[float]]:
        """Time to first get, RSS right after it, and the logged index scan, per run."""
        times, rss, logged = [], [], []
        for i in range(repeats):
            progress(f"start-up: {what}, run {i + 1}/{repeats}")
            server = FlameCache(workdir, storage=storage)
            try:
                times.append(_time_to_first_get(server, key, size))
                time.sleep(0.2)
                rss.append(procmem.rss(server.pid))
            finally:
                server.stop()
            match = _INDEXED.search(server.log())
            if match:
                logged.append(float(match.group(2)))
        return times, rss, logged

    empty_times, empty_rss, _ = runs(empty_root, single_key, "a server with one object")
    full_times, full_rss, logged = runs(full_root, key, f"{count:,} objects")

    rss_empty = statistics.median(empty_rss)
    rss_full = statistics.median(full_rss)
    return {
        "objects": count,
        "object_bytes": size,
        "generate_s": generated,
        "repeats": repeats,
        "first_get_s": statistics.median(full_times),
        "first_get_s_all": full_times,
        "empty_first_get_s": statistics.median(empty_times),
        "index_scan_s_logged": statistics.median(logged) if logged else None,
        "rss_empty": rss_empty,
        "rss_full": rss_full,
        "index_bytes_per_object": (rss_full - rss_empty) / (count - 1),
    }

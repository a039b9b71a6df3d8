"""Client worker processes and the timed loop they run.

Clients run in their own processes (multiprocessing, spawn), never in the
process that watches the servers, so neither the GIL of one client nor the
RSS sampler slows another. A `Pool` of N workers is started once; a row
sends one task per client:

1. (first repeat) a warm-up: one untimed operation per client, so
   connections are open and the object is loaded;
2. the timed run: every client waits for the same `start_at` instant, then
   repeats its operation until it has done `min_ops` and `min_time` has
   passed (or `max_ops` is reached).

A repeat's throughput is all clients' operations divided by the wall time
from the first client's start to the last client's end.
"""

from __future__ import annotations

import multiprocessing as mp
import queue
import time
import traceback
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from bench.clients import NotAvailable, Payload, make_adapter

KiB, MiB, GiB = 1 << 10, 1 << 20, 1 << 30


# -- inside a worker process ---------------------------------------------------


class _WorkerState:
    def __init__(self, row_bytes: int | None) -> None:
        self.row_bytes = row_bytes
        self.adapters: dict[tuple, Any] = {}
        self.payloads: OrderedDict[int, Payload] = OrderedDict()

    def adapter(self, address: dict):
        key = (address["kind"], address["endpoint"])
        if key not in self.adapters:
            for old in self.adapters.values():  # one server at a time: drop clients of earlier ones
                try:
                    old.close()
                except Exception:
                    pass
            self.adapters = {key: make_adapter(address)}
        return self.adapters[key]

    def payload(self, size: int) -> Payload:
        if size in self.payloads:
            self.payloads.move_to_end(size)
            return self.payloads[size]
        while self.payloads and (len(self.payloads) >= 3 or size >= 256 * MiB):
            self.payloads.popitem(last=False)  # keep client memory bounded for the big ones
        payload = Payload(size, self.row_bytes)
        self.payloads[size] = payload
        return payload


def _operation(state: _WorkerState, adapter, task: dict):
    """(the callable to time, payload bytes it moves)."""
    op, key, size = task["op"], task["key"], task["size"]
    if op == "put":
        payload = state.payload(size)
        return (lambda: adapter.put(key, payload)), size
    if op == "get":

        def get() -> None:
            got = adapter.get(key)
            if got != size:
                raise RuntimeError(f"get {key}: {got} bytes, expected {size}")

        return get, size
    if op == "not-modified":
        version = task["version"]
        return (lambda: adapter.not_modified(key, version)), 0
    if op == "patch":
        payload = state.payload(size)
        return (lambda: adapter.patch(key, payload)), size
    if op == "patch-read":
        since, rows = task["since"], task["rows"]

        def patch_read() -> None:
            got = adapter.patches(key, since)
            if got != rows:
                raise RuntimeError(f"patch-only read {key}:{since}: {got} rows, expected {rows}")

        return patch_read, size * rows
    raise ValueError(f"unknown op {op!r}")


def _setup(state: _WorkerState, adapter, task: dict) -> dict:
    op, key, size = task["op"], task["key"], task["size"]
    if op == "setup-put":
        return {"version": adapter.put(key, state.payload(size))}
    if op == "setup-not-modified":
        return {"version": adapter.prepare_not_modified(key, state.payload(size))}
    if op == "setup-patches":
        base = adapter.put(key, state.payload(task["base_size"]))
        delta = state.payload(size)
        version = base
        for _ in range(task["count"]):
            version = adapter.patch(key, delta)
        return {"base_version": base, "version": version}
    raise ValueError(f"unknown setup op {op!r}")


def _run_task(state: _WorkerState, task: dict) -> dict:
    adapter = state.adapter(task["address"])
    if task["op"].startswith("setup-"):
        return _setup(state, adapter, task)
    fn, nbytes = _operation(state, adapter, task)
    if task.get("warmup"):
        fn()
        return {"warm": True}
    delay = task["start_at"] - time.monotonic()
    if delay > 0:
        time.sleep(delay)
    min_ops, max_ops, min_time = task.get("min_ops", 1), task.get("max_ops") or 1 << 62, task.get("min_time", 0.0)
    latencies: list[float] = []
    clock = time.perf_counter
    started = time.monotonic()
    n = 0
    while True:
        t = clock()
        fn()
        latencies.append(clock() - t)
        n += 1
        if n >= max_ops or (n >= min_ops and time.monotonic() - started >= min_time):
            break
    ended = time.monotonic()
    return {"n": n, "bytes": n * nbytes, "start": started, "end": ended, "lat": latencies}


def worker_main(index: int, tasks: mp.Queue, results: mp.Queue, row_bytes: int | None) -> None:
    state = _WorkerState(row_bytes)
    while True:
        task = tasks.get()
        if task is None:
            break
        try:
            out = _run_task(state, task)
        except NotAvailable as exc:
            out = {"na": str(exc)}
        except Exception as exc:
            out = {"error": f"{type(exc).__name__}: {exc}"[:600], "trace": traceback.format_exc()[-2000:]}
        results.put((index, task["tid"], out))


# -- in the main process ---------------------------------------------------------


class WorkerError(RuntimeError):
    pass


class NotAvailableError(RuntimeError):
    pass


@dataclass
class Repeat:
    ops_s: float
    bytes_s: float
    n: int
    wall: float
    latencies: list[float] = field(repr=False)


class Pool:
    def __init__(self, size: int, row_bytes: int | None) -> None:
        ctx = mp.get_context("spawn")
        self.results: mp.Queue = ctx.Queue()
        self.queues = [ctx.Queue() for _ in range(size)]
        self.procs = [
            ctx.Process(target=worker_main, args=(i, q, self.results, row_bytes), name=f"bench-client-{i}", daemon=True)
            for i, q in enumerate(self.queues)
        ]
        for p in self.procs:
            p.start()
        self._tid = 0

    @property
    def size(self) -> int:
        return len(self.procs)

    def call(self, tasks: list[dict], timeout: float = 1800.0) -> list[dict]:
        """Run tasks[i] on worker i; results in the same order. Raises on a client error."""
        if len(tasks) > len(self.procs):
            raise ValueError(f"{len(tasks)} tasks for {len(self.procs)} workers")
        self._tid += 1
        tid = self._tid
        for q, task in zip(self.queues, tasks, strict=False):
            q.put({**task, "tid": tid})
        out: dict[int, dict] = {}
        deadline = time.monotonic() + timeout
        while len(out) < len(tasks):
            try:
                index, got_tid, result = self.results.get(timeout=1.0)
            except queue.Empty:
                dead = [p.name for p in self.procs[: len(tasks)] if not p.is_alive()]
                if dead:
                    raise WorkerError(f"client process(es) died: {', '.join(dead)}") from None
                if time.monotonic() > deadline:
                    raise WorkerError(f"clients did not finish within {timeout}s") from None
                continue
            if got_tid == tid:
                out[index] = result
        results = [out[i] for i in range(len(tasks))]
        for r in results:
            if "na" in r:
                raise NotAvailableError(r["na"])
        errors = [r for r in results if "error" in r]
        if errors:
            raise WorkerError(f"{len(errors)} of {len(tasks)} client(s) failed; first: {errors[0]['error']}")
        return results

    def setup(self, task: dict) -> dict:
        return self.call([task])[0]

    def warmup(self, tasks: list[dict]) -> None:
        self.call([{**t, "warmup": True} for t in tasks])

    def timed(self, tasks: list[dict]) -> Repeat:
        start_at = time.monotonic() + 0.05 + 0.01 * len(tasks)
        results = self.call([{**t, "start_at": start_at} for t in tasks])
        wall = max(r["end"] for r in results) - min(r["start"] for r in results)
        n = sum(r["n"] for r in results)
        nbytes = sum(r["bytes"] for r in results)
        latencies = [x for r in results for x in r["lat"]]
        return Repeat(n / wall, nbytes / wall, n, wall, latencies)

    def close(self) -> None:
        for q in self.queues:
            q.put(None)
        for p in self.procs:
            p.join(timeout=10)
            if p.is_alive():
                p.terminate()

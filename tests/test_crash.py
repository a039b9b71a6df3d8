"""Crash safety (issue 4.1, SPEC 7): nothing acknowledged is lost to `kill -9`.

One server process on one storage directory is killed with SIGKILL at random moments
while several clients create, replace and patch shared keys with self-checking payloads
(tests/payloads.py), and readers check every object they get. After each kill the server
restarts on the same storage, which must never fail, and every key must read back at the
version last acknowledged or later, with the acknowledged bytes, and whole.

About 50 s on 2 cores. The seed is printed, and FLAME_CRASH_SEED=<n> replays its choices
(the kill moments interleave with the threads, so a replay is close, not exact).
"""

from __future__ import annotations

import os
import random
import signal
import threading
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.flight as flight

from tests.flight_client import MiB, get, patch, put_path, rows
from tests.payloads import Ledger, make_payload
from tests.server import CacheServer

KILLS = 22
WRITERS = 4
NAMESPACES = ("crash/a", "crash/b", "seed")
MAX_KEYS = 48  # beyond it, writes go to existing keys: each restart reads every key back


class Run:
    """The clients of one server lifetime; they stop at the first error (the kill)."""

    def __init__(self, endpoint: str, ledger: Ledger, keys: list[str], rng: random.Random, cycle: int) -> None:
        self.endpoint, self.ledger, self.keys, self.cycle = endpoint, ledger, keys, cycle
        self.seeds = [rng.randrange(2**32) for _ in range(WRITERS + 1)]
        self.keys_lock = threading.Lock()
        self.stop = threading.Event()
        self.attempted = 0
        self.failed = 0

    def threads(self) -> list[threading.Thread]:
        writers = [threading.Thread(target=self._write, args=(i,), daemon=True) for i in range(WRITERS)]
        return [*writers, threading.Thread(target=self._read, daemon=True)]

    def _write(self, index: int) -> None:
        rng = random.Random(self.seeds[index])
        name = f"c{self.cycle}w{index}"
        with flight.FlightClient(self.endpoint) as client:
            for seq in range(10**6):
                if self.stop.is_set():
                    return
                self.attempted += 1
                try:
                    self._one_write(client, rng, name, seq)
                except (flight.FlightError, pa.ArrowException, OSError):
                    self.failed += 1
                    return  # the server is gone (or going)

    def _one_write(self, client: flight.FlightClient, rng: random.Random, name: str, seq: int) -> None:
        size = rng.choice([rng.randrange(100, 8192)] * 9 + [rng.randrange(MiB // 2, 2 * MiB)])
        rows_of = 256 * 1024 if size > MiB // 2 else None  # large ones in rows, as flamepy's upload_object
        with self.keys_lock:
            key = rng.choice(self.keys) if self.keys else None
            full = len(self.keys) >= MAX_KEYS
        choice = rng.random()
        if full and choice < 0.16:
            choice = 0.16 + choice  # a replace instead of a create
        if key is None or choice < 0.12:  # create in a namespace (a fresh uuid key)
            target = rng.choice(NAMESPACES)
            payload = make_payload(target, name, seq, "base", size)
            ack = put_path(client, target, payload, row_bytes=rows_of)
        elif choice < 0.16:  # create exactly a 3-segment key
            target = f"crash/named/{name}-{seq}"
            payload = make_payload(target, name, seq, "base", size)
            ack = put_path(client, target, payload, row_bytes=rows_of)
        elif choice < 0.40:  # replace
            target = key
            payload = make_payload(target, name, seq, "base", size)
            ack = put_path(client, target, payload, row_bytes=rows_of)
        else:  # patch
            target = key
            payload = make_payload(target, name, seq, "patch", min(size, 64 * 1024))
            ack = patch(client, target, payload)
        self.ledger.record(ack["key"], ack["version"], payload)
        if ack["key"] != target:
            with self.keys_lock:
                self.keys.append(ack["key"])

    def _read(self) -> None:
        rng = random.Random(self.seeds[-1])
        with flight.FlightClient(self.endpoint) as client:
            while not self.stop.is_set():
                keys = self.ledger.keys()
                if not keys:
                    time.sleep(0.01)
                    continue
                key = rng.choice(keys)
                try:
                    got = rows(get(client, key))
                except (flight.FlightError, pa.ArrowException, OSError):
                    return
                problem = self.ledger.check_read(key, got)
                if problem:
                    self.ledger.problem(f"served while running: {problem}")


def verify(server: CacheServer, ledger: Ledger) -> None:
    """Every acknowledged key reads back whole, at its last acknowledged version or later."""
    with server.client() as client:
        for key in ledger.keys():
            latest, payload = ledger.latest(key)
            try:
                got = rows(get(client, key))
            except KeyError:
                ledger.problem(f"after restart: {key} (acknowledged at version {latest}) is gone")
                continue
            problem = ledger.check_read(key, got)
            if problem:
                ledger.problem(f"after restart: {problem}")
            elif got[-1][0] < latest:
                ledger.problem(f"after restart: {key} is at version {got[-1][0]}, but {latest} was acknowledged")


def temp_files(root: Path, *, outside_deltas: bool = False) -> list[str]:
    found = [str(p.relative_to(root)) for p in root.rglob("*") if ".tmp-" in p.name]
    return [f for f in found if ".deltas/" not in f] if outside_deltas else found


def test_acknowledged_writes_survive_kill_9_at_random_moments(tmp_path: Path):
    seed = int(os.environ.get("FLAME_CRASH_SEED", random.randrange(2**32)))
    print(f"FLAME_CRASH_SEED={seed}")
    rng = random.Random(seed)
    # small memory: objects get evicted and read back from disk while the clients run
    server = CacheServer(tmp_path, tmp_path / "storage", eviction={"max_memory": "8M"})
    ledger, keys = Ledger(), []
    attempted = failed = 0
    try:
        for cycle in range(KILLS + 1):
            server.start()  # raises, with the server's log, if start-up fails
            assert not temp_files(server.storage, outside_deltas=True), "start-up left temporary files"
            verify(server, ledger)
            assert not ledger.problems, "\n".join(ledger.problems[:20])
            if cycle == KILLS:
                break
            run = Run(server.endpoint, ledger, keys, rng, cycle)
            threads = run.threads()
            for thread in threads:
                thread.start()
            time.sleep(rng.uniform(0.3, 1.2))
            server.process.send_signal(signal.SIGKILL)
            server.process.wait()
            run.stop.set()
            for thread in threads:
                thread.join(60)
            attempted, failed = attempted + run.attempted, failed + run.failed

        with server.client() as client:  # every object on disk, acknowledged or not, is whole
            for info in client.list_flights(b""):
                key = "/".join(p.decode() for p in info.descriptor.path)
                problem = ledger.check_read(key, rows(get(client, key)))
                assert problem is None, problem
        assert not temp_files(server.storage)
    finally:
        server.stop()
    print(f"{KILLS} kills, {attempted} writes attempted, {ledger.count()} acknowledged, {failed} cut off by a kill")
    assert ledger.count() >= 20 * KILLS, "too few writes were acknowledged for the test to mean much"
    assert failed >= KILLS // 2, "too few kills hit a write in flight"

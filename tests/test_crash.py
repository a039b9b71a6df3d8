"""Crash safety (issue 4.1, SPEC 7): nothing acknowledged is lost to `kill -9`, whichever
protocol carried it.

One server process (Flight and the HTTP mirror) on one storage directory is killed with
SIGKILL at random moments while clients create, replace and patch shared keys with
self-checking payloads (tests/payloads.py): half the writers over Flight, half over HTTP
(PUT, POST, PATCH), and readers on both check every object they get. One more client
streams HTTP uploads over 4 MiB (they go to a temporary file beside their target): each
kill lands while one of them is half sent, its temporary file open on the server.

After each kill the server restarts on the same storage, which must never fail and must
leave no temporary file; every key must read back, over Flight and over HTTP alike, at
the version last acknowledged or later, with the acknowledged bytes, and whole; and the
half-sent upload must have left nothing behind.

About 55 s on 2 cores (35 s of it the same test over Flight alone). The seed is printed, and FLAME_CRASH_SEED=<n> replays its choices
(the kill moments interleave with the threads, so a replay is close, not exact).
"""

from __future__ import annotations

import os
import random
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from tests.flight_client import MiB
from tests.payloads import Ledger, make_payload
from tests.protocols import FlightSide, HttpSide, connect
from tests.server import CacheServer

KILLS = 22
WRITERS = ("flight", "http", "flight", "http")
NAMESPACES = ("crash/a", "crash/b", "seed")
MAX_KEYS = 48  # beyond it, writes go to existing keys: each restart reads every key back
BIG_NAMESPACE = "crash/big"  # only the streamed uploads write here
BIG_KEYS = ("crash/big/b0", "crash/big/b1")
STREAMED = 4 * MiB  # an upload over this streams to a temporary file (IN_MEMORY_BYTES)


class Run:
    """The clients of one server lifetime; they stop at the first error (the kill)."""

    def __init__(self, server: CacheServer, ledger: Ledger, keys: list[str], rng: random.Random, cycle: int) -> None:
        self.server, self.ledger, self.keys, self.cycle = server, ledger, keys, cycle
        self.address = {"flight": server.endpoint, "http": server.http_url}
        self.seeds = [rng.randrange(2**32) for _ in range(len(WRITERS) + 3)]
        self.keys_lock = threading.Lock()
        self.stop = threading.Event()
        self.half_sent = threading.Event()  # the streamed upload waits, half sent, for the kill
        self.attempted = 0
        self.failed = 0

    def threads(self) -> list[threading.Thread]:
        writers = [threading.Thread(target=self._write, args=(i, p), daemon=True) for i, p in enumerate(WRITERS)]
        readers = [
            threading.Thread(target=self._read, args=(len(WRITERS) + i, p), daemon=True)
            for i, p in enumerate(("flight", "http"))
        ]
        return [*writers, threading.Thread(target=self._stream, daemon=True), *readers]

    def _write(self, index: int, protocol: str) -> None:
        rng = random.Random(self.seeds[index])
        name = f"c{self.cycle}w{index}"
        with connect(self.address[protocol]) as side:
            for seq in range(10**6):
                if self.stop.is_set():
                    return
                self.attempted += 1
                try:
                    self._one_write(side, rng, name, seq)
                except side.gone:
                    self.failed += 1
                    return  # the server is gone (or going)
                except Exception as exc:  # noqa: BLE001 - a refusal is a finding
                    self.ledger.problem(f"{protocol} write refused while running: {exc!r}")
                    return

    def _one_write(self, side: FlightSide | HttpSide, rng: random.Random, name: str, seq: int) -> None:
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
            ack = side.create(target, payload, row_bytes=rows_of)
        elif choice < 0.16:  # create exactly a 3-segment key
            target = f"crash/named/{name}-{seq}"
            payload = make_payload(target, name, seq, "base", size)
            ack = side.put(target, payload, row_bytes=rows_of)
        elif choice < 0.40:  # replace
            target = key
            payload = make_payload(target, name, seq, "base", size)
            ack = side.put(target, payload, row_bytes=rows_of)
        else:  # patch
            target = key
            payload = make_payload(target, name, seq, "patch", min(size, 64 * 1024))
            ack = side.patch(target, payload)
        self.ledger.record(ack["key"], ack["version"], payload)
        if ack["key"] != target:
            with self.keys_lock:
                self.keys.append(ack["key"])

    def _stream(self) -> None:
        """Streamed HTTP uploads over 4 MiB: one to its end, then one (a replace or a
        create) sent past its first 4 MiB and held there until the kill."""
        rng = random.Random(self.seeds[len(WRITERS)])
        name = f"c{self.cycle}big"
        with HttpSide(self.server.http_url) as side:
            try:
                target = rng.choice(BIG_KEYS)
                payload = make_payload(target, name, 0, "base", rng.randrange(STREAMED, STREAMED + MiB // 2))
                self.ledger.record(target, side.put(target, payload)["version"], payload)

                target = rng.choice((*BIG_KEYS, BIG_NAMESPACE))
                payload = make_payload(target, name, 1, "base", rng.randrange(STREAMED + 2 * MiB, STREAMED + 3 * MiB))
                sent = STREAMED + 3 * MiB // 2  # the server takes pieces of 1 MiB: over 4 MiB of them

                def held() -> Iterator[bytes]:  # chunked: no Content-Length
                    yield payload[:sent]
                    self.half_sent.set()
                    self.stop.wait()
                    yield payload[sent:]

                (side.create if target == BIG_NAMESPACE else side.put)(target, held())
                self.ledger.problem(f"the upload to {target} held until the kill was answered")
            except side.gone:
                return
            except Exception as exc:  # noqa: BLE001 - a refusal is a finding
                self.ledger.problem(f"streamed upload refused while running: {exc!r}")

    def _read(self, index: int, protocol: str) -> None:
        rng = random.Random(self.seeds[index])
        with connect(self.address[protocol]) as side:
            while not self.stop.is_set():
                keys = self.ledger.keys()
                if not keys:
                    time.sleep(0.01)
                    continue
                key = rng.choice(keys)
                try:
                    got = side.read(key)
                except side.gone:
                    return
                except Exception as exc:  # noqa: BLE001 - an acknowledged key must read
                    self.ledger.problem(f"{protocol} read of {key} refused while running: {exc!r}")
                    return
                problem = self.ledger.check_read(key, got)
                if problem:
                    self.ledger.problem(f"served over {protocol} while running: {problem}")


def await_half_sent_upload(run: Run, storage: Path) -> None:
    """Until the held upload is past its first 4 MiB and the server has its temporary file."""
    folder = storage.joinpath(*BIG_NAMESPACE.split("/"))
    assert run.half_sent.wait(120), f"the streamed upload never got half way: {run.ledger.problems[:5]}"
    for _ in range(2400):  # polled, at most 2 minutes
        if folder.is_dir() and any(".tmp-" in p.name for p in folder.iterdir()):
            return
        time.sleep(0.05)
    raise AssertionError(f"the server never opened a temporary file for the upload held in {folder}")


def verify(server: CacheServer, ledger: Ledger) -> None:
    """Every acknowledged key reads back whole, the same over both protocols, at its last
    acknowledged version or later; the raw bytes HTTP serves are that version's base."""
    with FlightSide(server.endpoint) as fl, HttpSide(server.http_url) as http:
        for key in ledger.keys():
            latest = ledger.latest(key)
            try:
                got = fl.read(key)
                same = http.read(key)
                version, deltas, base = http.raw(key)
            except KeyError as exc:
                ledger.problem(f"after restart: {key} (acknowledged at version {latest}) is gone: {exc}")
                continue
            problem = ledger.check_read(key, got)
            if problem:
                ledger.problem(f"after restart: {problem}")
            elif got[-1][0] < latest:
                ledger.problem(f"after restart: {key} is at version {got[-1][0]}, but {latest} was acknowledged")
            elif same != got or (version, deltas, base) != (got[-1][0], len(got) - 1, got[0][2]):
                ledger.problem(f"after restart: {key} reads otherwise over HTTP than over Flight")
        for key in http.keys(BIG_NAMESPACE) - set(BIG_KEYS):  # a create cut off half way
            ledger.problem(f"after restart: {key} is stored, but no upload of it ever finished")


def temp_files(root: Path, *, outside_deltas: bool = False) -> list[str]:
    found = [str(p.relative_to(root)) for p in root.rglob("*") if ".tmp-" in p.name]
    return [f for f in found if ".deltas/" not in f] if outside_deltas else found


def test_acknowledged_writes_survive_kill_9_at_random_moments_over_both_protocols(tmp_path: Path):
    seed = int(os.environ.get("FLAME_CRASH_SEED", random.randrange(2**32)))
    print(f"FLAME_CRASH_SEED={seed}")
    rng = random.Random(seed)
    # small memory: objects get evicted and read back from disk while the clients run
    server = CacheServer(tmp_path, tmp_path / "storage", with_http=True, eviction={"max_memory": "8M"})
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
            run = Run(server, ledger, keys, rng, cycle)
            threads = run.threads()
            for thread in threads:
                thread.start()
            time.sleep(rng.uniform(0.3, 1.2))
            await_half_sent_upload(run, server.storage)
            server.process.send_signal(signal.SIGKILL)
            server.process.wait()
            run.stop.set()
            for thread in threads:
                thread.join(60)
            attempted, failed = attempted + run.attempted, failed + run.failed

        for address in (server.endpoint, server.http_url):  # every object on disk, acknowledged or not, is whole
            with connect(address) as side:
                for key in side.keys():
                    problem = ledger.check_read(key, side.read(key))
                    assert problem is None, f"{side.name}: {problem}"
        assert not temp_files(server.storage)
    finally:
        server.stop()
    print(f"{KILLS} kills, {attempted} writes attempted, {ledger.count()} acknowledged, {failed} cut off by a kill")
    assert ledger.count() >= 20 * KILLS, "too few writes were acknowledged for the test to mean much"
    assert failed >= KILLS // 2, "too few kills hit a write in flight"

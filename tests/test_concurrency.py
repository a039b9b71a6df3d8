"""Concurrency (issue 4.2, SPEC 7): many writers, patchers, readers and deleters on the
same keys and namespaces, through Flight and the HTTP mirror at once.

- Versions of a key are strictly increasing with no duplicates and no gaps: every
  acknowledged write, over either protocol, has its own version, and every version was
  some write.
- Every read is one whole version: a base and the deltas that belong to it, each the
  exact bytes acknowledged for that version (payloads check themselves, tests/payloads.py).
- Deletes never leave half an object, in memory or on disk.
- Conditional writes (If-Match) racing for one version have exactly one winner; the
  others get 412 naming the version that won.

Against a real server with client threads and processes on both protocols
(tests/protocols.py); then straight on the Store with threads (memory and disk, with
eviction), which is faster and interleaves more.
"""

from __future__ import annotations

import multiprocessing
import random
import threading
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pyarrow as pa
import pytest

from flame_cache.store import Eviction, ObjectNotFound, Store
from tests.flight_client import MiB
from tests.payloads import Ledger, make_payload, rows_problem
from tests.protocols import FlightSide, HttpSide, PreconditionFailed, connect
from tests.server import CacheServer

Read = tuple[str, list[tuple[int, str, bytes]]]
STREAMED = 4 * MiB  # an HTTP upload over this goes to a temporary file, without the key's lock


def write_many(
    address: str, keys: list[str], name: str, count: int, seed: int, sizes: tuple[int, int] = (10, 20000), patches=0.7
) -> list[tuple[str, int, bytes]]:
    """One client's writes (replace or patch) to shared keys, over Flight or HTTP
    (`address`); its acknowledgements."""
    rng = random.Random(seed)
    acks = []
    with connect(address) as side:
        for seq in range(count):
            key = rng.choice(keys)
            size = rng.randrange(*sizes)
            if rng.random() >= patches:
                payload = make_payload(key, name, seq, "base", size)
                ack = side.put(key, payload)
            else:
                payload = make_payload(key, name, seq, "patch", size // 10)
                ack = side.patch(key, payload)
            assert ack["key"] == key
            acks.append((key, ack["version"], payload))
    return acks


def read_many(address: str, keys: list[str], stop: threading.Event, seed: int, out: list[Read]) -> None:
    """Full reads: DoGet, or the Arrow stream over HTTP (of keys that exist)."""
    rng = random.Random(seed)
    with connect(address) as side:
        while not stop.is_set():
            key = rng.choice(keys)
            try:
                out.append((key, side.read(key)))
            except KeyError:
                continue


def read_raw_many(url: str, keys: list[str], stop: threading.Event, seed: int, out: list[Read]) -> None:
    """Raw HTTP reads: the base bytes alone, as the row they are (version = ETag - deltas)."""
    rng = random.Random(seed)
    with HttpSide(url) as side:
        while not stop.is_set():
            key = rng.choice(keys)
            version, deltas, base = side.raw(key)
            out.append((key, [(version - deltas, "base", base)]))


def test_writers_on_both_protocols_get_every_version_once_and_readers_see_whole_versions(make_server):
    server: CacheServer = make_server(with_http=True, eviction={"max_memory": "256K"})  # evictions race the writes
    flight_at, http_at = server.endpoint, server.http_url
    ledger = Ledger()
    with HttpSide(http_at) as http:
        keys = [f"race/sess/k{i}" for i in range(3)]
        for key in keys:
            payload = make_payload(key, "setup", 0, "base", 100)
            ledger.record(key, http.put(key, payload)["version"], payload)

    stop, reads = threading.Event(), [[] for _ in range(3)]
    readers = [
        threading.Thread(target=read_many, args=(flight_at, keys, stop, 0, reads[0])),
        threading.Thread(target=read_many, args=(http_at, keys, stop, 1, reads[1])),
        threading.Thread(target=read_raw_many, args=(http_at, keys, stop, 2, reads[2])),
    ]
    for reader in readers:
        reader.start()
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(2, mp_context=context) as processes:
        in_processes = [
            processes.submit(write_many, address, keys, f"p{i}", 150, 100 + i)
            for i, address in enumerate((flight_at, http_at))
        ]
        # threads: two per protocol, and one streaming HTTP replaces over 4 MiB (a temporary
        # file written without the key's lock, framed with its version under it)
        plans = [(flight_at, 100, {}), (http_at, 100, {}), (flight_at, 100, {}), (http_at, 100, {})]
        plans.append((http_at, 6, dict(sizes=(STREAMED + 1, STREAMED + 64 * 1024), patches=0.0)))
        in_threads: list[list] = [[] for _ in plans]

        def thread_writer(i: int) -> None:
            address, count, shape = plans[i]
            in_threads[i] = write_many(address, keys, f"t{i}", count, i, **shape)

        writers = [threading.Thread(target=thread_writer, args=(i,)) for i in range(len(plans))]
        for writer in writers:
            writer.start()
        for writer in writers:
            writer.join()
        acks = [ack for future in in_processes for ack in future.result()] + [a for t in in_threads for a in t]
    stop.set()
    for reader in readers:
        reader.join()

    for key, version, payload in acks:
        ledger.record(key, version, payload)
    assert not ledger.problems, "\n".join(ledger.problems[:20])
    assert len(acks) == 2 * 150 + 4 * 100 + 6
    with FlightSide(flight_at) as flight_side, HttpSide(http_at) as http_side:
        for key in keys:
            final = flight_side.read(key)
            assert http_side.read(key) == final
            versions = sorted(ledger.acked[key])
            assert versions == list(range(1, final[-1][0] + 1)), f"{key}: gaps in the acknowledged versions"
            assert ledger.check_read(key, final) is None
    assert all(len(out) > 20 for out in reads), f"the readers hardly ran: {[len(out) for out in reads]}"
    bad = [problem for out in reads for key, got in out if (problem := ledger.check_read(key, got))]
    assert not bad, "\n".join(bad[:10])
    assert not [p for p in server.storage.rglob("*") if ".tmp-" in p.name]


def test_if_match_writes_racing_over_http_have_one_winner_per_version(make_server):
    """Racers read the version, then all send a replace or a patch with If-Match naming it
    at once: exactly one wins, with the next version; every other gets 412 and the
    winner's ETag, and stores nothing. Some rounds stream bodies over 4 MiB, which are
    checked before the upload and again, under the key's lock, before they are installed.
    A create-only race (If-None-Match: *) comes first: one 201, the rest 412."""
    server: CacheServer = make_server(with_http=True)
    key, racers, rounds = "race/cond/k", 4, 24
    barrier = threading.Barrier(racers, timeout=120)
    ledger = Ledger()
    outcomes: list[list[tuple]] = [[] for _ in range(racers)]  # (round, expected, won, version or ETag)
    errors: list[str] = []

    def racer(i: int) -> None:
        rng = random.Random(i)
        try:
            with HttpSide(server.http_url) as side:
                payload = make_payload(key, f"r{i}", 0, "base", 100)
                barrier.wait()
                created = side.http.put(f"/v1/objects/{key}", content=payload, headers={"If-None-Match": "*"})
                if created.status_code == 201:
                    ledger.record(key, created.json()["version"], payload)
                outcomes[i].append((0, 0, created.status_code == 201, created.headers.get("etag")))
                barrier.wait()
                for r in range(1, rounds):
                    expected = side.version(key)
                    barrier.wait()  # everyone has read it; no write lands before the next wait
                    streamed = r % 8 == 7
                    kind = "base" if streamed or rng.random() < 0.5 else "patch"
                    size = rng.randrange(STREAMED + 1, STREAMED + 64 * 1024) if streamed else rng.randrange(10, 5000)
                    payload = make_payload(key, f"r{i}", r, kind, size)
                    write = side.put if kind == "base" else side.patch
                    try:
                        ack = write(key, payload, if_match=expected)
                    except PreconditionFailed as exc:
                        outcomes[i].append((r, expected, False, exc.etag))
                    else:
                        ledger.record(key, ack["version"], payload)
                        outcomes[i].append((r, expected, True, ack["version"]))
                    barrier.wait()  # the round is over
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(f"racer {i}: {exc!r}")
            barrier.abort()

    stop, reads = threading.Event(), []
    reader = threading.Thread(target=read_many, args=(server.endpoint, [key], stop, 0, reads))
    threads = [threading.Thread(target=racer, args=(i,)) for i in range(racers)]
    for thread in [*threads, reader]:
        thread.start()
    for thread in threads:
        thread.join()
    stop.set()
    reader.join()
    assert not errors, errors[:5]

    winners = []
    for r in range(rounds):
        results = [outcome for per_racer in outcomes for outcome in per_racer if outcome[0] == r]
        assert len({expected for _, expected, _, _ in results}) == 1, f"round {r}: racers read different versions"
        won = [result for result in results if result[2]]
        assert len(won) == 1, f"round {r}: {len(won)} winners: {results}"
        version = 1 if r == 0 else won[0][3]
        assert version == results[0][1] + 1, f"round {r}: the winner got version {version}"
        lost_tags = {tag for _, _, ok, tag in results if not ok}
        assert lost_tags == {f'"{version}"'}, f"round {r}: the losers' 412s named {lost_tags}, not version {version}"
        winners.append(version)
    assert winners == list(range(1, rounds + 1))
    assert not ledger.problems, ledger.problems[:5]
    with FlightSide(server.endpoint) as flight_side, HttpSide(server.http_url) as http_side:
        final = flight_side.read(key)
        assert final[-1][0] == rounds and http_side.read(key) == final
        assert ledger.check_read(key, final) is None
    bad = [problem for key, got in reads if (problem := ledger.check_read(key, got))]
    assert not bad, "\n".join(bad[:10])
    assert not [p for p in server.storage.rglob("*") if ".tmp-" in p.name], "a losing upload left its file"


# -- deletes racing writes ----------------------------------------------------

APPS = ("ra", "rb")
SESSIONS = ("s1", "s2")
OBJECTS = ("o1", "o2", "o3")


def chaos(address: str, seed: int, count: int, problems: list[str], reads: list[Read]) -> None:
    """Creates, replaces, patches, reads and deletes (keys, namespaces, app/*) at random,
    over Flight or HTTP (`address`); NOT_FOUND is the only error allowed (the key was
    deleted meanwhile). Now and then an HTTP replace streams over 4 MiB."""
    rng = random.Random(seed)
    with connect(address) as side:
        for seq in range(count):
            key = f"{rng.choice(APPS)}/{rng.choice(SESSIONS)}/{rng.choice(OBJECTS)}"
            op = rng.random()
            try:
                if op < 0.3:
                    size = STREAMED + 1 if side.name == "http" and rng.random() < 0.03 else rng.randrange(10, 5000)
                    side.put(key, make_payload(key, f"x{seed}", seq, "base", size))
                elif op < 0.6:
                    side.patch(key, make_payload(key, f"x{seed}", seq, "patch", rng.randrange(10, 500)))
                elif op < 0.85:
                    reads.append((key, side.read(key)))
                else:
                    side.delete(rng.choice([key, key.rsplit("/", 1)[0], f"{key.split('/')[0]}/*"]))
            except KeyError:
                pass
            except Exception as exc:  # noqa: BLE001 - any other error is a finding
                problems.append(f"{side.name}: {type(exc).__name__}: {exc}")


def test_deletes_racing_writes_and_reads_never_leave_half_an_object(make_server):
    """Three clients on each protocol; afterwards both protocols serve the same whole
    objects, and so does a restart from disk."""
    server: CacheServer = make_server(with_http=True)
    problems: list[str] = []
    reads: list[Read] = []
    addresses = [server.endpoint, server.http_url] * 3
    threads = [threading.Thread(target=chaos, args=(a, i, 250, problems, reads)) for i, a in enumerate(addresses)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not problems, "\n".join(problems[:10])
    torn = [p for key, got in reads if (p := rows_problem(key, got))]
    assert not torn, "\n".join(torn[:10])
    assert len(reads) > 100

    def whole_state() -> dict[str, list]:
        states = []
        for address in (server.endpoint, server.http_url):
            with connect(address) as side:
                state = {key: side.read(key) for key in side.keys()}
            assert all(rows_problem(key, got) is None for key, got in state.items())
            states.append(state)
        assert states[0] == states[1], "Flight and HTTP serve different objects"
        return states[0]

    before = whole_state()
    server.restart()
    assert whole_state() == before, "the disk holds another state than was served"
    with HttpSide(server.http_url) as side:
        for key in before:  # a deleted key starts again at version 1
            side.delete(key)
            assert side.put(key, make_payload(key, "end", 0, "base", 10))["version"] == 1
    leftovers = [
        str(p.relative_to(server.storage))
        for p in server.storage.rglob("*")
        if ".tmp-" in p.name or (p.name.endswith(".deltas") and not p.with_suffix(".arrow").exists())
    ]
    assert not leftovers, f"half objects on disk: {leftovers}"


# -- the store itself, from threads ---------------------------------------------


@pytest.mark.parametrize("storage", ["memory", "disk-evicting"])
def test_store_threads_get_unique_gapless_versions_and_whole_snapshots(tmp_path: Path, storage: str):
    """8 threads replace, patch and read 3 keys through the Store directly (with disk
    storage and room for one object in memory, so loads and evictions race the writes)."""
    if storage == "memory":
        store = Store(None)
    else:
        store = Store(tmp_path, eviction=Eviction(max_objects=1))
    keys = [f"app/sess/k{i}" for i in range(3)]
    ledger = Ledger()
    for key in keys:
        payload = make_payload(key, "setup", 0, "base", 50)
        ledger.record(key, store.put(key, pa.py_buffer(payload)).version, payload)
    reads: list[Read] = []
    errors: list[str] = []

    def work(seed: int) -> None:
        rng = random.Random(seed)
        try:
            for seq in range(300):
                key = rng.choice(keys)
                op = rng.random()
                if op < 0.25:
                    payload = make_payload(key, f"t{seed}", seq, "base", rng.randrange(10, 3000))
                    ledger.record(key, store.put(key, pa.py_buffer(payload)).version, payload)
                elif op < 0.6:
                    payload = make_payload(key, f"t{seed}", seq, "patch", rng.randrange(10, 300))
                    ledger.record(key, store.patch(key, pa.py_buffer(payload)).version, payload)
                else:
                    snapshot = store.get(key)
                    read = snapshot.read(0)
                    reads.append((key, [(r.version, r.kind.value, r.data.to_pybytes()) for r in read.rows]))
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(f"{type(exc).__name__}: {exc}")

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors[:5]
    assert not ledger.problems, "\n".join(ledger.problems[:10])
    for key in keys:
        final = store.get(key).version
        assert sorted(ledger.acked[key]) == list(range(1, final + 1)), f"{key}: gaps"
    bad = [p for key, got in reads if (p := ledger.check_read(key, got))]
    assert not bad, "\n".join(bad[:10])
    if storage != "memory":
        reopened = Store(tmp_path)
        for key in keys:
            got = [(r.version, r.kind.value, r.data.to_pybytes()) for r in reopened.get(key).read(0).rows]
            assert ledger.check_read(key, got) is None and got[-1][0] == store.get(key).version


def test_store_deletes_racing_writes_leave_whole_objects_or_none(tmp_path: Path):
    """Namespace and app/* deletes race creates and patches on the Store: afterwards memory
    and a fresh start on the same directory agree, and every object is whole."""
    store = Store(tmp_path)
    errors: list[str] = []

    def work(seed: int) -> None:
        rng = random.Random(seed)
        for seq in range(300):
            key = f"{rng.choice(APPS)}/{rng.choice(SESSIONS)}/{rng.choice(OBJECTS)}"
            op = rng.random()
            try:
                if op < 0.4:
                    store.put(key, pa.py_buffer(make_payload(key, f"t{seed}", seq, "base", 200)))
                elif op < 0.8:
                    store.patch(key, pa.py_buffer(make_payload(key, f"t{seed}", seq, "patch", 50)))
                else:
                    store.delete(rng.choice([key, key.rsplit("/", 1)[0], f"{key.split('/')[0]}/*"]))
            except ObjectNotFound:
                pass
            except Exception as exc:  # noqa: BLE001 - reported below
                errors.append(f"{type(exc).__name__}: {exc}")

    threads = [threading.Thread(target=work, args=(i,)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors[:5]

    def state(s: Store) -> dict[str, list]:
        out = {}
        for info in s.list():
            got = [(r.version, r.kind.value, r.data.to_pybytes()) for r in s.get(info.key).read(0).rows]
            assert rows_problem(info.key, got) is None
            out[info.key] = got
        return out

    assert state(Store(tmp_path)) == state(store)

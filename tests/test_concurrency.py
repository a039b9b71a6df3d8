"""Concurrency (issue 4.2, SPEC 7): many writers, patchers, readers and deleters on the
same keys and namespaces.

- Versions of a key are strictly increasing with no duplicates and no gaps: every
  acknowledged write has its own version, and every version was some write.
- Every read is one whole version: a base and the deltas that belong to it, each the
  exact bytes acknowledged for that version (payloads check themselves, tests/payloads.py).
- Deletes never leave half an object, in memory or on disk.

Over Flight with client threads and client processes against a real server; then
straight on the Store with threads (memory and disk, with eviction), which is faster
and interleaves more.
"""

from __future__ import annotations

import multiprocessing
import random
import threading
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pyarrow as pa
import pyarrow.flight as flight
import pytest

from flame_cache.store import Limits, ObjectNotFound, Store
from tests.flight_client import get, patch, put_path, rows
from tests.payloads import Ledger, make_payload, rows_problem
from tests.server import CacheServer

Read = tuple[str, list[tuple[int, str, bytes]]]


def write_many(endpoint: str, keys: list[str], name: str, count: int, seed: int) -> list[tuple[str, int, bytes]]:
    """One client's writes (replace or patch) to shared keys; its acknowledgements."""
    rng = random.Random(seed)
    acks = []
    with flight.FlightClient(endpoint) as client:
        for seq in range(count):
            key = rng.choice(keys)
            if rng.random() < 0.3:
                payload = make_payload(key, name, seq, "base", rng.randrange(10, 20000))
                ack = put_path(client, key, payload)
            else:
                payload = make_payload(key, name, seq, "patch", rng.randrange(10, 2000))
                ack = patch(client, key, payload)
            assert ack["key"] == key
            acks.append((key, ack["version"], payload))
    return acks


def read_many(endpoint: str, keys: list[str], stop: threading.Event, seed: int, out: list[Read]) -> None:
    rng = random.Random(seed)
    with flight.FlightClient(endpoint) as client:
        while not stop.is_set():
            key = rng.choice(keys)
            out.append((key, rows(get(client, key))))


def test_writers_on_shared_keys_get_every_version_once_and_readers_see_whole_versions(make_server):
    server: CacheServer = make_server(eviction={"max_memory": "256K"})  # evictions race the writes too
    with server.client() as client:
        keys = [put_path(client, f"race/sess/k{i}", make_payload(f"race/sess/k{i}", "setup", 0, "base", 100))["key"]
                for i in range(3)]
    ledger = Ledger()
    for key in keys:
        with server.client() as client:
            ledger.record(key, 1, rows(get(client, key))[0][2])

    stop, reads = threading.Event(), [[] for _ in range(2)]
    readers = [threading.Thread(target=read_many, args=(server.endpoint, keys, stop, i, reads[i])) for i in range(2)]
    for reader in readers:
        reader.start()
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(2, mp_context=context) as processes:
        in_processes = [processes.submit(write_many, server.endpoint, keys, f"p{i}", 150, 100 + i) for i in range(2)]
        in_threads: list[list] = [[] for _ in range(4)]

        def thread_writer(i: int) -> None:
            in_threads[i] = write_many(server.endpoint, keys, f"t{i}", 100, i)

        writers = [threading.Thread(target=thread_writer, args=(i,)) for i in range(4)]
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
    assert len(acks) == 2 * 150 + 4 * 100
    with server.client() as client:
        for key in keys:
            final = rows(get(client, key))
            versions = sorted(ledger.acked[key])
            assert versions == list(range(1, final[-1][0] + 1)), f"{key}: gaps in the acknowledged versions"
            assert ledger.check_read(key, final) is None
    all_reads = [read for out in reads for read in out]
    assert len(all_reads) > 50, "the readers hardly ran"
    bad = [problem for key, got in all_reads if (problem := ledger.check_read(key, got))]
    assert not bad, "\n".join(bad[:10])


# -- deletes racing writes ----------------------------------------------------

APPS = ("ra", "rb")
SESSIONS = ("s1", "s2")
OBJECTS = ("o1", "o2", "o3")


def chaos(endpoint: str, seed: int, count: int, problems: list[str], reads: list[Read]) -> None:
    """Creates, replaces, patches, reads and deletes (keys, namespaces, app/*) at random;
    NOT_FOUND is the only error allowed (the key was deleted meanwhile)."""
    rng = random.Random(seed)
    with flight.FlightClient(endpoint) as client:
        for seq in range(count):
            key = f"{rng.choice(APPS)}/{rng.choice(SESSIONS)}/{rng.choice(OBJECTS)}"
            op = rng.random()
            try:
                if op < 0.3:
                    put_path(client, key, make_payload(key, f"x{seed}", seq, "base", rng.randrange(10, 5000)))
                elif op < 0.6:
                    patch(client, key, make_payload(key, f"x{seed}", seq, "patch", rng.randrange(10, 500)))
                elif op < 0.85:
                    reads.append((key, rows(get(client, key))))
                else:
                    target = rng.choice([key, key.rsplit("/", 1)[0], f"{key.split('/')[0]}/*"])
                    results = list(client.do_action(flight.Action("DELETE", target.encode())))
                    if [r.body.to_pybytes() for r in results] != [b"OK"]:
                        problems.append(f"DELETE {target} answered {results}")
            except KeyError:
                pass
            except Exception as exc:  # noqa: BLE001 - any other error is a finding
                problems.append(f"{type(exc).__name__}: {exc}")


def test_deletes_racing_writes_and_reads_never_leave_half_an_object(make_server):
    server: CacheServer = make_server()
    problems: list[str] = []
    reads: list[Read] = []
    threads = [threading.Thread(target=chaos, args=(server.endpoint, i, 250, problems, reads)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not problems, "\n".join(problems[:10])
    torn = [p for key, got in reads if (p := rows_problem(key, got))]
    assert not torn, "\n".join(torn[:10])
    assert len(reads) > 100

    def whole_state(client: flight.FlightClient) -> dict[str, list]:
        state = {}
        for info in client.list_flights(b""):
            key = "/".join(p.decode() for p in info.descriptor.path)
            state[key] = rows(get(client, key))
            assert rows_problem(key, state[key]) is None
        return state

    with server.client() as client:
        before = whole_state(client)
    server.restart()
    with server.client() as client:
        assert whole_state(client) == before, "the disk holds another state than was served"
        for key in before:  # a deleted key starts again at version 1
            list(client.do_action(flight.Action("DELETE", key.encode())))
            assert put_path(client, key, make_payload(key, "end", 0, "base", 10))["version"] == 1
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
        store = Store(tmp_path, limits=Limits(max_objects=1))
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

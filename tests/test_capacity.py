"""cache.capacity (SPEC 8): the bytes of object files never pass it, whoever writes.

A write reserves its room before it writes, evicting whole objects least recently used
first (never a pinned one, `cache.eviction.pin`, default `*/pkg/*`); the test samples
the files under the storage directory from a thread while 4 clients (2 Flight, 2 HTTP)
write 400 MiB into 64 MiB. Refusals: an object larger than the capacity (413 /
INVALID_ARGUMENT, at once), a write that cannot fit because what is left is pinned (507 /
UNAVAILABLE, nothing stored). A kill -9 in the middle of evictions loses nothing that was
acknowledged and not evicted, and the accounting is exact after the restart.

About 35 s on 2 cores.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
import signal
import threading
import time
from pathlib import Path

import httpx
import pyarrow as pa
import pyarrow.flight as flight
import pytest

from flame_cache.store import Store
from flame_cache.store.blobs import FileBlob
from tests.flamepy_scripts import run_flamepy
from tests.flight_client import MiB, get, put_path, rows
from tests.http_client import RAW, object_path
from tests.protocols import connect

CAPACITY = 64 * MiB


def payload(key: str, size: int, salt: str = "") -> bytes:
    """Bytes that say which key (and write) they belong to."""
    digest = hashlib.sha256(f"{key}|{salt}".encode()).digest()
    return (digest * (size // len(digest) + 1))[:size]


def files_bytes(root: Path) -> int:
    """Bytes of every file under the storage root (the quarantine aside)."""
    total = 0
    for folder, dirs, files in os.walk(root):
        if folder == str(root):
            dirs[:] = [d for d in dirs if d != ".quarantine"]
        for name in files:
            try:
                total += os.lstat(os.path.join(folder, name)).st_size
            except FileNotFoundError:
                pass  # removed while we looked
    return total


class Sampler:
    """The files' bytes under a storage root, sampled from a thread; the highest seen.

    A walk over several folders is no snapshot (an object counted in one folder may be
    evicted for a new one in a folder read later), so the tests write each run's objects
    into one folder: the listing of one folder is one moment."""

    def __init__(self, root: Path) -> None:
        self.root, self.highest, self.samples = root, 0, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.highest = max(self.highest, files_bytes(self.root))
            self.samples += 1
            time.sleep(0.002)


def stats(server) -> dict:
    with server.client() as client:
        (result,) = client.do_action(flight.Action("STATS", b""))
    return json.loads(result.body.to_pybytes())


def evicted_in_log(server) -> set[str]:
    return set(re.findall(r"evicting (\S+) \(", server.log()))


def wait_for_log(server, text: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while text not in server.log():
        assert time.monotonic() < deadline, f"{text!r} never appeared in the server log:\n{server.log()}"
        time.sleep(0.05)


def test_many_writers_on_both_protocols_stay_under_capacity(make_server, tmp_path: Path) -> None:
    server = make_server(with_http=True, capacity="64M")
    root = server.storage
    home = tmp_path / "flamepy-home"
    (lost,) = run_flamepy(server.endpoint, home, "put_objects", "cap/flamepy", [{"weights": [1, 2, 3]}])
    with connect(server.endpoint) as side:
        pinned = [f"cap/pkg/p{i}" for i in range(8)]  # Flame's packages: pinned by default
        hot = [f"cap/hot/h{i}" for i in range(4)]
        for key in pinned + hot:
            side.put(key, payload(key, MiB))

    acks: list[str] = []  # acknowledged writes, in order
    acks_lock = threading.Lock()
    problems: list[str] = []

    def write(index: int, address: str) -> None:
        with connect(address) as side:
            for n in range(100):
                key = f"cap/w/o{index}-{n}"  # one folder: one listing of it is one moment
                try:
                    ack = side.put(key, payload(key, MiB))
                except Exception as exc:  # noqa: BLE001 - a refusal is a finding
                    problems.append(f"writer {index}: {key}: {exc!r}")
                    return
                with acks_lock:
                    acks.append(ack["key"])
                if n % 5 == 4:  # the hot objects are used all along (and read whole)
                    for hot_key in hot:
                        got = side.read(hot_key)
                        if got != [(1, "base", payload(hot_key, MiB))]:
                            problems.append(f"writer {index}: hot read of {hot_key}: {got[:1]}")

    addresses = [server.endpoint, server.http_url, server.endpoint, server.http_url]
    writers = [threading.Thread(target=write, args=(i, a)) for i, a in enumerate(addresses)]
    with Sampler(root) as sampler:
        for thread in writers:
            thread.start()
        for thread in writers:
            thread.join(timeout=300)
    assert problems == []
    assert len(acks) == 400
    assert sampler.samples > 50
    assert sampler.highest <= CAPACITY, f"{sampler.highest} bytes of files under a capacity of {CAPACITY}"

    with server.client() as client:
        survivors = {"/".join(p.decode() for p in info.descriptor.path) for info in client.list_flights(b"cap")}
        # every read of a survivor is whole
        for key in sorted(survivors - {lost.key}):
            assert rows(get(client, key)) == [(1, "base", payload(key, MiB))], key
    assert set(pinned) <= survivors, "a pinned object was evicted"
    assert set(hot) <= survivors, "objects read all along were evicted"
    written = survivors - set(pinned) - set(hot)
    assert len(written) >= 40
    # the survivors are the most recently used: the last acknowledged writes (writes in
    # flight at once may settle in another order than their acknowledgements)
    assert written <= set(acks[-(len(written) + 12) :])
    assert lost.key not in survivors

    usage = stats(server)
    assert usage["used_bytes"] == files_bytes(root) <= CAPACITY  # exact once the writes are done
    assert usage["reserved_bytes"] == 0
    assert usage["evictions"] >= 400 - len(written)

    # flamepy's KeyError says what happened
    error = run_flamepy(server.endpoint, home, "get_error", lost)
    assert error["key_error"], error
    assert "evicted to stay under cache.capacity" in error["message"], error
    # so does HTTP's 404
    response = httpx.get(server.http_url + object_path("cap/w/o0-0"))
    assert response.status_code == 404
    assert "evicted to stay under cache.capacity" in response.json()["message"]
    assert "evicting cap/w/o0-0 (" in server.log()


def test_refusals_store_nothing(make_server) -> None:
    server = make_server(with_http=True, capacity="8M")
    root = server.storage
    http = httpx.Client(base_url=server.http_url, timeout=30)
    client = server.client()

    # larger than the capacity: refused at once, on both protocols
    too_big = b"x" * (9 * MiB)
    with pytest.raises(pa.ArrowInvalid, match="cache.capacity"):
        put_path(client, "cap/big/flight", too_big)
    response = http.put(object_path("cap/big/http"), content=too_big, headers={"Content-Type": RAW})
    assert response.status_code == 413 and "cache.capacity" in response.json()["message"]
    streamed = http.put(
        object_path("cap/big/chunked"), content=(too_big[i : i + MiB] for i in range(0, len(too_big), MiB))
    )
    assert streamed.status_code == 413

    # everything left pinned: 507 / UNAVAILABLE, nothing stored
    for i in range(7):
        put_path(client, f"cap/pkg/p{i}", payload(f"p{i}", MiB))
    response = http.put(object_path("cap/s/late"), content=b"y" * (2 * MiB), headers={"Content-Type": RAW})
    assert response.status_code == 507, response.text
    assert "pinned" in response.json()["message"] and "nothing was stored" in response.json()["message"]
    with pytest.raises(flight.FlightUnavailableError, match="pinned"):
        put_path(client, "cap/s/late", b"y" * (2 * MiB))
    # a streamed upload that grows into the pinned objects: refused as it grows
    response = http.put(object_path("cap/s/late"), content=(b"z" * MiB for _ in range(6)))
    assert response.status_code == 507, response.text
    assert http.head(object_path("cap/s/late")).status_code == 404
    assert not [p for p in root.rglob("*") if p.is_file() and ".tmp-" in p.name]
    assert files_bytes(root) <= 8 * MiB

    # once a pinned object goes, the write fits
    client.do_action(flight.Action("DELETE", b"cap/pkg/p0"))
    client.do_action(flight.Action("DELETE", b"cap/pkg/p1"))
    response = http.put(object_path("cap/s/late"), content=b"y" * (2 * MiB), headers={"Content-Type": RAW})
    assert response.status_code == 201
    assert stats(server)["used_bytes"] == files_bytes(root)
    http.close()
    client.close()


def test_streamed_uploads_reserve_as_they_grow(make_server) -> None:
    """Uploads over 4 MiB are written as they arrive: room is reserved chunk by chunk
    (evicting as they grow), replaces count their old file until it is gone."""
    server = make_server(with_http=True, capacity="16M")
    root = server.storage
    with Sampler(root) as sampler, httpx.Client(base_url=server.http_url, timeout=60) as http:
        for i in range(12):
            key = f"cap/big/b{i % 3}"  # replaces, too
            data = payload(key, 6 * MiB + i, salt=str(i))
            response = http.put(object_path(key), content=(data[j : j + MiB] for j in range(0, len(data), MiB)))
            assert response.status_code in (200, 201), response.text
            assert http.get(object_path(key)).content == data
    assert sampler.highest <= 16 * MiB
    assert stats(server)["used_bytes"] == files_bytes(root)


def test_kill_during_evictions_loses_nothing_kept(make_server) -> None:
    """kill -9 while every write evicts: after the restart nothing acknowledged and not
    evicted is lost, the accounting equals the files on disk, and the bound holds."""
    capacity = 24 * MiB
    server = make_server(with_http=True, capacity="24M")
    root = server.storage
    expected: dict[str, list] = {}  # key: the rows its last acknowledged write left
    pending: dict[str, list] = {}  # key: the rows if the write in flight at the kill landed
    lock = threading.Lock()
    stop = threading.Event()
    problems: list[str] = []

    def write(index: int, address: str) -> None:
        rng = random.Random(index)
        mine: list[str] = []
        with connect(address) as side:
            for n in range(10**6):
                if stop.is_set():
                    return
                try:
                    if mine and rng.random() < 0.3:
                        key = rng.choice(mine)
                        data = payload(key, 64 * 1024, salt=str(n))
                        with lock:
                            version = expected[key][-1][0] + 1
                            pending[key] = [*expected[key], (version, "patch", data)]
                        ack = side.patch(key, data)
                    else:
                        key = f"kill/w/o{index}-{n}"
                        data = payload(key, MiB + n)
                        with lock:
                            pending[key] = [(1, "base", data)]
                        ack = side.put(key, data)
                        mine.append(key)
                except KeyError:  # patched an object that was evicted meanwhile
                    mine.remove(key)
                    continue
                except side.gone:
                    return  # the kill
                except Exception as exc:  # noqa: BLE001
                    problems.append(f"{key}: {exc!r}")
                    return
                with lock:
                    assert ack["version"] == pending[key][-1][0]
                    expected[key] = pending.pop(key)

    threads = [threading.Thread(target=write, args=(i, a)) for i, a in enumerate([server.endpoint, server.http_url])]
    with Sampler(root) as sampler:
        for thread in threads:
            thread.start()
        time.sleep(random.uniform(1.5, 3.0))
        os.kill(server.pid, signal.SIGKILL)
        server.process.wait()
        stop.set()
        for thread in threads:
            thread.join(timeout=60)
    assert problems == []
    assert sampler.highest <= capacity
    evicted = evicted_in_log(server)
    assert len(evicted) > 5, "the kill did not land among evictions"

    server.start()
    wait_for_log(server, "storage check:")  # it clears what a kill left among deltas
    with server.client() as client:
        kept = 0
        for key, want in expected.items():
            if key in evicted:
                continue
            got = rows(get(client, key))
            assert got in (want, pending.get(key)), f"{key} lost: {got[:1]} vs {want[:1]}"
            kept += 1
        assert kept > 5
    usage = stats(server)
    assert usage["used_bytes"] == files_bytes(root), "the accounting after the restart is not the files on disk"
    assert usage["used_bytes"] <= capacity

    with Sampler(root) as sampler, connect(server.http_url) as side:
        for n in range(30):
            key = f"kill/w/after-{n}"
            side.put(key, payload(key, MiB))
    assert sampler.highest <= capacity
    assert stats(server)["used_bytes"] == files_bytes(root)


def test_reads_in_flight_finish_whole_when_evicted(tmp_path: Path) -> None:
    """A snapshot holds its files open or mapped: an eviction that unlinks them
    does not cut a read that already has it short."""
    big = os.urandom(6 * MiB)
    small = os.urandom(MiB)
    store = Store(tmp_path, capacity=16 * MiB)
    store.put("a/s/big", iter([big[i : i + MiB] for i in range(0, len(big), MiB)]))  # streamed to its file
    store.put("a/s/small", pa.py_buffer(small))
    reopened = Store(tmp_path, capacity=16 * MiB)  # nothing loaded: reads open the files
    big_snapshot, small_snapshot = reopened.get("a/s/big"), reopened.get("a/s/small")
    assert isinstance(big_snapshot.base, FileBlob)
    first = big_snapshot.base.read(0, MiB)
    for i in range(16):
        reopened.put(f"a/s/o{i}", pa.py_buffer(b"x" * MiB))
    assert not (tmp_path / "a/s/big.arrow").exists() and not (tmp_path / "a/s/small.arrow").exists()
    assert first + big_snapshot.base.read(MiB, len(big)) == big
    assert big_snapshot.base.buffer().to_pybytes() == big
    assert small_snapshot.base.buffer().to_pybytes() == small
    with pytest.raises(KeyError, match="evicted"):
        reopened.get("a/s/big")
    assert reopened.usage()["used_bytes"] == files_bytes(tmp_path) <= 16 * MiB


def test_restart_counts_the_files_and_orders_by_last_write(tmp_path: Path) -> None:
    """Start-up counts every object file (bases and deltas) from its listing, and
    the LRU order starts from the files' last writes."""
    store = Store(tmp_path)
    for i in range(6):
        store.put(f"a/s/o{i}", pa.py_buffer(b"x" * MiB))
        store.patch(f"a/s/o{i}", pa.py_buffer(b"d" * 1000))
    for i in range(6):  # o0 written last: its newest file is the newest
        when = (time.time() - 100 + i, time.time() - 100 + i)
        for path in (tmp_path / f"a/s/o{5 - i}.arrow", tmp_path / f"a/s/o{5 - i}.deltas/0.arrow"):
            os.utime(path, when)
    reopened = Store(tmp_path, capacity=6 * MiB + 20_000)
    assert reopened.usage()["used_bytes"] == files_bytes(tmp_path)
    reopened.put("a/s/new", pa.py_buffer(b"n" * MiB))  # room is made from the oldest last write: o5
    left = {info.key for info in reopened.list()}
    assert "a/s/o5" not in left and {"a/s/new", "a/s/o0", "a/s/o1", "a/s/o2", "a/s/o3"} <= left
    assert reopened.usage()["used_bytes"] == files_bytes(tmp_path)

"""A full disk (issue 4.4): the write that does not fit fails cleanly with UNAVAILABLE
naming the key, leaves no temporary file, changes nothing stored, and the server keeps
serving; once space is freed, writes work again.

The server test runs on a real 4 MiB tmpfs (it needs permission to mount one, and is
skipped otherwise); the store test injects ENOSPC into the file writes and always runs.
"""

from __future__ import annotations

import errno
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.flight as flight
import pytest

from flame_cache.store import StorageError, Store, pending
from tests.flight_client import MiB, get, patch, put, put_path, rows
from tests.server import CacheServer


def storage_files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    mount = tmp_path / "small-disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a 4 MiB tmpfs here: {done.stderr.decode().strip() or done.returncode}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True)


def test_a_write_that_does_not_fit_fails_cleanly_and_the_rest_is_served(make_server, small_disk: Path):
    server: CacheServer = make_server(storage=small_disk / "storage")
    with server.client() as client:
        key = put_path(client, "app/sess", b"early base")["key"]
        patch(client, key, b"early patch")
        table_key = put(client, flight.FlightDescriptor.for_path("app/sess"), pa.table({"n": [1, 2, 3]}))["key"]
        before = storage_files(server.storage)

        # a replace larger than the whole disk
        with pytest.raises(flight.FlightUnavailableError) as caught:
            put_path(client, key, b"r" * (6 * MiB))
        assert key in str(caught.value) and "disk is full" in str(caught.value)
        # a new object larger than the whole disk
        with pytest.raises(flight.FlightUnavailableError, match="disk is full"):
            put_path(client, "app/sess", b"n" * (6 * MiB))
        assert storage_files(server.storage) == before, "a failed write left something behind"

        # fill the disk almost to the brim, then a patch that does not fit
        filler = put_path(client, "app/filler", b"f" * (3 * MiB + 512 * 1024), row_bytes=MiB)["key"]
        with pytest.raises(flight.FlightUnavailableError) as caught:
            patch(client, key, b"p" * MiB)
        assert key in str(caught.value) and "disk is full" in str(caught.value)
        assert not [name for name in storage_files(server.storage) if ".tmp-" in name]

        # everything acknowledged before is served, whole
        assert rows(get(client, key)) == [(1, "base", b"early base"), (2, "patch", b"early patch")]
        assert get(client, table_key).column("n").to_pylist() == [1, 2, 3]
        assert rows(get(client, filler))[0][2] == b"f" * (3 * MiB + 512 * 1024)

        # space freed: writes work again, and continue the versions
        list(client.do_action(flight.Action("DELETE", filler.encode())))
        assert patch(client, key, b"p" * MiB)["version"] == 3
        assert put_path(client, key, b"r" * MiB)["version"] == 4
    assert server.alive()
    server.restart()
    with server.client() as client:
        assert rows(get(client, key)) == [(4, "base", b"r" * MiB)]
        assert get(client, table_key).column("n").to_pylist() == [1, 2, 3]


# -- the same, injected: no mount needed -------------------------------------


@pytest.fixture
def disk_with_room(monkeypatch: pytest.MonkeyPatch):
    """Set how many bytes the store's next file writes may still use: every
    byte of every file goes through the one writer's `write_all`."""
    state = {"room": 1 << 40}
    original_write_all = pending.write_all

    def write_all(fd: int, parts) -> None:
        if sum(memoryview(part).nbytes for part in parts) > state["room"]:
            raise OSError(errno.ENOSPC, "No space left on device")
        original_write_all(fd, parts)

    monkeypatch.setattr(pending, "write_all", write_all)
    return lambda room: state.update(room=room)


def test_the_store_keeps_every_earlier_object_when_the_disk_fills(tmp_path: Path, disk_with_room):
    store = Store(tmp_path)
    key = store.put("app/sess/obj", pa.py_buffer(b"base")).key
    store.patch(key, pa.py_buffer(b"delta"))
    before = storage_files(tmp_path)

    disk_with_room(100)
    for write in (
        lambda: store.put(key, pa.py_buffer(b"x" * 1000)),
        lambda: store.patch(key, pa.py_buffer(b"y" * 1000)),
        lambda: store.put("app/sess/new", pa.py_buffer(b"z" * 1000)),
        lambda: store.put("app/sess/tbl", pa.table({"n": list(range(1000))})),
    ):
        with pytest.raises(StorageError) as caught:
            write()
        assert "disk is full" in str(caught.value) and "nothing was stored" in str(caught.value)
    assert storage_files(tmp_path) == before
    snapshot = store.get(key)
    assert (snapshot.version, snapshot.base.to_pybytes(), [d.to_pybytes() for d in snapshot.deltas]) == (
        2,
        b"base",
        [b"delta"],
    )
    assert [info.key for info in store.list()] == [key]

    disk_with_room(1 << 40)
    assert store.patch(key, pa.py_buffer(b"fits now")).version == 3
    reopened = Store(tmp_path).get(key)
    assert [d.to_pybytes() for d in reopened.deltas] == [b"delta", b"fits now"]

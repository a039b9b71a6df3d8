"""Durability mode (issue 4.7): with `cache.fsync: true` a write is acknowledged only after
its file, the folder it was renamed in, and every folder it had to create are flushed;
deletes flush the folder too. Without it, nothing is flushed (the kernel writes back
later: a process kill loses nothing, a power loss may). What it costs is measured by
`python -m bench.fsync_cost`, not here.
"""

from __future__ import annotations

import os
from pathlib import Path

import pyarrow as pa
import pytest

from flame_cache.store import Store
from tests.flight_client import get, patch, put_path, rows


@pytest.fixture
def fsynced(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The paths os.fsync is called on, in order (a spy: the real fsync still runs)."""
    calls: list[str] = []
    real = os.fsync

    def spy(fd: int) -> None:
        calls.append(os.readlink(f"/proc/self/fd/{fd}"))
        real(fd)

    monkeypatch.setattr(os, "fsync", spy)
    return calls


def test_with_fsync_every_write_flushes_its_file_and_folders_before_returning(tmp_path: Path, fsynced: list[str]):
    root = tmp_path / "storage"
    store = Store(root, fsync=True)
    fsynced.clear()

    store.put("app/sess/obj", pa.py_buffer(b"base"))
    sess = root / "app" / "sess"
    *new_folders, temp_file, renamed_in = fsynced
    assert set(new_folders) == {str(root), str(root / "app")}  # the folders 'app' and 'sess' were made in
    assert Path(temp_file).parent == sess and ".obj.arrow.tmp-" in temp_file  # the data, before the rename
    assert renamed_in == str(sess)  # the rename, before the acknowledgement

    fsynced.clear()
    store.patch("app/sess/obj", pa.py_buffer(b"delta"))
    deltas = root / "app" / "sess" / "obj.deltas"
    assert fsynced[0] == str(sess)  # 'obj.deltas' was made in it
    assert ".0.arrow.tmp-" in fsynced[1] and Path(fsynced[1]).parent == deltas
    assert fsynced[2:] == [str(deltas)]

    fsynced.clear()
    store.put("app/sess/obj", pa.py_buffer(b"replaced"))
    assert ".obj.arrow.tmp-" in fsynced[0] and fsynced[1:] == [str(sess)]

    fsynced.clear()
    store.delete("app/sess/obj")
    assert fsynced == [str(sess)]


def test_without_fsync_nothing_is_flushed(tmp_path: Path, fsynced: list[str]):
    store = Store(tmp_path, fsync=False)
    store.put("app/sess/obj", pa.py_buffer(b"base"))
    store.patch("app/sess/obj", pa.py_buffer(b"delta"))
    store.delete("app")
    assert fsynced == []


def test_a_server_in_fsync_mode_serves_and_keeps_writes(make_server):
    server = make_server(fsync=True)
    with server.client() as client:
        key = put_path(client, "app/sess", b"durable")["key"]
        assert patch(client, key, b" and patched")["version"] == 2
    server.restart()
    with server.client() as client:
        assert rows(get(client, key)) == [(1, "base", b"durable"), (2, "patch", b" and patched")]

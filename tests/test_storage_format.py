"""How writes land on disk: one cell per base, whatever the upload's shape, and
nothing left beside it (SPEC 2; the performance work of issue 5), and the crc32c
of the cell in the file's schema metadata (SPEC 8).

flamepy's upload_object sends a file in 1 MiB rows and the HTTP mirror streams
long bodies straight to disk; either way the base file must be the one-row
opaque IPC file that a get maps without copying, byte for byte what pyarrow
writes for that cell. A replace swaps the new file in (store/rename.py) and
must leave neither the old file nor a temporary one behind.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import crc32c
import httpx
import pyarrow as pa
import pyarrow.flight as flight
import pytest

from flame_cache.store import Store
from tests.flight_client import MiB, get, patch, put_path, rows
from tests.server import CacheServer

SERVER_OPTIONS = dict(with_http=True)  # for the `server` fixture in conftest
RAW = "application/octet-stream"


@pytest.fixture
def fc(server: CacheServer) -> Iterator[flight.FlightClient]:
    with flight.FlightClient(server.endpoint) as client:
        yield client


@pytest.fixture
def http(server: CacheServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.http_url, timeout=60) as client:
        yield client


def payload(size: int, seed: int) -> bytes:
    block = bytes((seed * 31 + i) % 251 for i in range(4096))
    return (block * (size // len(block) + 1))[:size]


def pyarrow_file(version: int, data: bytes) -> bytes:
    """The one-row opaque file pyarrow itself writes for this cell, with the
    cell's crc32c in the schema metadata as 8 hex digits (SPEC 8)."""
    crc = b"%08x" % crc32c.crc32c(data)
    schema = pa.schema([("version", pa.uint64()), ("data", pa.binary())], metadata={b"flame.cache.crc32c": crc})
    batch = pa.record_batch([pa.array([version], pa.uint64()), pa.array([data], pa.binary())], schema=schema)
    sink = pa.BufferOutputStream()
    with pa.ipc.new_file(sink, schema) as writer:
        writer.write_batch(batch)
    return sink.getvalue().to_pybytes()


def folder_names(server: CacheServer, namespace: str) -> list[str]:
    return sorted(p.name for p in Path(server.storage, *namespace.split("/")).iterdir())


@pytest.mark.parametrize(
    "size, row_bytes",
    [(1000, None), (300 * 1024 + 3, None), (3 * MiB + 17, MiB), (9 * MiB + 5, MiB), (5 * MiB, None)],
    ids=[
        "1 KB (framed in memory)",
        "300 KiB (framed around the cell)",
        "3 MiB in rows (held, then written)",
        "9 MiB in rows (streamed)",
        "5 MiB in one row",
    ],
)
def test_a_flight_upload_in_any_rows_is_stored_as_one_cell(server, fc, size, row_bytes) -> None:
    data = payload(size, seed=size % 97)
    key = f"format/flight/o{size}"
    ref = put_path(fc, key, data, row_bytes=row_bytes)
    assert ref["version"] == 1
    assert Path(server.storage, f"{key}.arrow").read_bytes() == pyarrow_file(1, data)
    assert rows(get(fc, f"{key}:0")) == [(1, "base", data)]


def test_an_http_upload_streamed_to_disk_is_stored_as_one_cell(server, fc, http) -> None:
    data = payload(9 * MiB + 12345, seed=7)
    chunks = (data[i : i + 100_000] for i in range(0, len(data), 100_000))
    response = http.put("/v1/objects/format/http/big", content=chunks, headers={"Content-Type": RAW})
    assert response.status_code in (200, 201), response.text
    version = response.json()["version"]
    assert Path(server.storage, "format/http/big.arrow").read_bytes() == pyarrow_file(version, data)
    assert rows(get(fc, "format/http/big:0")) == [(version, "base", data)]


@pytest.mark.parametrize("size", [100, 300 * 1024 + 5], ids=["100 B", "300 KiB"])
def test_a_delta_is_stored_as_one_cell_with_its_version(server, fc, size) -> None:
    key = f"format/delta/o{size}"
    put_path(fc, key, b"base")
    delta = payload(size, seed=5)
    assert patch(fc, key, delta)["version"] == 2
    assert Path(server.storage, f"{key}.deltas/0.arrow").read_bytes() == pyarrow_file(2, delta)


def test_a_file_written_in_short_writes_is_whole(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The system may take less than a write offers (over 2 GiB it always
    does); the store writes the rest. Here every write takes at most 4097 bytes."""
    real_writev = os.writev
    monkeypatch.setattr(os, "writev", lambda fd, buffers: real_writev(fd, [memoryview(buffers[0])[:4097]]))
    store = Store(tmp_path)
    for size in (10_000, MiB + 17):
        data = payload(size, seed=size % 89)
        version = store.put(f"format/short/o{size}", pa.py_buffer(data)).version
        assert (tmp_path / f"format/short/o{size}.arrow").read_bytes() == pyarrow_file(version, data)
    store.patch(f"format/short/o{MiB + 17}", pa.py_buffer(payload(5000, seed=1)))
    assert Path(tmp_path, f"format/short/o{MiB + 17}.deltas/0.arrow").read_bytes() == pyarrow_file(
        2, payload(5000, seed=1)
    )


def test_a_streamed_upload_racing_a_write_is_framed_with_the_later_version(server, fc, http) -> None:
    """The version goes into the file when the upload ends, under the key's lock."""
    put_path(fc, "format/race/o", b"first")  # version 1

    def body() -> Iterator[bytes]:
        yield payload(5 * MiB, seed=1)  # past IN_MEMORY_BYTES: the upload has its file now
        assert put_path(fc, "format/race/o", b"second")["version"] == 2
        yield payload(MiB, seed=2)

    response = http.put("/v1/objects/format/race/o", content=body(), headers={"Content-Type": RAW})
    assert response.status_code == 200, response.text
    assert response.json()["version"] == 3
    data = payload(5 * MiB, seed=1) + payload(MiB, seed=2)
    assert Path(server.storage, "format/race/o.arrow").read_bytes() == pyarrow_file(3, data)


@pytest.mark.parametrize("size", [1024, 2 * MiB, 9 * MiB], ids=["1 KiB", "2 MiB", "9 MiB"])
def test_replacing_leaves_only_the_new_file(server, fc, http, size) -> None:
    namespace = f"format/replace{size}"
    for i in range(4):
        put_path(fc, f"{namespace}/o", payload(size, seed=i), row_bytes=MiB)
        response = http.put(f"/v1/objects/{namespace}/o", content=payload(size, seed=10 + i), headers={"Content-Type": RAW})
        assert response.status_code == 200, response.text
    assert folder_names(server, namespace) == ["o.arrow"]
    assert rows(get(fc, f"{namespace}/o:0")) == [(8, "base", payload(size, seed=13))]


def test_a_patch_only_read_sends_its_patches_in_one_batch(server, fc, http) -> None:
    """100 small deltas are one message, not 100 (both protocols batch alike)."""
    base = put_path(fc, "format/patches/o", payload(MiB, seed=3))["version"]
    deltas = [payload(1000 + i, seed=i) for i in range(100)]
    for delta in deltas:
        patch(fc, "format/patches/o", delta)
    batches = list(fc.do_get(flight.Ticket(f"format/patches/o:{base}".encode())))
    assert [chunk.data.num_rows for chunk in batches] == [100]
    table = pa.Table.from_batches([chunk.data for chunk in batches])
    assert rows(table) == [(base + 1 + i, "patch", d) for i, d in enumerate(deltas)]
    response = http.get("/v1/objects/format/patches/o", params={"format": "arrow", "version": base})
    assert response.status_code == 200, response.text
    http_batches = pa.ipc.open_stream(response.content).read_all().to_batches()
    assert [b.num_rows for b in http_batches] == [100]
    full = list(fc.do_get(flight.Ticket(b"format/patches/o:0")))
    assert [chunk.data.num_rows for chunk in full] == [1, 100]  # the base alone, then the patches

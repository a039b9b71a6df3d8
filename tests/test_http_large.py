"""Large objects stream through the HTTP mirror in bounded memory (issue 3, done-when 5).

The server's peak resident memory (VmHWM, reset through /proc/<pid>/clear_refs
after a warm-up) is measured around a 1 GiB upload and download, and around
an object over 2 GiB: it must stay under 400 MiB above idle. The data is made
block by block on the client and checked by CRC, so the test process does not
hold it either (except where a client must: a one-cell Arrow stream).
"""

from __future__ import annotations

import io
import zlib
from collections.abc import Iterator

import httpx
import pyarrow as pa
import pytest

from tests.procmem import memory, reset_peak
from tests.server import CacheServer

MiB = 2**20
GiB = 2**30
BUDGET = 400 * MiB
RAW = "application/octet-stream"
ARROW = "application/vnd.apache.arrow.stream"


SERVER_OPTIONS = dict(with_http=True)  # for the `server` fixture in conftest


@pytest.fixture(scope="module")
def http(server: CacheServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.http_url, timeout=600) as client:
        yield client


def block(i: int) -> bytes:
    """1 MiB that differs from every other block, so misordering shows."""
    return i.to_bytes(8, "little") * (MiB // 8)


def blocks(size: int) -> Iterator[bytes]:
    for i in range(size // MiB):
        yield block(i)
    if size % MiB:
        yield block(size // MiB)[: size % MiB]


def crc_of(chunks: Iterator[bytes]) -> tuple[int, int]:
    crc = size = 0
    for chunk in chunks:
        crc = zlib.crc32(chunk, crc)
        size += len(chunk)
    return crc, size


def warm_up(http: httpx.Client) -> None:
    """Every code path once, with a small object, so imports and pools are idle cost."""
    body = b"w" * (5 * MiB)
    http.put("/v1/objects/large/warm/up", content=body, headers={"Content-Type": RAW}).raise_for_status()
    assert http.get("/v1/objects/large/warm/up").content == body
    for params in ({"format": "arrow"}, {"format": "arrow", "chunked": "true"}):
        http.get("/v1/objects/large/warm/up", params=params).raise_for_status()
    http.delete("/v1/objects/large/warm/up")


class StreamFile(io.RawIOBase):
    """A readable file over a response's chunks, for pyarrow's stream reader."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks, self._rest = chunks, memoryview(b"")

    def readable(self) -> bool:
        return True

    def readinto(self, target) -> int:  # noqa: ANN001
        while not self._rest:
            chunk = next(self._chunks, None)
            if chunk is None:
                return 0
            self._rest = memoryview(chunk)
        n = min(len(target), len(self._rest))
        target[:n], self._rest = self._rest[:n], self._rest[n:]
        return n


def upload(http: httpx.Client, key: str, size: int) -> None:
    reply = http.put(f"/v1/objects/{key}", content=blocks(size), headers={"Content-Type": RAW})
    assert reply.status_code == 201, reply.text
    assert http.head(f"/v1/objects/{key}").headers["content-length"] == str(size)


def download_crc(http: httpx.Client, key: str, **headers: str) -> tuple[int, int]:
    with http.stream("GET", f"/v1/objects/{key}", headers=headers) as reply:
        assert reply.status_code in (200, 206)
        return crc_of(reply.iter_raw(MiB))


def test_one_gib_up_and_down_in_bounded_memory(server: CacheServer, http: httpx.Client) -> None:
    size = GiB
    warm_up(http)
    idle = reset_peak(server.pid)

    upload(http, "large/s/one", size)
    after_upload = memory(server.pid)["VmHWM"]
    assert download_crc(http, "large/s/one") == crc_of(blocks(size))
    after_raw = memory(server.pid)["VmHWM"]

    # The DoGet-compatible Arrow stream: the whole base in one cell, spliced from the file.
    with http.stream("GET", "/v1/objects/large/s/one", headers={"Accept": ARROW}) as reply:
        table = pa.ipc.open_stream(io.BufferedReader(StreamFile(reply.iter_raw(MiB)), MiB)).read_all()
    assert table.num_rows == 1 and table.column("kind")[0].as_py() == "base"
    assert zlib.crc32(table.column("data").chunk(0).buffers()[2]) == crc_of(blocks(size))[0]
    del table
    peak = memory(server.pid)["VmHWM"]

    figures = {"idle": idle, "upload": after_upload, "raw download": after_raw, "arrow download": peak}
    print("server memory, MiB:", {k: round(v / MiB, 1) for k, v in figures.items()})
    assert peak - idle < BUDGET, (
        f"peak {peak / MiB:.0f} MiB is more than {BUDGET / MiB:.0f} MiB above idle {idle / MiB:.0f} MiB"
    )
    assert http.delete("/v1/objects/large/s/one").status_code == 204


def test_an_object_over_2_gib_works_over_http(server: CacheServer, http: httpx.Client) -> None:
    size = 2 * GiB + 3 * MiB + 17
    warm_up(http)
    idle = reset_peak(server.pid)
    upload(http, "large/s/two", size)

    tail_start = 2**31 - 8  # a range across the 2 GiB mark
    expected_tail = _slice(tail_start, 32)
    part = http.get("/v1/objects/large/s/two", headers={"Range": f"bytes={tail_start}-{tail_start + 31}"})
    assert (part.status_code, part.content) == (206, expected_tail)
    assert part.headers["content-range"] == f"bytes {tail_start}-{tail_start + 31}/{size}"
    assert download_crc(http, "large/s/two") == crc_of(blocks(size))

    # The chunked Arrow form (Flight's `chunked:` ticket): read batch by batch here too.
    crc, total, rows = 0, 0, 0
    with http.stream("GET", "/v1/objects/large/s/two", params={"format": "arrow", "chunked": "true"}) as reply:
        reader = pa.ipc.open_stream(io.BufferedReader(StreamFile(reply.iter_raw(MiB)), MiB))
        for batch in reader:
            assert batch.column("kind")[0].as_py() == "base" and batch.column("version")[0].as_py() == 1
            cell = batch.column("data").buffers()[2]
            crc, total, rows = zlib.crc32(cell, crc), total + cell.size, rows + 1
    assert (crc, total) == crc_of(blocks(size))
    assert rows == -(-size // (4 * MiB))

    peak = memory(server.pid)["VmHWM"]
    print(f"server memory over {size / GiB:.2f} GiB, MiB: idle {idle / MiB:.1f}, peak {peak / MiB:.1f}")
    assert peak - idle < BUDGET
    assert http.delete("/v1/objects/large/s/two").status_code == 204


def _slice(start: int, length: int) -> bytes:
    """Bytes [start, start + length) of the object `blocks(size)` makes."""
    first, offset = divmod(start, MiB)
    joined = block(first) + block(first + 1)
    return joined[offset : offset + length]


def test_long_and_short_bodies_in_turn_on_one_connection_arrive_whole(http: httpx.Client) -> None:
    """A long body is read in larger socket reads and reaches the app in
    1 MiB pieces (http/intake.py); the requests after it on the same
    connection, short or long, sized or chunked, must still arrive byte for byte."""
    sized = b"".join(block(i) for i in range(4))[: 3 * MiB + 17]
    uneven = [block(i)[: 1000 + 7919 * i] for i in range(40)]  # chunked transfer, pieces of odd sizes
    bodies = {"long": sized, "short": b"s" * 1024, "chunked": b"".join(uneven), "one": b"1"}
    for name, body in bodies.items():
        content = iter(uneven) if name == "chunked" else body
        reply = http.put(f"/v1/objects/large/turns/{name}", content=content, headers={"Content-Type": RAW})
        assert reply.status_code in (200, 201), reply.text
    for name, body in bodies.items():
        got = http.get(f"/v1/objects/large/turns/{name}").content
        assert (len(got), zlib.crc32(got)) == (len(body), zlib.crc32(body)), name

"""`flame-cache put` then `get` of a 3 GiB file over Flight, in bounded memory (issue 15, done-when 1).

The file is sparse (3 GiB and a few bytes, nearly all holes, with a MiB of
random bytes every 256 MiB and at the end), so a chunk lost or put in the
wrong place shows, and making it costs no disk. The copy is compared with a
streaming sha256. The commands' own peak RSS (wait4: tests/cli.py) must stay
under 200 MiB; the server's peak (VmHWM, reset after a warm-up) within
400 MiB of idle, the budget of the HTTP large-object tests.
"""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

from tests.cli import run
from tests.procmem import memory, reset_peak
from tests.server import CacheServer

MiB, GiB = 2**20, 2**30
SIZE = 3 * GiB + 4321  # past 2 GiB, and not a whole number of chunks
CLIENT_BUDGET = 200 * MiB
SERVER_BUDGET = 400 * MiB


def sparse_file(path: Path, size: int) -> Path:
    with path.open("wb") as file:
        file.truncate(size)
        for offset in range(12345, size - MiB, 256 * MiB):
            file.seek(offset)
            file.write(os.urandom(MiB))
        file.seek(size - 100)
        file.write(os.urandom(100))
    return path


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while block := file.read(MiB):
            digest.update(block)
    return digest.hexdigest()


def test_a_3_gib_file_round_trips_through_put_and_get_in_bounded_memory(server: CacheServer, tmp_path: Path) -> None:
    home, key = tmp_path / "home", "large/cli/model.bin"
    source, copy = sparse_file(tmp_path / "model.bin", SIZE), tmp_path / "copy.bin"
    warm = sparse_file(tmp_path / "warm.bin", 9 * MiB)
    assert run("put", str(warm), "large/cli/warm", home=home, endpoint=server.endpoint).status == 0
    assert run("get", "large/cli/warm", str(tmp_path / "warm.out"), home=home, endpoint=server.endpoint).status == 0
    idle = reset_peak(server.pid)

    started = time.monotonic()
    put = run("put", str(source), key, home=home, endpoint=server.endpoint, timeout=900)
    put_seconds, after_put = time.monotonic() - started, memory(server.pid)["VmHWM"]
    assert (put.status, put.out, put.err) == (0, f"{key} 1\n", ""), put.err
    started = time.monotonic()
    got = run("get", key, str(copy), home=home, endpoint=server.endpoint, timeout=900)
    get_seconds, peak = time.monotonic() - started, memory(server.pid)["VmHWM"]
    assert (got.status, got.out, got.err) == (0, "", ""), got.err

    assert copy.stat().st_size == SIZE
    assert sha256(copy) == sha256(source)
    print(
        f"3 GiB: put {put_seconds:.1f} s, get {get_seconds:.1f} s; client peak RSS MiB: put {put.peak_rss / MiB:.0f}, "
        f"get {got.peak_rss / MiB:.0f}; server MiB: idle {idle / MiB:.0f}, after put {after_put / MiB:.0f}, "
        f"after get {peak / MiB:.0f}"
    )
    assert put.peak_rss < CLIENT_BUDGET and got.peak_rss < CLIENT_BUDGET
    assert peak - idle < SERVER_BUDGET, f"server peak {peak / MiB:.0f} MiB, idle {idle / MiB:.0f} MiB"
    copy.unlink()
    assert run("rm", "large/cli", home=home, endpoint=server.endpoint).status == 0

"""The disk's share of a put: what writing the bytes durably-by-rename costs.

The bare Flight server keeps uploads in memory, so "put >= 0.8x bare" asks a
server that writes every object to disk to hide the disk entirely. To show
how much of the gap is the disk itself, this measures, for each put size and
in the scratch directory the servers use, the least a crash-safe write of
those bytes costs: create a new file, write the bytes, close it, and swap it
in for the previous one (`flame_cache.store.rename.replace_file`, the
cheapest atomic replace we know of on Linux), the previous one then unlinked.
No IPC framing, no server, no network. Its mean time per write added to the
bare server's time per put gives the transport-plus-disk limit of the report.
"""

from __future__ import annotations

import os
import statistics
import time
from pathlib import Path

from bench.clients import make_bytes
from flame_cache.store.rename import replace_file


def measure(folder: Path, size: int, min_time: float, repeats: int) -> dict:
    """Median over repeats of the mean seconds one write takes."""
    folder.mkdir(parents=True, exist_ok=True)
    data = memoryview(make_bytes(size))
    target = folder / f"floor-{size}.arrow"
    _write(target, data)
    means = []
    for _ in range(repeats):
        count, started = 0, time.perf_counter()
        while True:
            temp = folder / f".floor-{size}.tmp-{count}"
            _write(temp, data)
            replace_file(temp, target)
            count += 1
            elapsed = time.perf_counter() - started
            if elapsed >= min_time and count >= 3:
                break
        means.append(elapsed / count)
    target.unlink()
    return {"size": size, "seconds": statistics.median(means), "seconds_repeats": means}


def _write(path: Path, data: memoryview) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
    try:
        while data:
            data = data[os.write(fd, data) :]
    finally:
        os.close(fd)

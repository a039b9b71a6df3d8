"""What `cache.fsync: true` costs per write, measured on the store itself.

    python -m bench.fsync_cost [--dir DIR] [--seconds 3]

For each size it runs creates (new key: new file, its folder flushed), replaces
(file renamed over the old one) and patches (a delta file) through `Store`, once
with fsync off and once on, each for about `--seconds`, and prints writes per
second and the median and 99th-percentile latency. Run it on the disk the cache
will use (`--dir`): the figures are the disk's, not the code's. No server or
network is involved, so this is the cost fsync adds, not a protocol benchmark.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import pyarrow as pa

from flame_cache.store import Store

SIZES = {"1 KiB": 1 << 10, "64 KiB": 64 << 10, "1 MiB": 1 << 20, "16 MiB": 16 << 20}


def measure(root: Path, fsync: bool, op: str, size: int, seconds: float) -> list[float]:
    store = Store(root, fsync=fsync)
    data = pa.py_buffer(os.urandom(size))
    key = store.put("bench/sess/base", data).key
    latencies: list[float] = []
    deadline = time.monotonic() + seconds
    n = 0
    while time.monotonic() < deadline or len(latencies) < 5:
        started = time.perf_counter()
        if op == "create":
            store.put(f"bench/s{n % 50}/o{n}", data)
        elif op == "replace":
            store.put(key, data)
        else:
            if n % 900 == 899:  # stay under max_deltas; not timed
                store.put(key, data)
                started = time.perf_counter()
            store.patch(key, pa.py_buffer(data.to_pybytes()[: min(size, 64 << 10)]))
        latencies.append(time.perf_counter() - started)
        n += 1
    return latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, default=None, help="a folder on the disk to measure (default: the temp dir)")
    parser.add_argument("--seconds", type=float, default=3.0)
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="fsync-cost-", dir=args.dir))
    print(f"# {platform.node()}, {platform.system()} {platform.release()}, {os.cpu_count()} CPUs, in {base}")
    print(f"{'write':<8} {'size':>7} | {'fsync off':>26} | {'fsync on':>26} | slower")
    print(f"{'':<8} {'':>7} | {'writes/s   p50 ms   p99 ms':>26} | {'writes/s   p50 ms   p99 ms':>26} |")
    try:
        for op in ("create", "replace", "patch"):
            for label, size in SIZES.items():
                if op == "patch" and size > (64 << 10):
                    continue  # deltas are small in practice; 64 KiB stands for them
                row = []
                for fsync in (False, True):
                    root = base / f"{op}-{size}-{fsync}"
                    os.sync()  # start each run with no writeback left over from the last
                    lat = measure(root, fsync, op, size, args.seconds)
                    shutil.rmtree(root)
                    p99 = statistics.quantiles(lat, n=100)[98] if len(lat) >= 100 else max(lat)
                    row.append((len(lat) / sum(lat), statistics.median(lat) * 1e3, p99 * 1e3))
                (r0, m0, q0), (r1, m1, q1) = row
                print(f"{op:<8} {label:>7} | {r0:8.0f} {m0:8.2f} {q0:8.2f} | {r1:8.0f} {m1:8.2f} {q1:8.2f} | {r0 / r1:5.1f}x")
    finally:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()

"""What the crc32c checksums (SPEC 8) cost, measured on the store itself.

    python -m bench.checksum_cost [--dir DIR] [--sizes 64M 1G] [--repeats 3]

Rows:
- the checksum libraries' throughput over one buffer (ICRAR `crc32c`, which the
  store uses, and `google-crc32c` if it is installed);
- a streamed put (1 MiB chunks, as flamepy's upload_object sends them) through
  `Store.put` with checksums, and with the checksum function replaced by one that
  does nothing (the file framed exactly alike), so the difference is what summing
  the crc as the bytes arrive costs;
- the first get of a large object: a fresh `Store` over the same folder loads it,
  which reads the whole base file once to compare it with its checksum, against
  the same load with that comparison skipped. The file was just written, so it
  is read from the page cache: from a cold disk add the disk's read time.
No server or network is involved: these are the checksums' own costs.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path

from flame_cache.app.sizes import parse_size
from flame_cache.store import Store, checksum

CHUNK = 1 << 20


@contextmanager
def checksums_off() -> Iterator[None]:
    """The store's crc32c replaced by a no-op: what the store costs without it."""
    real = checksum._crc32c
    checksum._crc32c = lambda data, value=0: 0
    try:
        yield
    finally:
        checksum._crc32c = real


def timed(work: Callable[[], object], repeats: int) -> float:
    """Median seconds of `work` over `repeats` runs."""
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        work()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def library_rows(repeats: int) -> None:
    data = os.urandom(64 << 20)
    import crc32c

    libraries: dict[str, Callable[[bytes], int]] = {"crc32c (ICRAR; used)": lambda d: crc32c.crc32c(d)}
    try:
        import google_crc32c

        libraries["google-crc32c"] = lambda d: google_crc32c.value(d)
    except ImportError:
        pass
    for name, crc in libraries.items():
        seconds = timed(lambda: crc(data), repeats)
        chunked = timed(lambda: [crc(data[i : i + CHUNK]) for i in range(0, len(data), CHUNK)], repeats)
        print(f"library  {name:<22} {len(data) / seconds / 1e9:6.2f} GB/s whole, {len(data) / chunked / 1e9:6.2f} GB/s in 1 MiB calls")


def put_rows(base: Path, sizes: list[int], repeats: int) -> list[dict]:
    """Per size: median seconds of a streamed put with checksums and without."""
    rows = []
    for size in sizes:
        chunk = os.urandom(CHUNK)
        results = {}
        for label, context in (("with", nullcontext), ("without", checksums_off)):
            root = base / f"put-{size}-{label}"
            store = Store(root)

            def put() -> None:
                os.sync()  # no writeback of the last repeat left to compete with this one
                started = time.perf_counter()
                store.put("bench/sess/o", iter([chunk] * (size // CHUNK)))
                put.seconds.append(time.perf_counter() - started)  # type: ignore[attr-defined]

            put.seconds = []  # type: ignore[attr-defined]
            with context():
                for _ in range(repeats):
                    put()
            results[label] = statistics.median(put.seconds)  # type: ignore[attr-defined]
            shutil.rmtree(root)
        rows.append({"row": "put", "size": size, "with_s": results["with"], "without_s": results["without"]})
    return rows


def first_get_rows(base: Path, sizes: list[int], repeats: int) -> list[dict]:
    """Per size: median seconds of the first get (the load, which checks the
    checksum) with the check and without."""
    rows = []
    for size in sizes:
        root = base / f"get-{size}"
        chunk = os.urandom(CHUNK)
        Store(root).put("bench/sess/o", iter([chunk] * (size // CHUNK)))
        results = {label: timed(lambda: _first_get(root, skip=label == "without"), repeats) for label in ("with", "without")}
        rows.append({"row": "first get", "size": size, "with_s": results["with"], "without_s": results["without"]})
        shutil.rmtree(root)
    return rows


def _first_get(root: Path, *, skip: bool) -> None:
    from flame_cache.store import fileformat

    real = fileformat.verify_blob
    if skip:
        fileformat.verify_blob = lambda data, name, pace=None: 0
    try:
        store = Store(root)  # nothing loaded yet
        snapshot = store.get("bench/sess/o")
        assert snapshot.base.size > 0
    finally:
        fileformat.verify_blob = real


def measure(base: Path, put_sizes: list[int], get_sizes: list[int], repeats: int) -> list[dict]:
    """The put and first-get rows (for `bench.run` and `main`), in a scratch folder below `base`."""
    folder = Path(tempfile.mkdtemp(prefix="checksum-cost-", dir=base))
    try:
        return put_rows(folder, put_sizes, repeats) + first_get_rows(folder, get_sizes, repeats)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def lines(rows: list[dict]) -> str:
    """The rows as text: times with and without, and what the checksums add."""
    out = []
    for r in rows:
        on, off, size = r["with_s"], r["without_s"], r["size"]
        clients = f" x{r['clients']}" if "clients" in r else ""
        out.append(
            f"{r['row'] + clients:<13} {size >> 20:>5} MiB   with {on * 1e3:8.1f} ms ({size / on / 1e9:5.2f} GB/s)   "
            f"without {off * 1e3:8.1f} ms   +{(on - off) * 1e3:.1f} ms ({on / off - 1:+.1%})"
        )
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, default=None, help="a folder on the disk to measure (default: the temp dir)")
    parser.add_argument("--sizes", nargs="+", default=["64M", "1G"])
    parser.add_argument("--get-sizes", nargs="+", default=["1G"])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    print(f"# {platform.node()}, {platform.system()} {platform.release()}, {os.cpu_count()} CPUs")
    library_rows(args.repeats)
    sizes, get_sizes = [parse_size(s) for s in args.sizes], [parse_size(s) for s in args.get_sizes]
    print(lines(measure(args.dir or Path(tempfile.gettempdir()), sizes, get_sizes, args.repeats)))


if __name__ == "__main__":
    main()

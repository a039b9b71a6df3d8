"""flame-cache benchmark: `python -m bench.run [--quick] [--sizes 1K 1M 64M 1G] [--out bench/results]`.

One run measures, on this machine and the same payloads, flame-cache over
Flight (disk storage, defaults) and over HTTP, the transport limit (a bare
in-memory pyarrow.flight server) and Redis (redis-server through redis-py);
then the memory a large object costs the server, and the start-up time with
100,000 objects on disk. See bench/README.md for what every row means.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa

from bench import ab, checksum_cost, diskfloor, procmem, report, startup
from bench.report import parse_size, size_label
from bench.servers import (
    REDIS_HINT,
    REPO,
    BareAsgi,
    BareFlight,
    FlameCache,
    Redis,
    Server,
    ServerError,
)
from bench.workloads import KiB, MiB, NotAvailableError, Pool, WorkerError

PATCH_BASE = 1 * MiB  # base of the objects that take patches
PATCH_DELTA = 1 * KiB  # each delta
PATCH_COUNT = 100


@dataclass(frozen=True)
class RowSpec:
    workload: str  # put, get, not-modified, patch, patch-only read
    size: int  # object (or delta) bytes
    clients: int
    repeats: int
    min_time: float  # seconds each client keeps repeating, per repeat
    min_ops: int = 1
    max_ops: int | None = None
    warmup: bool = True

    @property
    def id(self) -> str:
        what = {
            "not-modified": "not-modified",
            "patch": f"patch {size_label(self.size)} (100 in a row)",
            "patch-only read": f"patch-only read ({PATCH_COUNT} x {size_label(self.size)})",
        }.get(self.workload, f"{self.workload} {size_label(self.size)}")
        return f"{what} x{self.clients}"


class Progress:
    def __init__(self) -> None:
        self.t0 = time.monotonic()

    def __call__(self, message: str) -> None:
        print(f"[{time.monotonic() - self.t0:6.1f}s] {message}", file=sys.stderr, flush=True)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="smoke test: small sizes, few short repeats (< 2 min)")
    p.add_argument("--sizes", nargs="+", help="object sizes, e.g. 1K 1M 64M 1G (default: those; quick: 1K 1M 16M)")
    p.add_argument("--clients", type=int, default=8, help="the concurrent-clients rows (default 8)")
    p.add_argument("--repeats", type=int, help="repeats per row (default 5, 3 for 1 GiB; quick: 3)")
    p.add_argument("--min-time", type=float, help="seconds per repeat for small objects (default 1.0; quick 0.2)")
    p.add_argument("--concurrent-max-size", help="largest size with a concurrent row (default 64M; quick 1M)")
    p.add_argument(
        "--servers", default=",".join(report.SERVERS), help=f"comma list of {','.join(report.SERVERS)} (default: all)"
    )
    p.add_argument(
        "--upload-rows", default="1M", help="flamepy upload rows: '1M' like upload_object, 'whole' like put_object"
    )
    p.add_argument(
        "--bare-as-uploaded", action="store_true", help="bare server streams uploads back in their 1 MiB rows"
    )
    p.add_argument("--memory-size", help="object size of the memory rows (default 1G; quick 64M)")
    p.add_argument("--memory-readers", type=int, default=4)
    p.add_argument("--startup-objects", type=int, help="objects for the start-up row (default 100000; quick 20000)")
    p.add_argument("--skip-memory", action="store_true")
    p.add_argument("--skip-startup", action="store_true")
    p.add_argument("--skip-checksums", action="store_true", help="skip the checksums' cost (put with and without, first get)")
    p.add_argument("--checksum-rounds", type=int, default=4, help="rounds of the servers with and without checksums (default 4)")
    p.add_argument("--checksums-only", action="store_true", help="only the checksums' cost (no other rows)")
    p.add_argument("--baseline", type=Path, help="another checkout (e.g. a git worktree of the commit before a change) "
                   "whose server is alternated with this one's on puts and gets of both protocols (bench/ab.py)")
    p.add_argument("--metrics-off", action="store_true", help="the --baseline A/B against this checkout with its "
                   "request metrics taken out (bench/nometrics.py) instead of another checkout")
    p.add_argument("--baseline-only", action="store_true", help="only the --baseline A/B (no other rows)")
    p.add_argument("--baseline-rounds", type=int, default=4, help="rounds of the --baseline A/B (default 4)")
    p.add_argument("--redis-server", default="redis-server", help="redis-server binary (default: from PATH)")
    p.add_argument("--out", type=Path, default=REPO / "bench" / "results", help="where results are written")
    p.add_argument("--workdir", type=Path, help="scratch directory (default: a new one in the temp dir, removed after)")
    p.add_argument("--keep", action="store_true", help="keep the scratch directory (storage, server logs)")
    return p.parse_args(argv)


def build_rows(args: argparse.Namespace) -> list[RowSpec]:
    quick = args.quick
    sizes = [parse_size(s) for s in (args.sizes or (["1K", "1M", "16M"] if quick else ["1K", "1M", "64M", "1G"]))]
    repeats = args.repeats or (3 if quick else 5)
    min_time = args.min_time if args.min_time is not None else (0.2 if quick else 1.0)
    conc_max = parse_size(args.concurrent_max_size or ("1M" if quick else "64M"))
    many = args.clients

    def spec(workload: str, size: int, clients: int, **kw) -> RowSpec:
        big = size >= 256 * MiB
        return RowSpec(
            workload, size, clients,
            repeats=kw.pop("repeats", min(repeats, 3) if big else repeats),
            min_time=0.0 if big else min_time,
            warmup=kw.pop("warmup", workload != "put" or not big), **kw,
        )  # fmt: skip

    rows: list[RowSpec] = []
    for workload in ("put", "get"):
        rows += [spec(workload, s, 1) for s in sizes]
        if many > 1:
            rows += [spec(workload, s, many) for s in sizes if s <= conc_max]
    rows.append(spec("not-modified", 0, 1))
    if many > 1:
        rows.append(spec("not-modified", 0, many))
    rows.append(spec("patch", PATCH_DELTA, 1, min_ops=PATCH_COUNT, max_ops=PATCH_COUNT, warmup=False))
    rows.append(spec("patch-only read", PATCH_DELTA, 1))
    if many > 1:
        rows.append(spec("patch-only read", PATCH_DELTA, many))
    return rows


def machine_info(redis_version: str | None) -> dict:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = 0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem = int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        commit = (
            subprocess.run(
                ["git", "describe", "--always", "--dirty"], cwd=REPO, capture_output=True, text=True, timeout=10
            ).stdout.strip()
            or "unknown"
        )
    except OSError:
        commit = "unknown"
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": mem / 2**30,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "pyarrow": pa.__version__,
        "redis": redis_version,
        "commit": commit,
        "loadavg_start": " ".join(f"{x:.2f}" for x in os.getloadavg()),
    }


class Bench:
    def __init__(self, args: argparse.Namespace, pool: Pool, workdir: Path, progress: Progress) -> None:
        self.args = args
        self.pool = pool
        self.workdir = workdir
        self.progress = progress
        self.rows = build_rows(args)
        self.table = {
            spec.id: {
                "id": spec.id,
                "workload": spec.workload,
                "size": spec.size,
                "clients": spec.clients,
                "results": {},
            }
            for spec in self.rows
        }
        self.memory: dict = {}
        self.run_id = uuid.uuid4().hex[:8]

    # -- one row on one server ---------------------------------------------------

    def run_row(self, label: str, server: Server, address: dict, spec: RowSpec) -> dict:
        pool, n = self.pool, spec.clients
        sl = size_label(spec.size).replace(" ", "")
        base = {"address": address, "size": spec.size, "min_ops": spec.min_ops, "max_ops": spec.max_ops,
                "min_time": spec.min_time}  # fmt: skip
        tasks: list[dict] = []
        moved = spec.size
        if spec.workload == "put":
            tasks = [{**base, "op": "put", "key": f"bench/put-{sl}/c{i}"} for i in range(n)]
        elif spec.workload == "get":
            key = f"bench/get-{sl}/obj"
            pool.setup({**base, "op": "setup-put", "key": key})
            tasks = [{**base, "op": "get", "key": key}] * n
        elif spec.workload == "not-modified":
            key = "bench/notmod/obj"
            version = pool.setup({**base, "op": "setup-not-modified", "key": key, "size": KiB})["version"]
            tasks = [{**base, "op": "not-modified", "key": key, "version": version}] * n
            moved = 0
        elif spec.workload == "patch-only read":
            key = f"bench/patch-read/obj-{self.run_id}-x{n}"
            done = pool.setup(
                {**base, "op": "setup-patches", "key": key, "base_size": PATCH_BASE, "count": PATCH_COUNT}
            )
            tasks = [{**base, "op": "patch-read", "key": key, "since": done["base_version"], "rows": PATCH_COUNT}] * n
            moved = spec.size * PATCH_COUNT
        repeats, peaks, rises = [], [], []
        for r in range(spec.repeats):
            if spec.workload == "patch":  # a fresh object for each run of 100 patches
                key = f"bench/patch/obj-{self.run_id}-{r}"
                pool.setup({**base, "op": "setup-put", "key": key, "size": PATCH_BASE})
                tasks = [{**base, "op": "patch", "key": key}]
            if r == 0 and spec.warmup:
                pool.warmup(tasks)
            os.sync()  # no dirty pages of earlier puts, whose writeback would take CPU from this repeat
            with procmem.RssSampler(server.pid) as mem:
                rep = pool.timed(tasks)
            repeats.append(rep)
            if mem.reading:
                peaks.append(mem.reading.peak)
                rises.append(mem.reading.rise)
            gbs = f", {rep.bytes_s / 1e9:.3f} GB/s" if moved else ""
            self.progress(f"{label:<7} {spec.id:<34} repeat {r + 1}/{spec.repeats}: {rep.ops_s:,.1f} ops/s{gbs}")
        out = report.summarize(repeats, moved)
        out["rss_peak"] = max(peaks) if peaks else None
        out["rss_rise"] = max(rises) if rises else None
        return out

    def run_rows(self, label: str, server: Server, address: dict) -> None:
        for spec in self.rows:
            cell = self.table[spec.id]["results"]
            if not server.pid:
                try:
                    self.progress(f"{label}: server is down; restarting it")
                    server.restart()
                except ServerError as exc:
                    cell[label] = {"error": f"server down: {exc}"[:300]}
                    continue
            try:
                cell[label] = self.run_row(label, server, address, spec)
            except NotAvailableError as exc:
                cell[label] = {"na": str(exc)}
                self.progress(f"{label:<7} {spec.id:<34} {exc}")
            except WorkerError as exc:
                cell[label] = {"error": str(exc)[:300]}
                self.progress(f"{label:<7} {spec.id:<34} ERROR {exc}")

    def mark(self, label: str, reason: str) -> None:
        for row in self.table.values():
            row["results"][label] = {"na": reason}

    # -- memory: one big object, put once, then read by several clients at once ---

    def run_memory(self, label: str, server: Server, address: dict, restart_before_get: bool) -> None:
        size, readers = self.memory["size"], self.memory["readers"]
        key = f"bench/memory/obj-{self.run_id}"
        task = {"address": address, "size": size, "min_ops": 1, "max_ops": 1, "min_time": 0.0, "key": key}
        try:
            server.restart()  # a fresh process: the baseline holds nothing of the earlier rows
            time.sleep(0.3)
            self.progress(f"{label:<7} memory: put {size_label(size)} (RSS {procmem.rss(server.pid) / 2**20:,.0f} MiB)")
            with procmem.RssSampler(server.pid) as put_mem:
                put = self.pool.timed([{**task, "op": "put"}])
            if restart_before_get:
                server.restart()  # the object is on disk only, as after any restart or eviction
                time.sleep(0.3)
                note = "after a restart: object on disk only"
            else:  # one read first, so a one-time step (the bare server's join) is not counted
                self.pool.timed([{**task, "op": "get"}])
                note = "after one untimed get"
            self.progress(
                f"{label:<7} memory: get {size_label(size)} x{readers} (RSS {procmem.rss(server.pid) / 2**20:,.0f} MiB)"
            )
            with procmem.RssSampler(server.pid) as get_mem:
                get = self.pool.timed([{**task, "op": "get"}] * readers)
            self.memory[label] = {
                "put": {**put_mem.reading.as_dict(), "seconds": put.wall},
                "get": {**get_mem.reading.as_dict(), "seconds": get.wall, "note": note},
            }
        except (WorkerError, ServerError) as exc:
            self.memory[label] = {"error": str(exc)[:300]}
            self.progress(f"{label:<7} memory: ERROR {exc}")

    # -- the sections -----------------------------------------------------------

    def section(self, label: str, server: Server, memory: bool, restart_before_get: bool = False) -> None:
        self.progress(f"{label}: starting {server.name}")
        try:
            server.start()
        except ServerError as exc:
            self.progress(f"{label}: ERROR {exc}")
            self.mark(label, f"error: {server.name} did not start: {str(exc).splitlines()[0]}")
            return
        try:
            self.run_rows(label, server, server.address())
            if memory:
                self.run_memory(label, server, server.address(), restart_before_get)
        finally:
            server.stop()

    def flame_cache_section(self, wanted: set[str]) -> None:
        """Flight rows (flamepy's calls, then flame_cache.client's), HTTP rows (if the mirror answers), then memory; one flame-cache process."""
        cache = FlameCache(self.workdir)
        self.progress(f"flame-cache: starting (storage {cache.storage})")
        try:
            cache.start()
        except ServerError as exc:
            self.progress(f"flame-cache: ERROR {exc}")
            for label in ("flight", "client", "http"):
                self.mark(label, f"error: flame-cache did not start: {str(exc).splitlines()[0]}")
            return
        try:
            if "flight" in wanted:
                self.run_rows("flight", cache, cache.address())
            else:
                self.mark("flight", "not selected (--servers)")
            if "client" in wanted:
                self.run_rows("client", cache, {"kind": "client", "endpoint": cache.endpoint})
            else:
                self.mark("client", "not selected (--servers)")
            ok, why = cache.http_status()
            if "http" not in wanted:
                self.mark("http", "not selected (--servers)")
            elif ok:
                self.run_rows("http", cache, {"kind": "http", "endpoint": cache.http_endpoint})
            else:
                self.progress(f"http: {why}")
                self.mark("http", why)
            if "flight" in wanted and self.memory:
                self.run_memory("flight", cache, cache.address(), restart_before_get=True)
        finally:
            cache.stop()


def measure_disk_floor(bench: Bench, workdir: Path, progress: Progress) -> list[dict]:
    """`bench.diskfloor` for every 1-client put size (see that module)."""
    floors = []
    for spec in bench.rows:
        if spec.workload == "put" and spec.clients == 1:
            floor = diskfloor.measure(workdir / "disk-floor", spec.size, spec.min_time or 0.5, spec.repeats)
            progress(f"disk floor {report.size_label(spec.size)}: {floor['seconds'] * 1e3:.3f} ms a write")
            floors.append(floor)
    return floors


def measure_checksum_servers(bench: Bench, sizes: list[int], rounds: int) -> list[dict]:
    """Flight puts through two flame-cache servers of this checkout, one with
    its crc32c summing nothing (bench/nochecksum.py), alternated for `rounds`
    rounds on fresh storage (bench/ab.py): the checksums' cost as a client
    sees it. Rows: each size with 1 client, and the smallest with `--clients`
    clients. `with_s`/`without_s`: seconds per put (the inverse of the median
    ops/s over the rounds)."""
    specs = [RowSpec("put", s, 1, repeats=3, min_time=0.0, warmup=s < 256 * MiB) for s in sizes]
    if bench.args.clients > 1:
        specs.append(RowSpec("put", sizes[0], bench.args.clients, repeats=3, min_time=0.0))
    variants = (
        ab.Variant("crc", lambda: FlameCache(bench.workdir)),
        ab.Variant("no-crc", lambda: FlameCache(bench.workdir, checksums=False)),
    )
    ops = ab.alternate(bench.run_row, variants, [("flight", spec) for spec in specs], rounds)
    rows = []
    for spec in specs:
        on, off = (ops[(label, "flight", spec.id)] for label in ("crc", "no-crc"))
        rows.append({"row": "server put", "size": spec.size, "clients": spec.clients, "with_s": 1 / statistics.median(on),
                     "without_s": 1 / statistics.median(off), "rounds": {"with": on, "without": off}})  # fmt: skip
    return rows


def baseline_rows(bench: Bench) -> list[tuple[str, RowSpec]]:
    """The rows of `--baseline`: puts and gets over Flight of each size up to
    64 MiB and over HTTP up to 1 MiB with 1 client, and of the smallest with
    `--clients` clients, on both protocols."""
    args, sizes = bench.args, sorted({spec.size for spec in bench.rows if spec.workload in ("put", "get")})
    min_time = args.min_time if args.min_time is not None else 0.5
    many, smallest = args.clients, sizes[0]
    rows = []
    for protocol, largest in (("flight", 64 * MiB), ("http", MiB)):
        for workload in ("put", "get"):
            rows += [(protocol, RowSpec(workload, s, 1, repeats=3, min_time=min_time)) for s in sizes if s <= largest]
            if many > 1:
                rows.append((protocol, RowSpec(workload, smallest, many, repeats=3, min_time=min_time)))
    return rows


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    progress = Progress()
    wanted = {s.strip() for s in args.servers.split(",") if s.strip()}
    unknown = wanted - set(report.SERVERS)
    if unknown:
        print(
            f"unknown --servers {', '.join(sorted(unknown))}; choose from {', '.join(report.SERVERS)}", file=sys.stderr
        )
        return 2
    redis_bin = Redis.find(args.redis_server) if "redis" in wanted else None
    if "redis" in wanted and redis_bin is None:
        print(f"bench: {REDIS_HINT}", file=sys.stderr)
    try:
        import redis  # noqa: F401
    except ImportError:
        if redis_bin:
            print(
                "bench: redis-py is not installed (pip install -e '.[bench]'); Redis rows are skipped", file=sys.stderr
            )
        redis_bin = None
    row_bytes = None if args.upload_rows == "whole" else parse_size(args.upload_rows)
    memory_size = parse_size(args.memory_size or ("64M" if args.quick else "1G"))
    startup_objects = args.startup_objects or (20_000 if args.quick else 100_000)

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="flame-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    args.out.mkdir(parents=True, exist_ok=True)
    redis_version = Redis(workdir, redis_bin).version() if redis_bin else None
    machine = machine_info(redis_version)
    started = time.strftime("%Y-%m-%d %H:%M:%S %z")
    progress(f"workdir {workdir}; machine: {report.machine_line(machine)}")

    pool = Pool(max(args.clients, args.memory_readers, 1), row_bytes)
    bench = Bench(args, pool, workdir, progress)
    bench.memory = {"size": memory_size, "readers": args.memory_readers} if not args.skip_memory else {}
    startup_result = None
    disk_floor: list[dict] = []
    checksums: list[dict] = []
    baseline: dict | None = None
    try:
        if args.checksums_only or args.baseline_only:
            for label in report.SERVERS:
                bench.mark(label, "not run (--checksums-only or --baseline-only)")
        else:
            if "bare" in wanted:
                bench.section("bare", BareFlight(workdir, args.bare_as_uploaded), memory=not args.skip_memory)
            else:
                bench.mark("bare", "not selected (--servers)")
            if "bare-disk" in wanted:
                bench.section("bare-disk", BareFlight(workdir, args.bare_as_uploaded, disk=True), memory=False)
            else:
                bench.mark("bare-disk", "not selected (--servers)")
            if "asgi" in wanted:
                bench.section("asgi", BareAsgi(workdir), memory=False)
            else:
                bench.mark("asgi", "not selected (--servers)")
            if "asgi-disk" in wanted:
                bench.section("asgi-disk", BareAsgi(workdir, disk=True), memory=False)
            else:
                bench.mark("asgi-disk", "not selected (--servers)")
            if wanted & {"flight", "http", "client"}:
                bench.flame_cache_section(wanted)
            else:
                for label in ("flight", "client", "http"):
                    bench.mark(label, "not selected (--servers)")
            if "redis" in wanted and redis_bin:
                bench.section("redis", Redis(workdir, redis_bin), memory=not args.skip_memory)
            elif "redis" in wanted:
                bench.mark(
                    "redis",
                    "n/a: " + ("redis-server not found" if not Redis.find(args.redis_server) else "redis-py not installed"),
                )
            else:
                bench.mark("redis", "not selected (--servers)")
            if "bare" in wanted and "flight" in wanted:
                disk_floor = measure_disk_floor(bench, workdir, progress)
            if not args.skip_startup and "flight" in wanted and not args.checksums_only:
                try:
                    startup_result = startup.measure(workdir, startup_objects, 2 if args.quick else 3, progress)
                except Exception as exc:  # report it and keep the rest
                    startup_result = {"error": f"{type(exc).__name__}: {exc}"[:500]}
                    progress(f"start-up: ERROR {exc}")
        if args.baseline is not None or args.metrics_off:
            other = args.baseline.resolve() if args.baseline is not None else None
            progress(f"against the baseline {other or 'metrics off'}: alternated rounds of puts and gets, both protocols")
            baseline = ab.against_baseline(bench.run_row, workdir, other, baseline_rows(bench),
                                           2 if args.quick else args.baseline_rounds)  # fmt: skip
        if not args.skip_checksums and "flight" in wanted and not args.baseline_only:
            progress("checksums: puts with and without, and the first get (the load check)")
            big = [s for s in (64 << 20, 1 << 30) if s <= max(spec.size for spec in bench.rows)] or [1 << 20]
            checksums = measure_checksum_servers(bench, big, 2 if args.quick else args.checksum_rounds)
            checksums += checksum_cost.measure(workdir, big, big[-1:], 2 if args.quick else 3)
    finally:
        pool.close()
        if not args.keep and args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)

    rows = list(bench.table.values())
    report.add_ratios(rows)
    result = {
        "started": started,
        "duration_s": time.monotonic() - progress.t0,
        "machine": {**machine, "loadavg_end": " ".join(f"{x:.2f}" for x in os.getloadavg())},
        "config": {
            "quick": args.quick,
            "upload_rows": args.upload_rows,
            "bare_as_uploaded": args.bare_as_uploaded,
            "clients": args.clients,
            "rows": [spec.__dict__ | {"id": spec.id} for spec in bench.rows],
            "patch_base": PATCH_BASE,
            "patch_count": PATCH_COUNT,
            "servers": sorted(wanted),
        },
        "rows": rows,
        "memory": bench.memory,
        "startup": startup_result,
        "disk_floor": disk_floor,
        "checksums": checksums,
        "baseline": baseline,
    }
    result["targets"] = report.evaluate_targets(rows, bench.memory, startup_result, checksums, disk_floor, baseline)

    text = report.text_report(result)
    print(text)
    stamp = time.strftime("%Y%m%d-%H%M%S") + ("-quick" if args.quick else "")
    out = args.out
    report.write_json(result, out / f"bench-{stamp}.json")
    (out / f"bench-{stamp}.txt").write_text(text)
    (out / f"bench-{stamp}.md").write_text(report.text_report(result, markdown=True))
    problem = report.write_chart(result, out / f"bench-{stamp}.png")
    for ext in ("json", "txt", "md", "png"):
        src = out / f"bench-{stamp}.{ext}"
        if src.exists():
            shutil.copyfile(src, out / f"latest.{ext}")
    if problem:
        progress(f"chart: {problem}")
    progress(f"wrote {out}/bench-{stamp}.{{json,txt,md,png}} (and latest.*)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""uvicorn's HTTP parser and event loop, compared on both HTTP columns.

    python -m bench.http_variants [--rounds 4] [--sizes 1K 1M 64M] [--clients 8]

For each round, every variant (parser x loop) runs flame-cache's HTTP
mirror (bench/httpvariant.py) and the bare ASGI app (bench/bare_asgi.py)
on the same rows, one server at a time; the order of the variants is
reversed every other round, so drift in the machine's speed hits all
alike. A figure is the median ops/s over the rounds; the table gives each
variant's ops/s relative to the first variant's on the same column, and
the http/asgi ratio within the variant.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

from bench.report import parse_size
from bench.run import Bench, Progress, RowSpec, parse_args
from bench.servers import BareAsgi, FlameCache, Server
from bench.workloads import Pool

VARIANTS = [("h11", "asyncio"), ("httptools", "asyncio"), ("h11", "uvloop"), ("httptools", "uvloop")]


def rows(sizes: list[int], clients: int, repeats: int, min_time: float) -> list[RowSpec]:
    specs = [RowSpec(op, s, 1, repeats, min_time if s < 64 << 20 else 0.0) for s in sizes for op in ("put", "get")]
    specs += [RowSpec(op, s, clients, repeats, min_time if s < 64 << 20 else 0.0) for s in sizes for op in ("put", "get")]
    return specs


def measure(bench: Bench, server: Server, address: dict, label: str, specs: list[RowSpec]) -> dict[str, float]:
    server.start()
    try:
        if isinstance(server, FlameCache) and not server.http_status()[0]:  # HTTP starts after Flight
            raise RuntimeError(f"{label}: the HTTP mirror did not answer")
        return {spec.id: bench.run_row(label, server, address, spec)["ops_s"] for spec in specs}
    finally:
        server.stop()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.http_variants", description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=4)
    p.add_argument("--sizes", nargs="+", default=["1K", "1M", "64M"])
    p.add_argument("--clients", type=int, default=8)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--min-time", type=float, default=0.5)
    p.add_argument("--variants", nargs="+", default=[f"{h}/{l}" for h, l in VARIANTS], help="parser/loop pairs")
    p.add_argument("--json", type=Path, help="every round's figures, written after each round")
    args = p.parse_args(argv)
    variants = [tuple(v.split("/")) for v in args.variants]
    specs = rows([parse_size(s) for s in args.sizes], args.clients, args.repeats, args.min_time)
    workdir = Path(tempfile.mkdtemp(prefix="flame-http-variants-"))
    progress = Progress()
    bench = Bench(parse_args(["--sizes", *args.sizes]), Pool(args.clients, None), workdir, progress)
    ops: dict[tuple, list[float]] = {}
    for r in range(args.rounds):
        for http, loop in variants if r % 2 == 0 else variants[::-1]:
            cache = FlameCache(workdir, http_variant=(http, loop))
            for column, server, address in (
                ("http", cache, {"kind": "http", "endpoint": cache.http_endpoint}),
                ("asgi", BareAsgi(workdir, http, loop), None),
            ):
                address = address or server.address()
                got = measure(bench, server, address, f"{column} {http}/{loop} {r + 1}", specs)
                for row, value in got.items():
                    ops.setdefault((column, http, loop, row), []).append(value)
            cache.wipe()
        if args.json:
            args.json.write_text(json.dumps({"/".join(k): v for k, v in ops.items()}, indent=1))
        print(f"after round {r + 1}:\n{table(ops, variants, specs)}", file=sys.stderr, flush=True)
    print(table(ops, variants, specs))
    return 0


def table(ops: dict[tuple, list[float]], variants: list[tuple], specs: list[RowSpec]) -> str:
    """Per row and variant: each column's median ops/s against the first variant's, and http/asgi."""
    med = {key: statistics.median(values) for key, values in ops.items()}
    first = variants[0]
    head = "| row | " + " | ".join(f"{h}/{l}: http, asgi, http/asgi" for h, l in variants) + " |"
    lines = [head, "|---" * (len(variants) + 1) + "|"]
    for spec in specs:
        cells = []
        for v in variants:
            http, asgi = med[("http", *v, spec.id)], med[("asgi", *v, spec.id)]
            rel_h, rel_a = http / med[("http", *first, spec.id)], asgi / med[("asgi", *first, spec.id)]
            cells.append(f"{rel_h:.2f}x, {rel_a:.2f}x, **{http / asgi:.2f}**")
        base = f"{med[('http', *first, spec.id)]:,.0f} / {med[('asgi', *first, spec.id)]:,.0f} ops/s"
        lines.append(f"| {spec.id} ({base}) | " + " | ".join(cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())

"""Two flame-cache servers alternated on the same rows: a change's cost as a client sees it.

`alternate` runs every row on one server, then on the other (every other
round in the reverse order), each on fresh storage, for a number of rounds;
a row's figure is the median of its rounds' ops/s, so a load that comes and
goes on the machine falls on both alike. Used for:
- the checksums' cost: this checkout against bench/nochecksum.py (run.py);
- `--baseline CHECKOUT`: this checkout against another one, such as a git
  worktree of the commit before a change (`git worktree add ../base HEAD~1`):
  the metrics' cost (issue 14: no row slower by more than 3%), or any
  change's. The baseline's server runs from its checkout with this one's
  Python environment and the same client code;
- `--metrics-off`: this checkout against itself with its request metrics
  taken out (bench/nometrics.py): the metrics' cost in one build.
"""

from __future__ import annotations

import statistics
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.servers import FlameCache

SLOWER_AT_MOST = 0.97  # the baseline's target: every row at least this fraction of its ops/s


@dataclass(frozen=True)
class Variant:
    """One side of an A/B: its label and how to make its (unstarted) server."""

    label: str
    make: Callable[[], FlameCache]


def address(cache: FlameCache, protocol: str) -> dict[str, Any]:
    """What a worker needs to reach `cache` over `protocol` (flight or http)."""
    return cache.address() if protocol == "flight" else {"kind": "http", "endpoint": cache.http_endpoint}


def alternate(
    run_row: Callable[..., dict], variants: tuple[Variant, Variant], rows: list[tuple[str, Any]], rounds: int
) -> dict[tuple[str, str, str], list[float]]:
    """ops/s of every (variant, protocol, row) in each round. `rows` are
    (protocol, RowSpec); `run_row(label, server, address, spec)` is Bench's."""
    ops: dict[tuple[str, str, str], list[float]] = {}
    for r in range(rounds):
        for variant in variants if r % 2 == 0 else variants[::-1]:
            cache = variant.make()
            cache.start()
            try:
                for protocol, spec in rows:
                    label = f"{variant.label} {r + 1}/{rounds}"
                    result = run_row(label, cache, address(cache, protocol), spec)
                    ops.setdefault((variant.label, protocol, spec.id), []).append(result["ops_s"])
            finally:
                cache.stop()
                cache.wipe()
    return ops


def against_baseline(
    run_row: Callable[..., dict], workdir: Path, baseline: Path | None, rows: list[tuple[str, Any]], rounds: int
) -> dict:
    """This checkout against `baseline`'s (None: this checkout with its
    request metrics taken out, bench/nometrics.py), alternated on `rows`: each
    row's median ops/s on both and their ratio (> 1: this one is faster)."""
    if baseline is None:
        other = Variant("baseline", lambda: FlameCache(workdir, metrics=False))
    else:
        other = Variant("baseline", lambda: FlameCache(workdir, checkout=baseline))
    ops = alternate(run_row, (Variant("this", lambda: FlameCache(workdir)), other), rows, rounds)
    out = []
    for protocol, spec in rows:
        this, base = (ops[(label, protocol, spec.id)] for label in ("this", "baseline"))
        out.append({
            "protocol": protocol, "row": spec.id, "this_ops_s": statistics.median(this),
            "baseline_ops_s": statistics.median(base), "ratio": statistics.median(this) / statistics.median(base),
            "rounds": {"this": this, "baseline": base},
        })  # fmt: skip
    if baseline is None:
        return {"baseline": "this checkout, metrics off (bench/nometrics.py)", "baseline_commit": "metrics off",
                "rounds": rounds, "rows": out}  # fmt: skip
    return {"baseline": str(baseline), "baseline_commit": commit_of(baseline), "rounds": rounds, "rows": out}


def commit_of(checkout: Path) -> str:
    """`git describe --always --dirty` of `checkout`, or "unknown"."""
    try:
        done = subprocess.run(
            ["git", "describe", "--always", "--dirty"], cwd=checkout, capture_output=True, text=True, timeout=10
        )
    except OSError:
        return "unknown"
    return done.stdout.strip() or "unknown"


def lines(result: dict) -> str:
    """The A/B as text: a row a line, both figures and the ratio."""
    out = [f"baseline {result['baseline']} ({result['baseline_commit']}), medians of {result['rounds']} rounds"]
    for row in result["rows"]:
        out.append(
            f"{row['protocol']:<6} {row['row']:<14} this {row['this_ops_s']:10,.1f} ops/s   "
            f"baseline {row['baseline_ops_s']:10,.1f} ops/s   ratio {row['ratio']:.3f}"
        )
    return "\n".join(out)

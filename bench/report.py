"""Figures out of raw repeats: medians, percentiles, ratios, targets; the
table on stdout, the JSON file, the Markdown table and the PNG chart."""

from __future__ import annotations

import json
import math
import statistics
from pathlib import Path

SERVERS = ("flight", "client", "http", "bare", "bare-disk", "asgi", "asgi-disk", "redis")
LABELS = {
    "flight": "flame-cache Flight",
    "client": "flame-cache Flight through flame_cache.client",
    "http": "flame-cache HTTP",
    "bare": "bare Flight",
    "bare-disk": "bare Flight writing to disk",
    "asgi": "bare ASGI on uvicorn",
    "asgi-disk": "bare ASGI on uvicorn writing to disk",
    "redis": "Redis",
}
RATIOS = (
    ("flight", "bare"), ("flight", "bare-disk"), ("flight", "redis"), ("client", "redis"),
    ("http", "asgi"), ("http", "asgi-disk"), ("http", "bare"), ("http", "redis"),
)  # fmt: skip


def size_label(n: int | None) -> str:
    if n is None:
        return ""
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= scale and n % scale == 0:
            return f"{n // scale} {unit}"
    return f"{n} B"


def parse_size(text: str) -> int:
    t = text.strip().upper().removesuffix("B").removesuffix("I")
    scale = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}.get(t[-1:], 1)
    return int(float(t[:-1] if scale > 1 else t) * scale)


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    k = (len(ordered) - 1) * q
    lo, hi = math.floor(k), math.ceil(k)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def summarize(repeats: list, size_moved: int) -> dict:
    """Medians over repeats; latency percentiles over every operation of every repeat."""
    latencies = [x for r in repeats for x in r.latencies]
    ops = [r.ops_s for r in repeats]
    return {
        "ops_s": statistics.median(ops),
        "gb_s": statistics.median(r.bytes_s for r in repeats) / 1e9,
        "ops_s_repeats": ops,
        "n_ops": sum(r.n for r in repeats),
        "p50_ms": percentile(latencies, 0.50) * 1e3,
        "p99_ms": percentile(latencies, 0.99) * 1e3,
        "bytes_per_op": size_moved,
    }


def add_ratios(rows: list[dict]) -> None:
    """ratio a/b = median ops/s of a / median ops/s of b on the same row
    (the same as the GB/s ratio: both move the same bytes). > 1: a is faster."""
    for row in rows:
        res = row["results"]
        row["ratios"] = {}
        for a, b in RATIOS:
            ra, rb = res.get(a, {}), res.get(b, {})
            if "ops_s" in ra and "ops_s" in rb and rb["ops_s"]:
                row["ratios"][f"{a}/{b}"] = ra["ops_s"] / rb["ops_s"]


def put_limit(row: dict, floors: dict[int, float], transport: str = "bare") -> float | None:
    """The transport-plus-disk limit of a 1-client put row, in ops/s: the
    bare server's time per put (`transport`: "bare" for Flight, "asgi" for
    HTTP) plus one disk-floor write (bench/diskfloor.py)."""
    bare, floor = row["results"].get(transport, {}), floors.get(row["size"])
    if row["workload"] != "put" or row["clients"] != 1 or floor is None or "ops_s" not in bare:
        return None
    return 1 / (1 / bare["ops_s"] + floor)


def evaluate_targets(
    rows: list[dict],
    memory: dict,
    startup: dict | None,
    checksums: list[dict] = (),
    floors: list[dict] = (),
    baseline: dict | None = None,
) -> list[dict]:
    """The performance issues' targets (the second round's for HTTP and Flight)."""
    out: list[dict] = []

    def add(name: str, value: float | None, threshold: float, lower_is_better: bool = False, note: str = ""):
        if value is None:
            out.append({"target": name, "value": None, "threshold": threshold, "ok": None, "note": note})
            return
        ok = value < threshold if lower_is_better else value >= threshold
        out.append({"target": name, "value": value, "threshold": threshold, "ok": ok, "note": note})

    by_size = {floor["size"]: floor["seconds"] for floor in floors}
    for row in rows:
        r, results = row.get("ratios", {}), row["results"]
        wl, rid, size = row["workload"], row["id"], row["size"]
        if wl in ("put", "get"):
            least = 0.9 if size >= 64 << 20 else 0.8
            add(f"{rid}: HTTP / bare ASGI >= {least}", r.get("http/asgi"), least)
        if wl == "get":
            add(f"{rid}: Flight / bare >= 0.95", r.get("flight/bare"), 0.95)
            if size >= 64 << 20:
                add(f"{rid}: flame_cache.client / Redis >= 2", r.get("client/redis"), 2.0)
                add(f"{rid}: Flight (flamepy's reads) / Redis >= 2", r.get("flight/redis"), 2.0)
        elif wl == "put" and row["clients"] == 1:
            limit, flight = put_limit(row, by_size), results.get("flight", {}).get("ops_s")
            least = 1.0 if size >= 64 << 20 else 0.75
            add(f"{rid}: Flight / (bare + disk floor) >= {least}", flight / limit if limit and flight else None, least,
                note=_share("bare-disk", results, limit, "({})"))
            http, http_limit = results.get("http", {}).get("ops_s"), put_limit(row, by_size, "asgi")
            add(f"{rid}: HTTP / (bare ASGI + disk floor)", http / http_limit if http_limit and http else None, least,
                note="for scale: the Flight rule applied to HTTP, not one of the issue's targets"
                + _share("asgi-disk", results, http_limit, "; {}"))
        elif wl == "not-modified":
            add(f"{rid}: Flight / bare empty-stream DoGet >= 0.9", r.get("flight/bare"), 0.9)
    by_key = {(row["workload"], row["size"], row["clients"]): row for row in rows}
    for (wl, size, clients), row in by_key.items():
        single = by_key.get((wl, size, 1))
        if clients > 1 and single is not None:
            many = row["results"].get("flight", {}).get("ops_s")
            one = single["results"].get("flight", {}).get("ops_s")
            ratio = many / one if many and one else None
            least = 1.3 if wl == "put" and size <= 1 << 20 else 1.0
            add(f"{row['id']}: aggregate / 1 client >= {least} (Flight)", ratio, least, note=_scaling(row, single))
    fc = memory.get("flight") if memory else None
    if fc and "put" in fc:
        size = memory["size"]
        add(
            f"memory: put {size_label(size)} raises server RSS < {2.3 * size / 2**30:.2f} GiB",
            fc["put"]["rise"] / 2**30,
            2.3 * size / 2**30,
            lower_is_better=True,
            note="GiB",
        )
    if fc and "get" in fc:
        size = memory["size"]
        add(
            f"memory: get {size_label(size)} to {memory['readers']} readers raises server RSS "
            f"< {1.3 * size / 2**30:.2f} GiB",
            fc["get"]["rise"] / 2**30,
            1.3 * size / 2**30,
            lower_is_better=True,
            note="GiB",
        )
    # the target is the put a client sees (a server with checksums against the
    # same server summing nothing); the in-process rows are there to explain it
    target_rows = "server put" if any(r["row"] == "server put" for r in checksums) else "put"
    for row in checksums:  # the rows: 1 client (the x8 row is reported, not a target)
        if row["row"] == target_rows and row.get("clients", 1) == 1:
            clients = f" x{row['clients']}" if "clients" in row else ""
            name = f"{row['row']} {row['size'] >> 20} MiB{clients} with checksums <= 1.05x the time without"
            add(name, row["with_s"] / row["without_s"], 1.05, lower_is_better=True, note="x")
    if baseline:  # issue 14: the metrics' cost, against the commit before them
        from bench.ab import SLOWER_AT_MOST

        worst = min(baseline["rows"], key=lambda row: row["ratio"])
        name = f"every row >= {SLOWER_AT_MOST}x the baseline {baseline['baseline_commit']} (worst: {worst['protocol']} {worst['row']})"
        add(name, worst["ratio"], SLOWER_AT_MOST, note="x")
    if startup and "first_get_s" in startup:
        add(
            f"start-up with {startup['objects']:,} objects < 3 s",
            startup["first_get_s"],
            3.0,
            lower_is_better=True,
            note="s",
        )
        add("index memory < 300 B/object", startup["index_bytes_per_object"], 300, lower_is_better=True, note="B")
    return out


# -- text ------------------------------------------------------------------------


def _share(server: str, results: dict, limit: float | None, form: str) -> str:
    """What a baseline reaches of the same limit, as a note beside a target
    (`form` places it): the disk-writing bare servers show how much of it any
    server that writes crash-safely reaches on this machine."""
    result = results.get(server, {})
    return form.format(f"{server}: {_ratio(result, limit)}") if limit and result.get("ops_s") else ""


def _scaling(row: dict, single: dict) -> str:
    """The bare servers' own aggregate over one client on the same row: what
    the transport (and the disk) let any server reach with these clients."""
    shares = []
    for server in ("bare", "bare-disk"):
        many, one = row["results"].get(server, {}).get("ops_s"), single["results"].get(server, {}).get("ops_s")
        if many and one:
            shares.append(f"{server}: {many / one:.2f}")
    return f"({', '.join(shares)})" if shares else ""


def _fmt(value: float | None, digits: int = 2) -> str:
    if value is None:
        return "-"
    if value >= 100:
        return f"{value:,.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.{digits}f}"


def _gbs(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.3f}" if value < 10 else f"{value:.1f}"


def _one_line(text: str, width: int = 110) -> str:
    """The first line of a message, squeezed: cells of the tables stay one line."""
    first = " ".join(text.splitlines()[0].split()) if text else ""
    return first if len(first) <= width else first[: width - 3] + "..."


def _table(header: list[str], lines: list[list[str]], markdown: bool) -> str:
    if markdown:
        out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
        out += ["| " + " | ".join(cells) + " |" for cells in lines]
        return "\n".join(out)
    widths = [max(len(h), *(len(c[i]) for c in lines)) if lines else len(h) for i, h in enumerate(header)]
    fmt = "  ".join(f"{{:<{w}}}" if i == 0 or i == 1 else f"{{:>{w}}}" for i, w in enumerate(widths))
    out = [fmt.format(*header), "  ".join("-" * w for w in widths)]
    out += [fmt.format(*cells) for cells in lines]
    return "\n".join(out)


def measurements_table(rows: list[dict], markdown: bool = False) -> str:
    header = ["row", "server", "ops/s", "GB/s", "p50 ms", "p99 ms", "peak RSS MiB"]
    lines = []
    for row in rows:
        first = True
        for server in SERVERS:
            res = row["results"].get(server)
            if res is None or res.get("na", "").startswith("not selected"):
                continue
            name = row["id"] if first else ""
            first = False
            if "ops_s" in res:
                lines.append([
                    name, server, _fmt(res["ops_s"]), _gbs(res["gb_s"]) if res["bytes_per_op"] else "-",
                    _fmt(res["p50_ms"], 3), _fmt(res["p99_ms"], 3),
                    f"{res['rss_peak'] / 2**20:,.0f}" if res.get("rss_peak") else "-",
                ])  # fmt: skip
            else:
                lines.append(
                    [name, server, _one_line(res.get("na") or "error: " + res.get("error", "?")), "", "", "", ""]
                )
    return _table(header, lines, markdown)


def ratios_table(rows: list[dict], markdown: bool = False) -> str:
    present = [f"{a}/{b}" for a, b in RATIOS if any(f"{a}/{b}" in r.get("ratios", {}) for r in rows)]
    present = present or ["flight/bare", "flight/redis"]
    header = ["row", *present]
    lines = []
    for row in rows:
        lines.append([row["id"], *(_fmt(row["ratios"].get(k), 2) if k in row["ratios"] else "n/a" for k in present)])
    return _table(header, lines, markdown)


def memory_table(memory: dict, markdown: bool = False) -> str:
    if not memory:
        return ""
    header = ["server", "phase", "RSS before MiB", "peak MiB", "rise MiB", "anon at peak", "file at peak", "note"]
    lines = []
    for server in SERVERS:
        m = memory.get(server)
        if not m:
            continue
        if "na" in m or "error" in m:
            lines.append([server, "", _one_line(m.get("na") or "error: " + m["error"]), "", "", "", "", ""])
            continue
        for phase in ("put", "get"):
            r = m.get(phase)
            if not r:
                continue
            lines.append([
                server, phase if phase == "put" else f"get x{memory['readers']}",
                f"{r['baseline'] / 2**20:,.0f}", f"{r['peak'] / 2**20:,.0f}", f"{r['rise'] / 2**20:,.0f}",
                f"{r['peak_anon'] / 2**20:,.0f}", f"{r['peak_file'] / 2**20:,.0f}", r.get("note", ""),
            ])  # fmt: skip
    return _table(header, lines, markdown)


def targets_table(targets: list[dict], markdown: bool = False) -> str:
    header = ["target", "value", "met"]
    lines = []
    for t in targets:
        value = "n/a" if t["value"] is None else f"{_fmt(t['value'], 2)}{(' ' + t['note']) if t['note'] else ''}"
        met = "n/a" if t["ok"] is None else ("yes" if t["ok"] else "NO")
        lines.append([t["target"], value, met])
    return _table(header, lines, markdown)


def disk_table(rows: list[dict], floors: list[dict], markdown: bool = False) -> str:
    """1-client puts against the bare server plus the disk floor (bench/diskfloor.py):
    limit ops/s = 1 / (1 / bare ops/s + one floor write); and the disk-writing bare server.
    The same for HTTP, over the bare ASGI app, beside the disk-writing bare ASGI app."""
    by_size = {floor["size"]: floor["seconds"] for floor in floors}
    header = ["row", "bare ms/op", "disk floor ms", "limit ops/s", "bare-disk ops/s", "flight ops/s", "flight / limit",
              "bare ASGI ms/op", "HTTP limit ops/s", "asgi-disk ops/s", "http ops/s", "http / limit"]  # fmt: skip
    lines = []
    for row in rows:
        limit = put_limit(row, by_size)
        if limit is None:
            continue
        results = row["results"]
        bare, flight, http = results["bare"], results.get("flight", {}), results.get("http", {})
        asgi, http_limit = results.get("asgi", {}), put_limit(row, by_size, "asgi")
        lines.append([
            row["id"], _fmt(1e3 / bare["ops_s"], 3), _fmt(by_size[row["size"]] * 1e3, 3), _fmt(limit),
            _fmt(results.get("bare-disk", {}).get("ops_s")), _fmt(flight.get("ops_s")), _ratio(flight, limit),
            _fmt(1e3 / asgi["ops_s"], 3) if "ops_s" in asgi else "-", _fmt(http_limit),
            _fmt(results.get("asgi-disk", {}).get("ops_s")), _fmt(http.get("ops_s")),
            _ratio(http, http_limit),
        ])  # fmt: skip
    return _table(header, lines, markdown) if lines else ""


def _ratio(result: dict, limit: float | None) -> str:
    return _fmt(result["ops_s"] / limit, 2) if limit and "ops_s" in result else "-"


def checksum_lines(rows: list[dict]) -> str:
    from bench.checksum_cost import lines

    return lines(rows)


def startup_lines(startup: dict | None) -> str:
    if not startup:
        return ""
    if "error" in startup:
        return f"start-up: error: {startup['error']}"
    logged = startup.get("index_scan_s_logged")
    return (
        f"start-up with {startup['objects']:,} objects of {startup['object_bytes']} B on disk: first get answered "
        f"after {startup['first_get_s']:.2f} s (median of {startup['repeats']}; one-object server "
        f"{startup['empty_first_get_s']:.2f} s; index scan logged {logged if logged is None else f'{logged:.2f}'} s)\n"
        f"index memory: RSS {startup['rss_full'] / 2**20:,.0f} MiB vs {startup['rss_empty'] / 2**20:,.0f} MiB "
        f"with one object = {startup['index_bytes_per_object']:,.0f} B/object"
    )


def machine_line(machine: dict) -> str:
    return (
        f"{machine['cpu']} x {machine['cores']} cores, {machine['memory_gib']:.0f} GiB RAM, Linux {machine['kernel']}, "
        f"Python {machine['python']}, pyarrow {machine['pyarrow']}, {machine.get('redis') or 'no redis'}, "
        f"flame-cache {machine['commit']}, load average at start {machine['loadavg_start']}"
    )


def text_report(result: dict, markdown: bool = False) -> str:
    h = (lambda s: f"\n### {s}\n") if markdown else (lambda s: f"\n== {s} ==\n")
    parts = [
        ("## flame-cache benchmark\n\n" if markdown else "flame-cache benchmark\n")
        + f"{'mode: quick, ' if result['config']['quick'] else ''}{result['started']}, {result['duration_s']:.0f} s\n"
        + "machine: "
        + machine_line(result["machine"]),
        h("measurements (medians over repeats; latency percentiles over all operations)")
        + measurements_table(result["rows"], markdown),
        h("ratios (flame-cache ops/s / other ops/s on the same row; > 1 = flame-cache faster)")
        + ratios_table(result["rows"], markdown),
    ]
    if result.get("memory"):
        m = result["memory"]
        parts.append(
            h(f"memory: put {size_label(m['size'])}, then get it to {m['readers']} concurrent readers")
            + memory_table(m, markdown)
        )
    disk = disk_table(result["rows"], result.get("disk_floor") or [], markdown)
    if disk:
        parts.append(h("puts against the transport plus the disk (bench/diskfloor.py)") + disk)
    if result.get("startup"):
        parts.append(h("start-up") + startup_lines(result["startup"]))
    if result.get("checksums"):
        parts.append(h("checksums: streamed puts and the first get (a load), with and without crc32c") + checksum_lines(result["checksums"]))
    if result.get("baseline"):
        from bench.ab import lines

        parts.append(h("against a baseline checkout, alternated (bench/ab.py)") + lines(result["baseline"]))
    parts.append(h("targets (flame-cache over Flight)") + targets_table(result["targets"], markdown))
    return "\n".join(parts) + "\n"


# -- files -----------------------------------------------------------------------


def write_json(result: dict, path: Path) -> None:
    path.write_text(json.dumps(result, indent=1, default=str))


def write_chart(result: dict, path: Path) -> str | None:
    """Horizontal bars of every ratio, one group per row; None if matplotlib is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "matplotlib is not installed (pip install -e '.[bench]'): no chart"
    rows = [r for r in result["rows"] if r.get("ratios")]
    if not rows:
        return "no ratios to chart"
    keys = [f"{a}/{b}" for a, b in RATIOS if any(f"{a}/{b}" in r["ratios"] for r in rows)]
    colors = {"flight/bare": "#1f77b4", "flight/redis": "#d62728", "http/bare": "#9ecae1", "http/redis": "#ff9896"}
    height = 0.8 / len(keys)
    fig, ax = plt.subplots(figsize=(10, 1.0 + 0.32 * len(rows) * max(len(keys), 2) / 2))
    for k, key in enumerate(keys):
        ys = [i + (k - (len(keys) - 1) / 2) * height for i in range(len(rows))]
        values = [r["ratios"].get(key, 0) for r in rows]
        ax.barh(ys, values, height=height, color=colors.get(key), label=key)
        for y, v in zip(ys, values, strict=True):
            if v:
                ax.text(v * 1.03, y, f"{v:.2f}" if v >= 0.1 else f"{v:.3f}", va="center", fontsize=6)
    ax.set_yticks(range(len(rows)))
    ax.set_yticklabels([r["id"] for r in rows], fontsize=8)
    ax.invert_yaxis()
    ax.set_xscale("log")
    top = max((v for r in rows for v in r["ratios"].values()), default=1.0)
    ax.set_xlim(right=max(3.0, top * 1.6))
    ax.axvline(1.0, color="black", linewidth=1)
    for x, style, label in (
        (0.8, ":", "put target 0.8x bare"),
        (0.9, "--", "get target 0.9x bare"),
        (2.0, "-.", "get target 2x Redis"),
    ):
        ax.axvline(x, color="grey", linestyle=style, linewidth=0.8, label=label)
    ax.set_xlabel("flame-cache ops/s / other ops/s (log scale; > 1: flame-cache faster)")
    mode = "quick run, " if result["config"]["quick"] else ""
    ax.set_title(f"flame-cache vs bare Flight and Redis ({mode}{result['started'][:16]})", fontsize=10)
    ax.legend(fontsize=7, loc="lower right")
    ax.grid(axis="x", which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return None

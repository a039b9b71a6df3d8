"""The HTTP transport limit: a bare ASGI app on the same uvicorn.

What the HTTP mirror adds on top of its server (routing, key checks,
versions, the disk, the framework) shows as the gap between the two. The
app is plain ASGI (no framework), keeps bodies in a dict and answers the
routes bench/http_adapter.py uses, with the headers a client needs:

    PUT   /v1/objects/{key}   keep the body (its pieces as received), ETag "<n>"
    GET   /v1/objects/{key}   the body; If-None-Match "<n>" -> 304
    PATCH /v1/objects/{key}   append a delta
    GET   /v1/objects/{key}?format=arrow&version=<v>
                              the deltas as an Arrow IPC stream, one row each

uvicorn runs with flame-cache's settings (no access log, lifespan off) and
the parser and loop given on the command line, so both columns can be
switched alike:

    python -m bench.bare_asgi --port 9191 [--http h11|httptools] [--loop asyncio|uvloop] [--disk DIR]

`--disk DIR` makes it the disk-writing bare ASGI app, HTTP's twin of
bench/bare_flight.py's `--disk`: each PUT or PATCH body is also written
crash-safely before it is answered, the least a disk-backed HTTP server does:
its pieces into a new temporary file, then a swap over the key's file
(`flame_cache.store.rename.replace_file`, as bench/diskfloor.py does; patches
to a file of their own). The write runs on the event loop once the body has
arrived, as flame-cache writes a short body; a long body is not written while
the next piece arrives, as flame-cache's is, so from 64 MiB this baseline is
one a streaming server can beat. Reads still come from memory.
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import os
import sys
import threading
from pathlib import Path
from urllib.parse import parse_qs

import pyarrow as pa
import uvicorn

from flame_cache.store.pending import write_all
from flame_cache.store.rename import replace_file

PREFIX = "/v1/objects/"
PIECE = 1 << 20  # a large body is sent in pieces of this size


class BareApp:
    def __init__(self, disk: Path | None = None) -> None:
        self.disk = disk
        self.temp_names = itertools.count()
        self.bodies: dict[str, list[bytes]] = {}
        self.versions: dict[str, int] = {}
        self.deltas: dict[str, list[bytes]] = {}
        self.lock = threading.Lock()

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return
        path = scope["path"]
        if path == "/healthz":
            return await _answer(send, 200, b"ok")
        if not path.startswith(PREFIX):
            return await _answer(send, 404, b"no such route")
        key, method = path[len(PREFIX) :], scope["method"]
        if method in ("PUT", "PATCH"):
            return await self._write(key, method, receive, send)
        if method == "GET":
            return await self._read(key, scope, send)
        return await _answer(send, 405, b"method not allowed")

    async def _write(self, key: str, method: str, receive, send) -> None:
        pieces = []
        while True:
            message = await receive()
            if message.get("body"):
                pieces.append(message["body"])
            if not message.get("more_body"):
                break
        with self.lock:
            version = self.versions.get(key, 0) + 1
            self.versions[key] = version
            if method == "PUT":
                self.bodies[key] = pieces
                self.deltas.pop(key, None)
            else:
                self.deltas.setdefault(key, []).append(b"".join(pieces))
        if self.disk is not None:
            self._write_file(key if method == "PUT" else f"{key}.{version}", pieces)
        await _answer(send, 200, b"", [(b"etag", b'"%d"' % version)])

    def _write_file(self, name: str, pieces: list[bytes]) -> None:
        """The body's pieces in a new file, swapped in for `name`'s."""
        target = self.disk / (hashlib.sha256(name.encode()).hexdigest() + ".bin")
        temp = self.disk / f".tmp-{next(self.temp_names)}"
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            write_all(fd, pieces)
        finally:
            os.close(fd)
        replace_file(str(temp), str(target))

    async def _read(self, key: str, scope, send) -> None:
        with self.lock:
            body, version = self.bodies.get(key), self.versions.get(key)
            deltas = list(self.deltas.get(key, ()))
        if body is None:
            return await _answer(send, 404, b"no such object")
        etag = b'"%d"' % version
        if dict(scope["headers"]).get(b"if-none-match") == etag:
            return await _answer(send, 304, b"", [(b"etag", etag)])
        if "format" in parse_qs(scope["query_string"].decode()):
            return await _answer(send, 200, _arrow_stream(deltas), [(b"etag", etag)])
        size = sum(len(piece) for piece in body)
        headers = [(b"content-length", b"%d" % size), (b"content-type", b"application/octet-stream"), (b"etag", etag)]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        for i, piece in enumerate(body):
            await send({"type": "http.response.body", "body": piece, "more_body": i < len(body) - 1})
        if not body:
            await send({"type": "http.response.body", "body": b""})


def _arrow_stream(deltas: list[bytes]) -> bytes:
    table = pa.table({"version": pa.array(range(1, len(deltas) + 1), pa.uint64()), "data": pa.array(deltas, pa.binary())})
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


async def _answer(send, status: int, body: bytes, headers: list | None = None) -> None:
    headers = [(b"content-length", b"%d" % len(body)), *(headers or [])]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--http", default="h11", help="uvicorn's HTTP parser (h11, httptools)")
    parser.add_argument("--loop", default="asyncio", help="uvicorn's event loop (asyncio, uvloop)")
    parser.add_argument("--disk", type=Path, help="also write each upload crash-safely into this folder")
    args = parser.parse_args(argv)
    if args.disk is not None:
        args.disk.mkdir(parents=True, exist_ok=True)
    where = f", writing to {args.disk}" if args.disk else ""
    print(f"bare ASGI app on http://{args.host}:{args.port} ({args.http}, {args.loop}{where})", file=sys.stderr, flush=True)
    uvicorn.run(
        BareApp(args.disk), host=args.host, port=args.port, http=args.http, loop=args.loop,
        lifespan="off", access_log=False, log_level="warning",
    )  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())

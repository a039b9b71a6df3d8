"""The transport limit: a bare in-memory Arrow Flight server.

It does the least a Flight object cache can do, so that what flame-cache
adds on top (key checks, versions, the disk, the response schema) shows as
the gap between the two. Run as its own process, so its RSS compares with
flame-cache's:

    python -m bench.bare_flight --port 9190

- DoPut, PATH descriptor: keep the uploaded table (as received, no copy) in a
  dict under the path joined with '/', replacing what was there, and answer
  one PutResult with a BSON `{endpoint, key, version}` like flame-cache's.
- DoPut, CMD `PATCH:<key>`: append the uploaded table to that key's deltas.
- DoGet, ticket `<key>[:<v>]`: v = 0 streams the stored table back
  (RecordBatchStream: C++ streams it, no Python per batch); v > 0 streams
  the deltas (all of them), which for a key without deltas is the schema and
  no rows: the bare empty-stream DoGet that "not modified" is held against.

An upload of several rows (flamepy's upload_object sends 1 MiB rows) is
joined into one row on its first read, once, and kept so: one big message is
what flame-cache sends, and the faster way for gRPC to move the same bytes,
so the figure stays a limit. `--as-uploaded` streams the rows as received.

`--disk DIR` makes it the disk-writing bare server: each upload (a put or a
patch) is also written crash-safely before it is answered, the way the
least a disk-backed server can do it: pyarrow's IPC file writer into a new
temporary file, then a rename over the key's file
(`flame_cache.store.rename.replace_file`, as bench/diskfloor.py does; patches
to a file of their own). Reads still come from memory.
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import signal
import sys
import threading
from pathlib import Path

import bson
import pyarrow as pa
import pyarrow.flight as flight

from flame_cache.store.rename import replace_file


class BareFlightServer(flight.FlightServerBase):
    def __init__(self, location: str, as_uploaded: bool = False, disk: Path | None = None) -> None:
        super().__init__(location)
        self.location = location
        self.as_uploaded = as_uploaded
        self.disk = disk
        self.temp_names = itertools.count()
        self.tables: dict[str, pa.Table] = {}
        self.deltas: dict[str, list[pa.Table]] = {}
        self.lock = threading.Lock()

    def do_put(self, context, descriptor, reader, writer):
        table = reader.read_all()
        if descriptor.descriptor_type == flight.DescriptorType.CMD:
            key = descriptor.command.decode().removeprefix("PATCH:")
            with self.lock:
                if key not in self.tables:
                    raise flight.FlightServerError(f"no object {key!r}")  # pragma: no cover
                self.deltas.setdefault(key, []).append(table)
                version = 1 + len(self.deltas[key])
        else:
            key = "/".join(p.decode() if isinstance(p, bytes) else p for p in descriptor.path)
            with self.lock:
                self.tables[key] = table
                self.deltas.pop(key, None)
                version = 1
        if self.disk is not None:
            self._write_file(f"{key}.{version}" if version > 1 else key, table)
        ref = bson.encode({"endpoint": self.location, "key": key, "version": bson.Int64(version)})
        writer.write(pa.py_buffer(ref))

    def _write_file(self, name: str, table: pa.Table) -> None:
        """`table` as an Arrow IPC file, in a new file renamed over `name`'s."""
        target = self.disk / (hashlib.sha256(name.encode()).hexdigest() + ".arrow")
        temp = self.disk / f".tmp-{next(self.temp_names)}"
        with pa.OSFile(str(temp), "wb") as sink, pa.ipc.new_file(sink, table.schema) as out:
            out.write_table(table)
        replace_file(temp, target)

    def list_actions(self, context):
        return []

    def do_get(self, context, ticket):
        key, _, version = ticket.ticket.decode().partition(":")
        with self.lock:
            table = self.tables.get(key)
            deltas = list(self.deltas.get(key, ()))
        if table is None:
            raise KeyError(f"no object {key!r}")
        if version and int(version) > 0:
            table = pa.concat_tables(deltas) if deltas else table.schema.empty_table()
        elif table.num_rows > 1 and not self.as_uploaded:
            table = self._joined(key, table)
        return flight.RecordBatchStream(table)

    def _joined(self, key: str, table: pa.Table) -> pa.Table:
        """The table's `data` cells as one row (a copy, made once and kept)."""
        cells = [_cells(chunk) for chunk in table.column("data").chunks if len(chunk)]
        joined = pa.allocate_buffer(sum(c.size for c in cells))
        view, at = memoryview(joined), 0
        for cell in cells:
            view[at : at + cell.size] = memoryview(cell)
            at += cell.size
        data_type = pa.large_binary() if joined.size >= 2**31 else pa.binary()
        offsets = pa.array([0, joined.size], pa.int64() if data_type == pa.large_binary() else pa.int32())
        data = pa.Array.from_buffers(data_type, 1, [None, offsets.buffers()[1], joined])
        one = pa.table({"version": pa.array([1], pa.uint64()), "data": data})
        with self.lock:
            if self.tables.get(key) is table:
                self.tables[key] = one
        return one


def _cells(chunk: pa.Array) -> pa.Buffer:
    """The bytes of a binary chunk's cells, which lie side by side in its data buffer."""
    offset_type = pa.int64() if chunk.type == pa.large_binary() else pa.int32()
    offsets = pa.Array.from_buffers(offset_type, len(chunk) + 1, [None, chunk.buffers()[1]], offset=chunk.offset)
    start, end = offsets[0].as_py(), offsets[-1].as_py()
    return chunk.buffers()[2].slice(start, end - start)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--as-uploaded", action="store_true", help="stream uploads back in the rows they came in")
    parser.add_argument("--disk", type=Path, help="also write each upload crash-safely into this folder")
    args = parser.parse_args(argv)
    if args.disk is not None:
        args.disk.mkdir(parents=True, exist_ok=True)
    server = BareFlightServer(f"grpc://{args.host}:{args.port}", as_uploaded=args.as_uploaded, disk=args.disk)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    serving = threading.Thread(target=server.serve, daemon=True)
    serving.start()
    print(f"bare flight server on grpc://{args.host}:{args.port}", file=sys.stderr, flush=True)
    # pyarrow's serve() may take SIGTERM itself (and then return) instead of our handler
    while not stop.wait(0.1) and serving.is_alive():
        pass
    if serving.is_alive():
        server.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())

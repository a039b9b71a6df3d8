"""A stand-in Flight server, for what the real one cannot be made to do.

It records the `authorization` header of every call and refuses a wrong
token with UNAUTHENTICATED, and a key under `denied/` with
PERMISSION_DENIED, as the server will once tokens land (SPEC 9), and it can
send an object whose bytes do not match the checksum in its schema: damage
on the way, which the real server's own checks never let out.
"""

from __future__ import annotations

import json
import threading

import bson
import pyarrow as pa
import pyarrow.flight as flight

from flame_cache.store.checksum import METADATA_KEY, of, to_metadata
from flame_cache.store.wire import response_schema


class _Recorder(flight.ServerMiddlewareFactory):
    def __init__(self, stub: StubServer) -> None:
        self.stub = stub

    def start_call(self, info, headers):  # noqa: ANN001
        authorization = (headers.get("authorization") or [None])[0]
        self.stub.seen.append((info.method.name, authorization))
        if self.stub.token is not None and authorization != f"Bearer {self.stub.token}":
            raise flight.FlightUnauthenticatedError("a valid bearer token is required")
        return None


class StubServer(flight.FlightServerBase):
    """`token`: the one accepted (None: any). `corrupt`: DoGet answers
    b"the bytes" with the checksum of other bytes."""

    def __init__(self, token: str | None = None, corrupt: bool = False) -> None:
        super().__init__("grpc://127.0.0.1:0", middleware={"recorder": _Recorder(self)})
        self.token, self.corrupt = token, corrupt
        self.seen: list[tuple[str, str | None]] = []
        self.endpoint = f"grpc://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self.serve, daemon=True)
        self._thread.start()

    def __enter__(self) -> StubServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()

    def _check(self, key: str) -> None:
        if key.startswith("denied/"):
            raise flight.FlightUnauthorizedError(f"the token's scopes do not cover {key!r}")

    def do_get(self, context, ticket):  # noqa: ANN001
        key = ticket.ticket.decode().removeprefix("chunked:")
        self._check(key)
        data = b"the bytes"
        schema = response_schema().with_metadata({METADATA_KEY: to_metadata(of(b"other bytes" if self.corrupt else data))})
        table = pa.table({"version": pa.array([1], pa.uint64()), "kind": ["base"], "data": [data]}, schema=schema)
        return flight.RecordBatchStream(table)

    def do_put(self, context, descriptor, reader, writer):  # noqa: ANN001
        key = descriptor.path[0].decode()
        self._check(key)
        reader.read_all()
        writer.write(pa.py_buffer(bson.encode({"endpoint": self.endpoint, "key": key, "version": bson.Int64(1)})))

    def get_flight_info(self, context, descriptor):  # noqa: ANN001
        key = descriptor.path[0].decode()
        self._check(key)
        metadata = json.dumps({"version": 1, "deltas": 0, "kind": "opaque", "updated": 0.0}).encode()
        return flight.FlightInfo(response_schema(), descriptor, [], 9, 9, app_metadata=metadata)

    def list_flights(self, context, criteria):  # noqa: ANN001
        return iter(())

    def do_action(self, context, action):  # noqa: ANN001
        self._check(action.body.to_pybytes().decode())
        return [flight.Result(pa.py_buffer(b"OK"))]

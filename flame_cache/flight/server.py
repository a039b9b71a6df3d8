"""The Arrow Flight server (SPEC 4): translates RPCs to store calls."""

from __future__ import annotations

import json
import logging

import bson
import pyarrow as pa
import pyarrow.flight as flight

from flame_cache.flight.actions import ACTIONS, ActionContext
from flame_cache.flight.errors import flight_errors
from flame_cache.flight.receive import received_batches
from flame_cache.flight.requests import (
    decode_utf8,
    parse_descriptor,
    parse_ticket,
    path_of,
)
from flame_cache.store import InvalidArgument, Kind, ObjectInfo, ReadMode, Store
from flame_cache.store.keys import ObjectKey
from flame_cache.store.objects import is_opaque_schema
from flame_cache.store.wire import chunked_batches, read_table, response_schema, upload_body

log = logging.getLogger(__name__)


class CacheFlightServer(flight.FlightServerBase):
    """Serves one `Store`; `advertised` is the endpoint put in refs and infos.

    `server_options` are FlightServerBase's (TLS only, here): pyarrow exposes
    no gRPC server arguments, so connection limits and idle timeouts cannot
    be set for Flight; the process's open-file limit and HTTP's connection
    limit are what keep descriptors for it.
    """

    def __init__(self, store: Store, location: str, advertised: str, **server_options) -> None:
        super().__init__(location, **server_options)
        self.store = store
        self.advertised = advertised
        self._actions = ActionContext(store, advertised)

    # -- writes ----------------------------------------------------------

    @flight_errors
    def do_put(self, context, descriptor, reader, writer) -> None:
        request = parse_descriptor(descriptor)
        schema = reader.schema  # asked once: most pyarrow calls let go of the GIL
        opaque = is_opaque_schema(schema)
        if request.patch and not opaque:  # refused before the body is read
            raise InvalidArgument(f"a patch must use the opaque schema 'version: uint64, data: binary'; got {schema}")
        target = request.resolve(self.store.exists)
        batches = received_batches(context, reader, request.target, opaque)
        body = upload_body(schema, batches, lambda size: self.store.write_limits.check_upload(request.target, size))
        if request.patch:
            info = self.store.patch(target, body)
        elif isinstance(target, ObjectKey):
            info = self.store.put(target, body)
        else:
            info = self.store.create(target, body)
        writer.write(pa.py_buffer(self._object_ref(info)))

    def _object_ref(self, info: ObjectInfo) -> bytes:
        """flamepy's ObjectRef: BSON `{endpoint, key, version: int64}` in that order."""
        return bson.encode({"endpoint": self.advertised, "key": info.key, "version": bson.Int64(info.version)})

    # -- reads -----------------------------------------------------------

    @flight_errors
    def do_get(self, context, ticket) -> flight.FlightDataStream:
        request = parse_ticket(ticket.ticket)
        read = self.store.get(request.key).read(request.client_version)
        if read.snapshot.kind is Kind.TABLE and read.mode is ReadMode.FULL:
            # C++ streams the table, with its dictionaries (GeneratorStream sends none)
            return flight.RecordBatchStream(read.snapshot.base)
        if request.chunk_size is not None:
            # made as sent, one base row of CHUNK_BYTES at a time, read by range: bounded memory
            return flight.GeneratorStream(*chunked_batches(read))
        # C++ streams the batches: no call back into Python per message
        return flight.RecordBatchStream(read_table(read))

    @flight_errors
    def get_flight_info(self, context, descriptor) -> flight.FlightInfo:
        return self._flight_info(self.store.info(path_of(descriptor)))

    @flight_errors
    def get_schema(self, context, descriptor) -> flight.SchemaResult:
        return flight.SchemaResult(self._schema(self.store.info(path_of(descriptor))))

    @flight_errors
    def list_flights(self, context, criteria: bytes) -> list[flight.FlightInfo]:
        """Criteria: a namespace, key or `app/*` (whole segments); empty lists all."""
        selector = decode_utf8(criteria or b"", "criteria")
        return [self._flight_info(info) for info in self.store.list(selector)]

    def _schema(self, info: ObjectInfo) -> pa.Schema:
        if info.kind is Kind.TABLE:
            return self.store.get(info.key).base.schema
        return response_schema(large=info.size > 2**31 - 1)

    def _flight_info(self, info: ObjectInfo) -> flight.FlightInfo:
        endpoint = flight.FlightEndpoint(info.key.encode(), [flight.Location(self.advertised)])
        rows = info.deltas + 1
        if info.kind is Kind.TABLE:
            rows = self.store.get(info.key).base.num_rows
        metadata = {"version": info.version, "deltas": info.deltas, "kind": info.kind.value, "updated": info.updated}
        expires = self.store.expires(info.key)
        if expires is not None:
            metadata["expires"] = expires  # seconds since the epoch
        return flight.FlightInfo(
            self._schema(info),
            flight.FlightDescriptor.for_path(*info.key.split("/")),
            [endpoint],
            total_records=rows,
            total_bytes=info.size,
            app_metadata=json.dumps(metadata).encode(),
        )

    # -- actions ---------------------------------------------------------

    @flight_errors
    def do_action(self, context, action: flight.Action):
        entry = ACTIONS.get(action.type)
        if entry is None:
            raise NotImplementedError(f"unknown action {action.type!r}; ListActions lists: {', '.join(ACTIONS)}")
        handler, _ = entry
        body = memoryview(action.body) if action.body is not None else memoryview(b"")  # no copy
        return [flight.Result(pa.py_buffer(handler(self._actions, body)))]

    def list_actions(self, context):
        return [flight.ActionType(name, description) for name, (_, description) in ACTIONS.items()]

"""The Arrow Flight server (SPEC 4): translates RPCs to store calls.

Each RPC calls the store through an `AccessGuard` for its caller (the
`authorization` header, flight/auth.py), so cache.auth decides in the store's
edge, as for HTTP. ListActions stays open: it names actions, no objects.
Every handler is wrapped by `rpc.rpc`: the store's errors as gRPC codes, the
failure log line, the call reported to the metrics.
"""

from __future__ import annotations

import json
import logging

import bson
import pyarrow as pa
import pyarrow.flight as flight

from flame_cache.flight import auth
from flame_cache.flight import metrics as calls
from flame_cache.flight.actions import ACTIONS, ActionContext
from flame_cache.flight.rpc import Meter, rpc
from flame_cache.flight.receive import received_batches
from flame_cache.flight.requests import (
    decode_utf8,
    parse_descriptor,
    parse_ticket,
    path_of,
)
from flame_cache.metrics import RequestMetrics
from flame_cache.store import InvalidArgument, Kind, ObjectInfo, ReadMode, Store
from flame_cache.store.access import OPEN, Policy
from flame_cache.store.guard import AccessGuard
from flame_cache.store.keys import ObjectKey
from flame_cache.store.objects import is_opaque_schema
from flame_cache.store.wire import chunked_batches, read_table, response_schema, upload_body

log = logging.getLogger(__name__)
# Made once: pyarrow builds default options per stream, reading the environment each time.
WRITE_OPTIONS = pa.ipc.IpcWriteOptions()


class CacheFlightServer(flight.FlightServerBase):
    """Serves one `Store`; `advertised` is the endpoint put in refs and infos.

    `policy` is cache.auth (None: open to every caller). `requests` is
    what every call is reported to (`rpc.rpc`; None: the server's
    own). `server_options` are FlightServerBase's (TLS only, here): pyarrow
    exposes no gRPC server arguments, so connection limits and idle timeouts
    cannot be set for Flight; the process's open-file limit and HTTP's
    connection limit are what keep descriptors for it.
    """

    def __init__(
        self,
        store: Store,
        location: str,
        advertised: str,
        policy: Policy | None = None,
        requests: RequestMetrics | None = None,
        **server_options,
    ) -> None:
        requests = requests or RequestMetrics()
        policy = policy or Policy.open()
        self.meter = Meter(requests)  # what `rpc` reports each call to
        super().__init__(location, **auth.server_options(policy, requests), **server_options)
        self._store = store
        self._checks_callers = policy.enabled  # else every caller is OPEN: no middleware to ask
        self.advertised = advertised

    def _guard(self, context: flight.ServerCallContext) -> AccessGuard:
        """The store as this call's caller may use it."""
        principal = auth.caller(context) if self._checks_callers else OPEN
        return AccessGuard(self._store, principal, context.peer)

    # -- writes ----------------------------------------------------------

    @rpc
    def do_put(self, context, descriptor, reader, writer) -> None:
        store = self._guard(context)
        request = parse_descriptor(descriptor)
        schema = reader.schema  # asked once: most pyarrow calls let go of the GIL
        opaque = is_opaque_schema(schema)
        if request.patch and not opaque:  # refused before the body is read
            raise InvalidArgument(f"a patch must use the opaque schema 'version: uint64, data: binary'; got {schema}")
        target = request.resolve(store.exists)
        batches = received_batches(context, reader, request.target, opaque)
        body = upload_body(schema, batches, lambda size: store.write_limits.check_upload(request.target, size))
        if request.patch:
            info = store.patch(target, body)
        elif isinstance(target, ObjectKey):
            info = store.put(target, body)
        else:
            info = store.create(target, body)
        writer.write(pa.py_buffer(self._object_ref(info)))

    def _object_ref(self, info: ObjectInfo) -> bytes:
        """flamepy's ObjectRef: BSON `{endpoint, key, version: int64}` in that order."""
        return bson.encode({"endpoint": self.advertised, "key": info.key, "version": bson.Int64(info.version)})

    # -- reads -----------------------------------------------------------

    @rpc
    def do_get(self, context, ticket) -> flight.FlightDataStream:
        request = parse_ticket(ticket.ticket)
        read = self._guard(context).get(request.key).read(request.client_version)
        if read.snapshot.kind is Kind.TABLE and read.mode is ReadMode.FULL:
            # C++ streams the table, with its dictionaries (GeneratorStream sends none)
            table = read.snapshot.base
        elif request.chunk_size is not None:
            # made as sent, one base row of CHUNK_BYTES at a time, read by range: bounded memory
            calls.sent(context, read.data_bytes)
            return flight.GeneratorStream(*chunked_batches(read))
        else:
            table = read_table(read)
        if read.mode is not ReadMode.NOT_MODIFIED:  # nothing to count then
            # the buffers' sizes, no pass over the data (the tables are kept with the snapshot)
            calls.sent(context, table.get_total_buffer_size())
        # C++ streams the batches: no call back into Python per message
        return flight.RecordBatchStream(table, options=WRITE_OPTIONS)

    @rpc
    def get_flight_info(self, context, descriptor) -> flight.FlightInfo:
        store = self._guard(context)
        return self._flight_info(store, store.info(path_of(descriptor)))

    @rpc
    def get_schema(self, context, descriptor) -> flight.SchemaResult:
        store = self._guard(context)
        return flight.SchemaResult(self._schema(store, store.info(path_of(descriptor))))

    @rpc
    def list_flights(self, context, criteria: bytes) -> list[flight.FlightInfo]:
        """Criteria: a namespace, key or `app/*` (whole segments); empty lists
        all; only what the caller may read."""
        store = self._guard(context)
        selector = decode_utf8(criteria or b"", "criteria")
        return [self._flight_info(store, info) for info in store.list(selector)]

    def _schema(self, store: AccessGuard, info: ObjectInfo) -> pa.Schema:
        if info.kind is Kind.TABLE:
            return store.get(info.key).base.schema
        return response_schema(large=info.size > 2**31 - 1)

    def _flight_info(self, store: AccessGuard, info: ObjectInfo) -> flight.FlightInfo:
        endpoint = flight.FlightEndpoint(info.key.encode(), [flight.Location(self.advertised)])
        rows = info.deltas + 1
        if info.kind is Kind.TABLE:
            rows = store.get(info.key).base.num_rows
        metadata = {"version": info.version, "deltas": info.deltas, "kind": info.kind.value, "updated": info.updated}
        expires = store.expires(info.key)
        if expires is not None:
            metadata["expires"] = expires  # seconds since the epoch
        return flight.FlightInfo(
            self._schema(store, info),
            flight.FlightDescriptor.for_path(*info.key.split("/")),
            [endpoint],
            total_records=rows,
            total_bytes=info.size,
            app_metadata=json.dumps(metadata).encode(),
        )

    # -- actions ---------------------------------------------------------

    @rpc
    def do_action(self, context, action: flight.Action):
        entry = ACTIONS.get(action.type)
        if entry is None:
            raise NotImplementedError(f"unknown action {action.type!r}; ListActions lists: {', '.join(ACTIONS)}")
        handler, _ = entry
        body = memoryview(action.body) if action.body is not None else memoryview(b"")  # no copy
        calls.received(context, body.nbytes)
        answer = handler(ActionContext(self._guard(context), self.advertised), body)
        calls.sent(context, len(answer))
        return [flight.Result(pa.py_buffer(answer))]

    @rpc
    def do_exchange(self, context, descriptor, reader, writer) -> None:
        raise NotImplementedError("DoExchange: this server has none; put with DoPut, get with DoGet")

    @rpc
    def list_actions(self, context):
        return [flight.ActionType(name, description) for name, (_, description) in ACTIONS.items()]

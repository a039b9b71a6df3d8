"""The store's errors as gRPC status codes (SPEC 4.5).

pyarrow maps its KeyError to NOT_FOUND and its Invalid to INVALID_ARGUMENT;
pyarrow clients, and so flamepy, raise those as KeyError and ValueError.
A refusal of cache.auth is UNAUTHENTICATED (FlightUnauthenticatedError) or
PERMISSION_DENIED (FlightUnauthorizedError); the guard has logged it already,
with the caller. Every other failed call logs one line (`log_failure`, through
`requestlog.failed`): the RPC, the key it named, the peer and the gRPC code;
`rpc.rpc`, the wrapper of every handler, calls it.
"""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.flight as flight

from flame_cache.flight.requests import CHUNKED_PREFIX, PATCH_PREFIX
from flame_cache.requestlog import failed
from flame_cache.store import (
    AccessDenied,
    CacheError,
    PermissionDenied,
    InvalidArgument,
    LimitExceeded,
    ObjectNotFound,
    StorageError,
    VersionConflict,
)

MAX_LOGGED_BYTES = 1024  # of a ticket, path, command or action body: a key is at most 767

# The gRPC code each exception reaches the client as (pyarrow's mapping).
CODES: list[tuple[type[BaseException], str]] = [
    (pa.ArrowKeyError, "NOT_FOUND"),
    (pa.ArrowInvalid, "INVALID_ARGUMENT"),
    (flight.FlightUnavailableError, "UNAVAILABLE"),
    (flight.FlightInternalError, "INTERNAL"),
    (flight.FlightCancelledError, "CANCELLED"),
    (flight.FlightUnauthenticatedError, "UNAUTHENTICATED"),
    (flight.FlightUnauthorizedError, "PERMISSION_DENIED"),
    (flight.FlightTimedOutError, "DEADLINE_EXCEEDED"),
    (NotImplementedError, "UNIMPLEMENTED"),
]
SERVER_SIDE = {"UNAVAILABLE", "INTERNAL", "UNKNOWN"}


def to_flight_error(exc: CacheError) -> Exception:
    message = str(exc)
    if isinstance(exc, AccessDenied):
        if isinstance(exc, PermissionDenied):
            return flight.FlightUnauthorizedError(message)
        return flight.FlightUnauthenticatedError(message)
    if isinstance(exc, ObjectNotFound):
        return pa.ArrowKeyError(message)
    if isinstance(exc, (InvalidArgument, VersionConflict, LimitExceeded)):
        # Limits too: no Python exception reaches RESOURCE_EXHAUSTED through
        # pyarrow (MemoryError and ArrowCapacityError arrive as UNKNOWN), and
        # flamepy turns INVALID_ARGUMENT into the ValueError a caller expects.
        return pa.ArrowInvalid(message)
    if isinstance(exc, StorageError):
        return flight.FlightUnavailableError(message)
    return flight.FlightInternalError(message)


def rpc_name(snake: str) -> str:
    """An RPC's name from its handler's or FlightMethod's: do_get, DO_GET -> DoGet."""
    return "".join(word.capitalize() for word in snake.split("_"))


def grpc_code(exc: BaseException) -> str:
    for kind, code in CODES:
        if isinstance(exc, kind):
            return code
    return "UNKNOWN"


def log_failure(rpc: str, context: flight.ServerCallContext, request: object, exc: BaseException) -> None:
    """The one line of a failed call: the RPC (and action), the key its request names, the peer, the code."""
    code = grpc_code(exc)
    operation = f"{rpc} {request.type}" if isinstance(request, flight.Action) else rpc
    message = str(exc) if code != "UNKNOWN" else f"{type(exc).__name__}: {exc}"
    failed("Flight", operation, request_key(request), _peer(context), code, message, server_side=code in SERVER_SIDE)


def _peer(context: flight.ServerCallContext) -> str:
    """gRPC's peer without its address family: `ipv4:127.0.0.1:5000` -> `127.0.0.1:5000`."""
    peer = context.peer()
    peer = peer.decode("utf-8", "replace") if isinstance(peer, bytes) else str(peer)
    family, sep, address = peer.partition(":")
    return address if sep and family in ("ipv4", "ipv6") else peer


def request_key(request: object) -> str | None:
    """The key (or namespace, or criteria) a request names, read without the
    RPC's checks, since it may be what was wrong: a ticket's key, a
    descriptor's path or command, an action's name argument. A seed PUT's or
    UPDATE's data, after the first ':', is never logged."""
    if isinstance(request, flight.Ticket):
        return _text(request.ticket).removeprefix(CHUNKED_PREFIX).partition(":")[0]
    if isinstance(request, flight.FlightDescriptor):
        if request.descriptor_type == flight.DescriptorType.PATH:
            return "/".join(_text(part) for part in (request.path or ())[:4])  # a key has 3 segments
        return _text(request.command).removeprefix(PATCH_PREFIX)
    if isinstance(request, flight.Action):
        body = _text(memoryview(request.body) if request.body is not None else b"")  # no copy of the whole body
        if request.type == "EXPIRE":
            try:
                return str(json.loads(body).get("key"))
            except (ValueError, AttributeError):
                return None
        return body.partition(":")[0] or None
    if isinstance(request, bytes):  # ListFlights' criteria
        return _text(request) or None
    return None


def _text(raw: bytes | memoryview | str) -> str:
    if isinstance(raw, str):
        return raw[:MAX_LOGGED_BYTES]
    return bytes(raw[:MAX_LOGGED_BYTES]).decode("utf-8", "replace")

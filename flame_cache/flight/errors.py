"""The store's errors as gRPC status codes (SPEC 4.5).

pyarrow maps its KeyError to NOT_FOUND and its Invalid to INVALID_ARGUMENT;
pyarrow clients, and so flamepy, raise those as KeyError and ValueError.
A refusal of cache.auth is UNAUTHENTICATED (FlightUnauthenticatedError) or
PERMISSION_DENIED (FlightUnauthorizedError); the guard has logged it already.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import TypeVar

import pyarrow as pa
import pyarrow.flight as flight

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

log = logging.getLogger(__name__)
F = TypeVar("F", bound=Callable)


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


def flight_errors(method: F) -> F:
    """Raise the store's errors as their gRPC codes, and log what they were."""

    @functools.wraps(method)
    def wrapper(*args, **kwargs):
        try:
            return method(*args, **kwargs)
        except CacheError as exc:
            if not isinstance(exc, AccessDenied):  # store/guard.py logs those, with the caller
                log.info("%s refused: %s", method.__name__, exc)
            raise to_flight_error(exc) from None

    return wrapper  # type: ignore[return-value]

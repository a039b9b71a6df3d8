"""What every RPC does around its handler: errors, the failure line, the metrics.

`rpc` wraps each handler of `CacheFlightServer`, once, as the one Python frame
around it (each frame in gRPC's threads costs microseconds here, so the two
jobs share it):
- the store's errors raised as their gRPC codes (`errors.to_flight_error`),
  and one log line for every call that fails (`errors.log_failure`; cache.auth's
  refusals are logged by the guard, once, with the caller);
- the call reported to the server's `RequestMetrics` when it returns or
  raises: its operation (the RPC; `DoAction <type>` for the actions this server
  has), its outcome (the gRPC code the client gets, or OK), its time, and the
  bytes the handler counted (`metrics.received`, `metrics.sent`). With no
  Python call: the in-flight list and `report` are used directly (`Meter`),
  since each call costs about a microsecond in gRPC's threads.

Why a wrapper and not a pyarrow ServerMiddleware, and what that leaves out:
flight/metrics.py.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from typing import TypeVar

from flame_cache.flight import metrics as calls
from flame_cache.flight.errors import grpc_code, log_failure, rpc_name, to_flight_error
from flame_cache.metrics import FLIGHT, RequestMetrics
from flame_cache.store import AccessDenied, CacheError

F = TypeVar("F", bound=Callable)
UNKNOWN = "UNKNOWN"  # what a call that raised something else than an Exception reaches the client as
NOTHING = (0, 0)  # the bytes of a call whose handler counted none


class Meter:
    """What `rpc` reports a server's calls to: `requests`' in-flight list for
    Flight and its `report` (used directly: no Python call per request)."""

    __slots__ = ("flying", "report")

    def __init__(self, requests: RequestMetrics) -> None:
        self.flying = requests.in_flight(FLIGHT)
        self.report = requests.report


def rpc(method: F) -> F:
    """Wrap an RPC handler, a method of a server with a `meter: Meter` (its
    request, if any, is its first argument after the context)."""
    name = rpc_name(method.__name__)  # do_get -> DoGet
    actions = name == "DoAction"
    tallies = calls.TALLIES

    @functools.wraps(method)
    def wrapper(self, context, *args, **kwargs):
        request = args[0] if args else None
        meter = self.meter
        meter.flying.append(True)
        started = time.perf_counter()
        outcome = UNKNOWN
        try:
            result = method(self, context, *args, **kwargs)
            outcome = calls.OK
            return result
        except CacheError as exc:
            error = to_flight_error(exc)
            outcome = grpc_code(error)
            if not isinstance(exc, AccessDenied):  # store/guard.py logs those once, with the caller
                log_failure(name, context, request, error)
            raise error from None
        except Exception as exc:
            outcome = grpc_code(exc)
            log_failure(name, context, request, exc)
            raise
        finally:
            received, sent = tallies.pop(id(context), NOTHING)
            operation = calls.ACTION_OPERATIONS.get(request.type, name) if actions else name
            meter.report((FLIGHT, operation, outcome, time.perf_counter() - started, received, sent))
            meter.flying.pop()

    return wrapper  # type: ignore[return-value]

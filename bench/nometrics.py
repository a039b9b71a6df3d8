"""flame-cache with its request metrics taken out: the baseline of the metrics'
cost (issue 14), for the benchmark only (never a setting of the server).

    python -m bench.nometrics --config PATH

The same build, but every Flight handler is wrapped only to turn the store's
errors into gRPC codes and log failures (what each had before the metrics),
the handlers' byte counts do nothing, and HTTP's edge reports to nothing and
names no operation (its exchange still adds up the bytes: two additions).
/metrics still answers, its request counts at 0.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable

from flame_cache.flight import errors
from flame_cache.flight import metrics as calls
from flame_cache.flight.server import CacheFlightServer
from flame_cache.http import edge
from flame_cache.store import AccessDenied, CacheError

HANDLERS = ("do_put", "do_get", "get_flight_info", "get_schema", "list_flights", "do_action", "list_actions")


def errors_only(method: Callable) -> Callable:
    """The handler with the store's errors as gRPC codes and the failure line, and nothing else."""
    name = errors.rpc_name(method.__name__)

    @functools.wraps(method)
    def wrapper(self, context, *args, **kwargs):  # noqa: ANN001, ANN202 (pyarrow's signature)
        try:
            return method(self, context, *args, **kwargs)
        except CacheError as exc:
            error = errors.to_flight_error(exc)
            if not isinstance(exc, AccessDenied):
                errors.log_failure(name, context, args[0] if args else None, error)
            raise error from None
        except Exception as exc:
            errors.log_failure(name, context, args[0] if args else None, exc)
            raise

    return wrapper


class _Nothing(list):
    """An in-flight list that keeps nothing."""

    def append(self, item: object) -> None:
        pass

    def pop(self, index: int = -1) -> None:  # type: ignore[override]
        pass


class _Unnamed:
    def name(self, scope: object) -> str:
        return ""


def silence() -> None:
    """Take the metrics out of the servers this process will start."""
    for handler in HANDLERS:
        wrapped = getattr(CacheFlightServer, handler)
        setattr(CacheFlightServer, handler, errors_only(wrapped.__wrapped__))
    calls.received = calls.sent = lambda context, size: None
    started = edge.Edge.__init__

    def quiet_edge(self, app, hosts, requests, operations) -> None:  # noqa: ANN001
        started(self, app, hosts, requests, operations)
        self.flying, self.report, self.operations = _Nothing(), lambda record: None, _Unnamed()

    edge.Edge.__init__ = quiet_edge


if __name__ == "__main__":
    silence()
    from flame_cache.app.cli import main

    sys.exit(main())

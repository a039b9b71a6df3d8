"""How Flight's calls are named and counted for the metrics (SPEC 10).

`rpc.rpc`, the wrapper of every handler, reports each call with its
operation (the RPC, `OPERATIONS`; `DoAction <type>` for the actions this
server has) and the bytes the handler counted, by its call's context, with
`received` and `sent`: DoPut's record batches as they arrive, DoGet's table,
DoAction's body and answer. It costs about 1 µs a call.

Not a pyarrow ServerMiddleware: pyarrow calls a Python middleware from
gRPC's threads at a call's start, its headers and its end, and those
entries into Python cost about 75 µs of server CPU a call here (a no-op
middleware in a bare server, `python -m bench.metrics_cost`), a quarter
of a 1 KiB DoGet. What that leaves out:
DoGet's time ends when its stream is handed to gRPC, which sends the bytes
from C++ (for a large object, most of the time a client waits), and a
stream that fails after that is counted OK; a call decided before any
handler runs is counted only where cache.auth's middleware decides it
(`auth.CallerFactory`: the Handshake, a refused GetSchema). Without
cache.auth pyarrow answers the Handshake itself, uncounted.
"""

from __future__ import annotations

import pyarrow.flight as flight

from flame_cache.flight.actions import ACTIONS
from flame_cache.flight.errors import rpc_name

OK = "OK"
# FlightMethod.DO_GET -> "DoGet", for calls seen before any handler (auth.CallerFactory)
OPERATIONS = {method: rpc_name(method.name) for method in flight.FlightMethod}
ACTION_OPERATIONS = {name: f"DoAction {name}" for name in ACTIONS}  # any other type: plain DoAction
# the bytes of the calls being served that counted some, by id of their context: [received, sent];
# rpc.rpc takes each call's out of it as the call ends
TALLIES: dict[int, list[int]] = {}


def received(context: flight.ServerCallContext, size: int) -> None:
    """`size` bytes came in for the call of `context` (a call `rpc.rpc` wraps)."""
    tally = TALLIES.get(id(context))
    if tally is None:
        TALLIES[id(context)] = [size, 0]
    else:
        tally[0] += size


def sent(context: flight.ServerCallContext, size: int) -> None:
    """`size` bytes go out for the call of `context` (a call `rpc.rpc` wraps)."""
    tally = TALLIES.get(id(context))
    if tally is None:
        TALLIES[id(context)] = [0, size]
    else:
        tally[1] += size

"""The one log line of a failed request, the same on both protocols (SPEC 10).

Flight's `rpc` wrapper (`flight/rpc.py`) and HTTP's edge (`http/edge.py`) call `failed()` once
per request that ends in an error: the line names the protocol, the
operation, the key, the peer and the outcome (a gRPC code, or an HTTP status
and error code), then the message. The same values travel in the record as
fields, so `cache.log.format: json` gives each a field of its own. Control
characters are escaped by the formatter (app/logs.py), not here.

A leaf module: it imports nothing of the project, so both protocol packages
can use it without importing each other or the process (app/).
"""

from __future__ import annotations

import logging

log = logging.getLogger("flame_cache.requests")

FIELDS = ("protocol", "operation", "key", "peer", "outcome")
MAX_KEY_CHARS = 800  # a key is at most 767 bytes; anything longer is cut, not logged whole


def failed(
    protocol: str,
    operation: str,
    key: str | None,
    peer: str | None,
    outcome: str,
    message: str,
    *,
    server_side: bool = False,
) -> None:
    """Log that a request failed. `server_side` (the disk, a bug, a stop)
    logs a warning; a refused request (a bad key, a missing object) is info."""
    if key is not None and len(key) > MAX_KEY_CHARS:
        key = key[:MAX_KEY_CHARS] + "..."
    fields = dict(zip(FIELDS, (protocol, operation, key, peer, outcome)))
    log.log(
        logging.WARNING if server_side else logging.INFO,
        "%s %s failed: key=%s peer=%s outcome=%s: %s",
        protocol,
        operation,
        repr(key) if key is not None else "-",
        peer or "-",
        outcome,
        message,
        extra=fields,
    )

"""Request targets that no route could read right are refused before routing.

- Paths and query strings must be UTF-8 once percent-decoded. Starlette
  decodes them with errors="replace", so `%FF` and `%FE` (or an overlong
  `%C0%AF`) would reach a route as U+FFFD: two keys sent, one object named.
  Flight refuses keys that are not UTF-8; HTTP does too.
- A path must not hold a line feed (`%0A`): `{key:path}` does not match one,
  so the request would be 404 "no route" rather than a bad key.

Either is the same 400 as any bad key, naming the path or query (answered by
the edge, edge.py, before any route).
"""

from __future__ import annotations

from urllib.parse import unquote_to_bytes

from starlette.types import Scope

from flame_cache.store.keys import shorten as _shorten


def target_problem(scope: Scope) -> str | None:
    """What is wrong with the request's raw path or query string (400), or None."""
    return _problem(scope.get("raw_path") or b"", "path") or _problem(scope["query_string"], "query")


def _problem(raw: bytes, what: str) -> str | None:
    """What is wrong with a raw path or query string, or None."""
    decoded = unquote_to_bytes(raw) if b"%" in raw else raw
    try:
        decoded.decode("utf-8")
    except UnicodeDecodeError as exc:
        shown = _shorten(raw.decode("latin-1"))
        return f"the {what} {shown} is not valid UTF-8 once percent-decoded ({exc.reason}); keys are UTF-8"
    if what == "path" and b"\n" in decoded:
        return f"the path {_shorten(decoded.decode())} holds a line feed (%0A), which no key may contain"
    return None

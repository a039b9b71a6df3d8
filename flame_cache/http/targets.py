"""Request targets that no route could read right are refused before routing.

- Paths and query strings must be UTF-8 once percent-decoded. Starlette
  decodes them with errors="replace", so `%FF` and `%FE` (or an overlong
  `%C0%AF`) would reach a route as U+FFFD: two keys sent, one object named.
  Flight refuses keys that are not UTF-8; HTTP does too.
- A path must not hold a line feed (`%0A`): `{key:path}` does not match one,
  so the request would be 404 "no route" rather than a bad key.

Either is the same 400 as any bad key, naming the path or query.
"""

from __future__ import annotations

from urllib.parse import unquote_to_bytes

from starlette.types import ASGIApp, Receive, Scope, Send

from flame_cache.http.errors import error_response
from flame_cache.store.keys import shorten as _shorten


class CheckTargets:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            problem = _problem(scope.get("raw_path") or b"", "path") or _problem(scope["query_string"], "query")
            if problem:
                await error_response(400, "bad_request", problem)(scope, receive, send)
                return
        await self.app(scope, receive, send)


def _problem(raw: bytes, what: str) -> str | None:
    """What is wrong with a raw path or query string, or None."""
    decoded = unquote_to_bytes(raw)
    try:
        decoded.decode("utf-8")
    except UnicodeDecodeError as exc:
        shown = _shorten(raw.decode("latin-1"))
        return f"the {what} {shown} is not valid UTF-8 once percent-decoded ({exc.reason}); keys are UTF-8"
    if what == "path" and b"\n" in decoded:
        return f"the path {_shorten(decoded.decode())} holds a line feed (%0A), which no key may contain"
    return None

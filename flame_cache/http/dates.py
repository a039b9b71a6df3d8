"""The Date header, taken when the response starts, and Last-Modified never later.

uvicorn's own Date is refreshed about once a second and copied when a request
arrives, so it can name the second before a fresh object's mtime: Last-Modified
would be later than Date, which RFC 9110 (8.8.2.1) forbids. So the server turns
uvicorn's Date off (HttpServer) and this middleware, outermost, sends the
clock's time at the start of each response, and replaces a Last-Modified later
than it with the Date itself, as RFC 9110 says an origin server must.
"""

from __future__ import annotations

import time
from email.utils import formatdate, mktime_tz, parsedate_tz

from starlette.types import ASGIApp, Message, Receive, Scope, Send

_DATE, _LAST_MODIFIED = b"date", b"last-modified"


class DateHeaders:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def dated_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = dated(list(message.get("headers", [])), time.time())
            await send(message)

        await self.app(scope, receive, dated_send)


def dated(headers: list[tuple[bytes, bytes]], now: float) -> list[tuple[bytes, bytes]]:
    """`headers` with Date = `now` (whole seconds) and Last-Modified at most that."""
    second = int(now)
    date = formatdate(second, usegmt=True).encode()
    kept: list[tuple[bytes, bytes]] = []
    for name, value in headers:
        lower = name.lower()
        if lower == _DATE:
            continue
        if lower == _LAST_MODIFIED and _seconds(value) > second:
            value = date
        kept.append((name, value))
    kept.append((_DATE, date))
    return kept


def _seconds(http_date: bytes) -> float:
    """An HTTP-date as seconds since the epoch (-inf if unreadable: left as it is)."""
    parsed = parsedate_tz(http_date.decode("latin-1"))
    if parsed is None:
        return float("-inf")
    return mktime_tz(parsed)

"""The Date header, taken when the response starts, and Last-Modified never later.

uvicorn's own Date is refreshed about once a second and copied when a request
arrives, so it can name the second before a fresh object's mtime: Last-Modified
would be later than Date, which RFC 9110 (8.8.2.1) forbids. So the server turns
uvicorn's Date off (HttpServer) and the edge (edge.py) sends the clock's time
at the start of each response (`dated`), and replaces a Last-Modified later
than it with the Date itself, as RFC 9110 says an origin server must.

HTTP dates name whole seconds, so each is formatted (and each Last-Modified
read back) once and then remembered: a response would otherwise spend more on
its dates than on its route.
"""

from __future__ import annotations

from email.utils import formatdate, mktime_tz, parsedate_tz
from functools import lru_cache

_DATE, _LAST_MODIFIED = b"date", b"last-modified"


def dated(headers: list[tuple[bytes, bytes]], now: float) -> list[tuple[bytes, bytes]]:
    """`headers` with Date = `now` (whole seconds) and Last-Modified at most that."""
    second = int(now)
    date = _date_bytes(second)
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


def http_date(seconds: float) -> str:
    """`seconds` since the epoch as an HTTP-date (IMF-fixdate, GMT)."""
    return _http_date(int(seconds))


@lru_cache(maxsize=4096)
def _http_date(second: int) -> str:
    return formatdate(second, usegmt=True)


@lru_cache(maxsize=4)
def _date_bytes(second: int) -> bytes:
    return _http_date(second).encode()


@lru_cache(maxsize=4096)
def _seconds(http_date: bytes) -> float:
    """An HTTP-date as seconds since the epoch (-inf if unreadable: left as it is)."""
    parsed = parsedate_tz(http_date.decode("latin-1"))
    if parsed is None:
        return float("-inf")
    return mktime_tz(parsed)

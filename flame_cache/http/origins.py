"""Browsers on other sites must not reach the cache: the Host and Origin rules.

- **Host.** The Host header (its name; the port is ignored) must be one of
  `cache.http.allowed_hosts`, else 400. A page on attacker.example whose DNS
  name is rebound to this server's address is same-origin with itself to the
  browser, so only the Host header, still `attacker.example`, gives it away.
  `*` allows any host. /healthz and /readyz answer any host: probes (a
  kubelet sends the pod's address) must work, and they hold no objects.
- **Origin.** A request whose method is not safe (anything but GET, HEAD,
  OPTIONS) that a browser sent is refused (403) unless it comes from this
  server's own origin: its `Origin` (scheme, host and port) is the request's
  own, or, without an `Origin`, its `Sec-Fetch-Site` is `same-origin`. An
  `Origin` decides when present (a spoofed `Sec-Fetch-Site` does not help),
  and `Origin: null` (sandboxed frames, some no-cors requests) is refused.
  Requests carrying neither header are not from a browser (curl, httpx,
  flamepy) and pass: a browser sends `Origin` with every such request.

Both refusals are JSON errors naming the host or origin, as every error here,
answered by the edge (edge.py) before any route.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from functools import lru_cache
from urllib.parse import urlsplit

from starlette.types import Scope

from flame_cache.store.keys import shorten

log = logging.getLogger(__name__)

ANY_HOST = "*"
LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "::1")
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
OPEN_PATHS = frozenset({"/healthz", "/readyz"})
SETTING = "cache.http.allowed_hosts (FLAME_CACHE_HTTP_ALLOWED_HOSTS)"
DEFAULT_PORTS = {"http": 80, "https": 443}

# host [":" port]: a bracketed IPv6 literal or a name without delimiters (RFC 9110 7.2).
_HOST = re.compile(r"(\[[0-9A-Fa-f:.]+\]|[^\s\[\]/\\@?#:]+)(?::(\d*))?")


def host_name(name: str) -> str:
    """A host name as compared: lower case, no brackets, no trailing dot."""
    name = name.strip().lower()
    if name.startswith("[") and name.endswith("]"):
        name = name[1:-1]
    return name[:-1] if name.endswith(".") and name != "." else name


@lru_cache(maxsize=256)  # every request's Host is read; a server sees few of them
def split_host(value: str) -> tuple[str, int | None] | None:
    """(name, port) of a Host header value; None if it is not `host[:port]`."""
    match = _HOST.fullmatch(value.strip())
    if match is None:
        return None
    port = match.group(2)
    return host_name(match.group(1)), int(port) if port else None


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return value.decode("latin-1")
    return None


class AllowedHosts:
    """The Host rule: which names the Host header may carry."""

    def __init__(self, hosts: Iterable[str]) -> None:
        self.hosts = tuple(dict.fromkeys(host_name(host) for host in hosts))
        self.any = ANY_HOST in self.hosts

    def refusal(self, scope: Scope) -> str | None:
        """Why this request's Host is refused (400), or None; probes pass."""
        if self.any or scope["path"] in OPEN_PATHS:
            return None
        return self.problem(_header(scope, b"host"))

    def problem(self, host: str | None) -> str | None:
        """What is wrong with the Host header, or None. No Host at all (HTTP/1.0) is
        not a browser's request, which always names its host."""
        if host is None:
            return None
        parts = split_host(host)
        if parts is None:
            return f"the Host header {shorten(host, 100)} is not a host name with an optional port"
        if parts[0] in self.hosts:
            return None
        return (
            f"host {shorten(parts[0], 100)} is not allowed: {SETTING} lists {', '.join(self.hosts)}; "
            f"add the name clients use to reach this server, or '*' to allow any"
        )


def origin_refusal(scope: Scope) -> str | None:
    """Why an unsafe request is refused as a browser's from another origin (403), or None."""
    if scope["method"] in SAFE_METHODS:
        return None
    problem = cross_origin(scope)
    return None if problem is None else f"{scope['method']} {shorten(scope['path'], 100)} refused: {problem}"


def cross_origin(scope: Scope) -> str | None:
    """Why the request is from a browser on another origin, or None."""
    origin = _header(scope, b"origin")
    host = _header(scope, b"host")
    own = f"{scope['scheme']}://{host}" if host else "unknown (no Host header)"
    if origin is not None:
        if host is not None and _same_origin(origin, scope["scheme"], host):
            return None
        return (
            f"a browser sent it from origin {shorten(origin, 100)}, not from this server's origin {shorten(own, 100)}; "
            "browsers may write only from the cache's own pages"
        )
    site = _header(scope, b"sec-fetch-site")
    if site is None or site.strip().lower() == "same-origin":
        return None
    return (
        f"a browser sent it from another origin (Sec-Fetch-Site {shorten(site, 100)}); "
        "browsers may write only from the cache's own pages"
    )


def _same_origin(origin: str, scheme: str, host: str) -> bool:
    """`origin` is the request's own: its scheme and its Host's name and port."""
    ours, theirs = split_host(host), parse_origin(origin)
    if ours is None or theirs is None:
        return False
    return theirs == (scheme, ours[0], ours[1] or DEFAULT_PORTS.get(scheme))


def parse_origin(origin: str) -> tuple[str, str, int] | None:
    """(scheme, host, port) of a serialised http(s) origin; None for `null`
    or anything that is not `scheme://host[:port]`."""
    try:
        parts = urlsplit(origin.strip())
        port = parts.port
    except ValueError:  # a port that is not a number, or a bad IPv6 literal
        return None
    if parts.scheme not in DEFAULT_PORTS or not parts.hostname or "@" in parts.netloc:
        return None
    if parts.path or parts.query or parts.fragment:
        return None
    return parts.scheme, host_name(parts.hostname), port or DEFAULT_PORTS[parts.scheme]

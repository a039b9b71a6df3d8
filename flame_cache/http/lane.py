"""The object routes' fast lane: their commonest requests, past FastAPI's machinery.

A GET, HEAD or PUT of `/v1/objects/{key}` with no query string is most of
the traffic (flamepy-style reads and writes of whole objects). FastAPI spends
about 0.3 ms on such a request before the route runs (routing through every
route, solving its dependencies, its own middlewares); the route itself
takes a few tens of microseconds. This middleware, the innermost of the
app's, hands those requests to the very route functions of objects.py,
with their arguments read from the request as FastAPI would read them (a
header or None; without a query string every query parameter has its
default), and answers their errors with the same handlers. Every other
request, and every rule, stays where it was: the lane adds no behaviour,
only a shorter way in.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from flame_cache.http import objects
from flame_cache.http.context import context
from flame_cache.http.errors import handled_error

PREFIX = "/v1/objects/"


class ObjectLane:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        # what FastAPI's routing would have put in scope["route"] (metrics name the route by it)
        self.routes = {
            method: route
            for route in objects.router.routes
            if getattr(route, "path", "") == PREFIX + "{key:path}"
            for method in getattr(route, "methods", ())
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        method = scope.get("method")
        if (
            scope["type"] != "http"
            or method not in ("GET", "HEAD", "PUT")
            or scope["query_string"]
            or not scope["path"].startswith(PREFIX)
        ):
            await self.app(scope, receive, send)
            return
        scope["route"] = self.routes[method]
        request = Request(scope, receive)
        try:
            response = await _route(method, scope["path"][len(PREFIX) :], request)
        except Exception as exc:
            response = handled_error(request, exc)
            if response is None:
                raise
        await response(scope, receive, send)


async def _route(method: str, key: str, request: Request):
    """The route FastAPI would call, with the arguments it would pass."""
    headers = request.headers
    ctx = await context(request)
    if method == "PUT":
        return await objects.put_object(
            key,
            request,
            if_match=headers.get("if-match"),
            if_none_match=headers.get("if-none-match"),
            x_flame_checksum=headers.get(objects.checksum.HEADER),
            ttl=None,
            ctx=ctx,
        )
    if method == "HEAD":
        return await objects.head_object(
            key, request, format_=None, if_none_match=headers.get("if-none-match"), ctx=ctx
        )
    return await objects.get_object(
        key,
        request,
        format_=None,
        version=None,
        chunked=False,
        delta=None,
        download=False,
        if_none_match=headers.get("if-none-match"),
        range_=headers.get("range"),
        if_range=headers.get("if-range"),
        ctx=ctx,
    )

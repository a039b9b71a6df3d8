"""The object routes' fast lane: their commonest requests, past FastAPI.

A GET, HEAD, PUT or PATCH of `/v1/objects/{key}` with no query string is
most of the traffic (flamepy-style reads and writes of whole objects, and
the deltas appended to them). Through
FastAPI such a request passes its middlewares (server errors, telemetry,
body limits, exceptions), routing through every route and the solving of
its dependencies before the route runs, which costs more than the route
itself. So the lane is the app uvicorn serves, in front of FastAPI: those
requests pass the same edge as every other (edge.py: every rule, log and
metric applies alike) and then go to the very route functions of
objects.py, with their arguments read as FastAPI would read them (a header
or None; without a query string every query parameter has its default),
their errors answered by the same handlers. Every other request goes to
FastAPI, whose own middleware is that edge. The lane adds no behaviour,
only a shorter way in.
"""

from __future__ import annotations

from collections.abc import Callable

from fastapi import FastAPI
from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from flame_cache.http import objects
from flame_cache.http.context import context
from flame_cache.http.errors import handled_error

PREFIX = "/v1/objects/"
METHODS = frozenset({"GET", "HEAD", "PUT", "PATCH"})


class ObjectLane:
    """The served app: the lane's requests through `edge(lane)`, the rest to `app`."""

    def __init__(self, app: FastAPI, edge: Callable[[ASGIApp], ASGIApp]) -> None:
        self.app = app
        self.edged = edge(self._serve)
        # what FastAPI's routing would have put in scope["route"] (metrics name the route by it)
        self.routes = {
            method: route
            for route in objects.router.routes
            if getattr(route, "path", "") == PREFIX + "{key:path}"
            for method in getattr(route, "methods", ())
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["method"] not in METHODS
            or scope["query_string"]
            or not scope["path"].startswith(PREFIX)
        ):
            await self.app(scope, receive, send)
            return
        scope["app"] = self.app  # as Starlette sets it: routes find the shared context by request.app
        scope["route"] = self.routes[scope["method"]]
        await self.edged(scope, receive, send)

    async def _serve(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        try:
            response = await _route(scope["method"], scope["path"][len(PREFIX) :], request)
        except Exception as exc:
            response = handled_error(request, exc)
            if response is None:
                raise  # a bug: the edge answers 500
        await response(scope, receive, send)


async def _route(method: str, key: str, request: Request):
    """The route FastAPI would call, with the arguments it would pass."""
    headers = request.headers
    ctx = await context(request)
    if method in ("PUT", "PATCH"):
        write = objects.put_object if method == "PUT" else objects.patch_object
        return await write(
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

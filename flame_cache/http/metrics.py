"""How an HTTP request is named in the metrics (SPEC 10): `<METHOD> <route template>`.

The edge (edge.py) reports every request to `RequestMetrics` with the name
`Operations.name` gives it. The name is the route's template (`GET
/v1/objects/{key}`), never the path, so the number of series stays bounded
however many objects there are; a request no route took (refused by the
Host, Origin or target checks, or for a path that is no route) is `<METHOD>
unmatched`; a method outside METHODS is `OTHER`.

FastAPI leaves its own routes in the scope (`scope["route"]`, as the fast
lane does), but of the app's Starlette routes and mounts (`/openapi.json`,
`/docs/assets`) only the endpoint: those are found by their endpoint among
the app's routes.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from starlette.types import Scope

METHODS = frozenset({"GET", "HEAD", "PUT", "POST", "PATCH", "DELETE", "OPTIONS"})  # any other: OTHER
UNMATCHED = "unmatched"
_CONVERTER = re.compile(r"\{(\w+):\w+\}")  # `{key:path}` -> `{key}`


class Operations:
    """Names requests by the routes of one app (`routes`: the app's list,
    read when a name is first needed, so routes added later count)."""

    def __init__(self, routes: Sequence[object]) -> None:
        self._routes = routes
        self._templates: dict[int, str] | None = None  # id of an endpoint -> its route's path
        self._names: dict[tuple[str, int], str] = {}  # (method, id of the route or endpoint) -> name

    def name(self, scope: Scope) -> str:
        """The request's operation, made once per method and route."""
        method, route = scope["method"], scope.get("route")
        key = (method, id(route if route is not None else scope.get("endpoint")))  # routes live as long as the app
        name = self._names.get(key)
        if name is None:
            template = getattr(route, "path", None) if route is not None else self._template(key[1])
            template = _CONVERTER.sub(r"{\1}", template) if template else UNMATCHED
            name = f"{method if method in METHODS else 'OTHER'} {template}"
            if method in METHODS:  # another method would make one entry per name a client invents
                self._names[key] = name
        return name

    def _template(self, endpoint: int) -> str | None:
        if self._templates is None:
            self._templates = {
                id(found): route.path  # type: ignore[attr-defined]
                for route in self._routes
                if hasattr(route, "path") and (found := _endpoint(route)) is not None
            }
        return self._templates.get(endpoint)


def _endpoint(route: object) -> object:
    """What Starlette puts in a request's scope as its `endpoint`: a route's
    function, a mount's app."""
    return getattr(route, "endpoint", None) or getattr(route, "app", None)

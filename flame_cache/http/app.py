"""The HTTP mirror's application, over one store: FastAPI behind the object lane."""

from __future__ import annotations

from collections.abc import Collection
from functools import partial
from urllib.parse import urlsplit

from fastapi import FastAPI
from fastapi_offline import FastAPIOffline

from flame_cache import __version__
from flame_cache.http import health, listing, objects, page
from flame_cache.http.context import Shared
from flame_cache.http.edge import Edge
from flame_cache.http.errors import install_error_handlers
from flame_cache.http.lane import ObjectLane
from flame_cache.http.metrics import Operations
from flame_cache.http.origins import LOOPBACK_HOSTS, AllowedHosts
from flame_cache.metrics import Metrics
from flame_cache.store import Store
from flame_cache.store.access import Policy

DESCRIPTION = """
The HTTP mirror of flame-cache's Arrow Flight service, over the same store:
the same keys, versions and errors. `ETag` is the object's version.
Writes answer with flamepy's ObjectRef (`endpoint` is the Flight endpoint).
"""
DOCS_ASSETS = "/docs/assets"


def create_app(
    store: Store,
    advertised: str,
    allowed_hosts: Collection[str] | None = None,
    policy: Policy | None = None,
    metrics: Metrics | None = None,
) -> ObjectLane:
    """The app uvicorn serves: the object lane in front of the FastAPI
    app (its `app`). `advertised` is the Flight endpoint named in ObjectRefs. `allowed_hosts`
    are the names the Host header may carry (`*`: any); None means loopback
    names and the advertised host. `policy` is cache.auth (None: open).
    `metrics` is the process's, which Flight reports to too (None: the app's
    own). Limits (object size, key length, deltas) are the store's own."""
    metrics = metrics or Metrics(store)
    policy = policy or Policy.open()
    app = FastAPIOffline(
        title="flame-cache",
        version=__version__,
        description=DESCRIPTION,
        redoc_url=None,
        static_url=DOCS_ASSETS,  # Swagger UI's script, style sheet and icon, from the package: /docs needs no internet
        swagger_ui_parameters={"validatorUrl": None},  # else Swagger UI sends the document's URL to swagger.io
    )
    app.state.context = Shared(store, advertised, metrics, policy)
    install_error_handlers(app)
    for module in (objects, listing, health, page):
        app.include_router(module.router)
    if policy.enabled:
        document_bearer(app)
    # Every request meets the edge (Host, Origin, target; Date, 500s, the failure log, the metrics):
    # FastAPI's as its middleware, the lane's (the commonest object requests) in front of FastAPI.
    hosts = AllowedHosts(default_hosts(advertised) if allowed_hosts is None else allowed_hosts)
    edge = partial(Edge, hosts=hosts, requests=metrics.requests, operations=Operations(app.routes))
    app.add_middleware(Edge, **edge.keywords)
    return ObjectLane(app, edge)


def document_bearer(app: FastAPI) -> None:
    """Name the bearer token in the OpenAPI document, so /docs has an
    Authorize button that sends it (only when cache.auth asks for one)."""
    make_document = app.openapi

    def openapi() -> dict:
        fresh = app.openapi_schema is None
        document = make_document()  # made once, then kept by FastAPI
        if fresh:
            document.setdefault("components", {})["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer"}}
            document["security"] = [{"bearer": []}, {}]  # {}: anonymous callers have cache.auth.anonymous
        return document

    app.openapi = openapi  # type: ignore[method-assign]


def default_hosts(advertised: str) -> tuple[str, ...]:
    """Loopback names and the host of the advertised Flight endpoint."""
    return (*LOOPBACK_HOSTS, *filter(None, [urlsplit(advertised).hostname]))

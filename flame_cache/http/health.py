"""Liveness, readiness and Prometheus metrics.

/healthz and /readyz stay open once cache.auth is on (probes send no
token); /metrics counts every application's objects, so it needs `admin:*`.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from flame_cache.http.context import Context, context

router = APIRouter(tags=["operations"])


@router.get("/healthz")
def healthz() -> dict[str, str]:
    """The process serves HTTP."""
    return {"status": "ok"}


@router.get("/readyz", responses={503: {"description": "Not ready; `reason` says why"}})
def readyz(ctx: Context = Depends(context)) -> JSONResponse:
    """Ready for traffic: the storage directory is there and writable."""
    problem = ctx.store.health()
    if problem is not None:
        return JSONResponse({"status": "not ready", "reason": problem}, 503)
    return JSONResponse({"status": "ready", "persistent": ctx.store.persistent, **ctx.store.usage(stored=False)})


@router.get("/metrics", response_class=Response, responses={200: {"content": {"text/plain": {}}}})
def metrics(ctx: Context = Depends(context)) -> Response:
    """Prometheus text format: requests of both protocols (counts, latency,
    bytes, in flight), the store (objects, bytes on disk and in memory,
    evictions, quarantines, checksum failures) and the process. Needs
    `admin:*` under cache.auth."""
    ctx.store.require_admin("metrics")
    return Response(generate_latest(ctx.metrics.registry), media_type=CONTENT_TYPE_LATEST)

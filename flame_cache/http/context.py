"""What every route needs: the store (with its limits), the Flight endpoint for refs, metrics."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import Request

from flame_cache.http.metrics import Metrics
from flame_cache.store import Store


@dataclass(frozen=True)
class Context:
    store: Store
    advertised: str  # the Flight endpoint put in ObjectRefs, so flamepy can use them
    metrics: Metrics


def context(request: Request) -> Context:
    """FastAPI dependency: the app's one Context."""
    return request.app.state.context

"""What every route needs: the store as the caller may use it, the Flight endpoint for refs, metrics."""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import NamedTuple

from fastapi import Request
from starlette.types import Scope

from flame_cache.metrics import Metrics
from flame_cache.store import Store
from flame_cache.store.access import Policy, parse_authorization
from flame_cache.store.guard import AccessGuard


@dataclass(frozen=True)
class Shared:
    """The app's one store, policy (cache.auth), Flight endpoint and metrics."""

    store: Store
    advertised: str  # the Flight endpoint put in ObjectRefs, so flamepy can use them
    metrics: Metrics  # the registry /metrics serves
    policy: Policy


class Context(NamedTuple):
    """One request's view: `store` checks the caller's scopes (store/guard.py).
    A tuple, as every request makes one."""

    store: AccessGuard
    advertised: str
    metrics: Metrics
    authenticated: bool  # the request carried credentials (the web page's prompt)
    auth: bool  # cache.auth is on: the web page offers its token form


async def context(request: Request) -> Context:
    """FastAPI dependency: the caller of this request (its `Authorization:
    Bearer` header) and the store as that caller may use it. Async, as it
    blocks on nothing: FastAPI would run a plain function in a thread."""
    shared: Shared = request.scope["app"].state.context
    credentials = parse_authorization(request.headers.get("authorization"))
    guard = AccessGuard(shared.store, shared.policy.identify(credentials), partial(_peer, request.scope))
    return Context(guard, shared.advertised, shared.metrics, credentials is not None, shared.policy.enabled)


def _peer(scope: Scope) -> str:
    """The client's address, asked only when a refusal names it."""
    client = scope.get("client")
    return f"{client[0]}:{client[1]}" if client else ""

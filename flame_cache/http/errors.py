"""The store's errors as HTTP status codes, at the edge (SPEC 5).

Every error answers JSON `{"error": <code>, "message": <what was wrong>}`;
the message is the store's own, which names the key, segment or value.
A refusal of cache.auth is 401 with `WWW-Authenticate: Bearer` (no token, or
an unknown one) or 403 (a token whose scopes do not cover the key); the
store's guard has logged it, with the caller, so it is not logged again.
Every other request answered 400 or more logs one line (`log_error_response`,
called by the edge, edge.py).
"""

from __future__ import annotations

import json
import logging
from http import HTTPStatus

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect
from starlette.types import Scope

from flame_cache.http.conditions import etag
from flame_cache.requestlog import failed
from flame_cache.store import (
    CacheError,
    InvalidArgument,
    LimitExceeded,
    ObjectNotFound,
    PermissionDenied,
    StorageError,
    Unauthenticated,
    VersionConflict,
)
from flame_cache.store.errors import InsufficientStorage, ObjectTooLarge

log = logging.getLogger(__name__)


class ErrorBody(BaseModel):
    error: str
    message: str


class HttpError(Exception):
    """An error decided at the edge (a header, a content type, a range)."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.headers = status, code, message, headers or {}


# Most specific first: ObjectTooLarge is a LimitExceeded.
STATUS: list[tuple[type[CacheError], int, str]] = [
    (Unauthenticated, 401, "unauthenticated"),
    (PermissionDenied, 403, "permission_denied"),
    (InvalidArgument, 400, "bad_request"),
    (ObjectNotFound, 404, "not_found"),
    (VersionConflict, 412, "precondition_failed"),
    (ObjectTooLarge, 413, "too_large"),
    (LimitExceeded, 409, "conflict"),
    (InsufficientStorage, 507, "insufficient_storage"),  # under cache.capacity, all that is left is pinned
    (StorageError, 503, "storage_unavailable"),
]

# For the OpenAPI document: what each status means here.
RESPONSES = {
    400: {"model": ErrorBody, "description": "Bad key, header or body; the message names it"},
    401: {"model": ErrorBody, "description": "A token is needed (cache.auth), or the one sent is unknown"},
    403: {"model": ErrorBody, "description": "The token's scopes do not cover this key"},
    404: {"model": ErrorBody, "description": "No such object"},
}


def status_of(exc: CacheError) -> tuple[int, str]:
    for kind, status, code in STATUS:
        if isinstance(exc, kind):
            return status, code
    return 500, "internal"


def challenge(exc: Unauthenticated) -> dict[str, str]:
    """The WWW-Authenticate header of a 401 (RFC 6750)."""
    error = ', error="invalid_token"' if exc.invalid_token else ""
    return {"WWW-Authenticate": f'Bearer realm="flame-cache"{error}'}


def error_headers(exc: CacheError) -> dict[str, str] | None:
    """What a refusal's answer carries besides its body: the current
    version of a failed condition, or the challenge of a 401."""
    if isinstance(exc, VersionConflict) and exc.current:
        return {"ETag": etag(exc.current)}
    if isinstance(exc, Unauthenticated):
        return challenge(exc)
    return None


def error_response(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": code, "message": message}, status_code=status, headers=headers)


def handled_error(request: Request, exc: Exception) -> JSONResponse | None:
    """The answer to an error a route raised: the store's, HttpError, or a
    client gone mid-upload; None for any other (a bug: the edge answers 500)."""
    if isinstance(exc, CacheError):
        status, code = status_of(exc)
        return error_response(status, code, str(exc), error_headers(exc))
    if isinstance(exc, HttpError):
        return error_response(exc.status, exc.code, exc.message, exc.headers)
    if isinstance(exc, ClientDisconnect):  # the client will not read it; the edge logs the message
        return error_response(400, "client_disconnected", "the client disconnected during the upload; nothing was stored")
    return None


def install_error_handlers(app: FastAPI) -> None:
    async def route_error(request: Request, exc: Exception) -> JSONResponse:
        response = handled_error(request, exc)
        assert response is not None  # registered only for the errors it answers
        return response

    for error in (CacheError, HttpError, ClientDisconnect):
        app.add_exception_handler(error, route_error)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in error.get('loc', ()))}: {error.get('msg', 'invalid')}" for error in exc.errors()
        )
        return error_response(400, "bad_request", problems or "invalid request")

    @app.exception_handler(StarletteHTTPException)
    async def starlette_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        message = (
            f"no route for {request.method} {request.url.path}" if exc.status_code in (404, 405) else str(exc.detail)
        )
        return error_response(exc.status_code, code, message, getattr(exc, "headers", None))


GUARD_LOGGED = {"unauthenticated", "permission_denied"}  # cache.auth's refusals: store/guard.py logs them
NAMED_PREFIXES = ("/v1/objects/", "/v1/namespaces/")  # what follows is the key or namespace


def log_error_response(scope: Scope, status: int, body: bytes) -> None:
    """The one log line of a request answered 400 or more (SPEC 10): method
    and path, key, peer, status and error code, and the message read back
    from its JSON error body; none for cache.auth's refusals (logged by the
    guard, with the caller)."""
    code, message = _error_of(status, body)
    if code not in GUARD_LOGGED:
        log_failure(scope, f"{status} {code}", message, server_side=status >= 500)


def _error_of(status: int, body: bytes) -> tuple[str, str]:
    """The error code and message of an error body, or the status's phrase."""
    try:
        document = json.loads(body)
        return str(document["error"]), str(document["message"])
    except (ValueError, KeyError, TypeError):
        pass
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = "error"
    return phrase.lower().replace(" ", "_"), phrase


def log_failure(scope: Scope, outcome: str, message: str, *, server_side: bool) -> None:
    """A request's failure line with its outcome (a status, or `aborted`)."""
    path = scope.get("path", "")
    key = next((path[len(prefix) :] for prefix in NAMED_PREFIXES if path.startswith(prefix)), None)
    client = scope.get("client")
    peer = None
    if client:
        host, port = client[0], client[1]
        peer = f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"
    failed("HTTP", f"{scope.get('method', '?')} {path}", key, peer, outcome, message, server_side=server_side)

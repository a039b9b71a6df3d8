"""Who calls over Flight: the `authorization` header of each call (SPEC 9).

A server middleware reads the header once per call and keeps the caller's
`Principal` for the handler (`caller(context)`); the store's guard decides
what it may do. `Bearer <token>` works on any call. The handshake that
`FlightClient.authenticate_basic_token(name, token)` performs sends
`Basic base64(name:token)` and is answered with `authorization: Bearer
<token>` in the response headers, which the client then sends on each call;
a handshake with credentials this server does not know is UNAUTHENTICATED.
The token the server answers with is the caller's own: it issues no others.

pyarrow runs the handshake only with an auth handler installed; `Handshake`
is that handler and does nothing itself (the middleware has checked).

pyarrow (26) turns every FlightError a Python handler raises into its gRPC
code, but for GetSchema's, which arrive as UNKNOWN (with our message). So a
GetSchema from a caller who may read nothing is refused here, before the
call, with the right code; one who may read some keys, but not this one,
gets UNKNOWN naming the refusal.

The calls decided here (every Handshake, a refused GetSchema) never reach a
handler, so `CallerFactory` reports them to the metrics itself.
"""

from __future__ import annotations

import logging
import time

import pyarrow.flight as flight

from flame_cache.flight.errors import grpc_code, to_flight_error
from flame_cache.flight.metrics import OK, OPERATIONS
from flame_cache.metrics import FLIGHT, RequestMetrics
from flame_cache.store.access import OPEN, Credentials, Policy, Principal, Standing, parse_authorization
from flame_cache.store.errors import AccessDenied
from flame_cache.store.guard import require_some
from flame_cache.store.scopes import Operation

log = logging.getLogger(__name__)
MIDDLEWARE = "caller"


class CallerMiddleware(flight.ServerMiddleware):
    """One call's caller, and the bearer token a handshake answers with."""

    def __init__(self, principal: Principal, answer: str | None = None) -> None:
        self.principal = principal
        self._answer = answer

    def sending_headers(self) -> dict[str, str]:
        return {"authorization": f"Bearer {self._answer}"} if self._answer else {}


class CallerFactory(flight.ServerMiddlewareFactory):
    """Identifies each call's caller; answers the Handshake and refuses a
    GetSchema from a caller who may read nothing, and reports those calls to
    `requests` (no handler sees them)."""

    def __init__(self, policy: Policy, requests: RequestMetrics | None = None) -> None:
        self.policy = policy
        self.requests = requests or RequestMetrics()

    def start_call(self, info: flight.CallInfo, headers: dict[str, list[str]]) -> CallerMiddleware:
        started = time.perf_counter()
        try:
            middleware = self._start(info, headers)
        except flight.FlightError as exc:
            self._observe(info.method, grpc_code(exc), started)
            raise
        if info.method == flight.FlightMethod.HANDSHAKE:
            self._observe(info.method, OK, started)
        return middleware

    def _observe(self, method: flight.FlightMethod, outcome: str, started: float) -> None:
        self.requests.observe(FLIGHT, OPERATIONS[method], outcome, time.perf_counter() - started)

    def _start(self, info: flight.CallInfo, headers: dict[str, list[str]]) -> CallerMiddleware:
        credentials = parse_authorization(_first(headers, "authorization"))
        principal = self.policy.identify(credentials)
        if info.method == flight.FlightMethod.GET_SCHEMA:
            _may_read_some(principal)
        if info.method != flight.FlightMethod.HANDSHAKE:
            return CallerMiddleware(principal)
        if credentials is None or principal.standing is not Standing.TOKEN:
            log.warning("refused handshake for %s (%s)", principal if credentials else "no credentials", "UNAUTHENTICATED")
            raise flight.FlightUnauthenticatedError(
                "handshake: send a token this server knows, as authenticate_basic_token(name, token) does"
            )
        return CallerMiddleware(principal, _token(credentials))


class Handshake(flight.ServerAuthHandler):
    """Lets pyarrow answer the Handshake RPC; CallerFactory checked it."""

    def authenticate(self, outgoing: flight.ServerAuthSender, incoming: flight.ServerAuthReader) -> None:
        pass

    def is_valid(self, token: bytes) -> str:
        return ""  # pyarrow's own token header is not ours: every call is checked by the guard


def server_options(policy: Policy, requests: RequestMetrics | None = None) -> dict:
    """FlightServerBase keyword arguments for `policy` (none when it is open);
    the calls the middleware answers are reported to `requests`."""
    if not policy.enabled:
        return {}
    return {"auth_handler": Handshake(), "middleware": {MIDDLEWARE: CallerFactory(policy, requests)}}


def caller(context: flight.ServerCallContext) -> Principal:
    """The principal of this call (OPEN when there is no cache.auth)."""
    middleware = context.get_middleware(MIDDLEWARE)
    return middleware.principal if middleware is not None else OPEN


def _may_read_some(principal: Principal) -> None:
    """Refuse, with its gRPC code, a GetSchema from a caller who may read nothing."""
    try:
        require_some(principal, Operation.READ, "schema")
    except AccessDenied as exc:
        raise to_flight_error(exc) from None


def _first(headers: dict[str, list[str]], name: str) -> str | None:
    """A header's first value; gRPC gives names in lower case."""
    values = headers.get(name) or []
    return values[0] if values else None


def _token(credentials: Credentials) -> str:
    assert credentials.token is not None
    return credentials.token

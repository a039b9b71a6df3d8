"""The store as one caller may use it: each method checks, then delegates.

Both protocols call an `AccessGuard` for every request, built from the
caller's `Principal` (store/access.py); with no `cache.auth` that principal
may do everything, so the same path serves both cases. A check comes before
anything is read or written, so a refused request changes nothing and cannot
tell whether a key exists. Listings hold only what the caller may read.

A refusal is logged here, once, with the caller (token name, anonymous, or
an unknown token), the peer, the operation and the key: never a token. It
raises Unauthenticated for a caller without a known token (UNAUTHENTICATED
/ 401) and PermissionDenied for a token whose scopes do not cover the key
(PERMISSION_DENIED / 403).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from flame_cache.store import repair
from flame_cache.store.access import Principal, Standing
from flame_cache.store.errors import AccessDenied, PermissionDenied, Unauthenticated
from flame_cache.store.keys import Namespace, ObjectKey, Selector, shorten
from flame_cache.store.patterns import NEW_ID
from flame_cache.store.scopes import EVERY_KEY, Operation

if TYPE_CHECKING:
    from flame_cache.store.limits import WriteLimits
    from flame_cache.store.objects import ObjectInfo, Snapshot
    from flame_cache.store.store import Store

log = logging.getLogger(__name__)
READ, WRITE, DELETE, ADMIN = Operation.READ, Operation.WRITE, Operation.DELETE, Operation.ADMIN


class AccessGuard:
    def __init__(self, store: Store, principal: Principal, peer: str | Callable[[], str] = "") -> None:
        """`peer` names the caller's address in refusals: text, or a function
        asked only when a refusal is logged (gRPC's costs a call each time)."""
        self.store, self.principal, self._peer = store, principal, peer

    @property
    def peer(self) -> str:
        return self._peer() if callable(self._peer) else self._peer

    @property
    def write_limits(self) -> WriteLimits:
        return self.store.write_limits

    @property
    def persistent(self) -> bool:
        return self.store.persistent

    # -- writes ------------------------------------------------------------

    def put(self, key: ObjectKey | str, body: Any, **options: Any) -> ObjectInfo:
        key = ObjectKey.parse(key)
        self._require(WRITE, "put", key.segments, str(key))
        return self.store.put(key, body, **options)

    def create(self, namespace: Namespace | str, body: Any, **options: Any) -> ObjectInfo:
        space = namespace if isinstance(namespace, Namespace) else Namespace.parse(namespace)
        self._require(WRITE, "create", (*space.segments, NEW_ID), f"{space}/<new id>")
        return self.store.create(space, body, **options)

    def patch(self, key: ObjectKey | str, delta: Any, **options: Any) -> ObjectInfo:
        key = ObjectKey.parse(key)
        self._require(WRITE, "patch", key.segments, str(key))
        return self.store.patch(key, delta, **options)

    def expire(self, key: ObjectKey | str, ttl: float) -> float | None:
        key = ObjectKey.parse(key)
        self._require(WRITE, "expire", key.segments, str(key))
        return self.store.expire(key, ttl)

    def delete(self, selector: Selector | str) -> int:
        """Needs a delete scope covering every key at or below the selector."""
        selector = selector if isinstance(selector, Selector) else Selector.parse(selector)
        self._require(DELETE, "delete", selector.segments, str(selector), below=True)
        return self.store.delete(selector)

    def exists(self, key: ObjectKey | str) -> bool:
        """Whether the key exists, for DoPut's PATH rule (an existing key is
        replaced, else a namespace of that name gets a new object): asked
        only of a caller that may write the key or create below it."""
        key = ObjectKey.parse(key)
        if not (self.principal.may(WRITE, key.segments) or self.principal.may(WRITE, (*key.segments, NEW_ID))):
            raise self._refusal(WRITE, "put", str(key))
        return self.store.exists(key)

    # -- reads -------------------------------------------------------------

    def get(self, key: ObjectKey | str) -> Snapshot:
        key = ObjectKey.parse(key)
        self._require(READ, "get", key.segments, str(key))
        return self.store.get(key)

    def resident(self, key: ObjectKey | str) -> Snapshot | None:
        """`Store.resident`: the snapshot if in memory, else None (then `get`)."""
        key = ObjectKey.parse(key)
        self._require(READ, "get", key.segments, str(key))
        return self.store.resident(key)

    def short_write(self, size: int) -> bool:
        return self.store.short_write(size)

    def info(self, key: ObjectKey | str) -> ObjectInfo:
        key = ObjectKey.parse(key)
        self._require(READ, "info", key.segments, str(key))
        return self.store.info(key)

    def expires(self, name: str) -> float | None:
        self._require(READ, "info", ObjectKey.parse(name).segments, name)
        return self.store.expires(name)

    def list_page(self, selector_text: str = "", *, after: str | None = None, limit: int | None = 100):
        """`Store.list_page` of the keys the caller may read."""
        return self.store.list_page(selector_text, after=after, limit=limit, visible=self._visible(selector_text))

    def list(self, selector_text: str = "") -> list[ObjectInfo]:
        return self.list_page(selector_text, limit=None)[0]

    def namespaces(self, selector_text: str = "") -> list[tuple[str, int]]:
        """Namespaces and counts of the objects the caller may read."""
        return self.store.namespaces(selector_text, visible=self._visible(selector_text))

    # -- operations --------------------------------------------------------

    def verify(self, selector: Selector) -> dict:
        """VERIFY (it may set objects aside): admin over all of the selector."""
        self._require(ADMIN, "verify", selector.segments, str(selector) or "every key", below=True)
        return repair.verify(self.store, selector)

    def usage(self, *, stored: bool = True) -> dict[str, int]:
        """Object counts (stored=False) are open, as /readyz; the whole usage
        (STATS) counts every application's bytes, so it needs `admin:*`."""
        if stored:
            self.require_admin("stats")
        return self.store.usage(stored=stored)

    def require_admin(self, what: str) -> None:
        """For what covers every key (STATS, /metrics): `admin:*`."""
        self._require(ADMIN, what, EVERY_KEY, "every key", below=True)

    def health(self) -> str | None:
        return self.store.health()

    def require_some(self, operation: Operation, what: str) -> None:
        require_some(self.principal, operation, what, self.peer)

    # -- checks ------------------------------------------------------------

    def _require(self, operation: Operation, what: str, segments: tuple, shown: str, *, below: bool = False) -> None:
        if not self.principal.may(operation, segments, below=below):
            raise self._refusal(operation, what, shown)

    def _visible(self, selector_text: str):  # noqa: ANN202 (a predicate, or None: everything)
        if self.principal.unrestricted:
            return None
        self.require_some(READ, "list")
        principal = self.principal
        return lambda segments: principal.may(READ, segments)

    def _refusal(self, operation: Operation, what: str, shown: str) -> AccessDenied:
        return refusal(self.principal, self.peer, operation, what, shown)


def require_some(principal: Principal, operation: Operation, what: str, peer: str = "") -> None:
    """Refuse a caller no scope of which grants `operation` anywhere
    (a listing, or a call whose key is not known yet)."""
    if not principal.may_some(operation):
        raise refusal(principal, peer, operation, what, "any key")


def refusal(principal: Principal, peer: str, operation: Operation, what: str, shown: str) -> AccessDenied:
    """The error for a refused request, logged once (never a token)."""
    target = shorten(shown, 100)
    if principal.standing is Standing.UNKNOWN:
        error: AccessDenied = Unauthenticated(
            f"{what} of {target}: the token sent is not one this server knows", invalid_token=True
        )
    elif principal.standing is Standing.ANONYMOUS:
        error = Unauthenticated(
            f"{what} of {target} needs a token: anonymous callers may not {operation.value} it "
            "(send 'authorization: Bearer <token>')"
        )
    else:
        error = PermissionDenied(f"{what} of {target}: no {operation.value} scope of {principal} covers it")
    peer = peer or "an unknown peer"
    log.warning("refused %s of %s for %s from %s (%s)", what, target, principal, peer, type(error).__name__)
    return error

"""DoAction: DELETE (SPEC 4.4), the seed's PUT and UPDATE, VERIFY, EXPIRE, and HEALTH / STATS.

A body is bounded by its length before it is decoded: a seed PUT's base64 is
checked against the maximum object size from its length alone, and decoded
in place, without copies of a body that may be gigabytes long.

Each action calls the caller's `AccessGuard`, which asks the scope the
action implies: DELETE delete (of all below its body), PUT and UPDATE
write, EXPIRE write, VERIFY admin, STATS `admin:*`; HEALTH is open, as
HTTP's /readyz.
"""

from __future__ import annotations

import base64
import binascii
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass

import pyarrow as pa

from flame_cache.flight.requests import decode_utf8
from flame_cache.store import InvalidArgument, ObjectInfo
from flame_cache.store.conditions import MUST_EXIST
from flame_cache.store.guard import AccessGuard
from flame_cache.store.keys import Selector
from flame_cache.store.limits import MAX_KEY_BYTES, WriteLimits


@dataclass(frozen=True)
class ActionContext:
    store: AccessGuard  # the store as this call's caller may use it
    advertised: str


Handler = Callable[[ActionContext, memoryview], bytes]


def delete(ctx: ActionContext, body: memoryview) -> bytes:
    ctx.store.delete(decode_utf8(body, "DELETE body"))
    return b"OK"


def seed_put(ctx: ActionContext, body: memoryview) -> bytes:
    namespace, data = _split_seed_body(body, "PUT", "<session>:<base64 data>", ctx.store.write_limits)
    return _seed_reply(ctx, ctx.store.create(namespace, data))


def seed_update(ctx: ActionContext, body: memoryview) -> bytes:
    key, data = _split_seed_body(body, "UPDATE", "<key>:<base64 data>", ctx.store.write_limits)
    return _seed_reply(ctx, ctx.store.put(key, data, condition=MUST_EXIST))


def verify(ctx: ActionContext, body: memoryview) -> bytes:
    """Check checksums now: body a key, a namespace or 'app/*' (`repair.verify`)."""
    return json.dumps(ctx.store.verify(Selector.parse(decode_utf8(body, "VERIFY body")))).encode()


def expire(ctx: ActionContext, body: memoryview) -> bytes:
    """`{"key": ..., "ttl": <seconds>}`: the object's own TTL (0 clears it)."""
    try:
        request = json.loads(decode_utf8(body, "EXPIRE body"))
    except ValueError:
        raise InvalidArgument('EXPIRE body must be JSON {"key": "<key>", "ttl": <seconds>}') from None
    if not isinstance(request, dict) or not isinstance(request.get("key"), str) or "ttl" not in request:
        raise InvalidArgument('EXPIRE body must be JSON {"key": "<key>", "ttl": <seconds>}')
    expires = ctx.store.expire(request["key"], request["ttl"])
    return json.dumps({"key": request["key"], "expires": expires}).encode()


def health(ctx: ActionContext, body: memoryview) -> bytes:
    """As HTTP's /readyz: "ok" with counts, or "not ready" and why."""
    problem = ctx.store.health()
    if problem is not None:
        return json.dumps({"status": "not ready", "reason": problem}).encode()
    return json.dumps({"status": "ok", **ctx.store.usage(stored=False)}).encode()


def stats(ctx: ActionContext, body: memoryview) -> bytes:
    return json.dumps({**ctx.store.usage(), "persistent": ctx.store.persistent}).encode()


ACTIONS: dict[str, tuple[Handler, str]] = {
    "DELETE": (delete, "Delete an object, a namespace or 'app/*' and all below it; body: the name. Returns OK."),
    "PUT": (seed_put, "Seed client: create an object; body '<session>:<base64 data>'. Returns a JSON ref."),
    "UPDATE": (seed_update, "Seed client: replace an object; body '<key>:<base64 data>'. Returns a JSON ref."),
    "VERIFY": (
        verify,
        "Check stored objects against their checksums now; body: a key, a namespace or 'app/*'. Returns JSON: "
        "what was checked, and the objects set aside (quarantined) for damage.",
    ),
    "EXPIRE": (
        expire,
        'Give an object its own TTL; body JSON {"key": ..., "ttl": <seconds>} (0 clears it). '
        'Returns JSON {"key", "expires"} (seconds since the epoch, or null).',
    ),
    "HEALTH": (health, "Readiness, as HTTP's /readyz: JSON status 'ok' and object counts, or 'not ready' and why."),
    "STATS": (stats, "Returns JSON with object counts, the bytes held in memory and the bytes stored."),
}


def _split_seed_body(
    body: bytes | memoryview, action: str, shape: str, limits: WriteLimits = WriteLimits()
) -> tuple[str, pa.Buffer]:
    """`<name>:<base64>`: the name, and the data decoded once its size is
    known to fit `limits` (InvalidArgument or ObjectTooLarge, naming the action)."""
    body = memoryview(body)
    head = bytes(body[: MAX_KEY_BYTES + 1])
    colon = head.find(b":")
    if colon < 0:
        raise InvalidArgument(f"{action} body must be {shape!r}; no ':' found in its first {len(head)} bytes")
    name = decode_utf8(head[:colon], f"{action} body's name")
    encoded = body[colon + 1 :]
    limits.check_size(name, _decoded_size(encoded), what=f" ({action} action)")
    try:
        data = _b64decode(encoded)
    except (binascii.Error, ValueError):
        raise InvalidArgument(f"{action} body: the data after ':' is not valid base64") from None
    return name, pa.py_buffer(data)


def _decoded_size(encoded: memoryview) -> int:
    """The bytes that valid base64 of this length decodes to (no decoding)."""
    padding = bytes(encoded[-2:]).count(b"=") if len(encoded) % 4 == 0 else 0
    return len(encoded) // 4 * 3 - padding


def _b64decode(encoded: memoryview) -> bytes:
    """Strict base64, decoded from the body in place (Python 3.11+); older
    Pythons copy it first."""
    if sys.version_info >= (3, 11):
        return binascii.a2b_base64(encoded, strict_mode=True)
    return base64.b64decode(bytes(encoded), validate=True)


def _seed_reply(ctx: ActionContext, info: ObjectInfo) -> bytes:
    return json.dumps({"endpoint": ctx.advertised, "key": info.key, "version": info.version, "size": info.size}).encode()

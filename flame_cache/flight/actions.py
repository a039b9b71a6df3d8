"""DoAction: DELETE (SPEC 4.4), the seed's PUT and UPDATE, and HEALTH / STATS."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable
from dataclasses import dataclass

import pyarrow as pa

from flame_cache.flight.requests import decode_utf8
from flame_cache.store import InvalidArgument, ObjectInfo, Store


@dataclass(frozen=True)
class ActionContext:
    store: Store
    advertised: str


Handler = Callable[[ActionContext, bytes], bytes]


def delete(ctx: ActionContext, body: bytes) -> bytes:
    ctx.store.delete(decode_utf8(body, "DELETE body"))
    return b"OK"


def seed_put(ctx: ActionContext, body: bytes) -> bytes:
    namespace, data = _split_seed_body(body, "PUT", "<session>:<base64 data>")
    return _seed_reply(ctx, ctx.store.create(namespace, data))


def seed_update(ctx: ActionContext, body: bytes) -> bytes:
    key, data = _split_seed_body(body, "UPDATE", "<key>:<base64 data>")
    return _seed_reply(ctx, ctx.store.replace(key, data))


def health(ctx: ActionContext, body: bytes) -> bytes:
    return json.dumps({"status": "ok", **ctx.store.stats()}).encode()


def stats(ctx: ActionContext, body: bytes) -> bytes:
    return json.dumps({**ctx.store.stats(), "persistent": ctx.store.persistent}).encode()


ACTIONS: dict[str, tuple[Handler, str]] = {
    "DELETE": (delete, "Delete an object, a namespace or 'app/*' and all below it; body: the name. Returns OK."),
    "PUT": (seed_put, "Seed client: create an object; body '<session>:<base64 data>'. Returns a JSON ref."),
    "UPDATE": (seed_update, "Seed client: replace an object; body '<key>:<base64 data>'. Returns a JSON ref."),
    "HEALTH": (health, "Liveness: returns JSON with status 'ok' and object counts."),
    "STATS": (stats, "Returns JSON with object counts and the bytes held in memory."),
}


def _split_seed_body(body: bytes, action: str, shape: str) -> tuple[str, pa.Buffer]:
    text = decode_utf8(body, f"{action} body")
    name, sep, encoded = text.partition(":")
    if not sep:
        raise InvalidArgument(f"{action} body must be {shape!r}; no ':' found")
    try:
        data = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidArgument(f"{action} body: the data after ':' is not valid base64") from None
    return name, pa.py_buffer(data)


def _seed_reply(ctx: ActionContext, info: ObjectInfo) -> bytes:
    return json.dumps({"endpoint": ctx.advertised, "key": info.key, "version": info.version, "size": info.size}).encode()

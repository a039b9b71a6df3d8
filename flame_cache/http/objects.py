"""Object routes: the HTTP form of DoPut, DoGet, PATCH: and DELETE (SPEC 4, 5).

    GET    /v1/objects/{key}        raw base bytes, or the DoGet Arrow stream
    HEAD   /v1/objects/{key}        the same headers, no body
    PUT    /v1/objects/{key}        create or replace exactly this key
    PATCH  /v1/objects/{key}        append one delta
    DELETE /v1/objects/{key}        delete it (and, as in Flight, all below it)
    POST   /v1/namespaces/{ns}      create an object with a server-chosen id
    POST   /v1/verify               check stored objects against their checksums now

Raw reads of a whole base send `X-Flame-Checksum: crc32c=<base64>` when the
object has one; a write that carries it is refused (400, nothing stored) if
the body's bytes do not match (the store compares, before it installs).

Routes translate headers and bodies and call the store; the store decides.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Literal
from urllib.parse import quote

from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from flame_cache.http.bodies import (
    ARROW,
    RAW,
    UPLOAD_BODY,
    body_kind,
    delta_payload,
    upload_payload,
    with_body,
)
from flame_cache.http.conditions import (
    ANY,
    Unsatisfiable,
    etag,
    has_weak_tag,
    if_range_holds,
    matches,
    parse_etags,
    parse_range,
)
from flame_cache.http.context import Context, context
from flame_cache.http.dates import http_date
from flame_cache.http.errors import RESPONSES, ErrorBody, HttpError
from flame_cache.http.zerocopy import BlobFileResponse, offered
from flame_cache.store import Kind, ObjectInfo, ObjectNotFound, Snapshot, checksum
from flame_cache.store.blobs import Blob, BufferBlob, FileBlob
from flame_cache.store.conditions import ANY_STATE, MUST_EXIST, Condition
from flame_cache.store.expiry import MAX_TTL
from flame_cache.store.keys import Namespace, ObjectKey, Selector, shorten
from flame_cache.store.objects import MAX_VERSION, Read, ReadMode
from flame_cache.store.wire import blob_pieces, ipc_bytes, ipc_chunks

router = APIRouter(prefix="/v1", tags=["objects"])
# A read of at most this many bytes, all in memory, is answered from the event
# loop in one message; a longer one, or one read from its files, streams from a thread.
SHORT_BODY_BYTES = 1024 * 1024
WHOLE_HEAD = "http whole raw head"  # where a snapshot keeps the head of a raw read of its whole base

TTL_QUERY = Query(
    None, ge=0, le=MAX_TTL, description="Seconds until the object expires (its own TTL, kept across writes); 0 clears it"
)
WRITE_RESPONSES = {
    **RESPONSES,
    507: {"model": ErrorBody, "description": "No room under cache.capacity: what is left is pinned"},
    412: {"model": ErrorBody, "description": "If-Match / If-None-Match failed; ETag has the current version"},
    413: {"model": ErrorBody, "description": "Over the maximum object size"},
    415: {"model": ErrorBody, "description": "Content-Type is neither octet-stream nor an Arrow stream"},
}
READ_RESPONSES = {
    200: {
        "description": "The base bytes, or the Arrow IPC stream DoGet sends",
        "content": {
            RAW: {"schema": {"type": "string", "format": "binary"}},
            ARROW: {"schema": {"type": "string", "format": "binary"}},
        },
    },
    206: {"description": "Part of the base bytes (Range)"},
    304: {"description": "Not modified: If-None-Match names the current version"},
    416: {"model": ErrorBody, "description": "The range starts past the end"},
    **RESPONSES,
}


class ObjectRef(BaseModel):
    """flamepy's ObjectRef: `flamepy.core.cache.ObjectRef(**body)` reads the object over Flight."""

    endpoint: str
    key: str
    version: int


def object_path(key: str) -> str:
    return "/v1/objects/" + quote(key, safe="/")


# -- reads ----------------------------------------------------------------


@router.get("/objects/{key:path}", responses=READ_RESPONSES, response_class=Response)
async def get_object(
    key: str,
    request: Request,
    format_: Literal["raw", "arrow"] | None = Query(
        None, alias="format", description="Overrides Accept: `raw` (the base bytes) or `arrow` (the DoGet stream)"
    ),
    version: int | None = Query(
        None,
        ge=0,
        le=MAX_VERSION,
        description="Arrow only: the version the client holds, as in the ticket `<key>:<version>`",
    ),
    chunked: bool = Query(False, description="Arrow only: the base in rows of 4 MiB (the `chunked:` ticket)"),
    delta: int | None = Query(None, ge=0, description="Raw bytes of delta n (0 = first appended) instead of the base"),
    download: bool = Query(False, description="Ask the browser to save it (Content-Disposition)"),
    if_none_match: str | None = Header(None),
    range_: str | None = Header(None, alias="Range"),
    if_range: str | None = Header(None),
    ctx: Context = Depends(context),
) -> Response:
    """Read an object.

    Raw (`application/octet-stream`, the default): the base bytes, with
    Range. Deltas are not part of them: read them with `?delta=n` or in the
    Arrow stream. Arrow (`Accept: application/vnd.apache.arrow.stream` or
    `?format=arrow`): exactly the rows DoGet sends; the version the client
    holds comes from `?version=` or, failing that, a single If-None-Match
    version that is not the current one (then only the newer patches come).
    """
    snapshot = await _snapshot(ctx, key)
    tags = parse_etags(if_none_match, "If-None-Match")
    if matches(tags, snapshot.version):
        return Response(status_code=304, headers=_headers(snapshot.info()))
    zero_copy = offered(request.scope)
    if delta is not None:
        return _delta(snapshot, delta, zero_copy)
    if snapshot.kind is Kind.TABLE or _wants_arrow(format_, request.headers.get("accept")):
        if version is None and isinstance(tags, list) and len(tags) == 1:
            version = tags[0]
        return _arrow(snapshot, version or 0, chunked)
    if version is not None or chunked:
        raise HttpError(
            400,
            "bad_request",
            "'version' and 'chunked' select rows of the Arrow stream; "
            "ask for it with Accept: application/vnd.apache.arrow.stream or ?format=arrow",
        )
    return _raw(snapshot, range_, if_range, download, zero_copy)


@router.head("/objects/{key:path}", responses={200: {"description": "Headers of GET, no body"}, **RESPONSES})
async def head_object(
    key: str,
    request: Request,
    format_: Literal["raw", "arrow"] | None = Query(None, alias="format"),
    if_none_match: str | None = Header(None),
    ctx: Context = Depends(context),
) -> Response:
    """Metadata only: ETag, version, deltas, sizes, Last-Modified, the
    Content-Length a raw GET would have, and X-Flame-Expires (an HTTP date)
    if the object expires."""
    snapshot = await _snapshot(ctx, key)
    headers = _headers(snapshot.info())
    expires = ctx.store.expires(snapshot.key)
    if expires is not None:
        headers["X-Flame-Expires"] = http_date(expires)
    if matches(parse_etags(if_none_match, "If-None-Match"), snapshot.version):
        return Response(status_code=304, headers=headers)
    if snapshot.kind is Kind.TABLE or _wants_arrow(format_, request.headers.get("accept")):
        return StreamingResponse(iter(()), headers=headers, media_type=ARROW)  # length unknown: none given
    headers.update({"Content-Length": str(snapshot.base.size), "Accept-Ranges": "bytes", **_checksum(snapshot.base)})
    return Response(status_code=200, headers=headers, media_type=RAW)


async def _snapshot(ctx: Context, key: str) -> Snapshot:
    """The object, from memory on the event loop, else loaded in a worker thread."""
    parsed = ObjectKey.parse(key)
    return ctx.store.resident(parsed) or await run_in_threadpool(ctx.store.get, parsed)


def _body(
    blob: Blob, start: int, end: int, status: int, headers: dict[str, str], media_type: str, zero_copy: bool
) -> Response:
    """Bytes [start, end) of a blob: a short part of one in memory sent from
    the event loop as it is; one in its file by sendfile if the server offers
    it (`zero_copy`); anything else read piece by piece in a thread."""
    if isinstance(blob, BufferBlob) and end - start <= SHORT_BODY_BYTES:
        return Response(memoryview(blob.buffer())[start:end], status, headers, media_type)
    if zero_copy and isinstance(blob, FileBlob):
        return BlobFileResponse(blob, start, end, status, headers, media_type)
    return StreamingResponse(blob_pieces(blob, start, end), status, headers, media_type)


def _wants_arrow(format_: str | None, accept: str | None) -> bool:
    if format_ is not None:
        return format_ == "arrow"
    return accept is not None and ARROW in accept.lower()


def _headers(info: ObjectInfo) -> dict[str, str]:
    return {
        "ETag": etag(info.version),
        "Last-Modified": http_date(info.updated),
        "Cache-Control": "no-cache",
        "X-Flame-Version": str(info.version),
        "X-Flame-Deltas": str(info.deltas),
        "X-Flame-Size": str(info.size),
        "X-Flame-Kind": info.kind.value,
    }


def _checksum(base: Blob) -> dict[str, str]:
    """X-Flame-Checksum of a whole base, if it has one (upstream's files do not)."""
    return {} if base.crc32c is None else {checksum.HEADER: checksum.header_value(base.crc32c)}


def _upload_checksum(value: str | None) -> int | None:
    """The crc32c a write's X-Flame-Checksum names (400 if malformed)."""
    return None if value is None else checksum.parse_header(value)


CHECKSUM_HEADER = Header(
    None,
    alias=checksum.HEADER,
    description="`crc32c=<base64>` of the object's bytes (the 4-byte big-endian crc32c): a body that does not "
    "match is refused with 400 and nothing is stored",
)


def _raw(snapshot: Snapshot, range_: str | None, if_range: str | None, download: bool, zero_copy: bool) -> Response:
    if range_ is None and not download:  # the commonest read of all
        return _whole(snapshot, zero_copy)
    info, base = snapshot.info(), snapshot.base
    size = base.size
    headers = _whole_headers(info, base)
    if download:
        name = info.key.rsplit("/", 1)[-1]
        headers["Content-Disposition"] = f"attachment; filename*=UTF-8''{quote(name, safe='')}"
    wanted = range_ if if_range is None or if_range_holds(if_range, info.version) else None
    try:
        part = parse_range(wanted, size)
    except Unsatisfiable:
        raise HttpError(
            416,
            "range_not_satisfiable",
            f"the object's base has {size} bytes; range {shorten(range_ or '')} starts past its end",
            {"Content-Range": f"bytes */{size}"},
        ) from None
    if part is None:
        return _body(base, 0, size, 200, headers, RAW, zero_copy)
    headers.pop(checksum.HEADER, None)  # it names the whole base, not a part
    headers.update({"Content-Length": str(part.length), "Content-Range": part.content_range(size)})
    return _body(base, part.start, part.end, 206, headers, RAW, zero_copy)


def _whole_headers(info: ObjectInfo, base: Blob) -> dict[str, str]:
    """The headers of a raw read of the whole base."""
    return {**_headers(info), "Accept-Ranges": "bytes", "Content-Length": str(base.size), **_checksum(base)}


def _whole(snapshot: Snapshot, zero_copy: bool) -> Response:
    """A raw read of the whole base. Its head never changes, so the first read
    keeps the head Starlette made in `snapshot.responses` and later reads reuse it."""
    base = snapshot.base
    head = snapshot.responses.get(WHOLE_HEAD)
    if head is None:
        response = _body(base, 0, base.size, 200, _whole_headers(snapshot.info(), base), RAW, zero_copy)
        snapshot.responses[WHOLE_HEAD] = tuple(response.raw_headers)
        return response
    response = _body(base, 0, base.size, 200, None, RAW, zero_copy)
    response.raw_headers = list(head)
    return response


def _delta(snapshot: Snapshot, index: int, zero_copy: bool) -> Response:
    info = snapshot.info()
    if index >= len(snapshot.deltas):
        raise HttpError(
            404, "not_found", f"object {info.key!r} has {len(snapshot.deltas)} delta(s); there is no delta {index}"
        )
    delta = snapshot.deltas[index]
    return _body(delta, 0, delta.size, 200, {**_headers(info), "Content-Length": str(delta.size)}, RAW, zero_copy)


def _arrow(snapshot: Snapshot, client_version: int, chunked: bool) -> Response:
    read = snapshot.read(client_version)
    headers = {**_headers(snapshot.info()), "X-Flame-Read": read.mode.value}
    if _short_in_memory(read):  # framed on the event loop, sent at once
        return Response(ipc_bytes(read, chunked=chunked), media_type=ARROW, headers=headers)
    return StreamingResponse(ipc_chunks(read, chunked=chunked), media_type=ARROW, headers=headers)


def _short_in_memory(read: Read) -> bool:
    """Whether the answer's bytes are all in memory (none is read from a
    file) and at most SHORT_BODY_BYTES: a patch-only read of a large object
    sends its deltas only."""
    if read.snapshot.kind is Kind.TABLE:  # a table is held in memory; a not-modified answer has no rows
        return read.mode is ReadMode.NOT_MODIFIED or read.snapshot.size <= SHORT_BODY_BYTES
    return read.data_bytes <= SHORT_BODY_BYTES and all(isinstance(row.data, BufferBlob) for row in read.rows)


# -- writes ---------------------------------------------------------------


@router.put(
    "/objects/{key:path}",
    status_code=201,
    response_model=ObjectRef,
    responses={
        200: {"model": ObjectRef, "description": "Replaced"},
        201: {"description": "Created"},
        **WRITE_RESPONSES,
    },
    openapi_extra=UPLOAD_BODY,
)
async def put_object(
    key: str,
    request: Request,
    if_match: str | None = Header(None, description='Replace only at this version: "7" (or * : only if it exists)'),
    if_none_match: str | None = Header(None, description="`*`: create only, never replace"),
    x_flame_checksum: str | None = CHECKSUM_HEADER,
    ttl: float | None = TTL_QUERY,
    ctx: Context = Depends(context),
) -> JSONResponse:
    """Create or replace exactly this key (2 or 3 segments): deltas are
    cleared, the version goes up by one (a new object starts at 1)."""
    target = ObjectKey.parse(key)
    limits = ctx.store.write_limits
    kind = body_kind(request, limits, key)
    condition = _write_condition(if_match, if_none_match)
    crc = _upload_checksum(x_flame_checksum)

    def write(chunks: Iterator[bytes]) -> ObjectInfo:
        return ctx.store.put(
            target, upload_payload(kind, chunks, limits, key), condition=condition, crc32c=crc, ttl=ttl
        )

    try:
        info = await with_body(request, write, ctx.store.short_write)
    except ObjectNotFound:
        if if_match is None:
            raise
        raise HttpError(
            412, "precondition_failed", f"object {key!r} does not exist; If-Match needs an existing object"
        ) from None
    return _ref(ctx, info, 201 if info.version == 1 else 200)


@router.post(
    "/namespaces/{namespace:path}",
    status_code=201,
    response_model=ObjectRef,
    responses=WRITE_RESPONSES,
    openapi_extra=UPLOAD_BODY,
)
async def create_object(
    namespace: str,
    request: Request,
    x_flame_checksum: str | None = CHECKSUM_HEADER,
    ttl: float | None = TTL_QUERY,
    ctx: Context = Depends(context),
) -> JSONResponse:
    """Create an object with a fresh uuid4 id in a namespace (`session` or `app/session`)."""
    space = Namespace.parse(namespace)
    limits = ctx.store.write_limits
    kind = body_kind(request, limits, f"{namespace}/<new>")
    crc = _upload_checksum(x_flame_checksum)
    info = await with_body(
        request,
        lambda chunks: ctx.store.create(space, upload_payload(kind, chunks, limits, namespace), crc32c=crc, ttl=ttl),
        ctx.store.short_write,
    )
    return _ref(ctx, info, 201)


@router.patch(
    "/objects/{key:path}",
    response_model=ObjectRef,
    responses={
        409: {"model": ErrorBody, "description": "The object has the most deltas allowed; replace it"},
        **WRITE_RESPONSES,
    },
    openapi_extra=UPLOAD_BODY,
)
async def patch_object(
    key: str,
    request: Request,
    if_match: str | None = Header(None, description='Append only if the object is at this version: "7"'),
    if_none_match: str | None = Header(None, description="`*`: only if the object does not exist, so always 412"),
    x_flame_checksum: str | None = CHECKSUM_HEADER,
    ttl: float | None = TTL_QUERY,
    ctx: Context = Depends(context),
) -> JSONResponse:
    """Append one delta (an opaque body) to an existing opaque object."""
    target = ObjectKey.parse(key)
    limits = ctx.store.write_limits
    kind = body_kind(request, limits, key, " with this patch")
    condition = _write_condition(if_match, if_none_match)
    condition = MUST_EXIST if condition is ANY_STATE else condition
    crc = _upload_checksum(x_flame_checksum)
    info = await with_body(
        request,
        lambda chunks: ctx.store.patch(
            target, delta_payload(kind, chunks, limits, key), condition=condition, crc32c=crc, ttl=ttl
        ),
        ctx.store.short_write,
    )
    return _ref(ctx, info, 200)


@router.delete("/objects/{key:path}", status_code=204, responses={204: {"description": "Deleted"}, **RESPONSES})
def delete_object(key: str, ctx: Context = Depends(context)) -> Response:
    """Delete the object (and, as Flight's DELETE does, every key below it)."""
    ObjectKey.parse(key)
    if ctx.store.delete(key) == 0:
        raise ObjectNotFound(f"object {key!r} not found")
    return Response(status_code=204)


def _write_condition(if_match: str | None, if_none_match: str | None) -> Condition:
    """What the precondition headers require; the store checks it under the
    key's lock, so racing conditional writes have one winner."""
    if if_match is not None and if_none_match is not None:
        raise HttpError(400, "bad_request", "send If-Match or If-None-Match, not both")
    if if_none_match is not None:
        if parse_etags(if_none_match, "If-None-Match") != ANY:
            raise HttpError(400, "bad_request", "on a write, If-None-Match may only be '*' (create, never replace)")
        return Condition(exists=False)
    tags = parse_etags(if_match, "If-Match", strong=True)
    if tags is None:
        return ANY_STATE
    if tags == ANY:
        return MUST_EXIST
    if not tags:
        raise HttpError(412, "precondition_failed", _names_no_version(if_match or ""))
    return Condition(versions=tuple(tags), exists=True)


def _names_no_version(if_match: str) -> str:
    """Why an If-Match without a usable tag failed."""
    message = f'If-Match {shorten(if_match)} names no version (ETags are versions: "7")'
    if has_weak_tag(if_match):
        message += '; a weak tag (W/"7") never matches in If-Match, which compares strongly (RFC 9110 13.1.1)'
    return message


def _ref(ctx: Context, info: ObjectInfo, status: int) -> JSONResponse:
    body = {"endpoint": ctx.advertised, "key": info.key, "version": info.version}
    headers = {"ETag": etag(info.version), "Location": object_path(info.key)}
    return JSONResponse(body, status_code=status, headers=headers)


# -- verification ---------------------------------------------------------


class VerifyRequest(BaseModel):
    target: str


@router.post(
    "/verify",
    responses={200: {"description": "What was checked and what was set aside"}, **RESPONSES},
    tags=["operations"],
)
def verify(
    request_body: VerifyRequest | None = None,
    target: str | None = Query(None, description="A key, a namespace or 'app/*' (or give it in the JSON body)"),
    ctx: Context = Depends(context),
) -> JSONResponse:
    """Check stored objects against their checksums now, as Flight's
    `DoAction VERIFY`: each object's files are read once; one whose data does
    not match is set aside (quarantined) and listed with the reason."""
    named = target if target is not None else request_body.target if request_body is not None else None
    if named is None:
        raise HttpError(400, "bad_request", "name what to verify: ?target=<key|namespace|app/*> or {\"target\": ...}")
    return JSONResponse(ctx.store.verify(Selector.parse(named)))

"""Listings and namespace deletes: ListFlights and DELETE of a namespace or `app/*`.

A prefix is whole key segments, as ListFlights criteria are: a namespace
(`session`, `app/session`), `app/*`, or a key. Pages are in key order; the
cursor is the last key of the previous page.
"""

from __future__ import annotations

from datetime import datetime, timezone

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel

from flame_cache.http.context import Context, context
from flame_cache.http.errors import RESPONSES
from flame_cache.store import ObjectInfo
from flame_cache.store.keys import WILDCARD, Namespace, check_folder_segment

router = APIRouter(prefix="/v1", tags=["listing"])


class ObjectEntry(BaseModel):
    key: str
    version: int
    size: int  # bytes of the base and all deltas
    deltas: int
    kind: str  # opaque or table
    updated: str  # ISO 8601, UTC


class ObjectList(BaseModel):
    objects: list[ObjectEntry]
    next_cursor: str | None  # pass as ?cursor= for the next page; null on the last


class NamespaceEntry(BaseModel):
    namespace: str
    objects: int


class Deleted(BaseModel):
    deleted: int


def entry(info: ObjectInfo) -> ObjectEntry:
    updated = datetime.fromtimestamp(info.updated, timezone.utc).isoformat(timespec="seconds")
    return ObjectEntry(
        key=info.key, version=info.version, size=info.size, deltas=info.deltas, kind=info.kind.value, updated=updated
    )


@router.get("/objects", response_model=ObjectList, responses=RESPONSES)
def list_objects(
    prefix: str = Query("", description="Namespace, `app/*` or key; empty lists everything"),
    limit: int = Query(100, ge=1, le=1000),
    cursor: str | None = Query(None, description="next_cursor of the previous page"),
    ctx: Context = Depends(context),
) -> ObjectList:
    """Objects in key order, one page at a time."""
    infos, next_cursor = ctx.store.list_page(prefix, after=cursor or None, limit=limit)
    return ObjectList(objects=[entry(info) for info in infos], next_cursor=next_cursor)


@router.get("/namespaces", response_model=list[NamespaceEntry], responses=RESPONSES)
def list_namespaces(
    prefix: str = Query("", description="An app, namespace or `app/*`; empty lists all"),
    ctx: Context = Depends(context),
) -> list[NamespaceEntry]:
    """Namespaces that hold objects, with their object counts."""
    return [NamespaceEntry(namespace=name, objects=count) for name, count in ctx.store.namespaces(prefix)]


@router.delete("/namespaces/{namespace:path}", response_model=Deleted, responses=RESPONSES)
def delete_namespace(namespace: str, ctx: Context = Depends(context)) -> Deleted:
    """Delete every object of a namespace (`session`, `app/session`) or of
    every session of an app (`app/*`). Deleting an empty one is not an error."""
    app, _, rest = namespace.partition("/")
    if rest == WILDCARD:
        check_folder_segment(app)
    else:
        Namespace.parse(namespace)
    return Deleted(deleted=ctx.store.delete(namespace))

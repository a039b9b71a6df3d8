"""The one store: keys, objects, versions, the disk layout and eviction."""

from flame_cache.store import checksum

from flame_cache.store.errors import (
    AccessDenied,
    CacheError,
    InvalidArgument,
    LimitExceeded,
    ObjectNotFound,
    PermissionDenied,
    StorageError,
    Unauthenticated,
    VersionConflict,
)
from flame_cache.store.eviction import Eviction
from flame_cache.store.objects import (
    Kind,
    ObjectInfo,
    Read,
    ReadMode,
    Row,
    RowKind,
    Snapshot,
)
from flame_cache.store.store import Store

__all__ = [
    "AccessDenied",
    "CacheError",
    "InvalidArgument",
    "Kind",
    "Eviction",
    "LimitExceeded",
    "ObjectInfo",
    "ObjectNotFound",
    "PermissionDenied",
    "Read",
    "ReadMode",
    "Row",
    "RowKind",
    "Snapshot",
    "StorageError",
    "Store",
    "Unauthenticated",
    "VersionConflict",
    "checksum",
]

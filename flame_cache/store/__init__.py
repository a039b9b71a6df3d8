"""The one store: keys, objects, versions, the disk layout and eviction."""

from flame_cache.store import checksum

from flame_cache.store.errors import (
    CacheError,
    InvalidArgument,
    LimitExceeded,
    ObjectNotFound,
    StorageError,
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
    "CacheError",
    "InvalidArgument",
    "Kind",
    "Eviction",
    "LimitExceeded",
    "ObjectInfo",
    "ObjectNotFound",
    "Read",
    "ReadMode",
    "Row",
    "RowKind",
    "Snapshot",
    "StorageError",
    "Store",
    "VersionConflict",
    "checksum",
]

"""A streaming Python client of flame-cache over Arrow Flight (SPEC 12).

    from flame_cache.client import Client

    with Client() as cache:  # the endpoint, CA and token as flamepy finds them
        ref = cache.put("my-app/session", "model.bin")
        cache.get(ref.key, "copy.bin")

`cli.py` is the `flame-cache` command line's client commands over it.
"""

from flame_cache.client.client import Client
from flame_cache.client.download import Download, Received
from flame_cache.client.errors import (
    ChecksumMismatch,
    ClientError,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    SettingsError,
    Unauthenticated,
    Unavailable,
)
from flame_cache.client.models import ObjectRef, ObjectStat
from flame_cache.client.settings import Settings, resolve

__all__ = [
    "ChecksumMismatch",
    "Client",
    "ClientError",
    "Download",
    "InvalidArgument",
    "NotFound",
    "ObjectRef",
    "ObjectStat",
    "PermissionDenied",
    "Received",
    "Settings",
    "SettingsError",
    "Unauthenticated",
    "Unavailable",
    "resolve",
]

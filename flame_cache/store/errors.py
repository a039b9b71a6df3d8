"""Errors with meaning; each protocol maps them to its own codes at its edge."""


class CacheError(Exception):
    """Base of every error the store raises on purpose."""


class InvalidArgument(CacheError, ValueError):
    """The request itself is wrong: a bad key, ticket, command or payload."""


class ObjectNotFound(CacheError, KeyError):
    """No object (or namespace) of that name."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else "object not found"


class VersionConflict(CacheError):
    """A conditional write named a version that is not the current one."""

    def __init__(self, key: str, expected: int, current: int) -> None:
        super().__init__(f"object {key!r} is at version {current}, not {expected}")
        self.key, self.expected, self.current = key, expected, current


class LimitExceeded(CacheError):
    """A configured limit (object size, deltas per object) would be passed."""


class ObjectTooLarge(LimitExceeded):
    """A body is larger than the configured maximum object size."""


class KeyTooLong(InvalidArgument, LimitExceeded):
    """A new key is longer than `cache.limits.max_key_bytes`: a bad argument
    (400 / INVALID_ARGUMENT) that is also a limit."""


class StorageError(CacheError):
    """The disk failed us (full, read-only, damaged); earlier data is intact."""


class InsufficientStorage(StorageError):
    """A write cannot fit under `cache.capacity`: what is left is pinned, or
    held by uploads in progress. Nothing was stored (UNAVAILABLE / HTTP 507)."""


class AccessDenied(CacheError):
    """The caller may not do this (cache.auth). The message names the
    operation and the key, and the token's name at most, never a token."""


class Unauthenticated(AccessDenied):
    """No token where one is needed, or a token nobody issued
    (UNAUTHENTICATED / HTTP 401). `invalid_token`: one was sent, unknown."""

    def __init__(self, message: str, *, invalid_token: bool = False) -> None:
        super().__init__(message)
        self.invalid_token = invalid_token


class PermissionDenied(AccessDenied):
    """A known token whose scopes do not cover the key (PERMISSION_DENIED / HTTP 403)."""

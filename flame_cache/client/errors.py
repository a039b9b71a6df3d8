"""What can go wrong in a call, as types a program can catch (SPEC 4.5, 12).

Every failed call raises a `ClientError` that names what it was about (a
key, a namespace, a prefix) and why, in one line: the gRPC status becomes
one of the types below, with the server's own message, cleaned of what
gRPC and pyarrow append to it (debug contexts, server tracebacks).
`NotFound` is also a KeyError and `InvalidArgument` a ValueError, as
flamepy raises them for the same codes.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator

import pyarrow as pa
import pyarrow.flight as flight

# What pyarrow and gRPC add after the server's message.
_NOISE = re.compile(r"\.? *(Detail: |gRPC client debug context:|Client context:).*", re.S)
_PREFIX = re.compile(r"^Flight returned \w+ error, with message: ")


class ClientError(Exception):
    """A call that failed: `subject` is the key (or selector) it was
    about, `reason` the cause, in one line."""

    def __init__(self, subject: str, reason: str) -> None:
        super().__init__(subject, reason)
        self.subject, self.reason = subject, reason

    def __str__(self) -> str:
        return f"{self.subject}: {self.reason}" if self.subject else self.reason


class NotFound(ClientError, KeyError):
    """NOT_FOUND: no such object (the reason may say it was evicted or expired)."""


class InvalidArgument(ClientError, ValueError):
    """INVALID_ARGUMENT: a bad key, or a request the server refused as malformed or too large."""


class Unauthenticated(ClientError):
    """UNAUTHENTICATED: no token, or one the server does not know."""


class PermissionDenied(ClientError):
    """PERMISSION_DENIED: the token's scopes do not cover the key."""


class Unavailable(ClientError):
    """UNAVAILABLE or DEADLINE_EXCEEDED: the server cannot be reached, is
    stopping, or its storage failed; trying again later may work."""


class ChecksumMismatch(ClientError):
    """The bytes received do not match the crc32c the server stored for them."""


class SettingsError(ClientError):
    """The endpoint, CA or token could not be resolved (a bad flame.yaml, an unreadable file)."""


_BY_TYPE: tuple[tuple[type[BaseException], type[ClientError]], ...] = (
    (pa.ArrowKeyError, NotFound),
    (flight.FlightUnauthenticatedError, Unauthenticated),
    (flight.FlightUnauthorizedError, PermissionDenied),
    (flight.FlightUnavailableError, Unavailable),
    (flight.FlightTimedOutError, Unavailable),
    (pa.ArrowInvalid, InvalidArgument),
)


def message_of(exc: BaseException) -> str:
    """The server's message of a pyarrow error, on one line."""
    text = str(exc.args[0]) if isinstance(exc, KeyError) and exc.args else str(exc)
    text = _PREFIX.sub("", _NOISE.sub("", text)).strip()
    return " ".join(text.split()) or type(exc).__name__


def translate(exc: BaseException, subject: str, endpoint: str) -> ClientError:
    """The ClientError for a pyarrow/gRPC error raised by a call about `subject`."""
    for arrow_type, error_type in _BY_TYPE:
        if isinstance(exc, arrow_type):
            reason = message_of(exc)
            if error_type is Unavailable:
                reason = f"cannot reach the cache at {endpoint}: {reason}"
            return error_type(subject, reason)
    return ClientError(subject, message_of(exc))


@contextlib.contextmanager
def translated(subject: str, endpoint: str) -> Iterator[None]:
    """Raise pyarrow's errors inside the block as ClientErrors about `subject`."""
    try:
        yield
    except (pa.ArrowException, flight.FlightError) as exc:
        raise translate(exc, subject, endpoint) from exc

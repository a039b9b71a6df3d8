"""What tickets, descriptors and criteria say, parsed once at the edge.

Tickets (SPEC 4.2), all UTF-8:

    <key>                      full object
    <key>:<client_version>     full, patches only, or not modified
    chunked:<key>[:<version>]  as above, but a large base arrives as several
                               `base` rows of at most CHUNK_BYTES each, so
                               objects over 2 GiB fit in gRPC messages

`:` can never be part of a key, so the forms cannot be confused.

Every field is bounded by its length before it is decoded: a client may send
a gigabyte where a key belongs, and decoding it would cost several times that.
The bound, MAX_FIELD_BYTES, is far above the longest valid field (a ticket
is at most 796 bytes), so a field that is merely wrong gets the grammar's own
message, naming what is wrong with it.
"""

from __future__ import annotations

import functools

from collections.abc import Callable
from dataclasses import dataclass

import pyarrow.flight as flight

from flame_cache.store import InvalidArgument
from flame_cache.store.keys import Namespace, ObjectKey, shorten
from flame_cache.store.objects import MAX_VERSION
from flame_cache.store.wire import CHUNK_BYTES, CHUNKED_TICKET

CHUNKED_PREFIX = CHUNKED_TICKET
PATCH_PREFIX = "PATCH:"
MAX_FIELD_BYTES = 64 * 1024  # a ticket, command, path, criteria or action name


CACHED_TICKET_BYTES = 1024  # a key is at most 767 bytes; a longer ticket (zeros before its version) is parsed each time


@dataclass(frozen=True, slots=True)
class GetRequest:
    key: ObjectKey
    client_version: int
    chunk_size: int | None  # the chunked form's base rows; None: the compatible form


@dataclass(frozen=True, slots=True)
class PutRequest:
    """`target` is a key or namespace (put) or a key (patch), as sent."""

    target: str
    patch: bool

    def resolve(self, exists: Callable[[ObjectKey], bool]) -> ObjectKey | Namespace:
        """What DoPut writes (SPEC 4.1): a PATH naming an existing object
        replaces it; of 1 or 2 segments naming none, a new object in that
        namespace; of 3, exactly that key. `exists` asks the store."""
        segments = self.target.count("/") + 1
        if self.patch or segments == 3:
            return ObjectKey.parse(self.target)
        if segments == 2:
            key = ObjectKey.parse(self.target)
            if exists(key):
                return key
        if segments > 3:
            raise InvalidArgument(
                f"{shorten(self.target)} has {segments} segments; expected a namespace ('session', 'app/session') "
                "or a key ('app/session/object')"
            )
        return Namespace.parse(self.target)


def check_length(size: int, what: str, limit: int = MAX_FIELD_BYTES) -> None:
    if size > limit:
        raise InvalidArgument(f"{what} is {size} bytes, far longer than it can be (read at most {limit} bytes)")


def decode_utf8(raw: bytes | memoryview, what: str, limit: int = MAX_FIELD_BYTES) -> str:
    """`raw` as text, if at most `limit` bytes of UTF-8; else InvalidArgument,
    raised before anything is decoded or copied."""
    check_length(len(raw), what, limit)
    try:
        return bytes(raw).decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidArgument(f"{what} is not valid UTF-8: {bytes(raw[:64])!r}") from None


def parse_ticket(raw: bytes) -> GetRequest:
    """A DoGet's ticket, `[chunked:]<key>[:<client version>]`; InvalidArgument
    naming what is wrong. Clients ask for the same tickets again and again, so
    the last short ones parsed are kept (a refusal is not)."""
    if isinstance(raw, bytes) and len(raw) <= CACHED_TICKET_BYTES:
        return _cached_ticket(raw)
    return _ticket(raw)


def _ticket(raw: bytes) -> GetRequest:
    text = decode_utf8(raw, "ticket")
    chunk_size = None
    if text.startswith(CHUNKED_PREFIX):
        text, chunk_size = text[len(CHUNKED_PREFIX) :], CHUNK_BYTES
    key, sep, version = text.partition(":")
    if sep and not (version.isascii() and version.isdigit()):
        raise InvalidArgument(
            f"ticket {shorten(text)}: the client version after ':' must be decimal digits, got {shorten(version)}"
        )
    digits = version.lstrip("0") or "0"
    if len(digits) > len(str(MAX_VERSION)) or int(digits) > MAX_VERSION:  # int() refuses 5000 digits
        raise InvalidArgument(
            f"ticket {shorten(text)}: the client version {shorten(version)} is over the largest version, 2**64 - 1"
        )
    return GetRequest(ObjectKey.parse(key), int(digits), chunk_size)


_cached_ticket = functools.lru_cache(maxsize=4096)(_ticket)


def parse_descriptor(descriptor: flight.FlightDescriptor) -> PutRequest:
    if descriptor.descriptor_type == flight.DescriptorType.PATH:
        return PutRequest(path_of(descriptor), patch=False)
    if descriptor.descriptor_type == flight.DescriptorType.CMD:
        command = decode_utf8(descriptor.command, "command")
        if not command.startswith(PATCH_PREFIX):
            raise InvalidArgument(f"unknown command {command[:64]!r}; the only command is 'PATCH:<key>'")
        key = command[len(PATCH_PREFIX) :]
        ObjectKey.parse(key)
        return PutRequest(key, patch=True)
    raise InvalidArgument("the descriptor must be a PATH or a CMD")


def path_of(descriptor: flight.FlightDescriptor) -> str:
    """A PATH descriptor's elements joined with '/'."""
    if descriptor.descriptor_type != flight.DescriptorType.PATH:
        raise InvalidArgument("expected a PATH descriptor naming an object key")
    raw = [p if isinstance(p, bytes) else p.encode() for p in descriptor.path]
    check_length(sum(map(len, raw)), "the descriptor path")
    parts = [decode_utf8(p, "descriptor path") for p in raw]
    if not parts:
        raise InvalidArgument("the descriptor path is empty")
    return "/".join(parts)

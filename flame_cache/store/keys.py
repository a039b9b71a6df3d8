"""The key grammar of SPEC 2: object keys, namespaces and prefixes.

An object key has 2 segments (`session/object`, the seed's form) or 3
(`app/session/object`, flamepy 0.6). A namespace has 1 or 2. Segments map
one-to-one onto directory and file names, so the grammar is what keeps a key
from escaping the storage root or naming something we could not read back.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from flame_cache.store.errors import InvalidArgument

MAX_SEGMENT_BYTES = 255
WILDCARD = "*"
_FORBIDDEN = frozenset("/\\:\0")


def check_segment(segment: str, *, what: str = "segment") -> str:
    """Return `segment` if it may be part of a key, else raise InvalidArgument."""
    if not segment:
        raise InvalidArgument(f"empty {what}: keys are 'session/object' or 'app/session/object'")
    if segment in (".", ".."):
        raise InvalidArgument(f"{what} {segment!r} is not allowed")
    if len(segment.encode("utf-8", "surrogatepass")) > MAX_SEGMENT_BYTES:
        raise InvalidArgument(f"{what} {segment[:32]!r}... is longer than {MAX_SEGMENT_BYTES} bytes")
    bad = next((c for c in segment if c in _FORBIDDEN or ord(c) < 0x20 or ord(c) == 0x7F), None)
    if bad is not None:
        raise InvalidArgument(f"{what} {segment!r} contains the forbidden character {bad!r}")
    if segment == WILDCARD:
        raise InvalidArgument(f"{what} '*' is only allowed as 'app/*' in a delete or listing")
    try:
        segment.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidArgument(f"{what} {segment!r} is not valid UTF-8") from None
    return segment


def _split(text: str, what: str) -> list[str]:
    if not isinstance(text, str):
        raise InvalidArgument(f"{what} must be text, got {type(text).__name__}")
    return text.split("/")


@dataclass(frozen=True, slots=True)
class ObjectKey:
    """A validated `[app/]session/object` key."""

    segments: tuple[str, ...]

    @classmethod
    def parse(cls, text: str) -> ObjectKey:
        parts = _split(text, "object key")
        if len(parts) not in (2, 3):
            raise InvalidArgument(
                f"object key {text!r} has {len(parts)} segment(s); expected 'session/object' "
                "or 'app/session/object'"
            )
        for part in parts:
            check_segment(part)
        return cls(tuple(parts))

    @property
    def namespace(self) -> Namespace:
        return Namespace(self.segments[:-1])

    @property
    def object_id(self) -> str:
        return self.segments[-1]

    def __str__(self) -> str:
        return "/".join(self.segments)


@dataclass(frozen=True, slots=True)
class Namespace:
    """A validated `session` or `app/session`: where new objects are created."""

    segments: tuple[str, ...]

    @classmethod
    def parse(cls, text: str) -> Namespace:
        parts = _split(text, "namespace")
        if len(parts) not in (1, 2):
            raise InvalidArgument(f"namespace {text!r} must be 'session' or 'app/session'")
        for part in parts:
            check_segment(part, what="namespace segment")
        return cls(tuple(parts))

    def new_key(self) -> ObjectKey:
        return ObjectKey((*self.segments, str(uuid.uuid4())))

    def __str__(self) -> str:
        return "/".join(self.segments)


@dataclass(frozen=True, slots=True)
class Selector:
    """What a delete or listing covers: everything at or below `segments`.

    Parsed from an object key, a namespace, `app/*` (every session of app), or
    the empty string (everything; listings only).
    """

    segments: tuple[str, ...]

    @classmethod
    def parse(cls, text: str, *, allow_all: bool = False) -> Selector:
        text = text.strip()
        if text == "":
            if allow_all:
                return cls(())
            raise InvalidArgument("empty selector: name a key, a namespace or 'app/*'")
        parts = _split(text, "selector")
        if len(parts) == 2 and parts[1] == WILDCARD:
            parts = parts[:1]
        elif len(parts) > 3:
            raise InvalidArgument(f"{text!r} has {len(parts)} segments; at most 3 are allowed")
        for part in parts:
            check_segment(part)
        return cls(tuple(parts))

    def covers(self, key: ObjectKey) -> bool:
        n = len(self.segments)
        return key.segments[:n] == self.segments

    def __str__(self) -> str:
        return "/".join(self.segments)

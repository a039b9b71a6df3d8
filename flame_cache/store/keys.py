"""The key grammar of SPEC 2: object keys, namespaces and prefixes.

An object key has 2 segments (`session/object`, the seed's form) or 3
(`app/session/object`, flamepy 0.6). A namespace has 1 or 2. Segments map
one-to-one onto directory and file names, so the grammar is what keeps a key
from escaping the storage root or naming something we could not read back.

It also keeps the mapping injective. A key's last segment (its object id)
names files (`<id>.arrow`, the folder `<id>.deltas/`); every other segment
names a folder (`<seg>/`). So, by construction:
- no segment begins with '.': the server's own names (temporary files, the
  quarantine) all do, so no key can be one of them;
- a folder segment never ends in '.arrow' or '.deltas': it would be the
  file, or the patches folder, of the object one level up;
- an object id is at most 248 bytes, so `<id>.deltas` fits a file name.
Two keys, or a key and a name of the server's, never share a path.
"""

from __future__ import annotations

import functools

import re
import unicodedata
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

from flame_cache.store.errors import InvalidArgument

MAX_SEGMENT_BYTES = 255  # a file name's limit on Linux file systems
OBJECT_SUFFIX = ".arrow"  # <id>.arrow: an object's base
DELTAS_SUFFIX = ".deltas"  # <id>.deltas/: its patches
RESERVED_PREFIX = "."  # every name the server makes for itself begins with it
MAX_OBJECT_ID_BYTES = MAX_SEGMENT_BYTES - len(DELTAS_SUFFIX)
WILDCARD = "*"
_FORBIDDEN = frozenset("/\\:\0")
# Characters that make a key print as another one (Trojan-source tricks):
# bidirectional embeddings, overrides and isolates, and the marks.
_BIDI_CONTROLS = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
# Control characters (C0, DEL, C1), surrogates, and line/paragraph separators.
_FORBIDDEN_CATEGORIES = frozenset({"Cc", "Cs", "Zl", "Zp"})


def _forbidden(char: str) -> bool:
    return char in _FORBIDDEN or char in _BIDI_CONTROLS or unicodedata.category(char) in _FORBIDDEN_CATEGORIES


# Printable ASCII but for '/', '\\' and ':': the usual segment, checked without a per-character loop.
_PLAIN_SEGMENT = re.compile(r"[\x20-\x2e\x30-\x39\x3b-\x5b\x5d-\x7e]{1,%d}" % MAX_SEGMENT_BYTES)


def check_segment(segment: str, *, what: str = "segment") -> str:
    """Return `segment` if it may be part of a key, else raise InvalidArgument."""
    if isinstance(segment, str) and _PLAIN_SEGMENT.fullmatch(segment) and segment[0] != RESERVED_PREFIX:
        return segment if segment != WILDCARD else _refuse_wildcard(what)
    if not segment:
        raise InvalidArgument(f"empty {what}: keys are 'session/object' or 'app/session/object'")
    if segment in (".", ".."):
        raise InvalidArgument(f"{what} {segment!r} is not allowed")
    if len(segment.encode("utf-8", "surrogatepass")) > MAX_SEGMENT_BYTES:
        raise InvalidArgument(f"{what} {segment[:32]!r}... is longer than {MAX_SEGMENT_BYTES} bytes")
    bad = next((c for c in segment if _forbidden(c)), None)
    if bad is not None:
        name = unicodedata.name(bad, "")
        raise InvalidArgument(
            f"{what} {segment!r} contains the forbidden character {bad!r}{f' ({name})' if name else ''}"
        )
    if segment == WILDCARD:
        _refuse_wildcard(what)
    try:
        segment.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidArgument(f"{what} {segment!r} is not valid UTF-8") from None
    if segment.startswith(RESERVED_PREFIX):
        raise InvalidArgument(
            f"{what} {shorten(segment, 64)} begins with '.', which is reserved for the server's own files "
            "(temporary files, the quarantine)"
        )
    return segment


def _refuse_wildcard(what: str) -> str:
    raise InvalidArgument(f"{what} '*' is only allowed as 'app/*' in a delete or listing")


def check_folder_segment(segment: str, *, what: str = "segment") -> str:
    """`check_segment` for a segment that names a folder: a namespace's, or
    any but a key's last. Raises InvalidArgument naming the segment and rule."""
    check_segment(segment, what=what)
    for suffix, role in ((OBJECT_SUFFIX, "an object's file"), (DELTAS_SUFFIX, "an object's patches folder")):
        if segment.endswith(suffix):
            raise InvalidArgument(
                f"{what} {shorten(segment, 64)} names a folder and ends in {suffix!r}, which is reserved for "
                f"{role}; only an object id (a key's last segment) may end so"
            )
    return segment


def check_object_id(segment: str, *, what: str = "object id") -> str:
    """`check_segment` for a key's last segment, whose files add a suffix."""
    check_segment(segment, what=what)
    if len(segment.encode("utf-8")) > MAX_OBJECT_ID_BYTES:
        raise InvalidArgument(
            f"{what} {shorten(segment, 64)} is longer than {MAX_OBJECT_ID_BYTES} bytes: its file names "
            f"add {DELTAS_SUFFIX!r} and must fit in {MAX_SEGMENT_BYTES} bytes"
        )
    return segment


def is_folder_segment(name: str) -> bool:
    """True if `name` may be a folder of the storage layout (start-up scan)."""
    return _holds(check_folder_segment, name)


def is_object_id(name: str) -> bool:
    """True if `name` may be an object id (start-up scan)."""
    return _holds(check_object_id, name)


def _holds(check: Callable[[str], str], name: str) -> bool:
    try:
        check(name)
    except InvalidArgument:
        return False
    return True


def shorten(text: str, limit: int = 200) -> str:
    """`text` quoted for a message, cut to `limit` characters: a hostile
    10 kB key must not come back as a 10 kB error."""
    return repr(text) if len(text) <= limit else f"{text[:limit]!r}... ({len(text)} characters)"


def _segments(text: str, what: str, counts: tuple[int, ...], shape: str, last: Callable[..., str]) -> tuple[str, ...]:
    """The segments of `text`: all but the last name folders, and `last`
    checks the last for its role (object id, folder, or either)."""
    if not isinstance(text, str):
        raise InvalidArgument(f"{what} must be text, got {type(text).__name__}")
    parts = text.split("/")
    if len(parts) not in counts:
        raise InvalidArgument(f"{what} {shorten(text)} has {len(parts)} segment(s); expected {shape}")
    for part in parts[:-1]:
        check_folder_segment(part, what=f"{what} segment")
    last(parts[-1], what=f"{what} segment")
    return tuple(parts)


class _Path:
    __slots__ = ()
    segments: tuple[str, ...]

    def __str__(self) -> str:
        return "/".join(self.segments)


@dataclass(frozen=True, slots=True)
class ObjectKey(_Path):
    """A validated `[app/]session/object` key (parse one, or make one from
    segments that are known to be valid)."""

    segments: tuple[str, ...]
    text: str = field(default="", compare=False, repr=False)  # "/".join(segments), made once

    def __post_init__(self) -> None:
        if not self.text:
            object.__setattr__(self, "text", "/".join(self.segments))

    def __str__(self) -> str:
        return self.text

    @classmethod
    def parse(cls, text: str | ObjectKey) -> ObjectKey:
        """`text` as a key (an ObjectKey is already one); InvalidArgument
        naming the bad segment and the rule."""
        if isinstance(text, ObjectKey):
            return text
        return _parse_key(text) if isinstance(text, str) else _parse_key.__wrapped__(text)

    @property
    def object_id(self) -> str:
        return self.segments[-1]


@functools.lru_cache(maxsize=4096)
def _parse_key(text: str) -> ObjectKey:
    """Keys are checked once per text while in use: an ObjectKey is immutable,
    and a failed check raises (never cached)."""
    return ObjectKey(_segments(text, "object key", (2, 3), "'session/object' or 'app/session/object'", check_object_id), text)


@dataclass(frozen=True, slots=True)
class Namespace(_Path):
    """A validated `session` or `app/session`: where new objects are created."""

    segments: tuple[str, ...]

    @classmethod
    def parse(cls, text: str) -> Namespace:
        return cls(_segments(text, "namespace", (1, 2), "'session' or 'app/session'", check_folder_segment))

    def new_key(self) -> ObjectKey:
        return ObjectKey((*self.segments, str(uuid.uuid4())))


@dataclass(frozen=True, slots=True)
class Selector(_Path):
    """What a delete or listing covers: everything at or below `segments`.

    Parsed from an object key, a namespace, `app/*` (every session of app), or
    the empty string (everything; listings only). Its last segment may be
    an object id or a folder, so only the others are held to the folder rules.
    """

    segments: tuple[str, ...]

    @classmethod
    def parse(cls, text: str, *, allow_all: bool = False) -> Selector:
        if isinstance(text, str) and text.strip() == "" and allow_all:
            return cls(())
        if isinstance(text, str) and text.endswith("/" + WILDCARD) and text.count("/") == 1:
            text = text[: -len(WILDCARD) - 1]
        return cls(_segments(text, "selector", (1, 2, 3), "a key, a namespace or 'app/*'", check_segment))

    def covers(self, key: ObjectKey | tuple[str, ...]) -> bool:
        """True for a key (or a key's segments) at or below this selector."""
        segments = key if isinstance(key, tuple) else key.segments
        return segments[: len(self.segments)] == self.segments

    @property
    def names_folder(self) -> bool:
        """True if the selector can name a folder (a namespace or `app/*`):
        what lies below it is then covered too."""
        return len(self.segments) < 3 and all(map(is_folder_segment, self.segments))

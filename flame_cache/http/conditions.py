"""HTTP validators and ranges: ETag = version, If-Match, If-None-Match, Range.

An object's ETag is its version, quoted: `"7"`. Versions only grow while a
key exists, so a version names one whole state of the object.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from flame_cache.store import InvalidArgument
from flame_cache.store.keys import shorten
from flame_cache.store.objects import MAX_VERSION

ANY = "*"
_RANGE = re.compile(r"bytes=(\d*)-(\d*)")
_ETAG = re.compile(r'(W/)?"([^"]*)"')
# One or more tags separated by commas; empty list elements are allowed (RFC 9110 5.6.1).
_ETAG_LIST = re.compile(r'[\s,]*(?:W/)?"[^"]*"(?:\s*,[\s,]*(?:W/)?"[^"]*")*[\s,]*')


def etag(version: int) -> str:
    return f'"{version}"'


def parse_etags(header: str | None, name: str, *, strong: bool = False) -> list[int] | str | None:
    """`*`, the versions listed, or None if the header is absent.

    RFC 9110 13.1: If-None-Match compares weakly (`W/"7"` names version 7);
    If-Match and If-Range compare strongly (`strong=True`): a weak tag never
    matches there, so it is dropped. Tags that are not versions match
    nothing. Raises InvalidArgument (400) naming header `name` if the header
    is not `*` or a list of quoted tags (`"7", W/"8"`), rather than guess."""
    if header is None:
        return None
    if header.strip() == ANY:
        return ANY
    if _ETAG_LIST.fullmatch(header) is None:
        raise InvalidArgument(
            f"{name} {shorten(header, 100)} is not '*' or a list of quoted ETags; "
            'ETags are versions in double quotes, as in "7"'
        )
    tags = [
        _number(tag)
        for weak, tag in _ETAG.findall(header)
        if not (strong and weak) and tag.isascii() and tag.isdigit()
    ]
    return [tag for tag in tags if tag <= MAX_VERSION]


def has_weak_tag(header: str | None) -> bool:
    """The header lists a weak tag (`W/"7"`), which If-Match never matches."""
    return header is not None and any(weak for weak, _ in _ETAG.findall(header))


def if_range_holds(header: str, version: int) -> bool:
    """If-Range names the current version (an HTTP-date, or anything else,
    does not: then the whole body is sent, as RFC 9110 says)."""
    try:
        return matches(parse_etags(header, "If-Range", strong=True), version)
    except InvalidArgument:
        return False


def matches(tags: list[int] | str | None, version: int) -> bool:
    """True if the object at `version` (0: absent) matches the tags."""
    if tags is None:
        return False
    if tags == ANY:
        return version > 0
    return version in tags


@dataclass(frozen=True, slots=True)
class ByteRange:
    start: int
    end: int  # exclusive

    @property
    def length(self) -> int:
        return self.end - self.start

    def content_range(self, size: int) -> str:
        return f"bytes {self.start}-{self.end - 1}/{size}"


class Unsatisfiable(ValueError):
    """The range lies wholly past the end: 416."""


def parse_range(header: str | None, size: int) -> ByteRange | None:
    """One `bytes=` range of an object of `size` bytes.

    None means send everything: no header, a malformed one, or several
    ranges (RFC 9110 lets a server ignore Range). Raises Unsatisfiable.
    """
    if header is None:
        return None
    match = _RANGE.fullmatch(header.strip())
    if match is None:
        return None
    first, last = match.groups()
    if first == "" and last == "":
        return None
    if size == 0:
        raise Unsatisfiable(header)  # no byte of an empty object can be named
    if first == "":  # the last N bytes
        length = _number(last)
        if length == 0:
            raise Unsatisfiable(header)
        return ByteRange(max(0, size - length), size)
    start = _number(first)
    end = size if last == "" else _number(last) + 1
    if last != "" and end <= start:
        return None  # invalid: ignored
    if start >= size:
        raise Unsatisfiable(header)
    return ByteRange(start, min(end, size))


def _number(digits: str) -> int:
    """Decimal digits as an int; past 20 digits (beyond any version or size;
    int() refuses thousands) as 2**64, which matches and fits nothing."""
    digits = digits.lstrip("0") or "0"
    return int(digits) if len(digits) <= 20 else 2**64

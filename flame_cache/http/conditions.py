"""HTTP validators and ranges: ETag = version, If-Match, If-None-Match, Range.

An object's ETag is its version, quoted: `"7"`. Versions only grow while a
key exists, so a version names one whole state of the object.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

ANY = "*"
_RANGE = re.compile(r"bytes=(\d*)-(\d*)")


def etag(version: int) -> str:
    return f'"{version}"'


def parse_etags(header: str | None) -> list[int] | str | None:
    """`*`, the versions listed (weak `W/` tags compare by value), or None
    if the header is absent. Tags that are not versions match nothing."""
    if header is None:
        return None
    if header.strip() == ANY:
        return ANY
    versions = []
    for tag in header.split(","):
        tag = tag.strip()
        tag = tag[2:] if tag.startswith("W/") else tag
        tag = tag.strip('"')
        if tag.isascii() and tag.isdigit():
            versions.append(int(tag))
    return versions


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
        length = int(last)
        if length == 0:
            raise Unsatisfiable(header)
        return ByteRange(max(0, size - length), size)
    start = int(first)
    end = size if last == "" else int(last) + 1
    if last != "" and end <= start:
        return None  # invalid: ignored
    if start >= size:
        raise Unsatisfiable(header)
    return ByteRange(start, min(end, size))

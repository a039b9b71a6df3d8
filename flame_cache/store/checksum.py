"""crc32c, the checksum of an object's bytes (SPEC 8, "Integrity").

Every opaque base and delta we write carries the crc32c of its data (the
bytes of its data cells, joined in order: the object's bytes), computed as
they arrive and kept in the file itself, in the schema metadata under
`flame.cache.crc32c` as 8 hex digits. Fixed width on purpose: the frame
before a one-row file's data cell is then the same length for every
checksum, so a streamed upload can be written at its final offset before its
checksum is known. Files without the key (upstream's, native tables) carry
no checksum and are read as before.

On the wire (HTTP) the checksum is `X-Flame-Checksum: crc32c=<base64>`, the
base64 of the 4-byte big-endian value, as GCS and S3 send it.

The library is ICRAR's `crc32c`: hardware instructions (SSE 4.2, ARMv8) with
a software fallback, one call that extends a running value (so chunks are
summed as they arrive), and it lets go of the GIL from 32 KiB, so a large
checksum does not stall the server's other threads.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping

from crc32c import crc32c as _crc32c

from flame_cache.store.errors import InvalidArgument

METADATA_KEY = b"flame.cache.crc32c"
HEADER = "X-Flame-Checksum"
MISMATCH = "its checksum does not match"  # the reason clients are told
_HEX = re.compile(rb"[0-9a-f]{8}")
_HEADER_VALUE = re.compile(r"\s*crc32c\s*=\s*([A-Za-z0-9+/]{6}==)\s*")


def extend(crc: int, data: object) -> int:
    """The crc32c of the bytes summed into `crc`, followed by `data` (any
    buffer: bytes, memoryview, pa.Buffer)."""
    return _crc32c(data, crc)


def of(data: object) -> int:
    return _crc32c(data, 0)


def to_metadata(crc: int) -> bytes:
    return b"%08x" % crc


def from_metadata(metadata: Mapping[bytes, bytes] | None) -> int | None:
    """The checksum a file's schema metadata carries; None if it carries
    none. A value that is not 8 hex digits is damage (ChecksumMismatch)."""
    raw = (metadata or {}).get(METADATA_KEY)
    if raw is None:
        return None
    if _HEX.fullmatch(raw) is None:
        raise ChecksumMismatch(f"its checksum field is not 8 hex digits ({raw[:20]!r})")
    return int(raw, 16)


def header_value(crc: int) -> str:
    return "crc32c=" + base64.b64encode(crc.to_bytes(4, "big")).decode()


def parse_header(text: str) -> int:
    """The crc32c an `X-Flame-Checksum` header names; InvalidArgument if it
    is not `crc32c=<base64 of 4 bytes>`."""
    match = _HEADER_VALUE.fullmatch(text)
    if match is not None:
        try:
            return int.from_bytes(base64.b64decode(match.group(1), validate=True), "big")
        except binascii.Error:
            pass
    raise InvalidArgument(
        f"{HEADER} {text[:80]!r} is not 'crc32c=<base64>' (the base64 of the 4-byte big-endian crc32c, as 'crc32c=AAAAAA==')"
    )


def check_upload(target: str, expected: int | None, actual: int) -> None:
    """Refuse a body whose checksum is not the one its client sent."""
    if expected is not None and expected != actual:
        raise InvalidArgument(
            f"the body for {target!r} does not match its {HEADER} ({header_value(expected)} sent, "
            f"{header_value(actual)} received); nothing was stored"
        )


class ChecksumMismatch(ValueError):
    """A stored file's data does not match the checksum it carries: damage,
    set aside like any other (`Store.set_aside`)."""

    reason = MISMATCH


def mismatch(what: str, stored: int, actual: int) -> ChecksumMismatch:
    return ChecksumMismatch(f"{what}: {MISMATCH} (crc32c {stored:08x} stored, {actual:08x} read)")

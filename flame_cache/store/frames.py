"""The frame of a one-row opaque file, from a template instead of pyarrow's writer.

Every base and delta we write is the same file: one row `version: uint64,
data: binary`, the crc32c in the schema metadata. pyarrow's IPC writer frames
it in 20-30 us (a record batch, a schema, a writer), a fifth of a small put.
Its bytes depend on three values only, each in fixed-width fields whose
places do not move (flatbuffer structs and vectors of fixed size; a field
is never left out for holding its default, as none of these can be 0): the
version (8 bytes in the body), the checksum (8 hex digits in the schema,
twice: in the schema message and in the footer) and the cell's size (the
offsets buffer's end, the data buffer's length, the body's length in the
message and in the footer, and the padding after the cell).

`Template` writes the file once with pyarrow, with marker values, finds each
field by its marker (each must be found exactly where expected, or the
template is refused), and then frames any cell of 1 byte to 2 GiB - 1 by
copying and patching. `template()` checks the result against pyarrow's own
writer for sizes around every padding, once per process, and answers None if
anything differs (a pyarrow whose writer lays files out otherwise): callers
then use pyarrow's writer. tests/test_frames.py checks it for random sizes.
"""

from __future__ import annotations

import functools
import struct

import pyarrow as pa

from flame_cache.store import checksum
from flame_cache.store.fileformat import write_opaque
from flame_cache.store.splice import FramingFile, Splice

_VERSION = 0x0807060504030201
_CRC = 0xA1B2C3D4
_SIZE = 0x00ABCDE9  # odd: the padding after it is not 0
_ALIGN = 8  # pyarrow's default IPC alignment of body buffers
LARGEST = 2**31 - 1  # from 2 GiB the cell is large_binary: another layout


def _padded(size: int) -> int:
    return -(-size // _ALIGN) * _ALIGN


def pyarrow_frame(version: int, size: int, crc: int) -> tuple[bytes, bytes]:
    """What pyarrow's writer puts before and after a `size`-byte cell."""
    splice = Splice(size)
    sink = FramingFile(splice)
    write_opaque(sink, version, splice.buffer, crc)
    splice.check_used()
    return sink.head, sink.tail


def _places(data: bytes, marker: bytes, count: int, what: str) -> list[int]:
    found, at = [], data.find(marker)
    while at != -1:
        found.append(at)
        at = data.find(marker, at + 1)
    if len(found) != count:
        raise ValueError(f"the frame holds {what} {len(found)} times, not {count}")
    return found


class Template:
    """The frame of one opaque file, with the places of its variable fields."""

    def __init__(self) -> None:
        head, tail = pyarrow_frame(_VERSION, _SIZE, _CRC)
        padding = _padded(_SIZE) - _SIZE
        if tail[:padding] != bytes(padding):
            raise ValueError("the cell is not followed by zero padding")
        self.head, self.tail = bytearray(head), bytearray(tail[padding:])
        q = struct.Struct("<q")
        self.version = _places(head, struct.pack("<Q", _VERSION), 1, "the version")
        self.crc_head = _places(head, checksum.to_metadata(_CRC), 1, "the checksum")
        self.crc_tail = _places(self.tail, checksum.to_metadata(_CRC), 1, "the checksum")
        self.end = _places(head, struct.pack("<i", _SIZE), 2, "the cell's end")  # offsets, and the buffer's length
        body = len(head) - self._body_start(head) + _padded(_SIZE)
        self.body_head = _places(head, q.pack(body), 1, "the body's length")
        self.body_tail = _places(self.tail, q.pack(body), 1, "the body's length")
        self.body_extra = body - _padded(_SIZE)

    @staticmethod
    def _body_start(head: bytes) -> int:
        """Where the record batch's body begins: after the version cell and the offsets."""
        return len(head) - 8 - 8  # version (8 bytes), offsets [0, size] (2 x int32)

    def frame(self, version: int, size: int, crc: int) -> tuple[bytes, bytes]:
        """Before and after a cell of `size` bytes (1 to LARGEST)."""
        head, tail = bytearray(self.head), bytearray(self.tail)
        struct.pack_into("<Q", head, self.version[0], version)
        hex_crc = checksum.to_metadata(crc)
        head[self.crc_head[0] : self.crc_head[0] + 8] = hex_crc
        tail[self.crc_tail[0] : self.crc_tail[0] + 8] = hex_crc
        for at in self.end:
            struct.pack_into("<i", head, at, size)
        body = self.body_extra + _padded(size)
        struct.pack_into("<q", head, self.body_head[0], body)
        struct.pack_into("<q", tail, self.body_tail[0], body)
        return bytes(head), bytes(_padded(size) - size) + bytes(tail)


@functools.cache
def template() -> Template | None:
    """The template, if it frames files exactly as pyarrow does (checked once)."""
    try:
        made = Template()
    except ValueError:
        return None
    for size in (1, 2, 7, 8, 9, 15, 16, 17, 1000, 4099, 65536, 1 << 20):
        for version, crc in ((1, 0), (2**64 - 1, 0xFFFFFFFF), (12345, 0x1234ABCD)):
            if made.frame(version, size, crc) != pyarrow_frame(version, size, crc):
                return None
    return made


def opaque_frame(version: int, size: int, crc: int) -> tuple[bytes, bytes]:
    """What a one-row opaque file holds before and after its `size`-byte data
    cell (size > 0, crc32c `crc`): so a cell written first can be framed once
    complete."""
    made = template() if size <= LARGEST else None
    if made is None:
        return pyarrow_frame(version, size, crc)
    return made.frame(version, size, crc)


def file_pieces(version: int, data: pa.Buffer, crc: int) -> list[object]:
    """The whole one-row file of `data`, in pieces to write together."""
    if data.size == 0:  # no cell to frame around
        sink = pa.BufferOutputStream()
        write_opaque(sink, version, data, crc)
        return [sink.getvalue()]
    head, tail = opaque_frame(version, data.size, crc)
    return [head, data, tail]


@functools.cache
def data_offset() -> int:
    """Where the data cell of a one-row opaque file under 2 GiB begins (the
    same for every version and checksum: both have a fixed width)."""
    return len(opaque_frame(1, 1, 0)[0])

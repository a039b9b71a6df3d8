"""Letting pyarrow's IPC writer frame a cell whose bytes are not one buffer.

An opaque object is stored and sent as ONE `data` cell (SPEC 4.2), but its
bytes rarely sit in memory as one buffer: an upload arrives in rows and is
written to disk as it comes, a large base is read from its file in chunks.
Joining them first would copy the whole object. Instead the batch is built
over a *stand-in*: an untouched, read-only anonymous mapping of the cell's
size, which costs no memory. The writer frames the batch (metadata, offsets,
padding, footer) exactly as it always does and hands each body buffer to its
sink; the sink recognises the stand-in by its address and deals with the
real bytes itself: `FramingFile` keeps only what comes before and after the
cell (an upload's file, whose cell is already written), the HTTP mirror's
download sink reads the cell from the file in its place. pyarrow writes
every buffer it is given whole, so the result is byte for byte what it would
have written for the real cell; `Splice.check_used` guards that promise.
"""

from __future__ import annotations

import mmap

import pyarrow as pa


def stand_in(size: int) -> pa.Buffer:
    """`size` bytes of address space that are never read (size > 0)."""
    return pa.py_buffer(mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE, prot=mmap.PROT_READ))


class Splice:
    """One stand-in buffer and the sink's promise to replace it."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.buffer = stand_in(size)
        self.used = False

    def matches(self, data: object) -> bool:
        """True if the writer is handing over the stand-in (whole, or it fails)."""
        if not (isinstance(data, pa.Buffer) and data.address == self.buffer.address):
            return False
        if data.size != self.size:
            raise RuntimeError("pyarrow wrote part of a stand-in buffer; refusing to write stand-in bytes")
        self.used = True
        return True

    def check_used(self) -> None:
        if not self.used:
            raise RuntimeError("pyarrow copied a stand-in buffer instead of passing it on; refusing to use it")


class FramingFile:
    """A sink for `pa.ipc.new_file` that keeps what pyarrow writes around the
    stand-in of `splice`: `head` before it, `tail` after (the cell itself is
    written elsewhere)."""

    closed = False

    def __init__(self, splice: Splice) -> None:
        self.splice = splice
        self._parts: tuple[list[bytes], list[bytes]] = ([], [])

    def write(self, data) -> int:  # noqa: ANN001 (bytes or pa.Buffer, as pyarrow passes them)
        if self.splice.matches(data):
            return self.splice.size
        self._parts[self.splice.used].append(bytes(data))
        return len(data)

    @property
    def head(self) -> bytes:
        return b"".join(self._parts[0])

    @property
    def tail(self) -> bytes:
        return b"".join(self._parts[1])

    def flush(self) -> None:
        pass

    def writable(self) -> bool:
        return True

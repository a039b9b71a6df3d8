"""What a write reads from: a path, a file object, bytes, or an iterator of bytes.

Each becomes `Chunks`: pieces of at most `chunk_size` bytes, made as they
are sent, and the total size where it is known in advance (a regular file,
bytes), which the upload declares so that a cut-off upload stores nothing.

Every piece is a buffer of its own, never one refilled: gRPC may still hold
a sent piece by reference after the write call returns.
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import BinaryIO, Union

import pyarrow as pa

Source = Union[str, os.PathLike, BinaryIO, bytes, bytearray, memoryview, Iterable[bytes]]


@dataclass(slots=True)
class Chunks:
    pieces: Iterator[pa.Buffer]
    size: int | None  # None: known only at the end


@contextlib.contextmanager
def open_source(source: Source, chunk_size: int, size: int | None = None) -> Iterator[Chunks]:
    """`source` as Chunks (a path is opened and closed here); `size`, if
    given, is what the caller promises an iterator yields. OSError if a
    path cannot be opened; TypeError for something that is none of these."""
    if isinstance(source, (str, os.PathLike)):
        with open(source, "rb") as file:
            yield Chunks(_file_pieces(file, chunk_size), _file_size(file))
    elif isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
        yield Chunks(_rechunked([data], chunk_size), len(data))
    elif hasattr(source, "read"):
        yield Chunks(_file_pieces(source, chunk_size), _file_size(source) if size is None else size)
    elif isinstance(source, Iterable):
        yield Chunks(_rechunked(source, chunk_size), size)
    else:
        raise TypeError(f"cannot upload a {type(source).__name__}: give a path, a binary file, bytes or an iterator of bytes")


def size_of(source: Source) -> int | None:
    """The bytes `source` holds, where that is known without reading it."""
    if isinstance(source, (str, os.PathLike)):
        try:
            info = os.stat(source)
        except OSError:
            return None
        return info.st_size if stat.S_ISREG(info.st_mode) else None
    if isinstance(source, (bytes, bytearray, memoryview)):
        return len(source)
    return _file_size(source) if hasattr(source, "read") else None


def _file_size(file: BinaryIO) -> int | None:
    """What is left of a regular file from its position; None for pipes,
    terminals, sockets and file objects without a descriptor."""
    try:
        info = os.fstat(file.fileno())
        if not stat.S_ISREG(info.st_mode):
            return None
        return max(0, info.st_size - file.tell())
    except (AttributeError, OSError, ValueError):  # io.UnsupportedOperation is both of the last two
        return None


def _file_pieces(file: BinaryIO, chunk_size: int) -> Iterator[pa.Buffer]:
    while True:
        piece = _read_piece(file, chunk_size)
        if piece.size:
            yield piece
        if piece.size < chunk_size:
            return


def _read_piece(file: BinaryIO, chunk_size: int) -> pa.Buffer:
    """Up to `chunk_size` bytes (fewer only at the end: a pipe's short reads
    are filled up), read into a fresh buffer where the file allows it."""
    readinto = getattr(file, "readinto", None)
    if readinto is None:
        return pa.py_buffer(_read_exactly(file, chunk_size))
    buffer = pa.allocate_buffer(chunk_size)
    view = memoryview(buffer).cast("B")
    got = 0
    while got < chunk_size:
        count = readinto(view[got:])
        if not count:
            break
        got += count
    return buffer if got == chunk_size else buffer.slice(0, got)


def _read_exactly(file: BinaryIO, size: int) -> bytes:
    parts, got = [], 0
    while got < size:
        part = file.read(size - got)
        if not part:
            break
        if not isinstance(part, (bytes, bytearray)):
            raise TypeError(f"the file gave {type(part).__name__}, not bytes: open it in binary mode ('rb')")
        parts.append(bytes(part))
        got += len(part)
    return b"".join(parts)


def _rechunked(items: Iterable[bytes], chunk_size: int) -> Iterator[pa.Buffer]:
    """Items of any size as pieces of `chunk_size` (the last may be
    shorter). Slices of `bytes` are sent as they are; anything mutable is
    copied first, as its owner may refill it once it has been yielded."""
    pending, held = [], 0
    for item in items:
        view = memoryview(item if isinstance(item, bytes) else bytes(item)).cast("B")
        while view:
            take = min(chunk_size - held, len(view))
            pending.append(view[:take])
            held += take
            view = view[take:]
            if held == chunk_size:
                yield _joined(pending)
                pending, held = [], 0
    if pending:
        yield _joined(pending)


def _joined(views: list[memoryview]) -> pa.Buffer:
    return pa.py_buffer(views[0]) if len(views) == 1 else pa.py_buffer(b"".join(views))

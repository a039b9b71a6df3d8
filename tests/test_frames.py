"""The template framer writes exactly the files pyarrow's IPC writer writes."""

from __future__ import annotations

import os

import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from flame_cache.store import checksum, frames

sizes = st.one_of(st.integers(1, 64), st.integers(1, 1 << 22), st.sampled_from([frames.LARGEST, 2**31 - 8]))
versions = st.integers(0, 2**64 - 1)
crcs = st.integers(0, 2**32 - 1)


def test_the_template_is_used() -> None:
    assert frames.template() is not None, "this pyarrow's files differ from the template: puts frame with pyarrow"


@settings(max_examples=300, deadline=None)
@given(versions, sizes, crcs)
def test_frame_is_pyarrows(version: int, size: int, crc: int) -> None:
    template = frames.template()
    assert template is not None
    assert template.frame(version, size, crc) == frames.pyarrow_frame(version, size, crc)


@settings(max_examples=50, deadline=None)
@given(versions, st.integers(0, 70_000), crcs)
def test_file_reads_back(version: int, size: int, crc: int) -> None:
    data = pa.py_buffer(os.urandom(size))
    whole = b"".join(bytes(memoryview(piece)) for piece in frames.file_pieces(version, data, crc))
    reader = pa.ipc.open_file(pa.py_buffer(whole))
    table = reader.read_all()
    assert table.column("version").to_pylist() == [version]
    assert table.column("data")[0].as_buffer().to_pybytes() == data.to_pybytes()
    assert checksum.from_metadata(reader.schema.metadata) == crc

"""Damaged storage at start-up (issue 4.5, SPEC 7): cut-short, empty and corrupt `.arrow`
files, stray temporary files, and foreign files and folders are reported and set aside
(or left alone, if they are not ours), and everything else is served.

Start-up only lists names; a background check then reads each object file's framing
(its magic bytes, not its data) and moves the damaged ones to `.quarantine/` without
waiting for a client to ask. Damage that the framing does not show is caught on first read.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import pyarrow as pa
import pyarrow.flight as flight
import pytest

from tests.flight_client import OPAQUE, get, opaque, patch, put_path, rows
from tests.server import CacheServer


def write_object(path: Path, cells: list[bytes], version: int = 0, *, compression: str | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    options = pa.ipc.IpcWriteOptions(compression=compression)
    batch = pa.record_batch([pa.array([version] * len(cells), pa.uint64()), pa.array(cells, pa.binary())], schema=OPAQUE)
    with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_file(sink, OPAQUE, options=options) as writer:
        writer.write_batch(batch)


def arrow_file_bytes(data: bytes) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_file(sink, OPAQUE) as writer:
        writer.write_table(opaque(data))
    return sink.getvalue().to_pybytes()


def wait_for_log(server: CacheServer, text: str, timeout: float = 30.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        log = server.log()
        if text in log:
            return log
        time.sleep(0.05)
    raise AssertionError(f"{text!r} never appeared in the server log:\n{server.log()}")


def listing(client: flight.FlightClient) -> set[str]:
    return {"/".join(p.decode() for p in info.descriptor.path) for info in client.list_flights(b"")}


def test_damage_found_at_start_up_is_reported_and_set_aside(make_server, tmp_path: Path):
    root = tmp_path / "damaged"
    good, zstd, with_deltas = "app/sess/good", "app/sess/zstd", "app/sess/deltas"
    write_object(root / "app/sess/good.arrow", [b"good"], version=1)
    write_object(root / "app/sess/zstd.arrow", [b"compressed, by upstream"], compression="zstd")
    write_object(root / "app/sess/deltas.arrow", [b"base"], version=1)
    write_object(root / "app/sess/deltas.deltas/0.arrow", [b"d0"], version=2)
    whole = arrow_file_bytes(b"x" * 4096)
    damaged = {
        "app/sess/empty": b"",
        "app/sess/cut-short": whole[: len(whole) // 2],
        "app/sess/not-arrow": b"<html>not an arrow file</html>" * 10,
        "seed/cut-short": whole[:-1],
    }
    for key, content in damaged.items():
        (root / f"{key}.arrow").parent.mkdir(parents=True, exist_ok=True)
        (root / f"{key}.arrow").write_bytes(content)
    # a whole base whose delta was cut short: the object is damaged as a whole
    write_object(root / "app/sess/bad-delta.arrow", [b"base"], version=1)
    (root / "app/sess/bad-delta.deltas").mkdir()
    (root / "app/sess/bad-delta.deltas/0.arrow").write_bytes(whole[:100])
    damaged["app/sess/bad-delta"] = b"(delta)"
    # unfinished writes, at every level
    temps = [
        root / f".top.arrow.tmp-{uuid.uuid4().hex}",
        root / "app" / "sess" / f".good.arrow.tmp-{uuid.uuid4().hex}",
        root / "seed" / f".x.arrow.tmp-{uuid.uuid4().hex}",
        root / "app" / "sess" / "deltas.deltas" / f".1.arrow.tmp-{uuid.uuid4().hex}",
    ]
    for temp in temps:
        temp.write_bytes(whole[:64])
    # foreign files and folders: not ours, so reported and left alone
    foreign = {
        "lost+found/.keep": b"",
        "README": b"an operator's note",
        ".git/config": b"[core]",
        "bad:namespace/sess/x.arrow": whole,
        "app/sess/notes.txt": b"notes",
        "app/sess/subfolder/deeper.arrow": whole,
        "app/sess/bad:name.arrow": whole,
        "app/sess/.hidden.tmp-not-ours": b"looks like a temporary file, but is not one of ours",
    }
    for name, content in foreign.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(content)

    server = make_server(storage=root)
    log = wait_for_log(server, "storage check:")

    # set aside without a single read: moved under .quarantine/, and named in the log
    for key in damaged:
        assert not (root / f"{key}.arrow").exists(), f"{key} was not set aside"
        assert list((root / ".quarantine").joinpath(*key.split("/")[:-1]).glob(f"{key.split('/')[-1]}.arrow.*"))
        assert f"object {key} is damaged" in log
    assert f"{len(damaged)} damaged object(s) set aside" in log
    assert not (root / "app/sess/bad-delta.deltas").exists()
    # temporary files removed (the one among deltas by the storage check: reads change nothing)
    assert [t for t in temps if t.exists()] == []
    # foreign entries untouched and reported
    for name, content in foreign.items():
        assert (root / name).read_bytes() == content, f"{name} was touched"
    for reported in ("lost+found", "README", "bad:namespace", "notes.txt", "subfolder", "bad:name.arrow"):
        assert reported in log, f"{reported} is not reported"

    with server.client() as client:
        assert listing(client) == {good, zstd, with_deltas}
        assert rows(get(client, good)) == [(1, "base", b"good")]
        assert rows(get(client, zstd)) == [(1, "base", b"compressed, by upstream")]
        assert rows(get(client, with_deltas)) == [(1, "base", b"base"), (2, "patch", b"d0")]
        assert not temps[-1].exists()
        for key in damaged:
            with pytest.raises(KeyError, match=key):
                get(client, key)
        # and the set-aside keys can be written afresh
        assert put_path(client, "app/sess/empty", b"new")["version"] == 1
        assert patch(client, with_deltas, b"d1")["version"] == 3

    server.restart()  # .quarantine is not served, and start-up is clean
    log = wait_for_log(server, "storage check: 0 damaged")
    with server.client() as client:
        assert listing(client) == {good, zstd, with_deltas, "app/sess/empty"}
        assert rows(get(client, with_deltas))[-1] == (3, "patch", b"d1")


def test_damage_the_framing_does_not_show_is_caught_on_first_read(make_server, tmp_path: Path):
    """A file that starts and ends like Arrow but whose footer is garbage passes the
    start-up check; the first read finds it, answers NOT_FOUND naming the key, sets it
    aside, and the server carries on."""
    root = tmp_path / "footer"
    whole = bytearray(arrow_file_bytes(b"y" * 1000))
    whole[-40:-10] = b"\xff" * 30  # the footer's flatbuffer, before the closing magic
    (root / "app" / "sess").mkdir(parents=True)
    (root / "app/sess/footer.arrow").write_bytes(bytes(whole))
    write_object(root / "app/sess/fine.arrow", [b"fine"], version=1)

    server = make_server(storage=root)
    wait_for_log(server, "storage check: 0 damaged")
    with server.client() as client:
        with pytest.raises(KeyError, match="app/sess/footer"):
            get(client, "app/sess/footer")
        assert listing(client) == {"app/sess/fine"}
    assert not (root / "app/sess/footer.arrow").exists()
    assert list((root / ".quarantine" / "app" / "sess").glob("footer.arrow.*"))
    assert server.alive()

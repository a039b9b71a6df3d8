"""Keys never meet each other's files, nor the server's own (hardening issue, items 1-2).

The mapping from keys to paths is injective and disjoint from every name the server
makes for itself: a property test generates keys over the whole grammar, both forms
mixed, with segments built to look like our names (`.deltas`, `.arrow`, `.tmp-<hex>`,
`.quarantine`, 248-255 bytes), and checks that no two keys claim one path, that no key
claims a hidden name, and that after a restart over the same folder every key reads back
as written. The reported attacks are then replayed against a real server, over HTTP and
Flight, with a restart between writing and reading.
"""

from __future__ import annotations

import itertools
import tempfile
from pathlib import Path

import httpx
import pyarrow as pa
import pyarrow.flight as flight
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flame_cache.store import InvalidArgument, Store, repair
from flame_cache.store.layout import QUARANTINE, Layout
from flame_cache.store.pending import is_temp_name, temp_name
from flame_cache.store.keys import MAX_OBJECT_ID_BYTES, MAX_SEGMENT_BYTES, ObjectKey
from tests.flight_client import get, patch, put_path, rows
from tests.http_client import RAW

SERVER_OPTIONS = {"with_http": True}
HEX32 = "0123456789abcdef" * 2

# Segments built from the pieces the layout itself uses, so collisions are tried, not hoped for.
_stem = st.sampled_from(["o", "s", "o3", "x", "0", "5", "obj", "\u00e9", "a b", "-"])
_prefix = st.sampled_from(["", "", ".", ".s"])
_suffix = st.sampled_from(["", "", ".arrow", ".deltas", ".arrow.deltas", f".tmp-{HEX32}", ".arrow.tmp-" + HEX32])
_segment = st.one_of(
    st.builds(lambda p, s, t: p + s + t, _prefix, _stem, _suffix),
    st.sampled_from([QUARANTINE, "x" * MAX_OBJECT_ID_BYTES, "y" * (MAX_OBJECT_ID_BYTES + 1), "z" * MAX_SEGMENT_BYTES]),
)
_key = st.lists(_segment, min_size=2, max_size=3).map("/".join)


def _valid(texts: list[str]) -> list[ObjectKey]:
    keys = []
    for text in dict.fromkeys(texts):
        try:
            keys.append(ObjectKey.parse(text))
        except InvalidArgument:
            continue
    return keys


def _claims(layout: Layout, key: ObjectKey) -> tuple[list[str], list[str]]:
    """(paths the key uses, paths it owns outright), relative to the root: it uses its
    folders, base file and deltas folder, and owns the base file and deltas folder."""
    base = str(Path(layout.base_path(key)).relative_to(layout.root))
    deltas = str(Path(layout.deltas_dir(key)).relative_to(layout.root))
    folders = ["/".join(key.segments[:depth]) for depth in range(1, len(key.segments))]
    return [*folders, base, deltas], [base, deltas]


def _meets(path: str, owned: str) -> bool:
    return path == owned or path.startswith(owned + "/")


@settings(max_examples=400, deadline=None)
@given(st.lists(_key, min_size=2, max_size=12))
def test_no_two_keys_and_no_key_and_internal_name_share_a_path(texts: list[str]):
    layout = Layout.__new__(Layout)  # path arithmetic only
    layout.root = Path("/srv/root")
    layout.top = str(layout.root)
    keys = _valid(texts)
    for key in keys:
        used, _ = _claims(layout, key)
        for path in used:
            for name in path.split("/"):
                assert not name.startswith("."), f"{key} claims the hidden name {name!r}"
                assert not is_temp_name(name) and name != QUARANTINE
                assert len(name.encode()) <= MAX_SEGMENT_BYTES, f"{key} needs a file name over 255 bytes"
        temp = temp_name(Path(layout.base_path(key)).name)
        assert is_temp_name(temp) and len(temp.encode()) <= MAX_SEGMENT_BYTES
    for first, second in itertools.permutations(keys, 2):
        used, _ = _claims(layout, first)
        _, owned = _claims(layout, second)
        clash = [(u, o) for u in used for o in owned if _meets(u, o)]
        assert not clash, f"{first} and {second} share {clash}"


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_key, min_size=1, max_size=10))
def test_every_key_survives_a_restart_beside_any_other(texts: list[str]):
    """Written, patched, and read back by a new store over the same folder (a restart)."""
    keys = _valid(texts)
    with tempfile.TemporaryDirectory() as folder:
        store = Store(Path(folder))
        for number, key in enumerate(keys):
            store.put(key, pa.py_buffer(f"base {number}".encode()))
            store.patch(str(key), pa.py_buffer(f"patch {number}".encode()))
        restarted = Store(Path(folder))
        assert sorted(info.key for info in restarted.list()) == sorted(map(str, keys))
        for number, key in enumerate(keys):
            snapshot = restarted.get(str(key))
            assert (snapshot.version, snapshot.base.to_pybytes()) == (2, f"base {number}".encode())
            assert [d.to_pybytes() for d in snapshot.deltas] == [f"patch {number}".encode()]


# -- the reported attacks, against a real server ---------------------------------

REFUSED = [
    ("another object's delta", "col/o.deltas/0", "'o.deltas'", "'.deltas'"),
    ("a delta folder past the deltas", "w/o3.deltas/5", "'o3.deltas'", "'.deltas'"),
    ("another object's file", "col/o.arrow/x", "'o.arrow'", "'.arrow'"),
    ("a temporary name", f"w/.s.tmp-{HEX32}", f"'.s.tmp-{HEX32}'", "reserved"),
    ("a temporary name as folder", f"w/.s.tmp-{HEX32}/o", f"'.s.tmp-{HEX32}'", "reserved"),
    ("the quarantine", ".quarantine/s/o", "'.quarantine'", "reserved"),
    ("a hidden object", "s/.o", "'.o'", "reserved"),
    ("an id too long for its files", "s/" + "x" * (MAX_OBJECT_ID_BYTES + 1), str(MAX_OBJECT_ID_BYTES), "'.deltas'"),
]


def _base_and_patch(server, http: httpx.Client) -> None:
    for namespace in ("col/*", "w"):
        http.delete(f"/v1/namespaces/{namespace}")
    assert http.put("/v1/objects/col/o", content=b"BASE", headers={"Content-Type": RAW}).status_code == 201
    assert http.patch("/v1/objects/col/o", content=b"PATCH", headers={"Content-Type": RAW}).status_code == 200
    assert http.put("/v1/objects/w/o3", content=b"W", headers={"Content-Type": RAW}).status_code == 201


@pytest.mark.parametrize(("case", "key", "names", "rule"), REFUSED, ids=[c[0] for c in REFUSED])
def test_a_key_that_would_clash_is_refused_on_both_protocols(server, case, key, names, rule):
    with httpx.Client(base_url=server.http_url) as http, server.client() as client:
        _base_and_patch(server, http)
        for method in ("PUT", "GET", "HEAD", "PATCH", "DELETE"):
            answer = http.request(method, f"/v1/objects/{key}", content=b"EVIL", headers={"Content-Type": RAW})
            assert answer.status_code == 400, (method, answer.status_code, answer.text)
            if method != "HEAD":
                message = answer.json()["message"]
                assert names in message and rule in message, message
        for call in (
            lambda: put_path(client, key, b"EVIL"),
            lambda: patch(client, key, b"EVIL"),
            lambda: get(client, key),
            lambda: client.get_flight_info(flight.FlightDescriptor.for_path(key)),
        ):
            with pytest.raises(pa.ArrowInvalid, match=rule):
                call()
        assert rows(get(client, "col/o")) == [(1, "base", b"BASE"), (2, "patch", b"PATCH")]


def test_nothing_reaches_another_objects_deltas_and_restarts_agree(server):
    """The report's sequences, then a restart: col/o keeps exactly its base and its one
    patch, w/o3 its base; a delete naming the deltas folder deletes nothing."""
    with httpx.Client(base_url=server.http_url) as http, server.client() as client:
        _base_and_patch(server, http)
        http.put("/v1/objects/col/o.deltas/0", content=b"EVIL", headers={"Content-Type": RAW})
        http.put("/v1/objects/w/o3.deltas/5", content=b"EVIL", headers={"Content-Type": RAW})
        # 'col/o.deltas' is a valid 2-segment key (its files are col/o.deltas.arrow, never col/o.deltas/),
        # so deleting it is allowed and must touch nothing of col/o.
        assert [r.body.to_pybytes() for r in client.do_action(flight.Action("DELETE", b"col/o.deltas"))] == [b"OK"]
        assert http.delete("/v1/namespaces/col/o.deltas").status_code == 400
        assert http.put("/v1/objects/col/o.deltas", content=b"NEIGHBOUR", headers={"Content-Type": RAW}).status_code == 201
    server.restart()
    with httpx.Client(base_url=server.http_url) as http, server.client() as client:
        assert rows(get(client, "col/o")) == [(1, "base", b"BASE"), (2, "patch", b"PATCH")]
        assert rows(get(client, "w/o3")) == [(1, "base", b"W")]
        assert http.get("/v1/objects/col/o.deltas").content == b"NEIGHBOUR"
        listed = {o["key"] for o in http.get("/v1/objects", params={"prefix": "col"}).json()["objects"]}
        assert listed == {"col/o", "col/o.deltas"}
        assert not (server.storage / QUARANTINE).exists()


def test_the_longest_object_id_is_stored_patched_and_survives_a_restart(server):
    key = "long/s/" + "é" * (MAX_OBJECT_ID_BYTES // 2)  # 248 bytes of UTF-8
    with httpx.Client(base_url=server.http_url) as http:
        assert http.put(f"/v1/objects/{key}", content=b"L", headers={"Content-Type": RAW}).status_code == 201
        assert http.patch(f"/v1/objects/{key}", content=b"P", headers={"Content-Type": RAW}).status_code == 200
    server.restart()
    with server.client() as client:
        assert rows(get(client, key)) == [(1, "base", b"L"), (2, "patch", b"P")]


def test_the_longest_object_id_can_be_set_aside_when_damaged(tmp_path: Path):
    """The quarantine adds a time stamp to the file name: it must still fit."""
    key = "q/s/" + "d" * MAX_OBJECT_ID_BYTES
    store = Store(tmp_path)
    store.put(key, pa.py_buffer(b"base"))
    store.patch(key, pa.py_buffer(b"patch"))
    base = Path(store.layout.base_path(ObjectKey.parse(key)))
    base.write_bytes(base.read_bytes()[:-10])  # cut short, as by a power loss
    restarted = Store(tmp_path)
    assert repair.check(restarted) == [key]
    set_aside = sorted(p.name for p in (tmp_path / QUARANTINE / "q" / "s").iterdir())
    assert len(set_aside) == 2 and set_aside[1] == set_aside[0] + ".deltas"
    assert not base.exists() and restarted.list() == []

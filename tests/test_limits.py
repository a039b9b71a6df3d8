"""Resource limits (issue 4.4): maximum object size, key length and deltas per object,
each enforced by the store for every way in, refused with a message that names the
limit, the size and the key, and leaving nothing stored and no temporary file behind.
"""

from __future__ import annotations

import base64
import re
from pathlib import Path

import pyarrow as pa
import pyarrow.flight as flight
import pytest

from flame_cache.app.config import ConfigError, load_config
from flame_cache.store import InvalidArgument, LimitExceeded, Store
from flame_cache.store.errors import KeyTooLong, ObjectTooLarge
from tests.flight_client import get, opaque, patch, put, put_path, rows
from tests.server import CacheServer

LIMIT = 64 * 1024
KEY_LIMIT = 60


def storage_files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    workdir = tmp_path_factory.mktemp("limits")
    limits = {"max_object_size": "64K", "max_key_bytes": KEY_LIMIT, "max_deltas": 3}
    server = CacheServer(workdir, workdir / "storage", limits=limits).start()
    yield server
    server.stop()


def refused(server: CacheServer, call, *, error=pa.ArrowInvalid, names: tuple[str, ...]) -> str:
    """Run a request that must be refused; check its message and that storage is unchanged."""
    before = storage_files(server.storage)
    with pytest.raises(error) as caught:
        call()
    message = str(caught.value).split(". Detail:")[0]
    missing = [what for what in names if what not in message]
    assert not missing, f"message does not name {missing}: {message!r}"
    assert storage_files(server.storage) == before, "a refused write changed the storage"
    assert server.alive()
    return message


# -- maximum object size ----------------------------------------------------


def test_objects_up_to_the_maximum_size_are_stored(server: CacheServer):
    with server.client() as client:
        key = put_path(client, "size", b"x" * LIMIT)["key"]
        assert rows(get(client, key)) == [(1, "base", b"x" * LIMIT)]


@pytest.mark.parametrize("row_bytes", [None, 4096], ids=["one-row", "many-rows"])
def test_an_upload_over_the_maximum_size_is_refused_and_stores_nothing(server: CacheServer, row_bytes):
    """One byte over, in one row or in many (flamepy's upload_object sends rows): refused
    with INVALID_ARGUMENT naming the limit and the target; nothing is stored."""
    with server.client() as client:
        keys = {i.descriptor.path[0] for i in client.list_flights(b"")}
        data = b"y" * (LIMIT + 1)
        refused(
            server,
            lambda: put_path(client, "size", data, row_bytes=row_bytes),
            names=("'size'", "maximum object size", str(LIMIT), "cache.limits.max_object_size"),
        )
        assert {i.descriptor.path[0] for i in client.list_flights(b"")} == keys


def test_a_replace_over_the_maximum_size_keeps_the_old_version(server: CacheServer):
    with server.client() as client:
        key = put_path(client, "size", b"old")["key"]
        refused(server, lambda: put_path(client, key, b"z" * (2 * LIMIT)), names=(key, str(LIMIT)))
        refused(
            server,
            lambda: put(client, flight.FlightDescriptor.for_path(key), pa.table({"n": list(range(LIMIT))})),
            names=(key, str(LIMIT)),
        )
        assert rows(get(client, key)) == [(1, "base", b"old")]


def test_a_patch_that_would_pass_the_maximum_size_is_refused(server: CacheServer):
    """The limit is on the whole object (base plus deltas), as a full read sends it."""
    with server.client() as client:
        key = put_path(client, "size", b"b" * (LIMIT - 10))["key"]
        assert patch(client, key, b"p" * 10)["version"] == 2  # exactly at the limit
        message = refused(server, lambda: patch(client, key, b"!"), names=(key, str(LIMIT + 1), str(LIMIT)))
        assert "patch" in message
        assert [r[:2] for r in rows(get(client, key))] == [(1, "base"), (2, "patch")]


def test_the_seed_actions_obey_the_maximum_size(server: CacheServer):
    body = base64.b64encode(b"s" * (LIMIT + 1))
    with server.client() as client:
        key = put_path(client, "size", b"small")["key"]
        refused(server, lambda: list(client.do_action(flight.Action("PUT", b"size:" + body))), names=(str(LIMIT),))
        refused(
            server,
            lambda: list(client.do_action(flight.Action("UPDATE", key.encode() + b":" + body))),
            names=(key, str(LIMIT)),
        )
        assert rows(get(client, key)) == [(1, "base", b"small")]


# -- maximum key length -----------------------------------------------------


def test_a_new_key_over_the_maximum_length_is_refused(server: CacheServer):
    """A 3-segment key longer than max_key_bytes, or a namespace whose new key (namespace
    plus a 36-character uuid) would be, is INVALID_ARGUMENT naming the limit."""
    long_key = "app/sess/" + "k" * (KEY_LIMIT - 8)
    long_namespace = "app/" + "n" * (KEY_LIMIT - 40)  # + '/' + uuid4 = KEY_LIMIT + 1
    with server.client() as client:
        refused(
            server,
            lambda: put_path(client, long_key, b"x"),
            names=("maximum key length", str(KEY_LIMIT), "cache.limits.max_key_bytes", long_key[:40]),
        )
        refused(server, lambda: put_path(client, long_namespace, b"x"), names=(str(KEY_LIMIT + 1), str(KEY_LIMIT)))
        fits = put_path(client, "app/sess/" + "k" * (KEY_LIMIT - 9), b"x")
        assert len(fits["key"]) == KEY_LIMIT


# -- deltas per object ------------------------------------------------------


def test_patches_past_max_deltas_are_refused_until_a_replace_compacts(server: CacheServer):
    """max_deltas: 3. The fourth patch is INVALID_ARGUMENT naming the limit; a replace
    clears the deltas, after which patches are taken again."""
    with server.client() as client:
        key = put_path(client, "deltas", b"base")["key"]
        for n in range(3):
            assert patch(client, key, b"d%d" % n)["version"] == n + 2
        refused(server, lambda: patch(client, key, b"one too many"), names=(key, "3 deltas", "max_deltas"))
        assert put_path(client, key, b"compacted")["version"] == 5
        assert patch(client, key, b"again")["version"] == 6
        assert rows(get(client, key)) == [(5, "base", b"compacted"), (6, "patch", b"again")]


# -- the store, for every protocol -------------------------------------------


@pytest.mark.parametrize("storage", ["memory", "disk"])
def test_the_store_enforces_every_limit_itself(tmp_path: Path, storage: str):
    """The rules live in the store (the HTTP mirror calls the same methods): each limit
    raises its own error type, names the key, and changes nothing."""
    store = Store(None if storage == "memory" else tmp_path, max_object_size=100, max_key_bytes=45, max_deltas=1)
    info = store.put("a/b", pa.py_buffer(b"x" * 90))
    with pytest.raises(ObjectTooLarge, match=f"{info.key}.*101 bytes.*100 bytes"):
        store.put(info.key, pa.py_buffer(b"x" * 101))
    with pytest.raises(ObjectTooLarge, match="with this patch"):
        store.patch(info.key, pa.py_buffer(b"y" * 11))
    store.patch(info.key, pa.py_buffer(b"y" * 10))
    with pytest.raises(LimitExceeded, match="1 deltas"):
        store.patch(info.key, pa.py_buffer(b""))
    with pytest.raises(KeyTooLong, match="46 bytes") as caught:
        store.put("s/t/" + "k" * 42, pa.py_buffer(b"x"))
    assert isinstance(caught.value, InvalidArgument) and isinstance(caught.value, LimitExceeded)
    with pytest.raises(ObjectTooLarge):
        store.put("t/tbl", pa.table({"n": list(range(100))}))
    assert [i.key for i in store.list()] == [info.key]
    assert store.get(info.key).version == 2
    if storage == "disk":
        assert not [p for p in tmp_path.rglob("*") if ".tmp-" in p.name]


def test_objects_stored_under_a_larger_limit_stay_readable(tmp_path: Path):
    """Lowering a limit never hides what is stored: reads work; writes obey the new limit."""
    Store(tmp_path).put("app/sess/big", pa.py_buffer(b"x" * 1000))
    store = Store(tmp_path, max_object_size=10, max_key_bytes=5)
    assert store.get("app/sess/big").base.to_pybytes() == b"x" * 1000
    with pytest.raises(ObjectTooLarge):
        store.put("app/sess/big", pa.py_buffer(b"x" * 11))
    assert store.put("app/sess/big", pa.py_buffer(b"small")).version == 2  # an existing key is not "new"
    with pytest.raises(KeyTooLong):
        store.put("app/sess/other", pa.py_buffer(b"x"))


def test_an_upload_over_the_limit_is_refused_as_it_arrives(server: CacheServer):
    """A large upload is refused as soon as it passes the limit, not after the server read
    (and held) all of it; the client learns it at the latest when it closes the call."""
    total = 64 * LIMIT  # 4 MiB in 64 KiB rows
    with server.client() as client:
        writer, reader = client.do_put(flight.FlightDescriptor.for_path("size"), opaque(b"").schema)
        with pytest.raises(pa.ArrowInvalid, match="maximum object size") as caught:
            for _ in range(total // LIMIT):
                writer.write_table(opaque(b"w" * LIMIT))
            writer.done_writing()
            reader.read()
            writer.close()
    read = int(re.search(r"refused after (\d+) bytes", str(caught.value)).group(1))
    assert LIMIT < read < total
    assert not [p.name for p in server.storage.rglob("*") if ".tmp-" in p.name]
    assert server.alive()


# -- configuration ------------------------------------------------------------


def test_limit_keys_are_read_from_the_file_and_the_environment(tmp_path: Path):
    config_file = tmp_path / "flame-cluster.yaml"
    config_file.write_text(
        "cache:\n  limits: {max_object_size: 1.5G, max_key_bytes: 300, max_deltas: 10}\n  shutdown_timeout: 5s\n"
    )
    config = load_config(config_file, env={})
    assert (config.max_object_size, config.max_key_bytes, config.max_deltas) == (3 * 2**29, 300, 10)
    assert config.shutdown_timeout == 5.0
    env = {"FLAME_CACHE_MAX_OBJECT_SIZE": "64K", "FLAME_CACHE_MAX_KEY_BYTES": "100", "FLAME_CACHE_SHUTDOWN_TIMEOUT": "0.5"}
    config = load_config(config_file, env=env)
    assert (config.max_object_size, config.max_key_bytes, config.shutdown_timeout) == (65536, 100, 0.5)
    defaults = load_config(tmp_path / "flame-cluster.yaml", env={"FLAME_CACHE_MAX_OBJECT_SIZE": ""})
    assert defaults.max_object_size == 3 * 2**29  # an empty variable is unset


@pytest.mark.parametrize(
    ("variable", "value", "named"),
    [
        ("FLAME_CACHE_MAX_KEY_BYTES", "2", "cache.limits.max_key_bytes"),
        ("FLAME_CACHE_MAX_KEY_BYTES", "768", "cache.limits.max_key_bytes"),
        ("FLAME_CACHE_MAX_KEY_BYTES", "lots", "cache.limits.max_key_bytes"),
        ("FLAME_CACHE_MAX_OBJECT_SIZE", "-1M", "cache.limits.max_object_size"),
        ("FLAME_CACHE_SHUTDOWN_TIMEOUT", "-1", "cache.shutdown_timeout"),
        ("FLAME_CACHE_SHUTDOWN_TIMEOUT", "0", "cache.shutdown_timeout"),
        ("FLAME_CACHE_SHUTDOWN_TIMEOUT", "soon", "cache.shutdown_timeout"),
        ("FLAME_CACHE_SHUTDOWN_TIMEOUT", "inf", "cache.shutdown_timeout"),
    ],
)
def test_bad_limit_values_stop_start_up_naming_the_key(tmp_path: Path, variable: str, value: str, named: str):
    config_file = tmp_path / "flame-cluster.yaml"
    config_file.write_text("cache: {}\n")
    with pytest.raises(ConfigError, match=re.escape(named)) as caught:
        load_config(config_file, env={variable: value})
    assert value in str(caught.value)

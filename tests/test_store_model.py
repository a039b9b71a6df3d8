"""The Store against a model (issue 4.2): hypothesis runs random sequences of put,
create, replace, patch, native-table puts, deletes of keys, namespaces and `app/*`,
reads at any client version, listings and (with disk storage) restarts, and after each
step the store must agree with a plain dict of what each key holds.

Limits are small (64-byte objects, 3 deltas, 40-byte keys) so refusals are explored
too, and the disk store keeps only 2 objects in memory, so eviction and reloading from
disk are part of most runs. A unit test of the store, in process: no server.
"""

from __future__ import annotations

import functools
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, consumes, invariant, rule

from flame_cache.store import (
    InvalidArgument,
    LimitExceeded,
    Eviction,
    ObjectNotFound,
    ReadMode,
    Store,
)
from flame_cache.store.conditions import MUST_EXIST
from flame_cache.store.errors import KeyTooLong, ObjectTooLarge

MAX_SIZE, MAX_DELTAS, MAX_KEY = 64, 3, 39  # 'n/<uuid>' fits, 'a/s/<uuid>' does not
APPS, SESSIONS, OBJECTS = ("a", "b"), ("s", "t"), ("x", "y")
FIXED_KEYS = [f"{a}/{s}/{o}" for a in APPS for s in SESSIONS for o in OBJECTS]
NAMESPACES = ["n", "m", "a/s", "b/t"]  # 'n', 'm': seed sessions, whose new keys are n/<uuid>

blobs = st.binary(max_size=MAX_SIZE + 16)
client_versions = st.integers(min_value=0, max_value=8)


@dataclass
class Model:
    """What one key holds: an opaque base and deltas, or a native table (`table`)."""

    base_version: int
    base: bytes
    deltas: list[bytes] = field(default_factory=list)
    table: list[int] | None = None

    @property
    def version(self) -> int:
        return self.base_version + len(self.deltas)

    @property
    def size(self) -> int:
        return len(self.base) + sum(len(d) for d in self.deltas)


class StoreMachine(RuleBasedStateMachine):
    """Subclasses choose the storage."""

    persistent = False

    def __init__(self) -> None:
        super().__init__()
        self.root = Path(tempfile.mkdtemp(prefix="store-model-")) if self.persistent else None
        self.store = self._open()
        self.model: dict[str, Model] = {}

    def _open(self) -> Store:
        eviction = Eviction(max_objects=2) if self.persistent else Eviction()
        return Store(
            self.root, eviction=eviction, max_deltas=MAX_DELTAS, max_object_size=MAX_SIZE, max_key_bytes=MAX_KEY
        )

    def teardown(self) -> None:
        if self.root is not None:
            shutil.rmtree(self.root, ignore_errors=True)

    created = Bundle("created")

    # -- writes ------------------------------------------------------------

    def _write_base(self, key: str, data: bytes, must_exist: bool) -> None:
        old = self.model.get(key)
        call = functools.partial(self.store.put, condition=MUST_EXIST) if must_exist else self.store.put
        if must_exist and old is None:
            with pytest.raises(ObjectNotFound):
                call(key, pa.py_buffer(data))
            return
        if len(data) > MAX_SIZE:
            with pytest.raises(ObjectTooLarge):
                call(key, pa.py_buffer(data))
            return
        info = call(key, pa.py_buffer(data))
        version = old.version + 1 if old else 1
        assert (info.key, info.version, info.deltas, info.size) == (key, version, 0, len(data))
        self.model[key] = Model(version, data)

    @rule(key=st.sampled_from(FIXED_KEYS), data=blobs)
    def put(self, key: str, data: bytes) -> None:
        self._write_base(key, data, must_exist=False)

    @rule(key=st.sampled_from(FIXED_KEYS), data=blobs)
    def replace(self, key: str, data: bytes) -> None:
        self._write_base(key, data, must_exist=True)

    @rule(target=created, namespace=st.sampled_from(NAMESPACES), data=st.binary(max_size=MAX_SIZE))
    def create(self, namespace: str, data: bytes) -> str:
        if len(namespace) + 1 + 36 > MAX_KEY:
            with pytest.raises(KeyTooLong):
                self.store.create(namespace, pa.py_buffer(data))
            return "n/never-created"
        info = self.store.create(namespace, pa.py_buffer(data))
        assert info.key.startswith(namespace + "/") and info.version == 1
        self.model[info.key] = Model(1, data)
        return info.key

    @rule(key=st.sampled_from(FIXED_KEYS), values=st.lists(st.integers(0, 9), max_size=10))
    def put_table(self, key: str, values: list[int]) -> None:
        table = pa.table({"v": pa.array(values, pa.int64())})
        old = self.model.get(key)
        if table.nbytes > MAX_SIZE:
            with pytest.raises(ObjectTooLarge):
                self.store.put(key, table)
            return
        info = self.store.put(key, table)
        version = old.version + 1 if old else 1
        assert info.version == version
        self.model[key] = Model(version, b"", table=values)

    @rule(key=st.one_of(st.sampled_from(FIXED_KEYS), created), delta=st.binary(max_size=24))
    def patch(self, key: str, delta: bytes) -> None:
        model = self.model.get(key)
        if model is None:
            with pytest.raises(ObjectNotFound):
                self.store.patch(key, pa.py_buffer(delta))
        elif model.table is not None:
            with pytest.raises(InvalidArgument, match="native"):
                self.store.patch(key, pa.py_buffer(delta))
        elif len(model.deltas) >= MAX_DELTAS or model.size + len(delta) > MAX_SIZE:
            with pytest.raises(LimitExceeded):
                self.store.patch(key, pa.py_buffer(delta))
        else:
            info = self.store.patch(key, pa.py_buffer(delta))
            model.deltas.append(delta)
            assert (info.version, info.deltas, info.size) == (model.version, len(model.deltas), model.size)

    @rule(
        selector=st.one_of(
            st.sampled_from(FIXED_KEYS),
            st.sampled_from(NAMESPACES + [f"{a}/{s}" for a in APPS for s in SESSIONS] + [f"{a}/*" for a in APPS]),
        )
    )
    def delete(self, selector: str) -> None:
        prefix = selector.removesuffix("/*").split("/")
        doomed = [k for k in self.model if k.split("/")[: len(prefix)] == prefix]
        assert self.store.delete(selector) == len(doomed)
        for key in doomed:
            del self.model[key]

    @rule(key=consumes(created))
    def delete_created(self, key: str) -> None:
        self.delete(key)

    # -- reads -------------------------------------------------------------

    @rule(key=st.one_of(st.sampled_from(FIXED_KEYS), created), client_version=client_versions)
    def get(self, key: str, client_version: int) -> None:
        model = self.model.get(key)
        if model is None:
            with pytest.raises(ObjectNotFound):
                self.store.get(key)
            return
        read = self.store.get(key).read(client_version)
        assert read.snapshot.version == model.version
        if client_version and client_version == model.version:
            assert (read.mode, read.rows) == (ReadMode.NOT_MODIFIED, ())
        elif model.table is not None:
            assert read.mode is ReadMode.FULL
            assert read.snapshot.base.column("v").to_pylist() == model.table
            assert read.snapshot.base.schema.metadata[b"flame.cache.version"] == str(model.version).encode()
        elif 0 < client_version and model.base_version <= client_version < model.version:
            assert read.mode is ReadMode.PATCHES
            start = client_version - model.base_version
            expected = [(model.base_version + 1 + i, "patch", d) for i, d in enumerate(model.deltas)][start:]
            assert [(r.version, r.kind.value, r.data.to_pybytes()) for r in read.rows] == expected
        else:
            assert read.mode is ReadMode.FULL
            expected = [(model.base_version, "base", model.base)]
            expected += [(model.base_version + 1 + i, "patch", d) for i, d in enumerate(model.deltas)]
            assert [(r.version, r.kind.value, r.data.to_pybytes()) for r in read.rows] == expected

    @invariant()
    def listing_matches(self) -> None:
        infos = self.store.list()
        assert {i.key: (i.version, i.deltas) for i in infos} == {
            k: (m.version, len(m.deltas)) for k, m in self.model.items()
        }


class DiskStoreMachine(StoreMachine):
    persistent = True

    @rule()
    def restart(self) -> None:
        """A new Store on the same directory (a restart) holds exactly the same."""
        self.store = self._open()

    @invariant()
    def no_temporary_files(self) -> None:
        assert not [p for p in self.root.rglob("*") if ".tmp-" in p.name]


SETTINGS = settings(
    max_examples=50, stateful_step_count=50, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
TestMemoryStore = StoreMachine.TestCase
TestMemoryStore.settings = SETTINGS
TestDiskStore = DiskStoreMachine.TestCase
TestDiskStore.settings = SETTINGS

"""Fixtures: real server processes on loopback, and flamepy pointed at one.

flamepy reads its configuration once per process (FLAME_CACHE_ENDPOINT) and
keeps a client-side object cache, so the in-process flamepy tests share one
session server; tests that need flamepy against another server run it in a
subprocess.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.server import CacheServer


@pytest.fixture(scope="session")
def session_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CacheServer]:
    workdir = tmp_path_factory.mktemp("session-server")
    server = CacheServer(workdir, workdir / "storage").start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def flamepy_cache(session_server: CacheServer, tmp_path_factory: pytest.TempPathFactory):
    """flamepy.core.cache, configured only through FLAME_CACHE_ENDPOINT."""
    home = tmp_path_factory.mktemp("home")  # no ~/.flame/flame.yaml to interfere
    os.environ["HOME"] = str(home)
    os.environ["FLAME_CACHE_ENDPOINT"] = session_server.endpoint
    os.environ.pop("FLAME_CACHE_STORAGE", None)
    from flamepy.core import cache

    return cache


@pytest.fixture(scope="module")
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[CacheServer]:
    """A server of the test module's own, started with the module's
    SERVER_OPTIONS (CacheServer keyword arguments, e.g. with_http=True)."""
    options = getattr(request.module, "SERVER_OPTIONS", {})
    workdir = tmp_path_factory.mktemp(request.module.__name__.rsplit(".", 1)[-1])
    server = CacheServer(workdir, workdir / "storage", **options).start()
    yield server
    server.stop()


@pytest.fixture
def make_server(tmp_path: Path) -> Iterator[Callable[..., CacheServer]]:
    """Start servers of this test's own (stopped at its end)."""
    started: list[CacheServer] = []

    def make(storage: Path | None | str = "default", **cache) -> CacheServer:
        path = tmp_path / f"storage-{len(started)}" if storage == "default" else storage
        server = CacheServer(tmp_path, path, **cache).start()
        started.append(server)
        return server

    yield make
    for server in started:
        server.stop()

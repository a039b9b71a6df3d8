"""Limits on connections: silent sockets must not take either protocol down.

Each test starts a real server with a lowered open-file limit, holds idle
sockets against it (bounded in count and time), and checks that Flight and
HTTP still serve, that the server closes idle HTTP sockets after
`cache.http.header_timeout`, and that the log stays small.
"""

from __future__ import annotations

import contextlib
import resource
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pyarrow.flight as flight
import pytest

from flame_cache.app.config import ConfigError, load_config
from tests import flight_client
from tests.server import CacheServer

HEADER_TIMEOUT = 2.0
OPEN_TIMEOUT = 30.0  # seconds any test may spend opening its idle sockets
MAX_LOG = 100_000  # bytes: a few hundred lines; a flood is megabytes


@pytest.fixture(autouse=True, scope="module")
def enough_descriptors() -> Iterator[None]:
    """This process holds thousands of sockets: raise its own soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = 6000 if hard == resource.RLIM_INFINITY else min(hard, 6000)
    if wanted < 4000:
        pytest.skip(f"needs an open-file limit of 4000 here, the hard limit is {hard}")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, wanted), hard))
    yield
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def open_idle(port: int, count: int, deadline: float) -> list[socket.socket]:
    """Up to `count` connected sockets that send nothing; stops at `deadline`
    or when the server stops completing connections."""
    sockets: list[socket.socket] = []
    failures = 0
    while len(sockets) < count and failures < 20 and time.monotonic() < deadline:
        try:
            sockets.append(socket.create_connection(("127.0.0.1", port), timeout=1))
        except OSError:
            failures += 1
    return sockets


def closed_by_server(sock: socket.socket) -> bool:
    """True if the server closed `sock` (EOF or reset); reads and drops any answer."""
    sock.setblocking(False)
    try:
        while sock.recv(65536):
            pass
    except BlockingIOError:
        return False
    except ConnectionError:
        pass
    return True


def wait_closed(sockets: list[socket.socket], deadline: float) -> list[socket.socket]:
    """The sockets the server has not closed by `deadline`."""
    still_open = sockets
    while still_open and time.monotonic() < deadline:
        time.sleep(0.5)
        still_open = [s for s in still_open if not closed_by_server(s)]
    return still_open


def flight_round_trip(server: CacheServer, key: str) -> None:
    """A put and a get on a new Flight connection, each within 10 s."""
    options = flight.FlightCallOptions(timeout=10)
    with flight.FlightClient(server.endpoint) as client:
        descriptor = flight.FlightDescriptor.for_path(*key.split("/"))
        writer, reader = client.do_put(descriptor, flight_client.OPAQUE, options=options)
        with writer:
            writer.write_table(flight_client.opaque(b"flight bytes"))
            writer.done_writing()
            assert reader.read() is not None
        table = client.do_get(flight.Ticket(key.encode()), options=options).read_all()
    assert table.column("data")[0].as_py() == b"flight bytes"


def http_round_trip(server: CacheServer, key: str) -> None:
    """A PUT and a GET on a new HTTP connection, each within 10 s."""
    with httpx.Client(base_url=server.http_url, timeout=10) as http:
        put = http.put(f"/v1/objects/{key}", content=b"http bytes", headers={"Content-Type": "application/octet-stream"})
        assert put.status_code == 201, put.text
        got = http.get(f"/v1/objects/{key}")
    assert got.status_code == 200 and got.content == b"http bytes"


def assert_small_log(server: CacheServer) -> None:
    text = server.log()
    assert len(text) < MAX_LOG, f"the log grew to {len(text)} bytes:\n{text[-3000:]}"
    assert text.count("Traceback") <= 1, text[-3000:]
    assert text.count("Too many open files") <= 5, text[-3000:]


@contextlib.contextmanager
def closing_all(sockets: list[socket.socket]) -> Iterator[list[socket.socket]]:
    try:
        yield sockets
    finally:
        for sock in sockets:
            sock.close()


def start(tmp_path: Path, open_files: tuple[int, int], **http: object) -> CacheServer:
    server = CacheServer(tmp_path, tmp_path / "storage", with_http=True, http=http, open_files=open_files)
    return server.start()


def test_idle_sockets_on_both_ports_leave_both_protocols_serving(tmp_path: Path) -> None:
    """2,400 idle sockets against a process limited to 2,048 descriptors: room
    for the Flight sockets, max_connections and the accept burst, not for all."""
    server = start(tmp_path, (2048, 2048), header_timeout=HEADER_TIMEOUT, max_connections=300)
    try:
        deadline = time.monotonic() + OPEN_TIMEOUT
        with closing_all(open_idle(server.port, 400, deadline)) as on_flight, closing_all(
            open_idle(server.http_port, 2000, deadline)
        ) as on_http:
            opened = time.monotonic()
            assert len(on_flight) == 400 and len(on_http) == 2000, (len(on_flight), len(on_http))
            flight_round_trip(server, "idle/flight/one")
            http_round_trip(server, "idle/http/one")

            still_open = wait_closed(on_http, opened + HEADER_TIMEOUT + 15)
            assert not still_open, f"{len(still_open)} of {len(on_http)} idle HTTP sockets still open after {time.monotonic() - opened:.1f}s"
            flight_round_trip(server, "idle/flight/two")  # the Flight sockets are still held
            http_round_trip(server, "idle/http/two")
        assert server.alive()
        assert_small_log(server)
    finally:
        server.stop()


def test_accept_errors_are_logged_at_a_bounded_rate(tmp_path: Path) -> None:
    """max_connections above what the open-file limit allows: accept() fails
    with EMFILE; a few log lines, no traceback per failure, and serving
    resumes once the idle sockets are gone."""
    server = start(tmp_path, (256, 256), header_timeout=HEADER_TIMEOUT, max_connections=1000)
    try:
        with closing_all(open_idle(server.http_port, 700, time.monotonic() + OPEN_TIMEOUT)) as on_http:
            assert len(on_http) >= 400, len(on_http)
            time.sleep(2.5)  # accept keeps failing while the process has no descriptor left
        http_round_trip(server, "emfile/http/one")
        flight_round_trip(server, "emfile/flight/one")
        text = server.log()
        assert_small_log(server)
        assert "HTTP cannot accept connections: Too many open files" in text, text[-3000:]
        assert "cache.http.max_connections = 1000, plus up to 1022 connections being accepted" in text
        assert "more than half the open-file limit (256)" in text
    finally:
        server.stop()


def test_open_file_limit_is_raised_to_the_hard_limit(tmp_path: Path) -> None:
    server = start(tmp_path, (512, 4096))
    try:
        assert "open-file limit: raised from 512 to 4096" in server.log()
        limits = Path(f"/proc/{server.pid}/limits").read_text()
        line = next(line for line in limits.splitlines() if line.startswith("Max open files"))
        assert line.split()[3:5] == ["4096", "4096"], line
    finally:
        server.stop()


def test_a_partial_head_gets_408_after_the_header_timeout(tmp_path: Path) -> None:
    server = start(tmp_path, (1024, 1024), header_timeout=1)
    try:
        with socket.create_connection(("127.0.0.1", server.http_port), timeout=5) as sock:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
            started = time.monotonic()
            answer = b""
            while chunk := sock.recv(65536):
                answer += chunk
            waited = time.monotonic() - started
        assert answer.startswith(b"HTTP/1.1 408 "), answer
        assert b'"error": "request_timeout"' in answer and b"cache.http.header_timeout" in answer, answer
        assert 0.5 < waited < 4, waited
        http_round_trip(server, "slow/head/one")
    finally:
        server.stop()


@pytest.mark.parametrize(
    ("key", "value", "variable"),
    [
        ("header_timeout", "soon", "FLAME_CACHE_HTTP_HEADER_TIMEOUT"),
        ("header_timeout", "0", "FLAME_CACHE_HTTP_HEADER_TIMEOUT"),
        ("max_connections", "many", "FLAME_CACHE_HTTP_MAX_CONNECTIONS"),
        ("max_connections", "0", "FLAME_CACHE_HTTP_MAX_CONNECTIONS"),
    ],
)
def test_bad_connection_limits_name_key_and_value(tmp_path: Path, key: str, value: str, variable: str) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(f"cache:\n  http:\n    {key}: '{value}'\n")
    with pytest.raises(ConfigError, match=rf"cache\.http\.{key} = '{value}'"):
        load_config(path, env={})
    (tmp_path / "empty.yaml").write_text("cache: {}\n")
    with pytest.raises(ConfigError, match=rf"cache\.http\.{key} = '{value}'"):
        load_config(tmp_path / "empty.yaml", env={variable: value})


def test_connection_limits_from_file_and_environment(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("cache:\n  http:\n    header_timeout: 5s\n    max_connections: 64\n")
    config = load_config(path, env={})
    assert (config.http_header_timeout, config.http_max_connections) == (5.0, 64)
    config = load_config(path, env={"FLAME_CACHE_HTTP_MAX_CONNECTIONS": "8", "FLAME_CACHE_HTTP_HEADER_TIMEOUT": "0.5"})
    assert (config.http_header_timeout, config.http_max_connections) == (0.5, 8)
    (tmp_path / "empty.yaml").write_text("cache: {}\n")
    defaults = load_config(tmp_path / "empty.yaml", env={})
    assert (defaults.http_header_timeout, defaults.http_max_connections) == (10.0, 1024)

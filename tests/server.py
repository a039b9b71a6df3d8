"""Run the real flame-cache as a subprocess on 127.0.0.1 with free ports."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pyarrow.flight as flight
import yaml


_HANDED_OUT: set[int] = set()


def free_port() -> int:
    """A loopback port free now and not handed out before by this process:
    the kernel may give the same free port to two asks in a row (a server's
    Flight and HTTP ports), since neither is held until the server binds it."""
    while True:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        if port not in _HANDED_OUT:
            _HANDED_OUT.add(port)
            return port


def storage_snapshot(root: Path) -> dict[str, bytes | None]:
    """Every file below a storage root with its bytes, and every folder (None), by relative path."""
    return {str(p.relative_to(root)): p.read_bytes() if p.is_file() else None for p in root.rglob("*")}


def clean_env(**extra: str) -> dict[str, str]:
    """The test process's environment without FLAME_* settings, which would
    override the server's config file."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLAME_")}
    env.update(extra)
    return env


class CacheServer:
    """One flame-cache process. `storage` None means `storage: none`.

    `with_http=True` also serves the HTTP mirror on a free port, at `http_url`;
    `http` (a mapping) adds keys of `cache.http` beside its endpoint.
    `open_files=(soft, hard)` starts the process with that RLIMIT_NOFILE;
    `args` are more command-line options (e.g. `["--log-level", "DEBUG"]`).
    `scheme="grpc+tls"` (with `tls=` in `cache`) serves TLS; `client_options`
    are what a FlightClient needs to reach it (`tls_root_certs`).
    """

    def __init__(
        self,
        workdir: Path,
        storage: Path | None,
        *,
        with_http: bool = False,
        http: dict[str, Any] | None = None,
        open_files: tuple[int, int] | None = None,
        scheme: str = "grpc",
        client_options: dict[str, Any] | None = None,
        **cache: Any,
    ) -> None:
        self.workdir = workdir
        self.storage = storage
        self.port = free_port()
        self.endpoint = f"{scheme}://127.0.0.1:{self.port}"
        self.client_options = client_options or {}
        self.http_port = free_port() if with_http else None
        self.http_url = f"http://127.0.0.1:{self.http_port}" if with_http else None
        self.cache = {
            "endpoint": self.endpoint,
            "storage": str(storage) if storage is not None else "none",
            "http": {"endpoint": self.http_url or "", **(http or {})},
            **cache,
        }
        self.open_files = open_files
        self.args: list[str] = []
        self.config_path = workdir / f"flame-cluster-{self.port}.yaml"
        self.log_path = workdir / f"server-{self.port}.log"
        self.process: subprocess.Popen | None = None

    def start(self, timeout: float = 30.0) -> CacheServer:
        self.config_path.write_text(yaml.safe_dump({"cluster": {"name": "test"}, "cache": self.cache}))
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "flame_cache", "--config", str(self.config_path), *self.args],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=clean_env(),
            cwd=self.workdir,
            preexec_fn=self._limit_open_files if self.open_files else None,
        )
        self._wait_ready(timeout)
        return self

    def _limit_open_files(self) -> None:
        import resource

        resource.setrlimit(resource.RLIMIT_NOFILE, self.open_files)

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"flame-cache exited with {self.process.returncode}:\n{self.log()}")
            try:
                with self.client() as client:
                    list(client.list_actions(options=flight.FlightCallOptions(timeout=1)))
                if self.http_url is not None:
                    self._http_ready()
                return
            except self.not_ready:
                time.sleep(0.1)
        raise RuntimeError(f"flame-cache did not answer on {self.endpoint} within {timeout}s:\n{self.log()}")

    not_ready: tuple[type[Exception], ...] = (flight.FlightError, OSError)  # OSError: HTTP not up yet

    def _http_ready(self) -> None:
        """Flight may answer a moment before the HTTP mirror is up."""
        with urllib.request.urlopen(f"{self.http_url}/healthz", timeout=5) as reply:
            if reply.status != 200:
                raise RuntimeError(f"{self.http_url}/healthz answered {reply.status}")

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def client(self) -> flight.FlightClient:
        return flight.FlightClient(self.endpoint, **self.client_options)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int:
        if self.process is None or self.process.poll() is not None:
            return self.process.returncode if self.process else 0
        self.process.send_signal(sig)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait()

    def restart(self) -> CacheServer:
        self.stop()
        return self.start()

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

"""The servers under test, each a subprocess on 127.0.0.1 with a free port.

- `FlameCache`: `python -m flame_cache --config <generated yaml>`, disk storage
  in the run's work directory, every other setting at its default; the HTTP
  mirror on its own free port (rows skip it if it does not answer /healthz).
- `BareFlight`: bench/bare_flight.py, the transport limit.
- `Redis`: Debian's redis-server, no persistence, big values allowed.

`pid` is the server process itself (no shell in between), so its
/proc/<pid>/status is the server's memory.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.flight as flight
import yaml

from bench import http_adapter
from flame_cache.http import server as http_server

REPO = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def clean_env(**extra: str) -> dict[str, str]:
    """This environment without FLAME_* settings, which would override the config file."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLAME_")}
    env.update(extra)
    return env


def repo_env(checkout: Path = REPO) -> dict[str, str]:
    """clean_env, running the flame-cache (and bench) of `checkout` (this one
    by default) even where it is not installed."""
    path = os.environ.get("PYTHONPATH", "")
    return clean_env(PYTHONPATH=f"{checkout}{os.pathsep}{path}" if path else str(checkout))


class ServerError(RuntimeError):
    pass


class Server:
    """One server subprocess. Subclasses set `name`, `kind`, `endpoint`, `_command`."""

    name = "server"
    kind = "flight"  # which client adapter talks to it
    disk: Path | None = None  # a scratch folder the server writes into, removed when it stops

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.process: subprocess.Popen | None = None
        self.log_path = workdir / f"{self.name}-{self.port}.log"
        self.started_at = 0.0

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None and self.process.poll() is None else None

    def _command(self) -> list[str]:
        raise NotImplementedError

    def _env(self) -> dict[str, str]:
        return clean_env()

    def spawn(self) -> None:
        """Start the process without waiting for it to answer."""
        log = self.log_path.open("ab")
        self.started_at = time.monotonic()
        self.process = subprocess.Popen(
            self._command(), stdout=log, stderr=subprocess.STDOUT, env=self._env(), cwd=self.workdir
        )
        log.close()

    def start(self, timeout: float = 60.0) -> Server:
        self.spawn()
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    code, why = self.process.returncode, self.last_log_line()
                    raise ServerError(f"{self.name} exited with {code}: {why}\n{self.log()[-3000:]}")
                if self.ready():
                    return self
                time.sleep(0.02)
        except BaseException:
            self.stop()
            raise
        self.stop()
        raise ServerError(f"{self.name} did not answer on port {self.port} within {timeout}s:\n{self.log()[-3000:]}")

    def ready(self) -> bool:
        raise NotImplementedError

    def stop(self, timeout: float = 30.0) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.disk is not None:
            shutil.rmtree(self.disk, ignore_errors=True)

    def restart(self) -> Server:
        self.stop()
        return self.start()

    def last_log_line(self) -> str:
        lines = [line for line in self.log().splitlines() if line.strip()]
        return lines[-1].strip() if lines else "(no output)"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def address(self) -> dict[str, Any]:
        """What a worker process needs to build a client for this server."""
        return {"kind": self.kind, "endpoint": self.endpoint}


def flight_ready(endpoint: str) -> bool:
    """True once the server answers ListActions (any answer but 'unavailable')."""
    try:
        with flight.FlightClient(endpoint) as client:
            list(client.list_actions(options=flight.FlightCallOptions(timeout=1)))
        return True
    except (flight.FlightUnavailableError, flight.FlightTimedOutError):
        return False
    except pa.ArrowException:
        return True


class FlameCache(Server):
    name = "flame-cache"

    def __init__(
        self,
        workdir: Path,
        storage: Path | None = None,
        checksums: bool = True,
        http_variant: tuple[str, str] | None = None,
        checkout: Path = REPO,
        metrics: bool = True,
        **cache: Any,
    ) -> None:
        super().__init__(workdir)
        self.checksums = checksums  # False: bench/nochecksum.py, the same server summing nothing
        self.http_variant = http_variant  # (parser, loop): bench/httpvariant.py, else the server's own choice
        self.checkout = checkout  # whose flame_cache runs: this checkout, or a baseline's (bench/ab.py)
        self.metrics = metrics  # False: bench/nometrics.py, the same server with its request metrics taken out
        self.storage = storage or workdir / f"store-{self.port}"
        self.http_port = free_port()
        while self.http_port == self.port:  # two asks in a row may get the same free port
            self.http_port = free_port()
        self.endpoint = f"grpc://127.0.0.1:{self.port}"
        self.http_endpoint = f"http://127.0.0.1:{self.http_port}"
        self.cache = {
            "endpoint": self.endpoint,
            "storage": str(self.storage),
            "http": {"endpoint": self.http_endpoint},
            **cache,
        }
        self.config_path = workdir / f"flame-cluster-{self.port}.yaml"

    def _command(self) -> list[str]:
        self.config_path.write_text(yaml.safe_dump({"cluster": {"name": "bench"}, "cache": self.cache}))
        config = ["--config", str(self.config_path)]
        if self.http_variant is not None:
            http, loop = self.http_variant
            return [sys.executable, "-m", "bench.httpvariant", "--http", http, "--loop", loop, *config]
        module = "flame_cache" if self.checksums else "bench.nochecksum"
        if not self.metrics:
            module = "bench.nometrics"
        return [sys.executable, "-m", module, *config]

    def _env(self) -> dict[str, str]:
        return repo_env(self.checkout)

    def ready(self) -> bool:
        return flight_ready(self.endpoint)

    def http_status(self, wait: float = 10.0) -> tuple[bool, str]:
        """(True, "") once the HTTP mirror answers /healthz, else (False, why)
        after `wait` seconds (it starts after Flight, which `ready` waits for)."""
        deadline = time.monotonic() + wait
        while not (status := http_adapter.healthy(self.http_endpoint))[0] and time.monotonic() < deadline:
            time.sleep(0.1)
        return status

    def wipe(self) -> None:
        shutil.rmtree(self.storage, ignore_errors=True)


class BareFlight(Server):
    """bench/bare_flight.py; with `disk`, the disk-writing bare server."""

    name = "bare-flight"

    def __init__(self, workdir: Path, as_uploaded: bool = False, disk: bool = False) -> None:
        super().__init__(workdir)
        self.endpoint = f"grpc://127.0.0.1:{self.port}"
        self.as_uploaded = as_uploaded
        self.disk = workdir / f"bare-disk-{self.port}" if disk else None

    def _command(self) -> list[str]:
        extra = ["--as-uploaded"] if self.as_uploaded else []
        if self.disk is not None:
            extra += ["--disk", str(self.disk)]
        return [sys.executable, "-m", "bench.bare_flight", "--port", str(self.port), *extra]

    def _env(self) -> dict[str, str]:
        return repo_env()

    def ready(self) -> bool:
        return flight_ready(self.endpoint)


class BareAsgi(Server):
    """bench/bare_asgi.py: the HTTP transport limit, on uvicorn's `http` parser
    and `loop`; by default flame-cache's own (http/server.py), so both columns
    match. With `disk`, the disk-writing bare ASGI app."""

    name = "bare-asgi"
    kind = "http"

    def __init__(self, workdir: Path, http: str | None = None, loop: str | None = None, disk: bool = False) -> None:
        super().__init__(workdir)
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.http, self.loop = http or http_server.PARSER, loop or http_server.LOOP
        self.disk = workdir / f"asgi-disk-{self.port}" if disk else None

    def _command(self) -> list[str]:
        extra = ["--disk", str(self.disk)] if self.disk is not None else []
        return [sys.executable, "-m", "bench.bare_asgi", "--port", str(self.port), "--http", self.http, "--loop", self.loop, *extra]

    def _env(self) -> dict[str, str]:
        return repo_env()

    def ready(self) -> bool:
        return http_adapter.healthy(self.endpoint, timeout=1.0)[0]


REDIS_HINT = (
    "redis-server not found: install Debian's package (apt-get install -y redis-server) "
    "or pass --redis-server PATH; Redis rows are skipped"
)


class Redis(Server):
    name = "redis"
    kind = "redis"

    def __init__(self, workdir: Path, binary: str = "redis-server") -> None:
        super().__init__(workdir)
        self.binary = shutil.which(binary) or binary
        self.endpoint = f"redis://127.0.0.1:{self.port}"
        self.dir = workdir / f"redis-{self.port}"

    @staticmethod
    def find(binary: str = "redis-server") -> str | None:
        return shutil.which(binary)

    def version(self) -> str:
        try:
            out = subprocess.run([self.binary, "--version"], capture_output=True, text=True, timeout=10).stdout
        except OSError:
            return "unknown"
        return out.strip()

    def _command(self) -> list[str]:
        self.dir.mkdir(parents=True, exist_ok=True)
        return [
            self.binary,
            "--bind", "127.0.0.1",
            "--port", str(self.port),
            "--save", "",
            "--appendonly", "no",
            "--protected-mode", "yes",
            "--dir", str(self.dir),
            "--daemonize", "no",
            # the default 512 MiB value limit and 1 GiB query buffer would refuse 1 GiB objects
            "--proto-max-bulk-len", "2gb",
            "--client-query-buffer-limit", "2gb",
        ]  # fmt: skip

    def ready(self) -> bool:
        import redis

        try:
            return bool(redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=1).ping())
        except redis.RedisError:
            return False

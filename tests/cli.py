"""Run `flame-cache` as a user types it: the venv's console script, in a subprocess.

The environment is the test process's without FLAME_* settings, with HOME
pointing at a folder of the test's own (no ~/.flame/flame.yaml unless the
test writes one), and FLAME_CACHE_ENDPOINT naming the server when given.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from tests.server import clean_env

FLAME_CACHE = str(Path(sys.executable).with_name("flame-cache"))


@dataclass(frozen=True)
class Ran:
    """A finished command: its status, output, and peak resident memory."""

    status: int
    stdout: bytes
    stderr: bytes
    peak_rss: int  # bytes: VmHWM, sampled (see _watch)

    @property
    def err(self) -> str:
        return self.stderr.decode(errors="replace")

    @property
    def out(self) -> str:
        return self.stdout.decode(errors="replace")


def cli_env(home: Path, endpoint: str | None = None, **extra: str) -> dict[str, str]:
    home.mkdir(parents=True, exist_ok=True)
    env = clean_env(HOME=str(home), **extra)
    if endpoint is not None:
        env["FLAME_CACHE_ENDPOINT"] = endpoint
    return env


def run(
    *args: str,
    home: Path,
    endpoint: str | None = None,
    stdin: bytes | BinaryIO | None = None,
    stdout: BinaryIO | None = None,
    env: dict[str, str] | None = None,
    timeout: float = 120.0,
) -> Ran:
    """`flame-cache ARGS...`; `stdin` is bytes to send or a file to read from,
    `stdout` a file to write to (else captured, through files, so nothing
    blocks while the process is watched)."""
    environment = env if env is not None else cli_env(home, endpoint)
    with tempfile.TemporaryFile() as feed, tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        if isinstance(stdin, bytes):
            feed.write(stdin)
            feed.seek(0)
        source = feed if isinstance(stdin, bytes) else (stdin or subprocess.DEVNULL)
        proc = subprocess.Popen([FLAME_CACHE, *args], stdin=source, stdout=stdout or out, stderr=err, env=environment)
        peak = _watch(proc, timeout)
        out.seek(0)
        err.seek(0)
        return Ran(proc.returncode, out.read(), err.read(), peak)


def _watch(proc: subprocess.Popen, timeout: float) -> int:
    """Wait for `proc`; its peak RSS: VmHWM of /proc/<pid>/status, read every
    20 ms until it exits. Not wait4's ru_maxrss: that also counts the memory
    of the (v)forked test process before the exec, so it is never below
    pytest's own."""
    deadline, peak = time.monotonic() + timeout, 0
    while proc.poll() is None:
        peak = max(peak, _hwm(proc.pid))
        if time.monotonic() > deadline:
            proc.kill()
            proc.wait()
            raise subprocess.TimeoutExpired(proc.args, timeout)
        time.sleep(0.02)
    return peak


def _hwm(pid: int) -> int:
    """VmHWM of `pid` once it runs flame-cache (before the exec the numbers are pytest's); 0 if not readable."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    if fields.get("Name", "").strip() != "flame-cache" or "VmHWM" not in fields:
        return 0
    return int(fields["VmHWM"].split()[0]) * 1024

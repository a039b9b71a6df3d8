"""Progress on a terminal, nothing extra when piped (issue 15, done-when 3).

Under a pseudo-terminal (the pty module) `put` and `get` draw a progress bar
(rich's: bytes so far of the total, the rate, time left); with --quiet, or
piped, they do not, and `cat` / `get KEY -` write exactly the object's
bytes to stdout and nothing to stderr.
"""

from __future__ import annotations

import os
import pty
import select
import subprocess
import uuid
from pathlib import Path

import pytest

from tests.cli import FLAME_CACHE, cli_env, run

MiB = 2**20
BAR = "━".encode()  # rich's bar
SIZE = 48 * MiB


@pytest.fixture(scope="module")
def body() -> bytes:
    return b"".join(i.to_bytes(8, "little") * (MiB // 8) for i in range(SIZE // MiB)) + b"tail"


@pytest.fixture
def env(session_server, tmp_path) -> dict[str, str]:
    return cli_env(tmp_path / "home", session_server.endpoint, TERM="xterm-256color", COLUMNS="100")


def on_terminal(*args: str, env: dict[str, str], stdout=None, timeout: float = 120) -> tuple[int, bytes]:  # noqa: ANN001
    """Run with stdin and stderr (and stdout, unless given) on a new pty;
    everything the terminal showed."""
    master, slave = pty.openpty()
    proc = subprocess.Popen([FLAME_CACHE, *args], stdin=slave, stdout=stdout or slave, stderr=slave, env=env)
    os.close(slave)
    shown = b""
    while True:
        ready, _, _ = select.select([master], [], [], timeout)
        if not ready:
            proc.kill()
            raise TimeoutError(f"flame-cache {args} showed nothing for {timeout} s")
        try:
            data = os.read(master, 65536)
        except OSError:  # EIO: the other side closed
            break
        if not data:
            break
        shown += data
    os.close(master)
    return proc.wait(timeout), shown


def test_put_and_get_on_a_terminal_show_a_progress_bar(env, tmp_path, body):
    key = f"term-{uuid.uuid4().hex[:8]}/s/big.bin"
    (tmp_path / "big.bin").write_bytes(body)
    status, shown = on_terminal("put", str(tmp_path / "big.bin"), key, env=env)
    assert status == 0, shown
    assert BAR in shown and b"48.0/48.0 MiB" in shown, shown[-400:]
    assert shown.rstrip().endswith(f"{key} 1".encode())

    status, shown = on_terminal("get", key, str(tmp_path / "copy.bin"), env=env)
    assert status == 0 and BAR in shown and b"48.0/48.0 MiB" in shown, shown[-400:]
    assert (tmp_path / "copy.bin").read_bytes() == body

    with (tmp_path / "piped.bin").open("wb") as out:  # bytes to a file, the bar to the terminal
        status, shown = on_terminal("get", key, "-", env=env, stdout=out)
    assert status == 0 and BAR in shown
    assert (tmp_path / "piped.bin").read_bytes() == body

    for quiet in (("get", "-q", key, str(tmp_path / "quiet.bin")), ("put", "--quiet", str(tmp_path / "big.bin"), key)):
        status, shown = on_terminal(*quiet, env=env)
        assert status == 0 and BAR not in shown and b"MiB" not in shown, shown[-400:]


def test_piped_the_output_is_exactly_the_bytes_and_stderr_is_empty(session_server, tmp_path, body):
    key = f"pipe-{uuid.uuid4().hex[:8]}/s/big.bin"
    home, endpoint = tmp_path / "home", session_server.endpoint
    put = run("put", "-", key, home=home, endpoint=endpoint, stdin=body)
    assert (put.status, put.stdout, put.stderr) == (0, f"{key} 1\n".encode(), b"")
    for args in (("cat", key), ("get", key, "-")):
        ran = run(*args, home=home, endpoint=endpoint)
        assert ran.status == 0 and ran.stderr == b""
        assert len(ran.stdout) == len(body) and ran.stdout == body
    got = run("get", key, str(tmp_path / "copy.bin"), home=home, endpoint=endpoint)
    assert (got.status, got.stdout, got.stderr) == (0, b"", b"")
    assert Path(tmp_path / "copy.bin").read_bytes() == body

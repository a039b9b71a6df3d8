"""`flame-cache put | get | cat | ls | stat | rm` as a user types them (issue 15, done-when 2 and 4).

The commands run as subprocesses of the venv's console script (tests/cli.py)
against the session's real server, side by side with flamepy 0.6.0 (the
`flamepy_cache` fixture, in this process): what flamepy stores, the commands
list, describe and print; what they store, flamepy reads; `rm` leaves what
flamepy's `delete_objects` leaves. Failures exit 1 with one line on stderr
naming the key and the cause; usage errors exit 2.
"""

from __future__ import annotations

import io
import json
import subprocess
import uuid

import cloudpickle
import pyarrow as pa
import pytest
import yaml

from tests.cli import FLAME_CACHE, Ran, run
from tests.server import CacheServer, clean_env, free_port

MiB = 2**20
FLM = b"FLM\x00"  # flamepy's prefix of a cloudpickled object


@pytest.fixture
def cli(session_server, tmp_path):
    """`cli("ls", ...)` against the session server, with a HOME of its own."""

    def call(*args: str, **options) -> Ran:
        return run(*args, home=tmp_path / "home", endpoint=session_server.endpoint, **options)

    return call


def namespace(app: str | None = None) -> str:
    return f"{app or 'cli-' + uuid.uuid4().hex[:8]}/s-{uuid.uuid4().hex[:8]}"


def one_line(ran: Ran) -> str:
    lines = ran.err.splitlines()
    assert len(lines) == 1, ran.err
    return lines[0]


# -- ls, stat: what flamepy stored --------------------------------------------------


def test_ls_and_stat_describe_what_flamepy_stored(flamepy_cache, cli):
    ns = namespace()
    plain = flamepy_cache.put_object(ns, {"n": 1})
    patched = flamepy_cache.put_object(ns, [0])
    for step in (1, 2):
        patched = flamepy_cache.patch_object(patched, [step])
    table = flamepy_cache.put_object(ns, pa.table({"x": [1, 2, 3]}))

    listed = cli("ls", ns)
    assert (listed.status, listed.err) == (0, "")
    assert listed.out.splitlines() == sorted([plain.key, patched.key, table.key])

    described = {entry["key"]: entry for entry in json.loads(cli("ls", "--json", ns).out)}
    assert {k: (v["version"], v["deltas"], v["kind"]) for k, v in described.items()} == {
        plain.key: (plain.version, 0, "opaque"),
        patched.key: (patched.version, 2, "opaque"),
        table.key: (table.version, 0, "table"),
    }
    stat = json.loads(cli("stat", "--json", patched.key).out)
    assert stat == described[patched.key] and stat["version"] == 3
    assert set(stat) == {"key", "version", "size", "deltas", "kind", "updated", "expires"}
    lines = cli("stat", patched.key).out.splitlines()
    assert lines[:5] == [f"key      {patched.key}", "version  3", f"size     {stat['size']}", "deltas   2", "kind     opaque"]
    assert lines[5].startswith("updated  20") and lines[5].endswith("+00:00")
    app = ns.split("/")[0]
    assert cli("ls", f"{app}/*").out.splitlines() == listed.out.splitlines()
    assert plain.key in cli("ls").out.splitlines()


# -- cat, get, put: the same bytes as flamepy ---------------------------------------


def test_cat_and_get_write_the_bytes_flamepy_stored(flamepy_cache, cli, tmp_path):
    ns = namespace()
    obj = {"weights": list(range(1000)), "name": "model"}
    ref = flamepy_cache.put_object(ns, obj)
    shown = cli("cat", ref.key)
    assert (shown.status, shown.err) == (0, "")
    assert shown.stdout.startswith(FLM) and cloudpickle.loads(shown.stdout[len(FLM) :]) == obj

    body = bytes(range(256)) * (3 * MiB // 256 + 7)  # several of flamepy's 1 MiB rows
    (tmp_path / "upload.bin").write_bytes(body)
    uploaded = flamepy_cache.upload_object(f"{ns}/upload.bin", str(tmp_path / "upload.bin"))
    assert cli("cat", uploaded.key).stdout == body
    assert cli("get", uploaded.key, "-").stdout == body
    saved = cli("get", uploaded.key, str(tmp_path / "saved.bin"))
    assert (saved.status, saved.stdout, saved.stderr) == (0, b"", b"")
    assert (tmp_path / "saved.bin").read_bytes() == body


def test_what_put_stores_flamepy_reads(flamepy_cache, session_server, cli, tmp_path):
    ns = namespace()
    obj = {"from": "the command line", "values": [1.5, 2.5]}
    put = cli("put", "-", ns, stdin=FLM + cloudpickle.dumps(obj))
    assert (put.status, put.err) == (0, "")
    key, version = put.out.split()
    assert key.startswith(f"{ns}/") and version == "1"
    assert flamepy_cache.get_object(flamepy_cache.ObjectRef(session_server.endpoint, key, 0)) == obj

    (tmp_path / "update").write_bytes(FLM + cloudpickle.dumps(["replaced"]))
    replaced = cli("put", "--json", str(tmp_path / "update"), key)
    ref = json.loads(replaced.out)
    assert ref == {"endpoint": ref["endpoint"], "key": key, "version": 2}
    assert flamepy_cache.get_object(flamepy_cache.ObjectRef(ref["endpoint"], key, 0)) == ["replaced"]


def test_cat_of_a_native_table_is_its_arrow_stream(flamepy_cache, cli):
    table = pa.table({"n": [1, 2, 3], "s": ["a", "b", "c"]})
    ref = flamepy_cache.put_object(namespace(), table)
    read = pa.ipc.open_stream(io.BytesIO(cli("cat", ref.key).stdout)).read_all()
    assert read.replace_schema_metadata(None).equals(table)


# -- rm: what delete_objects does ---------------------------------------------------


@pytest.mark.parametrize("form", ["key", "namespace", "app/*"])
def test_rm_deletes_what_flamepy_delete_objects_deletes(flamepy_cache, cli, form):
    """Two twin apps with the same sessions and objects: flamepy deletes in one,
    `rm` in the other, the same selector; what is left is the same."""
    tag = uuid.uuid4().hex[:6]
    twins = {}
    for side in ("flamepy", "cli"):
        app = f"rm-{side}-{tag}"
        refs = [flamepy_cache.put_object(f"{app}/{session}", value) for session in ("s1", "s2") for value in (1, 2)]
        twins[side] = (app, refs)
    for side, (app, refs) in twins.items():
        selector = {"key": refs[0].key, "namespace": f"{app}/s1", "app/*": f"{app}/*"}[form]
        if side == "flamepy":
            flamepy_cache.delete_objects(selector)
        else:
            removed = cli("rm", selector)
            assert (removed.status, removed.out, removed.err) == (0, "", "")

    def survivors(side: str) -> list[tuple[str, int]]:
        app, refs = twins[side]
        left = set(cli("ls", f"{app}/*").out.splitlines())
        return [(ref.key.split("/")[1], i) for i, ref in enumerate(refs) if ref.key in left]

    assert survivors("cli") == survivors("flamepy")
    assert len(survivors("cli")) == {"key": 3, "namespace": 2, "app/*": 0}[form]


def test_rm_of_nothing_is_not_an_error(cli):
    assert cli("rm", f"{namespace()}/nothing").status == 0


# -- failures: exit 1, one line naming the key and the cause ------------------------


@pytest.mark.parametrize(
    "args, key, cause",
    [
        (("get", "{ns}/missing", "{tmp}/out"), "{ns}/missing", "not found"),
        (("cat", "{ns}/missing"), "{ns}/missing", "not found"),
        (("stat", "{ns}/missing"), "{ns}/missing", "not found"),
        (("cat", "app/../x"), "app/../x", "'..'"),
        (("get", "app/s/x:2", "-"), "app/s/x:2", "':'"),
        (("stat", "onlyone"), "onlyone", "1 segment"),
        (("put", "{tmp}/in", "a/b/c/d"), "a/b/c/d", "4 segments"),
        (("put", "{tmp}/no-such-file", "{ns}/x"), "{ns}/x", "No such file"),
        (("get", "{ns}/exists", "{tmp}/no-such-dir/out"), "{ns}/exists", "No such file"),
    ],
    ids=["get-missing", "cat-missing", "stat-missing", "bad-segment", "colon", "one-segment", "four-segments",
         "no-input-file", "no-output-dir"],
)
def test_a_failure_exits_1_with_one_line_naming_the_key_and_the_cause(cli, tmp_path, args, key, cause):
    ns = namespace()
    (tmp_path / "in").write_bytes(b"data")
    assert cli("put", str(tmp_path / "in"), f"{ns}/exists").status == 0
    fill = {"ns": ns, "tmp": str(tmp_path)}
    ran = cli(*(arg.format(**fill) for arg in args))
    line = one_line(ran)
    assert ran.status == 1 and ran.stdout == b""
    assert line.startswith(f"flame-cache {args[0]}: {key.format(**fill)}: ") and cause in line, line
    assert "Traceback" not in ran.err
    assert not list(tmp_path.glob(".*.part")) and not (tmp_path / "out").exists()


def test_an_unreachable_endpoint_exits_1_naming_the_key_and_the_endpoint(tmp_path):
    endpoint = f"grpc://127.0.0.1:{free_port()}"
    for args in (("stat", "app/s/k"), ("get", "app/s/k", str(tmp_path / "out")), ("ls", "app/s"), ("rm", "app/s")):
        ran = run(*args, "--endpoint", endpoint, home=tmp_path / "home")
        line = one_line(ran)
        assert ran.status == 1 and line.startswith(f"flame-cache {args[0]}: {args[1]}: cannot reach the cache at {endpoint}")
    ran = run("put", "-", "app/s/k", home=tmp_path / "home", endpoint=endpoint, stdin=b"x")
    assert ran.status == 1 and "cannot reach the cache" in one_line(ran)


@pytest.mark.parametrize(
    "args",
    [("put",), ("put", "only-a-file"), ("get",), ("stat", "a/b/c", "extra"), ("frobnicate",), ("ls", "--bogus"),
     ("rm",), ("--config", "x.yaml", "ls"), ("--log-level", "LOUD")],
    ids=["put-nothing", "put-no-key", "get-nothing", "stat-extra", "unknown-command",
         "unknown-option", "rm-nothing", "server-option-with-a-client-command", "bad-log-level"],
)
def test_usage_errors_exit_2(cli, args):
    ran = cli(*args)
    assert ran.status == 2 and "Usage:" in ran.err and ran.stdout == b"", ran.err


def test_every_command_has_its_help(cli):
    for command in ("put", "get", "cat", "ls", "stat", "rm", "serve"):
        shown = cli(command, "--help")
        assert shown.status == 0 and shown.out.startswith(f"Usage: flame-cache {command} "), shown.out
    assert all(command in cli("--help").out for command in ("put", "get", "cat", "ls", "stat", "rm", "serve"))


def test_the_endpoint_comes_from_the_current_context_of_flame_yaml(session_server, tmp_path):
    """No FLAME_CACHE_ENDPOINT: the current context's cache.endpoint, as flamepy reads it."""
    home = tmp_path / "home"
    (home / ".flame").mkdir(parents=True)
    (home / ".flame" / "flame.yaml").write_text(
        json.dumps(
            {
                "current-context": "here",
                "contexts": [
                    {"name": "elsewhere", "cache": {"endpoint": f"grpc://127.0.0.1:{free_port()}"}},
                    {"name": "here", "cache": {"endpoint": session_server.endpoint}},
                ],
            }
        )
    )
    ns = namespace()
    assert run("put", "-", f"{ns}/k", home=home, stdin=b"v").out == f"{ns}/k 1\n"
    missing = tmp_path / "other"
    (missing / ".flame").mkdir(parents=True)
    (missing / ".flame" / "flame.yaml").write_text("contexts: []\n")
    ran = run("stat", f"{ns}/k", home=missing)
    assert ran.status == 1 and "current-context is not set" in one_line(ran)


@pytest.mark.parametrize("args", [("--config", "{config}"), ("serve", "--config", "{config}"),
                                  ("--log-level", "WARNING", "--config", "{config}")],
                         ids=["alone", "serve", "server-options"])
def test_the_console_script_still_serves(tmp_path, args):
    """`flame-cache --config X` (the Dockerfile's CMD), `serve`, and server options alone:
    the server starts, answers, and stops cleanly on SIGTERM."""
    server = CacheServer(tmp_path, tmp_path / "storage")
    server.config_path.write_text(yaml.safe_dump({"cache": server.cache}))
    command = [FLAME_CACHE, *(arg.format(config=server.config_path) for arg in args)]
    with server.log_path.open("wb") as log:
        server.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=clean_env(HOME=str(tmp_path)))
        server._wait_ready(30)
        assert run("put", "-", "served/s/k", home=tmp_path / "home", endpoint=server.endpoint, stdin=b"up").status == 0
        assert server.stop() == 0, server.log()

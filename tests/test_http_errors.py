"""Bad requests over HTTP (SPEC 2, 5; issue 4.3), table-driven like test_errors.py.

Each gets its documented status and a JSON error `{"error", "message"}` whose message
names what was wrong; the storage directory is byte for byte as it was, with no
temporary file; the known objects keep their versions and bytes; and the server keeps
serving. Requests go out on raw sockets exactly as written here (`send`), since httpx
would tidy `..` and `.` segments away. Then clients that disconnect half way through an
upload, and odd bodies that are valid.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from urllib.parse import quote

import pyarrow as pa
import pytest

from tests.bad_keys import BAD_KEYS, BAD_PATH_ONLY_KEYS
from tests.flight_client import OPAQUE as OPAQUE_SCHEMA
from tests.flight_client import MiB, opaque
from tests.http_client import ARROW, RAW, ipc, request_head, send
from tests.protocols import FlightSide, HttpSide
from tests.server import CacheServer, storage_snapshot

MAX = 6 * MiB  # cache.limits.max_object_size
STREAMED = 4 * MiB  # an upload over this goes to a temporary file
SERVER_OPTIONS = dict(with_http=True, limits={"max_object_size": "6M"})  # for the `server` fixture in conftest
KEY, TABLE = "known/sess/obj", "known/sess/table"  # what {key} and {table} stand for
KNOWN_ROWS = [(1, "base", b"known base"), (2, "patch", b"known patch")]
ERROR_CODES = {
    400: "bad_request",
    404: "not_found",
    412: "precondition_failed",
    413: "too_large",
    415: "unsupported_media_type",
    416: "range_not_satisfiable",
}
DISCONNECTED = "the client disconnected during the upload"  # the server's log line


@pytest.fixture(scope="module")
def sides(server: CacheServer) -> Iterator[tuple[HttpSide, FlightSide]]:
    with HttpSide(server.http_url) as http, FlightSide(server.endpoint) as flight_side:
        yield http, flight_side


@pytest.fixture(scope="module")
def known(sides: tuple[HttpSide, FlightSide]) -> pa.Table:
    """The known objects, stored before any case runs; the table as it reads back."""
    http = sides[0]
    assert http.put(KEY, b"known base")["version"] == 1
    assert http.patch(KEY, b"known patch")["version"] == 2
    reply = http.http.put(f"/v1/objects/{TABLE}", content=ipc(pa.table({"n": [1, 2]})), headers={"Content-Type": ARROW})
    assert reply.status_code == 201, reply.text
    return pa.ipc.open_stream(http.http.get(f"/v1/objects/{TABLE}").content).read_all()


@pytest.fixture
def harmless(server: CacheServer, sides: tuple[HttpSide, FlightSide], known: pa.Table) -> Iterator[None]:
    """After the test: nothing on disk changed, no temporary file, the known objects are
    as they were (over both protocols), and the server serves."""
    before = storage_snapshot(server.storage)
    yield
    after = storage_snapshot(server.storage)
    changed = {name for name in set(before) | set(after) if before.get(name, 0) != after.get(name, 0)}
    assert not changed, f"storage changed: {sorted(changed)[:10]}"
    assert not [name for name in after if ".tmp-" in name]
    http, flight_side = sides
    assert http.read(KEY) == KNOWN_ROWS == flight_side.read(KEY)
    table = pa.ipc.open_stream(http.http.get(f"/v1/objects/{TABLE}").content).read_all()
    assert table.equals(known) and table.schema.metadata == known.schema.metadata
    assert http.http.get("/healthz").json() == {"status": "ok"}
    assert server.alive()


def names(message: str, what: str) -> bool:
    """`what` appears in the message as is or as Python would escape it (repr)."""
    return what in message or repr(what)[1:-1] in message


# -- the cases ------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    id: str
    method: str
    target: str  # sent as is; {key} and {table} stand for the known keys
    status: int
    names: tuple[str, ...]  # what the message must name
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes | Callable[[], Iterable[bytes]] | None = None  # a callable: its chunks, sent chunked


RAW_TYPE = (("Content-Type", RAW),)


# Every key Flight refuses, percent-encoded as a client would send it; then what only a
# URL can say. (id, key as sent in the path, what the message must name)
HOSTILE_KEYS = [
    (case_id, quote(key, safe="/"), what) for case_id, key, what in [*BAD_KEYS, *BAD_PATH_ONLY_KEYS]
] + [
    ("raw-backslash", "hk/s/a\\b", "a\\b"),
    ("pct-dotdot", "hk/%2e%2e/o", "'..'"),
    ("pct-dotdot-upper", "hk/s/%2E%2E", "'..'"),
    ("pct-dot", "hk/%2e/o", "'.'"),
    ("pct-slash-dotdot", "hk/s%2F..", "'..'"),  # %2F separates segments like '/'
    ("pct-slash-traversal", "hk/..%2F..%2F..%2Fetc%2Fpasswd", "hk/../../../etc/passwd"),
    ("pct-slash-five-segments", "a%2Fb%2Fc%2Fd%2Fe", "5 segment(s)"),
    ("pct-slash-empty-segment", "hk/s%2F", "empty"),
    ("header-injection", "hk/s/a%0D%0AX-Injected:%201", "line feed"),
    ("terminal-escape", "hk/s/%1B%5B31m", "\x1b[31m"),
    ("ten-kb-utf8-segment", "hk/" + "%C3%A9" * 5120 + "/o", "255"),
    ("invalid-utf8", "hk/s/%FF", "UTF-8"),
    ("overlong-utf8-slash", "hk/s/..%C0%AFetc", "UTF-8"),
    ("utf8-surrogate", "hk/s/%ED%A0%80", "UTF-8"),
]
BAD_NAMESPACES = [
    ("dotdot", "..", "'..'"),
    ("dotdot-session", "hk/..", "'..'"),
    ("pct-dotdot", "hk/%2e%2e", "'..'"),
    ("dot", ".", "'.'"),
    ("pct-slash-three-segments", "hk%2Fs%2Fo", "3 segment(s)"),
    ("three-segments", "a/b/c", "3 segment(s)"),
    ("nul", "hk/s%00", "s\x00"),
    ("control-char", "hk%01", "hk\x01"),
    ("ten-kb-segment", "x" * 10240, "255"),
    ("rtl-override", "hk/%E2%80%AEs", "RIGHT-TO-LEFT OVERRIDE"),
    ("absolute-path", "/etc", "empty"),
    ("backslash", "hk%5Cs", "hk\\s"),
    ("colon", "hk:s", "hk:s"),
    ("star", "*", "'*'"),
    ("star-app", "*/s", "'*'"),
    ("invalid-utf8", "hk/%FF", "UTF-8"),
]

KEY_CASES = [
    Case(f"{method.lower()}-key-{case_id}", method, f"/v1/objects/{key}", 400, (what,), *args)
    for case_id, key, what in HOSTILE_KEYS
    for method, *args in (
        ("GET",),
        ("HEAD",),
        ("DELETE",),
        ("PUT", RAW_TYPE, b"rejected"),
        ("PATCH", RAW_TYPE, b"rejected"),
    )
] + [
    Case(f"{method.lower()}-namespace-{case_id}", method, f"/v1/namespaces/{ns}", 400, (what,), *args)
    for case_id, ns, what in [*BAD_NAMESPACES, ("dotdot-app-star", "../*", "'..'")]
    for method, *args in (("POST", RAW_TYPE, b"rejected"), ("DELETE",))
    if not (method == "POST" and ns == "../*")
]

QUERY_CASES = [
    Case("list-prefix-dotdot", "GET", "/v1/objects?prefix=../x", 400, ("'..'",)),
    Case("list-prefix-four-segments", "GET", "/v1/objects?prefix=a/b/c/d", 400, ("4 segment(s)",)),
    Case("list-prefix-lone-star", "GET", "/v1/objects?prefix=*", 400, ("'*'",)),
    Case("list-prefix-nul", "GET", "/v1/objects?prefix=hk%00", 400, ("hk\x00",)),
    Case("list-prefix-rtl-override", "GET", "/v1/objects?prefix=hk%E2%80%AE", 400, ("RIGHT-TO-LEFT OVERRIDE",)),
    Case("list-prefix-invalid-utf8", "GET", "/v1/objects?prefix=%FF", 400, ("UTF-8", "%FF")),
    Case("list-prefix-ten-kb", "GET", "/v1/objects?prefix=" + "x" * 10240, 400, ("255",)),
    Case("namespaces-prefix-dotdot", "GET", "/v1/namespaces?prefix=..", 400, ("'..'",)),
    Case("namespaces-prefix-four-segments", "GET", "/v1/namespaces?prefix=a/b/c/d", 400, ("4 segment(s)",)),
    Case("list-limit-zero", "GET", "/v1/objects?limit=0", 400, ("limit",)),
    Case("list-limit-negative", "GET", "/v1/objects?limit=-1", 400, ("limit",)),
    Case("list-limit-over-1000", "GET", "/v1/objects?limit=1001", 400, ("limit", "1000")),
    Case("list-limit-letters", "GET", "/v1/objects?limit=ten", 400, ("limit",)),
    Case("list-limit-5000-digits", "GET", "/v1/objects?limit=" + "9" * 5000, 400, ("limit",)),
    Case("list-cursor-dotdot", "GET", "/v1/objects?cursor=../x", 400, ("cursor", "'..'")),
    Case("list-cursor-four-segments", "GET", "/v1/objects?cursor=a/b/c/d", 400, ("cursor", "4 segment(s)")),
    Case("list-cursor-one-segment", "GET", "/v1/objects?cursor=hk", 400, ("cursor", "1 segment(s)")),
    Case("list-cursor-nul", "GET", "/v1/objects?cursor=hk/s/%00", 400, ("cursor", "\x00")),
    Case("list-cursor-invalid-utf8", "GET", "/v1/objects?cursor=hk/s/%FF", 400, ("UTF-8",)),
    Case("get-version-negative", "GET", "/v1/objects/{key}?format=arrow&version=-1", 400, ("version",)),
    Case(
        "get-version-over-uint64",
        "GET",
        "/v1/objects/{key}?format=arrow&version=18446744073709551616",
        400,
        ("version", "18446744073709551615"),
    ),
    Case("get-version-5000-digits", "GET", "/v1/objects/{key}?format=arrow&version=" + "9" * 5000, 400, ("version",)),
    Case("get-version-letters", "GET", "/v1/objects/{key}?format=arrow&version=two", 400, ("version",)),
    Case("get-version-fraction", "GET", "/v1/objects/{key}?format=arrow&version=1.5", 400, ("version",)),
    Case("get-version-empty", "GET", "/v1/objects/{key}?format=arrow&version=", 400, ("version",)),
    Case("get-version-of-raw-bytes", "GET", "/v1/objects/{key}?format=raw&version=1", 400, ("'version'", "Arrow")),
    Case("get-chunked-raw-bytes", "GET", "/v1/objects/{key}?format=raw&chunked=true", 400, ("'chunked'",)),
    Case("get-chunked-not-boolean", "GET", "/v1/objects/{key}?chunked=maybe", 400, ("chunked",)),
    Case("get-format-unknown", "GET", "/v1/objects/{key}?format=xml", 400, ("format", "'arrow'")),
    Case("get-format-empty", "GET", "/v1/objects/{key}?format=", 400, ("format",)),
    Case("get-download-not-boolean", "GET", "/v1/objects/{key}?download=perhaps", 400, ("download",)),
    Case("get-delta-negative", "GET", "/v1/objects/{key}?delta=-1", 400, ("delta",)),
    Case("get-delta-letters", "GET", "/v1/objects/{key}?delta=first", 400, ("delta",)),
    Case("get-delta-5000-digits", "GET", "/v1/objects/{key}?delta=" + "9" * 5000, 400, ("delta",)),
    Case("get-delta-out-of-range", "GET", "/v1/objects/{key}?delta=1", 404, ("{key}", "1 delta(s)", "no delta 1")),
    Case("get-delta-huge", "GET", "/v1/objects/{key}?delta=" + "9" * 25, 404, ("{key}", "no delta 9999")),
    Case("get-delta-of-a-table", "GET", "/v1/objects/{table}?delta=0", 404, ("{table}", "no delta 0")),
    Case("get-missing", "GET", "/v1/objects/hk/s/none", 404, ("hk/s/none",)),
    Case("delete-missing", "DELETE", "/v1/objects/hk/s/none", 404, ("hk/s/none",)),
    Case("patch-missing", "PATCH", "/v1/objects/hk/s/none", 404, ("hk/s/none",), RAW_TYPE, b"x"),
]


HEADER_CASES = [
    Case("put-if-match-bare-token", "PUT", "/v1/objects/{key}", 400, ("If-Match", "'abc'"), (("If-Match", "abc"),), b"x"),
    Case("put-if-match-unquoted-version", "PUT", "/v1/objects/{key}", 400, ("If-Match", "'2'"), (("If-Match", "2"),), b"x"),
    Case("put-if-match-unbalanced-quote", "PUT", "/v1/objects/{key}", 400, ("If-Match",), (("If-Match", '"2'),), b"x"),
    Case("put-if-match-empty", "PUT", "/v1/objects/{key}", 400, ("If-Match",), (("If-Match", ""),), b"x"),
    Case("put-if-match-no-comma", "PUT", "/v1/objects/{key}", 400, ("If-Match",), (("If-Match", '"1" "2"'),), b"x"),
    Case(
        "put-if-match-not-a-version", "PUT", "/v1/objects/{key}", 412, ("names no version",), (("If-Match", '"abc"'),), b"x"
    ),
    Case("put-if-match-negative", "PUT", "/v1/objects/{key}", 412, ("names no version",), (("If-Match", '"-1"'),), b"x"),
    Case(
        "put-if-match-over-uint64",
        "PUT",
        "/v1/objects/{key}",
        412,
        ("names no version",),
        (("If-Match", '"18446744073709551616"'),),
        b"x",
    ),
    Case("put-if-match-stale", "PUT", "/v1/objects/{key}", 412, ("{key}", "version 2, not 1"), (("If-Match", '"1"'),), b"x"),
    Case(
        "put-if-match-missing-object",
        "PUT",
        "/v1/objects/hk/s/none",
        412,
        ("hk/s/none", "does not exist"),
        (("If-Match", '"1"'),),
        b"x",
    ),
    Case("put-if-match-star-missing", "PUT", "/v1/objects/hk/s/none", 412, ("hk/s/none",), (("If-Match", "*"),), b"x"),
    Case(
        "put-if-match-and-if-none-match",
        "PUT",
        "/v1/objects/{key}",
        400,
        ("not both",),
        (("If-Match", '"2"'), ("If-None-Match", "*")),
        b"x",
    ),
    Case("put-if-none-match-version", "PUT", "/v1/objects/{key}", 400, ("'*'",), (("If-None-Match", '"2"'),), b"x"),
    Case("put-if-none-match-garbage", "PUT", "/v1/objects/{key}", 400, ("If-None-Match",), (("If-None-Match", "new"),), b"x"),
    Case("put-if-none-match-existing", "PUT", "/v1/objects/{key}", 412, ("{key}", "version 2"), (("If-None-Match", "*"),), b"x"),
    Case("patch-if-match-garbage", "PATCH", "/v1/objects/{key}", 400, ("If-Match",), (("If-Match", "v2"),), b"x"),
    Case("patch-if-match-stale", "PATCH", "/v1/objects/{key}", 412, ("version 2, not 1",), (("If-Match", '"1"'),), b"x"),
    Case("patch-if-none-match-star", "PATCH", "/v1/objects/{key}", 412, ("{key}", "version 2"), (("If-None-Match", "*"),), b"x"),
    Case("get-if-none-match-garbage", "GET", "/v1/objects/{key}", 400, ("If-None-Match", "garbage"), (("If-None-Match", "garbage"),)),
    Case("get-if-none-match-unquoted", "GET", "/v1/objects/{key}", 400, ("If-None-Match",), (("If-None-Match", "2"),)),
    Case("head-if-none-match-garbage", "HEAD", "/v1/objects/{key}", 400, (), (("If-None-Match", "garbage"),)),
    Case("get-range-past-the-end", "GET", "/v1/objects/{key}", 416, ("10 bytes", "bytes=100-"), (("Range", "bytes=100-"),)),
    Case("get-range-suffix-of-zero", "GET", "/v1/objects/{key}", 416, ("bytes=-0",), (("Range", "bytes=-0"),)),
    Case("get-range-5000-digits", "GET", "/v1/objects/{key}", 416, ("past its end",), (("Range", "bytes=" + "9" * 5000 + "-"),)),
]
WRITES = [("PUT", "/v1/objects/hk/s/typed"), ("POST", "/v1/namespaces/hk/s"), ("PATCH", "/v1/objects/{key}")]
CONTENT_TYPE_CASES = [
    Case(f"{method.lower()}-{ctype.split(';')[0].replace('/', '-')}", method, target, 415, (ctype.split(";")[0],), (("Content-Type", ctype),), b"{}")
    for method, target in WRITES
    for ctype in (
        "application/json",
        "text/plain; charset=utf-8",
        "multipart/form-data; boundary=x",
        "application/x-www-form-urlencoded",
        "application/vnd.apache.arrow.file",  # the IPC file format: not what DoPut takes
        "application/octet-streams",
    )
]


def _stream(table: pa.Table, *, rows: int | None = None) -> bytes:
    return ipc(table if rows is None else pa.Table.from_batches(table.to_batches(max_chunksize=rows)))


OPAQUE_STREAM = _stream(opaque(b"a" * 3000, row_bytes=1000))
TABLE_STREAM = _stream(pa.table({"n": list(range(1000))}))
BIG_STREAM = _stream(opaque(b"b" * (5 * MiB), row_bytes=MiB))  # over 4 MiB: streamed to a temporary file
DICT_OPAQUE = pa.table({"version": pa.array([0], pa.uint64()), "data": pa.array([b"x"]).dictionary_encode()})
ARROW_FILE = pa.BufferOutputStream()
with pa.ipc.new_file(ARROW_FILE, opaque(b"x").schema) as _writer:
    _writer.write_table(opaque(b"x"))


def _arrow(case_id: str, method: str, target: str, body: bytes, status: int, what: tuple[str, ...]) -> Case:
    return Case(case_id, method, target, status, what, (("Content-Type", ARROW),), body)


ARROW_CASES = [
    _arrow("put-arrow-garbage", "PUT", "/v1/objects/hk/s/a", b"\xff" * 100, 400, ("Arrow IPC stream",)),
    _arrow("post-arrow-garbage", "POST", "/v1/namespaces/hk/s", b"\x00garbage" * 20, 400, ("Arrow IPC stream",)),
    _arrow("patch-arrow-garbage", "PATCH", "/v1/objects/{key}", b"\xff" * 100, 400, ("Arrow IPC stream",)),
    _arrow("put-arrow-json", "PUT", "/v1/objects/hk/s/a", b'{"version": 1, "data": "x"}', 400, ("Arrow IPC stream",)),
    _arrow("put-arrow-empty-body", "PUT", "/v1/objects/hk/s/a", b"", 400, ("Arrow IPC stream",)),
    _arrow("put-arrow-file-format", "PUT", "/v1/objects/hk/s/a", ARROW_FILE.getvalue().to_pybytes(), 400, ("Arrow IPC stream",)),
    _arrow("put-arrow-cut-in-schema", "PUT", "/v1/objects/hk/s/a", OPAQUE_STREAM[:50], 400, ("Arrow IPC stream",)),
    _arrow("put-arrow-cut-in-batch", "PUT", "/v1/objects/hk/s/a", OPAQUE_STREAM[:1500], 400, ("Arrow IPC stream",)),
    _arrow("put-arrow-replace-cut", "PUT", "/v1/objects/{key}", OPAQUE_STREAM[:1500], 400, ("Arrow IPC stream",)),
    _arrow("post-arrow-cut-in-batch", "POST", "/v1/namespaces/hk/s", OPAQUE_STREAM[:1500], 400, ("Arrow IPC stream",)),
    _arrow("patch-arrow-cut-in-batch", "PATCH", "/v1/objects/{key}", OPAQUE_STREAM[:1500], 400, ("Arrow IPC stream",)),
    _arrow("put-arrow-table-cut", "PUT", "/v1/objects/hk/s/a", TABLE_STREAM[: len(TABLE_STREAM) // 2], 400, ("Arrow IPC stream",)),
    _arrow(
        "put-arrow-streamed-then-cut",
        "PUT",
        "/v1/objects/hk/s/big",
        BIG_STREAM[: STREAMED + MiB // 2],
        400,
        ("Arrow IPC stream",),
    ),
    _arrow("patch-arrow-native-table", "PATCH", "/v1/objects/{key}", TABLE_STREAM, 400, ("opaque schema", "n: int64")),
    _arrow("patch-arrow-dictionary-encoded", "PATCH", "/v1/objects/{key}", ipc(DICT_OPAQUE), 400, ("opaque schema", "dictionary")),
    _arrow("patch-arrow-onto-a-table", "PATCH", "/v1/objects/{table}", OPAQUE_STREAM, 400, ("{table}", "native Arrow table")),
    Case("patch-raw-onto-a-table", "PATCH", "/v1/objects/{table}", 400, ("{table}", "native Arrow table"), RAW_TYPE, b"x"),
]


def _chunks(total: int, piece: int = MiB) -> Callable[[], Iterator[bytes]]:
    return lambda: (b"z" * min(piece, total - i) for i in range(0, total, piece))


def _declared(method: str, target: str, what: tuple[str, ...], ctype: str = RAW) -> Case:
    """Content-Length over the limit, and no body sent: the answer comes from the header."""
    return Case(
        f"{method.lower()}-declared-{'arrow-' if ctype == ARROW else ''}too-large",
        method,
        target,
        413,
        what,
        (("Content-Type", ctype), ("Content-Length", str(MAX + 1))),
    )


TOO_LARGE_CASES = [
    _declared("PUT", "/v1/objects/hk/s/big", (str(MAX), "max_object_size")),
    _declared("PUT", "/v1/objects/hk/s/big", (str(MAX),), ARROW),
    _declared("POST", "/v1/namespaces/hk/s", (str(MAX),)),
    _declared("PATCH", "/v1/objects/{key}", ("{key}", "with this patch", str(MAX))),
    Case("put-chunked-too-large", "PUT", "/v1/objects/hk/s/big", 413, (str(MAX),), RAW_TYPE, _chunks(MAX + MiB)),
    Case("put-chunked-replace-too-large", "PUT", "/v1/objects/{key}", 413, ("{key}", str(MAX)), RAW_TYPE, _chunks(MAX + MiB)),
    Case("post-chunked-too-large", "POST", "/v1/namespaces/hk/s", 413, (str(MAX),), RAW_TYPE, _chunks(MAX + MiB)),
    Case("patch-chunked-too-large", "PATCH", "/v1/objects/{key}", 413, ("with this patch",), RAW_TYPE, _chunks(MAX + MiB)),
    Case(
        "put-chunked-arrow-table-too-large",  # refused as the bytes pass the limit, not once the table is read
        "PUT",
        "/v1/objects/hk/s/big",
        413,
        (str(MAX),),
        (("Content-Type", ARROW),),
        lambda: iter([_stream(pa.table({"b": pa.array([b"t" * MiB] * 7)}), rows=1)]),
    ),
    Case(
        "patch-past-the-object-limit",  # the patch fits alone, not with the object
        "PATCH",
        "/v1/objects/{key}",
        413,
        ("{key}", "with this patch", str(MAX)),
        RAW_TYPE,
        b"p" * (MAX - 5),
    ),
]

CASES = KEY_CASES + QUERY_CASES + HEADER_CASES + CONTENT_TYPE_CASES + ARROW_CASES + TOO_LARGE_CASES


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_request_is_refused_clearly_and_harms_nothing(server: CacheServer, harmless: None, case: Case):
    """The documented status, a JSON error whose message names what was wrong; nothing
    on disk changes, the known objects stay as they were, and the server keeps serving."""
    target = case.target.replace("{key}", KEY).replace("{table}", TABLE)
    body = case.body() if callable(case.body) else case.body
    answer = send(server.http_port, case.method, target, case.headers, body)

    assert answer.status == case.status, answer.body[:500]
    if case.method != "HEAD":
        assert answer.headers["content-type"] == "application/json"
        error = answer.json()
        assert set(error) == {"error", "message"} and error["error"] == ERROR_CODES[case.status]
        expected = [what.replace("{key}", KEY).replace("{table}", TABLE) for what in case.names]
        missing = [what for what in expected if not names(error["message"], what)]
        assert not missing, f"message does not name {missing}: {error['message'][:500]!r}"
        assert len(error["message"]) < 2000, "a hostile input came back whole"


# -- what is not refused: ignored headers, and %2F ---------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        {"Range": "bytes=abc"},
        {"Range": "bytes=5-2"},  # last before first
        {"Range": "chars=0-1"},  # a unit we do not know
        {"Range": "bytes=0-1,4-5"},  # several ranges
        {"Range": "bytes="},
        {"Range": "bytes=0-1", "If-Range": "Wed, 21 Oct 2015 07:28:00 GMT"},  # a date: not a version
        {"Range": "bytes=0-1", "If-Range": "garbage"},
    ],
    ids=["letters", "backwards", "other-unit", "several-ranges", "empty", "if-range-date", "if-range-garbage"],
)
def test_a_range_the_server_cannot_use_is_ignored(server: CacheServer, harmless: None, headers: dict[str, str]):
    """RFC 9110 lets a server ignore Range: a malformed one, another unit, several ranges,
    or an If-Range that names no current version get the whole base, 200."""
    answer = send(server.http_port, "GET", f"/v1/objects/{KEY}", headers.items())
    assert (answer.status, answer.body, answer.headers["etag"]) == (200, b"known base", '"2"')


def test_a_percent_encoded_slash_separates_segments(server: CacheServer, harmless: None):
    """A segment can never hold '/', so %2F means what '/' means (Swagger UI's "try it
    out" sends keys so): the same key, checked segment by segment."""
    put = send(server.http_port, "PUT", "/v1/objects/hk%2Fslash%2Fobj", RAW_TYPE, b"slashed")
    assert (put.status, put.json()["key"]) == (201, "hk/slash/obj")
    assert send(server.http_port, "GET", "/v1/objects/hk/slash/obj").body == b"slashed"
    assert send(server.http_port, "DELETE", "/v1/namespaces/hk%2Fslash").json() == {"deleted": 1}


# -- clients that vanish mid-upload --------------------------------------------------


@dataclass(frozen=True)
class Cutoff:
    id: str
    method: str
    target: str
    headers: tuple[tuple[str, str], ...]
    sent: bytes  # the part of the body sent before the connection closes
    streamed: bool = False  # past 4 MiB: the server has a temporary file open when it closes


def _chunked(data: bytes, piece: int = 64 * 1024) -> bytes:
    return b"".join(b"%x\r\n%b\r\n" % (len(data[i : i + piece]), data[i : i + piece]) for i in range(0, len(data), piece))


HALF = b"h" * 50_000
BIG_HALF = b"H" * (STREAMED + 3 * MiB // 2)  # the server takes pieces of 1 MiB: over 4 MiB of them
CUTOFFS = [
    Cutoff("put-replace-half-of-content-length", "PUT", "/v1/objects/{key}", (("Content-Length", "100000"),), HALF),
    Cutoff("put-create-half-of-content-length", "PUT", "/v1/objects/hk/s/cut", (("Content-Length", "100000"),), HALF),
    Cutoff("post-half-of-content-length", "POST", "/v1/namespaces/hk/s", (("Content-Length", "100000"),), HALF),
    Cutoff("patch-half-of-content-length", "PATCH", "/v1/objects/{key}", (("Content-Length", "100000"),), HALF),
    Cutoff(
        "put-replace-streamed-half",
        "PUT",
        "/v1/objects/{key}",
        (("Content-Length", str(MAX - 1)),),
        BIG_HALF,
        streamed=True,
    ),
    Cutoff("post-streamed-half", "POST", "/v1/namespaces/hk/s", (("Content-Length", str(MAX - 1)),), BIG_HALF, True),
    Cutoff(
        "put-arrow-half",
        "PUT",
        "/v1/objects/{key}",
        (("Content-Type", ARROW), ("Content-Length", str(len(OPAQUE_STREAM)))),
        OPAQUE_STREAM[:1500],
    ),
    Cutoff("put-chunked-cut", "PUT", "/v1/objects/{key}", (("Transfer-Encoding", "chunked"),), _chunked(HALF)),
    Cutoff(
        "put-chunked-cut-inside-a-chunk",
        "PUT",
        "/v1/objects/hk/s/cut",
        (("Transfer-Encoding", "chunked"),),
        b"%x\r\n" % len(HALF) + HALF[:1000],
    ),
    Cutoff("patch-chunked-cut", "PATCH", "/v1/objects/{key}", (("Transfer-Encoding", "chunked"),), _chunked(HALF)),
    Cutoff(
        "post-chunked-streamed-cut", "POST", "/v1/namespaces/hk/s", (("Transfer-Encoding", "chunked"),), _chunked(BIG_HALF), True
    ),
]


def _wait_for(condition: Callable[[], bool], what: str) -> None:
    for _ in range(1200):  # polled, at most a minute
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"gave up waiting: {what}")


@pytest.mark.parametrize("cut", CUTOFFS, ids=[c.id for c in CUTOFFS])
def test_a_client_gone_mid_upload_changes_nothing(server: CacheServer, harmless: None, cut: Cutoff):
    """A client that sends part of a body (with Content-Length, or chunked) and closes
    the connection stores nothing: no object, no temporary file, the old version kept."""
    logged = server.log().count(DISCONNECTED)
    target = cut.target.replace("{key}", KEY)
    headers = {"Host": f"127.0.0.1:{server.http_port}", "Content-Type": RAW, **dict(cut.headers)}
    with socket.create_connection(("127.0.0.1", server.http_port), timeout=60) as sock:
        sock.sendall(request_head(cut.method, target, headers) + cut.sent)
        if cut.streamed:
            _wait_for(
                lambda: any(".tmp-" in name for name in storage_snapshot(server.storage)),
                "the server never opened a temporary file for the upload",
            )
    _wait_for(lambda: server.log().count(DISCONNECTED) > logged, f"the server never logged {DISCONNECTED!r}")


# -- odd bodies that are valid -----------------------------------------------------------


def test_odd_but_valid_arrow_bodies_are_stored_as_sent(sides: tuple[HttpSide, FlightSide]):
    """Dictionary-encoded batches make a native table, read back with the same values;
    an opaque stream with no batches, or only empty ones, is an empty object and an empty
    patch; a stream that ends without its end-of-stream marker ends there (Arrow allows
    it); a native table without rows keeps its schema."""
    side = sides[0]

    def put(key: str, body: bytes) -> pa.Table | None:
        reply = side.http.put(f"/v1/objects/{key}", content=body, headers={"Content-Type": ARROW})
        assert reply.status_code == 201, reply.text
        got = side.http.get(f"/v1/objects/{key}", params={"format": "arrow"})
        return pa.ipc.open_stream(got.content).read_all()

    schema = pa.schema([("city", pa.dictionary(pa.int32(), pa.utf8())), ("n", pa.int64())])
    batches = [
        pa.record_batch([pa.array(["Oslo", "Lima"]).dictionary_encode(), pa.array([1, 2])], schema=schema),
        pa.record_batch([pa.array(["Pune", "Oslo"]).dictionary_encode(), pa.array([3, 4])], schema=schema),
    ]
    assert put("odd/s/dict", ipc(pa.Table.from_batches(batches))).column("city").to_pylist() == [
        "Oslo",
        "Lima",
        "Pune",
        "Oslo",
    ]

    empty_rows = pa.record_batch([pa.array([], pa.uint64()), pa.array([], pa.binary())], schema=OPAQUE_SCHEMA)
    put("odd/s/no-batches", ipc(OPAQUE_SCHEMA.empty_table()))
    put("odd/s/empty-batches", ipc(pa.Table.from_batches([empty_rows] * 2)))
    for key in ("odd/s/no-batches", "odd/s/empty-batches"):
        assert side.http.get(f"/v1/objects/{key}").content == b""
    patched = side.http.patch(
        "/v1/objects/odd/s/no-batches", content=ipc(pa.Table.from_batches([empty_rows])), headers={"Content-Type": ARROW}
    )
    assert patched.json()["version"] == 2
    assert side.read("odd/s/no-batches") == [(1, "base", b""), (2, "patch", b"")]

    put("odd/s/no-eos", OPAQUE_STREAM[:-8])  # without the 8 bytes of the end-of-stream marker
    assert side.http.get("/v1/objects/odd/s/no-eos").content == b"a" * 3000

    table = put("odd/s/no-rows", ipc(pa.schema([("a", pa.int64()), ("b", pa.utf8())]).empty_table()))
    assert table.num_rows == 0 and table.schema.names == ["a", "b"]

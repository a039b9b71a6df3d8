"""The object routes' fast lane (http/lane.py) answers exactly as FastAPI's routing does.

A request without a query string takes the lane; the same request with a
query parameter at its default value (`?download=false`, HEAD's
`?format=raw`, PUT's and PATCH's `?ttl=0` on an object without a TTL) is routed by
FastAPI to the same function. Each pair is sent to a real server and must
get the same status, headers (but Date) and body.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.http_client import ARROW, RAW
from tests.server import CacheServer

SERVER_OPTIONS = dict(with_http=True)
BODY = bytes(range(256)) * 8  # 2 KiB


@pytest.fixture
def http(server: CacheServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.http_url, timeout=30) as client:
        yield client


def seen(response: httpx.Response, *, key: str = "", twin: str = "") -> tuple:
    """What a client sees of a response; the twin's key named as this one's.
    A twin is another object, written a moment apart: its Last-Modified may
    name the next second, so with `key` named (both sides of a comparison
    with a twin) only the header's presence is compared."""
    headers = {name: value for name, value in response.headers.items() if name != "date"}
    body = response.content
    if twin:
        headers = {name: value.replace(twin, key) for name, value in headers.items()}
        body = body.replace(twin.encode(), key.encode())
    if twin or key:
        headers = {name: "(a date)" if name == "last-modified" else value for name, value in headers.items()}
    return response.status_code, headers, body


READS = [
    ("plain", {}),
    ("not modified", {"If-None-Match": '"1"'}),
    ("other version", {"If-None-Match": '"9"'}),
    ("range", {"Range": "bytes=10-99"}),
    ("range past the end", {"Range": "bytes=99999-"}),
    ("if-range that holds", {"Range": "bytes=0-9", "If-Range": '"1"'}),
    ("if-range that fails", {"Range": "bytes=0-9", "If-Range": '"7"'}),
    ("arrow", {"Accept": ARROW}),
    ("bad if-none-match", {"If-None-Match": "garbage"}),
]


@pytest.mark.parametrize("name, headers", READS, ids=[name for name, _ in READS])
def test_reads_answer_alike(http: httpx.Client, name: str, headers: dict[str, str]) -> None:
    http.put("/v1/objects/lane/reads/o", content=BODY, headers={"Content-Type": RAW})
    for path in ("/v1/objects/lane/reads/o", "/v1/objects/lane/reads/missing", "/v1/objects/lane/.bad/o"):
        lane = http.get(path, headers=headers)
        routed = http.get(path + "?download=false", headers=headers)
        assert seen(lane) == seen(routed), (name, path)
        lane, routed = http.head(path, headers=headers), http.head(path + "?format=raw", headers=headers)
        if "Accept" not in headers:  # ?format=raw would override Accept
            assert seen(lane) == seen(routed), (name, path)


WRITES = [
    ("create", {}, None),
    ("replace", {}, "exists"),
    ("if-match that holds", {"If-Match": '"1"'}, "exists"),
    ("if-match that fails", {"If-Match": '"5"'}, "exists"),
    ("if-match on nothing", {"If-Match": '"1"'}, None),
    ("create only, exists", {"If-None-Match": "*"}, "exists"),
    ("both conditions", {"If-Match": '"1"', "If-None-Match": "*"}, None),
    ("wrong checksum", {"X-Flame-Checksum": "crc32c=AAAAAA=="}, None),
    ("bad checksum header", {"X-Flame-Checksum": "md5=x"}, None),
    ("unsupported type", {"Content-Type": "text/plain"}, None),
]


@pytest.mark.parametrize("method", ["PUT", "PATCH"])
@pytest.mark.parametrize("name, headers, state", WRITES, ids=[name for name, _, _ in WRITES])
def test_writes_answer_alike(http: httpx.Client, method: str, name: str, headers: dict[str, str], state: str | None) -> None:
    slug = name.replace(" ", "-").replace(",", "")
    keys = {"lane": f"lane/writes/{method}-{slug}-a", "routed": f"lane/writes/{method}-{slug}-b"}
    answers = {}
    for way, key in keys.items():
        if state == "exists":
            http.put(f"/v1/objects/{key}", content=b"before", headers={"Content-Type": RAW})
        query = "" if way == "lane" else "?ttl=0"
        answers[way] = http.request(
            method, f"/v1/objects/{key}{query}", content=BODY, headers={"Content-Type": RAW, **headers}
        )
        answers[way + " after"] = http.get(f"/v1/objects/{key}?format=arrow")  # every row: a patch's delta too
    lane, routed = keys["lane"], keys["routed"]
    assert seen(answers["lane"], key=lane) == seen(answers["routed"], key=lane, twin=routed), name
    after = seen(answers["lane after"], key=lane)
    assert after == seen(answers["routed after"], key=lane, twin=routed), name

"""Request text in the log, If-Match's strong comparison, Last-Modified vs Date."""

from __future__ import annotations

import time
from collections.abc import Iterator
from email.utils import parsedate_to_datetime

import httpx
import pyarrow as pa
import pyarrow.flight as flight
import pytest

from tests.http_client import RAW, put
from tests.server import CacheServer

SERVER_OPTIONS = dict(with_http=True)  # for the `server` fixture in conftest

# C0 (ESC, BEL, CR, backspace), DEL and C1 (CSI) as they would reach a terminal.
CONTROLS = ["\x1b", "\x07", "\r", "\x08", "\x7f", "\x9b"]


@pytest.fixture
def http(server: CacheServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.http_url, timeout=30) as client:
        yield client


# -- the log -----------------------------------------------------------------


def test_control_characters_from_requests_are_escaped_in_the_log(server: CacheServer, http: httpx.Client) -> None:
    """`%1B[2J` in a path must not clear the terminal of whoever reads the log."""
    marker = "ctrl-marker"
    for path in (
        f"/v1/objects/{marker}/s1/%1B[2J%1B]0;owned%07",
        f"/v1/objects/{marker}/s1/%0Dforged%08line%7F%C2%9B31m",
    ):
        assert http.get(path).status_code == 400  # a bad key, refused and logged
        assert http.put(path, content=b"x", headers={"Content-Type": RAW}).status_code == 400
    with server.client() as client:
        with pytest.raises(pa.ArrowException):  # ArrowInvalid: a bad key
            client.do_get(flight.Ticket(f"{marker}/s1/\x1b[2J\x9b\x07".encode())).read_all()
        # A patch with a schema of its own is refused naming the schema, field names and all.
        schema = pa.schema([(f"{marker}\x1b[2J\x1b]0;owned\x07", pa.int64())])
        writer, _ = client.do_put(flight.FlightDescriptor.for_command(b"PATCH:flight/s1/o"), schema)
        with pytest.raises(pa.ArrowException):
            writer.write_table(pa.table({schema.names[0]: [1]}, schema=schema))
            writer.close()
    deadline = time.monotonic() + 5
    while server.log().count(marker) < 5 and time.monotonic() < deadline:
        time.sleep(0.05)
    logged = server.log_path.read_bytes()
    assert logged.count(marker.encode()) >= 5, "the refusals were not logged"
    lines = [line for line in logged.split(b"\n") if marker.encode() in line]
    for line in lines:
        text = line.decode("utf-8")
        found = [repr(c) for c in CONTROLS if c in text]
        assert not found, f"raw {', '.join(found)} in log line {text!r}"
    assert any(b"\\x1b[2J" in line for line in lines), "ESC should show as \\x1b"


# -- If-Match is a strong comparison -------------------------------------------


def test_a_weak_etag_never_matches_if_match(http: httpx.Client) -> None:
    """RFC 9110 13.1.1: If-Match uses the strong comparison, so W/"1" is not "1"."""
    assert put(http, "strong/s1/o", b"one").status_code == 201
    refused = put(http, "strong/s1/o", b"two", **{"If-Match": 'W/"1"'})
    assert refused.status_code == 412, refused.text
    assert refused.json()["error"] == "precondition_failed"
    assert "W/" in refused.json()["message"]
    patched = http.patch("/v1/objects/strong/s1/o", content=b"d", headers={"Content-Type": RAW, "If-Match": 'W/"1"'})
    assert patched.status_code == 412
    got = http.get("/v1/objects/strong/s1/o")
    assert got.content == b"one" and got.headers["etag"] == '"1"' and got.headers["x-flame-deltas"] == "0"

    assert put(http, "strong/s1/o", b"two", **{"If-Match": 'W/"1", "1"'}).status_code == 200  # the strong one matches
    assert put(http, "strong/s1/o", b"three", **{"If-Match": '"2"'}).status_code == 200


def test_if_none_match_keeps_the_weak_comparison(http: httpx.Client) -> None:
    put(http, "strong/s2/o", b"one")
    assert http.get("/v1/objects/strong/s2/o", headers={"If-None-Match": 'W/"1"'}).status_code == 304


# -- Last-Modified is never later than Date ------------------------------------


def test_last_modified_is_never_later_than_date(http: httpx.Client) -> None:
    """RFC 9110 8.8.2.1. A fresh object's mtime falls in the current second;
    the Date must not name an earlier one. Fresh objects for up to 3 s (the
    server's clock crosses at least two second boundaries)."""
    deadline, checked = time.monotonic() + 3, 0
    while time.monotonic() < deadline and checked < 2000:
        key = f"dates/s1/o{checked}"
        assert put(http, key, b"x").status_code == 201
        for reply in (http.head(f"/v1/objects/{key}"), http.get(f"/v1/objects/{key}")):
            modified = parsedate_to_datetime(reply.headers["last-modified"])
            date = parsedate_to_datetime(reply.headers["date"])
            assert modified <= date, f"Last-Modified {reply.headers['last-modified']} > Date {reply.headers['date']}"
            assert len(reply.headers.get_list("date")) == 1
        checked += 1
    assert checked >= 20


def test_if_range_compares_strongly(http: httpx.Client) -> None:
    """RFC 9110 13.1.5: a weak If-Range tag never matches, so the whole base comes back."""
    put(http, "strong/s3/o", b"0123456789")
    assert http.get("/v1/objects/strong/s3/o", headers={"Range": "bytes=0-1", "If-Range": '"1"'}).status_code == 206
    weak = http.get("/v1/objects/strong/s3/o", headers={"Range": "bytes=0-1", "If-Range": 'W/"1"'})
    assert weak.status_code == 200 and weak.content == b"0123456789"

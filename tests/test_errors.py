"""Bad requests over Arrow Flight (SPEC 2, 4.5): each gets the right gRPC code (as the
pyarrow exception a client sees), a message naming what was wrong, and leaves the
server serving, the stored objects unchanged and the storage directory untouched.

NOT_FOUND arrives as pyarrow.lib.ArrowKeyError (a KeyError), INVALID_ARGUMENT as
pyarrow.lib.ArrowInvalid (a ValueError), UNIMPLEMENTED as
pyarrow.lib.ArrowNotImplementedError.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import bson
import pyarrow as pa
import pyarrow.flight as flight
import pytest

from tests.bad_keys import BAD_KEYS, BAD_PATH_ONLY_KEYS
from tests.flight_client import opaque, put
from tests.server import CacheServer

NOT_FOUND, INVALID, UNIMPLEMENTED = pa.ArrowKeyError, pa.ArrowInvalid, pa.ArrowNotImplementedError


# -- helpers ---------------------------------------------------------------






def get_rows(client: flight.FlightClient, ticket: bytes) -> list[tuple]:
    table = client.do_get(flight.Ticket(ticket)).read_all()
    return list(zip(*(table.column(i).to_pylist() for i in range(table.num_columns))))


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def storage_entries(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


def names(message: str, what: str) -> bool:
    """`what` appears in the message as is or as Python would escape it (repr)."""
    return what in message or repr(what)[1:-1] in message


@dataclass(frozen=True)
class Known:
    """Objects stored before the cases run; no case may change them."""

    key: str  # opaque, version 2 (base + one patch)
    table_key: str  # native table, version 1


@dataclass(frozen=True)
class Case:
    id: str
    call: Callable[[flight.FlightClient, Known], object]
    error: type[Exception]
    names: tuple[str, ...]  # what the message must name; {key} and {table} stand for the Known keys




@pytest.fixture(scope="module")
def known(server: CacheServer) -> Known:
    with server.client() as client:
        key = put(client, flight.FlightDescriptor.for_path("known"), opaque(b"known base"))["key"]
        put(client, flight.FlightDescriptor.for_command(f"PATCH:{key}".encode()), opaque(b"known patch"))
        table_key = put(client, flight.FlightDescriptor.for_path("known/table"), pa.table({"n": [1, 2]}))["key"]
    return Known(key, table_key)


# -- the cases -------------------------------------------------------------

def _fill(template: str | bytes, k: Known) -> bytes:
    """`template` with {key} and {table} replaced by the Known keys, as bytes."""
    if isinstance(template, bytes):
        return template
    return template.format(key=k.key, table=k.table_key).encode()


def _ticket(template: str | bytes) -> Callable:
    return lambda c, k: c.do_get(flight.Ticket(_fill(template, k))).read_all()


def _command(template: str | bytes, table: pa.Table | None = None) -> Callable:
    payload = table if table is not None else opaque(b"rejected")

    def call(c, k):
        return put(c, flight.FlightDescriptor.for_command(_fill(template, k)), payload)

    return call


def _put_path(key: str) -> Callable:
    return lambda c, k: put(c, flight.FlightDescriptor.for_path(key), opaque(b"rejected"))


def _flight_info(key: str) -> Callable:
    return lambda c, k: c.get_flight_info(flight.FlightDescriptor.for_path(key))


def _patch(key: str) -> Callable:
    return _command(f"PATCH:{key}".encode())


def _action(name: str, body: str | bytes) -> Callable:
    return lambda c, k: list(c.do_action(flight.Action(name, _fill(body, k))))


KEY_CASES = [
    Case(f"{op}-{case_id}", make(key), INVALID, (what,))
    for case_id, key, what in BAD_KEYS
    for op, make in (("ticket", _ticket), ("put-path", _put_path), ("flight-info", _flight_info), ("patch", _patch))
] + [
    Case(f"{op}-{case_id}", make(key), INVALID, (what,))
    for case_id, key, what in BAD_PATH_ONLY_KEYS
    for op, make in (("put-path", _put_path), ("flight-info", _flight_info), ("patch", _patch))
] + [
    Case("put-path-lone-dotdot-namespace", _put_path(".."), INVALID, ("..",)),
    Case("put-path-lone-star-namespace", _put_path("*"), INVALID, ("'*'",)),
    Case("put-path-app-star-namespace", _put_path("app/*"), INVALID, ("'*'",)),
    Case("put-empty-path", lambda c, k: put(c, flight.FlightDescriptor.for_path(), opaque(b"x")), INVALID, ("empty",)),
    Case(
        "flight-info-cmd-descriptor",
        lambda c, k: c.get_flight_info(flight.FlightDescriptor.for_command(k.key)),
        INVALID,
        ("PATH",),
    ),
    Case("list-flights-four-segments", lambda c, k: list(c.list_flights(b"a/b/c/d")), INVALID, ("a/b/c/d",)),
    Case("list-flights-dotdot", lambda c, k: list(c.list_flights(b"../known")), INVALID, ("..",)),
]

TICKET_CASES = [
    Case("ticket-version-letters", _ticket("{key}:abc"), INVALID, ("abc",)),
    Case("ticket-version-negative", _ticket("{key}:-1"), INVALID, ("-1",)),
    Case("ticket-version-empty", _ticket("{key}:"), INVALID, ("{key}:",)),
    Case("ticket-version-two-colons", _ticket("{key}:1:2"), INVALID, ("1:2",)),
    Case("ticket-version-non-ascii-digit", _ticket("{key}:\u0661"), INVALID, ("\u0661",)),
    Case("ticket-version-spaces", _ticket("{key}: 1"), INVALID, (" 1",)),
    Case("ticket-non-utf8", _ticket(b"known/\xff\xfe"), INVALID, ("UTF-8",)),
    Case("ticket-chunked-bad-key", _ticket("chunked:sess/.."), INVALID, ("..",)),
    Case("ticket-chunked-bad-version", _ticket("chunked:{key}:x"), INVALID, ("'x'",)),
    Case("ticket-utf8-surrogate", _ticket(b"known/\xed\xa0\x80"), INVALID, ("UTF-8",)),
    Case("ticket-overlong-utf8-slash", _ticket(b"known/..\xc0\xafetc"), INVALID, ("UTF-8",)),
    Case("ticket-json", _ticket(b'{"key": "known/x", "version": 1}'), INVALID, ("decimal digits",)),
    Case(
        "ticket-bson-object-ref",
        lambda c, k: c.do_get(flight.Ticket(bson.encode({"endpoint": "grpc://h:1", "key": k.key}))).read_all(),
        INVALID,
        ("decimal digits",),
    ),
    Case("ticket-ten-kb-version", _ticket("{key}:" + "9" * 10 + "x" * 10240), INVALID, ("decimal digits",)),
    Case("ticket-version-over-uint64", _ticket("{key}:18446744073709551616"), INVALID, ("18446744073709551616", "2**64")),
    Case("ticket-version-5000-digits", _ticket("{key}:" + "9" * 5000), INVALID, ("largest version",)),
    Case("chunked-ticket-version-over-uint64", _ticket("chunked:{key}:" + "1" * 21), INVALID, ("largest version",)),
]

COMMAND_CASES = [
    Case("unknown-command", _command("FROB:{key}"), INVALID, ("FROB",)),
    Case("lowercase-patch-command", _command("patch:{key}"), INVALID, ("patch:",)),
    Case("non-utf8-command", _command(b"PATCH:\xff"), INVALID, ("UTF-8",)),
    Case("patch-missing-key", _patch("known/no-such-object"), NOT_FOUND, ("known/no-such-object",)),
    Case("patch-missing-flamepy-key", _patch("app/nosession/nothing"), NOT_FOUND, ("app/nosession/nothing",)),
    Case("patch-non-opaque-schema", _command("PATCH:{key}", pa.table({"n": [1]})), INVALID, ("opaque",)),
    Case("patch-native-table", _command("PATCH:{table}"), INVALID, ("{table}", "native")),
]

NOT_FOUND_CASES = [
    Case("get-missing-key", _ticket("known/no-such-object"), NOT_FOUND, ("known/no-such-object",)),
    Case("get-missing-key-with-version", _ticket("known/no-such-object:3"), NOT_FOUND, ("known/no-such-object",)),
    Case("get-missing-chunked", _ticket("chunked:known/no-such-object"), NOT_FOUND, ("known/no-such-object",)),
    Case("get-missing-flamepy-key", _ticket("app/sess/absent"), NOT_FOUND, ("app/sess/absent",)),
    Case("flight-info-missing-key", _flight_info("known/no-such-object"), NOT_FOUND, ("known/no-such-object",)),
    Case(
        "schema-missing-key",
        lambda c, k: c.get_schema(flight.FlightDescriptor.for_path("known/no-such-object")),
        NOT_FOUND,
        ("known/no-such-object",),
    ),
]

ACTION_CASES = [
    Case("unknown-action", _action("FROB", b"known"), UNIMPLEMENTED, ("FROB",)),
    Case("lowercase-action", _action("delete", "{key}"), UNIMPLEMENTED, ("delete",)),
    Case("seed-put-bad-base64", _action("PUT", b"known:!!not base64!!"), INVALID, ("PUT", "base64")),
    Case("seed-put-base64-bad-padding", _action("PUT", b"known:aGk"), INVALID, ("PUT", "base64")),
    Case("seed-put-no-colon", _action("PUT", b"known"), INVALID, ("PUT", "':'")),
    Case("seed-put-bad-session", _action("PUT", f"..:{b64(b'x')}".encode()), INVALID, ("..",)),
    Case("seed-put-three-segment-namespace", _action("PUT", f"a/b/c:{b64(b'x')}".encode()), INVALID, ("a/b/c",)),
    Case("seed-put-non-utf8", _action("PUT", b"known\xff:aGk="), INVALID, ("UTF-8",)),
    Case("seed-update-bad-base64", _action("UPDATE", "{key}:%%%"), INVALID, ("UPDATE", "base64")),
    Case("seed-update-no-colon", _action("UPDATE", "{key}"), INVALID, ("UPDATE", "':'")),
    Case("seed-update-bad-key", _action("UPDATE", f"known/..:{b64(b'x')}".encode()), INVALID, ("..",)),
    Case("seed-update-missing-key", _action("UPDATE", f"known/gone:{b64(b'x')}"), NOT_FOUND, ("known/gone",)),
    Case("delete-empty-body", _action("DELETE", b""), INVALID, ("empty",)),
    Case("delete-lone-star", _action("DELETE", b"*"), INVALID, ("'*'",)),
    Case("delete-star-in-the-middle", _action("DELETE", b"known/*/x"), INVALID, ("'*'",)),
    Case("delete-four-segments", _action("DELETE", b"a/b/c/d"), INVALID, ("a/b/c/d",)),
    Case("delete-dotdot", _action("DELETE", b"known/.."), INVALID, ("..",)),
    Case("delete-non-utf8", _action("DELETE", b"known/\xff"), INVALID, ("UTF-8",)),
    # bodies in the wrong format: JSON or BSON where the seed protocol wants text
    Case("delete-json-body", _action("DELETE", b'{"key": "known/x"}'), INVALID, ('{{"key": "known', "':'")),
    Case("delete-bson-body", _action("DELETE", bson.encode({"key": "known/x"})), INVALID, ("forbidden",)),
    Case("seed-put-json-body", _action("PUT", b'{"session": "known", "data": "aGk="}'), INVALID, ("PUT", "base64")),
    Case(
        "seed-update-bson-body",
        _action("UPDATE", bson.encode({"key": "known/x", "data": b"x"})),
        INVALID,
        ("UPDATE", "':'"),
    ),
    Case("seed-put-base64-newline", _action("PUT", b"known:aGk=\n"), INVALID, ("PUT", "base64")),
    Case("seed-put-base64-urlsafe", _action("PUT", b"known:-_-_"), INVALID, ("PUT", "base64")),
    Case("seed-put-empty-session", _action("PUT", f":{b64(b'x')}".encode()), INVALID, ("empty",)),
    Case("json-command", _command(b'{"PATCH": "known/x"}'), INVALID, ("unknown command",)),
]

CASES = KEY_CASES + TICKET_CASES + COMMAND_CASES + NOT_FOUND_CASES + ACTION_CASES


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_request_is_refused_clearly_and_harms_nothing(server: CacheServer, known: Known, case: Case):
    """The bad request raises its gRPC code's pyarrow exception with a message naming what
    was wrong; the server still answers, the known objects keep their version and bytes,
    and nothing appears in (or vanishes from) the storage directory."""
    root = server.storage
    with server.client() as client:
        table_ticket = flight.Ticket(known.table_key.encode())
        before = (get_rows(client, known.key.encode()), client.do_get(table_ticket).read_all())
        entries = storage_entries(root)

        with pytest.raises(case.error) as caught:
            case.call(client, known)
        message = str(caught.value)
        expected = [what.format(key=known.key, table=known.table_key) for what in case.names]
        missing = [what for what in expected if not names(message, what)]
        assert not missing, f"message does not name {missing}: {message[:500]!r}"

        assert {a.type for a in client.list_actions()} >= {"DELETE", "PUT", "UPDATE"}
        assert get_rows(client, known.key.encode()) == before[0]
        assert before[0] == [(1, "base", b"known base"), (2, "patch", b"known patch")]
        table = client.do_get(table_ticket).read_all()
        assert table.equals(before[1]) and table.schema.metadata == before[1].schema.metadata
        info = client.get_flight_info(flight.FlightDescriptor.for_path(known.key))
        assert info.total_bytes == len(b"known base" + b"known patch")

    after = storage_entries(root)
    assert after == entries, f"storage changed: added {after - entries}, removed {entries - after}"
    assert not [name for name in after if ".tmp-" in name]
    assert server.alive()


"""cache.auth against a real server (issue 13, done-when 2 and 3).

A table of every operation of both protocols (each DoPut form, DoGet, info,
schema, listings, each action, every HTTP route), each tried with no token, an
unknown token, a token whose scope covers the key and one whose scope does
not: the outcome is the right code; a refused request leaves the storage
directory byte for byte as it was; listings show only what the caller may
read. At the end, the server's whole log (at DEBUG) and every error message
the clients saw are searched for each token: none appears.

One server serves the whole module. Its tokens (random per run):
reader `read:team/*` (from a token_file), writer `write:team/*`, deleter
`delete:team/*`, admin `admin:team/*`, root `admin:*`, and outsider
`admin:other/*`, which covers nothing below team/. Anonymous callers may do
nothing.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import bson
import grpc
import httpx
import pyarrow as pa
import pyarrow.flight as flight
import pytest
from starlette.routing import Mount

from flame_cache.flight.actions import ACTIONS
from flame_cache.http import health, listing as listings, objects, page
from flame_cache.http.app import DOCS_ASSETS, create_app
from flame_cache.store import Store
from tests.flight_client import opaque
from tests.secure_server import SecureServer, bearer
from tests.server import storage_snapshot

SCOPES = {
    "reader": ["read:team/*"],
    "writer": ["write:team/*"],
    "deleter": ["delete:team/*"],
    "admin": ["admin:team/*"],
    "root": ["admin:*"],
    "outsider": ["admin:other/*"],
}
TOKENS = {name: secrets.token_urlsafe(32) for name in SCOPES}
UNKNOWN = secrets.token_urlsafe(32)
SEEN: list[str] = []  # every error message and refused body the clients saw
RAW = {"Content-Type": "application/octet-stream"}


def auth_section(token_file: Path) -> dict:
    token_file.write_text(f"# the reader's token\n{TOKENS['reader']}\n")
    tokens = [{"name": "reader", "token_file": str(token_file), "scopes": SCOPES["reader"]}]
    for name in SCOPES:
        if name != "reader":
            digest = hashlib.sha256(TOKENS[name].encode()).hexdigest()
            tokens.append({"name": name, "token_sha256": digest, "scopes": SCOPES[name]})
    return {"tokens": tokens, "anonymous": []}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecureServer]:
    workdir = tmp_path_factory.mktemp("auth")
    server = SecureServer(workdir, workdir / "storage", auth=auth_section(workdir / "reader.token"))
    server.args = ["--log-level", "DEBUG"]
    server.start()
    with server.http(TOKENS["root"]) as root:
        assert root.put("/v1/objects/other/s/secret", content=b"not for team", headers=RAW).status_code == 201
    yield server
    server.stop()


# -- the callers ----------------------------------------------------------------


@dataclass
class Caller:
    """One credential's clients: Flight call options and an httpx client."""

    flight: flight.FlightClient
    options: flight.FlightCallOptions
    http: httpx.Client
    token: str | None
    port: int


CREDENTIALS = ["none", "unknown", "covering", "other"]


def token_of(credential: str, needs: str | None) -> str | None:
    return {"none": None, "unknown": UNKNOWN, "covering": TOKENS[needs or "root"], "other": TOKENS["outsider"]}[credential]


@pytest.fixture
def caller(server: SecureServer) -> Callable[[str | None], Caller]:
    made: list[Caller] = []

    def make(token: str | None) -> Caller:
        made.append(Caller(server.flight(), bearer(token), server.http(token), token, server.port))
        return made[-1]

    yield make
    for one in made:
        one.flight.close()
        one.http.close()


# -- Flight calls with options --------------------------------------------------


def do_put(c: Caller, descriptor: flight.FlightDescriptor, data: bytes = b"new bytes") -> dict:
    table = opaque(data)
    writer, reader = c.flight.do_put(descriptor, table.schema, options=c.options)
    with writer:
        writer.write_table(table)
        writer.done_writing()
        answer = reader.read()
    return bson.decode(answer.to_pybytes())


def action(c: Caller, name: str, body: bytes) -> list[bytes]:
    return [r.body.to_pybytes() for r in c.flight.do_action(flight.Action(name, body), options=c.options)]


def path(key: str) -> flight.FlightDescriptor:
    return flight.FlightDescriptor.for_path(*key.split("/"))


def grpc_schema(c: Caller, key: str) -> bytes:
    """GetSchema through grpcio itself: pyarrow's client reads every status of
    GetSchema as OSError, so the real code is looked at here."""
    metadata = [("authorization", f"Bearer {c.token}")] if c.token else []
    with grpc.insecure_channel(f"127.0.0.1:{c.port}") as channel:
        call = channel.unary_unary("/arrow.flight.protocol.FlightService/GetSchema")
        return call(path(key).serialize(), metadata=metadata, timeout=10)


def listed(infos: Any) -> list[str]:
    return ["/".join(p.decode() for p in info.descriptor.path) for info in infos]


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


# -- the table ------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    """One operation: `run(caller, ns, key)` does it on the key `<ns>/obj`
    (made first when `existing`); `needs` names the token whose scope covers
    it (None: open to anyone); `listing`: it answers keys, filtered."""

    name: str
    run: Callable[[Caller, str, str], Any]
    needs: str | None
    existing: bool = True
    listing: bool = False
    route: tuple[str, str] | None = None  # HTTP (method, path template)


FLIGHT_CASES = [
    Case("put new key", lambda c, ns, key: do_put(c, path(f"{ns}/new")), "writer", existing=False),
    Case("replace", lambda c, ns, key: do_put(c, path(key)), "writer"),
    Case("create in namespace", lambda c, ns, key: do_put(c, path(ns)), "writer", existing=False),
    Case("patch", lambda c, ns, key: do_put(c, flight.FlightDescriptor.for_command(f"PATCH:{key}".encode())), "writer"),
    Case("get", lambda c, ns, key: c.flight.do_get(flight.Ticket(key.encode()), options=c.options).read_all(), "reader"),
    Case(
        "get chunked",
        lambda c, ns, key: c.flight.do_get(flight.Ticket(f"chunked:{key}:0".encode()), options=c.options).read_all(),
        "reader",
    ),
    Case("info", lambda c, ns, key: c.flight.get_flight_info(path(key), options=c.options), "reader"),
    Case("schema", lambda c, ns, key: grpc_schema(c, key), "reader"),
    Case("list", lambda c, ns, key: listed(c.flight.list_flights(b"", options=c.options)), "reader", listing=True),
    Case("action DELETE key", lambda c, ns, key: action(c, "DELETE", key.encode()), "deleter"),
    Case("action DELETE namespace", lambda c, ns, key: action(c, "DELETE", ns.encode()), "deleter"),
    Case("action DELETE app/*", lambda c, ns, key: action(c, "DELETE", b"team/*"), "deleter"),
    Case("action PUT", lambda c, ns, key: action(c, "PUT", f"{ns}:{b64(b'seed')}".encode()), "writer", existing=False),
    Case("action UPDATE", lambda c, ns, key: action(c, "UPDATE", f"{key}:{b64(b'seed')}".encode()), "writer"),
    Case("action VERIFY", lambda c, ns, key: action(c, "VERIFY", ns.encode()), "admin"),
    Case("action EXPIRE", lambda c, ns, key: action(c, "EXPIRE", json.dumps({"key": key, "ttl": 3600}).encode()), "writer"),
    Case("action HEALTH", lambda c, ns, key: action(c, "HEALTH", b""), None),
    Case("action STATS", lambda c, ns, key: action(c, "STATS", b""), "root"),
    Case("list actions", lambda c, ns, key: list(c.flight.list_actions(options=c.options)), None),
]


def http_case(name: str, method: str, template: str, target: str, needs: str | None, **options: Any) -> Case:
    """An HTTP request; `target` may name `{key}` and `{ns}`."""
    listing_case = options.pop("listing", False)
    existing = options.pop("existing", True)

    def run(c: Caller, ns: str, key: str) -> Any:
        filled = {
            name: {k: v.format(key=key, ns=ns) for k, v in value.items()} if name in ("json", "data") else value
            for name, value in options.items()
        }
        response = c.http.request(method, target.format(key=key, ns=ns), **filled)
        if response.status_code >= 400:
            raise Refusal(response)
        if not listing_case:
            return None
        if template == "/":
            return [k for k in (ns + "/obj", "other/s/secret") if k in response.text]
        body = response.json()
        return [o["key"] for o in body["objects"]] if "objects" in body else [n["namespace"] + "/obj" for n in body]

    return Case(f"{method} {template} ({name})", run, needs, existing, listing_case, (method, template))


HTTP_CASES = [
    http_case("raw", "GET", "/v1/objects/{key}", "/v1/objects/{key}", "reader"),
    http_case("arrow", "GET", "/v1/objects/{key}", "/v1/objects/{key}?format=arrow", "reader"),
    http_case("head", "HEAD", "/v1/objects/{key}", "/v1/objects/{key}", "reader"),
    http_case("create", "PUT", "/v1/objects/{key}", "/v1/objects/{ns}/new", "writer", content=b"n", headers=RAW, existing=False),
    http_case("replace", "PUT", "/v1/objects/{key}", "/v1/objects/{key}?ttl=60", "writer", content=b"r", headers=RAW),
    http_case("patch", "PATCH", "/v1/objects/{key}", "/v1/objects/{key}", "writer", content=b"p", headers=RAW),
    http_case("delete", "DELETE", "/v1/objects/{key}", "/v1/objects/{key}", "deleter"),
    http_case("create", "POST", "/v1/namespaces/{namespace}", "/v1/namespaces/{ns}", "writer", content=b"c", headers=RAW),
    http_case("list", "GET", "/v1/objects", "/v1/objects", "reader", listing=True),
    http_case("list", "GET", "/v1/namespaces", "/v1/namespaces", "reader", listing=True),
    http_case("delete", "DELETE", "/v1/namespaces/{namespace}", "/v1/namespaces/{ns}", "deleter"),
    http_case("verify", "POST", "/v1/verify", "/v1/verify", "admin", json={"target": "{ns}"}),
    http_case("live", "GET", "/healthz", "/healthz", None),
    http_case("ready", "GET", "/readyz", "/readyz", None),
    http_case("metrics", "GET", "/metrics", "/metrics", "root"),
    http_case("page", "GET", "/", "/", "reader", listing=True),
    http_case("page delete", "POST", "/ui/delete", "/ui/delete", "deleter", data={"key": "{key}"}),
    http_case("docs", "GET", "/docs", "/docs", None),
    http_case("openapi", "GET", "/openapi.json", "/openapi.json", None),
    http_case("oauth2", "GET", "/docs/oauth2-redirect", "/docs/oauth2-redirect", None),
]


class Refusal(Exception):
    def __init__(self, response: httpx.Response) -> None:
        super().__init__(f"{response.status_code}: {response.text[:300]}")
        self.response = response


def outcome(thunk: Callable[[], Any]) -> tuple[str, Any]:
    """("ok", what it answered), or the refusal as a word; every message is kept in SEEN."""
    try:
        return "ok", thunk()
    except flight.FlightUnauthenticatedError as exc:
        SEEN.append(str(exc))
        return "unauthenticated", None
    except flight.FlightUnauthorizedError as exc:
        SEEN.append(str(exc))
        return "denied", None
    except Refusal as refusal:
        response = refusal.response
        SEEN.append(response.text + json.dumps(dict(response.headers)))
        if response.status_code == 401:
            assert response.headers["www-authenticate"].startswith('Bearer realm="flame-cache"'), response.headers
            return "unauthenticated", None
        return ("denied", None) if response.status_code == 403 else (f"HTTP {refusal}", None)
    except grpc.RpcError as exc:
        SEEN.append(exc.details())
        code = {grpc.StatusCode.UNAUTHENTICATED: "unauthenticated", grpc.StatusCode.PERMISSION_DENIED: "denied"}
        if exc.code() is grpc.StatusCode.UNKNOWN and "no read scope of token 'outsider' covers it" in exc.details():
            return "unknown, naming the refusal", None
        return code.get(exc.code(), f"gRPC {exc.code()}: {exc.details()}"), None
    except (flight.FlightError, pa.ArrowException) as exc:
        SEEN.append(str(exc))
        return f"{type(exc).__name__}: {exc}", None


def expected(case: Case, credential: str) -> str:
    if case.needs is None or credential == "covering" or (case.listing and credential == "other"):
        return "ok"
    if case.name == "schema" and credential == "other":
        # pyarrow 26 sends a FlightError raised in GetSchema as UNKNOWN (README, Security); a
        # caller who may read nothing is refused before the call, with its code (none, unknown)
        return "unknown, naming the refusal"
    return "unauthenticated" if credential in ("none", "unknown") else "denied"


def prepare(server: SecureServer, case: Case) -> tuple[str, str]:
    """A namespace of this run under team/, and its key `obj` (stored if the case needs it)."""
    ns = f"team/{uuid.uuid4().hex[:10]}"
    key = f"{ns}/obj"
    if case.existing:
        with server.http(TOKENS["root"]) as root:
            assert root.put(f"/v1/objects/{key}", content=b"stored bytes", headers=RAW).status_code == 201
    return ns, key


@pytest.mark.parametrize("credential", CREDENTIALS)
@pytest.mark.parametrize("case", FLIGHT_CASES + HTTP_CASES, ids=lambda case: case.name)
def test_matrix(server: SecureServer, caller, case: Case, credential: str) -> None:
    ns, key = prepare(server, case)
    client = caller(token_of(credential, case.needs))
    before = storage_snapshot(server.storage)
    got, answer = outcome(lambda: case.run(client, ns, key))
    assert got == expected(case, credential), f"{case.name} with {credential}: {got}"
    if got != "ok":
        assert storage_snapshot(server.storage) == before, f"{case.name} with {credential} changed the storage"
    if case.listing and got == "ok":  # only what the token may read: reader team/*, outsider other/*
        readable = "team/" if credential == "covering" else "other/"
        assert answer and all(k.startswith(readable) for k in answer), (case.name, credential, answer)
        assert (key in answer) is (credential == "covering"), (case.name, credential, answer)


# -- the table covers everything -------------------------------------------------


def test_the_table_has_every_http_route_and_every_action() -> None:
    app = create_app(Store(None), "grpc://127.0.0.1:1").app  # the FastAPI app behind the lane
    mounts = {route.path for route in app.routes if isinstance(route, Mount)}
    assert mounts == {DOCS_ASSETS}, mounts  # Swagger UI's static files, open like /docs
    routes = {(method, route.path.replace(":path", "")) for route in app.routes if hasattr(route, "methods") for method in route.methods}
    for module in (objects, listings, health, page):
        routes |= {(m, r.path.replace(":path", "")) for r in module.router.routes for m in r.methods}
    routes = {(method, path) for method, path in routes if not (method == "HEAD" and ("GET", path) in routes and path != "/v1/objects/{key}")}
    assert routes == {case.route for case in HTTP_CASES}
    assert {name for name in ACTIONS} == {case.name.split()[1] for case in FLIGHT_CASES if case.name.startswith("action")}


# -- listings -------------------------------------------------------------------


def test_listings_show_only_readable_keys(server: SecureServer, caller) -> None:
    """A reader of team/* sees team/ keys and no other; root sees both; a token
    that may read nothing is refused a listing (403), anonymous too (401)."""
    with server.http(TOKENS["root"]) as root:
        root.put("/v1/objects/team/listed/a", content=b"a", headers=RAW)
    reader = caller(TOKENS["reader"])
    flight_keys = listed(reader.flight.list_flights(b"", options=reader.options))
    http_keys = [o["key"] for o in reader.http.get("/v1/objects", params={"limit": 1000}).json()["objects"]]
    spaces = [n["namespace"] for n in reader.http.get("/v1/namespaces").json()]
    assert "team/listed/a" in flight_keys and "team/listed" in spaces
    for keys in (flight_keys, http_keys, spaces):
        assert keys and all(k.startswith("team/") for k in keys), keys
    assert sorted(flight_keys) == sorted(http_keys)
    assert "other/s/secret" not in reader.http.get("/").text
    root_keys = listed(caller(TOKENS["root"]).flight.list_flights(b"", options=bearer(TOKENS["root"])))
    assert "other/s/secret" in root_keys and "team/listed/a" in root_keys
    page_one = reader.http.get("/v1/objects", params={"limit": 1}).json()  # paging counts only what is shown
    assert page_one["objects"][0]["key"].startswith("team/") and page_one["next_cursor"].startswith("team/")
    assert caller(TOKENS["writer"]).http.get("/v1/objects").status_code == 403
    assert caller(None).http.get("/v1/namespaces").status_code == 401


# -- the handshake ----------------------------------------------------------------


def test_basic_token_handshake_answers_a_bearer_token(server: SecureServer) -> None:
    """FlightClient.authenticate_basic_token(name, token): the answer's bearer
    header then works on each call; a wrong name or token is UNAUTHENTICATED."""
    with server.flight() as client:
        header = client.authenticate_basic_token(b"writer", TOKENS["writer"].encode())
        assert header == (b"authorization", f"Bearer {TOKENS['writer']}".encode())
        options = flight.FlightCallOptions(headers=[header])
        writer, reader = client.do_put(path("team/handshake/o"), opaque(b"h").schema, options=options)
        with writer:
            writer.write_table(opaque(b"h"))
            writer.done_writing()
            assert bson.decode(reader.read().to_pybytes())["version"] == 1
        for name, token in ((b"reader", TOKENS["writer"]), (b"writer", UNKNOWN), (b"writer", "")):
            with pytest.raises(flight.FlightUnauthenticatedError) as caught:
                client.authenticate_basic_token(name, token.encode())
            SEEN.append(str(caught.value))


# -- logging ----------------------------------------------------------------------


def test_each_refusal_is_logged_once_with_caller_peer_operation_and_key(server: SecureServer, caller) -> None:
    key = f"other/{uuid.uuid4().hex[:8]}/o"
    writer = caller(TOKENS["writer"])
    assert writer.http.put(f"/v1/objects/{key}", content=b"x", headers=RAW).status_code == 403
    with pytest.raises(flight.FlightUnauthenticatedError):
        caller(UNKNOWN).flight.do_get(flight.Ticket(key.encode()), options=bearer(UNKNOWN)).read_all()
    lines = [line for line in server.log().splitlines() if repr(key) in line]
    assert len(lines) == 2, lines
    assert "WARNING" in lines[0] and f"refused put of {key!r} for token 'writer' from 127.0.0.1:" in lines[0]
    assert f"refused get of {key!r} for an unknown token from ipv4:127.0.0.1:" in lines[1]


def test_no_token_appears_in_the_log_or_any_error_message(server: SecureServer) -> None:
    """Last in this module: the whole log, at DEBUG, of everything above."""
    log = server.log()
    assert "refused" in log and len(SEEN) > 80
    secrets_sent = [*TOKENS.values(), UNKNOWN]
    basics = [base64.b64encode(f"{name}:{token}".encode()).decode() for name, token in TOKENS.items()]
    for secret in secrets_sent + basics:
        assert secret not in log
        assert not [message for message in SEEN if secret in message]

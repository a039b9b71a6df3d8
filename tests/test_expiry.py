"""Expiry (SPEC 8): rules of cache.expiry and per-object TTLs, on both protocols.

An expired object answers NOT_FOUND at once (before any sweep), the sweep deletes its
files (base, deltas and the `.<id>.ttl` file that keeps a TTL across restarts), and a
restart neither forgets a TTL nor revives an expired object. About 20 s.
"""

from __future__ import annotations

import json
import time
from email.utils import parsedate_to_datetime
from pathlib import Path

import httpx
import pyarrow as pa
import pyarrow.flight as flight
import pytest

from tests.flight_client import get, put_path, rows
from tests.http_client import RAW, object_path

SWEEP = 0.5


def expire(client: flight.FlightClient, key: str, ttl: float) -> dict:
    (result,) = client.do_action(flight.Action("EXPIRE", json.dumps({"key": key, "ttl": ttl}).encode()))
    return json.loads(result.body.to_pybytes())


def metadata(client: flight.FlightClient, prefix: str) -> dict[str, dict]:
    return {
        "/".join(p.decode() for p in info.descriptor.path): json.loads(info.app_metadata)
        for info in client.list_flights(prefix.encode())
    }


def header_expires(http: httpx.Client, key: str) -> float | None:
    response = http.head(object_path(key))
    assert response.status_code == 200, response
    value = response.headers.get("x-flame-expires")
    return parsedate_to_datetime(value).timestamp() if value else None


def files_of(root: Path, key: str) -> list[Path]:
    *folders, name = key.split("/")
    folder = root.joinpath(*folders)
    return [p for p in (folder / f"{name}.arrow", folder / f"{name}.deltas", folder / f".{name}.ttl") if p.exists()]


def wait_until(check, timeout: float, step: float = 0.05) -> float:
    """Poll `check` until true; the time it took."""
    started = time.monotonic()
    while not check():
        assert time.monotonic() - started < timeout, f"not within {timeout}s"
        time.sleep(step)
    return time.monotonic() - started


def test_rules_and_ttls_expire_on_time(make_server) -> None:
    rules = [{"match": "exp/rule/*", "ttl": "2s"}, {"match": "exp/acc/*", "ttl": "2s", "after": "access"}]
    server = make_server(with_http=True, expiry=rules, expiry_sweep=f"{SWEEP}s")
    root = server.storage
    http = httpx.Client(base_url=server.http_url, timeout=30)
    client = server.client()

    started = time.time()
    put_path(client, "exp/rule/a", b"by rule")
    assert http.put(object_path("exp/acc/b"), content=b"read all along", headers={"Content-Type": RAW}).status_code == 201
    assert http.put(object_path("exp/ttl/c") + "?ttl=2", content=b"own ttl", headers={"Content-Type": RAW}).status_code == 201
    assert http.patch(object_path("exp/ttl/c"), content=b"patched", headers={"Content-Type": RAW}).status_code == 200
    put_path(client, "exp/ttl/d", b"ttl by action")
    reply = expire(client, "exp/ttl/d", 2)
    assert reply["key"] == "exp/ttl/d" and abs(reply["expires"] - (started + 2)) < 1.5
    created = http.post("/v1/namespaces/exp/ttl?ttl=2", content=b"created", headers={"Content-Type": RAW}).json()["key"]
    put_path(client, "exp/keep/e", b"no ttl")
    assert http.put(object_path("exp/ttl/g") + "?ttl=2", content=b"cleared", headers={"Content-Type": RAW}).status_code == 201
    assert expire(client, "exp/ttl/g", 0)["expires"] is None
    assert (root / "exp/ttl/.c.ttl").is_file() and not (root / "exp/ttl/.g.ttl").exists()

    # HEAD shows X-Flame-Expires, ListFlights' metadata `expires`
    assert abs(header_expires(http, "exp/ttl/c") - (started + 2)) < 1.5
    assert abs(header_expires(http, "exp/rule/a") - (started + 2)) < 1.5
    assert header_expires(http, "exp/keep/e") is None and header_expires(http, "exp/ttl/g") is None
    listed = metadata(client, "exp")
    assert abs(listed["exp/ttl/d"]["expires"] - (started + 2)) < 1.5
    assert "expires" not in listed["exp/keep/e"]

    doomed = ["exp/rule/a", "exp/ttl/c", "exp/ttl/d", created]
    # an `after: access` object lives while it is read
    while time.time() < started + 2 + SWEEP + 1.5:
        assert http.get(object_path("exp/acc/b")).status_code == 200
        time.sleep(0.3)
    # meanwhile the others expired: NOT_FOUND on both protocols, saying so
    for key in doomed:
        response = http.get(object_path(key))
        assert response.status_code == 404 and "expired" in response.json()["message"], response.text
        with pytest.raises(pa.ArrowKeyError, match="expired"):
            get(client, key)
    assert "exp/ttl/d" not in metadata(client, "exp")
    # and the sweep deleted their files, the TTL files too
    wait_until(lambda: not any(files_of(root, key) for key in doomed), timeout=SWEEP + 3)
    assert not list(root.rglob(".*.ttl.tmp-*"))
    for key in doomed:
        assert f"expired {key} (" in server.log()

    # no longer read: b expires 2 s after its last read (a listing is no read)
    last_read = time.time()
    wait_until(lambda: "exp/acc/b" not in metadata(client, "exp"), timeout=6)
    assert 1.5 < time.time() - last_read < 2 + 2
    assert http.get(object_path("exp/acc/b")).status_code == 404
    assert rows(get(client, "exp/keep/e")) == [(1, "base", b"no ttl")]
    assert http.get(object_path("exp/ttl/g")).content == b"cleared"
    # a write to an expired key starts a new object
    wait_until(lambda: not files_of(root, "exp/acc/b"), timeout=SWEEP + 3)
    assert put_path(client, "exp/rule/a", b"again")["version"] == 1
    assert rows(get(client, "exp/rule/a")) == [(1, "base", b"again")]
    assert json.loads(list(client.do_action(flight.Action("STATS", b"")))[0].body.to_pybytes())["expirations"] >= 5

    # bad requests
    with pytest.raises(pa.ArrowInvalid, match="EXPIRE body must be JSON"):
        list(client.do_action(flight.Action("EXPIRE", b"not json")))
    with pytest.raises(pa.ArrowInvalid, match="ttl"):
        expire(client, "exp/keep/e", -1)
    with pytest.raises(pa.ArrowKeyError):
        expire(client, "exp/keep/missing", 5)
    assert http.put(object_path("exp/keep/e") + "?ttl=-1", content=b"x").status_code == 400
    http.close()
    client.close()


def test_ttls_survive_a_restart(make_server) -> None:
    """TTLs are kept with their objects: a restart neither forgets one nor revives an
    object that expired meanwhile; a rule's clock keeps counting from the last write."""
    server = make_server(with_http=True, expiry=[{"match": "r/rule/*", "ttl": "4s"}], expiry_sweep="60s")
    root = server.storage
    with httpx.Client(base_url=server.http_url, timeout=30) as http, server.client() as client:
        put = {"Content-Type": RAW}
        assert http.put(object_path("r/ttl/long") + "?ttl=3600", content=b"long", headers=put).status_code == 201
        assert http.put(object_path("r/ttl/short") + "?ttl=1", content=b"short", headers=put).status_code == 201
        written = time.time()
        put_path(client, "r/rule/x", b"by rule")
        put_path(client, "r/ttl/flight", b"by action")
        expire(client, "r/ttl/flight", 3600)
        # a replace keeps the object's own TTL
        assert http.put(object_path("r/ttl/long"), content=b"long, replaced", headers=put).status_code == 200
        long_expires = header_expires(http, "r/ttl/long")
        flight_expires = metadata(client, "r/ttl")["r/ttl/flight"]["expires"]
        assert long_expires is not None and abs(long_expires - (written + 3600)) < 2
        # expired: NOT_FOUND at once, with no sweep yet (one a minute here)
        time.sleep(max(0.0, written + 1.2 - time.time()))
        assert http.get(object_path("r/ttl/short")).status_code == 404
        assert files_of(root, "r/ttl/short"), "the files go with the sweep, not with the read"

    assert server.stop() == 0
    server.start()
    with httpx.Client(base_url=server.http_url, timeout=30) as http, server.client() as client:
        assert header_expires(http, "r/ttl/long") == long_expires
        assert http.get(object_path("r/ttl/long")).content == b"long, replaced"
        assert metadata(client, "r/ttl")["r/ttl/flight"]["expires"] == flight_expires
        response = http.get(object_path("r/ttl/short"))
        assert response.status_code == 404 and "expired" in response.json()["message"], "an expired object came back"
        assert "r/ttl/short" not in metadata(client, "r")
        # the rule counts from the last write, not from the restart
        wait_until(lambda: http.get(object_path("r/rule/x")).status_code == 404, timeout=10)
        assert time.time() < written + 4 + 1.5

    server.stop()
    server.cache["expiry_sweep"] = f"{SWEEP}s"
    server.start()
    wait_until(lambda: not files_of(root, "r/ttl/short") and not files_of(root, "r/rule/x"), timeout=SWEEP + 5)
    assert (root / "r/ttl/.long.ttl").is_file() and (root / "r/ttl/long.arrow").is_file()
    assert "ignoring foreign file" not in server.log()

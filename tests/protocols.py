"""One client interface over both protocols, for tests whose writers and readers use
Flight and HTTP side by side on one server (crash safety, concurrency).

Both sides take the same calls and answer alike: a write returns the acknowledgement
`{endpoint, key, version}`, a read returns the version/kind/data rows of a full read.
A missing object raises KeyError on both (pyarrow's ArrowKeyError, HTTP 404); other
HTTP refusals raise `Refused` (`PreconditionFailed` for 412). `gone` lists the errors
that mean the server could not be reached or went away mid-call (a kill).
"""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import quote

import httpx
import pyarrow as pa
import pyarrow.flight as flight

from tests.flight_client import get, patch, put_path, rows
from tests.http_client import ARROW, RAW, arrow_rows, object_path

Rows = list[tuple[int, str, bytes]]


def connect(address: str) -> FlightSide | HttpSide:
    """An HTTP side for an http:// address (CacheServer.http_url), else a Flight side."""
    return HttpSide(address) if address.startswith("http") else FlightSide(address)


class _Closing:
    def __enter__(self):  # noqa: ANN204
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()  # type: ignore[attr-defined]


class FlightSide(_Closing):
    """pyarrow.flight, in flamepy's shapes (tests/flight_client.py)."""

    name = "flight"
    gone = (flight.FlightError, pa.ArrowException, OSError)

    def __init__(self, endpoint: str) -> None:
        self.client = flight.FlightClient(endpoint)

    def create(self, namespace: str, data: bytes | Iterable[bytes], *, row_bytes: int | None = None) -> dict:
        body = data if isinstance(data, bytes) else b"".join(data)
        return put_path(self.client, namespace, body, row_bytes=row_bytes)

    def put(self, key: str, data: bytes | Iterable[bytes], *, row_bytes: int | None = None) -> dict:
        """DoPut on the key's PATH: replaces it; creates a missing 3-segment key."""
        body = data if isinstance(data, bytes) else b"".join(data)
        return put_path(self.client, key, body, row_bytes=row_bytes)

    def patch(self, key: str, data: bytes) -> dict:
        return patch(self.client, key, data)

    def read(self, key: str) -> Rows:
        return rows(get(self.client, key))

    def delete(self, target: str) -> None:
        answers = [r.body.to_pybytes() for r in self.client.do_action(flight.Action("DELETE", target.encode()))]
        if answers != [b"OK"]:
            raise AssertionError(f"DELETE {target} answered {answers}")

    def keys(self, prefix: str = "") -> set[str]:
        return {"/".join(p.decode() for p in info.descriptor.path) for info in self.client.list_flights(prefix.encode())}

    def close(self) -> None:
        self.client.close()


class Refused(Exception):
    """An HTTP error answer: its status, ETag and JSON body."""

    def __init__(self, response: httpx.Response) -> None:
        self.status = response.status_code
        self.etag = response.headers.get("etag")
        self.body = response.json() if response.headers.get("content-type") == "application/json" else response.text
        super().__init__(f"{response.request.method} {response.request.url.path}: {self.status} {self.body}")


class NotFound(Refused, KeyError):
    pass


class PreconditionFailed(Refused):
    pass


class HttpSide(_Closing):
    """The HTTP mirror with httpx: PUT and POST for writes, the Arrow stream for reads."""

    name = "http"
    gone = (httpx.TransportError, OSError)

    def __init__(self, url: str) -> None:
        self.http = httpx.Client(base_url=url, timeout=60)

    def create(self, namespace: str, data: bytes | Iterable[bytes], *, row_bytes: int | None = None) -> dict:
        """POST: a new object in the namespace; an iterable body goes chunked."""
        path = "/v1/namespaces/" + quote(namespace, safe="/")
        return self._ack(self.http.post(path, content=data, headers={"Content-Type": RAW}))

    def put(
        self, key: str, data: bytes | Iterable[bytes], *, row_bytes: int | None = None, if_match: int | None = None
    ) -> dict:
        """PUT: creates or replaces exactly this key; an iterable body goes chunked."""
        return self._ack(self.http.put(object_path(key), content=data, headers=self._headers(if_match)))

    def patch(self, key: str, data: bytes, *, if_match: int | None = None) -> dict:
        return self._ack(self.http.patch(object_path(key), content=data, headers=self._headers(if_match)))

    def read(self, key: str) -> Rows:
        response = self.http.get(object_path(key), headers={"Accept": ARROW})
        if response.status_code != 200:
            raise _refusal(response)
        return arrow_rows(response)

    def raw(self, key: str) -> tuple[int, int, bytes]:
        """(version, deltas, base bytes) of a raw GET."""
        response = self.http.get(object_path(key))
        if response.status_code != 200:
            raise _refusal(response)
        return int(response.headers["etag"].strip('"')), int(response.headers["x-flame-deltas"]), response.content

    def version(self, key: str) -> int:
        response = self.http.head(object_path(key))
        if response.status_code != 200:
            raise _refusal(response)
        return int(response.headers["etag"].strip('"'))

    def delete(self, target: str) -> None:
        """Like Flight's DELETE: a key (and all below it), a namespace or `app/*`;
        nothing matching is no error."""
        if target.count("/") == 2:
            response = self.http.delete(object_path(target))
            if response.status_code not in (204, 404):
                raise _refusal(response)
            return
        response = self.http.delete("/v1/namespaces/" + quote(target, safe="/*"))
        if response.status_code != 200 or set(response.json()) != {"deleted"}:
            raise _refusal(response)

    def keys(self, prefix: str = "") -> set[str]:
        found: set[str] = set()
        cursor = None
        while True:
            params = {"prefix": prefix, "limit": 1000, **({"cursor": cursor} if cursor else {})}
            response = self.http.get("/v1/objects", params=params)
            if response.status_code != 200:
                raise _refusal(response)
            page = response.json()
            found.update(o["key"] for o in page["objects"])
            cursor = page["next_cursor"]
            if cursor is None:
                return found

    def close(self) -> None:
        self.http.close()

    @staticmethod
    def _headers(if_match: int | None) -> dict[str, str]:
        return {"Content-Type": RAW, **({"If-Match": f'"{if_match}"'} if if_match is not None else {})}

    @staticmethod
    def _ack(response: httpx.Response) -> dict:
        if response.status_code not in (200, 201):
            raise _refusal(response)
        ack = response.json()
        if response.headers.get("etag") != f'"{ack["version"]}"':
            raise AssertionError(f"ETag {response.headers.get('etag')} of a write acknowledged as {ack}")
        return ack


def _refusal(response: httpx.Response) -> Refused:
    kind = {404: NotFound, 412: PreconditionFailed}.get(response.status_code, Refused)
    return kind(response)

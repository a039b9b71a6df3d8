"""A real flame-cache process with TLS and/or cache.auth, and clients for it.

`SecureServer` is `tests.server.CacheServer` with, optionally, TLS on both
listeners (`pki`: the server certificate; `mutual`: clients must present one
from the CA) and a `cache.auth` section (`auth`). Its readiness check and
clients speak TLS when the server does; `flight()` and `http()` take a token
and a client certificate.
"""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any

import httpx
import pyarrow.flight as flight

from tests.certs import Pair, Pki
from tests.server import CacheServer

OPTIONS = flight.FlightCallOptions(timeout=10)
NOT_READY = (flight.FlightError, OSError, httpx.HTTPError)  # what a server still starting answers


def bearer(token: str | None) -> flight.FlightCallOptions:
    """Call options sending `authorization: Bearer <token>` (none for None)."""
    if token is None:
        return OPTIONS
    return flight.FlightCallOptions(timeout=10, headers=[(b"authorization", f"Bearer {token}".encode())])


def trusting(ca: Path | None, cert: Pair | None = None) -> ssl.SSLContext:
    """A client context trusting `ca` (None: the system's CAs), presenting `cert`."""
    context = ssl.create_default_context(cafile=str(ca) if ca else None)
    if cert is not None:
        context.load_cert_chain(cert.cert, cert.key)
    return context


class SecureServer(CacheServer):
    def __init__(
        self,
        workdir: Path,
        storage: Path | None,
        *,
        pki: Pki | None = None,
        mutual: bool = False,
        auth: dict[str, Any] | None = None,
        with_http: bool = True,
        http_tls: tuple[Pair, Pair] | None = None,
        **cache: Any,
    ) -> None:
        """`http_tls` (its CA, its certificate): HTTP's own, as cache.http.tls."""
        super().__init__(workdir, storage, with_http=with_http, **cache)
        self.pki, self.mutual = pki, mutual
        self.http_ca = http_tls[0].cert if http_tls else pki.ca.cert if pki else None
        if auth is not None:
            self.cache["auth"] = auth
        if pki is not None:
            self.endpoint = f"grpc+tls://127.0.0.1:{self.port}"
            self.cache["endpoint"] = f"grpcs://127.0.0.1:{self.port}"
            tls = {"cert_file": str(pki.server.cert), "key_file": str(pki.server.key)}
            self.cache["tls"] = {**tls, **({"ca_file": str(pki.ca.cert)} if mutual else {})}
            if with_http:
                self.http_url = f"https://127.0.0.1:{self.http_port}"
                self.cache["http"]["endpoint"] = self.http_url
            if http_tls is not None:
                self.cache["http"]["tls"] = {"cert_file": str(http_tls[1].cert), "key_file": str(http_tls[1].key)}

    @property
    def own_cert(self) -> Pair | None:
        """The client certificate a mutual-TLS server wants (None otherwise)."""
        return self.pki.client if self.pki is not None and self.mutual else None

    def flight(self, *, cert: Pair | None = None, trust: Path | None = None) -> flight.FlightClient:
        """A Flight client trusting the server's CA (or `trust`), presenting `cert`."""
        if self.pki is None:
            return flight.FlightClient(self.endpoint)
        options: dict[str, Any] = {"tls_root_certs": (trust or self.pki.ca.cert).read_bytes()}
        if cert is not None:
            options.update(cert_chain=cert.cert.read_bytes(), private_key=cert.key.read_bytes())
        return flight.FlightClient(self.endpoint, **options)

    def client(self) -> flight.FlightClient:
        return self.flight(cert=self.own_cert)

    def http(self, token: str | None = None, *, cert: Pair | None = None, verify: Any = None) -> httpx.Client:
        """An httpx client verifying the server's certificate, sending `token`."""
        headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
        if self.pki is None:
            return httpx.Client(base_url=self.http_url, headers=headers, timeout=30)
        context = verify if verify is not None else trusting(self.http_ca, cert)
        return httpx.Client(base_url=self.http_url, headers=headers, timeout=30, verify=context)

    not_ready = NOT_READY

    def _http_ready(self) -> None:
        with self.http(cert=self.own_cert) as http:
            http.get("/healthz").raise_for_status()

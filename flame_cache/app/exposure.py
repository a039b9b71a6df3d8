"""Start-up warnings about who can reach the listeners (SPEC 9).

A listener bound beyond loopback is reachable by whoever can route to it.
If callers without a token may write there (no cache.auth, or
cache.auth.anonymous granting write, delete or admin), anyone who reaches
the port can overwrite or delete every application's objects: say so. A
listener that requires client certificates (ca_file) is not open to anyone,
so it is not warned about. Also warned: HTTP in plaintext beyond loopback
beside a Flight listener that uses TLS (the mirror would bypass it).
"""

from __future__ import annotations

import ipaddress

from flame_cache.app.config import Config, Endpoint
from flame_cache.store.access import Policy


def is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a name: it may resolve anywhere


def exposure_warnings(config: Config, policy: Policy) -> list[str]:
    warnings = []
    listeners = [("Arrow Flight", config.endpoint, config.tls), ("HTTP", config.http_endpoint, config.http_tls)]
    why = "there is no cache.auth" if not policy.enabled else "cache.auth.anonymous lets them"
    for name, endpoint, tls in listeners:
        if endpoint is None or is_loopback(endpoint.host) or (tls is not None and tls.mutual):
            continue
        if policy.anonymous_may_write():
            warnings.append(
                f"{name} listens on {endpoint.uri}, beyond loopback, and callers without a token may write "
                f"and delete ({why}): anyone who reaches the port can overwrite or delete objects; "
                "set cache.auth (README, Security)"
            )
    if config.tls is not None and _plain_beyond_loopback(config.http_endpoint):
        warnings.append(
            f"HTTP serves plaintext on {config.http_endpoint.uri} while Arrow Flight uses TLS: "  # type: ignore[union-attr]
            "give it an https:// endpoint (it serves cache.tls's certificate unless cache.http.tls names another)"
        )
    return warnings


def _plain_beyond_loopback(endpoint: Endpoint | None) -> bool:
    return endpoint is not None and endpoint.scheme == "http" and not is_loopback(endpoint.host)

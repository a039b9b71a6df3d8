"""Where Flight listens, and the endpoint clients are told to use (SPEC 4.6).

Listening: the host `cache.endpoint` names, if it is one of this machine's
(every interface, loopback, an interface's address, or a name resolving to
one). Upstream's server takes only the port from `cache.endpoint` and
listens on the address of `cache.network_interface`; Flame's Helm chart
relies on that and writes the Service's name there
(`grpc://flame-object-cache:9090`), which is no address of the pod. Such a
host is listened for on every interface, and advertised as below, as
upstream does.

Order: `cache.advertise`; else, when the server binds every interface, the
IPv4 address of the interface matching `cache.network_interface` (a regex,
as upstream) or of the first non-loopback interface; else the bound host.
A server bound to one address is reachable only there, so that address is
advertised even if `network_interface` names another (upstream would
advertise an address it does not listen on).
"""

from __future__ import annotations

import fcntl
import logging
import re
import socket
import struct
from urllib.parse import urlsplit

from dataclasses import replace

from flame_cache.app.config import Config, Endpoint

log = logging.getLogger(__name__)

WILDCARD_HOSTS = {"0.0.0.0", "::", "*", ""}
_SIOCGIFADDR = 0x8915


def listen_endpoint(config: Config) -> Config:
    """`config` itself, or, if its endpoint's host is not this machine's, the
    same config listening on every interface at that port (logged)."""
    endpoint = config.endpoint
    if is_local_host(endpoint.host):
        return config
    everywhere = Endpoint(endpoint.scheme, "0.0.0.0", endpoint.port)
    log.info(
        "cache.endpoint %s names no address of this machine (Flame's Helm chart writes its Service's name there): "
        "listening on %s, as upstream does",
        endpoint.uri,
        everywhere.uri,
    )
    return replace(config, endpoint=everywhere)


def is_local_host(host: str) -> bool:
    """Whether `host` is every interface, or resolves to an address that a
    socket here can be bound to (a name that does not resolve is not)."""
    if host in WILDCARD_HOSTS:
        return True
    try:
        addresses = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        return False
    for family, _, _, _, address in addresses:
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            try:
                probe.bind((address[0], 0))
            except OSError:  # EADDRNOTAVAIL: another machine's address (a Service's, say)
                continue
            return True
    return False


def advertised_endpoint(config: Config) -> str:
    if config.advertise:
        return config.advertise
    endpoint = config.endpoint
    host = endpoint.host
    if host in WILDCARD_HOSTS:
        host = _interface_address(config.network_interface)
    elif config.network_interface:
        log.warning("cache.network_interface is ignored: the server binds only %s, so that is advertised", host)
    host = f"[{host}]" if ":" in host else host
    return f"{endpoint.scheme}://{host}:{endpoint.port}"


def _interface_address(pattern: str | None) -> str:
    addresses = interface_addresses()
    if pattern:
        regex = re.compile(pattern)
        for name, address in addresses.items():
            if regex.search(name):
                return address
        log.warning("no interface with an IPv4 address matches cache.network_interface %r", pattern)
    for name, address in addresses.items():
        if not address.startswith("127."):
            return address
    return "127.0.0.1"


def interface_addresses() -> dict[str, str]:
    """Interface name -> IPv4 address, for the interfaces that have one (Linux)."""
    found: dict[str, str] = {}
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        for _, name in socket.if_nameindex():
            request = struct.pack("256s", name.encode()[:15])
            try:
                reply = fcntl.ioctl(probe.fileno(), _SIOCGIFADDR, request)
            except OSError:
                continue
            found[name] = socket.inet_ntoa(reply[20:24])
    return found


LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")


def http_allowed_hosts(config: Config, advertised: str) -> tuple[str, ...]:
    """The names the HTTP Host header may carry: `cache.http.allowed_hosts`
    if set; else loopback names, the bound HTTP host (every interface's
    IPv4 address when it binds all of them) and the advertised host."""
    if config.http_allowed_hosts is not None:
        return config.http_allowed_hosts
    hosts = list(LOOPBACK_NAMES)
    if config.http_endpoint is not None:
        bound = config.http_endpoint.host
        hosts += interface_addresses().values() if bound in WILDCARD_HOSTS else [bound]
    advertised_host = urlsplit(advertised).hostname
    if advertised_host:
        hosts.append(advertised_host)
    return tuple(dict.fromkeys(hosts))

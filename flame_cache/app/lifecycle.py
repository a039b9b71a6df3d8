"""Start the servers on one store, and stop them cleanly on SIGTERM or Ctrl-C."""

from __future__ import annotations

import logging
import ssl

from flame_cache.app import tls
from flame_cache.app.authconfig import build_policy
from flame_cache.app.config import Config
from flame_cache.app.exposure import exposure_warnings
from flame_cache.app.fdlimit import raise_open_file_limit
from flame_cache.app.network import advertised_endpoint, http_allowed_hosts, listen_endpoint
from flame_cache.app.shutdown import EXIT_FORCED, StopSignals, exit_now, stop_within
from flame_cache.flight import CacheFlightServer
from flame_cache.http import HttpServer, create_app
from flame_cache.http.protocol import ConnectionLimits
from flame_cache.http.server import BACKLOG as HTTP_BACKLOG
from flame_cache.metrics import Metrics
from flame_cache.store import Store, repair
from flame_cache.store.access import Policy

log = logging.getLogger("flame_cache")


class StartupError(RuntimeError):
    """The server cannot start; the message says why."""


def build_store(config: Config) -> Store:
    store = Store(
        config.storage,
        eviction=config.eviction,
        max_deltas=config.max_deltas,
        fsync=config.fsync,
        max_object_size=config.max_object_size,
        max_key_bytes=config.max_key_bytes,
        capacity=config.capacity,
        expiry=config.expiry,
    )
    repair.start_check(store)  # in the background: damaged files are set aside and reported
    repair.start_scrub(store, config.scrub)  # checksums re-read at cache.scrub's rate
    repair.start_sweep(store, config.expiry_sweep)  # expired objects' files deleted
    return store


def security(config: Config) -> tuple[Policy, dict, ssl.SSLContext | None]:
    """cache.auth's policy (token files read), Flight's TLS options and
    HTTP's TLS context, every file checked before anything listens."""
    try:
        policy = build_policy(config.auth)
        flight = tls.flight_options(config.tls)
        http = tls.server_context(config.http_tls) if config.http_tls is not None else None
    except (OSError, ValueError) as exc:
        raise StartupError(str(exc)) from None
    if policy.enabled:
        names = ", ".join(token.name for token in policy.tokens) or "none"
        anonymous = ", ".join(map(str, policy.anonymous.scopes)) or "none"
        log.info("cache.auth: tokens %s; scopes of anonymous callers: %s", names, anonymous)
    for warning in exposure_warnings(config, policy):
        log.warning("%s", warning)
    return policy, flight, http


def start_http(
    config: Config,
    store: Store,
    advertised: str,
    policy: Policy | None = None,
    context: ssl.SSLContext | None = None,
    metrics: Metrics | None = None,
) -> HttpServer | None:
    """The HTTP mirror on `cache.http.endpoint`, over the same store, policy
    and metrics (TLS with `context`); None if off."""
    if config.http_endpoint is None:
        log.info("HTTP mirror off (cache.http.endpoint is empty)")
        return None
    app = create_app(store, advertised, http_allowed_hosts(config, advertised), policy, metrics)
    limits = ConnectionLimits(config.http_header_timeout, config.http_max_connections)
    try:
        endpoint = config.http_endpoint
        http = HttpServer(app, endpoint.host, endpoint.port, limits, context).start()
    except OSError as exc:
        raise StartupError(f"cannot listen on {config.http_endpoint.uri} (is the port in use?): {exc.strerror or exc}") from None
    log.info("HTTP listening on %s (web page %s/, API docs %s/docs)", http.url, http.url, http.url)
    log.info(
        "HTTP connections: at most %d, each with %gs to send a request head",
        limits.max_connections,
        limits.header_timeout,
    )
    return http


def check_open_files(config: Config) -> None:
    """Raise the open-file limit; warn if HTTP may take most of it. Flight
    (gRPC) has no connection limit pyarrow can set: the descriptors HTTP
    leaves are what keeps Flight and the storage files working."""
    limit = raise_open_file_limit()
    burst = 2 * HTTP_BACKLOG  # connections accepted before they count against the limit
    if limit is not None and config.http_endpoint is not None and config.http_max_connections + burst > limit // 2:
        log.warning(
            "cache.http.max_connections = %d, plus up to %d connections being accepted, is more than half "
            "the open-file limit (%d): idle HTTP connections can leave Flight and the storage files "
            "without descriptors",
            config.http_max_connections,
            burst,
            limit,
        )


def run(config: Config) -> None:
    """Serve until SIGTERM or SIGINT, then shut down and return (or exit
    with EXIT_FORCED if requests outlast `cache.shutdown_timeout`)."""
    signals = StopSignals().install()  # first: a signal during start-up then stops cleanly too
    log.info("configuration: %s", config.source)
    for warning in config.warnings:
        log.warning("%s", warning)
    check_open_files(config)
    policy, flight_tls, http_tls = security(config)
    if config.storage is None:
        log.warning("storage: none (memory only): objects are lost on restart and on eviction")
    else:
        log.info("storage: %s", config.storage)
    try:
        store = build_store(config)
    except OSError as exc:
        raise StartupError(f"cannot use storage {config.storage}: {exc.strerror or exc}") from None
    config = listen_endpoint(config)  # upstream's `grpc://<service name>:9090` listens on every interface
    advertised = advertised_endpoint(config)
    metrics = Metrics(store)  # one registry: both protocols report to it, /metrics serves it
    try:
        server = CacheFlightServer(store, config.endpoint.uri, advertised, policy, metrics.requests, **flight_tls)
    except Exception as exc:  # pyarrow says only "did not start properly"
        raise StartupError(f"cannot listen on {config.endpoint.uri} (is the port in use?): {exc}") from None
    log.info("Arrow Flight listening on %s (port %d), advertising %s", config.endpoint.uri, server.port, advertised)
    log.info("eviction: %s", config.eviction)
    if config.capacity is not None and config.storage is None:
        log.warning("cache.capacity is ignored with storage: none (it bounds the bytes of object files)")
    elif config.capacity is not None:
        log.info("capacity: %d bytes of object files; never evicted: %s", config.capacity, ", ".join(config.eviction.pin) or "nothing")
    for rule in config.expiry:
        log.info("expiry rule: %s", rule)
    try:
        http = start_http(config, store, advertised, policy, http_tls, metrics)
    except StartupError:
        server.shutdown()
        raise

    # A pyarrow Flight server serves from construction on; its serve() would
    # only block, and install C signal handlers that pre-empt ours.
    signals.wait()
    log.info("stopping: finishing in-flight requests (for at most %gs)", config.shutdown_timeout)
    stops = [server.shutdown] + ([http.stop] if http is not None else [])
    if not stop_within(stops, config.shutdown_timeout, signals):
        log.error(
            "stopping: requests still running after %gs or a second signal; exiting with status %d, "
            "cutting them off (no write is left half done)",
            config.shutdown_timeout,
            EXIT_FORCED,
        )
        exit_now(EXIT_FORCED)
    log.info("stopped")

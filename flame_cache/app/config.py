"""The `cache:` section of flame-cluster.yaml, environment overrides, defaults (SPEC 6).

Precedence: environment variable > config file > built-in default. Every bad
value stops start-up with a message naming the key and the value. A key that
nothing reads (a typo such as `capcity`) is reported at start-up with the
nearest known key: a warning, not an error, so a file shared with upstream's
server, whose keys may differ from ours, still starts.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from flame_cache.app.authconfig import AuthConfig, parse_auth
from flame_cache.app.configerror import ConfigError
from flame_cache.app.durations import parse_duration
from flame_cache.app.logs import FORMATS, LEVELS, LogSettings
from flame_cache.app.sizes import parse_size
from flame_cache.app.tlsconfig import TlsConfig, listener_tls
from flame_cache.store.errors import InvalidArgument
from flame_cache.store.eviction import DEFAULT_PIN, POLICIES, Eviction
from flame_cache.store.expiry import AFTER, DEFAULT_SWEEP, MAX_TTL, ExpiryRule
from flame_cache.store.limits import DEFAULT_MAX_DELTAS, MAX_KEY_BYTES
from flame_cache.store.repair import Scrub
from flame_cache.store.patterns import Pattern

DEFAULT_ENDPOINT = "grpc://127.0.0.1:9090"
DEFAULT_HTTP_ENDPOINT = "http://127.0.0.1:9091"
DEFAULT_CONFIG = Path("~/.flame/flame-cluster.yaml")
DEFAULT_STORAGE = Path("~/.flame/cache")
DEFAULT_DISK_MAX_MEMORY = 1 << 30
DEFAULT_SHUTDOWN_TIMEOUT = 25.0  # under Kubernetes' default 30 s grace period
DEFAULT_HTTP_HEADER_TIMEOUT = 10.0  # seconds for a connection to send its request head
DEFAULT_HTTP_MAX_CONNECTIONS = 1024
MIN_KEY_BYTES = 3  # 's/o'
FLIGHT_SCHEMES = {"grpc": "grpc", "grpc+tcp": "grpc", "grpc+tls": "grpc+tls", "grpcs": "grpc+tls"}
HTTP_SCHEMES = {"http": "http", "https": "https"}

ENV_KEYS = {
    "FLAME_CACHE_ENDPOINT": "endpoint",
    "FLAME_CACHE_STORAGE": "storage",
    "FLAME_CACHE_EVICTION_POLICY": "eviction.policy",
    "FLAME_CACHE_MAX_MEMORY": "eviction.max_memory",
    "FLAME_CACHE_MAX_OBJECTS": "eviction.max_objects",
    "FLAME_CACHE_HTTP_ENDPOINT": "http.endpoint",
    "FLAME_CACHE_ADVERTISE": "advertise",
    "FLAME_CACHE_NETWORK_INTERFACE": "network_interface",
    "FLAME_CACHE_MAX_DELTAS": "limits.max_deltas",
    "FLAME_CACHE_FSYNC": "fsync",
    "FLAME_CACHE_MAX_OBJECT_SIZE": "limits.max_object_size",
    "FLAME_CACHE_MAX_KEY_BYTES": "limits.max_key_bytes",
    "FLAME_CACHE_SHUTDOWN_TIMEOUT": "shutdown_timeout",
    "FLAME_CACHE_HTTP_ALLOWED_HOSTS": "http.allowed_hosts",
    "FLAME_CACHE_HTTP_HEADER_TIMEOUT": "http.header_timeout",
    "FLAME_CACHE_HTTP_MAX_CONNECTIONS": "http.max_connections",
    "FLAME_CACHE_SCRUB_INTERVAL": "scrub.interval",
    "FLAME_CACHE_SCRUB_RATE": "scrub.rate",
    "FLAME_CACHE_CAPACITY": "capacity",
    "FLAME_CACHE_EVICTION_PIN": "eviction.pin",
    "FLAME_CACHE_EXPIRY": "expiry",
    "FLAME_CACHE_EXPIRY_SWEEP": "expiry_sweep",
    "FLAME_CACHE_TLS_CERT_FILE": "tls.cert_file",
    "FLAME_CACHE_TLS_KEY_FILE": "tls.key_file",
    "FLAME_CACHE_TLS_CA_FILE": "tls.ca_file",
    "FLAME_CACHE_LOG_LEVEL": "log.level",
    "FLAME_CACHE_LOG_FORMAT": "log.format",
}


# An empty variable is taken as unset, except where empty has a meaning.
EMPTY_MEANS_OFF = {"http.endpoint"}


@dataclass(frozen=True, slots=True)
class Endpoint:
    scheme: str  # normalised: grpc, grpc+tls, http or https
    host: str
    port: int

    @property
    def uri(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}"


@dataclass(frozen=True, slots=True)
class Config:
    endpoint: Endpoint
    http_endpoint: Endpoint | None
    advertise: str | None
    network_interface: str | None
    storage: Path | None  # None: memory only
    eviction: Eviction  # cache.eviction
    tls: TlsConfig | None  # Flight's (cache.tls), with a TLS endpoint
    max_deltas: int
    fsync: bool
    source: str  # the file read, or "built-in defaults"
    max_object_size: int | None = None  # cache.limits.max_object_size; None: no limit
    max_key_bytes: int = MAX_KEY_BYTES  # cache.limits.max_key_bytes
    shutdown_timeout: float = DEFAULT_SHUTDOWN_TIMEOUT  # seconds in-flight requests get on SIGTERM
    http_allowed_hosts: tuple[str, ...] | None = None  # cache.http.allowed_hosts; None: computed at start-up
    http_header_timeout: float = DEFAULT_HTTP_HEADER_TIMEOUT  # cache.http.header_timeout
    http_max_connections: int = DEFAULT_HTTP_MAX_CONNECTIONS  # cache.http.max_connections
    scrub: Scrub = Scrub()  # cache.scrub
    capacity: int | None = None  # cache.capacity: bytes of object files; None: unbounded
    expiry: tuple[ExpiryRule, ...] = ()  # cache.expiry
    expiry_sweep: float = DEFAULT_SWEEP  # cache.expiry_sweep: seconds between sweeps
    http_tls: TlsConfig | None = None  # HTTP's, with an https:// endpoint: cache.http.tls, else cache.tls
    auth: AuthConfig | None = None  # cache.auth; None: anyone may do anything
    log: LogSettings = LogSettings()  # cache.log
    warnings: tuple[str, ...] = ()  # what start-up should tell the operator (unknown keys)


def load_config(path: Path | None = None, env: Mapping[str, str] = os.environ) -> Config:
    """Read `path` (or ~/.flame/flame-cluster.yaml if it exists), then apply `env`."""
    section, source = _read_section(path)
    for variable, dotted in ENV_KEYS.items():
        value = env.get(variable)
        if value is not None and (value != "" or dotted in EMPTY_MEANS_OFF):
            _set_dotted(section, dotted, value)
    read = _Read(section, "cache.", set())
    config = _build(read, source, env.get("FLAME_HOME") or None)
    unknown = [_unknown_key(dotted, read.asked, source) for dotted in _dotted_keys(section, "cache.")]
    return replace(config, warnings=config.warnings + tuple(w for w in unknown if w))


class _Read(dict):
    """A config mapping that records each key the builder asks for (`asked`,
    dotted), so that what nobody asked for can be reported."""

    def __init__(self, data: Mapping[str, Any], prefix: str, asked: set[str]) -> None:
        super().__init__(data)
        self.prefix, self.asked = prefix, asked

    def get(self, key: str, default: Any = None) -> Any:
        self.asked.add(self.prefix + key)
        value = super().get(key, default)
        return _Read(value, f"{self.prefix}{key}.", self.asked) if isinstance(value, dict) else value

    def __getitem__(self, key: str) -> Any:
        return self.get(key) if key in self else super().__getitem__(key)


def _dotted_keys(section: Mapping[str, Any], prefix: str) -> Iterator[str]:
    """Every leaf key of the section, dotted (a mapping's own key too)."""
    for key, value in section.items():
        yield f"{prefix}{key}"
        if isinstance(value, dict):
            yield from _dotted_keys(value, f"{prefix}{key}.")


def _unknown_key(dotted: str, asked: set[str], source: str) -> str | None:
    if dotted in asked:
        return None
    parent = dotted.rpartition(".")[0]
    if parent != "cache" and parent not in asked:
        return None  # reported with its parent
    siblings = {known.rpartition(".")[2]: known for known in asked if known.rpartition(".")[0] == parent}
    nearest = difflib.get_close_matches(dotted.rpartition(".")[2], sorted(siblings), n=1)
    hint = f" (did you mean {siblings[nearest[0]]}?)" if nearest else ""
    return f"unknown configuration key {dotted} in {source}{hint}; it is ignored"


def _read_section(path: Path | None) -> tuple[dict[str, Any], str]:
    if path is None:
        default = DEFAULT_CONFIG.expanduser()
        if not default.is_file():
            return {}, "built-in defaults"
        path = default
    try:
        document = yaml.safe_load(path.read_text()) or {}
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {path} is not valid YAML: {exc}") from None
    if not isinstance(document, dict):
        raise ConfigError(f"config file {path} must be a mapping with a 'cache:' section")
    section = document.get("cache") or {}
    if not isinstance(section, dict):
        raise ConfigError(f"'cache' in {path} must be a mapping, got {section!r}")
    return dict(section), str(path)


def _set_dotted(section: dict[str, Any], dotted: str, value: str) -> None:
    *parents, leaf = dotted.split(".")
    for parent in parents:
        child = section.get(parent)
        section[parent] = child = dict(child) if isinstance(child, dict) else {}
        section = child
    section[leaf] = value


def _build(section: dict[str, Any], source: str, flame_home: str | None) -> Config:
    eviction = _mapping(section, "eviction")
    http = _mapping(section, "http")
    limits_section = _mapping(section, "limits")
    storage = _storage(section.get("storage", None), flame_home)
    endpoint = _endpoint("cache.endpoint", section.get("endpoint") or DEFAULT_ENDPOINT, FLIGHT_SCHEMES)
    http_raw = http.get("endpoint", DEFAULT_HTTP_ENDPOINT)
    http_endpoint = _endpoint("cache.http.endpoint", http_raw, HTTP_SCHEMES) if http_raw else None
    tls, http_tls, tls_warnings = listener_tls(
        _mapping(section, "tls"),
        _mapping(http, "tls", "cache.http.tls"),
        endpoint.uri,
        endpoint.scheme == "grpc+tls",
        http_endpoint.uri if http_endpoint else None,
    )
    return Config(
        endpoint=endpoint,
        http_endpoint=http_endpoint,
        advertise=_advertise(section.get("advertise")),
        network_interface=_optional_text(section.get("network_interface")),
        storage=storage,
        eviction=_eviction(eviction, persistent=storage is not None),
        tls=tls,
        max_deltas=_positive_int("cache.limits.max_deltas", limits_section.get("max_deltas", DEFAULT_MAX_DELTAS)),
        fsync=_boolean("cache.fsync", section.get("fsync", False)),
        source=source,
        max_object_size=_optional_size("cache.limits.max_object_size", limits_section.get("max_object_size")),
        max_key_bytes=_key_bytes(limits_section.get("max_key_bytes", MAX_KEY_BYTES)),
        shutdown_timeout=_seconds("cache.shutdown_timeout", section.get("shutdown_timeout", DEFAULT_SHUTDOWN_TIMEOUT)),
        http_allowed_hosts=_allowed_hosts(http.get("allowed_hosts")),
        http_header_timeout=_seconds("cache.http.header_timeout", http.get("header_timeout", DEFAULT_HTTP_HEADER_TIMEOUT)),
        http_max_connections=_positive_int(
            "cache.http.max_connections", http.get("max_connections", DEFAULT_HTTP_MAX_CONNECTIONS)
        ),
        scrub=_scrub(_mapping(section, "scrub")),
        capacity=_optional_size("cache.capacity", section.get("capacity")),
        expiry=_expiry_rules(section.get("expiry")),
        expiry_sweep=_duration("cache.expiry_sweep", section.get("expiry_sweep", DEFAULT_SWEEP), positive=True),
        http_tls=http_tls,
        auth=parse_auth(section.get("auth")),
        warnings=tls_warnings,
        log=_log(_mapping(section, "log")),
    )


def _log(section: dict[str, Any]) -> LogSettings:
    """cache.log: `level` (debug, info, warning, error) and `format` (text or json)."""
    default = LogSettings()
    level = str(section.get("level", default.level)).strip().lower()
    if level not in LEVELS:
        raise ConfigError(f"cache.log.level = {section.get('level')!r}: choose one of {', '.join(LEVELS)}")
    log_format = str(section.get("format", default.format)).strip().lower()
    if log_format not in FORMATS:
        raise ConfigError(f"cache.log.format = {section.get('format')!r}: choose one of {', '.join(FORMATS)}")
    return LogSettings(level, log_format)


def _scrub(section: dict[str, Any]) -> Scrub:
    """cache.scrub: `interval` (a duration: 3600, 90s, 30m, 24h, 1d) and
    `rate` (bytes a second, a size: 16M; 0 turns the scrub off)."""
    default = Scrub()
    interval = _duration("cache.scrub.interval", section.get("interval", default.interval), positive=True)
    raw_rate = section.get("rate", default.rate)
    try:
        off = raw_rate is False or str(raw_rate).strip().lower() in ("0", "off", "false")  # YAML reads off as false
        rate = 0 if off else parse_size(raw_rate)
    except ValueError as exc:
        raise ConfigError(f"cache.scrub.rate: {exc}") from None
    return Scrub(interval, rate)


# A host name or IP address, without scheme or port: `*` (any), `cache.internal`, `10.0.0.7`, `::1`.
_HOST_NAME = re.compile(r"\*|[a-z0-9_-]+(?:\.[a-z0-9_-]+)*\.?|[0-9a-f:.]*:[0-9a-f:.]*")


def _allowed_hosts(value: object) -> tuple[str, ...] | None:
    """cache.http.allowed_hosts: a YAML list, or text with commas (the environment)."""
    if value is None or value == "":
        return None
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, (list, tuple)):
        raise ConfigError(f"cache.http.allowed_hosts = {value!r} must be a list of host names")
    hosts = []
    for item in items:
        host = str(item).strip().lower()
        if host.startswith("[") and host.endswith("]"):
            host = host[1:-1]
        if not host:
            continue
        if _HOST_NAME.fullmatch(host) is None or (":" in host and host.count(":") < 2):
            raise ConfigError(
                f"cache.http.allowed_hosts: {item!r} is not a host name or address "
                "(name hosts without scheme or port, as in cache.internal, 10.0.0.7, ::1 or '*')"
            )
        hosts.append(host)
    if not hosts:
        raise ConfigError(f"cache.http.allowed_hosts = {value!r} lists no host; use '*' to allow any")
    return tuple(hosts)


def _mapping(section: dict[str, Any], key: str, dotted: str | None = None) -> dict[str, Any]:
    value = section.get(key) or {}
    if not isinstance(value, dict):
        raise ConfigError(f"{dotted or 'cache.' + key} must be a mapping, got {value!r}")
    return value


def _endpoint(key: str, value: object, schemes: Mapping[str, str]) -> Endpoint:
    text = str(value).strip()
    parts = urlsplit(text)
    scheme = schemes.get(parts.scheme.lower())
    try:
        port = parts.port
    except ValueError:
        port = -1
    if scheme is None or not parts.hostname or port == -1 or parts.path not in ("", "/"):
        allowed = ", ".join(f"{s}://host:port" for s in schemes)
        raise ConfigError(f"{key} = {text!r} is not an endpoint like {allowed}")
    default_port = 9091 if scheme in HTTP_SCHEMES else 9090
    return Endpoint(scheme, parts.hostname, port if port is not None else default_port)


def _advertise(value: object) -> str | None:
    text = _optional_text(value)
    if text is None:
        return None
    return _endpoint("cache.advertise", text, FLIGHT_SCHEMES).uri


def _storage(value: object, flame_home: str | None) -> Path | None:
    if value is None or str(value).strip() == "":
        return DEFAULT_STORAGE.expanduser()
    text = str(value).strip()
    if text.lower() == "none":
        return None
    for prefix in ("fs://", "file://"):
        if text.startswith(prefix):
            text = text[len(prefix) :]
            break
    else:
        if "://" in text:
            raise ConfigError(f"cache.storage = {value!r}: use 'none', a path, or an fs:// or file:// URL")
    try:
        path = Path(text).expanduser()
    except RuntimeError:  # '~someone' naming no user
        raise ConfigError(f"cache.storage = {value!r}: cannot expand {text.split('/')[0]!r} to a home directory") from None
    if not path.is_absolute():
        path = Path(flame_home or os.getcwd()) / path
    return path


def _eviction(eviction: dict[str, Any], *, persistent: bool) -> Eviction:
    policy = str(eviction.get("policy", "lru")).strip().lower()
    if policy not in POLICIES:
        raise ConfigError(f"cache.eviction.policy = {policy!r}: choose one of {', '.join(POLICIES)}")
    raw_memory = eviction.get("max_memory")
    try:
        max_memory = parse_size(raw_memory) if raw_memory not in (None, "") else None
    except ValueError as exc:
        raise ConfigError(f"cache.eviction.max_memory: {exc}") from None
    if max_memory is None and persistent:
        max_memory = DEFAULT_DISK_MAX_MEMORY
    raw_objects = eviction.get("max_objects")
    max_objects = _positive_int("cache.eviction.max_objects", raw_objects) if raw_objects not in (None, "") else None
    return Eviction(policy, max_memory, max_objects, _pins(eviction.get("pin", list(DEFAULT_PIN))))


def _pins(value: object) -> tuple[str, ...]:
    """cache.eviction.pin: key patterns (a YAML list, or text with commas)."""
    if value is None or value == "":
        return ()
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, (list, tuple)):
        raise ConfigError(f"cache.eviction.pin = {value!r} must be a list of key patterns like '*/pkg/*'")
    pins = []
    for item in items:
        text = str(item).strip()
        try:
            Pattern.parse(text)
        except InvalidArgument as exc:
            raise ConfigError(f"cache.eviction.pin: {exc}") from None
        pins.append(text)
    return tuple(pins)


_RULE_KEYS = ("match", "ttl", "after")


def _expiry_rules(value: object) -> tuple[ExpiryRule, ...]:
    """cache.expiry: a list of {match: <pattern>, ttl: <duration>, after: write | access}
    (the environment's FLAME_CACHE_EXPIRY holds the same list as YAML or JSON)."""
    if value is None or value == "":
        return ()
    if isinstance(value, str):
        try:
            value = yaml.safe_load(value)
        except yaml.YAMLError as exc:
            raise ConfigError(f"cache.expiry = {value!r} is not a YAML list of rules: {exc}") from None
    if not isinstance(value, list):
        raise ConfigError(f"cache.expiry must be a list of rules {{match, ttl, after}}, got {value!r}")
    rules = []
    for number, rule in enumerate(value):
        where = f"cache.expiry[{number}]"
        if not isinstance(rule, dict):
            raise ConfigError(f"{where} = {rule!r} must be a mapping {{match: <pattern>, ttl: <duration>, after: write}}")
        unknown = sorted(set(map(str, rule)) - set(_RULE_KEYS))
        if unknown:
            raise ConfigError(f"{where}: unknown key(s) {', '.join(unknown)}; a rule has {', '.join(_RULE_KEYS)}")
        if "match" not in rule or "ttl" not in rule:
            raise ConfigError(f"{where} = {rule!r} needs both 'match' (a key pattern) and 'ttl' (a duration)")
        try:
            pattern = Pattern.parse(str(rule["match"]).strip())
        except InvalidArgument as exc:
            raise ConfigError(f"{where}.match: {exc}") from None
        ttl = _duration(f"{where}.ttl", rule["ttl"], positive=True)
        if ttl > MAX_TTL:
            raise ConfigError(f"{where}.ttl = {rule['ttl']!r} is longer than a century")
        after = str(rule.get("after", "write")).strip().lower()
        if after not in AFTER:
            raise ConfigError(f"{where}.after = {rule.get('after')!r}: choose one of {', '.join(AFTER)}")
        rules.append(ExpiryRule(pattern, ttl, after))
    return tuple(rules)


def _duration(key: str, value: object, *, positive: bool = False) -> float:
    try:
        seconds = parse_duration(value)
    except ValueError as exc:
        raise ConfigError(f"{key}: {exc}") from None
    if positive and seconds <= 0:
        raise ConfigError(f"{key} = {value!r} must be more than 0")
    return seconds


def _optional_size(key: str, value: object) -> int | None:
    if value in (None, ""):
        return None
    try:
        return parse_size(value)
    except ValueError as exc:
        raise ConfigError(f"{key}: {exc}") from None


def _positive_int(key: str, value: object) -> int:
    try:
        number = int(str(value).strip())
    except ValueError:
        raise ConfigError(f"{key} = {value!r} is not a whole number") from None
    if number < 1:
        raise ConfigError(f"{key} = {value!r} must be at least 1")
    return number


def _key_bytes(value: object) -> int:
    number = _positive_int("cache.limits.max_key_bytes", value)
    if not MIN_KEY_BYTES <= number <= MAX_KEY_BYTES:
        raise ConfigError(
            f"cache.limits.max_key_bytes = {value!r} must be from {MIN_KEY_BYTES} to {MAX_KEY_BYTES} "
            f"(3 segments of at most 255 bytes)"
        )
    return number


def _seconds(key: str, value: object) -> float:
    """A duration in seconds: `30`, `2.5`, `30s`."""
    text = str(value).strip().lower().removesuffix("s").strip()
    try:
        number = float(text)
    except ValueError:
        raise ConfigError(f"{key} = {value!r} is not a number of seconds like 30 or 2.5s") from None
    if not 0 < number < float("inf"):
        raise ConfigError(f"{key} = {value!r} must be a finite number of seconds, more than 0")
    return number


def _boolean(key: str, value: object) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off", ""):
        return False
    raise ConfigError(f"{key} = {value!r} is not true or false")


def _optional_text(value: object) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None

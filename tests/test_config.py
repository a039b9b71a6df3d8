"""Configuration (SPEC 6, 4.6): the `cache:` section of flame-cluster.yaml, environment
overrides, defaults, sizes, the advertised endpoint, and what a bad value does to start-up.

load_config and parse_size are pure: every call passes `env={...}` explicitly, and HOME
points at an empty directory so a real ~/.flame/flame-cluster.yaml cannot leak in.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import bson
import pyarrow as pa
import pyarrow.flight as flight
import pytest
import yaml

from flame_cache.app.config import ConfigError, load_config
from flame_cache.app.network import advertised_endpoint, is_local_host
from flame_cache.app.sizes import parse_size
from tests.server import CacheServer, clean_env

GiB, MiB = 2**30, 2**20


@pytest.fixture(autouse=True)
def empty_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    return home


def write_yaml(path: Path, document: dict) -> Path:
    path.write_text(yaml.safe_dump(document))
    return path


# -- defaults and the config file ------------------------------------------


def test_defaults_run_on_a_laptop(empty_home: Path):
    """Without a config file or environment: Flight on grpc://127.0.0.1:9090, HTTP on
    http://127.0.0.1:9091, storage under ~/.flame/cache, LRU eviction, nothing advertised
    beyond the endpoint."""
    config = load_config(None, env={})
    assert config.endpoint.uri == "grpc://127.0.0.1:9090"
    assert config.http_endpoint is not None and config.http_endpoint.uri == "http://127.0.0.1:9091"
    assert config.storage == empty_home / ".flame" / "cache"
    assert config.advertise is None
    assert config.tls is None
    assert config.eviction.policy == "lru"
    assert advertised_endpoint(config) == "grpc://127.0.0.1:9090"


def test_default_config_file_in_flame_home_directory_is_read(empty_home: Path):
    """Without --config, ~/.flame/flame-cluster.yaml is read when it exists."""
    (empty_home / ".flame").mkdir()
    write_yaml(empty_home / ".flame" / "flame-cluster.yaml", {"cache": {"endpoint": "grpc://127.0.0.1:7777"}})
    config = load_config(None, env={})
    assert config.endpoint.uri == "grpc://127.0.0.1:7777"
    assert "flame-cluster.yaml" in config.source


def test_cache_section_is_read_and_other_sections_are_ignored(tmp_path: Path):
    """Every key of the `cache:` section is read; `cluster:` and other sections are
    neither required nor looked at."""
    path = write_yaml(
        tmp_path / "flame-cluster.yaml",
        {
            "cluster": {"name": "flame", "endpoint": "http://flame-session-manager:8080", "slot": "cpu=1"},
            "executors": {"shim": "host", "limits": {"max_executors": 10}},
            "cache": {
                "endpoint": "grpc://0.0.0.0:9190",
                "network_interface": "eth0",
                "storage": str(tmp_path / "cache-data"),
                "eviction": {"policy": "lru", "max_memory": "2G", "max_objects": 500},
                "http": {"endpoint": "http://0.0.0.0:9191"},
                "advertise": "grpc://cache.example.internal:9190",
            },
        },
    )
    config = load_config(path, env={})
    assert (config.endpoint.scheme, config.endpoint.host, config.endpoint.port) == ("grpc", "0.0.0.0", 9190)
    assert config.network_interface == "eth0"
    assert config.storage == tmp_path / "cache-data"
    assert (config.eviction.policy, config.eviction.max_memory, config.eviction.max_objects) == ("lru", 2 * GiB, 500)
    assert config.http_endpoint is not None and config.http_endpoint.uri == "http://0.0.0.0:9191"
    assert config.advertise == "grpc://cache.example.internal:9190"
    assert config.source == str(path)


def test_file_without_a_cache_section_gives_the_defaults(tmp_path: Path, empty_home: Path):
    """A flame-cluster.yaml with only other sections runs the cache on its defaults."""
    config = load_config(write_yaml(tmp_path / "c.yaml", {"cluster": {"name": "x"}}), env={})
    assert config.endpoint.uri == "grpc://127.0.0.1:9090"
    assert config.storage == empty_home / ".flame" / "cache"


def test_empty_http_endpoint_in_the_file_turns_http_off(tmp_path: Path):
    """`cache.http.endpoint: ""` turns the HTTP mirror off."""
    config = load_config(write_yaml(tmp_path / "c.yaml", {"cache": {"http": {"endpoint": ""}}}), env={})
    assert config.http_endpoint is None


def test_max_memory_as_a_plain_yaml_number_is_bytes(tmp_path: Path):
    """`max_memory: 1048576` (a YAML integer) is a byte count."""
    path = write_yaml(tmp_path / "c.yaml", {"cache": {"eviction": {"max_memory": 1048576}}})
    assert load_config(path, env={}).eviction.max_memory == MiB


# -- environment overrides -------------------------------------------------

FILE_CACHE = {
    "endpoint": "grpc://127.0.0.1:9000",
    "storage": "/from/the/file",
    "eviction": {"policy": "lru", "max_memory": "1G", "max_objects": 10},
    "http": {"endpoint": "http://127.0.0.1:9001"},
    "advertise": "grpc://from-file:9000",
}


def _http(config):
    return None if config.http_endpoint is None else config.http_endpoint.uri


def _endpoint(config):
    return config.endpoint.uri


def _advertise(config):
    return config.advertise


ENV_CASES = [
    ("endpoint", {"FLAME_CACHE_ENDPOINT": "grpc://0.0.0.0:7070"}, _endpoint, "grpc://0.0.0.0:7070"),
    ("endpoint-grpc+tcp", {"FLAME_CACHE_ENDPOINT": "grpc+tcp://10.0.0.5:70"}, _endpoint, "grpc://10.0.0.5:70"),
    ("storage-none", {"FLAME_CACHE_STORAGE": "none"}, lambda c: c.storage, None),
    ("storage-path", {"FLAME_CACHE_STORAGE": "/var/lib/cache"}, lambda c: c.storage, Path("/var/lib/cache")),
    ("storage-fs-url", {"FLAME_CACHE_STORAGE": "fs:///var/lib/cache"}, lambda c: c.storage, Path("/var/lib/cache")),
    ("storage-file-url", {"FLAME_CACHE_STORAGE": "file:///data/cache"}, lambda c: c.storage, Path("/data/cache")),
    (
        "storage-relative-path-under-flame-home",
        {"FLAME_CACHE_STORAGE": "data/cache", "FLAME_HOME": "/opt/flame"},
        lambda c: c.storage,
        Path("/opt/flame/data/cache"),
    ),
    (
        "storage-relative-fs-url-under-flame-home",
        {"FLAME_CACHE_STORAGE": "fs://data/cache", "FLAME_HOME": "/opt/flame"},
        lambda c: c.storage,
        Path("/opt/flame/data/cache"),
    ),
    (
        "storage-relative-file-url-under-flame-home",
        {"FLAME_CACHE_STORAGE": "file://cache", "FLAME_HOME": "/opt/flame"},
        lambda c: c.storage,
        Path("/opt/flame/cache"),
    ),
    ("eviction-policy", {"FLAME_CACHE_EVICTION_POLICY": "none"}, lambda c: c.eviction.policy, "none"),
    ("max-memory", {"FLAME_CACHE_MAX_MEMORY": "512M"}, lambda c: c.eviction.max_memory, 512 * MiB),
    ("max-memory-fraction", {"FLAME_CACHE_MAX_MEMORY": "1.5G"}, lambda c: c.eviction.max_memory, 3 * GiB // 2),
    ("max-objects", {"FLAME_CACHE_MAX_OBJECTS": "2500"}, lambda c: c.eviction.max_objects, 2500),
    ("http-endpoint", {"FLAME_CACHE_HTTP_ENDPOINT": "http://0.0.0.0:8081"}, _http, "http://0.0.0.0:8081"),
    ("http-endpoint-empty-turns-http-off", {"FLAME_CACHE_HTTP_ENDPOINT": ""}, _http, None),
    ("advertise", {"FLAME_CACHE_ADVERTISE": "grpc://cache.svc:9090"}, _advertise, "grpc://cache.svc:9090"),
    ("advertise-grpcs-as-grpc+tls", {"FLAME_CACHE_ADVERTISE": "grpcs://c.svc:443"}, _advertise, "grpc+tls://c.svc:443"),
]


@pytest.mark.parametrize("env, read, expected", [c[1:] for c in ENV_CASES], ids=[c[0] for c in ENV_CASES])
def test_environment_overrides_the_config_file(tmp_path: Path, env: dict, read, expected):
    """Each FLAME_CACHE_* variable beats the same setting in the file."""
    path = write_yaml(tmp_path / "c.yaml", {"cluster": {"name": "x"}, "cache": FILE_CACHE})
    assert read(load_config(path, env=env)) == expected


@pytest.mark.parametrize("env, read, expected", [c[1:] for c in ENV_CASES], ids=[c[0] for c in ENV_CASES])
def test_environment_overrides_the_defaults(env: dict, read, expected):
    """Each FLAME_CACHE_* variable works without any config file."""
    assert read(load_config(None, env=env)) == expected


# -- sizes -----------------------------------------------------------------


@pytest.mark.parametrize(
    "text, expected",
    [
        ("512M", 512 * MiB),
        ("8G", 8 * GiB),
        ("1.5G", 3 * GiB // 2),
        ("1024", 1024),
        (1024, 1024),
        ("64K", 64 * 1024),
        ("2T", 2 * 2**40),
        ("8g", 8 * GiB),
        ("1.5GB", 3 * GiB // 2),
        ("512Mi", 512 * MiB),
        (" 256M ", 256 * MiB),
    ],
)
def test_sizes_are_binary_units(text, expected):
    """Sizes count in powers of 1024: 8G = 8 * 2**30, 1.5G, 512M, plain bytes."""
    assert parse_size(text) == expected


@pytest.mark.parametrize("text", ["", "lots", "12X", "-1", "-1G", "1..5G", "G", "1 2M", True, -5])
def test_bad_sizes_are_refused_naming_the_value(text):
    """A value that is not a size raises ValueError naming the value."""
    with pytest.raises(ValueError) as caught:
        parse_size(text)
    assert repr(text) in str(caught.value) or str(text) in str(caught.value)


# -- bad values stop start-up, naming key and value ------------------------

BAD_FILE_VALUES = [
    ("max-memory-words", {"eviction": {"max_memory": "lots"}}, "cache.eviction.max_memory", "lots"),
    ("max-memory-negative", {"eviction": {"max_memory": "-1G"}}, "cache.eviction.max_memory", "-1G"),
    ("max-objects-words", {"eviction": {"max_objects": "ten"}}, "cache.eviction.max_objects", "ten"),
    ("max-objects-zero", {"eviction": {"max_objects": 0}}, "cache.eviction.max_objects", "0"),
    ("policy-unknown", {"eviction": {"policy": "fifo"}}, "cache.eviction.policy", "fifo"),
    ("endpoint-http-scheme", {"endpoint": "http://127.0.0.1:9090"}, "cache.endpoint", "http://127.0.0.1:9090"),
    ("endpoint-bad-port", {"endpoint": "grpc://127.0.0.1:notaport"}, "cache.endpoint", "grpc://127.0.0.1:notaport"),
    ("endpoint-port-out-of-range", {"endpoint": "grpc://127.0.0.1:99999"}, "cache.endpoint", "99999"),
    ("endpoint-no-scheme", {"endpoint": "127.0.0.1:9090"}, "cache.endpoint", "127.0.0.1:9090"),
    ("storage-unknown-url", {"storage": "s3://bucket/cache"}, "cache.storage", "s3://bucket/cache"),
    ("advertise-no-scheme", {"advertise": "cache.example.com"}, "cache.advertise", "cache.example.com"),
    ("http-endpoint-grpc-scheme", {"http": {"endpoint": "grpc://h:1"}}, "cache.http.endpoint", "grpc://h:1"),
    ("eviction-not-a-mapping", {"eviction": "big"}, "cache.eviction", "big"),
    ("tls-without-cert", {"endpoint": "grpc+tls://127.0.0.1:9443"}, "cache.tls.cert_file", "grpc+tls://127.0.0.1:9443"),
]


@pytest.mark.parametrize("cache, key, value", [c[1:] for c in BAD_FILE_VALUES], ids=[c[0] for c in BAD_FILE_VALUES])
def test_bad_file_value_raises_config_error_naming_key_and_value(tmp_path: Path, cache: dict, key: str, value: str):
    """A bad value in the `cache:` section raises ConfigError naming the key and the value."""
    path = write_yaml(tmp_path / "c.yaml", {"cluster": {"name": "x"}, "cache": cache})
    with pytest.raises(ConfigError) as caught:
        load_config(path, env={})
    message = str(caught.value)
    assert key in message and value in message, message


BAD_ENV_VALUES = [
    ("FLAME_CACHE_MAX_MEMORY", "lots", "cache.eviction.max_memory"),
    ("FLAME_CACHE_MAX_OBJECTS", "ten", "cache.eviction.max_objects"),
    ("FLAME_CACHE_EVICTION_POLICY", "fifo", "cache.eviction.policy"),
    ("FLAME_CACHE_ENDPOINT", "localhost", "cache.endpoint"),
    ("FLAME_CACHE_STORAGE", "s3://bucket", "cache.storage"),
    ("FLAME_CACHE_ADVERTISE", "nope", "cache.advertise"),
    ("FLAME_CACHE_HTTP_ENDPOINT", "ftp://x:1", "cache.http.endpoint"),
]


@pytest.mark.parametrize("variable, value, key", BAD_ENV_VALUES, ids=[v[0] for v in BAD_ENV_VALUES])
def test_bad_environment_value_raises_config_error_naming_it(variable: str, value: str, key: str):
    """A bad value from the environment raises ConfigError naming the setting (as the
    variable or the config key) and the value."""
    with pytest.raises(ConfigError) as caught:
        load_config(None, env={variable: value})
    message = str(caught.value)
    assert (variable in message or key in message) and value in message, message


@pytest.mark.parametrize(
    "content",
    ["cache: [unclosed", "- just\n- a list\n", "cache: not-a-mapping\n"],
    ids=["invalid-yaml", "not-a-mapping", "cache-not-a-mapping"],
)
def test_unreadable_config_file_raises_config_error_naming_it(tmp_path: Path, content: str):
    """A config file that is not YAML, or not shaped like flame-cluster.yaml, is a ConfigError
    naming the file (or the `cache` key)."""
    path = tmp_path / "broken.yaml"
    path.write_text(content)
    with pytest.raises(ConfigError) as caught:
        load_config(path, env={})
    assert str(path) in str(caught.value) or "cache" in str(caught.value)


def test_missing_config_file_raises_config_error_naming_it(tmp_path: Path):
    """--config naming a file that does not exist is a ConfigError naming the path."""
    path = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError) as caught:
        load_config(path, env={})
    assert str(path) in str(caught.value)


# -- the process: exit status and message ----------------------------------


@pytest.mark.parametrize(
    "document, expected",
    [
        ({"cache": {"eviction": {"max_memory": "lots"}}}, ["cache.eviction.max_memory", "lots"]),
        ({"cache": {"endpoint": "http://127.0.0.1:1"}}, ["cache.endpoint", "http://127.0.0.1:1"]),
    ],
    ids=["bad-size", "bad-endpoint"],
)
def test_bad_config_stops_the_process_with_status_2_and_a_message(tmp_path: Path, document: dict, expected: list[str]):
    """`python -m flame_cache --config bad.yaml` exits with status 2 and says on stderr
    which key and value are wrong (no traceback)."""
    path = write_yaml(tmp_path / "bad.yaml", document)
    done = subprocess.run(
        [sys.executable, "-m", "flame_cache", "--config", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        env=clean_env(HOME=str(tmp_path)),
        cwd=tmp_path,
    )
    assert done.returncode == 2, (done.returncode, done.stderr)
    assert all(word in done.stderr for word in expected), done.stderr
    assert "Traceback" not in done.stderr


def test_server_advertises_the_configured_endpoint(make_server):
    """With `cache.advertise`, PutResult refs, seed action refs and GetFlightInfo locations
    name that endpoint, not the bind address."""
    advertised = "grpc://cache.example.test:4321"
    server = make_server(advertise=advertised)
    schema = pa.schema([("version", pa.uint64()), ("data", pa.binary())])
    with server.client() as client:
        writer, reader = client.do_put(flight.FlightDescriptor.for_path("sess"), schema)
        with writer:
            writer.write_table(pa.table({"version": pa.array([0], pa.uint64()), "data": [b"x"]}, schema=schema))
            writer.done_writing()
            ref = bson.decode(reader.read().to_pybytes())
        assert ref["endpoint"] == advertised
        info = client.get_flight_info(flight.FlightDescriptor.for_path(ref["key"]))
        assert [loc.uri.decode() for loc in info.endpoints[0].locations] == [advertised]
        (result,) = client.do_action(flight.Action("PUT", b"sess:eA=="))
        assert json.loads(result.body.to_pybytes())["endpoint"] == advertised


# -- the advertised endpoint -----------------------------------------------


def test_wildcard_bind_advertises_the_address_of_the_named_interface():
    """Bound to 0.0.0.0 with network_interface `lo`, the server advertises 127.0.0.1."""
    env = {"FLAME_CACHE_ENDPOINT": "grpc://0.0.0.0:9090", "FLAME_CACHE_NETWORK_INTERFACE": "lo"}
    config = load_config(None, env=env)
    assert advertised_endpoint(config) == "grpc://127.0.0.1:9090"


def test_network_interface_is_a_regex(tmp_path: Path):
    """`network_interface` is a regular expression, as upstream."""
    path = write_yaml(tmp_path / "c.yaml", {"cache": {"endpoint": "grpc://0.0.0.0:9000", "network_interface": "^l.$"}})
    assert advertised_endpoint(load_config(path, env={})) == "grpc://127.0.0.1:9000"


def test_wildcard_bind_never_advertises_0_0_0_0():
    """Bound to 0.0.0.0 without network_interface, a real address is advertised."""
    advertised = advertised_endpoint(load_config(None, env={"FLAME_CACHE_ENDPOINT": "grpc://0.0.0.0:9090"}))
    assert advertised.startswith("grpc://") and advertised.endswith(":9090")
    assert "0.0.0.0" not in advertised


def test_advertise_setting_wins_over_the_interface():
    """`cache.advertise` is advertised as is, whatever the bind address and interface."""
    config = load_config(
        None,
        env={
            "FLAME_CACHE_ENDPOINT": "grpc://0.0.0.0:9090",
            "FLAME_CACHE_NETWORK_INTERFACE": "lo",
            "FLAME_CACHE_ADVERTISE": "grpc://flame-object-cache:9090",
        },
    )
    assert advertised_endpoint(config) == "grpc://flame-object-cache:9090"


def test_grpcs_endpoint_is_advertised_as_grpc_tls(tmp_path: Path):
    """A `grpcs://` endpoint is advertised as `grpc+tls://`."""
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert.write_text("cert")
    key.write_text("key")
    path = write_yaml(
        tmp_path / "c.yaml",
        {"cache": {"endpoint": "grpcs://127.0.0.1:9443", "tls": {"cert_file": str(cert), "key_file": str(key)}}},
    )
    config = load_config(path, env={})
    assert config.tls is not None and config.tls.cert_file == cert
    assert advertised_endpoint(config) == "grpc+tls://127.0.0.1:9443"


# -- unknown keys ------------------------------------------------------------


def test_unknown_keys_are_reported_with_the_nearest_known_one(tmp_path: Path):
    path = write_yaml(
        tmp_path / "c.yaml",
        {"cluster": {"name": "x"}, "cache": {"endpont": "grpc://h:1", "eviction": {"max_memry": "1G"}, "zzz": 1}},
    )
    warnings = load_config(path, env={}).warnings
    assert warnings == (
        f"unknown configuration key cache.endpont in {path} (did you mean cache.endpoint?); it is ignored",
        f"unknown configuration key cache.eviction.max_memry in {path} (did you mean cache.eviction.max_memory?); "
        "it is ignored",
        f"unknown configuration key cache.zzz in {path}; it is ignored",
    )


def test_every_documented_key_is_known(tmp_path: Path):
    """The README's example configuration raises no warning."""
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    example = readme.split("```yaml\ncache:\n", 1)[1].split("```", 1)[0]
    document = yaml.safe_load("cache:\n" + example)
    top_level = [line.split(":")[0] for line in example.splitlines() if line.startswith("  ") and line[2] != " "]
    assert len(top_level) == len(set(top_level)), f"a key is given twice: {top_level}"
    document["cache"]["tls"] = {}  # its files do not exist here
    document["cache"]["endpoint"] = "grpc://127.0.0.1:9090"
    assert load_config(write_yaml(tmp_path / "c.yaml", document), env={}).warnings == ()


def test_the_server_starts_and_logs_an_unknown_key(make_server):
    server = make_server(capcity="32M", eviction={"polcy": "lru"})
    with server.client() as client:
        assert list(client.list_flights()) == []
    log = server.log()
    assert "WARNING" in log and "unknown configuration key cache.capcity" in log
    assert "unknown configuration key cache.eviction.polcy" in log and "did you mean cache.eviction.policy?" in log


# -- upstream's endpoint: a name that is no address of this machine --------------


@pytest.mark.parametrize(
    ("host", "local"),
    [("127.0.0.1", True), ("localhost", True), ("::1", True), ("0.0.0.0", True), ("flame-object-cache.invalid", False)],
)
def test_which_endpoint_hosts_are_this_machines(host: str, local: bool):
    assert is_local_host(host) is local


def test_an_endpoint_naming_a_service_listens_everywhere_and_advertises_the_interface(tmp_path: Path):
    """Flame's Helm chart writes `grpc://<service>:9090` (the Service's name) as the endpoint;
    upstream listens on cache.network_interface's address at that port, and so do we."""
    server = CacheServer(tmp_path, tmp_path / "storage")
    server.cache.update(endpoint=f"grpc://flame-object-cache.invalid:{server.port}", network_interface="lo")
    server.start()
    try:
        with server.client() as client:
            writer, reader = client.do_put(flight.FlightDescriptor.for_path("svc", "s1", "o"), pa.schema([("n", pa.int64())]))
            writer.write_table(pa.table({"n": [1]}))
            writer.done_writing()
            ref = bson.decode(reader.read().to_pybytes())
            writer.close()
        assert ref["endpoint"] == f"grpc://127.0.0.1:{server.port}"
        assert f"cache.endpoint grpc://flame-object-cache.invalid:{server.port} names no address of this machine" in server.log()
    finally:
        assert server.stop() == 0

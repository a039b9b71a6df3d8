"""Fuzzing the parsers (issue 4.3) with hypothesis: keys, namespaces and selectors;
DoGet tickets; DoPut descriptors and commands; the seed actions' bodies; sizes and the
rest of the configuration. Whatever the input, each parser either accepts it (and what
it accepts is well formed: a key's file stays inside the storage root) or refuses it
with its own error (InvalidArgument, ValueError, ConfigError), never anything else.
"""

from __future__ import annotations

import base64
import os
from fractions import Fraction
from pathlib import Path

import pyarrow.flight as flight
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from flame_cache.app.config import ConfigError, load_config
from flame_cache.app.sizes import parse_size
from flame_cache.flight.actions import _split_seed_body
from flame_cache.flight.requests import parse_descriptor, parse_ticket
from flame_cache.store import InvalidArgument
from flame_cache.store.layout import Layout
from flame_cache.store.keys import MAX_SEGMENT_BYTES, Namespace, ObjectKey, Selector

ROOT = Path("/srv/cache-root")
LAYOUT = Layout.__new__(Layout)  # only its path arithmetic: no folder is made
LAYOUT.root, LAYOUT.top = ROOT, str(ROOT)

# Characters that matter to the grammar or to file systems, plus anything at all.
TRICKY = st.sampled_from(list("/\\:*.\0\n\x7f\x85 ~$%") + ["\u202e", "\u2028", "\uff0f", "\u2215", "é", "\u0301"])
segment_text = st.text(st.one_of(TRICKY, st.characters()), max_size=12)
key_text = st.one_of(
    st.text(st.one_of(TRICKY, st.characters()), max_size=40),
    st.lists(segment_text, min_size=1, max_size=5).map("/".join),
    st.lists(st.sampled_from(["..", ".", "", "a", "*", "x" * 300]), min_size=1, max_size=4).map("/".join),
)
fuzz = settings(max_examples=300, deadline=None)


def inside_root(path: Path) -> bool:
    normal = Path(os.path.normpath(path))
    return normal.is_relative_to(ROOT) and normal != ROOT


@fuzz
@given(key_text)
@example("../../etc/passwd")
@example("/etc/passwd")
@example("a/\uff0e\uff0e/b")
def test_keys_parse_or_are_refused_and_never_escape_the_root(text: str):
    for parse, counts in ((ObjectKey.parse, (2, 3)), (Namespace.parse, (1, 2))):
        try:
            parsed = parse(text)
        except InvalidArgument:
            continue
        assert str(parsed) == text and len(parsed.segments) in counts
        for segment in parsed.segments:
            assert segment not in ("", ".", "..") and "/" not in segment and "\0" not in segment
            assert 0 < len(segment.encode("utf-8")) <= MAX_SEGMENT_BYTES
        if isinstance(parsed, ObjectKey):
            assert inside_root(LAYOUT.base_path(parsed)) and inside_root(LAYOUT.deltas_dir(parsed))
    try:
        selector = Selector.parse(text, allow_all=True)
    except InvalidArgument:
        return
    assert 0 <= len(selector.segments) <= 3


@fuzz
@given(st.one_of(st.binary(max_size=64), key_text.map(lambda t: t.encode("utf-8", "surrogatepass"))))
@example(b"chunked:a/b:12")
@example(b"a/b:")
@example(b"a/b:\xd9\xa1")
def test_tickets_parse_or_are_refused(raw: bytes):
    try:
        request = parse_ticket(raw)
    except InvalidArgument:
        return
    ObjectKey.parse(request.key)
    assert request.client_version >= 0
    prefix = b"chunked:" if request.chunk_size else b""
    assert parse_ticket(prefix + f"{request.key}:{request.client_version}".encode()) == request


@fuzz
@given(st.binary(max_size=64), st.lists(key_text, min_size=0, max_size=3))
@example(b"PATCH:", [])
@example(b"PATCH:a/b/c/d", ["a", "..", "b"])
def test_descriptors_and_commands_parse_or_are_refused(command: bytes, path: list[str]):
    for descriptor in (
        flight.FlightDescriptor.for_command(command),
        flight.FlightDescriptor.for_command(b"PATCH:" + command),
    ):
        try:
            request = parse_descriptor(descriptor)
        except InvalidArgument:
            continue
        assert request.patch
        ObjectKey.parse(request.target)
    try:
        descriptor = flight.FlightDescriptor.for_path(*path)
    except (UnicodeEncodeError, TypeError):  # a client could not send it either
        return
    try:
        request = parse_descriptor(descriptor)
    except InvalidArgument:
        return
    assert not request.patch and request.target == "/".join(path)


@fuzz
@given(st.binary(max_size=80), st.binary(max_size=40))
@example(b"sess:aGk=", b"")
@example(b"sess:aGk", b"")
def test_seed_action_bodies_parse_or_are_refused(raw: bytes, data: bytes):
    for body in (raw, raw.split(b":")[0] + b":" + base64.b64encode(data)):
        try:
            name, decoded = _split_seed_body(body, "PUT", "<session>:<base64 data>")
        except InvalidArgument:
            continue
        assert body == name.encode() + b":" + base64.b64encode(decoded.to_pybytes())


UNITS = {"": 1, "K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40, "P": 2**50}


@fuzz
@given(st.one_of(st.text(max_size=30), st.integers(), st.floats(), st.booleans(), st.none()))
@example("1" * 400)
@example("9007199254740993")
@example("1e9")
@example("-5M")
def test_sizes_parse_or_raise_value_error(value):
    try:
        size = parse_size(value)
    except ValueError:
        return
    assert isinstance(size, int) and size >= 0


@fuzz
@given(st.integers(0, 10**20), st.integers(0, 999), st.sampled_from(list(UNITS)), st.sampled_from(["", "i", "B", "iB"]))
def test_sizes_are_exact_binary_units(whole: int, fraction: int, unit: str, suffix: str):
    text = f"{whole}.{fraction:03d}{unit}{suffix if unit else ''}"
    assert parse_size(text) == int(Fraction(f"{whole}.{fraction:03d}") * UNITS[unit])


CONFIG_VARIABLES = [
    "FLAME_CACHE_ENDPOINT",
    "FLAME_CACHE_STORAGE",
    "FLAME_CACHE_EVICTION_POLICY",
    "FLAME_CACHE_MAX_MEMORY",
    "FLAME_CACHE_MAX_OBJECTS",
    "FLAME_CACHE_HTTP_ENDPOINT",
    "FLAME_CACHE_ADVERTISE",
    "FLAME_CACHE_MAX_DELTAS",
    "FLAME_CACHE_FSYNC",
    "FLAME_CACHE_MAX_OBJECT_SIZE",
    "FLAME_CACHE_MAX_KEY_BYTES",
    "FLAME_CACHE_SHUTDOWN_TIMEOUT",
]


@pytest.fixture(scope="module")
def empty_config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("fuzz-config") / "flame-cluster.yaml"
    path.write_text("cache: {}\n")
    return path


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(CONFIG_VARIABLES), st.text(max_size=30), max_size=4))
def test_any_environment_gives_a_config_or_a_config_error(empty_config: Path, env: dict[str, str]):
    env = {k: v.replace("\0", "") for k, v in env.items()}
    try:
        config = load_config(empty_config, env=env | {"FLAME_HOME": "/srv/flame"})
    except ConfigError as exc:
        assert str(exc)
        return
    assert config.max_key_bytes >= 3 and config.shutdown_timeout > 0 and config.max_deltas >= 1

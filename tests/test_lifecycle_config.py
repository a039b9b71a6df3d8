"""Configuration of the data lifecycle: cache.capacity, cache.eviction.pin,
cache.expiry rules and cache.expiry_sweep; durations and key patterns."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from flame_cache.app.config import ConfigError, load_config
from flame_cache.app.durations import parse_duration
from flame_cache.store.errors import InvalidArgument
from flame_cache.store.patterns import Pattern


def config(tmp_path: Path, cache: dict, env: dict | None = None):
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({"cache": {"storage": str(tmp_path / "s"), **cache}}))
    return load_config(path, env=env or {})


@pytest.mark.parametrize(
    ("text", "seconds"), [("30", 30), (45, 45), ("2.5", 2.5), ("30s", 30), ("10m", 600), ("1h", 3600), ("2d", 172800), ("250ms", 0.25)]
)
def test_durations(text, seconds) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "ten", "-1s", "1w", "1 h 2", True, "inf"])
def test_bad_durations(text) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)


def test_patterns() -> None:
    pin = Pattern.parse("*/pkg/*")
    assert pin.matches(("app", "pkg", "o")) and not pin.matches(("app", "s", "o")) and not pin.matches(("pkg", "o"))
    assert Pattern.parse("my-app/*/*").matches(("my-app", "s", "o"))
    assert Pattern.parse("a/p*/c").matches(("a", "p*", "c"))  # inside a segment, as in keys, a plain character
    for bad in ("*", "a/b/c/d", "a/../c", "a/.x/c", ""):
        with pytest.raises(InvalidArgument):
            Pattern.parse(bad)


def test_defaults(tmp_path: Path) -> None:
    loaded = config(tmp_path, {})
    assert loaded.capacity is None and loaded.expiry == () and loaded.expiry_sweep == 30
    assert loaded.eviction.pin == ("*/pkg/*",)


def test_file_and_environment(tmp_path: Path) -> None:
    loaded = config(
        tmp_path,
        {
            "capacity": "64M",
            "eviction": {"pin": ["*/pkg/*", "app/keep/*"]},
            "expiry": [{"match": "*/tmp/*", "ttl": "10m"}, {"match": "s/*", "ttl": 5, "after": "access"}],
            "expiry_sweep": "2s",
        },
    )
    assert loaded.capacity == 64 << 20 and loaded.eviction.pin == ("*/pkg/*", "app/keep/*")
    assert [(str(r.match), r.ttl, r.after) for r in loaded.expiry] == [("*/tmp/*", 600, "write"), ("s/*", 5, "access")]
    assert loaded.expiry_sweep == 2 and loaded.warnings == ()
    env = {
        "FLAME_CACHE_CAPACITY": "1G",
        "FLAME_CACHE_EVICTION_PIN": "a/*/*, */pkg/*",
        "FLAME_CACHE_EXPIRY": '[{"match": "a/*", "ttl": "1h"}]',
        "FLAME_CACHE_EXPIRY_SWEEP": "1m",
    }
    loaded = config(tmp_path, {"capacity": "64M"}, env)
    assert loaded.capacity == 1 << 30 and loaded.eviction.pin == ("a/*/*", "*/pkg/*")
    assert [(str(r.match), r.ttl) for r in loaded.expiry] == [("a/*", 3600)] and loaded.expiry_sweep == 60
    assert config(tmp_path, {"eviction": {"pin": []}}).eviction.pin == ()


@pytest.mark.parametrize(
    ("cache", "message"),
    [
        ({"capacity": "lots"}, "cache.capacity"),
        ({"eviction": {"pin": ["pkg"]}}, "cache.eviction.pin"),
        ({"eviction": {"pin": "a/../c"}}, "cache.eviction.pin"),
        ({"expiry": {"match": "a/*"}}, "must be a list"),
        ({"expiry": [{"match": "a/*"}]}, "needs both"),
        ({"expiry": [{"match": "a/*", "ttl": "soon"}]}, r"cache.expiry\[0\].ttl"),
        ({"expiry": [{"match": "a/*", "ttl": 0}]}, "more than 0"),
        ({"expiry": [{"match": "a/*", "ttl": "1h", "after": "read"}]}, "write, access"),
        ({"expiry": [{"match": "a/*", "tll": "1h", "ttl": "1h"}]}, "unknown key"),
        ({"expiry": [{"match": "*", "ttl": "1h"}]}, r"cache.expiry\[0\].match"),
        ({"expiry_sweep": "0s"}, "cache.expiry_sweep"),
    ],
)
def test_bad_values_stop_start_up(tmp_path: Path, cache: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        config(tmp_path, cache)

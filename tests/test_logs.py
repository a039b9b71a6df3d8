"""cache.log (level, text or JSON) and the one line a failed request logs (SPEC 10).

Real servers: flamepy (in a subprocess), pyarrow.flight and httpx make
requests that fail on each protocol; the server's own log is read back.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
import pyarrow as pa
import pyarrow.flight as flight
import pytest
import yaml

from flame_cache.app.config import ConfigError, load_config
from flame_cache.app.logs import LogSettings
from tests.flamepy_scripts import run_flamepy
from tests.server import CacheServer

RAW = {"Content-Type": "application/octet-stream"}


def wait_for_log(server: CacheServer, text: str, count: int = 1, timeout: float = 10) -> str:
    """The log, once `count` of its lines hold `text` (HTTP logs a failure after
    the answer is sent, so the client may see it first)."""
    deadline = time.monotonic() + timeout
    while sum(text in line for line in server.log().splitlines()) < count:
        assert time.monotonic() < deadline, f"{text!r} not logged {count} time(s):\n{server.log()[-4000:]}"
        time.sleep(0.05)
    return server.log()


def json_lines(server: CacheServer) -> list[dict]:
    """Every line of the server's output, each of which must be one JSON object."""
    entries = []
    for line in server.log().splitlines():
        try:
            entries.append(json.loads(line))
        except ValueError:
            raise AssertionError(f"not a JSON line: {line!r}") from None
    return entries


# -- configuration -------------------------------------------------------------


def test_log_settings_default_to_info_and_text() -> None:
    assert load_config(None, env={"HOME": "/nonexistent"}).log == LogSettings("info", "text")


def test_log_settings_from_the_file_and_the_environment(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({"cache": {"log": {"level": "WARNING", "format": "json"}}}))
    config = load_config(path, env={})
    assert config.log == LogSettings("warning", "json") and config.warnings == ()
    assert load_config(path, env={"FLAME_CACHE_LOG_FORMAT": "text", "FLAME_CACHE_LOG_LEVEL": "debug"}).log == LogSettings(
        "debug", "text"
    )


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ({"level": "loud"}, "cache.log.level = 'loud': choose one of debug, info, warning, error"),
        ({"format": "xml"}, "cache.log.format = 'xml': choose one of text, json"),
    ],
)
def test_bad_log_settings_are_refused_naming_the_key(tmp_path: Path, section: dict, message: str) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({"cache": {"log": section}}))
    with pytest.raises(ConfigError, match=message):
        load_config(path, env={})


def test_an_unknown_log_key_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({"cache": {"log": {"formt": "json"}}}))
    (warning,) = load_config(path, env={}).warnings
    assert "cache.log.formt" in warning and "did you mean cache.log.format?" in warning


# -- JSON lines ----------------------------------------------------------------


@pytest.fixture(scope="module")
def json_server(tmp_path_factory: pytest.TempPathFactory):
    workdir = tmp_path_factory.mktemp("json-log")
    server = CacheServer(workdir, workdir / "storage", with_http=True, log={"format": "json"}).start()
    yield server
    server.stop()


def test_every_line_is_one_json_object_with_time_level_logger_message(json_server: CacheServer) -> None:
    entries = json_lines(json_server)
    assert any("Arrow Flight listening on" in entry["message"] for entry in entries)
    for entry in entries:
        assert {"time", "level", "logger", "message"} <= set(entry), entry
        assert entry["time"].endswith("+00:00") and entry["level"] in ("DEBUG", "INFO", "WARNING", "ERROR")


def test_a_failed_flamepy_get_logs_one_line_with_key_peer_and_outcome(json_server: CacheServer, tmp_path: Path) -> None:
    ref = run_flamepy(json_server.endpoint, tmp_path, "put_objects", "logs-app/s1", [{"a": 1}])[0]
    missing = type(ref)(endpoint=ref.endpoint, key="logs-app/s1/missing", version=0)
    error = run_flamepy(json_server.endpoint, tmp_path, "get_error", missing)
    assert error["key_error"], error
    wait_for_log(json_server, "logs-app/s1/missing")
    failures = [e for e in json_lines(json_server) if e.get("key") == "logs-app/s1/missing"]
    assert len(failures) == 1, failures
    (line,) = failures
    assert line["logger"] == "flame_cache.requests" and line["level"] == "INFO"
    assert line["protocol"] == "Flight" and line["operation"] == "DoGet" and line["outcome"] == "NOT_FOUND"
    assert line["peer"].startswith("127.0.0.1:") and "not found" in line["message"]
    assert not [e for e in json_lines(json_server) if e.get("key") == ref.key], "a request that worked logs no failure"


def test_a_failed_http_request_logs_one_line(json_server: CacheServer) -> None:
    with httpx.Client(base_url=json_server.http_url) as http:
        assert http.put("/v1/objects/logs-http/s1/o", content=b"x", headers=RAW).status_code in (200, 201)
        assert http.get("/v1/objects/logs-http/s1/missing").status_code == 404
        assert http.put("/v1/objects/logs-http/s1/o", content=b"y", headers={**RAW, "If-Match": '"7"'}).status_code == 412
    wait_for_log(json_server, '"protocol": "HTTP"', count=2)
    entries = [e for e in json_lines(json_server) if e.get("protocol") == "HTTP"]
    by_key = {e["key"]: e for e in entries}
    assert [e["key"] for e in entries].count("logs-http/s1/missing") == 1
    missing, conflict = by_key["logs-http/s1/missing"], by_key["logs-http/s1/o"]
    assert missing["operation"] == "GET /v1/objects/logs-http/s1/missing" and missing["outcome"] == "404 not_found"
    assert conflict["outcome"] == "412 precondition_failed" and "version 1, not 7" in conflict["message"]
    assert missing["peer"].startswith("127.0.0.1:")


def test_control_characters_are_escaped_in_json_lines(json_server: CacheServer) -> None:
    with json_server.client() as client, pytest.raises(pa.ArrowInvalid):
        client.do_get(flight.Ticket("ctl-json/s1/\x1b[2J\x9b".encode())).read_all()
    raw = wait_for_log(json_server, "ctl-json/s1/")
    (line,) = [line for line in raw.splitlines() if "ctl-json/s1/" in line]
    assert "\x1b" not in line and "\x9b" not in line
    entry = json.loads(line)
    assert entry["key"] == "ctl-json/s1/\\x1b[2J\\x9b" and entry["outcome"] == "INVALID_ARGUMENT"


# -- text lines ----------------------------------------------------------------


def test_text_lines_name_key_peer_and_outcome(make_server) -> None:
    server = make_server(with_http=True)
    with server.client() as client:
        with pytest.raises(KeyError):  # NOT_FOUND, raised by pyarrow as ArrowKeyError
            client.do_get(flight.Ticket(b"logs-text/s1/missing:0")).read_all()
        with pytest.raises(pa.ArrowException):
            list(client.do_action(flight.Action("DELETE", b"logs-text/..")))
    with httpx.Client(base_url=server.http_url) as http:
        assert http.get("/v1/objects/logs-text/s1/also-missing").status_code == 404
    log = wait_for_log(server, "logs-text/", count=3)
    lines = [line for line in log.splitlines() if "logs-text/" in line]
    assert len(lines) == 3, lines
    get, delete, http_get = lines
    assert "Flight DoGet failed: key='logs-text/s1/missing' peer=127.0.0.1:" in get and "outcome=NOT_FOUND" in get
    assert "Flight DoAction DELETE failed: key='logs-text/..'" in delete and "outcome=INVALID_ARGUMENT" in delete
    assert "HTTP GET /v1/objects/logs-text/s1/also-missing failed: key='logs-text/s1/also-missing'" in http_get
    assert "outcome=404 not_found" in http_get


def test_log_level_warning_hides_refusals_but_not_server_failures(make_server) -> None:
    server = make_server(log={"level": "warning"})
    with server.client() as client, pytest.raises(KeyError):
        client.do_get(flight.Ticket(b"logs-quiet/s1/missing")).read_all()
    with server.client() as client:  # the server answers, so the refusal was handled
        assert list(client.list_flights()) == []
    assert "logs-quiet" not in server.log() and "Arrow Flight listening" not in server.log()

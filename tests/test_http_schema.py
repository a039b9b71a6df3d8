"""The OpenAPI document is valid, and schemathesis finds no 5xx (issue 3, done-when 3).

Schemathesis's own runner (its CLI, as a user would run it) generates
requests from the live server's /openapi.json, valid and invalid ones (odd
keys, headers, bodies, parameters, and stateful sequences built from the
responses' links), and checks every answer: never a server error, and
status codes, content types, headers and JSON bodies as documented. The seed
is fixed so a run is repeatable; change it to explore further.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import schemathesis

from tests.server import CacheServer, clean_env

CHECKS = [
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_headers_conformance",
    "response_schema_conformance",
]


SERVER_OPTIONS = dict(with_http=True, limits={"max_object_size": "1M"})  # for the `server` fixture in conftest


def test_the_document_is_valid_and_describes_every_operation(server: CacheServer) -> None:
    schema = schemathesis.openapi.from_url(f"{server.http_url}/openapi.json")
    schema.validate()  # against the OpenAPI meta-schema; raises naming what is wrong
    paths = schema.raw_schema["paths"]
    assert set(paths["/v1/objects/{key}"]) >= {"get", "head", "put", "patch", "delete"}
    assert {"post", "delete"} <= set(paths["/v1/namespaces/{namespace}"])
    assert "get" in paths["/v1/objects"]
    put_body = paths["/v1/objects/{key}"]["put"]["requestBody"]["content"]
    assert set(put_body) == {"application/octet-stream", "application/vnd.apache.arrow.stream"}


def test_schemathesis_finds_no_server_error(server: CacheServer, tmp_path: Path) -> None:
    command = [
        str(Path(sys.executable).with_name("schemathesis")),
        "run",
        f"{server.http_url}/openapi.json",
        "--checks",
        ",".join(CHECKS),
        "--max-examples",
        "25",
        "--workers",
        "1",
        "--seed",
        "20261124",
        "--suppress-health-check",
        "all",  # odd keys and headers are filtered a lot; that is the point
    ]
    run = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=tmp_path, env=clean_env())
    assert run.returncode == 0, run.stdout[-20000:] + run.stderr[-5000:]
    assert "passed" in run.stdout
    assert server.alive()
    assert "Traceback" not in server.log()

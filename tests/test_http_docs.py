"""/docs without internet access (SPEC 10): the page and every asset it names
come from the server itself. The same page in a real browser, with every
request to another host blocked, is in test_http_page.py."""

from __future__ import annotations

import re
from collections.abc import Iterator
from urllib.parse import urljoin, urlsplit

import httpx
import pytest

from tests.server import CacheServer

SERVER_OPTIONS = dict(with_http=True)  # for the `server` fixture in conftest


@pytest.fixture
def http(server: CacheServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.http_url, timeout=30) as client:
        yield client


def referenced(html: str) -> list[str]:
    """Every URL the page loads or points to: src=, href=, and Swagger UI's `url:`."""
    return re.findall(r"""(?:src|href)=["']([^"']+)["']""", html) + re.findall(r"""\burl: *['"]([^'"]+)['"]""", html)


def test_docs_names_no_other_host(http: httpx.Client) -> None:
    reply = http.get("/docs")
    assert reply.status_code == 200 and "text/html" in reply.headers["content-type"]
    assert not re.findall(r"(?:https?:)?//[a-z0-9.-]+", reply.text, flags=re.I), "an absolute URL in /docs"
    urls = referenced(reply.text)
    assert len(urls) >= 4, urls  # style sheet, icon, script, the OpenAPI document
    for url in urls:
        assert not urlsplit(url).netloc, url
    assert '"validatorUrl": null' in reply.text  # Swagger UI would otherwise send the document's URL to swagger.io


def test_every_asset_of_docs_loads_from_the_server(http: httpx.Client) -> None:
    kinds = {".js": "javascript", ".css": "text/css", ".png": "image/png", ".json": "application/json"}
    for url in referenced(http.get("/docs").text):
        reply = http.get(urljoin(str(http.base_url) + "/docs", url))
        assert reply.status_code == 200, (url, reply.status_code)
        suffix = "." + url.rsplit(".", 1)[-1]
        assert kinds[suffix] in reply.headers["content-type"], (url, reply.headers["content-type"])
        assert len(reply.content) > 100, url
    script = http.get("/docs/assets/swagger-ui-bundle.js")
    assert b"SwaggerUIBundle" in script.content and len(script.content) > 500_000  # the whole bundle, not a stub

"""The web page under cache.auth, in a real headless Chromium (tests/test_http_page.py's).

The page answers 401 with a form asking for a token; the token is kept in the
tab's sessionStorage (not in another tab, not after "Forget token") and sent
as `Authorization: Bearer` with the page's own navigation, downloads and
deletes, which show only what the token may read.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import BrowserContext, Page, expect

from tests import test_http_page
from tests.secure_server import SecureServer

VIEWER = secrets.token_urlsafe(32)
ROOT = secrets.token_urlsafe(32)
RAW = {"Content-Type": "application/octet-stream"}
browser = test_http_page.browser  # the fixture: Debian's chromium, a fresh profile


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecureServer]:
    workdir = tmp_path_factory.mktemp("page-auth")
    tokens = [
        {"name": "viewer", "token_sha256": hashlib.sha256(VIEWER.encode()).hexdigest(), "scopes": ["read:web/*", "delete:web/*"]},
        {"name": "root", "token_sha256": hashlib.sha256(ROOT.encode()).hexdigest(), "scopes": ["admin:*"]},
    ]
    server = SecureServer(workdir, workdir / "storage", auth={"tokens": tokens}).start()
    yield server
    server.stop()


def use_token(page: Page, token: str) -> None:
    page.get_by_label("Token").fill(token)
    page.get_by_role("button", name="Use token").click()


def test_the_page_asks_for_a_token_and_keeps_it_for_the_tab(
    server: SecureServer, browser: BrowserContext, tmp_path: Path
) -> None:
    body = bytes(range(256)) * 16
    with server.http(ROOT) as root:
        root.put("/v1/objects/web/s1/report.bin", content=body, headers=RAW)
        root.put("/v1/objects/web/s2/other", content=b"x", headers=RAW)
        root.put("/v1/objects/secret/s/hidden", content=b"no", headers=RAW)

    page = browser.new_page()
    page.goto(server.http_url + "/")
    expect(page.get_by_text("This cache needs a token to show its objects.")).to_be_visible()
    use_token(page, "not-a-token")
    expect(page.get_by_text("That token is not one this server knows.")).to_be_visible()
    assert page.evaluate("sessionStorage.getItem('flame-cache-token')") is None
    use_token(page, VIEWER)
    expect(page.get_by_role("link", name="web/s1")).to_be_visible()
    expect(page.get_by_role("link", name="secret/s")).to_have_count(0)
    assert page.evaluate("sessionStorage.getItem('flame-cache-token')") == VIEWER

    page.get_by_role("link", name="web/s1").click()  # fetched with the token
    rows = page.locator("tbody tr")
    expect(rows).to_have_count(1)
    expect(rows.first.locator("td").first).to_have_text("web/s1/report.bin")
    assert page.url.endswith("/?prefix=web%2Fs1")
    with page.expect_download() as info:
        rows.first.get_by_role("link", name="download").click()
    assert info.value.suggested_filename == "report.bin"
    info.value.save_as(tmp_path / "downloaded")
    assert (tmp_path / "downloaded").read_bytes() == body
    rows.first.get_by_role("button", name="delete web/s1/report.bin").click()
    expect(page.get_by_text("No objects.")).to_be_visible()
    with server.http(ROOT) as root:
        assert root.get("/v1/objects/web/s1/report.bin").status_code == 404

    page.reload()  # the browser asks without the token; the page asks again with it
    expect(page.get_by_role("link", name="web/s2")).to_be_visible()
    other_tab = browser.new_page()
    other_tab.goto(server.http_url + "/")
    expect(other_tab.get_by_text("This cache needs a token to show its objects.")).to_be_visible()
    other_tab.close()
    page.get_by_role("button", name="Forget token").click()
    expect(page.get_by_text("This cache needs a token to show its objects.")).to_be_visible()
    page.close()

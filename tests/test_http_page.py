"""The web page and /docs in a real headless Chromium (issue 3, done-when 4; issue 14).

Debian's chromium (installed by `make test`), driven by Playwright's Python
package through `executable_path`; Playwright's own browser downloads are
never used.
"""

from __future__ import annotations

import shutil
from urllib.parse import urlsplit
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import BrowserContext, Route, expect, sync_playwright

from tests.server import CacheServer

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = [
    "--headless",
    "--no-sandbox",  # root in a container
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


SERVER_OPTIONS = dict(with_http=True)  # for the `server` fixture in conftest


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrowserContext]:
    """Chromium with a fresh profile (Playwright passes it as --user-data-dir)."""
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: `make test` installs Debian's chromium")
    profile = tmp_path_factory.mktemp("chromium-profile")
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(profile), executable_path=CHROMIUM, headless=True, args=FLAGS, accept_downloads=True
        )
        yield context
        context.close()


def test_the_page_lists_downloads_and_deletes_objects(
    server: CacheServer, browser: BrowserContext, tmp_path: Path
) -> None:
    body = bytes(range(256)) * 64
    with httpx.Client(base_url=server.http_url) as http:
        http.put("/v1/objects/web/s1/report.bin", content=body, headers={"Content-Type": "application/octet-stream"})
        http.patch("/v1/objects/web/s1/report.bin", content=b"d", headers={"Content-Type": "application/octet-stream"})
        http.put("/v1/objects/web/s2/other", content=b"x", headers={"Content-Type": "application/octet-stream"})

    page = browser.new_page()
    page.goto(server.http_url + "/")
    expect(page.get_by_role("heading", name="flame-cache")).to_be_visible()

    page.get_by_role("link", name="web/s1").click()  # browse into the namespace
    rows = page.locator("tbody tr")
    expect(rows).to_have_count(1)
    row = rows.first
    cells = row.locator("td")
    expect(cells.nth(0)).to_have_text("web/s1/report.bin")
    expect(cells.nth(1)).to_have_text("2")  # version
    expect(cells.nth(2)).to_have_text("16.0 KiB")  # base + delta
    expect(cells.nth(3)).to_have_text("1")  # deltas

    with page.expect_download() as info:
        row.get_by_role("link", name="download").click()
    download = info.value
    assert download.suggested_filename == "report.bin"
    saved = tmp_path / "downloaded"
    download.save_as(saved)
    assert saved.read_bytes() == body

    row.get_by_role("button", name="delete web/s1/report.bin").click()
    expect(page.get_by_text("No objects.")).to_be_visible()
    with httpx.Client(base_url=server.http_url) as http:
        assert http.get("/v1/objects/web/s1/report.bin").status_code == 404
        assert http.get("/v1/objects/web/s2/other").status_code == 200
    page.close()


def test_docs_render_with_every_other_host_blocked(server: CacheServer, browser: BrowserContext) -> None:
    """Swagger UI lists the operations with no request leaving the machine:
    every request to a host other than the server's is aborted, and counted."""
    elsewhere: list[str] = []

    def only_the_server(route: Route) -> None:
        if urlsplit(route.request.url).hostname == "127.0.0.1":
            route.continue_()
        else:
            elsewhere.append(route.request.url)
            route.abort()

    page = browser.new_page()
    page.route("**/*", only_the_server)
    page.goto(server.http_url + "/docs")
    expect(page.locator(".opblock-summary-path", has_text="/v1/objects/{key}").first).to_be_visible(timeout=15_000)
    expect(page.locator(".opblock-summary-method", has_text="PATCH").first).to_be_visible()
    assert page.locator(".opblock").count() >= 10
    assert elsewhere == []
    page.close()

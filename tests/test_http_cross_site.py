"""A page on another site, in a real headless Chromium, cannot write to the cache.

The attacker's page is served by a tiny http.server on another port, under
the name attacker.example (Chromium maps it to 127.0.0.1, so all traffic
stays on loopback). It tries the writes a browser lets any page send without
asking the target: a no-cors fetch POST, sendBeacon, a form POST to the web
page's delete, and a no-cors POST from a sandboxed iframe (Origin: null).
Afterwards httpx checks that nothing was created or deleted, and the server's
own request counter shows the writes did arrive and were refused.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import BrowserContext, expect, sync_playwright
from prometheus_client.parser import text_string_to_metric_families

from tests.http_client import put
from tests.server import CacheServer
from tests.test_http_page import CHROMIUM, FLAGS

SERVER_OPTIONS = dict(with_http=True)  # for the `server` fixture in conftest
ATTACKER = "attacker.example"

ATTACK_PAGE = """<!doctype html><html><head><meta charset=utf-8><title>attacking</title></head><body>
<iframe name=sink></iframe>
<form id=del method=post action="{cache}/ui/delete" target=sink>
  <input type=hidden name=key value="known/s1/o1"><input type=hidden name=prefix value="">
</form>
<iframe sandbox="allow-scripts" srcdoc="<script>
  fetch('{cache}/v1/namespaces/evil/sandboxed', {{method: 'POST', mode: 'no-cors', body: new Blob(['z'])}});
</script>"></iframe>
<script>
  async function attack() {{
    await fetch('{cache}/v1/namespaces/evil/fetched', {{method: 'POST', mode: 'no-cors', body: new Blob(['x'])}})
      .catch(() => null);
    navigator.sendBeacon('{cache}/v1/namespaces/evil/beaconed', new Blob(['y']));
    document.getElementById('del').submit();
    document.title = 'sent';
  }}
  attack();
</script></body></html>"""


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrowserContext]:
    """Chromium as in test_http_page, resolving attacker.example to 127.0.0.1."""
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: `make test` installs Debian's chromium")
    profile = tmp_path_factory.mktemp("chromium-profile")
    args = [*FLAGS, f"--host-resolver-rules=MAP {ATTACKER} 127.0.0.1"]
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(profile), executable_path=CHROMIUM, headless=True, args=args
        )
        yield context
        context.close()


@pytest.fixture
def attacker_site(server: CacheServer, tmp_path: Path) -> Iterator[str]:
    """http://attacker.example:<port>/, serving the attack page on 127.0.0.1."""
    (tmp_path / "index.html").write_text(ATTACK_PAGE.format(cache=server.http_url))
    site = ThreadingHTTPServer(("127.0.0.1", 0), partial(QuietHandler, directory=str(tmp_path)))
    thread = threading.Thread(target=site.serve_forever, daemon=True)
    thread.start()
    yield f"http://{ATTACKER}:{site.server_address[1]}/index.html"
    site.shutdown()
    site.server_close()


class QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass


def posts_seen(http: httpx.Client) -> int:
    """POST requests the cache has answered, by its own /metrics."""
    total = 0
    for family in text_string_to_metric_families(http.get("/metrics").text):
        if family.name == "flame_cache_requests":
            total += sum(s.value for s in family.samples if s.labels["protocol"] == "http" and s.labels["operation"].startswith("POST "))
    return int(total)


def test_another_site_cannot_create_or_delete(server: CacheServer, browser: BrowserContext, attacker_site: str) -> None:
    with httpx.Client(base_url=server.http_url, timeout=30) as http:
        put(http, "known/s1/o1", b"keep me")
        before = posts_seen(http)
        page = browser.new_page()
        page.goto(attacker_site)
        expect(page).to_have_title("sent")
        deadline = time.monotonic() + 15
        while posts_seen(http) < before + 4 and time.monotonic() < deadline:  # fetch, beacon, form, iframe
            time.sleep(0.1)
        page.close()
        assert posts_seen(http) >= before + 4, "the attack page's requests did not all reach the cache"

        assert http.get("/v1/objects", params={"prefix": "evil"}).json()["objects"] == []
        kept = http.get("/v1/objects/known/s1/o1")
        assert kept.status_code == 200 and kept.content == b"keep me"


def test_the_web_pages_own_writes_still_work(server: CacheServer, browser: BrowserContext) -> None:
    """Same origin: a script on the cache's own page may write, and the page's delete button works."""
    with httpx.Client(base_url=server.http_url, timeout=30) as http:
        put(http, "mine/s1/o1", b"delete me")
        page = browser.new_page()
        page.goto(server.http_url + "/?prefix=mine/s1")
        status = page.evaluate(
            "fetch('/v1/namespaces/mine/s2', {method: 'POST', body: new Blob(['made here'])}).then(r => r.status)"
        )
        assert status == 201
        page.get_by_role("button", name="delete mine/s1/o1").click()
        expect(page.get_by_text("No objects.")).to_be_visible()
        page.close()
        assert http.get("/v1/objects/mine/s1/o1").status_code == 404
        made = http.get("/v1/objects", params={"prefix": "mine/s2"}).json()["objects"]
        assert len(made) == 1 and http.get(f"/v1/objects/{made[0]['key']}").content == b"made here"

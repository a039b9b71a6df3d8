"""The web page at `/`: browse namespaces and objects, download, delete.

Server-rendered HTML, no script. Delete is a form POST (browsers cannot
send DELETE from a form); like every write, it is refused unless a browser
sent it from this server's own origin (flame_cache/http/origins.py), so
another site cannot delete objects through a visitor's browser.
"""

from __future__ import annotations

from datetime import datetime, timezone
from html import escape
from urllib.parse import parse_qs, urlencode

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from starlette.concurrency import run_in_threadpool

from flame_cache.http.context import Context, context
from flame_cache.http.objects import object_path
from flame_cache.store import CacheError, InvalidArgument, ObjectInfo
from flame_cache.store.keys import ObjectKey

router = APIRouter(include_in_schema=False)
PAGE_SIZE = 100

STYLE = """
body{font-family:system-ui,sans-serif;margin:1.5rem;color:#222}
h1{font-size:1.3rem} h2{font-size:1.05rem;margin-top:1.5rem}
table{border-collapse:collapse} td,th{padding:.25rem .6rem;border-bottom:1px solid #ddd;text-align:left;white-space:nowrap}
td.n{text-align:right;font-variant-numeric:tabular-nums} .err{color:#a00} form{display:inline}
nav span{margin-right:1.2rem} code{background:#f3f3f3;padding:0 .2rem}
"""


@router.get("/", response_class=HTMLResponse)
def index(prefix: str = Query(""), cursor: str | None = Query(None), ctx: Context = Depends(context)) -> HTMLResponse:
    error, status = "", 200
    try:
        namespaces = ctx.store.namespaces()
        infos, next_cursor = ctx.store.list_page(prefix, after=cursor or None, limit=PAGE_SIZE)
    except CacheError as exc:
        namespaces, infos, next_cursor = [], [], None
        error, status = str(exc), 400
    usage = ctx.store.usage(stored=False)
    parts = [
        f"<!doctype html><html lang=en><head><meta charset=utf-8><title>flame-cache</title><style>{STYLE}</style>",
        "</head><body><h1>flame-cache</h1>",
        f"<p>{usage['objects']} object(s); Flight at <code>{escape(ctx.advertised)}</code>. "
        '<a href="/docs">API docs</a> · <a href="/metrics">metrics</a></p>',
    ]
    if error:
        parts.append(f"<p class=err role=alert>{escape(error)}</p>")
    parts.append("<h2>Namespaces</h2><nav>" + '<span><a href="/">all</a></span>')
    parts.extend(
        f'<span><a href="/?{urlencode({"prefix": name})}">{escape(name)}</a> ({count})</span>'
        for name, count in namespaces
    )
    parts.append("</nav>")
    parts.append(f"<h2>Objects{' in ' + escape(prefix) if prefix else ''}</h2>")
    parts.append(_table(infos, prefix))
    if next_cursor:
        parts.append(f'<p><a href="/?{urlencode({"prefix": prefix, "cursor": next_cursor})}">next page</a></p>')
    parts.append("</body></html>")
    return HTMLResponse("".join(parts), status_code=status)


def _table(infos: list[ObjectInfo], prefix: str) -> str:
    if not infos:
        return "<p>No objects.</p>"
    rows = [
        "<table><thead><tr><th>key</th><th>version</th><th>size</th><th>deltas</th><th>kind</th>"
        "<th>updated (UTC)</th><th></th></tr></thead><tbody>"
    ]
    for info in infos:
        updated = datetime.fromtimestamp(info.updated, timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
        download = escape(object_path(info.key) + "?download=true")
        rows.append(
            f"<tr><td>{escape(info.key)}</td><td class=n>{info.version}</td><td class=n>{_size(info.size)}</td>"
            f"<td class=n>{info.deltas}</td><td>{info.kind.value}</td><td>{updated}</td>"
            f'<td><a href="{download}" download>download</a> '
            f'<form method=post action="/ui/delete"><input type=hidden name=key value="{escape(info.key)}">'
            f'<input type=hidden name=prefix value="{escape(prefix)}">'
            f'<button type=submit aria-label="delete {escape(info.key)}">delete</button></form></td></tr>'
        )
    rows.append("</tbody></table>")
    return "".join(rows)


def _size(size: int) -> str:
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} B"


@router.post("/ui/delete")
async def delete_from_page(request: Request, ctx: Context = Depends(context)) -> RedirectResponse:
    """The page's delete button; a browser on another origin never gets here (SameOriginWrites)."""
    try:  # strictly: with "replace", %FF and %FE would both name the key spelled U+FFFD
        form = parse_qs((await request.body()).decode("utf-8"), errors="strict")
    except UnicodeDecodeError:
        raise InvalidArgument("the form is not valid UTF-8 once percent-decoded; keys are UTF-8") from None
    key = form.get("key", [""])[0]
    prefix = form.get("prefix", [""])[0]
    ObjectKey.parse(key)
    await run_in_threadpool(ctx.store.delete, key)
    return RedirectResponse("/?" + urlencode({"prefix": prefix}) if prefix else "/", status_code=303)


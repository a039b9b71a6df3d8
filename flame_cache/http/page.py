"""The web page at `/`: browse namespaces and objects, download, delete.

Server-rendered HTML. Delete is a form POST (browsers cannot send DELETE
from a form); like every write, it is refused unless a browser sent it from
this server's own origin (flame_cache/http/origins.py), so another site
cannot delete objects through a visitor's browser.

Under cache.auth, a page the caller may not see answers 401 (or 403) with a
form that asks for a token; a small script (http/pagescript.py) keeps it in
the tab's sessionStorage and sends it as `Authorization: Bearer` with the
page's own navigation, downloads and deletes. Without cache.auth there is
no form and no script.
"""

from __future__ import annotations

from datetime import datetime, timezone
from html import escape
from urllib.parse import parse_qs, urlencode

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from starlette.concurrency import run_in_threadpool

from flame_cache.http.context import Context, context
from flame_cache.http.errors import challenge
from flame_cache.http.objects import object_path
from flame_cache.http.pagescript import PAGE_SCRIPT
from flame_cache.store import AccessDenied, CacheError, InvalidArgument, ObjectInfo, Unauthenticated
from flame_cache.store.keys import ObjectKey

router = APIRouter(include_in_schema=False)
PAGE_SIZE = 100

STYLE = """
body{font-family:system-ui,sans-serif;margin:1.5rem;color:#222}
h1{font-size:1.3rem} h2{font-size:1.05rem;margin-top:1.5rem}
table{border-collapse:collapse} td,th{padding:.25rem .6rem;border-bottom:1px solid #ddd;text-align:left;white-space:nowrap}
td.n{text-align:right;font-variant-numeric:tabular-nums} .err{color:#a00} form{display:inline}
nav span{margin-right:1.2rem} code{background:#f3f3f3;padding:0 .2rem}
#token-form{display:block;margin:.8rem 0} #token-form input{width:22rem}
"""


@router.get("/", response_class=HTMLResponse)
def index(prefix: str = Query(""), cursor: str | None = Query(None), ctx: Context = Depends(context)) -> HTMLResponse:
    error, status = "", 200
    try:
        namespaces = ctx.store.namespaces()
        infos, next_cursor = ctx.store.list_page(prefix, after=cursor or None, limit=PAGE_SIZE)
    except AccessDenied as exc:
        return refusal_page(ctx, exc)
    except CacheError as exc:
        namespaces, infos, next_cursor = [], [], None
        error, status = str(exc), 400
    objects = ctx.store.usage(stored=False)["objects"] if ctx.store.principal.unrestricted else sum(n for _, n in namespaces)
    parts = [
        _head(ctx),
        f"<p>{objects} object(s); Flight at <code>{escape(ctx.advertised)}</code>. "
        '<a href="/docs">API docs</a> · <a href="/metrics">metrics</a></p>',
        _token_form(ctx, "Use another token") if ctx.auth else "",
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
    parts.append(_tail(ctx))
    return HTMLResponse("".join(parts), status_code=status)


def refusal_page(ctx: Context, exc: AccessDenied) -> HTMLResponse:
    """401 (a token is needed, or the one sent is unknown) or 403 (its scopes
    do not cover this), with the form that asks for a token."""
    unknown = isinstance(exc, Unauthenticated) and exc.invalid_token
    if isinstance(exc, Unauthenticated):
        status, headers = 401, challenge(exc)
        why = "That token is not one this server knows." if unknown else "This cache needs a token to show its objects."
    else:
        status, headers, why = 403, None, "This token may not see that. Use another token."
    parts = [
        _head(ctx, refused="token" if unknown else ""),
        f"<p class=err role=alert>{escape(why)}</p><p>{escape(str(exc))}</p>",
        _token_form(ctx, "Use token"),
        _tail(ctx),
    ]
    return HTMLResponse("".join(parts), status_code=status, headers=headers)


def _head(ctx: Context, refused: str = "") -> str:
    """The page's head and the start of its body: `data-sent` tells the script
    whether this answer saw a token, `data-refused` that it was refused."""
    sent = "yes" if ctx.authenticated else "no"
    return (
        f"<!doctype html><html lang=en><head><meta charset=utf-8><title>flame-cache</title><style>{STYLE}</style>"
        f'</head><body data-sent="{sent}" data-refused="{refused}"><h1>flame-cache</h1>'
    )


def _tail(ctx: Context) -> str:
    return (f"<script>{PAGE_SCRIPT}</script>" if ctx.auth else "") + "</body></html>"


def _token_form(ctx: Context, label: str) -> str:
    """Asks for a token; kept for this tab only (sessionStorage)."""
    forget = ' <button type=button id=forget-token>Forget token</button>' if ctx.authenticated else ""
    return (
        '<form id=token-form><label>Token <input type=password name=token autocomplete=off required></label> '
        f"<button type=submit>{escape(label)}</button>{forget} <small>kept for this tab only</small></form>"
    )


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
            f'<td><a href="{download}" download="{escape(info.key.rsplit("/", 1)[-1])}">download</a> '
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


@router.post("/ui/delete", response_model=None)
async def delete_from_page(request: Request, ctx: Context = Depends(context)) -> RedirectResponse | HTMLResponse:
    """The page's delete button; a browser on another origin never gets here (the edge's origin rule)."""
    try:  # strictly: with "replace", %FF and %FE would both name the key spelled U+FFFD
        form = parse_qs((await request.body()).decode("utf-8"), errors="strict")
    except UnicodeDecodeError:
        raise InvalidArgument("the form is not valid UTF-8 once percent-decoded; keys are UTF-8") from None
    key = form.get("key", [""])[0]
    prefix = form.get("prefix", [""])[0]
    ObjectKey.parse(key)
    try:
        await run_in_threadpool(ctx.store.delete, key)
    except AccessDenied as exc:
        return refusal_page(ctx, exc)
    return RedirectResponse("/?" + urlencode({"prefix": prefix}) if prefix else "/", status_code=303)


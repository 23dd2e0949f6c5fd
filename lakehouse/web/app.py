"""The search page's web app (Starlette): routes, templates and the headers every answer carries.

Routes: ``/`` the search page (``?q=`` renders results without JavaScript too), ``/search?q=`` the
results as an HTML fragment (what the page's script fetches as you type), ``/api/search?q=`` the
same as JSON, ``/table`` the table's columns, first rows and history, ``/media/<id>`` a thumbnail
that a page of this app has shown (see :mod:`lakehouse.web.thumbnails`), ``/static/...`` the
page's script and style sheet.

Everything rendered goes through Jinja with autoescape on; the results are put in the page as
server-escaped HTML, and a Content-Security-Policy allows only this app's own script, so a value
such as ``<script>...</script>`` in a table shows as text.

What a visitor sends is data, never a place to read: the search box is searched as text (a text
that looks like a path or a URL too), no parameter names a file, a URL or a storage location, and
the app reads only its own table, a bounded amount per request (``k`` rows per search,
:mod:`lakehouse.web.table_view` for the table page). Requests from other web sites are refused
(:mod:`lakehouse.web.guard`). A failure answers a fixed message and its status code; what went
wrong (which can name files, URLs and buckets) goes to the ``lakehouse.web`` logger only.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jinja2
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from lakehouse.web.cards import MAX_QUERY, Card, Cards
from lakehouse.web.guard import OriginGuard
from lakehouse.web.table_view import MAX_ROWS, table_view
from lakehouse.web.thumbnails import Thumbnails

if TYPE_CHECKING:
    from lakehouse.table import Table

HERE = Path(__file__).parent
log = logging.getLogger("lakehouse.web")
DEFAULT_ROWS = 50  # rows on the table page
LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1", "[::1]")
SECURITY_HEADERS = {
    "content-security-policy": "default-src 'none'; script-src 'self'; style-src 'self'; "
                               "img-src 'self'; connect-src 'self'; form-action 'self'; "
                               "base-uri 'none'; frame-ancestors 'none'",
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "cross-origin-resource-policy": "same-origin",
}
QUERY_TOO_LONG = f"A search text has at most {MAX_QUERY} characters."
SEARCH_FAILED = "The search failed. The server log says why."
PAGE_FAILED = "This page could not be read. The server log says why."
ROWS_PARAM = "n must be a whole number from 1 to {}"


def create_app(table: Table, column: str, k: int = 24, *,
               allowed_hosts: Sequence[str] = LOCAL_HOSTS) -> Starlette:
    """The search page for the image ``column`` of ``table`` as an ASGI app (serve it with
    uvicorn, or with :func:`lakehouse.web.serve`).

    The column needs an embedding index; each search returns the ``k`` most similar rows.
    ``allowed_hosts`` are the host names requests may be addressed to (the default: this machine
    only, which also stops other web sites from reaching the app through DNS rebinding; ``["*"]``
    allows any).

    >>> clip = lh.functions.clip(lh.functions.SHAPES_CLIP)
    >>> _ = pics.add_embedding_index("image", embedding=clip, progress=False)
    >>> app = create_app(pics, "image")
    >>> [route.path for route in app.routes]
    ['/', '/search', '/api/search', '/table', '/media/{token}', '/static']
    >>> import uvicorn
    >>> uvicorn.run(app, host="127.0.0.1", port=8000)  # serves until stopped  # doctest: +SKIP
    """
    thumbnails = Thumbnails()
    cards = Cards(table, column, k, thumbnails)
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(HERE / "templates"),
                             autoescape=True, undefined=jinja2.StrictUndefined)
    templates = Jinja2Templates(env=env)
    base = {"table": table.table_name, "column": column, "k": k}

    def results(q: str) -> tuple[dict[str, Any], int]:
        if len(q) > MAX_QUERY:
            return {"q": q, "cards": [], "error": QUERY_TOO_LONG}, 400
        try:
            found = cards.search(q) if q.strip() else cards.browse()
        except Exception:  # the edge: whatever failed, the visitor gets no detail of it
            log.exception("table %r: a search of %d characters failed", table.table_name, len(q))
            return {"q": q, "cards": [], "error": SEARCH_FAILED}, 500
        return {"q": q, "cards": found, "error": None}, 200

    def page(request: Request) -> Response:
        context, status = results(request.query_params.get("q", ""))
        return templates.TemplateResponse(request, "search.html", {**base, **context},
                                          status_code=status)

    def fragment(request: Request) -> Response:
        context, status = results(request.query_params.get("q", ""))
        return templates.TemplateResponse(request, "_results.html", {**base, **context},
                                          status_code=status)

    def api(request: Request) -> Response:
        context, status = results(request.query_params.get("q", ""))
        if context["error"]:
            return JSONResponse({"error": context["error"]}, status_code=status)
        return JSONResponse({"query": context["q"],
                             "results": [_card_json(request, c) for c in context["cards"]]})

    def table_page(request: Request) -> Response:
        n = _rows_param(request.query_params.get("n"))
        if n is None:
            return PlainTextResponse(ROWS_PARAM.format(MAX_ROWS), status_code=400)
        try:
            view = table_view(table, n, thumbnails)
        except Exception:  # the edge: whatever failed, the visitor gets no detail of it
            log.exception("table %r: the table page failed", table.table_name)
            return PlainTextResponse(PAGE_FAILED, status_code=500)
        return templates.TemplateResponse(request, "table.html", {**base, "view": view, "n": n})

    def media(request: Request) -> Response:
        found = thumbnails.get(request.path_params["token"])
        if found is None:
            return PlainTextResponse("Not Found", status_code=404)
        return Response(found.data, media_type=found.media_type,
                        headers={"cache-control": "private, max-age=86400, immutable"})

    routes = [
        Route("/", page, name="page"),
        Route("/search", fragment, name="search"),
        Route("/api/search", api, name="api_search"),
        Route("/table", table_page, name="table"),
        Route("/media/{token}", media, name="media"),
        Mount("/static", app=StaticFiles(directory=HERE / "static"), name="static"),
    ]
    middleware = [Middleware(_SecurityHeaders),
                  Middleware(TrustedHostMiddleware, allowed_hosts=list(allowed_hosts)),
                  Middleware(OriginGuard)]
    app = Starlette(routes=routes, middleware=middleware)
    app.state.cards = cards
    return app


def _card_json(request: Request, card: Card) -> dict[str, Any]:
    image = str(request.url_for("media", token=card.image)) if card.image else None
    return {"label": card.label, "score": card.score, "image": image}


def _rows_param(value: str | None) -> int | None:
    if value is None:
        return DEFAULT_ROWS
    if not re.fullmatch(r"[0-9]{1,6}", value) or not 1 <= int(value) <= MAX_ROWS:
        return None
    return int(value)


class _SecurityHeaders:
    """Adds :data:`SECURITY_HEADERS` to every response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                headers += [(name.encode(), value.encode())
                            for name, value in SECURITY_HEADERS.items()
                            if name.encode() not in present]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)

"""Who the search page answers: requests from its own pages, and requests that come from no page.

A browser sends every request a page asks for, whichever site the page is on: a page on any web
site the user visits can make the user's browser ask ``http://127.0.0.1:8000/search?q=...``, or
put ``<img src="http://127.0.0.1:8000/table?n=1000">`` in itself. The answer is not readable by
that page, but the work is done and its side effects (time, memory, what is read) happen. So the
app refuses, with 403, any request that a browser marks as coming from another origin:

- ``Sec-Fetch-Site`` (sent by every current browser) is ``cross-site`` or ``same-site`` (another
  port or another name of the same machine is another origin, and another application);
  ``same-origin`` (the page's own script) and ``none`` (the user typed the address, or opened the
  link that ``lakehouse serve`` printed) pass;
- ``Origin`` is present and names another host and port than the request's ``Host``.

A request with neither header (``curl``, a script) passes: it does not come from a web page.
Requests addressed to another host name are refused before this (``TrustedHostMiddleware``),
which stops DNS rebinding. Query strings longer than :data:`MAX_QUERY_STRING` bytes are refused
with 414 before any route reads them.
"""

from __future__ import annotations

import urllib.parse
from dataclasses import dataclass

from starlette.datastructures import Headers
from starlette.responses import PlainTextResponse
from starlette.types import ASGIApp, Receive, Scope, Send

# bytes of a query string: q's 1,000 characters fit, percent-encoded, whatever their script
# (a character of 4 UTF-8 bytes takes 12)
MAX_QUERY_STRING = 16384
ALLOWED_FETCH_SITES = ("same-origin", "none")


@dataclass(frozen=True)
class Refusal:
    """Why a request is not answered: its status code and the text sent back (no detail of the
    request in it)."""

    status: int
    text: str


CROSS_ORIGIN = Refusal(403, "Forbidden: this page answers requests from its own pages only")
TOO_LONG = Refusal(414, f"URI Too Long: a query string has at most {MAX_QUERY_STRING} bytes")


def refusal(headers: Headers, query_string: bytes) -> Refusal | None:
    """The reason to refuse a request with these ``headers`` and raw ``query_string``, or None
    to answer it (the policy in the module docstring).

    >>> refusal(Headers({"host": "127.0.0.1:8000", "sec-fetch-site": "cross-site"}), b"q=cat")
    Refusal(status=403, text='Forbidden: this page answers requests from its own pages only')
    >>> refusal(Headers({"host": "127.0.0.1:8000", "origin": "http://127.0.0.1:8000"}), b"q=cat")
    >>> refusal(Headers({"host": "127.0.0.1:8000"}), b"q=" + b"x" * MAX_QUERY_STRING).status
    414
    """
    if len(query_string) > MAX_QUERY_STRING:
        return TOO_LONG
    site = headers.get("sec-fetch-site")
    if site is not None and site.strip().lower() not in ALLOWED_FETCH_SITES:
        return CROSS_ORIGIN
    origin = headers.get("origin")
    if origin is not None and not same_host(origin, headers.get("host", "")):
        return CROSS_ORIGIN
    return None


def same_host(origin: str, host: str) -> bool:
    """Whether ``origin`` (``scheme://host[:port]``, as a browser sends it) names ``host`` (the
    ``Host`` header: ``host[:port]``). ``null`` (a sandboxed or file page) names no host.

    >>> same_host("http://127.0.0.1:8000", "127.0.0.1:8000"), same_host("http://127.0.0.1:9000",
    ...                                                                   "127.0.0.1:8000")
    (True, False)
    >>> same_host("null", "127.0.0.1:8000")
    False
    """
    try:
        parts = urllib.parse.urlsplit(origin.strip())
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.netloc) \
        and parts.netloc.lower() == host.strip().lower()


class OriginGuard:
    """ASGI middleware that answers :func:`refusal`'s refusals itself and passes the rest on.

    >>> from starlette.applications import Starlette
    >>> from starlette.routing import Route
    >>> from starlette.testclient import TestClient
    >>> hello = Starlette(routes=[Route("/", lambda request: PlainTextResponse("hello"))])
    >>> client = TestClient(OriginGuard(hello))
    >>> client.get("/").text, client.get("/", headers={"sec-fetch-site": "cross-site"}).status_code
    ('hello', 403)
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            refused = refusal(Headers(scope=scope), scope.get("query_string", b""))
            if refused is not None:
                response = PlainTextResponse(refused.text, status_code=refused.status)
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)

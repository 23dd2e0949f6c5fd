"""The search page fetches nothing a visitor names, answers only its own pages, reads a bounded
amount per request, never says what went wrong beyond a status, and answers many clients at once.

In real headless Chromium (see tests/test_web.py) and with plain HTTP requests.
"""

from __future__ import annotations

import hashlib
import http.server
import io
import json
import logging
import os
import re
import shutil
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import boto3
import pytest
import test_web
from PIL import Image
from test_web import VIEWPORT, InProcess, _get, _media_paths

import lakehouse as lh
from lakehouse.samples import shapes
from lakehouse.web.guard import MAX_QUERY_STRING, refusal
from lakehouse.web.table_view import MAX_ROWS, MAX_THUMBNAIL_ROWS

SECRET = "canary-7f3a9c-do-not-leak"
browser = test_web.browser  # the module-scoped fixtures of tests/test_web.py, shared
pics_root = test_web.pics_root
GENERIC = ("The search failed. The server log says why.",
           "This page could not be read. The server log says why.")


def _png(colour: tuple[int, int, int] = (220, 40, 40), size: int = 48) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (size, size), colour).save(out, format="PNG")
    return out.getvalue()


@pytest.fixture(scope="module")
def server(pics_root: Path) -> Iterator[InProcess]:
    running = InProcess(lh.connect(str(pics_root)).get_table("pics"), "image")
    yield running
    running.stop()


@pytest.fixture(scope="module")
def canaries(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Files a search must never read: a text file holding SECRET, a picture, a FIFO (reading
    it blocks until a writer comes: none does), and a path where nothing is."""
    folder = tmp_path_factory.mktemp("canaries")
    (folder / "secret.txt").write_text(SECRET + "\n")
    (folder / "picture.png").write_bytes(_png())
    os.mkfifo(folder / "fifo")
    return {"text": folder / "secret.txt", "picture": folder / "picture.png",
            "fifo": folder / "fifo", "missing": folder / "missing.png"}


def _search(server: InProcess, q: str, endpoint: str = "/api/search",
            headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    status, _, body = _get(server, f"{endpoint}?q={urllib.parse.quote(q, safe='')}", headers)
    return status, body


def _scores(body: bytes) -> list[tuple[str, float]]:
    return [(r["label"], round(r["score"], 5)) for r in json.loads(body)["results"]]


# --------------------------------------------------------------------------------------------
# A path or a URL typed in the search box is text
# --------------------------------------------------------------------------------------------


def test_a_path_or_url_query_is_searched_as_text(server, pics_root, canaries) -> None:
    table = lh.connect(str(pics_root)).get_table("pics")
    for path in ("text", "picture", "missing"):
        uri = canaries[path].as_uri()
        for endpoint in ("/api/search", "/search", "/"):
            status, body = _search(server, uri, endpoint)
            assert status == 200, (endpoint, uri, body[:300])
            assert SECRET.encode() not in body
        # the results are those of the text itself: the same as the library's text search
        sim = table.image.similarity(text=uri)
        expected = table.order_by(sim, asc=False).limit(24).select(table.caption, s=sim).collect()
        found = json.loads(_search(server, uri)[1])["results"]
        assert [round(r["score"], 5) for r in found] == [round(s, 5) for s in expected["s"]]
    # a plain text query gives the library's text search
    sim = table.image.similarity("a blue square")
    plain = table.order_by(sim, asc=False).limit(24).select(s=sim).collect()["s"].to_list()
    assert [s for _, s in _scores(_search(server, "a blue square")[1])] == \
        [round(s, 5) for s in plain]


def test_an_existing_and_a_missing_file_answer_the_same(server, canaries) -> None:
    uri = canaries["picture"].as_uri()
    with_file = {e: _search(server, uri, e) for e in ("/api/search", "/search")}
    moved = canaries["picture"].with_suffix(".moved")
    canaries["picture"].rename(moved)
    try:
        without_file = {e: _search(server, uri, e) for e in ("/api/search", "/search")}
    finally:
        moved.rename(canaries["picture"])
    assert with_file == without_file
    assert all(status == 200 for status, _ in with_file.values())


def test_a_fifo_or_a_device_is_not_opened(server, canaries) -> None:
    # reading either blocks forever (a FIFO without writer) or without end (/dev/zero); each
    # answers at once, and the searches after them too
    for uri in (canaries["fifo"].as_uri(), "file:///dev/zero", "file:///dev/stdin"):
        status, body = _search(server, uri)
        assert status == 200 and len(json.loads(body)["results"]) == 24, (uri, body[:300])
    assert _search(server, "a red circle")[0] == 200


class _Recorder(http.server.BaseHTTPRequestHandler):
    """An HTTP server that serves a picture and records every request it gets."""

    seen: list[str] = []

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        self.seen.append(self.path)
        body = _png()
        self.send_response(200)
        self.send_header("content-type", "image/png")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def test_an_http_query_fetches_nothing(server) -> None:
    recorder = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    thread = threading.Thread(target=recorder.serve_forever, daemon=True)
    thread.start()
    try:
        port = recorder.server_address[1]
        for uri in (f"http://127.0.0.1:{port}/picture.png", f"https://127.0.0.1:{port}/p.png",
                    f"HTTP://127.0.0.1:{port}/upper.png", f"  http://127.0.0.1:{port}/sp.png"):
            for endpoint in ("/api/search", "/search", "/"):
                status, body = _search(server, uri, endpoint)
                assert status == 200, (uri, body[:300])
        assert _Recorder.seen == []
    finally:
        recorder.shutdown()
        recorder.server_close()


@pytest.mark.s3
def test_an_s3_query_is_text_and_reads_no_object(s3_pictures, s3_bucket, s3_env) -> None:
    t = s3_pictures
    s3 = boto3.client("s3", endpoint_url=s3_env)
    s3.put_object(Bucket=s3_bucket, Key="canary.png", Body=_png())
    s3.put_object(Bucket=s3_bucket, Key="secret.txt", Body=SECRET.encode())
    running = InProcess(t, "image")
    try:
        answers = {}
        for key in ("canary.png", "secret.txt"):
            uri = f"s3://{s3_bucket}/{key}"
            answers[key] = _search(running, uri)
            assert answers[key][0] == 200 and SECRET.encode() not in answers[key][1]
            s3.delete_object(Bucket=s3_bucket, Key=key)
            assert _search(running, uri) == answers[key]  # the same without the object
    finally:
        running.stop()


def test_the_query_length_is_capped(server) -> None:
    status, body = _search(server, "x" * 1001)
    assert status == 400 and "at most 1000 characters" in json.loads(body)["error"]
    status, body = _search(server, "ü" * 1000)  # 12,000 bytes percent-encoded: still a query
    assert status == 200
    status, _, _ = _get(server, "/search?q=" + "x" * (MAX_QUERY_STRING + 1))
    assert status == 414


# --------------------------------------------------------------------------------------------
# Other origins
# --------------------------------------------------------------------------------------------


def test_the_origin_policy() -> None:
    from starlette.datastructures import Headers

    def refused(**headers: str) -> int | None:
        found = refusal(Headers({k.replace("_", "-"): v for k, v in headers.items()}), b"q=x")
        return found.status if found else None

    host = "127.0.0.1:8000"
    assert refused(host=host) is None  # curl, scripts
    assert refused(host=host, sec_fetch_site="same-origin") is None  # the page's own script
    assert refused(host=host, sec_fetch_site="none") is None  # typed in the address bar
    assert refused(host=host, origin="http://127.0.0.1:8000", sec_fetch_site="same-origin") \
        is None
    assert refused(host=host, sec_fetch_site="cross-site") == 403
    assert refused(host=host, sec_fetch_site="same-site") == 403  # another port: another app
    assert refused(host=host, sec_fetch_site="Cross-Site") == 403
    assert refused(host=host, sec_fetch_site="") == 403
    for origin in ("http://attacker.example", "http://127.0.0.1:8001", "null",
                   "http://127.0.0.1:8000.attacker.example", "file://", "", "http://[::1"):
        assert refused(host=host, origin=origin) == 403, origin
    assert refused(host="LOCALHOST:8000", origin="http://localhost:8000") is None
    assert refusal(Headers({"host": host}), b"q=" + b"x" * MAX_QUERY_STRING).status == 414


def test_cross_origin_requests_are_refused_over_http(server) -> None:
    own = f"http://{server.host}:{server.port}"
    paths = ["/", "/search?q=x", "/api/search?q=x", "/table", "/table?n=10",
             "/static/search.js", "/media/" + "0" * 64]
    shown = _media_paths(_get(server, "/search?q=a+red+circle")[2].decode())
    paths.append(shown[0])
    for path in paths:
        for headers in ({"Sec-Fetch-Site": "cross-site"}, {"Sec-Fetch-Site": "same-site"},
                        {"Origin": "http://attacker.example"}, {"Origin": "null"},
                        {"Origin": own.replace(server.port, "1"), "Sec-Fetch-Site": "same-site"}):
            status, response_headers, body = _get(server, path, headers)
            assert status == 403, (path, headers, status)
            assert body == b"Forbidden: this page answers requests from its own pages only"
            assert "script-src 'self'" in response_headers["content-security-policy"]
        # the same request from the app's own page, or from no page, is answered
        for headers in ({}, {"Origin": own, "Sec-Fetch-Site": "same-origin"},
                        {"Sec-Fetch-Site": "none"}):
            status, _, _ = _get(server, path, headers)
            assert status == (404 if path.endswith("0" * 64) else 200), (path, headers)


class _Page(http.server.BaseHTTPRequestHandler):
    """Serves :attr:`html` for every path: a web page on another origin of this machine."""

    html = b""

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        self.send_response(200)
        self.send_header("content-type", "text/html; charset=utf-8")
        self.send_header("content-length", str(len(self.html)))
        self.end_headers()
        self.wfile.write(self.html)

    def log_message(self, *args: object) -> None:
        pass


class _Recorded:
    """ASGI middleware that records the path and status of every answer of the app it
    :meth:`wrap` s."""

    def __init__(self) -> None:
        self.app: Any = None
        self.answers: list[tuple[str, int]] = []

    def wrap(self, app: Any) -> _Recorded:
        self.app = app
        return self

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        async def record(message: dict) -> None:
            if message["type"] == "http.response.start":
                self.answers.append((scope["path"], message["status"]))
            await send(message)

        await self.app(scope, receive, record)


def test_cross_origin_pages_are_refused_in_the_browser(pics_root, browser, canaries) -> None:
    recorded = _Recorded()
    served = InProcess(lh.connect(str(pics_root)).get_table("pics"), "image",
                       wrap=recorded.wrap)
    target = served.url
    query = urllib.parse.quote(canaries["text"].as_uri(), safe="")
    _Page.html = f"""<!doctype html><html><body>
        <img src="{target}table?n=1000">
        <img src="{target}search?q={query}">
        <form id="f" action="{target}search" method="get"><input name="q" value="x"></form>
        <script>
          fetch("{target}api/search?q={query}").catch(() => {{}});
          fetch("{target}api/search?q=no-cors", {{mode: "no-cors"}}).catch(() => {{}});
        </script></body></html>""".encode()
    # a real server, so that the browser knows the page is on this machine (it keeps pages of
    # the internet from reaching it by itself, where it asks the user first)
    other = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Page)
    threading.Thread(target=other.serve_forever, daemon=True).start()
    try:
        port = other.server_address[1]
        # another name of this machine (cross-site) and another port (same-site)
        for origin in (f"http://localhost:{port}/", f"http://127.0.0.1:{port}/"):
            recorded.answers.clear()
            _attack_from(origin, target, browser)
            # the favicon is asked by the refusal's own tab, so from its own origin
            answers = sorted(a for a in recorded.answers if a[0] != "/favicon.ico")
            assert answers == [("/api/search", 403), ("/api/search", 403), ("/search", 403),
                               ("/search", 403), ("/table", 403)], recorded.answers
    finally:
        other.shutdown()
        other.server_close()
        served.stop()


def _attack_from(origin: str, target: str, browser: Any) -> None:
    """Open :class:`_Page` at ``origin``: the browser makes its four requests to ``target``,
    then submits its form, which takes the tab to the refusal."""
    page = browser.new_page(viewport=VIEWPORT)
    page.goto(origin)
    page.wait_for_load_state("networkidle")
    with page.expect_navigation():
        page.evaluate("document.getElementById('f').submit()")
    assert page.url.startswith(target + "search")
    assert "Forbidden" in page.content() and SECRET not in page.content()
    page.close()


def test_the_page_itself_still_searches_in_the_browser(server, browser, canaries) -> None:
    page = browser.new_page(viewport=VIEWPORT)
    statuses: list[int] = []
    page.on("response", lambda r: statuses.append(r.status))
    page.goto(server.url)
    uri = canaries["text"].as_uri()
    page.locator("#q").fill(uri)
    page.wait_for_selector(f"text=24 closest to “{uri}”", timeout=30_000)
    assert SECRET not in page.content()
    page.wait_for_load_state("networkidle")
    page.goto(server.url + "table")
    assert page.locator("img.thumb").count() == 49
    page.wait_for_load_state("networkidle")
    assert statuses and all(s == 200 for s in statuses), statuses
    page.close()


# --------------------------------------------------------------------------------------------
# Bounded reads
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def mixed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[lh.Table, InProcess]]:
    """A table of 150 rows, an indexed Image column and a Document column stored by reference
    whose files are gone (reading any of them fails), served in this process."""
    folder = tmp_path_factory.mktemp("mixed")
    docs = folder / "docs"
    docs.mkdir()
    t = lh.connect(str(folder / "root")).create_table(
        "mixed", {"id": lh.Int, "caption": lh.String, "image": lh.Image,
                  "notes": lh.Document(store="reference")})
    rows = []
    for i, (picture, scene) in enumerate(shapes.samples(150, seed=7)):
        (docs / f"{i}.md").write_text(f"# note {i}\n")
        rows.append({"id": i, "caption": scene.caption, "image": picture,
                     "notes": str(docs / f"{i}.md")})
    t.insert(rows, progress=False)
    t.add_embedding_index("image", embedding=lh.functions.clip(lh.functions.SHAPES_CLIP),
                          progress=False)
    shutil.rmtree(docs)
    running = InProcess(t, "image")
    yield t, running
    running.stop()


def test_table_rows_are_capped(mixed) -> None:
    _, running = mixed
    for n in ("100000", str(MAX_ROWS + 1), "9" * 6):
        status, _, body = _get(running, f"/table?n={n}")
        assert status == 400 and body == f"n must be a whole number from 1 to {MAX_ROWS}".encode()
    status, _, body = _get(running, f"/table?n={MAX_ROWS}")
    assert status == 200 and len(body) < 200_000


def test_the_table_page_reads_thumbnails_of_the_first_rows_and_no_other_media(mixed) -> None:
    t, running = mixed
    status, _, body = _get(running, "/table?n=1000")
    html = body.decode()
    assert status == 200, html[:500]  # the Document files are gone: the page never read them
    rows = re.search(r'<table class="data rows">(.*?)</table>', html, re.S).group(1)
    assert rows.count("<tr>") == 151
    assert html.count('class="thumb"') == MAX_THUMBNAIL_ROWS
    assert html.count("document, not shown") == 150
    assert html.count(f"image, shown in the first {MAX_THUMBNAIL_ROWS} rows") == 50
    assert f"Images in the first {MAX_THUMBNAIL_ROWS} rows." in html
    # each thumbnail is the picture of its own row: its id is the SHA-256 of the row's image
    images = t.limit(MAX_THUMBNAIL_ROWS).select(t.image).collect()["image"].to_list()
    tokens = [p.rsplit("/", 1)[1] for p in _media_paths(html)]
    assert tokens == [hashlib.sha256(image).hexdigest() for image in images]


def test_thumbnails_decode_only_raster_images_within_limits() -> None:
    from lakehouse.web.thumbnails import MAX_SOURCE_BYTES, Thumbnails

    store = Thumbnails()
    eps = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\nshowpage\n"
    assert store.add(eps) is None  # never handed to Ghostscript
    assert store.add(b"<svg xmlns='http://www.w3.org/2000/svg'/>") is None
    out = io.BytesIO()
    Image.new("L", (10_000, 5_000)).save(out, format="PNG")  # 50 MP: over MAX_PIXELS
    assert store.add(out.getvalue()) is None
    assert store.add(_png() + b"\0" * MAX_SOURCE_BYTES) is None
    out = io.BytesIO()
    Image.new("RGB", (3000, 2000), (10, 200, 10)).save(out, format="JPEG")
    token = store.add(out.getvalue())
    assert token is not None
    found = store.get(token)
    assert found is not None and found.media_type == "image/jpeg"
    assert max(Image.open(io.BytesIO(found.data)).size) <= 256


# --------------------------------------------------------------------------------------------
# Errors say nothing of what went wrong
# --------------------------------------------------------------------------------------------


def test_errors_name_no_path(tmp_path, caplog) -> None:
    root = tmp_path / "root-folder-name"
    t = lh.connect(str(root)).create_table("pics", {"caption": lh.String, "image": lh.Image})
    t.insert([{"caption": scene.caption, "image": picture}
              for picture, scene in shapes.samples(4, seed=3)], progress=False)
    t.add_embedding_index("image", embedding=lh.functions.clip(lh.functions.SHAPES_CLIP),
                          progress=False)
    running = InProcess(lh.connect(str(root)).get_table("pics"), "image")
    try:
        for data in root.rglob("data"):  # the table's files are gone: every read fails
            shutil.rmtree(data)
        with caplog.at_level(logging.ERROR, logger="lakehouse.web"):
            answers = [_search(running, q, e) for e in ("/api/search", "/search", "/")
                       for q in ("a red circle", "")]
            answers.append(_get(running, "/table")[::2])
        for status, body in answers:
            assert status == 500, body[:300]
            text = body.decode()
            assert any(g in text for g in GENERIC), text[:300]
            for secret in (str(tmp_path), "root-folder-name", ".lance", "Error", "Traceback"):
                assert secret not in text, (secret, text[:300])
        logged = "\n".join(str(r.exc_info[1]) for r in caplog.records if r.exc_info)
        assert "root-folder-name" in logged  # the detail is in the server's log
    finally:
        running.stop()


# --------------------------------------------------------------------------------------------
# Many clients at once
# --------------------------------------------------------------------------------------------


def test_eight_clients_get_every_answer(server, caplog) -> None:
    words = ["red", "green", "blue", "yellow", "purple", "small", "large", "circle", "square",
             "triangle", "star", "left", "right", "top", "bottom"]
    queries = [f"a {words[i % 5]} {words[7 + i % 4]} {words[11 + i % 4]} {i}" for i in range(200)]
    base = server.url.rstrip("/")

    def ask(q: str) -> tuple[int, str]:
        url = f"{base}/api/search?q={urllib.parse.quote(q)}"
        try:
            with urllib.request.urlopen(url, timeout=120) as response:
                return response.status, json.loads(response.read())["query"]
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()

    with caplog.at_level(logging.ERROR, logger="lakehouse.web"), \
            ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(ask, queries))
    statuses = Counter(status for status, _ in answers)
    causes = Counter(str(r.exc_info[1]) for r in caplog.records if r.exc_info)
    assert statuses == {200: 200}, (statuses, causes)
    assert [q for _, q in answers] == queries

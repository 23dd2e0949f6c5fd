"""The search page: `lakehouse serve` and `lakehouse.web`, driven in real headless Chromium.

The browser is Debian's chromium (/usr/bin/chromium; .ci/run installs it), driven by Playwright.
The README's screenshot comes from the search test:

    LAKEHOUSE_SCREENSHOT=docs/search-page.png .venv/bin/pytest tests/test_web.py -k closest
"""

from __future__ import annotations

import http.client
import io
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import urllib.parse
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

import lakehouse as lh
from lakehouse.samples import shapes

CHROMIUM = Path("/usr/bin/chromium")
# without these Chromium keeps trying to reach update, sync and other services
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
SCRIPT = "<script>alert(1)</script>"
IMG = "<img src=x onerror=alert(2)>"
VIEWPORT = {"width": 1000, "height": 700}
BLUE = (40, 80, 220)  # the blue of lakehouse.samples.shapes
START_TIMEOUT_S = 120


# --------------------------------------------------------------------------------------------
# A table of generated pictures, a running `lakehouse serve`, a browser
# --------------------------------------------------------------------------------------------


def _grey_png() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (64, 64), (128, 128, 128)).save(out, format="PNG")
    return out.getvalue()


@pytest.fixture(scope="module")
def pics_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A lakehouse with `pics` (markup captions and a missing image first, then 200 held-out
    pictures of shapes, CLIP-indexed, snapshot `indexed`) and `plain` (images, no index)."""
    root = tmp_path_factory.mktemp("web") / "root"
    db = lh.connect(str(root))
    schema = {"id": lh.Int, "caption": lh.String, "image": lh.Image}
    pics = db.create_table("pics", schema)
    rows = [{"id": 0, "caption": SCRIPT, "image": _grey_png()},
            {"id": 1, "caption": IMG, "image": _grey_png()},
            {"id": 2, "caption": "no picture", "image": None}]
    rows += [{"id": i + 3, "caption": scene.caption, "image": picture}
             for i, (picture, scene) in enumerate(shapes.samples(200, seed=424242))]
    pics.insert(rows, progress=False)
    pics.add_embedding_index("image", embedding=lh.functions.clip(lh.functions.SHAPES_CLIP),
                             progress=False)
    pics.snapshot("indexed")
    plain = db.create_table("plain", schema)
    plain.insert(rows[:2], progress=False)
    return root


class Server:
    """A `lakehouse serve` subprocess; `url` is the address it printed."""

    def __init__(self, args: list[str], cwd: Path) -> None:
        exe = Path(sys.executable).parent / "lakehouse"
        self.proc = subprocess.Popen([str(exe), "serve", *args], cwd=cwd, text=True,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        killer = threading.Timer(START_TIMEOUT_S, self.proc.kill)
        killer.start()
        line = self.proc.stdout.readline() if self.proc.stdout else ""
        killer.cancel()
        found = re.search(r"at (http://\S+/)", line)
        if found is None:
            self.stop()
            stderr = self.proc.stderr.read() if self.proc.stderr else ""
            pytest.fail(f"lakehouse serve did not start: {line!r} {stderr}", pytrace=False)
        self.url = found.group(1)
        self.host, self.port = urllib.parse.urlsplit(self.url).netloc.rsplit(":", 1)

    def stop(self) -> None:
        """Stop it as a person would, with Ctrl+C (SIGINT)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)


class InProcess:
    """`lakehouse.web.create_app` served by uvicorn on a thread of this process (the model
    is loaded once for the table and the app); same `url`, `host`, `port` as `Server`.
    `wrap`, when given, wraps the app (an ASGI middleware) before it is served."""

    def __init__(self, table: lh.Table, column: str,
                 wrap: Callable[[Any], Any] | None = None) -> None:
        import uvicorn

        from lakehouse.web import create_app

        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        self.host, self.port = "127.0.0.1", str(sock.getsockname()[1])
        self.url = f"http://127.0.0.1:{self.port}/"
        app = create_app(table, column)
        config = uvicorn.Config(wrap(app) if wrap else app, log_level="warning")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [sock]},
                                       daemon=True)
        self.thread.start()
        while not self.server.started:
            if not self.thread.is_alive():
                pytest.fail("the search page did not start", pytrace=False)
            threading.Event().wait(0.05)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=20)


@pytest.fixture(scope="module")
def server(pics_root: Path) -> Iterator[InProcess]:
    running = InProcess(lh.connect(str(pics_root)).get_table("pics"), "image")
    yield running
    running.stop()


def _install_chromium() -> None:
    """Install Debian's chromium when it is missing and we may (root, apt): one test worker
    installs it while the others wait on a lock file."""
    import fcntl
    import os
    import shutil
    import subprocess

    if CHROMIUM.exists() or os.geteuid() != 0 or shutil.which("apt-get") is None:
        return
    with open("/tmp/lakehouse-chromium-install.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not CHROMIUM.exists():
            env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
            subprocess.run(["apt-get", "update", "-qq"], check=False, env=env,
                           capture_output=True)
            subprocess.run(["apt-get", "install", "-y", "-qq", "chromium"], check=False, env=env,
                           capture_output=True)


@pytest.fixture(scope="module")
def browser() -> Iterator:
    _install_chromium()
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing and could not be installed: install Debian's "
                    "chromium (apt-get install chromium; .ci/run does)", pytrace=False)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield launched
        launched.close()


def _get(server: Server, path: str,
         headers: dict[str, str] | None = None) -> tuple[int, dict, bytes]:
    """GET a raw path (sent exactly as given) from the server."""
    conn = http.client.HTTPConnection(server.host, int(server.port), timeout=60)
    try:
        conn.request("GET", path, headers=headers or {})
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        conn.close()


def _media_paths(html: str) -> list[str]:
    return [urllib.parse.urlsplit(u).path for u in re.findall(r'src="([^"]*/media/[^"]+)"', html)]


# --------------------------------------------------------------------------------------------
# In the browser
# --------------------------------------------------------------------------------------------


def test_typing_a_query_shows_the_closest_picture_first(server, browser) -> None:
    page = browser.new_page(viewport=VIEWPORT)
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    searches: list[str] = []
    page.on("request", lambda r: searches.append(r.url) if "/search?" in r.url else None)
    page.goto(server.url)
    assert "type to search" in page.locator(".note").inner_text()  # the first rows, no scores

    page.locator("#q").press_sequentially("a blue square", delay=40)
    page.wait_for_selector("text=closest to “a blue square”", timeout=30_000)
    first = page.locator(".card").first
    assert "blue square" in first.get_attribute("data-label")
    assert "blue square" in first.locator("img").get_attribute("alt")
    assert page.locator(".card").count() == 24
    scores = [float(s) for s in page.locator(".card").evaluate_all(
        "cards => cards.map(c => c.dataset.score)")]
    assert scores == sorted(scores, reverse=True)
    # debounced: typing 13 characters 40 ms apart asks one search (a few on a busy machine),
    # not thirteen
    assert 1 <= len(searches) <= 4, searches
    assert page.url.endswith("?q=a+blue+square")

    # the picture itself is blue: it loaded, and blue is its main colour besides the background
    page.wait_for_function("img => img.complete && img.naturalWidth > 0",
                           arg=first.locator("img").element_handle())
    status, headers, body = _get(server, urllib.parse.urlsplit(
        first.locator("img").get_attribute("src")).path)
    assert status == 200 and headers["content-type"] == "image/png"
    colours = Image.open(io.BytesIO(body)).convert("RGB").getcolors(1 << 16)
    saturated = [(n, c) for n, c in colours if max(c) - min(c) > 80]  # not the grey background
    shape_colour = max(saturated)[1]
    assert sum(abs(a - b) for a, b in zip(shape_colour, BLUE, strict=True)) < 60, shape_colour
    assert dialogs == []
    if os.environ.get("LAKEHOUSE_SCREENSHOT"):
        page.locator("#q").blur()
        page.screenshot(path=os.environ["LAKEHOUSE_SCREENSHOT"])
    page.close()


def test_markup_in_values_and_queries_shows_as_text(server, browser) -> None:
    # the HTML source: escaped by the templates
    for path in ("/", "/table", "/search?q="):
        status, _, body = _get(server, path)
        html = body.decode()
        assert status == 200
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html, path
        assert "&lt;img src=x onerror=alert(2)&gt;" in html, path
        assert SCRIPT not in html and "<img src=x" not in html, path

    # the browser: the values show as text, and nothing runs
    page = browser.new_page(viewport=VIEWPORT)
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    page.goto(server.url + "table")
    assert page.get_by_text(SCRIPT, exact=True).count() == 1
    assert page.get_by_text(IMG, exact=True).count() == 1
    page.goto(server.url)
    assert page.locator(f'.card[data-label="0 · {SCRIPT}"]').count() == 1
    # a query is shown back as text too, in the page rendered by the server and as you type
    query = "<img src=y onerror=alert(3)>"
    page.goto(server.url + "?q=" + urllib.parse.quote(query))
    assert query in page.locator(".note").inner_text()
    page.locator("#q").fill("")
    page.locator("#q").press_sequentially("<b onmouseover=alert(4)>x</b>", delay=5)
    page.wait_for_selector("text=closest to “<b onmouseover=alert(4)>x</b>”", timeout=30_000)
    page.mouse.move(300, 200)
    assert page.locator("b").count() == 0
    page.wait_for_timeout(300)
    assert dialogs == []
    page.close()


# --------------------------------------------------------------------------------------------
# Over HTTP
# --------------------------------------------------------------------------------------------


def test_media_only_for_ids_the_app_has_shown(server) -> None:
    _, _, body = _get(server, "/search?q=a+red+circle")
    shown = _media_paths(body.decode())
    assert len(shown) == 24
    status, headers, image = _get(server, shown[0])
    assert status == 200 and headers["content-type"] == "image/png"
    assert Image.open(io.BytesIO(image)).size == (64, 64)
    token = shown[0].rsplit("/", 1)[1]
    for path in ["/media/" + "0" * 64,           # well formed, never shown
                 "/media/" + token.upper(),       # not how ids are written
                 "/media/" + token[:-1],
                 "/media/3", "/media/-1",          # row ids and positions are not ids
                 "/media/../../etc/passwd",
                 "/media/..%2F..%2Fetc%2Fpasswd",
                 "/media/%2Fetc%2Fpasswd",
                 "/media/" + urllib.parse.quote(str(Path(__file__).resolve()), safe=""),
                 "/media/file%3A%2F%2F%2Fetc%2Fpasswd",
                 "/media/",
                 "/static/../app.py",
                 "/static/..%2Fapp.py"]:
        status, _, body = _get(server, path)
        assert status == 404, (path, status, body[:200])


def test_table_page_shows_rows_and_history(server, pics_root) -> None:
    status, _, body = _get(server, "/table")
    html = body.decode()
    assert status == 200
    table = lh.connect(str(pics_root)).get_table("pics")
    assert f"First 50 of {table.count()} rows, version {table.version}." in html
    assert html.count('class="thumb"') == 49  # one row has no image: it shows null
    rows = re.search(r'<table class="data rows">(.*?)</table>', html, re.S).group(1)
    assert rows.count("<tr>") == 51 and '<td class="null">null</td>' in rows
    history = re.search(r'<table class="data history">(.*?)</table>', html, re.S).group(1)
    for version in table.history()["version"].to_list():
        assert f"<td>{version}</td>" in history
    assert "<td>insert</td>" in history and "<td>indexed</td>" in history
    for shown in _media_paths(html):
        assert _get(server, shown)[0] == 200

    status, _, body = _get(server, "/table?n=3")
    assert status == 200 and body.decode().count('class="thumb"') == 2
    for bad in ("0", "-1", "abc", "1001", "1e3", "9" * 5000, "%C2%B2"):
        status, _, body = _get(server, f"/table?n={bad}")
        assert status == 400 and b"n must be a whole number" in body, bad


def test_json_search_and_bad_queries(server) -> None:
    status, headers, body = _get(server, "/api/search?q=a+green+triangle")
    assert status == 200 and headers["content-type"] == "application/json"
    found = json.loads(body)
    assert found["query"] == "a green triangle" and len(found["results"]) == 24
    assert "green triangle" in found["results"][0]["label"]
    scores = [r["score"] for r in found["results"]]
    assert scores == sorted(scores, reverse=True)
    status, _, body = _get(server, "/api/search?q=" + "x" * 1001)
    assert status == 400 and "at most 1000 characters" in json.loads(body)["error"]
    status, _, body = _get(server, "/search?q=" + "x" * 1001)
    assert status == 400 and b'<p class="error">' in body


def test_requests_for_other_hosts_are_refused(server) -> None:
    # a page on another site that rebinds its name to 127.0.0.1 still sends its own Host
    status, _, _ = _get(server, "/", headers={"Host": "attacker.example"})
    assert status == 400
    status, _, _ = _get(server, "/", headers={"Host": f"localhost:{server.port}"})
    assert status == 200


def test_every_answer_forbids_inline_script(server) -> None:
    for path in ("/", "/table", "/search?q=x", "/media/x", "/static/search.js"):
        _, headers, _ = _get(server, path)
        assert "script-src 'self'" in headers["content-security-policy"], path
        assert headers["x-content-type-options"] == "nosniff", path


# --------------------------------------------------------------------------------------------
# The library's create_app, other backends, and the command's failures
# --------------------------------------------------------------------------------------------


def test_create_app_checks_its_column(pics_root) -> None:
    from lakehouse.web import create_app

    db = lh.connect(str(pics_root))
    pics = db.get_table("pics")
    with pytest.raises(lh.ColumnNotFoundError, match="photo"):
        create_app(pics, "photo")
    with pytest.raises(lh.TypeMismatchError, match="Image column"):
        create_app(pics, "caption")
    with pytest.raises(lh.IndexNotFoundError, match="add_embedding_index"):
        create_app(db.get_table("plain"), "image")
    for k in (0, -3):
        with pytest.raises(lh.InvalidOptionError, match="positive integer"):
            create_app(pics, "image", k=k)
    for k in (True, 2.5):
        with pytest.raises(lh.TypeMismatchError, match="positive integer"):
            create_app(pics, "image", k=k)
    create_app(db.get_table("pics@indexed"), "image", k=5)  # an old version is searchable too


def test_thumbnails_keep_a_bounded_amount() -> None:
    from lakehouse.web.thumbnails import Thumbnails

    store = Thumbnails(max_bytes=1)
    assert store.add(b"not an image") is None
    pictures = [picture for picture, _ in shapes.samples(3, seed=5)]
    encoded = []
    for picture in pictures:
        out = io.BytesIO()
        picture.save(out, format="PNG")
        encoded.append(out.getvalue())
    tokens = [store.add(data) for data in encoded]
    assert store.get(tokens[0]) is None and store.get(tokens[-1]) is not None  # oldest evicted
    assert store.add(encoded[-1]) == tokens[-1]  # the same bytes, the same id
    assert store.get("../" + tokens[-1]) is None


@pytest.mark.s3
def test_serve_command_on_s3(s3_pictures, s3_bucket, s3_env, tmp_path) -> None:
    root = f"s3://{s3_bucket}/lh"
    t = s3_pictures
    running = Server(["pics", "-c", "image", "--port", "0", "-k", "3", "--root", root],
                     cwd=tmp_path)
    try:
        status, _, body = _get(running, "/search?q=" + urllib.parse.quote(t.head(1)["caption"][0]))
        shown = _media_paths(body.decode())
        assert status == 200 and len(shown) == 3
        assert all(_get(running, path)[0] == 200 for path in shown)
        assert _get(running, "/table")[0] == 200
    finally:
        running.stop()
    stderr = running.proc.stderr.read() if running.proc.stderr else ""
    assert running.proc.returncode == 0 and stderr == "", stderr  # Ctrl+C is how it stops


def _one_error_line(proc: subprocess.CompletedProcess, *needles: str) -> None:
    assert proc.returncode == 1, (proc.stdout, proc.stderr)
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: "), proc.stderr
    for needle in needles:
        assert needle in lines[0], proc.stderr


def test_serve_errors(run_cli, pics_root) -> None:
    root = ["--root", str(pics_root), "--port", "0"]
    _one_error_line(run_cli("serve", "nope", "--column", "image", *root), "nope")
    _one_error_line(run_cli("serve", "pics", "--column", "photo", *root), "photo")
    _one_error_line(run_cli("serve", "pics", "--column", "caption", *root), "Image column")
    _one_error_line(run_cli("serve", "plain", "--column", "image", *root),
                    "no embedding index")
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen(1)
    try:
        proc = run_cli("serve", "pics", "--column", "image", "--root", str(pics_root),
                       "--port", str(taken.getsockname()[1]))
    finally:
        taken.close()
    _one_error_line(proc, "cannot listen", "choose another port")
    proc = run_cli("serve", "pics", *root)  # --column is required
    assert proc.returncode == 2 and "--column" in proc.stderr


def test_serve_reports_a_model_it_cannot_load(run_cli, tmp_path) -> None:
    model = tmp_path / "model"
    shutil.copytree(Path(lh.__file__).parent / "models" / "shapes_clip", model)
    db = lh.connect(str(tmp_path / "root"))
    t = db.create_table("pics", {"image": lh.Image})
    t.insert([{"image": picture} for picture, _ in shapes.samples(2, seed=424242)],
             progress=False)
    t.add_embedding_index("image", embedding=lh.functions.clip(f"local-dir:{model}"),
                          progress=False)
    shutil.rmtree(model)
    proc = run_cli("serve", "pics", "-c", "image", "--port", "0", "--root", str(tmp_path / "root"))
    _one_error_line(proc, str(model))


def test_table_page_of_a_table_with_many_versions(pics_root, tmp_path) -> None:
    """The page shows the newest versions of a long history, newest first, and how many
    versions there are in all, counted without reading each (history(limit=None) would)."""
    root = tmp_path / "copy"
    shutil.copytree(pics_root, root)
    table = lh.connect(str(root)).get_table("pics")
    while table.version < 60:
        table.insert([{"id": 1000 + table.version, "caption": "later"}], progress=False)
    table.snapshot("sixty")
    assert table.version_count() == len(table.history(limit=None)) == table.version
    running = InProcess(table, "image")
    try:
        status, _, body = _get(running, "/table")
    finally:
        running.stop()
    html = body.decode()
    assert status == 200
    assert f"Newest 20 of {table.version} versions, newest first." in html
    history = re.search(r'<table class="data history">(.*?)</table>', html, re.S).group(1)
    shown = [int(v) for v in re.findall(r"<tr><td>(\d+)</td>", history)]
    assert shown == list(range(table.version, table.version - 20, -1))
    newest = history.split("<tbody>")[1].split("</tr>")[0]
    assert newest.endswith("<td>sixty</td>")  # its snapshots, as text

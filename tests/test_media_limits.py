"""Media fetching has limits (issue 11, points 6 and 8): a size cap and timeouts on every fetch,
no private, loopback or link-local address unless allowed (never the cloud metadata service),
redirects checked, relative paths from CSV and Parquet kept inside their folder, symbolic links
followed by insert_files only inside the folder, a Document is a document, images decode only
raster formats Pillow decodes itself, and decompression bombs are row errors.

A real HTTP server on 127.0.0.1 (http.server in a thread) stands in for the internet: reaching it
needs ``lh.FetchPolicy(allow_private_network=True)``, which is itself tested.
"""

from __future__ import annotations

import ast
import dataclasses
import http.server
import io
import os
import struct
import threading
import time
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import boto3
import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

import lakehouse as lh
from lakehouse.functions.image import to_pil

ALLOW_PRIVATE = lh.FetchPolicy(allow_private_network=True)
PACKAGE = Path(lh.__file__).parent


# --------------------------------------------------------------------------------------------
# a local web server with the behaviours under test
# --------------------------------------------------------------------------------------------


class _Handler(http.server.BaseHTTPRequestHandler):
    """``/file/<name>``: a file of the server's folder; ``/redirect?to=<url>``: a 302 to it;
    ``/endless``: zeros without end and without a length; ``/announced``: a length of a
    terabyte; ``/slow``: answers after 3 s; ``/trickle``: a byte every 0.1 s for 30 s."""

    server: _Server

    def do_GET(self) -> None:  # noqa: N802 - the name http.server calls
        path = urlsplit(self.path).path
        query = parse_qs(urlsplit(self.path).query)
        if path.startswith("/file/"):
            target = self.server.folder / path[len("/file/"):]
            if not target.is_file():
                self._answer(404, b"")
                return
            self._answer(200, target.read_bytes())
        elif path == "/redirect":
            self.send_response(302)
            self.send_header("Location", query["to"][0])
            self.send_header("Content-Length", "0")
            self.end_headers()
        elif path == "/endless":
            self._stream(chunk=b"\0" * 65536, pause=0.0, seconds=60)
        elif path == "/trickle":
            self._stream(chunk=b"x", pause=0.1, seconds=30)
        elif path == "/announced":
            self.send_response(200)
            self.send_header("Content-Length", str(10**12))
            self.end_headers()
            self.wfile.write(b"\0" * 1024)
        elif path == "/slow":
            time.sleep(3)
            self._answer(200, b"late")
        else:
            self._answer(404, b"")

    def _answer(self, status: int, body: bytes) -> None:
        try:
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except OSError:  # the client gave up waiting (the timeout tests)
            pass

    def _stream(self, *, chunk: bytes, pause: float, seconds: float) -> None:
        self.send_response(200)
        self.send_header("Connection", "close")
        self.end_headers()
        end = time.monotonic() + seconds
        try:
            while time.monotonic() < end:
                self.wfile.write(chunk)
                self.server.sent += len(chunk)
                time.sleep(pause)
        except OSError:  # the client hung up: what the test expects
            pass

    def log_message(self, format: str, *args: Any) -> None:
        """Keep request logs out of the test output."""


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def __init__(self, folder: Path) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.folder = folder
        self.sent = 0  # bytes sent by the streaming routes


@dataclasses.dataclass
class Web:
    server: _Server

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def put(self, name: str, data: bytes) -> str:
        (self.server.folder / name).write_bytes(data)
        return f"{self.url}/file/{name}"

    def redirect(self, to: str) -> str:
        return f"{self.url}/redirect?to={to}"


def _serving(server: _Server) -> Iterator[Web]:
    """Serve in a thread for the duration of a fixture, then stop and close the server."""
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield Web(server)
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def web(tmp_path: Path) -> Iterator[Web]:
    folder = tmp_path / "www"
    folder.mkdir()
    server = _Server(folder)
    yield from _serving(server)


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------


def _png(size: tuple[int, int] = (8, 6)) -> bytes:
    out = io.BytesIO()
    Image.fromarray(np.full((size[1], size[0], 3), 200, np.uint8)).save(out, format="PNG")
    return out.getvalue()


def _connect(root: Any, policy: lh.FetchPolicy | None = None) -> lh.Catalog:
    return lh.connect(root.uri, storage_options=root.storage_options, fetch=policy)


def _table(db: lh.Catalog, kind: Any = lh.Image) -> lh.Table:
    return db.create_table("media", {"m": kind, "n": lh.Int})


def _errors(t: lh.Table) -> dict[int, tuple[str | None, str | None]]:
    df = t.select(t.n, kind=t.m.errortype, msg=t.m.errormsg).collect()
    return {row["n"]: (row["kind"], row["msg"]) for row in df.iter_rows(named=True)}


def _insert_ignore(t: lh.Table, values: list[Any]) -> dict[int, tuple[str | None, str | None]]:
    t.insert([{"m": v, "n": i} for i, v in enumerate(values)], on_error="ignore", progress=False)
    return _errors(t)


def _assert_refused(t: lh.Table, value: Any, kind: str, *, source: str | None = None) -> None:
    """An insert of a good row and ``value`` fails naming row 1 and the source, writes nothing;
    with on_error="ignore" the row is kept with ``kind`` recorded."""
    version, count = t.table_version, t.count_rows()
    with pytest.raises(lh.SourceRefusedError) as info:
        t.insert([{"m": _png(), "n": 0}, {"m": value, "n": 1}], progress=False)
    message = str(info.value)
    assert info.value.kind == kind, message
    assert "'media'" in message and "column 'm'" in message and "row 1" in message, message
    assert (source or str(value)) in message, message
    assert (t.table_version, t.count_rows()) == (version, count)

    t.insert([{"m": _png(), "n": 0}, {"m": value, "n": 1}], on_error="ignore", progress=False)
    errors = {n: e for n, e in _errors(t).items() if e[0] is not None}
    assert [e[0] for e in errors.values()] == [kind], errors
    assert (source or str(value)) in next(iter(errors.values()))[1]
    t.delete()


# --------------------------------------------------------------------------------------------
# the policy object
# --------------------------------------------------------------------------------------------


def test_fetch_policy_has_documented_defaults_and_checks_its_values() -> None:
    policy = lh.FetchPolicy()
    assert (policy.max_bytes, policy.connect_timeout_s, policy.read_timeout_s,
            policy.total_timeout_s, policy.max_redirects) == (2**30, 10.0, 30.0, 600.0, 5)
    assert not policy.allow_private_network and not policy.allow_outside_folder
    with pytest.raises(dataclasses.FrozenInstanceError):
        policy.max_bytes = 1  # type: ignore[misc]
    with pytest.raises(lh.InvalidOptionError, match="max_bytes must be a positive number.*"
                       "max_redirects must be 0 or more"):
        lh.FetchPolicy(max_bytes=0, max_redirects=-1)
    with pytest.raises(lh.InvalidOptionError,
                       match="allow_private_network must be True or False"):
        lh.FetchPolicy(allow_private_network="yes")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="FetchPolicy"):
        lh.connect("x", fetch={"max_bytes": 1})  # type: ignore[arg-type]


def test_tables_keep_the_policy_they_were_opened_with(lakehouse_root, web) -> None:
    url = web.put("a.png", _png())
    _table(_connect(lakehouse_root, ALLOW_PRIVATE)).insert([{"m": url, "n": 0}], progress=False)
    t = _connect(lakehouse_root).get_table("media")  # opened again with the defaults
    assert _insert_ignore(t, [url])[0][0] == "PrivateAddress"


# --------------------------------------------------------------------------------------------
# private addresses and redirects
# --------------------------------------------------------------------------------------------


def test_a_private_address_is_refused_unless_allowed(db, lakehouse_root, web) -> None:
    url = web.put("a.png", _png())
    _assert_refused(_table(db), url, "PrivateAddress")
    allowed = _connect(lakehouse_root, ALLOW_PRIVATE).get_table("media")
    result = allowed.insert([{"m": url, "n": 0}], progress=False)
    assert (result.rows_written, result.rows_with_errors) == (1, 0)
    assert allowed.select(allowed.m).collect()["m"].to_list() == [_png()]


@pytest.mark.parametrize("url", [
    "http://localhost:9/a.png",  # a name: resolved, then checked
    "http://[::1]:9/a.png",
    "http://10.1.2.3/a.png",
    "http://192.168.0.1/a.png",
])
def test_names_and_addresses_of_private_hosts_are_refused(tmp_path, url) -> None:
    t = _table(lh.connect(tmp_path / "lh"))
    kind, msg = _insert_ignore(t, [url])[0]
    assert kind == "PrivateAddress" and "FetchPolicy(allow_private_network=True)" in msg, msg


@pytest.mark.parametrize("url", [
    "http://169.254.169.254/latest/meta-data/iam/security-credentials/",
    "http://2852039166/latest/meta-data/",  # 169.254.169.254 written as one number
    "http://[::ffff:169.254.169.254]/latest/meta-data/",
    "http://[fe80::1]/a.png",
    "http://0.0.0.0:9/a.png",
    "http://224.0.0.1/a.png",
])
def test_metadata_link_local_and_reserved_addresses_are_refused_even_when_private_is_allowed(
        tmp_path, url) -> None:
    t = _table(lh.connect(tmp_path / "lh", fetch=ALLOW_PRIVATE), lh.Document)
    started = time.monotonic()
    kind, msg = _insert_ignore(t, [url])[0]
    assert kind == "PrivateAddress" and "never fetched from" in msg, msg
    assert time.monotonic() - started < 5  # refused before any connection is tried


def test_redirects_to_metadata_other_schemes_and_other_private_hosts_are_refused(
        tmp_path, web) -> None:
    t = _table(lh.connect(tmp_path / "lh", fetch=ALLOW_PRIVATE))
    good = web.put("a.png", _png())
    (tmp_path / "local.png").write_bytes(_png())
    port = web.server.server_address[1]
    cases = {
        0: web.redirect("http://169.254.169.254/latest/meta-data/"),
        1: web.redirect((tmp_path / "local.png").as_uri()),
        2: web.redirect(f"http://127.0.0.2:{port}/file/a.png"),  # another host, private
        3: web.redirect("ftp://example.com/a.png"),
        4: web.redirect(good),  # same host: followed
        5: web.redirect(web.redirect(web.redirect(good))),  # a chain within max_redirects
    }
    errors = _insert_ignore(t, list(cases.values()))
    assert [errors[i][0] for i in range(6)] == ["RedirectRefused"] * 4 + [None, None], errors
    assert "169.254.169.254" in errors[0][1] and "never fetched from" in errors[0][1]
    assert "may only go to http(s)" in errors[1][1]
    assert "redirect from another host" in errors[2][1]


def test_too_many_redirects_are_refused(tmp_path, web) -> None:
    good = web.put("a.png", _png())
    t = _table(lh.connect(tmp_path / "lh",
                          fetch=lh.FetchPolicy(allow_private_network=True, max_redirects=1)))
    errors = _insert_ignore(t, [web.redirect(good), web.redirect(web.redirect(good))])
    assert errors[0][0] is None
    assert errors[1][0] == "RedirectRefused" and "max_redirects" in errors[1][1]


# --------------------------------------------------------------------------------------------
# size caps and timeouts
# --------------------------------------------------------------------------------------------


def test_a_local_file_over_the_cap_is_refused(lakehouse_root, tmp_path) -> None:
    big = tmp_path / "big.png"
    big.write_bytes(_png((300, 300)))
    cap = big.stat().st_size - 1
    t = _table(_connect(lakehouse_root, lh.FetchPolicy(max_bytes=cap)))
    _assert_refused(t, str(big), "SourceTooLarge", source=big.as_uri())
    small = tmp_path / "small.png"
    small.write_bytes(_png())
    assert _insert_ignore(t, [str(small)])[0] == (None, None)


def test_an_s3_object_over_the_cap_is_refused(lakehouse_root, s3_bucket, s3_env) -> None:
    client = boto3.client("s3", endpoint_url=s3_env)
    noise = np.random.default_rng(5).integers(0, 256, (60, 60, 3), dtype=np.uint8)
    out = io.BytesIO()
    Image.fromarray(noise).save(out, format="PNG")
    assert len(out.getvalue()) > 2000
    client.put_object(Bucket=s3_bucket, Key="media/big.png", Body=out.getvalue())
    client.put_object(Bucket=s3_bucket, Key="media/small.png", Body=_png())
    t = _table(_connect(lakehouse_root, lh.FetchPolicy(max_bytes=2000)))
    errors = _insert_ignore(t, [f"s3://{s3_bucket}/media/big.png",
                                f"s3://{s3_bucket}/media/small.png"])
    assert errors[0][0] == "SourceTooLarge" and "max_bytes=2000" in errors[0][1]
    assert errors[1] == (None, None)


def test_http_reading_stops_at_the_cap(tmp_path, web) -> None:
    policy = lh.FetchPolicy(allow_private_network=True, max_bytes=1 << 20)
    t = _table(lh.connect(tmp_path / "lh", fetch=policy))
    big = web.put("big.png", _png((1200, 1200)) + b"\0" * (1 << 20))
    started = time.monotonic()
    errors = _insert_ignore(t, [f"{web.url}/endless", f"{web.url}/announced", big])
    assert [errors[i][0] for i in range(3)] == ["SourceTooLarge"] * 3, errors
    assert time.monotonic() - started < 20
    # the endless answer was read in a stream and dropped at the cap: the server could send no
    # more than the cap plus what the sockets buffer, far from its minute of zeros
    assert web.server.sent < 64 << 20


def test_a_slow_server_times_out(tmp_path, web) -> None:
    policy = lh.FetchPolicy(allow_private_network=True, read_timeout_s=0.5, total_timeout_s=1.5)
    t = _table(lh.connect(tmp_path / "lh", fetch=policy), lh.Document)
    started = time.monotonic()
    errors = _insert_ignore(t, [f"{web.url}/slow", f"{web.url}/trickle"])
    assert time.monotonic() - started < 10
    assert errors[0][0] == "SourceTimeout" and "read_timeout_s" in errors[0][1]
    assert errors[1][0] == "SourceTimeout" and "total_timeout_s" in errors[1][1]


def test_devices_pipes_and_folders_are_not_read(tmp_path) -> None:
    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)
    t = _table(lh.connect(tmp_path / "lh"))
    started = time.monotonic()
    errors = _insert_ignore(t, ["/dev/zero", str(fifo), str(tmp_path)])
    assert time.monotonic() - started < 10  # the pipe did not block the reader
    assert [errors[i][0] for i in range(3)] == ["NotAFile"] * 3, errors
    assert "not a regular file" in errors[0][1]


# --------------------------------------------------------------------------------------------
# paths stay inside their folder
# --------------------------------------------------------------------------------------------


@pytest.fixture
def csv_folder(tmp_path: Path) -> Path:
    """data/ with photos/a.png and a CSV naming files inside and outside it; secret.png lies
    beside data/, and data/link.png is a symbolic link to it."""
    data = tmp_path / "data"
    (data / "photos").mkdir(parents=True)
    (data / "photos" / "a.png").write_bytes(_png())
    (tmp_path / "secret.png").write_bytes(_png((5, 5)))
    (data / "link.png").symlink_to(tmp_path / "secret.png")
    (data / "inner.png").symlink_to(data / "photos" / "a.png")
    rows = ["photos/a.png", "../secret.png", "link.png", "photos/../photos/a.png", "inner.png",
            str(tmp_path / "secret.png")]
    (data / "files.csv").write_text("m,n\n" + "".join(f"{p},{i}\n" for i, p in enumerate(rows)))
    return data


def test_csv_relative_paths_stay_inside_the_csv_folder(db, lakehouse_root, csv_folder) -> None:
    csv = csv_folder / "files.csv"
    with pytest.raises(lh.SourceRefusedError) as info:
        db.import_csv("media", csv, schema={"m": lh.Image}, progress=False)
    message = str(info.value)
    assert "row 1" in message and "../secret.png" in message, message
    assert "allow_outside_folder=True" in message
    assert not db.list_tables()

    t = db.import_csv("media", csv, schema={"m": lh.Image}, on_error="ignore", progress=False)
    errors = _errors(t)
    # an absolute path (row 5) is what the user wrote: read as written
    assert {n: e[0] for n, e in errors.items()} == {0: None, 1: "OutsideFolder",
                                                   2: "OutsideFolder", 3: None, 4: None, 5: None}
    assert str(csv_folder) in errors[2][1]

    allowed = _connect(lakehouse_root, lh.FetchPolicy(allow_outside_folder=True))
    t2 = allowed.import_csv("media2", csv, schema={"m": lh.Image}, progress=False)
    assert t2.count_rows() == 6 and t2.where(t2.m.errortype != None).count() == 0  # noqa: E711


def test_parquet_relative_paths_stay_inside_the_shard_folder(tmp_path, csv_folder) -> None:
    image = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
    paths = ["photos/a.png", "../secret.png", "link.png"]
    table = pa.table({"m": pa.array([{"bytes": None, "path": p} for p in paths], image),
                      "n": list(range(3))})
    pq.write_table(table, csv_folder / "shard.parquet")
    t = lh.connect(tmp_path / "lh").import_parquet("media", csv_folder / "shard.parquet",
                                                   on_error="ignore", progress=False)
    assert {n: e[0] for n, e in _errors(t).items()} == {0: None, 1: "OutsideFolder",
                                                       2: "OutsideFolder"}


def test_insert_files_follows_symbolic_links_only_inside_the_folder(tmp_path, csv_folder) -> None:
    db = lh.connect(tmp_path / "lh")
    t = db.create_table("media", {"m": lh.Image})
    # the link's row records where the link leads, from the folder: data/../secret.png
    with pytest.raises(lh.SourceRefusedError, match=r"row \d.*data/\.\./secret\.png leads out "
                       r"of the folder .*allow_outside_folder"):
        t.insert_files(csv_folder, progress=False)
    assert t.count_rows() == 0
    t.insert_files(csv_folder, on_error="ignore", progress=False)
    df = t.select(url=t.m.fileurl, kind=t.m.errortype).collect()
    kinds = {u.rsplit("/", 1)[-1]: k for u, k in zip(df["url"], df["kind"], strict=True)}
    # inner.png, a link inside the folder, is photos/a.png, which is listed once
    assert kinds == {"a.png": None, "secret.png": "OutsideFolder"}
    assert t.count_rows() == 2
    # a glob is confined to the folder it starts from
    t.delete()
    t.insert_files(str(csv_folder / "*.png"), on_error="ignore", progress=False)
    kinds = t.select(k=t.m.errortype).collect()["k"].to_list()
    assert sorted(kinds, key=str) == [None, "OutsideFolder"]
    # a link named explicitly is the user's choice; the option follows links out of folders
    t.delete()
    assert t.insert_files(csv_folder / "link.png", progress=False).rows_with_errors == 0
    allowed = lh.connect(tmp_path / "lh", fetch=lh.FetchPolicy(allow_outside_folder=True))
    result = allowed.get_table("media").insert_files(csv_folder, progress=False)
    assert (result.rows_written, result.rows_with_errors) == (2, 0)


# --------------------------------------------------------------------------------------------
# a Document is a document
# --------------------------------------------------------------------------------------------


def test_a_document_read_from_a_path_or_url_must_be_a_document(tmp_path, web, monkeypatch) -> None:
    home = tmp_path / "home"
    (home / ".aws").mkdir(parents=True)
    credentials = home / ".aws" / "credentials"
    credentials.write_text("[default]\naws_access_key_id = AKIAEXAMPLE\n"
                           "aws_secret_access_key = wJalrXUtnFEMIK7MDENGbPxRfiCYEXAMPLEKEY\n")
    monkeypatch.setenv("HOME", str(home))
    (tmp_path / "notes.txt").write_text("Buy milk.")
    (tmp_path / "fake.pdf").write_text("Not a PDF at all.")
    (tmp_path / "page.md").write_text("# Title\n\nSome *text*.")
    metadata = web.put("role", b'{"AccessKeyId": "ASIA", "SecretAccessKey": "abc", "Token": "t"}')
    page = web.put("article", b"<!doctype html><html><body><p>Hello</p></body></html>")
    t = _table(lh.connect(tmp_path / "lh", fetch=ALLOW_PRIVATE), lh.Document)
    errors = _insert_ignore(t, [str(credentials), "~/.aws/credentials", metadata,
                                str(tmp_path / "fake.pdf"), str(tmp_path / "notes.txt"), page,
                                str(tmp_path / "page.md"), b"plain bytes are taken as text"])
    assert [errors[i][0] for i in range(8)] == ["InvalidDocument"] * 4 + [None] * 4, errors
    assert "credentials is not named like a document" in errors[0][1]
    assert "named like a PDF but does not start with %PDF-" in errors[3][1]
    stored = t.where(t.m.errortype != None).select(t.m).collect()["m"]  # noqa: E711
    assert stored.null_count() == 4  # nothing of the refused files was copied in

    # the reproduction: a CSV naming the user's credentials
    (tmp_path / "docs.csv").write_text("m,n\n~/.aws/credentials,0\n")
    with pytest.raises(lh.MediaError, match="row 0.*credentials is not named like a document"):
        lh.connect(tmp_path / "lh2").import_csv("docs", tmp_path / "docs.csv",
                                                schema={"m": lh.Document}, progress=False)


# --------------------------------------------------------------------------------------------
# images decode safely
# --------------------------------------------------------------------------------------------


def _encoded(format: str) -> bytes:
    out = io.BytesIO()
    Image.fromarray(np.full((20, 30, 3), 90, np.uint8)).save(out, format=format)
    return out.getvalue()


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header declares ``width`` x ``height`` grey pixels, with one tiny data chunk:
    the shape of a decompression bomb, without the gigabytes."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b""))


@pytest.mark.parametrize("format", ["EPS", "PDF"])
def test_images_open_only_raster_formats(tmp_path, format: str) -> None:
    data = _encoded(format)
    if format == "EPS":  # what Pillow would open, and hand to Ghostscript to decode
        assert Image.open(io.BytesIO(data)).format == "EPS"
    path = tmp_path / f"picture.{format.lower()}"
    path.write_bytes(data)
    t = _table(lh.connect(tmp_path / "lh"))
    errors = _insert_ignore(t, [data, str(path), _encoded("WEBP"), _encoded("TIFF")])
    assert [errors[i][0] for i in range(4)] == ["InvalidImage", "InvalidImage", None, None]
    assert "not a recognised raster image format" in errors[0][1]
    # the other ways images are opened: to_pil and the notebook display
    with pytest.raises(Image.UnidentifiedImageError):
        to_pil(data)
    assert lh.show(pl.DataFrame({"b": [data]})).media == {}


def test_a_decompression_bomb_is_a_row_error(db, monkeypatch) -> None:
    bomb = _png_header_only(40_000, 40_000)  # 1.6 billion pixels declared
    t = _table(db)
    t.add_computed_column(w=t.m.width, progress=False)
    version = t.table_version
    with pytest.raises(lh.MediaError, match=r"'media'.*column 'm', row 1\b.*decompression bomb"):
        t.insert([{"m": _png(), "n": 0}, {"m": bomb, "n": 1}], progress=False)
    assert t.table_version == version
    errors = _insert_ignore(t, [_png(), bomb])
    assert errors[0] == (None, None)
    assert errors[1][0] == "InvalidImage" and "decompression bomb" in errors[1][1]
    assert t.select(t.w).collect()["w"].to_list() == [8, None]

    # between Pillow's warning and its error: refused too, not decoded
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    t.delete()
    with pytest.warns(Image.DecompressionBombWarning):
        errors = _insert_ignore(t, [_png((40, 40)), _png((20, 20))])
    assert errors[0][0] == "InvalidImage" and "MAX_IMAGE_PIXELS=1000" in errors[0][1]
    assert errors[1] == (None, None)


def test_a_truncated_image_is_a_row_error(tmp_path) -> None:
    data = _png((200, 200))
    t = _table(lh.connect(tmp_path / "lh"))
    errors = _insert_ignore(t, [data[: len(data) // 2], data])
    assert errors[0][0] == "InvalidImage" and errors[1] == (None, None)


def test_every_image_open_in_the_package_names_its_formats() -> None:
    """Image.open without formats= would let any installed plugin (EPS, Ghostscript) decode."""
    missing = []
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) \
                    and node.func.attr == "open" and isinstance(node.func.value, ast.Name) \
                    and node.func.value.id == "Image" \
                    and not any(k.arg == "formats" for k in node.keywords):
                missing.append(f"{path.relative_to(PACKAGE)}:{node.lineno}")
    assert not missing, f"Image.open without formats= at {missing}"


# --------------------------------------------------------------------------------------------
# https: the connection goes to the checked address, the certificate is checked for the host
# --------------------------------------------------------------------------------------------


def _certificate(folder: Path) -> tuple[Path, Path]:
    """A self-signed certificate for ``localhost`` and 127.0.0.1, and its key (PEM files)."""
    import datetime as dt
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(hours=1))
            .not_valid_after(now + dt.timedelta(hours=1))
            .add_extension(x509.SubjectAlternativeName([
                x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


@pytest.fixture
def secure_web(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Web]:
    """The same server over TLS, its certificate trusted through SSL_CERT_FILE."""
    import ssl

    folder = tmp_path / "www-tls"
    folder.mkdir()
    cert, key = _certificate(tmp_path)
    server = _Server(folder)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))
    yield from _serving(server)


def test_https_is_verified_for_the_host_and_never_redirected_to_http(tmp_path, secure_web,
                                                                     web, monkeypatch) -> None:
    port = secure_web.server.server_address[1]
    secure_web.put("a.png", _png())
    plain = web.put("b.png", _png())
    t = _table(lh.connect(tmp_path / "lh", fetch=ALLOW_PRIVATE))
    by_name = f"https://localhost:{port}/file/a.png"  # resolved, then connected to by address
    errors = _insert_ignore(t, [by_name, f"https://127.0.0.1:{port}/file/a.png",
                                f"https://localhost:{port}/redirect?to={plain}"])
    assert errors[0] == (None, None) and errors[1] == (None, None), errors
    assert errors[2][0] == "RedirectRefused" and "never from https to http" in errors[2][1]

    monkeypatch.delenv("SSL_CERT_FILE")  # an untrusted certificate is not accepted
    t.delete()
    kind, msg = _insert_ignore(t, [by_name])[0]
    assert kind == "SourceUnreachable" and "certificate" in msg.lower(), msg

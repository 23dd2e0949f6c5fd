"""Media columns (lh.Image): every intake form, stored bytes and source URIs, the copy and
reference storage modes, image functions in computed columns, select() and where(), per-row
errors (abort and ignore), update() and backfill of tables holding images, and tables re-opened
in a fresh process. Most tests run on both backends through the `db` fixture, on real sample
photos (scikit-image's astronaut.png, camera.png and rocket.jpg)."""

from __future__ import annotations

import base64
import dataclasses
import functools
import hashlib
import http.server
import io
import json
import os
import re
import shutil
import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import lance
import numpy as np
import polars as pl
import pyarrow as pa
import pytest
from media_samples import ASTRONAUT, CAMERA, ROCKET, image_path
from PIL import Image, ImageOps
from udfs_for_tests import TESTS_DIR
from udfs_for_tests import media_udfs as MU

import lakehouse as lh

TABLE = "photos"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
JPEG_MAGIC = b"\xff\xd8\xff"

# label -> (width, height, mode, format) of the sample photos
SAMPLES = {
    "astronaut": (512, 512, "RGB", "PNG"),
    "camera": (512, 512, "L", "PNG"),
    "rocket": (640, 427, "RGB", "JPEG"),
}


# --------------------------------------------------------------------------------------------
# fixtures and helpers
# --------------------------------------------------------------------------------------------


@pytest.fixture
def db(lakehouse_root: Any) -> lh.Catalog:
    """The lakehouse of these tests reads media from a web server on 127.0.0.1 (http_server), a
    loopback address, which only ``allow_private_network`` lets a fetch reach (see
    test_media_limits.py for the refusal)."""
    return lh.connect(lakehouse_root.uri, storage_options=lakehouse_root.storage_options,
                      fetch=lh.FetchPolicy(allow_private_network=True))


@pytest.fixture(autouse=True)
def _media_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Keep cached copies of media (localpath, fetched references) out of the home folder."""
    cache = tmp_path / "media-cache"
    monkeypatch.setenv("LAKEHOUSE_CACHE", str(cache))
    return cache


@dataclasses.dataclass(frozen=True)
class Samples:
    """Copies of the sample photos in a folder the test owns (so it may delete them)."""

    folder: Path

    def path(self, label: str) -> Path:
        return self.folder / {"astronaut": ASTRONAUT, "camera": CAMERA, "rocket": ROCKET}[label]

    def data(self, label: str) -> bytes:
        return self.path(label).read_bytes()

    def uri(self, label: str) -> str:
        return self.path(label).resolve().as_uri()


@pytest.fixture
def samples(tmp_path: Path) -> Samples:
    folder = tmp_path / "samples"
    folder.mkdir()
    for name in (ASTRONAUT, CAMERA, ROCKET):
        shutil.copyfile(image_path(name), folder / name)
    return Samples(folder)


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """Keep request logs out of the test output."""


@dataclasses.dataclass(frozen=True)
class HttpServer:
    """A static file server on 127.0.0.1: files put in ``folder`` are at ``url + "/" + name``."""

    url: str
    folder: Path

    def put(self, name: str, data: bytes) -> str:
        (self.folder / name).write_bytes(data)
        return f"{self.url}/{name}"


@pytest.fixture
def http_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[HttpServer]:
    folder = tmp_path / "www"
    folder.mkdir()
    no_proxy = ",".join(filter(None, [os.environ.get("NO_PROXY"), "127.0.0.1", "localhost"]))
    monkeypatch.setenv("NO_PROXY", no_proxy)
    monkeypatch.setenv("no_proxy", no_proxy)
    handler = functools.partial(_QuietHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield HttpServer(f"http://127.0.0.1:{server.server_address[1]}", folder)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


@dataclasses.dataclass(frozen=True)
class S3Objects:
    """Uploads objects to the test's moto bucket with boto3."""

    endpoint: str
    bucket: str

    def put(self, key: str, data: bytes) -> str:
        import boto3

        client = boto3.client("s3", endpoint_url=self.endpoint, region_name="us-east-1",
                              aws_access_key_id="testing", aws_secret_access_key="testing")
        client.put_object(Bucket=self.bucket, Key=key, Body=data)
        return f"s3://{self.bucket}/{key}"


@pytest.fixture
def s3_objects(s3_bucket: str, s3_env: str) -> S3Objects:
    """Media objects on S3 (the same bucket as the s3 backend's root, under ``media/``); the
    AWS_* variables point at the moto server, so a local-backend table can read them too."""
    return S3Objects(s3_env, s3_bucket)


def _closed_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _photos(db: lh.Catalog, image_type: Any = lh.Image) -> lh.Table:
    return db.create_table(TABLE, {"image": image_type, "label": lh.String})


def _by_label(df: pl.DataFrame, column: str) -> dict[str, Any]:
    return dict(zip(df["label"].to_list(), df[column].to_list(), strict=True))


def _open(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def _pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image)


def _png(array: np.ndarray) -> bytes:
    out = io.BytesIO()
    Image.fromarray(array).save(out, format="PNG")
    return out.getvalue()


def _has_row(message: str, row: int) -> bool:
    return re.search(rf"\brow {row}\b", message) is not None


def _assert_names(message: str, *, row: int, source: str, column: str = "image") -> None:
    assert repr(TABLE) in message, message
    assert repr(column) in message, message
    assert _has_row(message, row), message
    assert source in message, message


def _raw_blob_is_null(t: lh.Table, root: Any) -> list[bool]:
    """Per row, whether the Lance blob column itself holds no bytes (read without lakehouse)."""
    raw = lance.dataset(t.uri, storage_options=root.storage_options).to_table(columns=["image"])
    return raw.column("image").is_null().to_pylist()


# --------------------------------------------------------------------------------------------
# intake: every form of value
# --------------------------------------------------------------------------------------------

SOURCE_FORMS = ["str_path", "pathlib_path", "file_uri", "s3_uri", "http_uri", "bytes",
                "bytearray"]


def _source(form: str, label: str, samples: Samples,
            request: pytest.FixtureRequest) -> tuple[Any, str | None]:
    """(the value to insert, the fileurl it should record) for ``label`` given as ``form``."""
    path = samples.path(label)
    if form == "str_path":
        return str(path), samples.uri(label)
    if form == "pathlib_path":
        return path, samples.uri(label)
    if form == "file_uri":
        return samples.uri(label), samples.uri(label)
    if form == "s3_uri":
        uri = request.getfixturevalue("s3_objects").put(f"media/{path.name}", samples.data(label))
        return uri, uri
    if form == "http_uri":
        url = request.getfixturevalue("http_server").put(path.name, samples.data(label))
        return url, url
    if form == "bytes":
        return samples.data(label), None
    if form == "bytearray":
        return bytearray(samples.data(label)), None
    raise AssertionError(form)


@pytest.mark.parametrize("form", SOURCE_FORMS)
def test_each_source_form_stores_the_files_bytes(db, samples, request, form):
    t = _photos(db)
    value, fileurl = _source(form, "rocket", samples, request)
    result = t.insert([{"image": value, "label": "rocket"}], progress=False)
    assert (result.rows_written, result.rows_with_errors) == (1, 0)

    images = t.select(t.image).collect()["image"]
    assert images.dtype == pl.Binary
    assert images.to_list() == [samples.data("rocket")]

    df = t.select(t.label, url=t.image.fileurl, path=t.image.localpath, w=t.image.width).collect()
    assert df.row(0, named=True)["url"] == fileurl
    assert df["w"].to_list() == [640]
    local = Path(df["path"][0])
    assert local.is_file()
    assert local.read_bytes() == samples.data("rocket")


def test_relative_path_is_recorded_as_absolute_file_uri(db, samples, monkeypatch):
    monkeypatch.chdir(samples.folder)
    t = _photos(db)
    t.insert([{"image": ROCKET, "label": "rocket"}], progress=False)
    df = t.select(t.image, url=t.image.fileurl).collect()
    assert df["url"][0] == samples.uri("rocket")
    assert df["url"][0].startswith("file:///")
    assert df["image"][0] == samples.data("rocket")


def test_localpath_of_a_local_source_is_that_file(db, samples):
    t = _photos(db)
    t.insert([{"image": str(samples.path("camera")), "label": "camera"}], progress=False)
    path = t.select(p=t.image.localpath).collect()["p"][0]
    assert Path(path).resolve() == samples.path("camera").resolve()


def test_pil_image_is_stored_losslessly_without_fileurl(db, samples):
    t = _photos(db)
    with Image.open(samples.path("astronaut")) as source:
        source.load()
        t.insert([{"image": source, "label": "astronaut"}], progress=False)
        expected = _pixels(source)
    df = t.select(t.image, url=t.image.fileurl, path=t.image.localpath, m=t.image.mode).collect()
    stored = df["image"][0]
    assert df.schema["image"] == pl.Binary
    assert stored.startswith(PNG_MAGIC)  # the PIL image came from a PNG
    assert np.array_equal(_pixels(_open(stored)), expected)
    assert df["url"][0] is None
    assert df["m"][0] == "RGB"
    assert Path(df["path"][0]).read_bytes() == stored


@pytest.mark.parametrize(("shape", "mode"), [((24, 40, 3), "RGB"), ((24, 40), "L")],
                         ids=["hw3", "hw"])
def test_numpy_uint8_array_is_stored_as_an_image(db, shape, mode):
    rng = np.random.default_rng(7)
    array = rng.integers(0, 256, size=shape, dtype=np.uint8)
    t = _photos(db)
    t.insert([{"image": array, "label": "noise"}], progress=False)
    df = t.select(t.image, url=t.image.fileurl, w=t.image.width, h=t.image.height,
                  m=t.image.mode).collect()
    row = df.row(0, named=True)
    assert (row["w"], row["h"], row["m"], row["url"]) == (40, 24, mode, None)
    assert np.array_equal(_pixels(_open(row["image"])), array)  # lossless (PNG)


def test_polars_dataframe_with_a_path_column(db, samples):
    t = _photos(db)
    frame = pl.DataFrame({"image": [str(samples.path("astronaut")), str(samples.path("rocket"))],
                          "label": ["astronaut", "rocket"]})
    result = t.insert(frame, progress=False)
    assert (result.rows_written, result.rows_with_errors) == (2, 0)
    df = t.select(t.label, t.image, url=t.image.fileurl).collect()
    assert _by_label(df, "image") == {"astronaut": samples.data("astronaut"),
                                      "rocket": samples.data("rocket")}
    assert _by_label(df, "url") == {"astronaut": samples.uri("astronaut"),
                                    "rocket": samples.uri("rocket")}


@pytest.mark.parametrize("binary_type", [pa.binary(), pa.large_binary()],
                         ids=["binary", "large_binary"])
def test_arrow_table_with_a_binary_column(db, samples, binary_type):
    t = _photos(db)
    table = pa.table({
        "image": pa.array([samples.data("camera"), None, samples.data("rocket")], binary_type),
        "label": ["camera", "none", "rocket"],
    })
    result = t.insert(table, progress=False)
    assert (result.rows_written, result.rows_with_errors) == (3, 0)
    df = t.select(t.label, t.image, url=t.image.fileurl).collect()
    assert _by_label(df, "image") == {"camera": samples.data("camera"), "none": None,
                                      "rocket": samples.data("rocket")}
    assert set(_by_label(df, "url").values()) == {None}


def test_arrow_struct_of_bytes_and_path_hugging_face_layout(db, samples):
    """{bytes, path}: the bytes when present (the path is then only a name), else the path."""
    t = _photos(db)
    hf_type = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
    column = pa.array([
        {"bytes": samples.data("astronaut"), "path": "astronaut.png"},
        {"bytes": None, "path": str(samples.path("rocket"))},
        None,
    ], hf_type)
    t.insert(pa.table({"image": column, "label": ["astronaut", "rocket", "none"]}),
             progress=False)
    df = t.select(t.label, t.image, url=t.image.fileurl, w=t.image.width).collect()
    assert _by_label(df, "image") == {"astronaut": samples.data("astronaut"),
                                      "rocket": samples.data("rocket"), "none": None}
    assert _by_label(df, "url") == {"astronaut": None, "rocket": samples.uri("rocket"),
                                    "none": None}
    assert _by_label(df, "w") == {"astronaut": 512, "rocket": 640, "none": None}


def test_one_insert_mixing_every_form(db, samples, request):
    t = _photos(db)
    rows, expected = [], {}
    for i, form in enumerate(SOURCE_FORMS):
        label = list(SAMPLES)[i % 3]
        value, _ = _source(form, label, samples, request)
        rows.append({"image": value, "label": form})
        expected[form] = samples.data(label)
    rows.append({"image": Image.open(samples.path("camera")), "label": "pil"})
    rows.append({"image": np.zeros((8, 8, 3), np.uint8), "label": "numpy"})
    rows.append({"image": None, "label": "null"})
    result = t.insert(rows, progress=False)
    assert (result.rows_written, result.rows_with_errors) == (len(rows), 0)
    df = t.select(t.label, t.image, w=t.image.width).collect()
    images = _by_label(df, "image")
    assert {form: images[form] for form in SOURCE_FORMS} == expected
    assert images["null"] is None
    assert {k: _by_label(df, "w")[k] for k in ("pil", "numpy", "null")} == {
        "pil": 512, "numpy": 8, "null": None}


# --------------------------------------------------------------------------------------------
# storage modes
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("source", ["path", "s3", "http"])
def test_reference_column_keeps_only_the_source_uri(db, lakehouse_root, samples, request,
                                                    source):
    t = _photos(db, lh.Image(store="reference"))
    t.add_computed_column(thumb=t.image.thumbnail((64, 64)), progress=False)
    if source == "path":
        value, uri = str(samples.path("rocket")), samples.uri("rocket")
    elif source == "s3":
        uri = value = request.getfixturevalue("s3_objects").put("media/rocket.jpg",
                                                                 samples.data("rocket"))
    else:
        uri = value = request.getfixturevalue("http_server").put("rocket.jpg",
                                                                  samples.data("rocket"))
    t.insert([{"image": value, "label": "rocket"},
              {"image": samples.data("camera"), "label": "camera"}],  # bytes: no source to keep
             progress=False)

    # the table holds no bytes for the referenced image, the in-memory value is stored
    order = t.select(t.label).collect()["label"].to_list()
    assert dict(zip(order, _raw_blob_is_null(t, lakehouse_root), strict=True)) == {
        "rocket": True, "camera": False}

    df = t.select(t.label, t.image, t.thumb, url=t.image.fileurl).collect()
    assert df.schema["image"] == pl.Binary
    assert _by_label(df, "image") == {"rocket": samples.data("rocket"),
                                      "camera": samples.data("camera")}
    assert _by_label(df, "url") == {"rocket": uri, "camera": None}
    thumbs = {k: _open(v) for k, v in _by_label(df, "thumb").items()}
    assert thumbs["rocket"].size == (64, 43)
    assert thumbs["rocket"].format == "JPEG"
    assert thumbs["camera"].size == (64, 64)
    assert t.where(t.image.width > 600).select(t.label).collect()["label"].to_list() == ["rocket"]


def test_reference_table_is_small_and_copy_table_holds_the_bytes(db, lakehouse_root, samples):
    labels = list(SAMPLES)
    ref = db.create_table("ref", {"image": lh.Image(store="reference"), "label": lh.String})
    copy = db.create_table("copy", {"image": lh.Image, "label": lh.String})
    for t in (ref, copy):
        t.insert([{"image": str(samples.path(k)), "label": k} for k in labels], progress=False)
    assert _raw_blob_is_null(ref, lakehouse_root) == [True, True, True]
    assert _raw_blob_is_null(copy, lakehouse_root) == [False, False, False]
    if lakehouse_root.storage_options is None:  # local: compare the bytes on disk
        total = sum(samples.path(k).stat().st_size for k in labels)

        def size(t: lh.Table) -> int:
            return sum(p.stat().st_size for p in Path(t.uri).rglob("*") if p.is_file())

        assert size(ref) < total / 10
        assert size(copy) > total
    for t in (ref, copy):
        df = t.select(t.label, t.image).collect()
        assert _by_label(df, "image") == {k: samples.data(k) for k in labels}


def test_reference_to_a_deleted_file_raises_media_error_naming_the_uri(db, samples):
    t = _photos(db, lh.Image(store="reference"))
    t.insert([{"image": str(samples.path("rocket")), "label": "rocket"}], progress=False)
    assert t.select(t.image).collect()["image"][0] == samples.data("rocket")
    samples.path("rocket").unlink()

    with pytest.raises(lh.MediaError) as info:
        t.select(t.image).collect()
    message = str(info.value)
    assert samples.uri("rocket") in message, message
    assert repr(TABLE) in message and "'image'" in message, message
    with pytest.raises(lh.MediaError, match=re.escape(samples.uri("rocket"))):
        t.select(w=t.image.width).collect()
    # what does not read the image still works
    assert t.count() == 1
    assert t.select(t.label, url=t.image.fileurl).collect().rows() == [
        ("rocket", samples.uri("rocket"))]


@pytest.mark.s3
def test_copy_table_on_s3_is_complete_without_the_source_files(s3_bucket, s3_env, samples,
                                                                run_python, tmp_path):
    """A table stored with store="copy" on S3 is usable from a machine that only has the
    bucket: the source files are gone and the reading process has an empty cache."""
    root = f"s3://{s3_bucket}/lh"
    options = {"aws_endpoint": s3_env, "aws_access_key_id": "testing",
               "aws_secret_access_key": "testing", "aws_region": "us-east-1",
               "allow_http": "true"}
    db = lh.connect(root, storage_options=options)
    t = _photos(db)
    t.add_computed_column(thumb=t.image.thumbnail((32, 32)), progress=False)
    t.insert([{"image": str(samples.path(k)), "label": k} for k in SAMPLES], progress=False)
    digests = {k: hashlib.sha256(samples.data(k)).hexdigest() for k in SAMPLES}
    shutil.rmtree(samples.folder)

    cwd = tmp_path / "fresh-machine"
    cwd.mkdir()
    proc = run_python("""
        import hashlib, json, os
        import lakehouse as lh
        db = lh.connect(os.environ["LH_TEST_ROOT"],
                        storage_options=json.loads(os.environ["LH_TEST_OPTIONS"]))
        t = db.get_table("photos")
        df = t.select(t.label, t.image, tw=t.thumb.width).collect()
        digests = {r["label"]: hashlib.sha256(r["image"]).hexdigest() for r in df.to_dicts()}
        result = t.add_computed_column(small=t.image.resize((20, 10)), progress=False)
        small = t.select(t.label, w=t.small.width, h=t.small.height, m=t.small.mode).collect()
        print(json.dumps({"digests": digests,
                          "thumb_widths": dict(zip(df["label"], df["tw"])),
                          "errors": result.rows_with_errors,
                          "small": {r["label"]: [r["w"], r["h"], r["m"]]
                                    for r in small.to_dicts()}}))
    """, cwd=cwd, env={"LH_TEST_ROOT": root, "LH_TEST_OPTIONS": json.dumps(options),
                       "LAKEHOUSE_CACHE": str(tmp_path / "fresh-cache")})
    assert proc.returncode == 0, f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["digests"] == digests
    assert out["thumb_widths"] == {"astronaut": 32, "camera": 32, "rocket": 32}
    assert out["errors"] == 0
    assert out["small"] == {"astronaut": [20, 10, "RGB"], "camera": [20, 10, "L"],
                            "rocket": [20, 10, "RGB"]}


# --------------------------------------------------------------------------------------------
# image functions
# --------------------------------------------------------------------------------------------

CROP_BOX = (10, 20, 110, 70)


def _check_image(data: bytes, source: Image.Image, *, size: tuple[int, int], mode: str,
                 fmt: str, same_as: Image.Image | None = None) -> None:
    image = _open(data)
    assert image.size == size
    assert image.mode == mode
    assert image.format == fmt
    assert data.startswith(PNG_MAGIC if fmt == "PNG" else JPEG_MAGIC)
    if same_as is not None and fmt == "PNG":  # lossless: the pixels are exactly Pillow's
        assert np.array_equal(_pixels(image), _pixels(same_as))


def _check_resize(value: Any, src: Image.Image) -> None:
    _check_image(value, src, size=(100, 50), mode=src.mode, fmt=src.format)


def _check_thumbnail(value: Any, src: Image.Image) -> None:
    expected = {(512, 512): (64, 64), (640, 427): (64, 43)}[src.size]
    _check_image(value, src, size=expected, mode=src.mode, fmt=src.format)


def _check_crop(value: Any, src: Image.Image) -> None:
    _check_image(value, src, size=(100, 50), mode=src.mode, fmt=src.format,
                 same_as=src.crop(CROP_BOX))


def _check_rotate(value: Any, src: Image.Image) -> None:
    _check_image(value, src, size=(src.height, src.width), mode=src.mode, fmt=src.format,
                 same_as=src.rotate(90, expand=True))


def _check_rotate_45(value: Any, src: Image.Image) -> None:
    expected = src.rotate(45, expand=True)
    assert expected.width > src.width  # expand keeps the corners
    _check_image(value, src, size=expected.size, mode=src.mode, fmt=src.format)


def _check_grey(value: Any, src: Image.Image) -> None:
    _check_image(value, src, size=src.size, mode="L", fmt=src.format, same_as=src.convert("L"))


def _check_rgba(value: Any, src: Image.Image) -> None:
    # JPEG cannot hold RGBA: the result is PNG whatever the input
    _check_image(value, src, size=src.size, mode="RGBA", fmt="PNG", same_as=src.convert("RGBA"))


def _check_b64(value: Any, src: Image.Image, data: bytes) -> None:
    decoded = base64.b64decode(value, validate=True)
    assert decoded == data
    assert _open(decoded).size == src.size


def _check_b64_png(value: Any, src: Image.Image) -> None:
    decoded = base64.b64decode(value, validate=True)
    assert decoded.startswith(PNG_MAGIC)
    _check_image(decoded, src, size=src.size, mode=src.mode, fmt="PNG", same_as=src)


def _check_metadata(value: Any, src: Image.Image) -> None:
    meta = json.loads(value) if isinstance(value, str) else value
    assert {k: meta[k] for k in ("format", "width", "height", "mode")} == {
        "format": src.format, "width": src.width, "height": src.height, "mode": src.mode}
    assert meta["exif"] == {}


def _check_attribute(name: str) -> Callable[[Any, Image.Image], None]:
    def check(value: Any, src: Image.Image) -> None:
        assert value == getattr(src, name)
    return check


# name -> (build the expression from the table, check one result against the source image)
FUNCTIONS: dict[str, tuple[Callable[[lh.Table], lh.Expr], Callable[..., None]]] = {
    "resize": (lambda t: t.image.resize((100, 50)), _check_resize),
    "thumbnail": (lambda t: t.image.thumbnail((64, 64)), _check_thumbnail),
    "crop": (lambda t: t.image.crop(CROP_BOX), _check_crop),
    "rotate": (lambda t: t.image.rotate(90), _check_rotate),
    "rotate45": (lambda t: t.image.rotate(45, expand=True), _check_rotate_45),
    "grey": (lambda t: t.image.convert("L"), _check_grey),
    "rgba": (lambda t: t.image.convert("RGBA"), _check_rgba),
    "w": (lambda t: t.image.width, _check_attribute("width")),
    "h": (lambda t: t.image.height, _check_attribute("height")),
    "m": (lambda t: t.image.mode, _check_attribute("mode")),
    "b64": (lambda t: t.image.b64_encode(), _check_b64),
    "b64png": (lambda t: t.image.b64_encode(format="png"), _check_b64_png),
    "meta": (lambda t: t.image.metadata(), _check_metadata),
}


@pytest.mark.parametrize("where", ["insert", "backfill", "select"])
def test_image_functions(db, samples, where):
    """Every function, as a computed column computed on insert, as one added to existing rows
    (backfill), and in select() at query time, on a PNG (RGB), a PNG (L) and a JPEG."""
    t = _photos(db)
    rows = [{"image": str(samples.path(k)), "label": k} for k in SAMPLES]
    if where == "insert":
        for name, (build, _) in FUNCTIONS.items():
            t.add_computed_column(progress=False, **{name: build(t)})
        t.insert(rows, progress=False)
    else:
        t.insert(rows, progress=False)
    if where == "backfill":
        for name, (build, _) in FUNCTIONS.items():
            result = t.add_computed_column(progress=False, **{name: build(t)})
            assert (result.rows_written, result.rows_with_errors) == (3, 0)
    if where == "select":
        df = t.select(t.label, **{name: build(t) for name, (build, _) in FUNCTIONS.items()}) \
            .collect()
    else:
        df = t.select(t.label, *[t[name] for name in FUNCTIONS]).collect()
    media_outputs = ["resize", "thumbnail", "crop", "rotate", "rotate45", "grey", "rgba"]
    assert all(df.schema[name] == pl.Binary for name in media_outputs)
    assert df.schema["w"] == pl.Int64 and df.schema["m"] == pl.String
    assert sorted(df["label"].to_list()) == sorted(SAMPLES)
    for row in df.to_dicts():
        label = row["label"]
        src = _open(samples.data(label))
        assert (src.width, src.height, src.mode, src.format) == SAMPLES[label]
        for name, (_, check) in FUNCTIONS.items():
            try:
                if name == "b64":
                    check(row[name], src, samples.data(label))
                else:
                    check(row[name], src)
            except AssertionError as exc:
                raise AssertionError(f"{name} of {label}: {exc}") from exc


def test_output_format_follows_the_input(db, samples):
    t = _photos(db)
    t.insert([{"image": str(samples.path(k)), "label": k} for k in ("astronaut", "rocket")],
             progress=False)
    t.add_computed_column(small=t.image.resize((32, 32)), progress=False)
    t.add_computed_column(rgba=t.image.convert("RGBA"), progress=False)
    df = t.select(t.label, t.small, t.rgba, sm=t.small.metadata(), rm=t.rgba.metadata(),
                  q=t.image.rotate(180).convert("RGBA").width).collect()
    fmt = {k: _open(v).format for k, v in _by_label(df, "small").items()}
    assert fmt == {"astronaut": "PNG", "rocket": "JPEG"}
    fmt = {k: _open(v).format for k, v in _by_label(df, "rgba").items()}
    assert fmt == {"astronaut": "PNG", "rocket": "PNG"}
    assert {k: json.loads(v)["format"] for k, v in _by_label(df, "sm").items()} == {
        "astronaut": "PNG", "rocket": "JPEG"}
    assert {k: json.loads(v)["mode"] for k, v in _by_label(df, "rm").items()} == {
        "astronaut": "RGBA", "rocket": "RGBA"}
    assert _by_label(df, "q") == {"astronaut": 512, "rocket": 640}  # functions chain


def test_image_functions_in_where(db, samples):
    t = _photos(db)
    t.insert([{"image": str(samples.path(k)), "label": k} for k in SAMPLES]
             + [{"image": np.zeros((16, 32, 3), np.uint8), "label": "tiny"},
                {"image": None, "label": "none"}], progress=False)
    t.add_computed_column(thumb=t.image.thumbnail((64, 64)), progress=False)

    def labels(query: lh.Query) -> list[str]:
        return sorted(query.select(t.label).collect()["label"].to_list())

    assert labels(t.where(t.image.width > 500)) == ["astronaut", "camera", "rocket"]
    assert labels(t.where(t.image.width > 600)) == ["rocket"]
    assert labels(t.where(t.image.mode == "L")) == ["camera"]
    assert labels(t.where((t.image.height < 500) & (t.label != "tiny"))) == ["rocket"]
    assert labels(t.where(t.thumb.height < 64)) == ["rocket", "tiny"]
    assert labels(t.where(t.image.is_null())) == ["none"]
    assert t.where(t.image.width > 500).count() == 3
    df = t.where(t.image.width < 100).select(t.label, t.thumb, w=t.image.width).collect()
    assert df["label"].to_list() == ["tiny"]
    assert _open(df["thumb"][0]).size == (32, 16)  # a thumbnail never enlarges
    assert labels(t.where(t.image.width > 500).order_by(t.image.height).limit(1)) == ["rocket"]


def test_exif_and_metadata_of_a_jpeg_with_exif(db):
    exif = Image.Exif()
    exif[0x010F] = "LakehouseCam"  # Make
    exif[0x0110] = "Model 1"  # Model
    buffer = io.BytesIO()
    Image.new("RGB", (30, 20), (200, 10, 10)).save(buffer, format="JPEG", exif=exif.tobytes())
    t = _photos(db)
    t.add_computed_column(meta=t.image.metadata(), progress=False)
    t.insert([{"image": buffer.getvalue(), "label": "cam"}], progress=False)
    df = t.select(t.meta, x=t.image.exif()).collect()
    meta = json.loads(df["meta"][0])
    assert {k: meta[k] for k in ("format", "width", "height", "mode")} == {
        "format": "JPEG", "width": 30, "height": 20, "mode": "RGB"}
    tags = json.loads(df["x"][0])
    assert tags["Make"] == "LakehouseCam"
    assert tags["Model"] == "Model 1"
    assert meta["exif"]["Make"] == "LakehouseCam"
    assert t.where(t.image.exif()["Make"] == "LakehouseCam").count() == 1


def test_unknown_method_and_expression_options_are_refused(db):
    t = _photos(db)
    with pytest.raises(AttributeError, match="resize"):
        t.image.no_such_method()  # noqa: B018 - the attribute access raises
    with pytest.raises(lh.TypeMismatchError):
        t.image.resize(t.label)


# --------------------------------------------------------------------------------------------
# constrained image types
# --------------------------------------------------------------------------------------------


def test_constrained_image_type_accepts_matching_images(db, samples):
    t = _photos(db, lh.Image[(512, 512), "RGB"])
    shown = t.describe().row(0, named=True)["type"]  # the constraint is visible
    assert "512" in shown and "RGB" in shown, shown
    t.insert([{"image": str(samples.path("astronaut")), "label": "astronaut"}], progress=False)
    assert t.select(t.image).collect()["image"].to_list() == [samples.data("astronaut")]


@pytest.mark.parametrize(("label", "reason"), [("camera", "mode"), ("rocket", "640x427")])
def test_constrained_image_type_rejects_the_wrong_mode_or_size(db, samples, label, reason):
    t = _photos(db, lh.Image[(512, 512), "RGB"])
    t.insert([{"image": str(samples.path("astronaut")), "label": "astronaut"}], progress=False)
    version, count = t.version, t.count()
    rows = [{"image": str(samples.path("astronaut")), "label": "ok"},
            {"image": str(samples.path(label)), "label": label}]
    with pytest.raises(lh.MediaError) as info:
        t.insert(rows, progress=False)
    _assert_names(str(info.value), row=1, source=samples.uri(label))
    assert reason in str(info.value)
    assert (t.version, t.count()) == (version, count)

    result = t.insert(rows, on_error="ignore", progress=False)
    assert (result.rows_written, result.rows_with_errors) == (2, 1)
    df = t.where(t.image.errortype.is_not_null()).select(
        t.label, t.image, t.image.errortype, t.image.errormsg).collect()
    assert df["label"].to_list() == [label]
    assert df["image"].to_list() == [None]
    assert df.row(0)[2] == "InvalidImage"
    assert reason in df.row(0)[3]


def test_constraint_survives_reopening(db, lakehouse_root, samples):
    _photos(db, lh.Image[(512, 512), "RGB"])
    db2 = lh.connect(lakehouse_root.uri, storage_options=lakehouse_root.storage_options)
    t = db2.get_table(TABLE)
    with pytest.raises(lh.MediaError, match="mode"):
        t.insert([{"image": str(samples.path("camera")), "label": "camera"}], progress=False)


# --------------------------------------------------------------------------------------------
# errors
# --------------------------------------------------------------------------------------------

ERROR_CASES = ["missing_file", "truncated_jpeg", "random_bytes_file", "random_bytes",
               "ftp_uri", "http_closed_port", "http_404", "s3_missing_key", "int_value"]


@dataclasses.dataclass(frozen=True)
class BadValue:
    value: Any
    source: str  # what the message must name
    errortype: str | tuple[str, ...]  # the recorded errortype (or the accepted ones)


def _bad_value(case: str, samples: Samples, tmp_path: Path,
               request: pytest.FixtureRequest) -> BadValue:
    rocket = samples.data("rocket")
    noise = np.random.default_rng(3).integers(0, 256, size=5000, dtype=np.uint8).tobytes()
    if case == "missing_file":
        path = tmp_path / "no-such-photo.png"
        return BadValue(str(path), path.as_uri(), "SourceNotFound")
    if case == "truncated_jpeg":
        path = tmp_path / "half.jpg"
        path.write_bytes(rocket[:len(rocket) // 2])
        return BadValue(str(path), path.as_uri(), "InvalidImage")
    if case == "random_bytes_file":
        path = tmp_path / "noise.png"
        path.write_bytes(noise)
        return BadValue(path, path.as_uri(), "InvalidImage")
    if case == "random_bytes":
        return BadValue(noise, "bytes", "InvalidImage")
    if case == "ftp_uri":
        return BadValue("ftp://127.0.0.1/photo.png", "ftp://127.0.0.1/photo.png",
                        "UnsupportedSource")
    if case == "http_closed_port":
        url = f"http://127.0.0.1:{_closed_port()}/photo.png"
        return BadValue(url, url, "SourceUnreachable")
    if case == "http_404":
        url = request.getfixturevalue("http_server").url + "/missing.png"
        return BadValue(url, url, ("SourceNotFound", "SourceUnreachable"))
    if case == "s3_missing_key":
        bucket = request.getfixturevalue("s3_objects").bucket
        uri = f"s3://{bucket}/media/missing.png"
        return BadValue(uri, uri, "SourceNotFound")
    if case == "int_value":
        return BadValue(42, "int", "TypeMismatch")
    raise AssertionError(case)


@pytest.mark.parametrize("case", ERROR_CASES)
def test_bad_value_aborts_the_insert_naming_table_column_row_and_source(
        db, samples, tmp_path, request, case):
    bad = _bad_value(case, samples, tmp_path, request)
    t = _photos(db)
    t.add_computed_column(thumb=t.image.thumbnail((32, 32)), progress=False)
    t.insert([{"image": str(samples.path("camera")), "label": "camera"}], progress=False)
    version, count = t.version, t.count()

    rows = [{"image": str(samples.path("astronaut")), "label": "good"},
            {"image": bad.value, "label": "bad"},
            {"image": samples.data("rocket"), "label": "good too"}]
    with pytest.raises(lh.MediaError) as info:
        t.insert(rows, progress=False)
    _assert_names(str(info.value), row=1, source=bad.source)
    assert (t.version, t.count()) == (version, count)
    assert t.select(t.label).collect()["label"].to_list() == ["camera"]


@pytest.mark.parametrize("case", ERROR_CASES)
def test_bad_value_with_on_error_ignore_is_kept_with_its_error(db, samples, tmp_path, request,
                                                               case):
    bad = _bad_value(case, samples, tmp_path, request)
    t = _photos(db)
    t.add_computed_column(thumb=t.image.thumbnail((32, 32)), progress=False)
    rows = [{"image": str(samples.path("astronaut")), "label": "good"},
            {"image": bad.value, "label": "bad"},
            {"image": samples.data("rocket"), "label": "good too"}]
    result = t.insert(rows, on_error="ignore", progress=False)
    assert (result.rows_written, result.rows_with_errors) == (3, 1)
    assert result.version == t.version
    assert t.count() == 3

    errors = t.where(t.image.errortype != None).select(  # noqa: E711 - an expression
        t.label, t.image.errortype, t.image.errormsg).collect()
    assert errors["label"].to_list() == ["bad"]
    errortype, errormsg = errors.row(0)[1:]
    assert errortype in (bad.errortype if isinstance(bad.errortype, tuple) else (bad.errortype,))
    assert bad.source in errormsg

    df = t.select(t.label, t.image, t.thumb, t.image.errortype).collect()
    images, thumbs = _by_label(df, "image"), _by_label(df, "thumb")
    assert images == {"good": samples.data("astronaut"), "bad": None,
                      "good too": samples.data("rocket")}
    assert thumbs["bad"] is None
    assert _open(thumbs["good"]).size == (32, 32)
    assert _open(thumbs["good too"]).size == (32, 21)
    assert t.where(t.image.errortype.is_null()).count() == 2


def test_null_in_a_required_image_column_is_refused(db, samples):
    t = db.create_table(TABLE, {"image": lh.Required(lh.Image), "label": lh.String})
    t.insert([{"image": str(samples.path("camera")), "label": "camera"}], progress=False)
    version, count = t.version, t.count()
    for rows in ([{"image": str(samples.path("rocket")), "label": "r"}, {"image": None}],
                 [{"image": str(samples.path("rocket")), "label": "r"}, {"label": "no image"}]):
        with pytest.raises(lh.TypeMismatchError) as info:
            t.insert(rows, progress=False)
        message = str(info.value)
        assert repr(TABLE) in message and "'image'" in message and _has_row(message, 1), message
        assert "null" in message or "required" in message, message
        assert (t.version, t.count()) == (version, count)
    # a null is not a media error that on_error="ignore" could keep
    with pytest.raises(lh.TypeMismatchError):
        t.insert([{"image": None, "label": "n"}], on_error="ignore", progress=False)
    assert (t.version, t.count()) == (version, count)


@pytest.mark.parametrize("bad_rows", [(100, 270), (258, 280), (255, 256)],
                         ids=["first-chunk", "second-chunk", "chunk-edge"])
@pytest.mark.parametrize("input_form", ["dicts", "polars"])
def test_large_insert_names_the_right_row(db, bad_rows, input_form):
    """320 rows cross the 256-row chunk in which media are loaded: the row number in the error
    counts from the start of the insert, and ignore keeps exactly the bad rows."""
    n = 320
    good = _png(np.full((6, 9, 3), 90, np.uint8))
    values = [b"not an image at all" if i in bad_rows else good for i in range(n)]
    t = db.create_table(TABLE, {"image": lh.Image, "n": lh.Int})
    t.add_computed_column(thumb=t.image.thumbnail((4, 4)), progress=False)
    data: Any = [{"image": v, "n": i} for i, v in enumerate(values)]
    if input_form == "polars":
        data = pl.DataFrame({"image": values, "n": list(range(n))},
                            schema={"image": pl.Binary, "n": pl.Int64})
    version = t.version
    with pytest.raises(lh.MediaError) as info:
        t.insert(data, progress=False)
    message = str(info.value)
    assert _has_row(message, bad_rows[0]), message
    assert not _has_row(message, bad_rows[1]), message
    assert (t.version, t.count()) == (version, 0)

    result = t.insert(data, on_error="ignore", progress=False)
    assert (result.rows_written, result.rows_with_errors) == (n, 2)
    assert t.count() == n
    bad = t.where(t.image.errortype != None).select(t.n, t.thumb).collect()  # noqa: E711
    assert sorted(bad["n"].to_list()) == list(bad_rows)
    assert bad["thumb"].to_list() == [None, None]
    assert t.where(t.thumb.is_not_null()).count() == n - 2
    assert t.where(t.n == 300).select(t.image).collect()["image"].to_list() == [good]


# --------------------------------------------------------------------------------------------
# update and backfill
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("store", ["copy", "reference"])
def test_update_of_another_column_keeps_images_and_thumbnails(db, lakehouse_root, samples,
                                                              store):
    t = _photos(db, lh.Image(store=store))
    t.add_computed_column(thumb=t.image.thumbnail((40, 40)), progress=False)
    t.insert([{"image": str(samples.path(k)), "label": k} for k in SAMPLES]
             + [{"image": np.full((5, 5), 7, np.uint8), "label": "array"}], progress=False)
    before = t.select(t.label, t.image, t.thumb, url=t.image.fileurl).collect()

    result = t.update({"label": "x"}, where=t.label == "rocket", progress=False)
    assert result.rows_written == 1
    result = t.update({"label": "y"}, where=t.image.width < 100, progress=False)
    assert result.rows_written == 1

    after = t.select(t.label, t.image, t.thumb, url=t.image.fileurl).collect()
    assert sorted(after["label"].to_list()) == ["astronaut", "camera", "x", "y"]
    renamed = {"rocket": "x", "array": "y"}
    for row in before.to_dicts():
        new = after.filter(pl.col("label") == renamed.get(row["label"], row["label"])).to_dicts()
        assert len(new) == 1
        assert new[0]["image"] == row["image"], row["label"]
        assert new[0]["thumb"] == row["thumb"], row["label"]
        assert new[0]["url"] == row["url"], row["label"]
    assert _by_label(after, "image")["x"] == samples.data("rocket")
    if store == "reference":  # still only the URIs of the path sources
        nulls = _raw_blob_is_null(t, lakehouse_root)
        assert sorted(nulls) == [False, True, True, True]


def test_update_sets_a_new_image_and_recomputes_its_thumbnail(db, samples):
    t = _photos(db)
    t.add_computed_column(thumb=t.image.thumbnail((64, 64)), progress=False)
    t.insert([{"image": str(samples.path("astronaut")), "label": "a"}], progress=False)
    t.update({"image": str(samples.path("rocket"))}, where=t.label == "a", progress=False)
    df = t.select(t.image, t.thumb, url=t.image.fileurl).collect()
    assert df["image"][0] == samples.data("rocket")
    assert df["url"][0] == samples.uri("rocket")
    assert _open(df["thumb"][0]).size == (64, 43)
    with pytest.raises(lh.MediaError):
        t.update({"image": str(samples.folder / "missing.png")}, where=t.label == "a",
                 progress=False)
    assert t.select(t.image).collect()["image"][0] == samples.data("rocket")


@pytest.mark.parametrize("store", ["copy", "reference"])
def test_backfill_computed_columns_on_a_table_with_images(db, samples, store):
    t = _photos(db, lh.Image(store=store))
    t.insert([{"image": str(samples.path(k)), "label": k} for k in SAMPLES]
             + [{"image": None, "label": "none"}], progress=False)
    version = t.version
    result = t.add_computed_column(thumb=t.image.thumbnail((50, 50)), progress=False)
    assert (result.rows_written, result.rows_with_errors) == (4, 0)
    assert t.version == version + 1
    sizes = {k: (None if v is None else _open(v).size)
             for k, v in _by_label(t.select(t.label, t.thumb).collect(), "thumb").items()}
    assert sizes == {"astronaut": (50, 50), "camera": (50, 50), "rocket": (50, 33),
                     "none": None}
    # later inserts compute it too
    t.insert([{"image": samples.data("rocket"), "label": "again"}], progress=False)
    assert _by_label(t.select(t.label, w=t.thumb.width).collect(), "w")["again"] == 50


def test_backfill_with_a_failing_udf_and_on_error_ignore(db, samples):
    t = _photos(db)
    t.insert([{"image": str(samples.path("astronaut")), "label": "astronaut"},
              {"image": str(samples.path("rocket")), "label": "bad"},
              {"image": str(samples.path("camera")), "label": "camera"},
              {"image": None, "label": "none"}], progress=False)
    version = t.version
    with pytest.raises(lh.ComputeError) as info:
        t.add_computed_column(px=MU.pixels_unless_bad(t.image, t.label), progress=False)
    assert "px" in str(info.value) and _has_row(str(info.value), 1), str(info.value)
    assert (t.version, t.columns()) == (version, ["image", "label"])

    result = t.add_computed_column(px=MU.pixels_unless_bad(t.image, t.label),
                                   on_error="ignore", progress=False)
    assert (result.rows_written, result.rows_with_errors) == (4, 1)
    result = t.add_computed_column(mirrored=MU.mirror_unless_bad(t.image, t.label),
                                   on_error="ignore", progress=False)
    assert result.rows_with_errors == 1

    df = t.select(t.label, t.px, t.mirrored, pe=t.px.errortype, pm=t.px.errormsg,
                  me=t.mirrored.errortype, w=t.mirrored.width).collect()
    assert _by_label(df, "px") == {"astronaut": 512 * 512, "bad": None, "camera": 512 * 512,
                                   "none": None}
    errors = {k: v for k, v in _by_label(df, "pe").items() if v is not None}
    assert list(errors) == ["bad"]
    assert "refusing" in _by_label(df, "pm")["bad"]
    assert [k for k, v in _by_label(df, "me").items() if v is not None] == ["bad"]
    assert df.schema["mirrored"] == pl.Binary
    mirrored = _by_label(df, "mirrored")
    assert mirrored["bad"] is None and mirrored["none"] is None
    with Image.open(samples.path("astronaut")) as src:
        assert np.array_equal(_pixels(_open(mirrored["astronaut"])),
                              _pixels(ImageOps.mirror(src)))
    assert _by_label(df, "w")["camera"] == 512
    # the stored images were not touched by the backfills
    images = _by_label(t.select(t.label, t.image).collect(), "image")
    assert images["bad"] == samples.data("rocket")


# --------------------------------------------------------------------------------------------
# other processes
# --------------------------------------------------------------------------------------------


def test_reopened_in_a_fresh_process_knows_media_columns(db, lakehouse_root, samples,
                                                         run_python, tmp_path):
    t = _photos(db)
    t.add_computed_column(thumb=t.image.thumbnail((48, 48)), progress=False)
    t.add_computed_column(px=MU.pixels_unless_bad(t.image, t.label), on_error="ignore",
                          progress=False)
    t.insert([{"image": str(samples.path("astronaut")), "label": "astronaut"}], progress=False)

    cwd = tmp_path / "child-cwd"
    cwd.mkdir()
    proc = run_python("""
        import json, os, sys
        import lakehouse as lh
        db = lh.connect(os.environ["LH_TEST_ROOT"],
                        storage_options=json.loads(os.environ["LH_TEST_OPTIONS"]))
        t = db.get_table("photos")
        types = dict(zip(t.describe()["column"], t.describe()["type"]))
        result = t.insert([{"image": sys.argv[1], "label": "rocket"},
                           {"image": sys.argv[2], "label": "bad"}], progress=False)
        df = t.select(t.label, url=t.image.fileurl, tw=t.thumb.width, th=t.thumb.height,
                      px=t.px, w=t.image.width).collect()
        print(json.dumps({"types": types, "errors": result.rows_with_errors,
                          "rows": {r["label"]: r for r in df.to_dicts()}}))
    """, cwd=cwd, args=[str(samples.path("rocket")), str(samples.path("camera"))],
        env={"LH_TEST_ROOT": lakehouse_root.uri,
             "LH_TEST_OPTIONS": json.dumps(lakehouse_root.storage_options),
             "PYTHONPATH": TESTS_DIR})
    assert proc.returncode == 0, f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["types"] == {"image": "Image", "label": "String", "thumb": "Image", "px": "Int"}
    assert out["errors"] == 1
    rows = out["rows"]
    assert rows["rocket"] == {"label": "rocket", "url": samples.uri("rocket"), "tw": 48,
                              "th": 32, "px": 640 * 427, "w": 640}
    assert rows["astronaut"]["tw"] == 48
    assert rows["bad"]["px"] is None and rows["bad"]["tw"] == 48
    # and this process reads what the other one wrote
    thumbs = _by_label(t.select(t.label, t.thumb).collect(), "thumb")
    assert _open(thumbs["rocket"]).size == (48, 32)

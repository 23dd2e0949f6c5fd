"""How media come back: bytes in Polars, PIL images in one call, thumbnails in notebooks, lazy
file objects, and scan() leaving media out."""

from __future__ import annotations

import base64
import io

import polars as pl
import pytest
from media_samples import ASTRONAUT, CAMERA, ROCKET, image_path
from PIL import Image

import lakehouse as lh


@pytest.fixture
def photos(db):
    t = db.create_table("photos", {"image": lh.Image, "title": lh.String})
    t.add_computed_column(thumb=t.image.thumbnail((32, 32)), progress=False)
    t.insert([{"image": str(image_path(name)), "title": name}
              for name in (ASTRONAUT, CAMERA, ROCKET)], progress=False)
    t.insert([{"image": None, "title": "<b>no image</b> & more"}], progress=False)
    return t


def test_query_results_hold_encoded_bytes_and_to_pil_opens_them(photos) -> None:
    frame = photos.order_by(photos.title).select(photos.title, photos.image).collect()
    assert frame.schema["image"] == pl.Binary
    assert frame["image"][0] is None  # the row without an image sorts first ("<b>...")
    assert frame["image"][1] == image_path(ASTRONAUT).read_bytes()
    images = lh.to_pil(frame["image"])
    assert images[0] is None
    assert [im.size for im in images[1:]] == [(512, 512), (512, 512), (640, 427)]
    assert lh.to_pil(frame["image"][3]).format == "JPEG"  # one value -> one image
    assert lh.to_pil(None) is None


def _img_tags(html: str) -> list[bytes]:
    found = []
    for part in html.split("<img src='data:image/png;base64,")[1:]:
        found.append(base64.b64decode(part.split("'", 1)[0]))
    return found


def test_a_query_renders_as_html_with_thumbnails_and_escaped_text(photos) -> None:
    query = photos.order_by(photos.title).select(photos.title, photos.thumb)
    html = query._repr_html_()
    thumbs = _img_tags(html)
    assert len(thumbs) == 3  # the null row shows "null", not an image
    for data in thumbs:
        image = Image.open(io.BytesIO(data))
        assert max(image.size) <= 128
    assert "&lt;b&gt;no image&lt;/b&gt; &amp; more" in html
    assert "<b>no image</b>" not in html
    assert "<i>null</i>" in html
    assert "4 rows × 2 columns" in html
    assert len(_img_tags(photos._repr_html_())) == 6  # image and thumb, three rows each


def test_show_limits_rows_and_shows_other_media_as_a_size(photos, db) -> None:
    shown = photos.show(2)
    assert shown.frame.height == 2
    assert "2 rows" in shown._repr_html_()
    docs = db.create_table("docs", {"doc": lh.Document})
    docs.insert([{"doc": b"# Title\n\nSome text."}], progress=False)
    html = docs.show()._repr_html_()
    assert "<i>document, 19 bytes</i>" in html


def test_lh_show_finds_image_columns_in_any_frame(photos) -> None:
    frame = photos.select(photos.title, photos.thumb).collect()
    shown = lh.show(frame)
    assert shown.media == {"thumb": "image"}
    assert len(_img_tags(shown._repr_html_())) == 3
    plain = lh.show(pl.DataFrame({"b": [b"not an image"]}))
    assert plain.media == {}


def test_blob_files_are_lazy_seekable_files_in_row_order(photos) -> None:
    files = photos.blob_files("image", where=photos.title != ASTRONAUT)
    assert len(files) == 3
    expected = [image_path(CAMERA).read_bytes(), image_path(ROCKET).read_bytes(), None]
    for f, want in zip(files, expected, strict=True):
        if want is None:
            assert f is None
            continue
        f.seek(len(want) - 16)
        assert f.read() == want[-16:]  # a ranged read from the end
        f.seek(0)
        assert f.read(4) == want[:4]


def test_blob_files_of_reference_columns_open_the_source(db, tmp_path) -> None:
    t = db.create_table("refs", {"image": lh.Image(store="reference")})
    source = tmp_path / "a.jpg"
    source.write_bytes(image_path(ROCKET).read_bytes())
    t.insert([{"image": str(source)}], progress=False)
    (f,) = t.blob_files("image")
    assert f.read() == source.read_bytes()
    with pytest.raises(lh.TypeMismatchError, match="not a media column"):
        db.create_table("plain", {"n": lh.Int}).blob_files("n")


def test_scan_leaves_media_out_and_refuses_to_read_them(photos) -> None:
    lazy = photos.scan()
    assert lazy.collect_schema().names() == ["title"]
    assert sorted(lazy.collect()["title"].to_list())[-1] == ROCKET
    with pytest.raises(lh.UnsupportedError, match="use collect"):
        photos.select(photos.thumb).scan()
    with pytest.raises(lh.UnsupportedError, match="use collect"):
        photos.select(w=photos.image.width).scan()


def test_update_of_a_media_column_with_a_bad_value_changes_nothing(photos, tmp_path) -> None:
    version = photos.version
    written = r"cannot read .*missing\.jpg.*\(nothing was written\)$"
    with pytest.raises(lh.MediaError, match=written):
        photos.update({"image": str(tmp_path / "missing.jpg")}, where=photos.title == CAMERA,
                      progress=False)
    assert photos.version == version
    photos.update({"image": image_path(ROCKET).read_bytes()}, where=photos.title == CAMERA,
                  progress=False)
    row = photos.where(photos.title == CAMERA).select(photos.thumb, photos.image.fileurl).collect()
    assert lh.to_pil(row["thumb"][0]).size == (32, 21)  # the thumbnail follows the new image
    assert row["fileurl"][0] is None

"""Bulk ingest: insert_files from folders, globs, lists and S3 prefixes; import_parquet (the
Hugging Face image layout, local and S3), import_csv and create_table(source=...). Each call is
one insert (one version); a failed import leaves no table behind."""

from __future__ import annotations

import datetime as dt
import gzip
import importlib.util
import io
import json
import shutil
from decimal import Decimal
from pathlib import Path

import boto3
import pandas as pd
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

import lakehouse as lh
from lakehouse.exec.intake import is_list_type, is_pandas_frame
from lakehouse.ingest import expand_sources, lh_type, parent_folder

S3_OPTIONS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing",
              "aws_region": "us-east-1", "allow_http": "true"}

# label folder -> sample images copied into it
LAYOUT = {
    "cat": ["horse.png", "moon.png"],
    "space": ["rocket.jpg"],
    "gray": ["coins.png", "text.png", "camera.png"],
}
N_IMAGES = sum(len(v) for v in LAYOUT.values())


def _skimage_data() -> Path:
    spec = importlib.util.find_spec("skimage")
    assert spec is not None and spec.origin is not None, "scikit-image (test extra) is missing"
    return Path(spec.origin).parent / "data"


def _size(path: Path) -> tuple[int, int]:
    with Image.open(path) as image:
        return image.size


@pytest.fixture
def photos(tmp_path: Path) -> Path:
    """photos/<label>/<image>, plus files that are not images and a hidden one."""
    root = tmp_path / "photos"
    for label, names in LAYOUT.items():
        (root / label).mkdir(parents=True)
        for name in names:
            shutil.copy(_skimage_data() / name, root / label / name)
    (root / "notes.txt").write_text("not an image")
    (root / "gray" / "README.md").write_text("# gray images")
    (root / ".thumbs").mkdir()
    shutil.copy(_skimage_data() / "horse.png", root / ".thumbs" / "horse.png")
    return root


def _labels(t: lh.Table) -> dict[str, str]:
    df = t.select(t.label, url=t.image.fileurl).collect()
    return {u.rsplit("/", 1)[-1]: label for u, label in zip(df["url"], df["label"], strict=True)}


def _image_table(db: lh.Catalog, name: str = "photos") -> lh.Table:
    return db.create_table(name, {"image": lh.Image, "label": lh.String})


def _label(uri: str) -> dict[str, str]:
    return {"label": parent_folder(uri)}


def _operations(t: lh.Table) -> list[str]:
    return t.history(limit=None)["operation"].to_list()[::-1]  # oldest first


def _s3_client(endpoint: str):
    return boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                        aws_access_key_id="testing", aws_secret_access_key="testing")


def _s3_db(bucket: str, endpoint: str) -> lh.Catalog:
    return lh.connect(f"s3://{bucket}/lh", storage_options={**S3_OPTIONS, "aws_endpoint": endpoint})


# --------------------------------------------------------------------------------------------
# insert_files
# --------------------------------------------------------------------------------------------


def test_insert_files_from_a_folder_with_labels_from_folders(db, photos: Path) -> None:
    t = _image_table(db)
    result = t.insert_files(photos, extra=_label, progress=False)
    assert (result.rows_written, result.rows_with_errors) == (N_IMAGES, 0)
    assert t.count() == N_IMAGES
    expected = {name: label for label, names in LAYOUT.items() for name in names}
    assert _labels(t) == expected  # notes.txt, README.md and the hidden folder are skipped
    assert _operations(t) == ["create", "insert"]  # one commit
    widths = t.select(width=t.image.width, url=t.image.fileurl).collect()
    for url, width in zip(widths["url"], widths["width"], strict=True):
        path = Path(url.removeprefix("file://"))
        assert width == _size(path)[0]
        assert path.is_relative_to(photos)


def test_insert_files_from_globs(db, photos: Path) -> None:
    t = _image_table(db)
    t.insert_files(str(photos / "**" / "*.png"), extra=_label, progress=False)
    assert sorted(_labels(t)) == sorted(n for names in LAYOUT.values() for n in names
                                        if n.endswith(".png"))
    t2 = _image_table(db, "jpgs")
    t2.insert_files(str(photos / "*" / "*.jpg"), extra=_label, progress=False)
    assert _labels(t2) == {"rocket.jpg": "space"}


def test_insert_files_from_a_list_without_duplicates(db, photos: Path) -> None:
    t = _image_table(db)
    sources = [photos / "cat", str(photos / "cat" / "horse.png"), f"{photos}/space/*.jpg",
               (photos / "gray" / "coins.png").as_uri()]
    result = t.insert_files(sources, extra=_label, progress=False)
    assert result.rows_written == 4
    assert _labels(t) == {"horse.png": "cat", "moon.png": "cat", "rocket.jpg": "space",
                          "coins.png": "gray"}


def test_insert_files_options(db, photos: Path) -> None:
    shutil.copy(_skimage_data() / "rocket.jpg", photos / "top.jpg")
    t = _image_table(db)
    assert t.insert_files(photos, recursive=False, progress=False).rows_written == 1
    assert t.insert_files(photos, extensions=[".JPG"], progress=False).rows_written == 2
    # an explicitly named file is taken whatever its extension
    t2 = db.create_table("docs", {"doc": lh.Document})
    assert expand_sources(photos, extensions=["md"]) == [str(photos / "gray" / "README.md")]
    assert expand_sources([photos / "notes.txt"], extensions=["md"]) == [str(photos / "notes.txt")]
    with pytest.raises(lh.MediaError, match="no document files found"):
        t2.insert_files(photos / "space", progress=False)


def test_a_corrupt_file_aborts_or_is_kept_with_its_error(db, photos: Path) -> None:
    data = (_skimage_data() / "rocket.jpg").read_bytes()
    (photos / "space" / "broken.jpg").write_bytes(data[:300])
    t = _image_table(db)
    t.insert([{"image": str(photos / "cat" / "horse.png"), "label": "before"}], progress=False)
    version = t.version
    with pytest.raises(lh.MediaError, match="broken.jpg") as info:
        t.insert_files(photos, extra=_label, progress=False)
    assert "photos" in str(info.value) and "'image'" in str(info.value)
    assert (t.count(), t.version) == (1, version)

    result = t.insert_files(photos, extra=_label, on_error="ignore", progress=False)
    assert (result.rows_written, result.rows_with_errors) == (N_IMAGES + 1, 1)
    assert t.count() == N_IMAGES + 2
    bad = t.where(t.image.errortype.is_not_null()).select(
        t.label, errortype=t.image.errortype, errormsg=t.image.errormsg,
        url=t.image.fileurl).collect()
    assert bad.height == 1
    assert bad["label"][0] == "space" and "/space/broken.jpg" in bad["errormsg"][0]
    assert bad["errortype"][0] == "InvalidImage"


def test_no_files_found_names_the_sources(db, tmp_path: Path) -> None:
    t = _image_table(db)
    (tmp_path / "empty").mkdir()
    with pytest.raises(lh.MediaError, match="no image files found in .*empty.*nothing"):
        t.insert_files([tmp_path / "empty", str(tmp_path / "nothing" / "*.jpg")], progress=False)
    assert t.count() == 0 and _operations(t) == ["create"]


def test_insert_files_picks_the_media_column(db, photos: Path) -> None:
    t = db.create_table("two", {"a": lh.Image, "b": lh.Image, "label": lh.String})
    with pytest.raises(lh.InvalidOptionError, match="2 media columns"):
        t.insert_files(photos, progress=False)
    assert t.insert_files(photos / "space", column="b", progress=False).rows_written == 1
    assert t.select(t.a, t.b).collect()["a"].to_list() == [None]
    with pytest.raises(lh.TypeMismatchError, match="label.*media column"):
        t.insert_files(photos, column="label", progress=False)
    plain = db.create_table("plain", {"label": lh.String})
    with pytest.raises(lh.TypeMismatchError, match="no media column"):
        plain.insert_files(photos, progress=False)


def test_extra_must_return_other_columns(db, photos: Path) -> None:
    t = _image_table(db)
    with pytest.raises(lh.TypeMismatchError, match="must return a dict"):
        t.insert_files(photos, extra=lambda uri: "cat", progress=False)  # type: ignore[arg-type]
    with pytest.raises(lh.ColumnNotFoundError, match="colour"):
        t.insert_files(photos, extra=lambda uri: {"colour": "red"}, progress=False)
    assert t.count() == 0


def _upload_photos(endpoint: str, bucket: str, prefix: str = "photos") -> None:
    client = _s3_client(endpoint)
    for label, names in LAYOUT.items():
        for name in names:
            client.put_object(Bucket=bucket, Key=f"{prefix}/{label}/{name}",
                              Body=(_skimage_data() / name).read_bytes())
    client.put_object(Bucket=bucket, Key=f"{prefix}/notes.txt", Body=b"not an image")


def test_insert_files_from_an_s3_prefix(s3_bucket: str, s3_env: str) -> None:
    _upload_photos(s3_env, s3_bucket)
    db = _s3_db(s3_bucket, s3_env)
    t = _image_table(db)
    result = t.insert_files(f"s3://{s3_bucket}/photos/", extra=_label, progress=False)
    assert result.rows_written == N_IMAGES
    assert _labels(t) == {name: label for label, names in LAYOUT.items() for name in names}
    urls = t.select(url=t.image.fileurl).collect()["url"].to_list()
    assert all(u.startswith(f"s3://{s3_bucket}/photos/") for u in urls)
    assert sorted(t.select(height=t.image.height).collect()["height"].to_list()) == sorted(
        _size(_skimage_data() / n)[1] for names in LAYOUT.values() for n in names)
    assert _operations(t) == ["create", "insert"]
    # a glob and a plain key prefix
    t2 = _image_table(db, "glob")
    t2.insert_files(f"s3://{s3_bucket}/photos/*/*.png", extra=_label, progress=False)
    assert t2.count() == 5
    t3 = _image_table(db, "prefix")
    t3.insert_files(f"s3://{s3_bucket}/photos/ca", extra=_label, progress=False)
    assert sorted(_labels(t3).values()) == ["cat", "cat"]


# --------------------------------------------------------------------------------------------
# import_parquet
# --------------------------------------------------------------------------------------------

HF_METADATA = {"info": {"features": {
    "image": {"_type": "Image"},
    "label": {"names": ["cat", "space", "gray"], "_type": "ClassLabel"},
    "text": {"dtype": "string", "_type": "Value"},
}}}
HF_IMAGE = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
SHARD_IMAGES = [["horse.png", "moon.png"], ["rocket.jpg", "coins.png"], ["text.png"]]


def _hf_shards(folder: Path, *, metadata: bool, images: list[list[str]] = SHARD_IMAGES,
               corrupt: str | None = None) -> list[Path]:
    """Parquet shards in the Hugging Face image layout: image (struct of bytes and path),
    label (int) and text (string). ``corrupt`` names an image whose bytes are broken."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, names in enumerate(images):
        rows = [{"bytes": b"not an image" if n == corrupt else (_skimage_data() / n).read_bytes(),
                 "path": n} for n in names]
        table = pa.table({
            "image": pa.array(rows, HF_IMAGE),
            "label": pa.array([i] * len(names), pa.int64()),
            "text": pa.array([f"a picture of {n}" for n in names]),
        })
        if metadata:
            table = table.replace_schema_metadata({"huggingface": json.dumps(HF_METADATA)})
        path = folder / f"train-{i:05d}-of-{len(images):05d}.parquet"
        pq.write_table(table, path)
        paths.append(path)
    return paths


def _check_hf_table(t: lh.Table) -> None:
    names = [n for shard in SHARD_IMAGES for n in shard]
    assert t.count() == len(names)
    types = dict(zip(t.describe()["column"], t.describe()["type"], strict=True))
    assert types == {"image": "Image", "label": "Int", "text": "String"}
    df = t.select(t.text, t.label, width=t.image.width).order_by(t.text).collect()
    expected = sorted((f"a picture of {n}", _size(_skimage_data() / n)[0]) for n in names)
    assert list(zip(df["text"], df["width"], strict=True)) == expected
    assert sorted(df["label"].to_list()) == [0, 0, 1, 1, 2]
    assert _operations(t) == ["create", "insert"]  # filled by one insert: one new version


@pytest.mark.parametrize("metadata", [True, False], ids=["hf-metadata", "no-metadata"])
def test_import_parquet_hugging_face_layout_from_a_local_glob(tmp_path: Path,
                                                              metadata: bool) -> None:
    _hf_shards(tmp_path / "shards", metadata=metadata)
    db = lh.connect(tmp_path / "lh")
    t = db.import_parquet("hf", str(tmp_path / "shards" / "train-*.parquet"), progress=False)
    _check_hf_table(t)
    assert db.get_table("hf").count() == 5


@pytest.mark.parametrize("metadata", [True, False], ids=["hf-metadata", "no-metadata"])
def test_import_parquet_hugging_face_layout_from_s3(s3_bucket: str, s3_env: str,
                                                    tmp_path: Path, metadata: bool) -> None:
    client = _s3_client(s3_env)
    for path in _hf_shards(tmp_path / "shards", metadata=metadata):
        client.put_object(Bucket=s3_bucket, Key=f"datasets/pets/data/{path.name}",
                          Body=path.read_bytes())
    client.put_object(Bucket=s3_bucket, Key="datasets/pets/README.md", Body=b"# pets")
    db = _s3_db(s3_bucket, s3_env)
    t = db.import_parquet("hf", f"s3://{s3_bucket}/datasets/pets/data/*.parquet", progress=False)
    _check_hf_table(t)
    # a prefix (folder) works too, here into a local lakehouse reading S3 through the AWS env
    local = lh.connect(tmp_path / "lh")
    t2 = local.import_parquet("hf", f"s3://{s3_bucket}/datasets/pets/", batch_rows=2,
                              progress=False)
    _check_hf_table(t2)
    # a corrupt image in the last shard: the import fails and leaves no table on S3 either
    for path in _hf_shards(tmp_path / "bad", metadata=metadata, corrupt="text.png"):
        client.put_object(Bucket=s3_bucket, Key=f"datasets/bad/{path.name}",
                          Body=path.read_bytes())
    with pytest.raises(lh.MediaError, match="'image', row 4"):
        db.import_parquet("bad", f"s3://{s3_bucket}/datasets/bad/", progress=False)
    assert db.list_tables() == ["hf"]


def test_import_parquet_schema_override_and_skipped_columns(tmp_path: Path) -> None:
    images = ["horse.png", "rocket.jpg"]
    table = pa.table({
        "img": pa.array([(_skimage_data() / n).read_bytes() for n in images], pa.binary()),
        "score": pa.array([1, 2], pa.int32()),
        "raw": pa.array([b"x", b"y"], pa.binary()),
    })
    pq.write_table(table, tmp_path / "part.parquet")
    db = lh.connect(tmp_path / "lh")
    with pytest.raises(lh.TypeMismatchError, match=r"'img' holds binary data.*schema="):
        db.import_parquet("t", tmp_path / "part.parquet", progress=False)
    assert db.list_tables() == []
    t = db.import_parquet("t", tmp_path, schema={"img": lh.Image, "score": lh.Float, "raw": None},
                          progress=False)
    assert dict(zip(t.describe()["column"], t.describe()["type"], strict=True)) == {
        "img": "Image", "score": "Float"}
    df = t.select(t.score, width=t.img.width).order_by(t.score).collect()
    assert df["score"].to_list() == [1.0, 2.0]
    assert df["width"].to_list() == [_size(_skimage_data() / n)[0] for n in images]
    with pytest.raises(lh.ColumnNotFoundError, match="nope"):
        db.import_parquet("t2", tmp_path, schema={"nope": lh.Int}, progress=False)


def test_import_parquet_with_a_corrupt_image_leaves_no_table(tmp_path: Path) -> None:
    _hf_shards(tmp_path / "shards", metadata=True, corrupt="text.png")  # in the last shard
    db = lh.connect(tmp_path / "lh")
    with pytest.raises(lh.MediaError, match=r"'image', row 4"):
        db.import_parquet("hf", tmp_path / "shards", progress=False)
    assert db.list_tables() == []
    t = db.import_parquet("hf", tmp_path / "shards", on_error="ignore", progress=False)
    assert t.count() == 5
    bad = t.where(t.image.errortype.is_not_null()).select(t.text).collect()
    assert bad["text"].to_list() == ["a picture of text.png"]


def test_failed_replace_restores_the_previous_table(tmp_path: Path) -> None:
    _hf_shards(tmp_path / "good", metadata=True)
    _hf_shards(tmp_path / "bad", metadata=True, corrupt="rocket.jpg")
    db = lh.connect(tmp_path / "lh")
    db.import_parquet("hf", tmp_path / "good", progress=False)
    with pytest.raises(lh.TableExistsError):
        db.import_parquet("hf", tmp_path / "good", progress=False)
    assert db.import_parquet("hf", tmp_path / "bad", if_exists="ignore").count() == 5
    with pytest.raises(lh.MediaError):
        db.import_parquet("hf", tmp_path / "bad", if_exists="replace", progress=False)
    t = db.get_table("hf")
    assert t.count() == 5 and t.columns() == ["image", "label", "text"]
    assert _operations(t)[-1] == "revert"


def test_unreadable_or_missing_shards(tmp_path: Path) -> None:
    shards = _hf_shards(tmp_path / "shards", metadata=False)
    (tmp_path / "shards" / "train-99999.parquet").write_bytes(b"not parquet at all")
    db = lh.connect(tmp_path / "lh")
    with pytest.raises(lh.StorageError, match="train-99999.parquet"):
        db.import_parquet("hf", tmp_path / "shards", progress=False)
    with pytest.raises(lh.StorageError, match="no Parquet files found"):
        db.import_parquet("hf", tmp_path / "nothing-*.parquet", progress=False)
    assert db.list_tables() == []
    assert db.import_parquet("hf", shards[:2], progress=False).count() == 4


def test_import_parquet_maps_arrow_types(tmp_path: Path) -> None:
    ts = dt.datetime(2024, 5, 6, 7, 8, 9, 123456)
    table = pa.table({
        "i": pa.array([1, None], pa.int16()),
        "u": pa.array([2, 3], pa.uint32()),
        "f": pa.array([0.5, 1.5], pa.float32()),
        "d": pa.array([Decimal("1.25"), Decimal("2.50")], pa.decimal128(5, 2)),
        "b": pa.array([True, False]),
        "ts": pa.array([ts, ts], pa.timestamp("ns")),
        "day": pa.array([dt.date(2024, 1, 2), None], pa.date32()),
        "vec": pa.array([[1, 2, 3], [4, 5, 6]], pa.list_(pa.float32(), 3)),
        "ids": pa.array([[1, 2], []], pa.list_(pa.int32())),
        "meta": pa.array([{"a": 1, "tags": ["x"]}, None]),
        "tags": pa.array([["x", "y"], ["z"]]),
        "cat": pa.array(["a", "b"]).dictionary_encode(),
        "when": pa.array([dt.time(12, 30), None]),
    })
    pq.write_table(table, tmp_path / "types.parquet")
    t = lh.connect(tmp_path / "lh").import_parquet("types", tmp_path / "types.parquet",
                                                    progress=False)
    assert dict(zip(t.describe()["column"], t.describe()["type"], strict=True)) == {
        "i": "Int", "u": "Int", "f": "Float", "d": "Float", "b": "Bool", "ts": "Timestamp",
        "day": "Date", "vec": "Array[(3,), float32]", "ids": "Array[(None,), int32]",
        "meta": "Json", "tags": "Json", "cat": "String", "when": "String"}
    row = t.collect().row(0, named=True)
    assert row["i"] == 1 and row["u"] == 2 and row["f"] == 0.5 and row["d"] == 1.25
    assert row["ts"] == ts.replace(tzinfo=dt.UTC) and row["day"] == dt.date(2024, 1, 2)
    assert list(row["vec"]) == [1.0, 2.0, 3.0] and list(row["ids"]) == [1, 2]
    assert t.select(x=t.meta["a"]).collect()["x"].to_list()[0] in (1, "1")
    assert row["cat"] == "a" and row["when"].startswith("12:30:00")
    assert lh_type(pa.large_list(pa.large_list(pa.float64()))) == lh.Array[(None, None),
                                                                          "float64"]


def test_column_names_must_be_valid_or_renamed(tmp_path: Path) -> None:
    pq.write_table(pa.table({"Sale Price": [1.5], "_id": [1], "ok": ["x"]}),
                   tmp_path / "p.parquet")
    db = lh.connect(tmp_path / "lh")
    with pytest.raises(lh.InvalidNameError, match=r"'Sale Price', '_id'.*rename="):
        db.import_parquet("t", tmp_path / "p.parquet", progress=False)
    t = db.import_parquet("t", tmp_path / "p.parquet", rename={"Sale Price": "price"},
                          schema={"_id": None}, progress=False)
    assert t.collect().to_dicts() == [{"price": 1.5, "ok": "x"}]


# --------------------------------------------------------------------------------------------
# import_csv
# --------------------------------------------------------------------------------------------


def test_import_csv_media_paths_relative_to_the_csv(tmp_path: Path, photos: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    data = tmp_path / "data"
    shutil.copytree(photos, data / "images")
    rows = [("images/cat/horse.png", "cat", 1), ("images/space/rocket.jpg", "space", 2),
            (str(data / "images" / "gray" / "coins.png"), "gray", 3), ("", "none", 4)]
    (data / "labels.csv").write_text("file,label,n\n" + "".join(
        f"{f},{label},{n}\n" for f, label, n in rows))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    db = lh.connect(tmp_path / "lh")
    t = db.import_csv("labels", data / "labels.csv", schema={"file": lh.Image}, progress=False)
    assert dict(zip(t.describe()["column"], t.describe()["type"], strict=True)) == {
        "file": "Image", "label": "String", "n": "Int"}
    df = t.select(t.label, width=t.file.width, url=t.file.fileurl).order_by(t.n).collect()
    assert df["url"].to_list() == [
        (data / "images" / "cat" / "horse.png").as_uri(),
        (data / "images" / "space" / "rocket.jpg").as_uri(),
        (data / "images" / "gray" / "coins.png").as_uri(), None]
    assert df["width"].to_list()[:3] == [_size(_skimage_data() / n)[0]
                                         for n in ("horse.png", "rocket.jpg", "coins.png")]
    assert _operations(t) == ["create", "insert"]


def test_import_csv_infers_types(tmp_path: Path) -> None:
    (tmp_path / "t.tsv").write_text(
        "name\tn\tx\tok\tday\twhen\tcode\n"
        "a\t1\t0.5\ttrue\t2024-01-02\t2024-01-02 03:04:05\t007\n"
        "b\t\t1.5\tfalse\t2024-02-03\t2024-02-03 04:05:06\t010\n")
    db = lh.connect(tmp_path / "lh")
    t = db.import_csv("t", tmp_path / "t.tsv", schema={"code": lh.String}, progress=False)
    assert dict(zip(t.describe()["column"], t.describe()["type"], strict=True)) == {
        "name": "String", "n": "Int", "x": "Float", "ok": "Bool", "day": "Date",
        "when": "Timestamp", "code": "String"}
    rows = t.order_by(t["name"]).collect().to_dicts()
    assert rows[0] == {"name": "a", "n": 1, "x": 0.5, "ok": True, "day": dt.date(2024, 1, 2),
                       "when": dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=dt.UTC), "code": "007"}
    assert rows[1]["n"] is None and rows[1]["code"] == "010"
    (tmp_path / "semi.csv").write_text("a;b\n1;x\n")
    t2 = db.import_csv("semi", tmp_path / "semi.csv", delimiter=";", progress=False)
    assert t2.collect().to_dicts() == [{"a": 1, "b": "x"}]
    with pytest.raises(lh.InvalidOptionError, match="unknown CSV option 'colour'"):
        db.import_csv("bad", tmp_path / "semi.csv", colour="red")


def test_import_csv_type_surprise_after_the_first_block_leaves_no_table(tmp_path: Path) -> None:
    lines = ["n,s"] + [f"{i},row {i}" for i in range(5000)] + ["oops,last"]
    (tmp_path / "big.csv.gz").write_bytes(gzip.compress("\n".join(lines).encode()))
    db = lh.connect(tmp_path / "lh")
    with pytest.raises(lh.TypeMismatchError, match=r"oops.*schema="):
        db.import_csv("big", tmp_path / "big.csv.gz", block_size=4096, progress=False)
    assert db.list_tables() == []
    t = db.import_csv("big", tmp_path / "big.csv.gz", block_size=4096, schema={"n": lh.String},
                      progress=False)
    assert t.count() == 5001 and _operations(t) == ["create", "insert"]


def test_import_csv_with_media_from_s3(s3_bucket: str, s3_env: str, tmp_path: Path) -> None:
    _upload_photos(s3_env, s3_bucket, prefix="ds/images")
    _s3_client(s3_env).put_object(
        Bucket=s3_bucket, Key="ds/labels.csv",
        Body=b"file,label\nimages/cat/horse.png,cat\nimages/space/rocket.jpg,space\n")
    db = lh.connect(tmp_path / "lh")  # a local lakehouse reading S3 through the AWS env
    t = db.import_csv("t", f"s3://{s3_bucket}/ds/labels.csv", schema={"file": lh.Image},
                      progress=False)
    df = t.select(t.label, width=t.file.width, url=t.file.fileurl).order_by(t.label).collect()
    assert df["url"].to_list() == [f"s3://{s3_bucket}/ds/images/cat/horse.png",
                                   f"s3://{s3_bucket}/ds/images/space/rocket.jpg"]
    assert df["width"].to_list() == [_size(_skimage_data() / "horse.png")[0],
                                     _size(_skimage_data() / "rocket.jpg")[0]]


# --------------------------------------------------------------------------------------------
# create_table(source=...)
# --------------------------------------------------------------------------------------------


def test_create_table_from_a_parquet_glob(tmp_path: Path) -> None:
    _hf_shards(tmp_path / "shards", metadata=False)
    db = lh.connect(tmp_path / "lh")
    t = db.create_table("hf", source=str(tmp_path / "shards" / "*.parquet"), progress=False)
    _check_hf_table(t)


def test_create_table_from_dataframes(db, photos: Path) -> None:
    df = pl.DataFrame({"name": ["a", "b"], "score": [0.5, 1.5], "vec": [[1.0, 2.0], [3.0, 4.0]],
                       "path": [str(photos / "cat" / "horse.png"), None]})
    t = db.create_table("scores", source=df, schema={"path": lh.Image}, progress=False)
    assert dict(zip(t.describe()["column"], t.describe()["type"], strict=True)) == {
        "name": "String", "score": "Float", "vec": "Array[(None,), float64]", "path": "Image"}
    out = t.select(t["name"], t.score, width=t.path.width).order_by(t["name"]).collect()
    assert out["score"].to_list() == [0.5, 1.5]
    assert out["width"].to_list() == [_size(photos / "cat" / "horse.png")[0], None]
    assert _operations(t) == ["create", "insert"]

    t2 = db.create_table("pandas", source=pd.DataFrame({"n": [1, 2], "s": ["x", "y"]}),
                         progress=False)
    assert t2.order_by(t2.n).collect().to_dicts() == [{"n": 1, "s": "x"}, {"n": 2, "s": "y"}]
    t3 = db.create_table("arrow", source=pa.table({"n": [3]}), progress=False)
    assert t3.collect()["n"].to_list() == [3]


def test_a_frame_takes_engine_and_is_written_here(db) -> None:
    """A frame is in this process's memory: written here whatever the engine, as a stream is;
    a bad engine is refused before anything is created."""
    frame = pl.DataFrame({"n": [1, 2]})
    t = db.create_table("here", source=frame, engine="local", progress=False)
    assert t.collect()["n"].to_list() == [1, 2]
    with pytest.raises(lh.InvalidOptionError, match="engine"):
        db.create_table("nowhere", source=frame, engine="spark", progress=False)
    assert not db.has_table("nowhere")


LIST_LAYOUTS = [pa.list_(pa.float32()), pa.large_list(pa.float32()), pa.list_(pa.float32(), 3),
                pa.list_view(pa.float32()), pa.large_list_view(pa.float32())]


@pytest.mark.parametrize("layout", LIST_LAYOUTS, ids=str)
def test_every_list_layout_is_a_list_and_keeps_its_values(db, layout: pa.DataType) -> None:
    # one list test for ingest and insert; list views are lists too, but Arrow's casts from
    # them lose values, so they are converted value by value
    assert is_list_type(layout) and not is_list_type(pa.string())
    length = 3 if pa.types.is_fixed_size_list(layout) else None
    assert lh_type(layout) == lh.Array[(length,), "float32"]
    vectors = [[1.0, 2.0, 3.0], [4.5, 5.0, 6.0]]
    data = pa.table({"v": pa.array(vectors, layout), "n": [1, 2]})
    imported = db.create_table("imported", source=data, progress=False)
    assert imported.collect()["v"].to_list() == vectors
    inserted = db.create_table("inserted", {"v": lh.Array[(3,), "float32"], "n": lh.Int})
    inserted.insert(data, progress=False)
    assert inserted.collect()["v"].to_list() == vectors


def test_pandas_frames_are_recognised_by_their_class() -> None:
    assert is_pandas_frame(pd.DataFrame({"a": [1]}))
    assert not is_pandas_frame(pd.Series([1])) and not is_pandas_frame(pl.DataFrame({"a": [1]}))
    assert not is_pandas_frame({"a": [1]})


def test_create_table_needs_a_schema_or_a_source(db, tmp_path: Path) -> None:
    with pytest.raises(lh.TypeMismatchError, match="source="):
        db.create_table("t")
    with pytest.raises(lh.TypeMismatchError, match="cannot import int"):
        db.create_table("t", source=3)
    with pytest.raises(lh.InvalidOptionError, match="progress"):
        db.create_table("t", {"n": lh.Int}, progress=False)
    buf = io.StringIO("n,s\n1,x\n")
    (tmp_path / "small.csv").write_text(buf.getvalue())
    t = db.create_table("t", source=tmp_path / "small.csv", progress=False)
    assert t.collect().to_dicts() == [{"n": 1, "s": "x"}]
    assert db.list_tables() == ["t"]


def test_import_append_adds_rows_in_one_commit_or_none(tmp_path: Path) -> None:
    db = lh.connect(str(tmp_path / "lh"))
    first = tmp_path / "a.csv"
    first.write_text("name,n\nx,1\ny,2\n")
    t = db.import_csv("rows", first, if_exists="append", progress=False)  # new table
    assert t.count() == 2
    version = t.version
    more = tmp_path / "b.csv"
    more.write_text("name,n\nz,3\n")
    t = db.import_csv("rows", more, if_exists="append", progress=False)
    assert t.version == version + 1
    assert t.order_by(t.n).collect()["name"].to_list() == ["x", "y", "z"]
    bad = tmp_path / "c.csv"
    bad.write_text("name,n\nw,4\nv,not a number\n")
    with pytest.raises(lh.Error):
        db.import_csv("rows", bad, if_exists="append", progress=False)
    assert db.get_table("rows").version == version + 1
    assert db.get_table("rows").count() == 3


# --------------------------------------------------------------------------------------------
# what an import wrote
# --------------------------------------------------------------------------------------------


def test_imports_say_what_they_wrote(tmp_path: Path) -> None:
    from lakehouse import ingest

    shards = _hf_shards(tmp_path / "shards", metadata=True, corrupt="text.png")  # last shard
    db = lh.connect(tmp_path / "lh")
    result = ingest.import_parquet(db, "hf", tmp_path / "shards", on_error="ignore",
                                   progress=False)
    assert isinstance(result, lh.ImportResult) and isinstance(result, lh.WriteResult)
    assert (result.rows_written, result.rows_with_errors, result.version) == (5, 1, 2)
    assert result.table.table_version == 2 and result.table.count_rows() == 5
    # an append reports its own rows only; a skipped import writes nothing
    again = ingest.import_parquet(db, "hf", shards[:2], if_exists="append", progress=False)
    assert (again.rows_written, again.rows_with_errors, again.version) == (4, 0, 3)
    skipped = ingest.import_parquet(db, "hf", shards, if_exists="ignore")
    assert (skipped.rows_written, skipped.rows_with_errors, skipped.version) == (0, 0, 3)
    assert skipped.table.count_rows() == 9

    path = tmp_path / "t.csv"
    path.write_text("a,b\n1,x\n2,y\n")
    assert ingest.import_csv(db, "t", path, progress=False).rows_written == 2
    frame = ingest.create_from_source(db, "f", pl.DataFrame({"n": [1, 2, 3]}), progress=False)
    assert (frame.rows_written, frame.version, frame.table.count_rows()) == (3, 2, 3)
    # the catalog's methods return the table, as before
    assert isinstance(db.import_csv("t2", path, progress=False), lh.Table)
    assert isinstance(db.import_parquet("hf2", shards[:1], progress=False), lh.Table)
    assert isinstance(db.create_table("f2", source=pl.DataFrame({"n": [1]}), progress=False),
                      lh.Table)


# --------------------------------------------------------------------------------------------
# JSON and JSON Lines, streams, file names, base64 media
# --------------------------------------------------------------------------------------------


def test_import_json_arrays_and_lines_with_file_names(db, tmp_path: Path) -> None:
    from lakehouse import ingest

    folder = tmp_path / "rows"
    folder.mkdir()
    (folder / "a.json").write_text(json.dumps([{"n": 1, "tags": ["x"], "meta": {"k": 1}},
                                               {"n": 2, "tags": [], "meta": None}]))
    (folder / "b.ndjson").write_text('{"n": 3, "tags": ["y", "z"], "meta": {"k": 3}}\n\n')
    (folder / "c.json").write_text('{"n": 4, "tags": null, "meta": {"k": 4}}\n')  # lines
    result = ingest.import_json(db, "rows", folder, filename_column="file", progress=False)
    assert (result.rows_written, result.version) == (4, 2)
    t = result.table
    assert t.describe()["type"].to_list() == ["Int", "Json", "Json", "String"]
    got = t.select(t.n, t.meta["k"], t.file).order_by(t.n).collect().rows()
    assert got == [(1, "1", "a.json"), (2, None, "a.json"), (3, "3", "b.ndjson"),
                   (4, "4", "c.json")]
    # appended rows are read with the table's types, and the file name column must be there
    again = ingest.import_json(db, "rows", folder / "b.ndjson", if_exists="append",
                               filename_column="file", progress=False)
    assert (again.rows_written, again.version, t.count()) == (1, 3, 5)
    with pytest.raises(lh.ColumnNotFoundError, match="'source'"):
        ingest.import_json(db, "rows", folder / "b.ndjson", if_exists="append",
                           filename_column="source", progress=False)
    with pytest.raises(lh.InvalidNameError, match="already has a column 'n'"):
        ingest.import_json(db, "other", folder, filename_column="n", progress=False)
    assert t.version == 3 and db.list_tables() == ["rows"]


def test_import_json_from_s3(s3_bucket: str, s3_env: str, tmp_path: Path) -> None:
    from lakehouse import ingest

    client = _s3_client(s3_env)
    client.put_object(Bucket=s3_bucket, Key="rows/part-0.jsonl", Body=b'{"a": 1}\n{"a": 2}\n')
    client.put_object(Bucket=s3_bucket, Key="rows/part-1.jsonl", Body=b'{"a": oops}\n')
    db = _s3_db(s3_bucket, s3_env)
    t = db.create_table("t", source=f"s3://{s3_bucket}/rows/part-0.jsonl", progress=False)
    assert t.collect()["a"].to_list() == [1, 2]
    with pytest.raises(lh.TypeMismatchError, match=r"part-1\.jsonl: line 1 is not valid JSON"):
        ingest.import_json(db, "t", f"s3://{s3_bucket}/rows/", if_exists="append",
                           progress=False)
    assert t.count() == 2


def test_import_json_lines_longer_than_a_block_and_late_fields(tmp_path: Path) -> None:
    from lakehouse import ingest

    db = lh.connect(tmp_path / "lh")
    long = "x" * (3 << 20)  # lines of 3 MiB: a block holds the longest line whole
    path = tmp_path / "long.jsonl"
    path.write_text("".join(json.dumps({"i": i, "s": long}) + "\n" for i in range(3)))
    t = ingest.import_json(db, "long", path, progress=False).table
    assert t.select(t.i, t.s.str.len()).collect().rows() == [(i, 3 << 20) for i in range(3)]
    # a field the first block does not have: named with its line, or read with a given type
    late = tmp_path / "late.jsonl"
    late.write_text('{"a": 1}\n' * 150_000 + '{"a": 2, "note": "late"}\n')
    with pytest.raises(lh.TypeMismatchError, match="line 150001 has the field 'note'"):
        ingest.import_json(db, "late", late, progress=False)
    assert not db.has_table("late")
    t = ingest.import_json(db, "late", late, schema={"note": lh.String}, progress=False).table
    assert t.where(t.note.is_not_null()).collect().rows() == [(2, "late")]
    bad = tmp_path / "bad.json"
    bad.write_text('[{"a": 1},\n {"a": }]')
    with pytest.raises(lh.TypeMismatchError, match="line 2 column 8 is not valid JSON"):
        ingest.import_json(db, "bad", bad, progress=False)


def test_streams_and_base64_media(tmp_path: Path) -> None:
    import base64

    from lakehouse import ingest

    db = lh.connect(tmp_path / "lh")
    photo = _skimage_data() / "rocket.jpg"
    parquet = io.BytesIO()
    pl.DataFrame({"n": [1, 2]}).write_parquet(parquet)
    parquet.seek(0)
    assert ingest.create_from_source(db, "p", parquet, format="parquet",
                                     progress=False).table.count() == 2
    with pytest.raises(lh.InvalidOptionError, match="format="):
        ingest.create_from_source(db, "q", io.BytesIO(b"n\n1\n"), progress=False)
    text = io.StringIO(f"image,label\n{base64.b64encode(photo.read_bytes()).decode()},rocket\n")
    t = ingest.create_from_source(db, "pics", text, format="csv", schema={"image": lh.Image},
                                  media="base64", progress=False).table
    assert t.collect()["image"].to_list() == [photo.read_bytes()]
    # an existing table's media column reads paths, relative to the file's folder
    shutil.copy(photo, tmp_path / "rocket.jpg")
    (tmp_path / "more.csv").write_text("image,label\nrocket.jpg,again\n")
    ingest.import_csv(db, "pics", tmp_path / "more.csv", if_exists="append", progress=False)
    assert t.select(t.label, t.image.width).collect().rows() \
        == [("rocket", 640), ("again", 640)]
    with pytest.raises(lh.TypeMismatchError, match="not base64"):
        ingest.import_csv(db, "pics", tmp_path / "more.csv", if_exists="append",
                          media="base64", progress=False)
    with pytest.raises(lh.InvalidOptionError, match="media must be one of"):
        ingest.import_csv(db, "x", tmp_path / "more.csv", media="hex", progress=False)
    assert t.count() == 2

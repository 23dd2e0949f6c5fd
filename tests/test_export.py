"""Parquet export: ``t.to_parquet`` and ``q.to_parquet`` write what ``collect()`` returns (media
as bytes or as the URIs they came from), computed columns in and hidden columns out, batch by
batch from one table version, to a local path or S3; an existing file is never replaced
silently. Local and S3 through the ``db`` fixture."""

from __future__ import annotations

import io
import uuid
from pathlib import Path

import polars as pl
import pyarrow.parquet as pq
import pytest
from media_samples import ASTRONAUT, CAMERA, ROCKET, image_path

import lakehouse as lh
from lakehouse.exec.scan import MEDIA_SCAN_ROWS
from lakehouse.media.fetch import Fetcher
from lakehouse.samples.shapes import samples
from lakehouse.storage import s3_filesystem, s3_options

FILMS = [{"title": "Alien", "year": 1979}, {"title": "Heat", "year": 1995},
         {"title": "Up", "year": 2009}]


@pytest.fixture
def pics(db) -> lh.Table:
    """Three photos inserted from files, with a computed width."""
    t = db.create_table("pics", {"image": lh.Image, "label": lh.String})
    t.insert([{"image": str(image_path(n)), "label": n} for n in (ASTRONAUT, CAMERA, ROCKET)],
             progress=False)
    t.add_computed_column(width=t.image.width, progress=False)
    return t


def _target(db, backend: str, tmp_path: Path, name: str) -> str:
    """Where an export goes: a local file, or a key in the lakehouse's bucket on S3."""
    if backend == "local":
        return str(tmp_path / name)
    return f"{db.root}-exports/{name}"


def _read(db, target: str) -> pl.DataFrame:
    if target.startswith("s3://"):
        fs = s3_filesystem(dict(db.location.storage_options))
        with fs.open(target.removeprefix("s3://"), "rb") as f:
            return pl.read_parquet(io.BytesIO(f.read()))
    return pl.read_parquet(target)


def test_a_table_round_trips_with_media_as_bytes(db, pics, backend, tmp_path) -> None:
    target = _target(db, backend, tmp_path, "pics.parquet")
    result = pics.to_parquet(target, progress=False)
    assert (result.rows_written, result.version) == (3, pics.table_version)
    back = _read(db, target)
    assert back.equals(pics.collect())
    assert back.columns == ["image", "label", "width"]  # computed in, no _lh_ columns
    assert back.schema["image"] == pl.Binary


@pytest.mark.s3
def test_a_file_goes_to_another_bucket_with_the_same_settings(db, s3_env) -> None:
    """From a local or an S3 lakehouse: the lakehouse's S3 settings (or the AWS variables)
    reach any bucket of the same store."""
    import boto3

    other = f"lh-export-{uuid.uuid4().hex[:12]}"
    boto3.client("s3", endpoint_url=s3_env).create_bucket(Bucket=other)
    t = db.create_table("films", {"title": lh.String, "year": lh.Int})
    t.insert(FILMS, progress=False)
    target = f"s3://{other}/out/films.parquet"
    assert t.to_parquet(target, progress=False).rows_written == 3
    fs = s3_filesystem(s3_options(dict(db.location.storage_options)))
    with fs.open(f"{other}/out/films.parquet", "rb") as f:
        assert pl.read_parquet(io.BytesIO(f.read())).equals(t.collect())
    with pytest.raises(lh.OutputExistsError):
        t.to_parquet(target, progress=False)


def test_media_as_uri_are_the_sources_they_came_from(db, pics, backend, tmp_path) -> None:
    target = _target(db, backend, tmp_path, "pics-uri.parquet")
    pics.to_parquet(target, media="uri", progress=False)
    back = _read(db, target)
    assert back.schema["image"] == pl.String
    assert back.drop("image").equals(pics.collect().drop("image"))
    fetcher = Fetcher()
    read = [fetcher.read(uri) for uri in back["image"].to_list()]
    assert read == pics.collect()["image"].to_list()


def test_media_as_uri_refuses_values_inserted_as_bytes(db, tmp_path) -> None:
    t = db.create_table("raw", {"image": lh.Image})
    t.insert([{"image": image_path(CAMERA).read_bytes()}], progress=False)
    target = tmp_path / "raw.parquet"
    with pytest.raises(lh.UnsupportedError, match="inserted as bytes.*media='bytes'"):
        t.to_parquet(target, media="uri", progress=False)
    assert not target.exists()
    t.to_parquet(target, progress=False)  # as bytes it goes
    assert pl.read_parquet(target).equals(t.collect())


def test_media_as_uri_refuses_a_computed_media_output(db, pics, tmp_path) -> None:
    q = pics.select(pics.label, small=pics.image.resize((8, 8)))
    with pytest.raises(lh.UnsupportedError, match="'small'.*no source URI"):
        q.to_parquet(tmp_path / "small.parquet", media="uri", progress=False)


def test_an_existing_file_is_refused_unless_overwrite(db, tmp_path) -> None:
    t = db.create_table("films", {"title": lh.String, "year": lh.Int})
    t.insert(FILMS, progress=False)
    target = tmp_path / "films.parquet"
    target.write_bytes(b"keep me")
    with pytest.raises(lh.OutputExistsError, match="already exists; pass overwrite=True"):
        t.to_parquet(target, progress=False)
    assert target.read_bytes() == b"keep me"
    t.to_parquet(target, overwrite=True, progress=False)
    assert pl.read_parquet(target).equals(t.collect())


def test_a_query_writes_its_outputs(db, tmp_path) -> None:
    t = db.create_table("films", {"title": lh.String, "year": lh.Int})
    t.insert(FILMS, progress=False)
    q = t.where(t.year > 1990).select(t.title, decade=t.year // 10 * 10)
    q.to_parquet(tmp_path / "q.parquet", progress=False)
    assert pl.read_parquet(tmp_path / "q.parquet").equals(q.collect())
    ordered = t.order_by(t.year, asc=False).limit(2)
    ordered.to_parquet(tmp_path / "o.parquet", progress=False)
    assert pl.read_parquet(tmp_path / "o.parquet").equals(ordered.collect())
    empty = t.where(t.year > 3000)
    assert empty.to_parquet(tmp_path / "e.parquet", progress=False).rows_written == 0
    assert pl.read_parquet(tmp_path / "e.parquet").equals(empty.collect())


def test_media_are_written_batch_by_batch(db, tmp_path) -> None:
    """More rows than one media batch: several row groups, each of one scan batch, and the
    file equals collect()."""
    t = db.create_table("shapes", {"image": lh.Image, "n": lh.Int})
    rows = MEDIA_SCAN_ROWS + 20
    t.insert([{"image": img, "n": i} for i, (img, _) in enumerate(samples(rows, seed=3))],
             progress=False)
    target = tmp_path / "shapes.parquet"
    assert t.to_parquet(target, progress=False).rows_written == rows
    assert pq.ParquetFile(target).metadata.num_row_groups >= 2
    assert pl.read_parquet(target).equals(t.collect())


def test_the_file_holds_the_version_the_export_started_from(db, tmp_path) -> None:
    t = db.create_table("films", {"title": lh.String, "year": lh.Int})
    t.insert(FILMS, progress=False)
    old = t.at(t.table_version)
    t.insert([{"title": "Ran", "year": 1985}], progress=False)
    result = old.to_parquet(tmp_path / "old.parquet", progress=False)
    assert result.rows_written == 3
    assert pl.read_parquet(tmp_path / "old.parquet")["title"].to_list() == \
        ["Alien", "Heat", "Up"]


def test_a_bad_target_is_refused(db, tmp_path) -> None:
    t = db.create_table("films", {"title": lh.String})
    with pytest.raises(lh.UnsupportedError, match="local path or an s3://"):
        t.to_parquet("ftp://example.com/films.parquet", progress=False)
    with pytest.raises(lh.InvalidOptionError, match="media must be one of"):
        t.to_parquet(tmp_path / "x.parquet", media="base64", progress=False)

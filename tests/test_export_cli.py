"""`lakehouse export` and `lakehouse sql` from the installed command, run as a subprocess: a
Parquet file of a table or its filtered, selected rows (media as bytes or URIs) with a progress
bar; no overwrite without --overwrite; SQL with a join in every output format; a hostile
statement is one error line. The tables are made with the library."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest
from cli_checks import ok, one_error_line
from media_samples import ASTRONAUT, CAMERA, image_path

import lakehouse as lh


@pytest.fixture
def lake(root: str) -> lh.Catalog:
    db = lh.connect(root)
    films = db.create_table("films", {"title": lh.String, "year": lh.Int})
    films.insert([{"title": "Alien", "year": 1979}, {"title": "Heat", "year": 1995}],
                 progress=False)
    films.add_computed_column(decade=films.year // 10 * 10, progress=False)
    pics = db.create_table("pics", {"image": lh.Image, "label": lh.String})
    pics.insert([{"image": str(image_path(n)), "label": n} for n in (ASTRONAUT, CAMERA)],
                progress=False)
    return db


def test_export_writes_the_table(cli, lake, tmp_path: Path) -> None:
    target = tmp_path / "films.parquet"
    out = ok(cli("export", "films", str(target), "--progress"))
    assert out.strip() == f"wrote 2 rows of films (version 3) to {target}"
    assert pl.read_parquet(target).equals(lake.get_table("films").collect())


def test_export_filters_selects_and_writes_media_as_uris(cli, lake, tmp_path: Path) -> None:
    target = tmp_path / "pics.parquet"
    ok(cli("export", "pics", str(target), "--media", "uri", "--where",
           f"label == '{CAMERA}'", "--columns", "label, image"))
    frame = pl.read_parquet(target)
    assert frame.columns == ["label", "image"]
    assert frame.rows() == [(CAMERA, image_path(CAMERA).as_uri())]


def test_export_refuses_an_existing_file_without_overwrite(cli, lake, tmp_path: Path) -> None:
    target = tmp_path / "films.parquet"
    target.write_bytes(b"keep")
    line = one_error_line(cli("export", "films", str(target)))
    assert "already exists; pass --overwrite" in line
    assert target.read_bytes() == b"keep"
    ok(cli("export", "films", str(target), "--overwrite", "--no-progress"))
    assert pl.read_parquet(target).height == 2


@pytest.mark.slow  # three runs of the command, about 5 s each on a loaded machine
def test_sql_joins_in_the_program_formats(cli, lake, tmp_path: Path) -> None:
    statement = ("SELECT f.title, count(p.label) AS pictures FROM films f "
                 "LEFT JOIN pics p ON true GROUP BY f.title ORDER BY f.title")
    as_json = json.loads(ok(cli("sql", statement, "--format", "json")))
    assert as_json == [{"title": "Alien", "pictures": 2}, {"title": "Heat", "pictures": 2}]
    assert ok(cli("sql", statement, "--format", "csv")).splitlines() == \
        ["title,pictures", "Alien,2", "Heat,2"]
    target = tmp_path / "pics.parquet"
    ok(cli("sql", "SELECT label, image FROM pics ORDER BY label", "--media", "bytes",
           "--format", "parquet", "--output", str(target)))
    frame = pl.read_parquet(target)
    assert frame["label"].to_list() == [ASTRONAUT, CAMERA]
    assert frame["image"][1] == image_path(CAMERA).read_bytes()


def test_sql_refuses_a_file_read_in_one_line(cli, lake) -> None:
    line = one_error_line(cli("sql", "SELECT * FROM read_csv('/etc/passwd')"))
    assert "read_csv(...) reads files" in line
    line = one_error_line(cli("sql", "DROP TABLE films"))
    assert "only queries" in line

"""Data in and out through pipes and files, with the installed `lakehouse` command: rows on stdin
in each format (CSV, JSON, JSON Lines, Parquet) into a new table and into an existing one, JSON
files, --filename-column, bad input as one line that writes nothing, and media through JSON
Lines out and back in, byte for byte."""

from __future__ import annotations

import base64
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest
from cli_checks import ok, one_error_line
from media_samples import ASTRONAUT, image_path

import lakehouse as lh

ROWS = pl.DataFrame({
    "title": ["The Dispossessed", "Kindred", "Dune"],
    "year": [1974, 1979, 1965],
    "rating": [4.2, None, 4.3],
})
WRITERS = {
    "csv": lambda frame, f: frame.write_csv(f),
    "json": lambda frame, f: frame.write_json(f),
    "jsonl": lambda frame, f: frame.write_ndjson(f),
    "parquet": lambda frame, f: frame.write_parquet(f),
}


@pytest.fixture
def pipe(root: str, tmp_path: Path):
    """Run the installed command with bytes on stdin (run_cli takes text)."""

    def run(data: bytes, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run([str(Path(sys.executable).parent / "lakehouse"), *args],
                              input=data, capture_output=True, cwd=tmp_path, timeout=300,
                              env={**os.environ, "LAKEHOUSE_ROOT": root})

    return run


def _encoded(fmt: str, frame: pl.DataFrame) -> bytes:
    buffer = io.BytesIO()
    WRITERS[fmt](frame, buffer)
    return buffer.getvalue()


@pytest.mark.parametrize("fmt", ["csv", "json", "jsonl", "parquet"])
def test_stdin_ingest_into_a_new_table_then_an_existing_one(pipe, root: str, fmt: str) -> None:
    data = _encoded(fmt, ROWS)
    args = ("ingest", "books", "-", "--format", fmt, "--no-progress")
    assert ok(pipe(data, *args)) == "wrote 3 rows (0 with errors) to books, version 2\n"
    t = lh.connect(root).get_table("books")
    assert t.describe()["type"].to_list() == ["String", "Int", "Float"]
    assert t.collect().equals(ROWS)
    # into the existing table: read with its types (a year as text in CSV is still an Int)
    assert ok(pipe(data, *args)) == "wrote 3 rows (0 with errors) to books, version 3\n"
    assert t.collect().equals(pl.concat([ROWS, ROWS]))


def test_json_files_and_filename_column(cli, root: str, tmp_path: Path) -> None:
    folder = tmp_path / "rows"
    folder.mkdir()
    ROWS.head(2).write_json(folder / "a.json")
    ROWS.tail(1).write_ndjson(folder / "b.jsonl")
    out = cli("ingest", "books", str(folder / "a.json"), str(folder / "b.jsonl"),
              "--filename-column", "source", "--no-progress")
    assert ok(out) == "wrote 3 rows (0 with errors) to books, version 2\n"
    books = lh.connect(root).get_table("books")
    assert books.collect().equals(ROWS.with_columns(source=pl.Series(["a.json", "a.json",
                                                                      "b.jsonl"])))

    # media files: the name goes into an existing String column; an unreadable file names
    # the flag that keeps the others
    pics = tmp_path / "pics"
    pics.mkdir()
    (pics / "astronaut.png").write_bytes(image_path(ASTRONAUT).read_bytes())
    (pics / "broken.png").write_bytes(b"not a picture")
    lh.connect(root).create_table("pics", {"image": lh.Image, "name": lh.String})
    args = ("ingest", "pics", str(pics), "--filename-column", "name", "--no-progress")
    line = one_error_line(cli(*args))
    assert "broken.png" in line and "pass --on-error ignore" in line
    assert ok(cli(*args, "--on-error", "ignore")) \
        == "wrote 2 rows (1 with errors) to pics, version 2\n"
    t = lh.connect(root).get_table("pics")
    assert t.select(t.name, t.image.width).collect().rows() \
        == [("astronaut.png", 512), ("broken.png", None)]


def test_bad_input_is_one_line_and_writes_nothing(cli, root: str) -> None:
    bad = '{"title": "Dune", "year": 1965}\n\n{"title": "Kindred", "year": }\n'
    line = one_error_line(cli("ingest", "books", "-", "--format", "jsonl", input=bad))
    assert "line 3 is not valid JSON" in line and "<stdin>" in line
    db = lh.connect(root)
    assert not db.has_table("books")  # the new table is removed again

    books = db.create_table("books", {"title": lh.String, "year": lh.Int})
    assert "line 3 is not valid JSON" in one_error_line(
        cli("ingest", "books", "-", "--format", "json", input=bad))
    line = one_error_line(cli("ingest", "books", "-", "--format", "jsonl",
                               input='{"title": "Dune", "pages": 412}\n'))
    assert "has no column 'pages'" in line
    assert "needs --format csv, json, jsonl or parquet" in one_error_line(
        cli("ingest", "books", "-", input="title\nDune\n"))
    assert "not base64" in one_error_line(
        cli("ingest", "pics", "-", "--format", "csv", "--schema", "image:image", "--media",
            "base64", input="image\nnot base64!\n"))
    assert books.count() == 0 and books.version == 1
    assert not db.has_table("pics")


def test_media_round_trip_through_json_lines(cli, root: str, tmp_path: Path) -> None:
    photo = image_path(ASTRONAUT)
    db = lh.connect(root)
    pics = db.create_table("pics", {"image": lh.Image, "label": lh.String})
    pics.insert([{"image": str(photo), "label": "astronaut"}], progress=False)
    original = photo.read_bytes()

    lines = ok(cli("query", "pics", "--format", "jsonl"))
    assert json.loads(lines) == {"image": base64.b64encode(original).decode(),
                                 "label": "astronaut"}
    out = cli("ingest", "copy", "-", "--format", "jsonl", "--schema", "image:image",
              "--media", "base64", "--no-progress", input=lines)
    assert ok(out) == "wrote 1 rows (0 with errors) to copy, version 2\n"
    copy = db.get_table("copy")
    assert copy.describe()["type"].to_list() == ["Image", "String"]
    assert copy.collect()["image"].to_list() == [original]  # byte for byte

    # CSV holds a base64 cell; --media uri writes where each value came from
    cells = pl.read_csv(io.StringIO(ok(cli("query", "pics", "--format", "csv"))))
    assert [base64.b64decode(v) for v in cells["image"]] == [original]
    rows = json.loads(ok(cli("query", "pics", "--format", "json", "--media", "uri")))
    assert rows == [{"image": photo.resolve().as_uri(), "label": "astronaut"}]
    # values inserted as bytes have no source: the error names the option to use
    line = one_error_line(cli("query", "copy", "--format", "json", "--media", "uri"))
    assert "no source URI" in line and "--media base64" in line
    target = tmp_path / "pics.parquet"
    ok(cli("query", "pics", "--format", "parquet", "--output", str(target)))
    assert pl.read_parquet(target)["image"].to_list() == [original]  # Parquet keeps bytes

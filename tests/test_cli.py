"""The installed `lakehouse` command, run as a subprocess: create/describe/drop, ingest with and
without a progress bar, query in each format (compared with the API's result), search by text
and by picture, versions, indexes, and every error path as one clear line."""

from __future__ import annotations

import base64
import csv
import io
import json
import re
from pathlib import Path

import boto3
import polars as pl
import pytest
from cli_checks import ok, one_error_line
from test_cli_basic import UNREACHABLE_S3_ENV

import lakehouse as lh
from lakehouse.samples import shapes

HELD_OUT = 424242  # a seed the shipped CLIP never saw in training
BOOKS = pl.DataFrame({
    "title": ["The Dispossessed", "Kindred", "Dune", "Solaris"],
    "year": [1974, 1979, 1965, 1961],
    "rating": [4.2, 4.3, 4.3, 4.0],
    "tags": [["anarchism"], ["time travel", "slavery"], ["desert"], None],
})


@pytest.fixture
def books(tmp_path: Path, cli) -> Path:
    """Table `books`, ingested from a Parquet file (version 2)."""
    path = tmp_path / "books.parquet"
    BOOKS.write_parquet(path)
    assert ok(cli("ingest", "books", str(path), "--no-progress")) \
        == "wrote 4 rows (0 with errors) to books, version 2\n"
    return path


def _pictures(folder: Path, n: int) -> list[Path]:
    """n generated pictures named by their caption."""
    folder.mkdir()
    paths = []
    for i, (image, scene) in enumerate(shapes.samples(n, HELD_OUT)):
        path = folder / f"{i:02d}-{scene.caption.replace(' ', '_')}.png"
        image.save(path)
        paths.append(path)
    return paths


# --------------------------------------------------------------------------------------------
# create, describe, drop
# --------------------------------------------------------------------------------------------


def test_create_describe_drop(cli, root: str) -> None:
    out = ok(cli("create", "ml/books", "--parents", "--schema",
                  "title:string, year:int!, v:array[3], meta:json, cover:image, "
                  "w:array[*, 2, int8], u:Array[(4,), float16]"))
    assert out == "created table ml/books (version 1)\n"
    t = lh.connect(root).get_table("ml/books")
    assert t.describe()["type"].to_list() == ["String", "Required[Int]",
                                              "Array[(3,), float32]", "Json", "Image",
                                              "Array[(None, 2), int8]",
                                              "Array[(4,), float16]"]
    described = ok(cli("describe", "ml/books"))
    assert described.splitlines()[0] == "table ml/books: version 1, 0 rows"
    for text in ("title", "Required[Int]", "Array[(3,), float32]", "cover", "Image"):
        assert text in described

    exists = one_error_line(cli("create", "ml/books", "--schema", "a:int"))
    assert "already exists; pass --if-exists ignore or --if-exists replace" in exists
    ok(cli("create", "ml/books", "--schema", "a:int", "--if-exists", "replace"))
    assert lh.connect(root).get_table("ml/books").columns() == ["a"]
    unknown = one_error_line(cli("create", "x", "--schema", "a:strin"))
    assert "'strin' is not a column type; use one of string, int" in unknown
    assert "lh." not in unknown
    assert "not 'name:type'" in one_error_line(cli("create", "x", "--schema", "title"))
    assert "array" in one_error_line(cli("create", "x", "--schema", "v:array[]"))
    assert "twice" in one_error_line(cli("create", "x", "--schema", "a:int, a:float"))
    assert "does not exist; pass --parents" in one_error_line(
        cli("create", "nodir/x", "--schema", "a:int"))

    # stdin is not a terminal here: drop asks for --yes rather than prompting
    line = one_error_line(cli("drop", "ml/books"))
    versions = len(lh.connect(root).get_table("ml/books").history(limit=None))
    assert "--yes" in line and f"deletes its {versions} versions" in line
    assert lh.connect(root).list_tables() == ["ml/books"]
    assert ok(cli("drop", "ml/books", "--yes")) == "dropped table ml/books\n"
    assert lh.connect(root).list_tables() == []
    assert "does not exist" in one_error_line(cli("drop", "ml/books", "--yes"))
    assert "nothing to drop" in ok(cli("drop", "ml/books", "--yes", "--ignore"))


# --------------------------------------------------------------------------------------------
# ingest and query
# --------------------------------------------------------------------------------------------


def test_query_in_each_format_matches_the_api(cli, root: str, books: Path, tmp_path: Path) -> None:
    t = lh.connect(root).get_table("books")
    where, select = "year > 1966 and rating >= 4.2", "title, decade = year // 10 * 10, tags"
    api = (t.where((t.year > 1966) & (t.rating >= 4.2)).order_by(t.year, asc=False)
           .select(t.title, t.tags, decade=t.year // 10 * 10).collect()
           .select("title", "decade", "tags"))
    args = ("query", "books", "--where", where, "--select", select, "--order-by", "year",
            "--desc")

    rows = json.loads(ok(cli(*args, "--format", "json")))
    assert [r["title"] for r in rows] == ["Kindred", "The Dispossessed"]
    assert rows == [{**r, "tags": json.loads(r["tags"])} for r in api.to_dicts()]
    assert rows[0]["tags"] == ["time travel", "slavery"]  # a Json column stays JSON

    got = list(csv.DictReader(io.StringIO(ok(cli(*args, "--format", "csv")))))
    assert [r["title"] for r in got] == api["title"].to_list()
    assert [int(r["decade"]) for r in got] == api["decade"].to_list()
    assert [json.loads(r["tags"]) for r in got] == [json.loads(v) for v in api["tags"]]

    target = tmp_path / "out.parquet"
    assert ok(cli(*args, "--format", "parquet", "--output", str(target))) == ""
    assert pl.read_parquet(target).equals(api)

    table = ok(cli(*args))
    assert "Kindred" in table and "The Dispossessed" in table and "Dune" not in table
    assert table.index("Kindred") < table.index("The Dispossessed")

    # no options: every row and column; --limit
    everything = json.loads(ok(cli("query", "books", "-f", "json")))
    assert [r["title"] for r in everything] == BOOKS["title"].to_list()
    assert len(json.loads(ok(cli("query", "books", "-f", "json", "--limit", "1")))) == 1


def test_ingest_progress_replace_and_csv(cli, root: str, books: Path, tmp_path: Path) -> None:
    # a second Parquet ingest into an existing table adds its rows; --replace replaces them
    appended = cli("ingest", "books", str(books), "--no-progress")
    assert ok(appended) == "wrote 4 rows (0 with errors) to books, version 3\n"
    assert len(json.loads(ok(cli("query", "books", "-f", "json")))) == 8
    proc = cli("ingest", "books", str(books), "--replace", "--progress")
    assert ok(proc) == "wrote 4 rows (0 with errors) to books, version 5\n"
    assert "insert into books" in proc.stderr and "4/4" in proc.stderr  # the bar, forced

    quiet = cli("ingest", "books", str(books), "--replace", "--no-progress")
    assert ok(quiet).startswith("wrote 4 rows")
    assert quiet.stderr == ""
    # LAKEHOUSE_PROGRESS=always draws the bar without --progress; --no-progress still wins
    always = {"LAKEHOUSE_PROGRESS": "always"}
    assert "insert into books" in cli("ingest", "books", str(books), env=always).stderr
    assert cli("ingest", "books", str(books), "--no-progress", env=always).stderr == ""

    path = tmp_path / "books.csv"
    BOOKS.drop("tags").write_csv(path)
    assert ok(cli("ingest", "csv_books", str(path), "--no-progress")) \
        == "wrote 4 rows (0 with errors) to csv_books, version 2\n"
    t = lh.connect(root).get_table("csv_books")
    assert t.collect().equals(BOOKS.drop("tags"))

    assert "mix" in one_error_line(cli("ingest", "x", str(path), str(books)))
    assert "create it first" in one_error_line(cli("ingest", "photos", str(tmp_path)))
    assert "--column is for media" in one_error_line(
        cli("ingest", "y", str(path), "--column", "image"))


def test_ingest_media_files_with_errors(cli, root: str, tmp_path: Path) -> None:
    folder = tmp_path / "pics"
    _pictures(folder, 3)
    (folder / "broken.png").write_bytes(b"not a picture")
    ok(cli("create", "pics", "--schema", "image:image"))
    line = one_error_line(cli("ingest", "pics", str(folder), "--no-progress"))
    assert "broken.png" in line and "pass --on-error ignore" in line
    assert lh.connect(root).get_table("pics").count() == 0  # nothing written
    out = ok(cli("ingest", "pics", str(folder), "--on-error", "ignore", "--no-progress"))
    assert out == "wrote 4 rows (1 with errors) to pics, version 2\n"
    assert "--replace is for" in one_error_line(cli("ingest", "pics", str(folder), "--replace"))


# --------------------------------------------------------------------------------------------
# indexes and search
# --------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_index_and_search_by_text_and_picture(cli, tmp_path: Path) -> None:
    paths = _pictures(tmp_path / "pics", 12)
    ok(cli("create", "pics", "--schema", "image:image"))
    ok(cli("ingest", "pics", str(tmp_path / "pics"), "--no-progress"))
    out = ok(cli("index", "add", "pics", "image", "--model", "clip:lakehouse/shapes-clip",
                  "--no-progress"))
    assert out == ("added embedding index image on pics.image: 12 rows embedded (0 with "
                   "errors), version 3\n")
    listed = json.loads(ok(cli("index", "ls", "pics", "-f", "json")))
    assert [(i["name"], i["column"], i["kind"]) for i in listed] == [("image", "image",
                                                                      "embedding")]
    assert "clip(lakehouse/shapes-clip)" in ok(cli("describe", "pics"))

    # by text: the one picture of that caption comes first
    target = next(p for p in paths if "large_green_star" in p.name)
    hits = json.loads(ok(cli("search", "pics", "image", "a large green star on the left",
                              "-k", "3", "--select", "image.fileurl", "-f", "json")))
    assert len(hits) == 3 and hits[0]["fileurl"] == target.as_uri()
    assert hits[0]["score"] > hits[1]["score"] >= hits[2]["score"]
    # by picture: the same picture first, with a cosine of 1
    hits = json.loads(ok(cli("search", "pics", "image", "--image", str(paths[5]), "-k", "2",
                              "-f", "json", "--select", "url = image.fileurl")))
    assert hits[0]["url"] == paths[5].as_uri() and hits[0]["score"] == pytest.approx(1, abs=1e-4)
    # --where filters first; the default selection writes each picture's bytes, as base64
    hits = json.loads(ok(cli("search", "pics", "image", "a circle", "-k", "20", "-f", "json",
                              "--where", "image.fileurl.str.contains('circle')")))
    circles = [p for p in paths if "circle" in p.name]
    assert len(hits) == len(circles)
    assert all(base64.b64decode(h["image"]).startswith(b"\x89PNG") for h in hits)

    # a scalar index beside it, then drop both
    assert "model" in one_error_line(cli("index", "add", "pics", "image", "--model", "gpt:x"))
    assert "unknown" not in one_error_line(cli("index", "add", "pics", "image", "--model",
                                                "clip:lakehouse/shapes-clip"))
    assert "no index 'nope'" in one_error_line(cli("index", "drop", "pics", "nope"))
    assert ok(cli("index", "drop", "pics", "image")).startswith("dropped index image of pics")
    assert json.loads(ok(cli("index", "ls", "pics", "-f", "json"))) == []
    assert "index" in one_error_line(cli("search", "pics", "image", "a red star"))


def test_scalar_index(cli, books: Path) -> None:
    assert ok(cli("index", "add", "books", "year", "--kind", "btree")) \
        == "added a btree index on books.year, version 3\n"
    listed = json.loads(ok(cli("index", "ls", "books", "-f", "json")))
    assert [(i["name"], i["kind"]) for i in listed] == [("year_btree", "btree")]
    assert ok(cli("query", "books", "--where", "year == 1979", "-s", "title", "-f", "csv")) \
        == "title\nKindred\n"
    ok(cli("index", "drop", "books", "year_btree"))
    assert json.loads(ok(cli("index", "ls", "books", "-f", "json"))) == []


# --------------------------------------------------------------------------------------------
# versions
# --------------------------------------------------------------------------------------------


def test_history_revert_snapshot_checkout(cli, root: str, books: Path, tmp_path: Path) -> None:
    fewer = tmp_path / "fewer.parquet"
    BOOKS.head(1).write_parquet(fewer)
    ok(cli("ingest", "books", str(fewer), "--replace", "--no-progress"))  # versions 3, 4
    assert ok(cli("snapshot", "books:2", "first")) \
        == "snapshot first of books is version 2; read it as books@first\n"
    history = json.loads(ok(cli("history", "books", "-f", "json")))
    api = lh.connect(root).get_table("books").history()
    assert [h["version"] for h in history] == api["version"].to_list() == [4, 3, 2, 1]
    assert [h["operation"] for h in history] == api["operation"].to_list()
    assert [h["snapshots"] for h in history] == [None, None, "first", None]
    assert "first" in ok(cli("history", "books"))

    def titles(name: str) -> list[str]:
        return [r["title"] for r in json.loads(ok(cli("query", name, "-f", "json")))]

    assert titles("books") == ["The Dispossessed"]
    assert titles("books:2") == titles("books@first") == BOOKS["title"].to_list()
    assert "read-only" in ok(cli("describe", "books:2"))

    assert ok(cli("revert", "books", "--to", "2")) \
        == "reverted books to the content of version 2: now version 5\n"
    assert titles("books") == BOOKS["title"].to_list()
    assert ok(cli("revert", "books")) \
        == "reverted books to the content of version 4: now version 6\n"
    assert titles("books") == ["The Dispossessed"]

    assert "already has a snapshot 'first'; pass --replace" in one_error_line(
        cli("snapshot", "books", "first"))
    ok(cli("snapshot", "books", "first", "--replace"))
    assert titles("books@first") == ["The Dispossessed"]
    assert "no version" in one_error_line(cli("query", "books:99"))
    assert "no version" in one_error_line(cli("query", "books@nope"))
    assert "read-only" in one_error_line(cli("revert", "books:2"))
    assert "cannot revert" in one_error_line(cli("revert", "books", "--to", "99"))
    assert "snapshot name" in one_error_line(cli("snapshot", "books", "bad name!"))


def test_columns_named_like_table_methods(cli, root: str) -> None:
    """Every command works on a table whose columns are called like the table's own methods
    (the column wins t.<name>, so the commands call lh.Table.<method>(t))."""
    names = ("summary", "history", "indexes", "snapshot", "snapshots", "describe", "show")
    ok(cli("create", "odd/t", "--parents", "--schema", ", ".join(f"{n}:int" for n in names)))
    lh.connect(root).get_table("odd/t").insert([dict.fromkeys(names, 1)], progress=False)
    assert ok(cli("snapshot", "odd/t", "v1")).startswith("snapshot v1 of odd/t is version 2")
    ok(cli("index", "add", "odd/t", "history", "--kind", "bitmap"))
    described = ok(cli("describe", "odd/t"))
    assert described.splitlines()[0] == "table odd/t: version 3, 1 rows"
    assert "history_bitmap" in described and "snapshots: v1 (version 2)" in described
    history = json.loads(ok(cli("history", "odd/t", "-f", "json")))
    assert [h["snapshots"] for h in history] == [None, "v1", None]
    listed = json.loads(ok(cli("index", "ls", "odd/t", "-f", "json")))
    assert [i["name"] for i in listed] == ["history_bitmap"]
    assert ok(cli("index", "drop", "odd/t", "history_bitmap")) \
        == "dropped index history_bitmap of odd/t, version 4\n"
    assert ok(cli("drop", "odd/t", "--yes")) == "dropped table odd/t\n"


# --------------------------------------------------------------------------------------------
# errors
# --------------------------------------------------------------------------------------------


def test_unknown_table_is_one_clear_line(cli) -> None:
    for args in [("describe", "nope"), ("query", "nope"), ("history", "nope"),
                 ("revert", "nope"), ("snapshot", "nope", "x"),
                 ("search", "nope", "image", "a cat"), ("index", "ls", "nope"),
                 ("index", "add", "nope", "image", "--model", "clip:lakehouse/shapes-clip"),
                 ("index", "drop", "nope", "image"), ("ingest", "nope", "photos/")]:
        assert "'nope' does not exist" in one_error_line(cli(*args)), args


def test_bad_input_is_one_clear_line(cli, books: Path, tmp_path: Path) -> None:
    cases = {
        ("query", "books", "--where", "year >"): "where:",
        ("query", "books", "--where", "__import__('os').system('x')"): "where:",
        ("query", "books", "--where", "nope > 1"): "no column 'nope'",
        ("query", "books", "--select", "title, nope"): "no column 'nope'",
        ("query", "books", "--order-by", "nope"): "no column 'nope'",
        ("query", "books", "--where", "year + 1"): "not Bool",
        ("search", "books", "nope", "x"): "no column 'nope'",
        ("search", "books", "title", "x"): "index",
        ("search", "books", "title"): "give a text to search for, or --image PATH",
        ("search", "books", "title", "x", "--image", "p.png"): "not both",
        ("index", "add", "books", "title", "--model", "clip"): "not a model spec",
        ("index", "add", "books", "title", "--model", "sentence-transformers:/no/such"): "",
        ("query", "books", "-f", "json", "-o", str(tmp_path / "no" / "f.json")): "cannot write",
        ("ingest", "new", str(tmp_path / "none.parquet")): "no Parquet files",
    }
    for args, text in cases.items():
        assert text in one_error_line(cli(*args)), args


def test_errors_speak_the_command_line(cli, root: str, books: Path, tmp_path: Path) -> None:
    """Each error names the flag or command to use, never a Python argument or the storage
    engine's internals, in one line with exit code 1 (2 for a usage mistake)."""
    line = one_error_line(cli("query", "books", "--order-by", "nope"))
    assert line.startswith("Error: --order-by: ") and "no column 'nope'" in line
    neither = one_error_line(cli("search", "books", "title"))
    assert "give a text to search for, or --image PATH" in neither and "not both" not in neither
    assert "--model clip:..." in one_error_line(cli("index", "add", "books", "title"))
    duplicate = one_error_line(cli("query", "books", "--select", "title, title"))
    assert "--select has duplicate output names ['title']" in duplicate
    for text in (neither, duplicate):
        assert "select(" not in text and "=" not in text.replace("= ", "")

    # a damaged table: Lance's message, without its Rust source path and wrapper names
    versions = Path(root) / "damaged.lance" / "_versions"
    versions.mkdir(parents=True)
    (versions / "1.manifest").write_bytes(b"junk\n")
    damaged = one_error_line(cli("query", "damaged"))
    assert damaged.startswith("Error: cannot open table 'damaged' at ")
    assert ".rs:" not in damaged and "LanceError" not in damaged, damaged

    a_file = tmp_path / "not-a-folder"
    a_file.write_text("x")
    assert f"the lakehouse root {a_file} is a file, not a folder" in one_error_line(
        cli("create", "t", "-s", "a:int", "--root", str(a_file)))

    # usage mistakes: one line too, exit code 2, pointing at the command's help
    assert one_error_line(cli("query"), code=2) \
        == "Error: Missing argument 'TABLE'; see lakehouse query --help"
    assert "No such option: --nope; see lakehouse index ls --help" in one_error_line(
        cli("index", "ls", "books", "--nope"), code=2)
    assert "No such command 'nope'" in one_error_line(cli("nope"), code=2)


def test_unreachable_root_is_one_clear_line(run_cli) -> None:
    env = {**UNREACHABLE_S3_ENV, "LAKEHOUSE_ROOT": "s3://lh-unreachable/lh"}
    for args in (("describe", "books"), ("query", "books"), ("create", "t", "-s", "a:int")):
        one_error_line(run_cli(*args, env=env, timeout=120))


def test_debug_shows_the_traceback(cli, books: Path) -> None:
    proc = cli("--debug", "query", "books", "--where", "year >")
    assert proc.returncode != 0
    assert "Traceback" in proc.stderr


# --------------------------------------------------------------------------------------------
# S3
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", [pytest.param("s3", marks=pytest.mark.s3)], indirect=True)
def test_ingest_s3_shards_into_an_s3_root(run_cli, lakehouse_root, s3_bucket: str,
                                          s3_env: str) -> None:
    client = boto3.client("s3", endpoint_url=s3_env, region_name="us-east-1",
                          aws_access_key_id="testing", aws_secret_access_key="testing")
    for i in range(2):
        buffer = io.BytesIO()
        BOOKS.slice(2 * i, 2).write_parquet(buffer)
        client.put_object(Bucket=s3_bucket, Key=f"shards/train-{i}.parquet",
                          Body=buffer.getvalue())
    env = {"LAKEHOUSE_ROOT": lakehouse_root.uri}
    out = ok(run_cli("ingest", "books", f"s3://{s3_bucket}/shards/*.parquet", "--no-progress",
                      env=env))
    assert out == "wrote 4 rows (0 with errors) to books, version 2\n"
    rows = json.loads(ok(run_cli("query", "books", "--order-by", "year", "-s", "title, year",
                                  "-f", "json", env=env)))
    assert rows == BOOKS.sort("year").select("title", "year").to_dicts()
    assert ok(run_cli("ls", env=env)) == "books\n"


def test_hints_name_the_flags_not_python_arguments(tmp_path: Path) -> None:
    """Each library hint the command line rewrites, from the library's own errors."""
    from lakehouse_cli.common import command_line_hint

    db = lh.connect(tmp_path / "lh")
    t = db.create_table("t", {"s": lh.String, "a": lh.Image, "b": lh.Image})
    t.insert([{"s": "x"}], progress=False)
    t.snapshot("v1")
    t.add_index("s", kind="btree")
    cases = {
        lambda: db.create_table("t", {"s": lh.String}):
            "already exists; pass --if-exists ignore or --if-exists replace",
        lambda: db.create_table("d/t", {"s": lh.String}):
            "directory 'd' does not exist; pass --parents to create it",
        lambda: t.snapshot("v1"): "already has a snapshot 'v1'; pass --replace to move it",
        lambda: t.add_index("s", kind="btree"): "index; pass --replace to rebuild it",
        lambda: db.get_table("t:1").insert([{"s": "y"}], progress=False):
            "name the table without ':N' or '@NAME' for the latest version, or restore this "
            "one with lakehouse revert TABLE --to N",
        lambda: t.select(t.a.similarity("x")).collect():
            "add one with lakehouse index add t a --model ...",
        lambda: t.insert_files(str(tmp_path)): "name the one to fill with --column",
        lambda: t.insert([{"a": b"not an image"}], progress=False):
            "pass --on-error ignore to keep such rows",
        lambda: lh.parse_type("strin", column="c"):
            "'strin' is not a column type; use one of string, int, float,",
        lambda: t.add_embedding_index("s", progress=False):
            "needs --model clip:... for an image column or --model sentence-transformers:...",
        lambda: t.select(t.s, t.s).collect():
            "--select has duplicate output names ['s']; name them",
    }
    for call, hint in cases.items():
        with pytest.raises(lh.Error) as info:
            call()
        line = command_line_hint(str(info.value))
        assert hint in line, (str(info.value), line)
        assert not re.search(r"\w+=", line.replace("--", "")), line  # no Python argument left

    # the hints of errors that need a model, an iterator or a stored definition to provoke,
    # from the library's message text
    texts = {
        "has several embedding indexes ('a', 'b'); pick one with similarity(..., index=name)":
            "pick one with --index NAME",
        "fix or delete that row, or create the view with on_error='ignore' to skip such rows":
            "create the view with --on-error ignore to skip such rows",
        "if you trust it, pass lh.connect(..., trusted_models=['m']) or set "
        "LAKEHOUSE_TRUSTED_MODELS=m": "if you trust it, set LAKEHOUSE_TRUSTED_MODELS=m",
        "re-create the index with add_embedding_index(..., if_exists='replace')":
            "lakehouse index add TABLE COLUMN --model ... --replace",
        "'a b' is not a valid column name (...); rename them with rename={'a b': 'a_b'} or "
        "leave them out with schema={name: None}":
            "rename them in the source first ('a b': 'a_b')",
        "say what it holds with schema={'img': lh.Image} (or lh.Video, lh.Audio, lh.Document, "
        "lh.String), or leave it out with schema={'img': None}":
            "say what it holds with --schema img:image (or video, audio, document, string)",
    }
    for text, hint in texts.items():
        assert hint in command_line_hint(text), (text, command_line_hint(text))

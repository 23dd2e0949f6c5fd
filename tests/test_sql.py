"""SQL over the lakehouse's tables: ``db.sql`` joins and aggregates with Polars over lazy scans
of the tables a statement names (quoted names for directories and versions), leaves media out
or reads them as bytes, and refuses, with SQLRefusedError, any statement that would read a file
or do anything but read the lakehouse's tables: explicit attempts and generated junk. Local and
S3 through the ``db`` fixture."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from media_samples import ASTRONAUT, CAMERA, image_path

import lakehouse as lh
from lakehouse.export.sql import table_names

FILMS = [{"title": "Alien", "year": 1979, "director": "Scott"},
         {"title": "Heat", "year": 1995, "director": "Mann"},
         {"title": "Up", "year": 2009, "director": "Docter"},
         {"title": "Thief", "year": 1981, "director": "Mann"}]


@pytest.fixture
def films(db) -> lh.Table:
    t = db.create_table("films", {"title": lh.String, "year": lh.Int, "director": lh.String})
    t.insert(FILMS, progress=False)
    db.create_dir("people")
    born = db.create_table("people/directors", {"name": lh.String, "born": lh.Int})
    born.insert([{"name": "Mann", "born": 1943}, {"name": "Scott", "born": 1937}],
                progress=False)
    return t


def test_a_join_of_two_tables(db, films) -> None:
    frame = db.sql('SELECT f.title, d.born FROM films f JOIN "people/directors" d '
                   "ON f.director = d.name ORDER BY f.title")
    assert frame.rows() == [("Alien", 1937), ("Heat", 1943), ("Thief", 1943)]


def test_aggregates_and_ctes(db, films) -> None:
    frame = db.sql("WITH m AS (SELECT * FROM films WHERE director = 'Mann') "
                   "SELECT director, count(*) AS n, min(year) AS first FROM m GROUP BY director")
    assert frame.rows() == [("Mann", 2, 1981)]
    assert db.sql("SELECT count(*) AS n FROM films").item() == 4


def test_a_version_is_read_by_its_quoted_name(db, films) -> None:
    version = films.table_version
    films.delete(where=films.director == "Mann")
    assert db.sql("SELECT count(*) FROM films").item() == 2
    assert db.sql(f'SELECT count(*) FROM "films:{version}"').item() == 4


def test_media_are_left_out_or_read_as_bytes(db) -> None:
    t = db.create_table("pics", {"image": lh.Image, "label": lh.String})
    t.insert([{"image": str(image_path(n)), "label": n} for n in (ASTRONAUT, CAMERA)],
             progress=False)
    assert db.sql("SELECT * FROM pics").columns == ["label"]
    frame = db.sql(f"SELECT image FROM pics WHERE label = '{CAMERA}'", media="bytes")
    assert frame.item() == image_path(CAMERA).read_bytes()
    with pytest.raises(lh.InvalidOptionError, match="media must be one of"):
        db.sql("SELECT * FROM pics", media="uri")


HOSTILE = [
    "SELECT * FROM read_parquet('/etc/passwd')",
    "SELECT * FROM read_csv('/etc/passwd')",
    "select * from READ_CSV ( '/etc/passwd' )",
    "SELECT * FROM read_json('/etc/passwd')",
    "SELECT * FROM read_ipc('/etc/passwd')",
    'SELECT * FROM "read_csv"(\'/etc/passwd\')',
    "SELECT * FROM films JOIN read_csv('/etc/passwd') p ON true",
    "SELECT * FROM films WHERE title IN (SELECT * FROM read_csv('/etc/passwd'))",
    "SELECT * FROM read_csv/**/('/etc/passwd')",
    "COPY films TO '/tmp/films.csv'",
    "CREATE TABLE stolen AS SELECT * FROM films",
    "DROP TABLE films",
    "DELETE FROM films",
    "INSERT INTO films VALUES ('x', 1, 'y')",
    "SELECT 1; SELECT * FROM read_csv('/etc/passwd')",
    "SELECT * FROM films; DROP TABLE films",
    "SELECT * FROM people.directors",
    "SHOW TABLES",
    "EXPLAIN SELECT * FROM films",
]


def test_a_statement_that_is_not_a_read_of_tables_is_refused(db, films) -> None:
    for statement in HOSTILE:
        with pytest.raises(lh.SQLRefusedError):
            db.sql(statement)
    assert films.count() == 4 and db.list_tables() == ["films", "people/directors"]


def test_unknown_tables_and_bad_sql_are_named(db, films) -> None:
    with pytest.raises(lh.TableNotFoundError, match="'secrets'"):
        db.sql("SELECT * FROM secrets")
    with pytest.raises(lh.ExpressionSyntaxError, match="line 1, column"):
        db.sql("SELEC title FROM films")
    with pytest.raises(lh.ExpressionSyntaxError, match="sql: "):
        db.sql("SELECT no_such_column FROM films")
    with pytest.raises(lh.TypeMismatchError):
        db.sql(42)  # type: ignore[arg-type]


def test_only_the_named_tables_are_read() -> None:
    assert table_names('SELECT * FROM a JOIN "b/c" USING (id) '
                       "WHERE x IN (SELECT x FROM d)") == ["a", "b/c", "d"]
    assert table_names("WITH a AS (SELECT 1 AS x) SELECT * FROM a") == []


_FILE_CALLS = st.sampled_from(["read_csv", "read_parquet", "read_json", "READ_IPC", "scan_csv",
                               "Read_Ndjson"])
_NOISE = st.text(alphabet=st.sampled_from(list(" \t\n(),;'\"*/-=`[]abcxyz01_.")), max_size=12)


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(call=_FILE_CALLS, before=_NOISE, between=st.sampled_from(["", " ", "\n", "/**/", '"']),
       after=_NOISE)
def test_generated_file_reads_never_run(tmp_path: Path, call: str, before: str, between: str,
                                        after: str) -> None:
    """A statement holding a call of a file-reading table function is refused, whatever
    surrounds it; none reads the secret file."""
    secret = tmp_path / "secret.csv"
    secret.write_text("password\nhunter2\n")
    statement = f"SELECT * FROM {before}{call}{between}('{secret}'){after}"
    db = lh.connect(str(tmp_path / "lake"))
    with pytest.raises(lh.Error) as raised:
        db.sql(statement)
    assert "hunter2" not in str(raised.value)


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(junk=st.text(max_size=60))
def test_junk_is_a_lakehouse_error_or_a_frame(tmp_path: Path, junk: str) -> None:
    """Any text: a lakehouse error (typed) or a result, never another exception."""
    db = lh.connect(str(tmp_path / "lake"))
    try:
        result = db.sql(junk)
    except lh.Error:
        return
    assert isinstance(result, pl.DataFrame)

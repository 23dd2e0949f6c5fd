"""Views from the installed `lakehouse` command, run as a subprocess: `view create` with --where
and with --iterator, `view ls`, `describe` and `query` of a view, `drop` refused for a table with
views and `--cascade`; bad iterator text and bad options are one clear line, and create nothing.

The base table is made with the library (the CLI's create and ingest have their own tests); the
main test runs on both backends.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cli_checks import ok, one_error_line

import lakehouse as lh

FILMS = [
    {"title": "Alien", "year": 1979, "notes": "In space.\n\nNo one hears."},
    {"title": "Heat", "year": 1995, "notes": "A heist.\n\nA chase.\n\nThe end."},
    {"title": "Up", "year": 2009, "notes": "Balloons."},
]
SPLIT = "document_splitter(notes, separators=('paragraph',))"


@pytest.fixture
def films(db) -> lh.Table:
    t = db.create_table("films", {"title": lh.String, "year": lh.Int, "notes": lh.String})
    t.insert(FILMS, progress=False)
    return t


@pytest.fixture
def cli(run_cli, lakehouse_root):
    """run_cli with the lakehouse root of the current backend through LAKEHOUSE_ROOT."""

    def run(*args: str):
        return run_cli(*args, env={"LAKEHOUSE_ROOT": lakehouse_root.uri})

    return run


def test_create_list_describe_query_and_drop_views(cli, db, films: lh.Table) -> None:
    out = ok(cli("view", "create", "recent", "--base", "films", "--where", "year > 1990",
                  "--no-progress"))
    assert out.startswith("created view recent of films: 2 rows, version ")
    out = ok(cli("view", "create", "chunks", "--base", "films", "--iterator", SPLIT,
                  "--columns", "title", "--on-error", "ignore"))
    assert out.startswith("created view chunks of films: 6 rows, version ")

    rows = json.loads(ok(cli("query", "chunks", "--select", "title, pos, text",
                              "--order-by", "title, pos", "-f", "json")))
    assert rows == [{"title": f["title"], "pos": i, "text": text} for f in FILMS
                    for i, text in enumerate(f["notes"].split("\n\n"))]
    assert json.loads(ok(cli("query", "recent", "-s", "title", "-f", "json"))) \
        == [{"title": "Heat"}, {"title": "Up"}]

    films.insert([{"title": "Dune", "year": 2021, "notes": "Sand.\n\nWorms."}], progress=False)
    base_version = films.table_version
    listed = json.loads(ok(cli("view", "ls", "-f", "json")))
    assert listed == [{"view": v, "base": "films", "base_version": base_version,
                       "base_latest": base_version, "lag": 0} for v in ("chunks", "recent")]
    described = ok(cli("describe", "chunks")).splitlines()
    assert described[0] == f"view chunks: version {db.get_table('chunks').table_version}, " \
                           "8 rows"
    assert described[1] == f"base films: version {base_version} reflected, latest " \
                           f"{base_version}, lag 0"
    assert "document_splitter(notes, separators=" in "\n".join(described[2:])
    pinned = ok(cli("view", "create", "old", "--base", f"films:{base_version - 1}"))
    assert pinned.startswith("created view old of films:")  # a view of a version stays there
    assert "lag 0" in ok(cli("describe", "old"))

    error = one_error_line(cli("drop", "films", "--yes"))
    assert error == "Error: table 'films' has views 'chunks', 'old', 'recent'; drop them " \
                    "first, or pass --cascade to drop them too"
    assert db.list_tables() == ["chunks", "films", "old", "recent"]
    assert ok(cli("drop", "recent", "--yes")) == "dropped view recent\n"
    assert ok(cli("drop", "films", "--yes", "--cascade")) == "dropped table films\n"
    assert db.list_tables() == []
    assert "films" not in ok(cli("view", "ls"))  # no views left


@pytest.mark.parametrize("backend", ["local"], indirect=True)
def test_bad_view_options_are_one_clear_line_and_create_nothing(cli, db, films: lh.Table,
                                                                tmp_path: Path) -> None:
    builtins = "(document_splitter, frame_iterator, tile_iterator, audio_splitter)"
    cases = {
        ("--iterator", "chunker(notes)"): f"'chunker' is not an iterator: only a built-in "
                                          f"iterator can be named here {builtins}",
        ("--iterator", "__import__('os').system('touch pwned')"):
            "cannot call \"__import__('os').system\": only a built-in iterator",
        ("--iterator", "notes.split('\\n')"): "cannot call 'notes.split'",
        ("--iterator", "my_module:chunks(notes)"): "'my_module:chunks' names a user iterator; "
                                                   "a user iterator runs code of its module",
        ("--on-error", "skip"): "--on-error must be one of 'abort', 'ignore', got 'skip'",
        ("--columns", "title,,year"): "--columns 'title,,year' has an empty name",
    }
    for option, message in cases.items():
        error = one_error_line(cli("view", "create", "v", "--base", "films", *option))
        assert message in error, (option, error)
        assert "=True" not in error and "on_error" not in error
    assert not (tmp_path / "pwned").exists()
    assert db.list_tables() == ["films"]
    assert lh.Table.history(films).height == 2  # the base is as it was: created, inserted

"""Branches from the installed `lakehouse` command, run as a subprocess: `branch` (from the
latest version, --from a version or snapshot, --delete), `branches`, reading and writing
TABLE#BRANCH with the other commands, and `promote`; mistakes are one clear line that names
the fix in command-line words, and change nothing.

The table is made with the library; the main test runs on both backends.
"""

from __future__ import annotations

import json

import pytest
from cli_checks import ok, one_error_line

import lakehouse as lh


@pytest.fixture
def films(db) -> lh.Table:
    t = db.create_table("films", {"title": lh.String, "year": lh.Int})
    t.insert([{"title": "Alien", "year": 1979}, {"title": "Up", "year": 2009}], progress=False)
    return t


@pytest.fixture
def cli(run_cli, lakehouse_root):
    """run_cli with the lakehouse root of the current backend through LAKEHOUSE_ROOT."""

    def run(*args: str, **kwargs):
        return run_cli(*args, env={"LAKEHOUSE_ROOT": lakehouse_root.uri}, **kwargs)

    return run


def _titles(cli, table: str) -> list[str]:
    rows = json.loads(ok(cli("query", table, "--format", "json")))
    return sorted(row["title"] for row in rows)


def test_branch_write_list_promote_and_delete(cli, db, films, tmp_path) -> None:
    out = ok(cli("branch", "films", "dev"))
    assert out.startswith("branch films#dev made from version 2;")
    rows = tmp_path / "new.jsonl"
    rows.write_text('{"title": "Ran", "year": 1985}\n')
    ok(cli("ingest", "films#dev", str(rows), "--no-progress"))
    assert _titles(cli, "films#dev") == ["Alien", "Ran", "Up"]
    assert _titles(cli, "films") == ["Alien", "Up"]
    assert _titles(cli, "films#dev:2") == ["Alien", "Up"]
    listing = json.loads(ok(cli("branches", "films", "--format", "json")))
    assert [(b["branch"], b["parent_version"], b["latest_version"]) for b in listing] == \
        [("dev", 2, 3)]
    assert "films#dev" in ok(cli("describe", "films#dev"))
    assert ok(cli("diff", "films", "#dev")).startswith(
        "films#dev: version 2 -> 3: 1 inserted, 0 updated, 0 deleted")
    out = ok(cli("promote", "films#dev", "--no-progress"))
    assert out == "promoted films#dev: films is now version 3\n"
    assert _titles(cli, "films") == ["Alien", "Ran", "Up"]
    assert ok(cli("branch", "films", "dev", "--delete")) == "deleted branch dev of films\n"
    assert json.loads(ok(cli("branches", "films", "--format", "json"))) == []
    assert db.get_table("films").count() == 3


def test_branch_from_a_version_or_a_snapshot(cli, films) -> None:
    films.snapshot("v1")
    films.insert([{"title": "Jaws", "year": 1975}], progress=False)
    assert ok(cli("branch", "films", "old", "--from", "1")).startswith(
        "branch films#old made from version 1;")
    assert ok(cli("branch", "films", "snap", "--from", "v1")).startswith(
        "branch films#snap made from version 2;")
    assert ok(cli("branch", "films:2", "pinned")).startswith(
        "branch films#pinned made from version 2;")
    assert _titles(cli, "films#snap") == ["Alien", "Up"]


@pytest.mark.parametrize("backend", ["local"], indirect=True)
def test_mistakes_are_one_line_and_change_nothing(cli, db, films) -> None:
    ok(cli("branch", "films", "dev"))
    films.insert([{"title": "Jaws", "year": 1975}], progress=False)
    line = one_error_line(cli("promote", "films#dev"))
    assert "moved from version 2" in line and "BranchDivergedError" not in line
    assert _titles(cli, "films") == ["Alien", "Jaws", "Up"]
    line = one_error_line(cli("promote", "films"))
    assert "not a branch" in line and "films#dev" in line
    line = one_error_line(cli("query", "films#nope"))
    assert "has no branch 'nope'" in line and "lakehouse branch films nope" in line
    line = one_error_line(cli("branch", "films", "dev"))
    assert "lakehouse branch films dev --delete" in line
    line = one_error_line(cli("branch", "films", "main", "--delete"))
    assert "lakehouse drop films" in line
    line = one_error_line(cli("branch", "films", "../x"))  # the library tests try many more
    assert "invalid branch name" in line
    line = one_error_line(cli("branch", "films", "x", "--from", "1", "--delete"))
    assert "--from" in line
    one_error_line(cli("branch", "films", "x", "--from", "nope"))
    assert [b["branch"] for b in json.loads(
        ok(cli("branches", "films", "--format", "json")))] == ["dev"]


def test_promote_a_second_time(cli, films, tmp_path) -> None:
    ok(cli("branch", "films", "dev"))
    rows = tmp_path / "new.jsonl"
    rows.write_text('{"title": "Ran", "year": 1985}\n')
    ok(cli("ingest", "films#dev", str(rows), "--no-progress"))
    assert ok(cli("promote", "films#dev", "--no-progress")) == \
        "promoted films#dev: films is now version 3\n"
    assert ok(cli("diff", "films", "#dev")).startswith(
        "films#dev: version 3 -> 3: 0 inserted, 0 updated, 0 deleted")
    rows.write_text('{"title": "Jaws", "year": 1975}\n')
    ok(cli("ingest", "films#dev", str(rows), "--no-progress"))
    assert ok(cli("diff", "films", "#dev")).startswith(
        "films#dev: version 3 -> 4: 1 inserted, 0 updated, 0 deleted")
    assert ok(cli("promote", "films#dev", "--no-progress")) == \
        "promoted films#dev: films is now version 4\n"
    assert _titles(cli, "films") == ["Alien", "Jaws", "Ran", "Up"]
    ok(cli("ingest", "films", str(rows), "--no-progress"))  # the main line moves on its own
    line = one_error_line(cli("promote", "films#dev"))
    assert "to 5, and its version 5 (insert) is not a promote" in line
    assert "make a new branch from version 5" in line

"""t.diff(a, b): the rows inserted, updated and deleted between two versions, and the schema
changes; checked after each kind of write, on local and S3, against a plain Python model of
random writes, and from the command line."""

from __future__ import annotations

import itertools
import json

import polars as pl
import pytest
from cli_checks import ok, one_error_line
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from media_samples import image_path

import lakehouse as lh


@pytest.fixture
def people(db):
    t = db.create_table("people", {"k": lh.Int, "name": lh.String, "n": lh.Int})
    t.insert([{"k": i, "name": f"p{i}", "n": i * 10} for i in range(5)], progress=False)
    return t


def _keys(t: lh.Table) -> dict[int, int]:
    """Row id -> k, at the version the handle reads."""
    table = t.table_state().dataset.to_table(columns=["k"], with_row_id=True)
    return dict(zip(table.column("_rowid").to_pylist(), table.column("k").to_pylist(),
                    strict=True))


def test_insert_update_delete(people):
    t = people
    start = t.version
    t.insert([{"k": 9, "name": "new", "n": 90}], progress=False)
    t.update({"n": t.n + 1}, where=t.k == 1, progress=False)
    t.delete(where=t.k == 3)
    d = t.diff(start)
    assert (d.before, d.after) == (start, t.version)
    assert d.inserted.drop("_rowid").rows() == [(9, "new", 90)]
    assert d.deleted.drop("_rowid").rows() == [(3, "p3", 30)]
    # the update is an update (old and new values of the changed column), not delete + insert
    assert d.updated.columns == ["_rowid", "_rowid_before", "changed", "n"]
    assert d.updated.select("changed", "n").rows() == [(["n"], {"before": 10, "after": 11})]
    assert _keys(t)[d.updated["_rowid"][0]] == 1
    assert d.schema.height == 0
    assert d.summary() == (f"people: version {start} -> {t.version}: 1 inserted, 1 updated, "
                           "1 deleted, 0 schema changes")
    # one frame, with the kind of each change
    changes = d.changes()
    assert changes["change"].to_list() == ["insert", "update", "delete"]
    assert changes.filter(pl.col("change") == "update")["before"].to_list() == [{"n": 10}]


def test_several_updates_of_a_row_are_one_update_and_the_diff_runs_backwards(people):
    t = people
    start = t.version
    t.update({"name": "a"}, where=t.k <= 1, progress=False)
    t.update({"name": "b"}, where=t.k == 1, progress=False)
    t.update({"n": 0}, where=t.k == 0, progress=False)  # 0 already: no change
    d = t.diff(start)
    assert d.inserted.height == d.deleted.height == 0
    by_key = {_keys(t)[r]: v for r, v in zip(d.updated["_rowid"], d.updated["name"],
                                             strict=True)}
    assert by_key == {0: {"before": "p0", "after": "a"}, 1: {"before": "p1", "after": "b"}}
    back = t.diff(t.version, start)
    assert sorted(v["after"] for v in back.updated["name"]) == ["p0", "p1"]
    assert t.diff(start, start).changes().height == 0


def test_an_update_before_and_after_a_compaction_is_still_an_update(db):
    """Compaction rewrites fragments and keeps row ids: the rows updated on either side of it
    are paired with the rows they replaced."""
    t = db.create_table("small", {"k": lh.Int, "v": lh.Int})
    for k in range(6):
        t.insert([{"k": k, "v": 0}], progress=False)
    start = t.version
    t.update({"v": t.k + 100}, where=t.k.isin([1, 4]), progress=False)
    t.optimize(progress=False)
    t.update({"v": t.k + 200}, where=t.k.isin([4, 5]), progress=False)
    d = t.diff(start)
    keys = _keys(t)
    assert {keys[r]: v for r, v in zip(d.updated["_rowid"], d.updated["v"], strict=True)} == {
        1: {"before": 0, "after": 101}, 4: {"before": 0, "after": 204},
        5: {"before": 0, "after": 205}}
    assert d.inserted.height == d.deleted.height == 0


def test_versions_by_snapshot_and_a_missing_one(people):
    t = people
    t.snapshot("before")
    t.delete(where=t.k == 0)
    t.snapshot("after")
    t.insert([{"k": 7, "name": "x", "n": 1}], progress=False)
    d = t.diff("before", "after")
    assert (d.deleted.height, d.inserted.height) == (1, 0)
    assert t.diff("before").inserted["k"].to_list() == [7]
    with pytest.raises(lh.VersionNotFoundError, match="'people' has no snapshot 'nope' "
                       r"\(snapshots: 'after', 'before'\)"):
        t.diff("nope")
    with pytest.raises(lh.VersionNotFoundError, match="'people' has no version 999"):
        t.diff(1, 999)


def test_schema_changes(people):
    t = people
    start = t.version
    t.add_column(note=lh.String)
    t.add_computed_column(twice=t.n * 2, progress=False)
    t.drop_column("note")
    t.rename_column("name", "label")
    t.add_index("k")
    d = t.diff(start)
    assert d.schema.rows() == [
        ("rename column", "label", "name", "label"),
        ("add column", "twice", None, "Int = (n * 2)"),
        ("add index", "k_btree", None, "k_btree"),
    ]
    assert d.updated.height == d.inserted.height == d.deleted.height == 0  # no row changed
    # a computed column redefined under the same name is a changed column
    mid = t.version
    t.add_computed_column(twice=t.n * 3, if_exists="replace", progress=False)
    t.drop_column("label")
    assert t.diff(mid).schema.rows() == [
        ("drop column", "label", "String", None),
        ("change column", "twice", "Int = (n * 2)", "Int = (n * 3)"),
    ]


def test_embedding_index_added_and_dropped(db):
    t = db.create_table("vecs", {"v": lh.Array[(2,), "float32"]})
    t.insert([{"v": [1.0, 0.0]}], progress=False)
    start = t.version
    t.add_embedding_index("v", progress=False)
    d = t.diff(start)
    assert d.schema.select("change", "name").rows() == [("add embedding index", "v")]
    assert d.schema["after"][0].startswith("v: vectors")
    t.drop_embedding_index("v")
    assert t.diff(start).schema.height == 0
    assert t.diff(start + 1).schema["change"].to_list() == ["drop embedding index"]


def test_media_values_show_a_size_not_their_bytes(db):
    t = db.create_table("pics", {"k": lh.Int, "image": lh.Image})
    start = t.version
    picture = image_path("astronaut.png").read_bytes()
    t.insert([{"k": 1, "image": picture}], progress=False)
    d = t.diff(start)
    assert d.inserted["image"].to_list() == [f"<{len(picture)} bytes>"]


# --- a differential test against a plain model ---------------------------------------------------
_names = itertools.count()
_op = st.one_of(
    st.tuples(st.just("insert"), st.lists(st.integers(0, 9), min_size=1, max_size=3)),
    st.tuples(st.just("update"), st.sets(st.integers(0, 30), max_size=4), st.integers(0, 3)),
    st.tuples(st.just("delete"), st.sets(st.integers(0, 30), max_size=3)),
)


@settings(max_examples=12, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=st.lists(_op, max_size=6), split=st.integers(0, 6), indexed=st.booleans())
def test_diff_equals_a_plain_model(lakehouse_root, ops, split, indexed):
    """Random inserts, updates and deletes on a table and on a dict (k -> v); the diff between
    any two versions equals the model's difference of the same two states. An update sets a
    value that depends on the row, so a row paired with the wrong one would show; with an
    index on k, updates find their rows through it."""
    if lakehouse_root.uri.startswith("s3://"):
        ops = ops[:3]  # fewer writes on S3: each is a few requests
    db = lh.connect(lakehouse_root.uri, storage_options=lakehouse_root.storage_options)
    t = db.create_table(f"model{next(_names)}", {"k": lh.Int, "v": lh.Int})
    if indexed:
        t.add_index("k")
    model: dict[int, int] = {}
    states = [(t.version, dict(model))]
    next_key = itertools.count()
    for op in ops:
        if op[0] == "insert":
            rows = [{"k": next(next_key), "v": v} for v in op[1]]
            t.insert(rows, progress=False)
            model.update({r["k"]: r["v"] for r in rows})
        elif op[0] == "update":
            keys, value = sorted(op[1]), op[2]
            t.update({"v": t.k * 10 + value}, where=t.k.isin(keys), progress=False)
            model.update({k: k * 10 + value for k in keys if k in model})
        else:
            keys = sorted(op[1])
            t.delete(where=t.k.isin(keys))
            model = {k: v for k, v in model.items() if k not in keys}
        states.append((t.version, dict(model)))
    (a, old), (b, new) = states[min(split, len(states) - 1)], states[-1]
    d = t.diff(a, b)
    assert dict(d.inserted.select("k", "v").rows()) == {k: new[k] for k in new.keys() - old}
    assert dict(d.deleted.select("k", "v").rows()) == {k: old[k] for k in old.keys() - new}
    keys = _keys(t)
    updated = {keys[r]: (v["before"], v["after"]) for r, v in zip(
        d.updated["_rowid"], d.updated["v"] if "v" in d.updated.columns else [], strict=True)}
    assert updated == {k: (old[k], new[k]) for k in old.keys() & new.keys() if old[k] != new[k]}


# --- command line --------------------------------------------------------------------------------
def test_cli_diff_prints_a_summary_and_the_rows(cli, root: str):
    t = lh.connect(root).create_table("books", {"title": lh.String, "n": lh.Int})
    t.insert([{"title": "a", "n": 1}, {"title": "b", "n": 2}], progress=False)
    start = t.version
    t.update({"n": 5}, where=t.title == "a", progress=False)
    t.add_column(note=lh.String)
    shown = ok(cli("diff", "books", str(start)))
    assert shown.startswith(f"books: version {start} -> {t.version}: 0 inserted, 1 updated")
    assert "add column" in shown and "update" in shown
    rows = json.loads(ok(cli("diff", "books", str(start), str(start + 1), "-f", "json")))
    assert [(r["change"], r["n"], r["before"]) for r in rows] == [("update", 5, {"n": 1})]
    assert "has no version 99" in one_error_line(cli("diff", "books", "99"))

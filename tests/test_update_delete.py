"""update / delete / add_column / drop_column / rename_column: results, recomputation of exactly
the dependent computed columns for exactly the changed rows, validation before anything is
written, one Lance commit per call, and filters that no string literal can break out of.
Every test runs on both backends."""

from __future__ import annotations

import json
import textwrap

import lance
import pytest
import udfs_for_tests as U

import lakehouse as lh
from lakehouse.queries import Filter


def _dataset(t: lh.Table, root) -> lance.LanceDataset:
    return lance.dataset(t.uri, storage_options=root.storage_options)


def _rows(t: lh.Table, *columns: str, key: str = "k") -> list[dict]:
    q = t.order_by(t[key])
    if columns:
        q = q.select(*(t[c] for c in columns))
    return q.collect().to_dicts()


def _people(db) -> lh.Table:
    t = db.create_table("people", {"k": lh.Int, "n": lh.Int, "x": lh.Float, "label": lh.String})
    t.insert([{"k": i, "n": i * 10, "x": i / 2, "label": lab}
              for i, lab in enumerate(["a", "b", "a", "c", None])], progress=False)
    return t


# --------------------------------------------------------------------------------------------
# update
# --------------------------------------------------------------------------------------------


def test_update_with_literal(db):
    t = _people(db)
    before = t.version
    result = t.update({"label": "big", "x": 9.5}, where=t.n >= 30, progress=False)
    assert result == lh.WriteResult(rows_written=2, rows_with_errors=0, version=before + 1)
    assert t.version == before + 1
    assert _rows(t, "k", "x", "label") == [
        {"k": 0, "x": 0.0, "label": "a"},
        {"k": 1, "x": 0.5, "label": "b"},
        {"k": 2, "x": 1.0, "label": "a"},
        {"k": 3, "x": 9.5, "label": "big"},
        {"k": 4, "x": 9.5, "label": "big"},
    ]
    assert t.at(before).where(t.label == "big").count() == 0


def test_update_with_expressions(db):
    t = _people(db)
    before = t.version
    result = t.update({"n": t.n + 1, "x": t.n * 2, "label": t.label + "!"},
                      where=t.label == "a", progress=False)
    assert (result.rows_written, result.version) == (2, before + 1)
    assert _rows(t, "n", "x", "label") == [
        {"n": 1, "x": 0.0, "label": "a!"},
        {"n": 10, "x": 0.5, "label": "b"},
        {"n": 21, "x": 40.0, "label": "a!"},  # values read the row as it was before
        {"n": 30, "x": 1.5, "label": "c"},
        {"n": 40, "x": 2.0, "label": None},
    ]


def test_update_all_rows_and_to_null(db):
    t = _people(db)
    before = t.version
    result = t.update({"label": None, "n": -t.n}, progress=False)
    assert result == lh.WriteResult(5, 0, before + 1)
    assert _rows(t, "n", "label") == [{"n": -10 * i, "label": None} for i in range(5)]
    assert t.count() == 5


def test_update_where_is_pushed_to_lance_sql_or_evaluated_in_polars(db):
    t = _people(db)
    tdef = t.table_definition
    pushed = Filter.split((t.n > 10) & t.label.isin(["a", "c"]), tdef)
    assert pushed.sql is not None and pushed.residual is None
    mixed = Filter.split((t.n > 10) & U.is_even(t.k), tdef)
    assert mixed.sql is not None and mixed.residual is not None

    result = t.update({"label": "pushed"}, where=(t.n > 10) & t.label.isin(["a", "c"]),
                      progress=False)
    assert result.rows_written == 2
    assert _rows(t, "label") == [
        {"label": "a"}, {"label": "b"}, {"label": "pushed"}, {"label": "pushed"}, {"label": None}]


def test_update_where_with_udf(db):
    t = _people(db)
    U.reset()
    before = t.version
    result = t.update({"label": "even"}, where=U.is_even(t.k) & (t.k > 0), progress=False)
    assert (result.rows_written, result.version) == (2, before + 1)
    assert _rows(t, "k", "label") == [
        {"k": 0, "label": "a"}, {"k": 1, "label": "b"}, {"k": 2, "label": "even"},
        {"k": 3, "label": "c"}, {"k": 4, "label": "even"}]
    # the pushable part ran in Lance: the UDF only saw rows with k > 0
    assert sorted(U.CALLS["is_even"]) == [1, 2, 3, 4]


def test_update_where_on_computed_column(db):
    t = _people(db)
    t.add_computed_column(n2=t.n * 2, progress=False)
    t.update({"label": "hi"}, where=t.n2 > 50, progress=False)
    assert _rows(t, "k", "label")[3:] == [{"k": 3, "label": "hi"}, {"k": 4, "label": "hi"}]


def test_update_recomputes_only_dependents_for_changed_rows(db):
    t = db.create_table("t", {"k": lh.Int, "a": lh.Int, "b": lh.Int, "s": lh.String})
    t.insert([{"k": i, "a": i, "b": 100 + i, "s": f"s{i}"} for i in range(4)], progress=False)
    t.add_computed_column(ca=U.times_ten(t.a), progress=False)
    t.add_computed_column(cb=U.plus_one(t.b), progress=False)
    t.add_computed_column(cs=U.shout(t.s), progress=False)
    t.add_computed_column(native=t.a + t.b, progress=False)
    U.reset()
    before = t.version
    result = t.update({"a": 7}, where=t.k == 2, progress=False)
    assert result == lh.WriteResult(1, 0, before + 1)
    assert dict(U.CALLS) == {"times_ten": [7]}  # not cb, not cs, and only the changed row
    assert _rows(t) == [
        {"k": 0, "a": 0, "b": 100, "s": "s0", "ca": 0, "cb": 101, "cs": "S0!", "native": 100},
        {"k": 1, "a": 1, "b": 101, "s": "s1", "ca": 10, "cb": 102, "cs": "S1!", "native": 102},
        {"k": 2, "a": 7, "b": 102, "s": "s2", "ca": 70, "cb": 103, "cs": "S2!", "native": 109},
        {"k": 3, "a": 3, "b": 103, "s": "s3", "ca": 30, "cb": 104, "cs": "S3!", "native": 106},
    ]

    U.reset()
    t.update({"s": "new"}, where=t.k >= 2, progress=False)
    assert dict(U.CALLS) == {"shout": ["new", "new"]}
    assert [r["cs"] for r in _rows(t)] == ["S0!", "S1!", "NEW!", "NEW!"]
    assert [r["ca"] for r in _rows(t)] == [0, 10, 70, 30]


def test_update_recomputes_transitive_dependents(db):
    t = db.create_table("t", {"k": lh.Int, "a": lh.Int, "b": lh.Int})
    t.insert([{"k": i, "a": i, "b": i} for i in range(3)], progress=False)
    t.add_computed_column(c1=U.times_ten(t.a), progress=False)
    t.add_computed_column(c2=U.plus_one(t.c1), progress=False)
    t.add_computed_column(c3=t.c2 * 2, progress=False)
    t.add_computed_column(c4=U.shout(t.c3.astype(lh.String)), progress=False)
    t.add_computed_column(other=U.plus_one(t.b), progress=False)
    U.reset()
    t.update({"a": 5}, where=t.k == 1, progress=False)
    assert dict(U.CALLS) == {"times_ten": [5], "plus_one": [50], "shout": ["102"]}
    assert _rows(t, "c1", "c2", "c3", "c4", "other") == [
        {"c1": 0, "c2": 1, "c3": 2, "c4": "2!", "other": 1},
        {"c1": 50, "c2": 51, "c3": 102, "c4": "102!", "other": 2},
        {"c1": 20, "c2": 21, "c3": 42, "c4": "42!", "other": 3},
    ]


def test_update_value_from_another_column_recomputes_dependents(db):
    t = db.create_table("t", {"k": lh.Int, "a": lh.Int, "b": lh.Int})
    t.insert([{"k": 0, "a": 1, "b": 5}, {"k": 1, "a": 2, "b": 6}], progress=False)
    t.add_computed_column(ca=U.times_ten(t.a), progress=False)
    U.reset()
    t.update({"a": t.b + 1}, progress=False)
    assert sorted(U.CALLS["times_ten"]) == [6, 7]
    assert _rows(t, "a", "ca") == [{"a": 6, "ca": 60}, {"a": 7, "ca": 70}]


def test_update_clears_and_records_errors_of_ignore_columns(db):
    t = db.create_table("t", {"k": lh.Int, "n": lh.Int})
    t.insert([{"k": 0, "n": -1}, {"k": 1, "n": 2}], progress=False)
    t.add_computed_column(c=U.picky(t.n), on_error="ignore", progress=False)
    result = t.update({"n": t.n * -1}, progress=False)
    assert (result.rows_written, result.rows_with_errors) == (2, 1)
    df = t.order_by(t.k).select(t.n, t.c, e=t.c.errortype, m=t.c.errormsg).collect()
    assert df.to_dicts() == [
        {"n": 1, "c": 2, "e": None, "m": None},
        {"n": -2, "c": None, "e": "ValueError", "m": "negative input -2"},
    ]


def test_update_failing_abort_column_leaves_table_unchanged(db):
    t = db.create_table("t", {"k": lh.Int, "n": lh.Int})
    t.insert([{"k": 0, "n": 1}, {"k": 1, "n": 2}], progress=False)
    t.add_computed_column(c=U.picky(t.n), progress=False)
    before = t.version
    with pytest.raises(lh.ComputeError, match="udfs_for_tests:picky"):
        t.update({"n": -5}, where=t.k == 1, progress=False)
    assert t.version == before
    assert _rows(t, "n", "c") == [{"n": 1, "c": 2}, {"n": 2, "c": 4}]


def test_update_of_computed_column_is_refused(db):
    t = _people(db)
    t.add_computed_column(n2=t.n * 2, progress=False)
    before = t.version
    with pytest.raises(lh.Error, match="computed"):
        t.update({"n2": 5}, progress=False)
    with pytest.raises(lh.Error, match="computed"):
        t.update({"label": "z", "n2": 5}, progress=False)
    assert t.version == before
    assert [r["n2"] for r in _rows(t)] == [0, 20, 40, 60, 80]
    assert [r["label"] for r in _rows(t)] == ["a", "b", "a", "c", None]


BAD_VALUES = {
    "str_in_int": ({"n": "abc"}, lh.TypeMismatchError),
    "float_in_int": ({"n": 1.5}, lh.TypeMismatchError),
    "bool_in_int": ({"n": True}, lh.TypeMismatchError),
    "int_in_string": ({"label": 5}, lh.TypeMismatchError),
    "name_as_string": ({"n": "label"}, lh.TypeMismatchError),
    "unknown_column": ({"nope": 1}, lh.ColumnNotFoundError),
    "valid_then_bad": ({"label": "ok", "n": "bad"}, lh.TypeMismatchError),
    "nothing": ({}, lh.InvalidOptionError),
}


def test_update_with_bad_values_is_refused(db):
    t = _people(db)
    before, data = t.version, _rows(t)
    outcome = {}
    for case, (values, error) in BAD_VALUES.items():
        try:
            t.update(values, where=t.k == 1, progress=False)
            outcome[case] = "accepted"
        except error:
            outcome[case] = "refused"
        except Exception as exc:
            outcome[case] = f"{type(exc).__name__}: {exc}"
    assert outcome == dict.fromkeys(BAD_VALUES, "refused")
    assert t.version == before
    assert _rows(t) == data


def test_update_with_mistyped_expression_or_null_in_required_is_refused(db):
    t = db.create_table("t", {"k": lh.Required(lh.Int), "n": lh.Int, "s": lh.String})
    t.insert([{"k": 1, "n": 1, "s": "a"}], progress=False)
    other = db.create_table("other", {"z": lh.Int, "w": lh.Int})
    before, data = t.version, _rows(t)
    with pytest.raises(lh.TypeMismatchError):
        t.update({"n": t.s}, progress=False)
    with pytest.raises(lh.TypeMismatchError):
        t.update({"s": t.n + 1}, progress=False)
    with pytest.raises(lh.TypeMismatchError, match="'k'"):
        t.update({"k": None}, progress=False)
    with pytest.raises(lh.ColumnNotFoundError):
        t.update({"n": other.w}, progress=False)  # a column of another table
    with pytest.raises(lh.ColumnNotFoundError):
        t.update({"n": 5}, where=other.w == 1, progress=False)
    with pytest.raises(lh.TypeMismatchError):
        t.update({"n": 5}, where=t.n + 1, progress=False)  # not a Bool condition
    assert t.version == before
    assert _rows(t) == data


def test_update_int_into_float_column(db):
    t = _people(db)
    t.update({"x": 3}, where=t.k == 0, progress=False)
    t.update({"x": t.n}, where=t.k == 1, progress=False)
    assert [r["x"] for r in _rows(t)][:2] == [3.0, 10.0]


def test_update_is_one_version_per_call_and_in_history(db):
    t = _people(db)
    t.add_computed_column(loud=U.shout(t.label), progress=False)
    versions = [t.version]
    for i in range(3):
        t.update({"n": t.n + i, "label": f"v{i}"}, where=t.k <= i, progress=False)
        versions.append(t.version)
    assert versions == list(range(versions[0], versions[0] + 4))
    history = t.history(limit=3)  # newest first
    assert history["version"].to_list() == versions[:0:-1]
    assert history["rows_added"].to_list() == [0, 0, 0]
    assert history["total_rows"].to_list() == [5, 5, 5]
    assert _rows(t, "n", "loud") == [
        {"n": 3, "loud": "V2!"}, {"n": 13, "loud": "V2!"}, {"n": 22, "loud": "V2!"},
        {"n": 30, "loud": "C!"}, {"n": 40, "loud": None}]
    assert t.at(versions[1]).order_by(t.k).collect()["label"].to_list()[:2] == ["v0", "b"]


def test_update_then_insert_keeps_row_keys_unique(db):
    t = _people(db)
    t.update({"n": 0}, progress=False)
    t.insert([{"k": 9, "n": 1}], progress=False)
    t.update({"label": "nine"}, where=t.k == 9, progress=False)
    assert t.where(t.label == "nine").count() == 1
    assert t.count() == 6


def test_crash_during_update_leaves_previous_version(db, lakehouse_root, run_python, tmp_path):
    t = db.create_table("t", {"k": lh.Int, "n": lh.Int})
    t.insert([{"k": i, "n": i} for i in range(5)], progress=False)
    t.add_computed_column(c=U.exit_on_13(t.n), progress=False)
    before, data = t.version, _rows(t)
    cwd = tmp_path / "child"
    cwd.mkdir()  # not tmp_path: its 'lakehouse' folder would shadow the package
    code = f"""
        import lakehouse as lh
        db = lh.connect({lakehouse_root.uri!r}, storage_options={lakehouse_root.storage_options!r})
        t = db.get_table("t")
        t.update({{"n": t.n + 10}}, progress=False)  # n=3 becomes 13: the process dies
        print("not reached")
    """
    proc = run_python(textwrap.dedent(code), cwd=cwd,
                      env={"PYTHONPATH": U.TESTS_DIR, "LH_TEST_ALLOW_EXIT": "1"})
    assert proc.returncode == 13, proc.stderr
    assert "not reached" not in proc.stdout
    again = lh.connect(lakehouse_root.uri, storage_options=lakehouse_root.storage_options)
    t = again.get_table("t")
    assert t.version == before
    assert _rows(t) == data
    t.update({"n": t.n + 1}, progress=False)  # the table is still writable
    assert t.version == before + 1
    assert [r["c"] for r in _rows(t)] == [1, 2, 3, 4, 5]


# --------------------------------------------------------------------------------------------
# delete
# --------------------------------------------------------------------------------------------


def test_delete_with_where(db):
    t = _people(db)
    before = t.version
    result = t.delete(where=(t.n > 10) & (t.label != "c"))
    assert result == lh.WriteResult(rows_written=1, rows_with_errors=0, version=before + 1)
    assert [r["k"] for r in _rows(t)] == [0, 1, 3, 4]
    result = t.delete(where=t.label.is_null())
    assert (result.rows_written, result.version) == (1, before + 2)
    assert [r["k"] for r in _rows(t)] == [0, 1, 3]
    assert t.at(before).count() == 5


def test_delete_all(db):
    t = _people(db)
    before = t.version
    result = t.delete()
    assert (result.rows_written, result.version) == (5, before + 1)
    assert t.count() == 0
    assert t.collect().height == 0
    t.insert([{"k": 7}], progress=False)
    assert _rows(t, "k") == [{"k": 7}]


def test_delete_with_udf_where(db):
    t = _people(db)
    before = t.version
    result = t.delete(where=U.is_even(t.k) | (t.label == "b"))
    assert (result.rows_written, result.version) == (4, before + 1)
    assert _rows(t, "k") == [{"k": 3}]


def test_delete_on_computed_and_error_columns(db):
    t = db.create_table("t", {"n": lh.Int})
    t.insert([{"n": v} for v in (-2, -1, 0, 1)], progress=False)
    t.add_computed_column(c=U.picky(t.n), on_error="ignore", progress=False)
    result = t.delete(where=t.c.errortype == "ValueError")
    assert result.rows_written == 2
    assert t.order_by(t.n).collect().to_dicts() == [{"n": 0, "c": 0}, {"n": 1, "c": 2}]
    t.delete(where=t.c > 1)
    assert t.collect().to_dicts() == [{"n": 0, "c": 0}]


def test_delete_refuses_bad_conditions(db):
    t = _people(db)
    other = db.create_table("other", {"z": lh.Int})
    before = t.version
    with pytest.raises(lh.TypeMismatchError):
        t.delete(where=t.n + 1)
    with pytest.raises(lh.ColumnNotFoundError):
        t.delete(where=other.z == 1)
    assert t.version == before
    assert t.count() == 5


# --------------------------------------------------------------------------------------------
# schema changes: one version each
# --------------------------------------------------------------------------------------------


def test_add_column_is_one_version(db, lakehouse_root):
    t = _people(db)
    before = t.version
    assert t.add_column(note=lh.String) == before + 1
    assert t.add_column(score=lh.Float, tags=lh.Json) == before + 2
    assert t.version == before + 2
    assert t.columns() == ["k", "n", "x", "label", "note", "score", "tags"]
    assert all(r["note"] is None and r["score"] is None for r in _rows(t))
    t.insert([{"k": 9, "note": "hi", "score": 1.5, "tags": ["a"]}], progress=False)
    assert _rows(t, "note", "score", "tags")[-1] == {"note": "hi", "score": 1.5, "tags": '["a"]'}
    t.update({"note": "set"}, where=t.k == 0, progress=False)
    assert _rows(t, "note")[0] == {"note": "set"}
    field = _dataset(t, lakehouse_root).schema.field("score")
    assert json.loads(field.metadata[b"lakehouse"])["type"] == {"kind": "float"}


def test_add_column_errors_leave_table_unchanged(db):
    t = _people(db)
    before = t.version
    with pytest.raises(lh.ColumnExistsError):
        t.add_column(label=lh.String)
    with pytest.raises(lh.ColumnExistsError):
        t.add_column(fresh=lh.String, n=lh.Int)  # nothing is added when one name clashes
    with pytest.raises(lh.TypeMismatchError, match="nullable"):
        t.add_column(req=lh.Required(lh.Int))
    with pytest.raises(lh.InvalidNameError):
        t.add_column(_hidden=lh.Int)
    assert t.version == before
    assert t.columns() == ["k", "n", "x", "label"]
    assert t.add_column(label=lh.String, if_exists="ignore") == before


def test_drop_column_is_one_version(db, lakehouse_root):
    t = _people(db)
    before = t.version
    assert t.drop_column("x") == before + 1
    assert t.columns() == ["k", "n", "label"]
    assert "x" not in _dataset(t, lakehouse_root).schema.names
    assert _rows(t)[1] == {"k": 1, "n": 10, "label": "b"}
    with pytest.raises(lh.ColumnNotFoundError):
        t.drop_column("x")
    assert t.version == before + 1
    assert t.at(before).columns() == ["k", "n", "x", "label"]


def test_rename_column_is_one_version(db):
    t = _people(db)
    t.add_computed_column(n2=t.n * 2, progress=False)
    before = t.version
    assert t.rename_column("label", "tag") == before + 1
    assert t.columns() == ["k", "n", "x", "tag", "n2"]
    assert _rows(t, "tag")[0] == {"tag": "a"}
    with pytest.raises(lh.ColumnExistsError):
        t.rename_column("tag", "n")
    with pytest.raises(lh.ColumnNotFoundError):
        t.rename_column("label", "again")
    with pytest.raises(lh.InvalidNameError):
        t.rename_column("tag", "bad name")
    assert t.version == before + 1
    t.update({"tag": "z"}, where=t.k == 0, progress=False)
    t.delete(where=t.tag == "b")
    assert _rows(t, "k", "tag")[:2] == [{"k": 0, "tag": "z"}, {"k": 2, "tag": "a"}]


# --------------------------------------------------------------------------------------------
# string literals in filters
# --------------------------------------------------------------------------------------------

TRICKY = ["it's", "x", "1", "back\\slash", "semi;colon", "''", "%", "_", "a\"b"]


def _tricky(db) -> lh.Table:
    t = db.create_table("tricky", {"k": lh.Int, "label": lh.String})
    t.insert([{"k": i, "label": v} for i, v in enumerate(TRICKY)], progress=False)
    return t


def test_string_literals_match_exactly_their_row(db):
    t = _tricky(db)
    for i, value in enumerate(TRICKY):
        assert t.where(t.label == value).select(t.k).collect()["k"].to_list() == [i], value
        assert t.where(t.label == value).count() == 1, value
        assert t.where(t.label != value).count() == len(TRICKY) - 1, value
        assert t.where(t.label.isin([value, "no such"])).count() == 1, value


INJECTIONS = ["x' OR '1'='1", "x' OR 1=1 --", "' OR ''='", "it''s", "x'; DELETE FROM t; --",
              "it\\'s", "x` OR `1`=`1"]


def test_injection_attempts_in_where_update_and_delete_match_nothing(db):
    t = _tricky(db)
    before = t.version
    for attempt in INJECTIONS:
        assert t.where(t.label == attempt).count() == 0, attempt
        assert t.where(t.label.isin([attempt])).count() == 0, attempt
        assert t.where((t.k >= 0) & (t.label == attempt)).count() == 0, attempt
        assert t.update({"k": -1}, where=t.label == attempt, progress=False).rows_written == 0
        assert t.delete(where=t.label == attempt).rows_written == 0, attempt
    assert t.version == before
    assert _rows(t, "label") == [{"label": v} for v in TRICKY]


def test_quoted_literals_update_and_delete_exactly_one_row(db):
    t = _tricky(db)
    before = t.version
    result = t.update({"label": "it's new"}, where=t.label == "it's", progress=False)
    assert (result.rows_written, result.version) == (1, before + 1)
    assert _rows(t, "label")[0] == {"label": "it's new"}
    result = t.update({"k": 100}, where=t.label == "back\\slash", progress=False)
    assert result.rows_written == 1
    assert t.where(t.k == 100).select(t.label).collect()["label"].to_list() == ["back\\slash"]
    result = t.delete(where=t.label == "it's new")
    assert (result.rows_written, result.version) == (1, before + 3)
    assert t.delete(where=t.label == "''").rows_written == 1
    assert sorted(r["label"] for r in _rows(t, "label")) == sorted(
        ["x", "1", "back\\slash", "semi;colon", "%", "_", "a\"b"])

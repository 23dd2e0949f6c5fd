"""Computed columns: every expression kind, chains, insert and backfill semantics, errors, schema
changes around them, and the stored JSON definition. Every test runs on both backends."""

from __future__ import annotations

import datetime as dt
import json

import lance
import polars as pl
import pytest
import udfs_for_tests as U

import lakehouse as lh

# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------

SCHEMA = {
    "k": lh.Int, "n": lh.Int, "m": lh.Int, "x": lh.Float, "s": lh.String, "flag": lh.Bool,
    "meta": lh.Json, "day": lh.Date,
}

ROWS = [
    {"k": 0, "n": 1, "m": 2, "x": 1.5, "s": "Apple", "flag": True,
     "meta": {"a": {"b": 1}, "tags": ["x", "y"]}, "day": dt.date(2024, 1, 15)},
    {"k": 1, "n": -3, "m": 4, "x": -0.5, "s": "  banana ", "flag": False,
     "meta": {"a": {"b": "two"}}, "day": dt.date(2023, 12, 31)},
    {"k": 2, "n": None, "m": 5, "x": None, "s": None, "flag": None, "meta": None, "day": None},
    {"k": 3, "n": 10, "m": 4, "x": 2.0, "s": "cherry", "flag": True,
     "meta": {"a": {"c": 3}}, "day": dt.date(2024, 3, 1)},
    {"k": 4, "n": 7, "m": None, "x": 0.25, "s": "apple pie", "flag": False,
     "meta": {"a": {"b": {"deep": True}}}, "day": None},
]


def _dataset(t: lh.Table, root) -> lance.LanceDataset:
    return lance.dataset(t.uri, storage_options=root.storage_options)


def _values(t: lh.Table, column: str, key: str = "k") -> list:
    return t.order_by(t[key]).select(t[column]).collect()[column].to_list()


def _field_def(t: lh.Table, root, column: str) -> dict:
    field = _dataset(t, root).schema.field(column)
    return json.loads(field.metadata[b"lakehouse"])


def _transaction(ds: lance.LanceDataset, version: int):
    """The transaction that created ``version``."""
    found = [tx for tx in ds.get_transactions(ds.version) if tx and tx.read_version == version - 1]
    assert len(found) == 1, [tx.read_version for tx in ds.get_transactions(ds.version) if tx]
    return found[0]


# --------------------------------------------------------------------------------------------
# expression kinds
# --------------------------------------------------------------------------------------------

# name -> (expression builder, expected values for ROWS in order of k)
CASES = {
    "column_ref": (lambda t: t.n, [1, -3, None, 10, 7]),
    "literal_only": (lambda t: lh.lit(5), [5, 5, 5, 5, 5]),
    "add_literal": (lambda t: t.n + 100, [101, 97, None, 110, 107]),
    "reflected_sub": (lambda t: 100 - t.n, [99, 103, None, 90, 93]),
    "arith_chain": (lambda t: t.n * 2 + t.m, [4, -2, None, 24, None]),
    "true_div": (lambda t: t.n / t.m, [0.5, -0.75, None, 2.5, None]),
    "floor_div": (lambda t: t.n // t.m, [0, -1, None, 2, None]),
    "modulo": (lambda t: t.n % t.m, [1, 1, None, 2, None]),
    "negate": (lambda t: -t.n, [-1, 3, None, -10, -7]),
    "int_times_float": (lambda t: t.x * t.n, [1.5, 1.5, None, 20.0, 1.75]),
    "string_concat": (lambda t: t.s + "!", ["Apple!", "  banana !", None, "cherry!", "apple pie!"]),
    "gt": (lambda t: t.n > 2, [False, False, None, True, True]),
    "le_columns": (lambda t: t.n <= t.m, [True, True, None, False, None]),
    "ne_string": (lambda t: t.s != "cherry", [True, True, None, False, True]),
    "int_vs_float": (lambda t: t.n > t.x, [False, False, None, True, True]),
    "date_compare": (lambda t: t.day > dt.date(2024, 1, 1), [True, False, None, True, None]),
    "logical_and": (lambda t: (t.n > 0) & t.flag, [True, False, None, True, False]),
    "logical_or": (lambda t: (t.n > 5) | t.flag, [True, False, None, True, True]),
    "logical_not": (lambda t: ~t.flag, [False, True, None, False, True]),
    "kleene_or": (lambda t: (t.m > 4) | t.flag, [True, False, True, True, None]),
    "kleene_and": (lambda t: (t.m > 4) & t.flag, [False, False, None, False, False]),
    "isin_strings": (lambda t: t.s.isin(["Apple", "cherry"]), [True, False, None, True, False]),
    "isin_ints": (lambda t: t.n.isin([1, 7]), [True, False, None, False, True]),
    "is_null": (lambda t: t.n.is_null(), [False, False, True, False, False]),
    "eq_none": (lambda t: t.m == None, [False, False, False, False, True]),  # noqa: E711
    "is_not_null": (lambda t: t.s.is_not_null(), [True, True, False, True, True]),
    "ne_none": (lambda t: t.m != None, [True, True, True, True, False]),  # noqa: E711
    "float_to_int": (lambda t: t.x.astype(lh.Int), [1, 0, None, 2, 0]),
    "int_to_string": (lambda t: t.n.astype(lh.String), ["1", "-3", None, "10", "7"]),
    "int_to_float": (lambda t: t.n.astype(lh.Float), [1.0, -3.0, None, 10.0, 7.0]),
    "bad_cast_is_null": (lambda t: t.s.astype(lh.Int), [None, None, None, None, None]),
    "if_else_literals": (lambda t: lh.if_else(t.n > 0, "pos", "not pos"),
                         ["pos", "not pos", "not pos", "pos", "pos"]),
    "if_else_columns": (lambda t: lh.if_else(t.flag, t.n, t.m), [1, 4, 5, 10, None]),
    "if_else_null_branch": (lambda t: lh.if_else(t.n > 0, t.n, None), [1, None, None, 10, 7]),
    "upper": (lambda t: t.s.str.upper(), ["APPLE", "  BANANA ", None, "CHERRY", "APPLE PIE"]),
    "lower": (lambda t: t.s.str.lower(), ["apple", "  banana ", None, "cherry", "apple pie"]),
    "strip": (lambda t: t.s.str.strip(), ["Apple", "banana", None, "cherry", "apple pie"]),
    "len": (lambda t: t.s.str.len(), [5, 9, None, 6, 9]),
    "contains": (lambda t: t.s.str.contains("an"), [False, True, None, False, False]),
    "startswith": (lambda t: t.s.str.startswith("a"), [False, False, None, False, True]),
    "endswith": (lambda t: t.s.str.endswith("e"), [True, False, None, False, True]),
    "replace": (lambda t: t.s.str.replace("p", "P"),
                ["APPle", "  banana ", None, "cherry", "aPPle Pie"]),
    "slice": (lambda t: t.s.str.slice(1, 3), ["ppl", " ba", None, "her", "ppl"]),
    "slice_open": (lambda t: t.s.str.slice(2), ["ple", "banana ", None, "erry", "ple pie"]),
    "json_scalar": (lambda t: t.meta["a"]["b"], ["1", "two", None, None, '{"deep":true}']),
    "json_index": (lambda t: t.meta["tags"][1], ["y", None, None, None, None]),
    "json_object": (lambda t: t.meta["a"],
                    ['{"b":1}', '{"b":"two"}', None, '{"c":3}', '{"b":{"deep":true}}']),
    "json_cast": (lambda t: t.meta["a"]["b"].astype(lh.Int), [1, None, None, None, None]),
    "row_udf": (lambda t: U.shout(t.s), ["APPLE!", "  BANANA !", None, "CHERRY!", "APPLE PIE!"]),
    "batched_udf": (lambda t: U.lengths(t.s), [5, 9, None, 6, 9]),
    "udf_of_expression": (lambda t: U.times_ten(t.n + 1), [20, -20, None, 110, 80]),
    "udf_two_args": (lambda t: U.concat(t.s.str.strip(), t.n),
                     ["Apple-1", "banana--3", None, "cherry-10", "apple pie-7"]),
    "udf_inside_expression": (lambda t: U.shout(t.s.str.strip()) + "?",
                              ["APPLE!?", "BANANA!?", None, "CHERRY!?", "APPLE PIE!?"]),
    "udf_in_comparison": (lambda t: U.times_ten(t.n) > 20, [False, False, None, True, True]),
    "optional_udf": (lambda t: U.describe_maybe(t.s),
                     ["<Apple>", "<  banana >", "<none>", "<cherry>", "<apple pie>"]),
}


def test_expression_kinds(db):
    """Each expression kind as a computed column (named after its case), backfilled for the
    first rows and computed on insert for the rest: both paths give the exact expected values,
    nulls included. One table for all kinds keeps this fast on S3; failures are collected so
    that one broken kind does not hide the others."""
    t = db.create_table("t", SCHEMA)
    t.insert(ROWS[:3], progress=False)
    failures = {}
    for name, (build, _) in CASES.items():
        try:
            result = t.add_computed_column(**{name: build(t)}, progress=False)
            if (result.rows_written, result.rows_with_errors) != (3, 0):
                failures[name] = f"backfill: {result}"
        except Exception as exc:
            failures[name] = f"{type(exc).__name__}: {exc}"
    assert failures == {}
    t.insert(ROWS[3:], progress=False)
    df = t.order_by(t.k).collect()
    got = {name: df[name].to_list() for name in CASES}
    assert got == {name: expected for name, (_, expected) in CASES.items()}


def test_computed_column_types(db):
    t = db.create_table("t", SCHEMA)
    t.add_computed_column(a=t.n / t.m, progress=False)
    t.add_computed_column(b=t.n > 1, progress=False)
    t.add_computed_column(c=U.lengths(t.s), progress=False)
    t.add_computed_column(d=t.meta["a"], progress=False)
    types = dict(zip(t.describe()["column"], t.describe()["type"], strict=True))
    assert (types["a"], types["b"], types["c"], types["d"]) == ("Float", "Bool", "Int", "String")


def test_chain_of_computed_columns(db):
    t = db.create_table("t", {"k": lh.Int, "a": lh.Int})
    t.insert([{"k": 0, "a": 1}, {"k": 1, "a": None}], progress=False)
    t.add_computed_column(b=t.a + 1, progress=False)
    t.add_computed_column(c=t.b * 10, progress=False)
    t.add_computed_column(d=U.shout(t.c.astype(lh.String)), progress=False)
    t.insert([{"k": 2, "a": 5}], progress=False)
    df = t.order_by(t.k).collect()
    assert df.columns == ["k", "a", "b", "c", "d"]
    assert df["b"].to_list() == [2, None, 6]
    assert df["c"].to_list() == [20, None, 60]
    assert df["d"].to_list() == ["20!", None, "60!"]


# --------------------------------------------------------------------------------------------
# insert and backfill
# --------------------------------------------------------------------------------------------


def test_insert_computes_new_rows_only_in_one_commit(db):
    U.reset()
    t = db.create_table("t", {"n": lh.Int})
    t.insert([{"n": 1}, {"n": 2}, {"n": 3}], progress=False)
    t.add_computed_column(c=U.times_ten(t.n), progress=False)
    assert sorted(U.CALLS["times_ten"]) == [1, 2, 3]
    U.reset()
    before = t.version
    result = t.insert([{"n": 4}, {"n": 5}], progress=False)
    assert result == lh.WriteResult(rows_written=2, rows_with_errors=0, version=before + 1)
    assert t.version == before + 1
    assert sorted(U.CALLS["times_ten"]) == [4, 5]  # old rows were not recomputed
    assert _values(t, "c", key="n") == [10, 20, 30, 40, 50]
    # the previous version has no trace of the new rows (values and rows arrived together)
    assert t.at(before).count() == 3


def test_insert_into_table_with_no_base_values_for_computed_inputs(db):
    """A computed column over a column absent from the inserted rows sees nulls."""
    t = db.create_table("t", {"n": lh.Int, "s": lh.String})
    t.add_computed_column(loud=U.shout(t.s), progress=False)
    t.insert([{"n": 1}], progress=False)
    assert t.collect().to_dicts() == [{"n": 1, "s": None, "loud": None}]


def test_backfill_writes_only_new_column_files(db, lakehouse_root):
    t = db.create_table("t", {"n": lh.Int, "s": lh.String})
    for start in (0, 3):  # two fragments
        t.insert([{"n": i, "s": f"v{i}"} for i in range(start, start + 3)], progress=False)
    ds = _dataset(t, lakehouse_root)
    before = {f.fragment_id: [(d.path, list(d.fields)) for d in f.data_files()]
              for f in ds.get_fragments()}
    assert len(before) == 2
    old_field_ids = {fid for files in before.values() for _, ids in files for fid in ids}

    result = t.add_computed_column(loud=U.shout(t.s), progress=False)
    assert result.version == ds.version + 1
    ds = _dataset(t, lakehouse_root)
    new_field_id = ds.schema.get_field_index("loud")
    assert new_field_id >= 0
    after = {f.fragment_id: [(d.path, list(d.fields)) for d in f.data_files()]
             for f in ds.get_fragments()}
    assert set(after) == set(before)
    for frag_id, files in after.items():
        assert files[:len(before[frag_id])] == before[frag_id]  # old files untouched
        added = files[len(before[frag_id]):]
        assert len(added) == 1
        (_, ids), = added
        assert ids and not set(ids) & old_field_ids  # the new file holds only new fields

    tx = _transaction(ds, result.version)
    assert type(tx.operation).__name__ == "Merge"
    assert _values(t, "loud", key="n") == ["V0!", "V1!", "V2!", "V3!", "V4!", "V5!"]


def test_add_computed_column_on_empty_table(db, lakehouse_root):
    t = db.create_table("t", {"n": lh.Int})
    before = t.version
    result = t.add_computed_column(c=t.n + 1, progress=False)
    assert result == lh.WriteResult(0, 0, before + 1)
    assert _field_def(t, lakehouse_root, "c")["computed"]["on_error"] == "abort"
    t.insert([{"n": 1}], progress=False)
    assert _values(t, "c", key="n") == [2]


# --------------------------------------------------------------------------------------------
# definition-time errors
# --------------------------------------------------------------------------------------------


def test_unknown_column_is_refused(db):
    t = db.create_table("t", {"n": lh.Int})
    with pytest.raises(AttributeError, match="nope"):
        _ = t.nope
    with pytest.raises(lh.ColumnNotFoundError, match="nope"):
        _ = t["nope"]


def test_column_of_another_table_is_refused(db):
    t = db.create_table("t", {"n": lh.Int})
    other = db.create_table("other", {"x": lh.Int})  # same column id as t.n
    t.insert([{"n": 1}], progress=False)
    before = t.version
    with pytest.raises(lh.ColumnNotFoundError, match="x"):
        t.add_computed_column(c=other.x + 1, progress=False)
    assert t.version == before
    assert t.columns() == ["n"]


def test_dropped_column_reference_is_refused(db):
    t = db.create_table("t", {"n": lh.Int})
    t.add_column(note=lh.String)
    note = t.note
    t.drop_column("note")
    t.add_column(other=lh.String)  # may reuse the dropped column's id
    before = t.version
    with pytest.raises(lh.ColumnNotFoundError, match="note"):
        t.add_computed_column(c=note + "!", progress=False)
    assert t.version == before
    assert t.columns() == ["n", "other"]


MISTYPED = {
    "string_plus_int": (lambda t: t.s + 1, "'+'"),
    "and_on_ints": (lambda t: t.n & t.m, "Bool"),
    "not_on_int": (lambda t: ~t.n, "Bool"),
    "string_gt_int": (lambda t: t.s > 1, "compare"),
    "negate_string": (lambda t: -t.s, "negate"),
    "str_on_int": (lambda t: t.n.str.upper(), "String"),
    "json_path_on_int": (lambda t: t.n["a"], "Json"),
    "if_else_int_condition": (lambda t: lh.if_else(t.n, 1, 2), "Bool"),
    "if_else_mixed_branches": (lambda t: lh.if_else(t.n > 1, 1, "one"), "different types"),
    "isin_wrong_type": (lambda t: t.n.isin(["a"]), "compare"),
    "isin_string_arg": (lambda t: t.s.isin("abc"), "list"),
    "udf_wants_str": (lambda t: U.shout(t.n), "shout"),
    "udf_wants_int": (lambda t: U.times_ten(t.s), "times_ten"),
    "udf_wrong_arity": (lambda t: U.concat(t.s), "concat"),
}


def test_type_mismatch_is_refused_at_definition_time(db):
    t = db.create_table("t", {"n": lh.Int, "m": lh.Int, "s": lh.String})
    before = t.version
    outcome = {}
    for name, (build, match) in MISTYPED.items():
        try:
            expr = build(t)
        except lh.TypeMismatchError as exc:
            outcome[name] = "refused" if match in str(exc) else f"message lacks {match!r}: {exc}"
        else:
            outcome[name] = f"accepted: {expr!r}"
    assert outcome == dict.fromkeys(MISTYPED, "refused")
    assert t.version == before


def test_non_expression_is_refused(db):
    t = db.create_table("t", {"n": lh.Int})
    before = t.version
    with pytest.raises(lh.TypeMismatchError, match="expression"):
        t.add_computed_column(c=5, progress=False)
    with pytest.raises(lh.TypeMismatchError, match="exactly one"):
        t.add_computed_column(c=t.n + 1, d=t.n + 2, progress=False)
    with pytest.raises(lh.InvalidOptionError, match="on_error"):
        t.add_computed_column(c=t.n + 1, on_error="skip", progress=False)
    assert t.version == before


def test_python_boolean_operators_raise_with_hint(db):
    t = db.create_table("t", {"a": lh.Int, "b": lh.Bool})
    with pytest.raises(TypeError, match="use & and \\|"):
        _ = t.a == 1 and t.b
    with pytest.raises(TypeError, match="ambiguous"):
        bool(t.a > 1)
    with pytest.raises(TypeError, match="~"):
        _ = not t.b
    with pytest.raises(TypeError, match="ambiguous"):
        if t.a == 1:
            pass


# --------------------------------------------------------------------------------------------
# per-row errors
# --------------------------------------------------------------------------------------------


def test_on_error_ignore_records_errors_on_backfill_and_insert(db):
    t = db.create_table("t", {"n": lh.Int})
    t.insert([{"n": 1}, {"n": -2}, {"n": 3}], progress=False)
    result = t.add_computed_column(c=U.picky(t.n), on_error="ignore", progress=False)
    assert (result.rows_written, result.rows_with_errors) == (3, 1)
    result = t.insert([{"n": -4}, {"n": 5}, {"n": None}], progress=False)
    assert (result.rows_written, result.rows_with_errors) == (3, 1)

    df = t.order_by(t.n).select(t.n, t.c, etype=t.c.errortype, emsg=t.c.errormsg).collect()
    assert df.to_dicts() == [
        {"n": -4, "c": None, "etype": "ValueError", "emsg": "negative input -4"},
        {"n": -2, "c": None, "etype": "ValueError", "emsg": "negative input -2"},
        {"n": 1, "c": 2, "etype": None, "emsg": None},
        {"n": 3, "c": 6, "etype": None, "emsg": None},
        {"n": 5, "c": 10, "etype": None, "emsg": None},
        {"n": None, "c": None, "etype": None, "emsg": None},  # null in, null out: no error
    ]
    failed = t.where(t.c.errortype == "ValueError").order_by(t.n).select(t.n).collect()
    assert failed["n"].to_list() == [-4, -2]
    assert t.where(t.c.errormsg.str.contains("-2")).count() == 1
    assert t.where(t.c.errortype.is_null()).count() == 4
    # the error columns are hidden from the table's columns
    assert t.columns() == ["n", "c"]
    assert t.collect().columns == ["n", "c"]


def test_on_error_ignore_batched_udf_isolates_failing_rows(db):
    t = db.create_table("t", {"n": lh.Int})
    t.insert([{"n": v} for v in (1, -2, 3, 4)], progress=False)
    result = t.add_computed_column(c=U.picky_batched(t.n), on_error="ignore", progress=False)
    assert result.rows_with_errors == 1
    df = t.order_by(t.n).select(t.n, t.c, e=t.c.errortype).collect()
    assert df.to_dicts() == [
        {"n": -2, "c": None, "e": "ValueError"},
        {"n": 1, "c": 2, "e": None},
        {"n": 3, "c": 6, "e": None},
        {"n": 4, "c": 8, "e": None},
    ]


def test_on_error_abort_on_backfill_leaves_table_unchanged(db, lakehouse_root):
    t = db.create_table("t", {"n": lh.Int})
    t.insert([{"n": 1}, {"n": -2}, {"n": 3}], progress=False)
    before = t.version
    with pytest.raises(lh.ComputeError) as info:
        t.add_computed_column(c=U.picky(t.n), progress=False)
    message = str(info.value)
    assert "udfs_for_tests:picky" in message
    assert "'c'" in message
    assert "row 1" in message
    assert "negative input -2" in message
    assert t.version == before
    assert t.columns() == ["n"]
    assert "c" not in _dataset(t, lakehouse_root).schema.names


def test_on_error_abort_on_insert_leaves_table_unchanged(db):
    t = db.create_table("t", {"n": lh.Int})
    t.insert([{"n": 1}], progress=False)
    t.add_computed_column(c=U.picky(t.n), progress=False)
    before = t.version
    with pytest.raises(lh.ComputeError) as info:
        t.insert([{"n": 2}, {"n": 3}, {"n": -7}], progress=False)
    message = str(info.value)
    assert "udfs_for_tests:picky" in message
    assert "row 2" in message
    assert "negative input -7" in message
    assert t.version == before
    assert t.collect().to_dicts() == [{"n": 1, "c": 2}]


def test_on_error_abort_batched_udf_names_the_row(db):
    t = db.create_table("t", {"n": lh.Int})
    t.insert([{"n": v} for v in (1, 2, 3, -4, 5)], progress=False)
    before = t.version
    with pytest.raises(lh.ComputeError, match="row 3") as info:
        t.add_computed_column(c=U.picky_batched(t.n), progress=False)
    assert "udfs_for_tests:picky_batched" in str(info.value)
    assert t.version == before


def test_error_columns_of_expression_without_udf_are_null(db):
    """errortype/errormsg exist for every on_error='ignore' column; native ones never fail."""
    t = db.create_table("t", {"n": lh.Int})
    t.insert([{"n": 1}], progress=False)
    t.add_computed_column(c=t.n * 2, on_error="ignore", progress=False)
    df = t.select(t.c, e=t.c.errortype, m=t.c.errormsg).collect()
    assert df.to_dicts() == [{"c": 2, "e": None, "m": None}]


# --------------------------------------------------------------------------------------------
# if_exists and replacing
# --------------------------------------------------------------------------------------------


def test_if_exists_error_and_ignore(db, lakehouse_root):
    t = db.create_table("t", {"n": lh.Int})
    t.insert([{"n": 1}], progress=False)
    t.add_computed_column(c=t.n + 1, progress=False)
    before = t.version
    with pytest.raises(lh.ColumnExistsError, match="if_exists"):
        t.add_computed_column(c=t.n + 2, progress=False)
    assert t.version == before
    result = t.add_computed_column(c=t.n + 3, if_exists="ignore", progress=False)
    assert result.version == before
    assert t.version == before
    assert _values(t, "c", key="n") == [2]
    assert _field_def(t, lakehouse_root, "c")["computed"]["expr"]["right"]["value"] == 1
    with pytest.raises(lh.ColumnExistsError):
        t.add_computed_column(n=t.n + 1, progress=False)  # a base column of that name


def test_if_exists_replace_redefines_in_one_commit(db):
    t = db.create_table("t", {"n": lh.Int})
    t.insert([{"n": 1}, {"n": 2}], progress=False)
    t.add_computed_column(c=t.n + 1, progress=False)
    before = t.version
    result = t.add_computed_column(c=t.n * 100, if_exists="replace", progress=False)
    assert _values(t, "c", key="n") == [100, 200]
    t.insert([{"n": 3}], progress=False)
    assert _values(t, "c", key="n") == [100, 200, 300]
    # the documented exception to one call = one commit (docs/FORMAT.md): compute under a
    # hidden name, switch names in one commit, drop the retired column
    assert result.version == before + 3
    ops = t.history(limit=4)["operation"].to_list()  # newest first
    assert ops == ["insert", "schema change", "schema change", "add column"]
    # whatever version a crash stopped at, readers see the old column or the new one, never none
    assert _values(t.at(before + 1), "c", key="n") == [2, 3]
    assert t.at(before + 1).columns() == ["n", "c"]
    assert _values(t.at(before + 2), "c", key="n") == [100, 200]
    assert t.at(before + 2).columns() == ["n", "c"]


def test_failed_replace_leaves_old_column(db):
    t = db.create_table("t", {"n": lh.Int})
    t.insert([{"n": 1}, {"n": -2}], progress=False)
    t.add_computed_column(c=t.n + 1, progress=False)
    before = t.version
    with pytest.raises(lh.ComputeError):
        t.add_computed_column(c=U.picky(t.n), if_exists="replace", progress=False)
    assert t.version == before
    assert _values(t, "c", key="n") == [-1, 2]
    assert t.describe().filter(pl.col("column") == "c")["computed"].to_list() == ["(n + 1)"]


def test_replace_that_would_form_a_cycle_is_refused(db):
    t = db.create_table("t", {"a": lh.Int})
    t.insert([{"a": 1}], progress=False)
    t.add_computed_column(b=t.a + 1, progress=False)
    t.add_computed_column(c=t.b * 2, progress=False)
    before = t.version
    with pytest.raises(lh.DependencyError, match="'c'|c"):
        t.add_computed_column(b=t.c + 1, if_exists="replace", progress=False)
    assert t.version == before
    assert t.collect().to_dicts() == [{"a": 1, "b": 2, "c": 4}]


def test_replace_referring_to_itself_is_refused(db):
    t = db.create_table("t", {"a": lh.Int})
    t.insert([{"a": 1}], progress=False)
    t.add_computed_column(b=t.a + 1, progress=False)
    before = t.version
    with pytest.raises(lh.DependencyError, match="b"):
        t.add_computed_column(b=t.b + 1, if_exists="replace", progress=False)
    assert t.version == before
    assert t.collect().to_dicts() == [{"a": 1, "b": 2}]


# --------------------------------------------------------------------------------------------
# schema changes around computed columns
# --------------------------------------------------------------------------------------------


def test_drop_column_with_dependents_is_refused(db):
    t = db.create_table("t", {"a": lh.Int, "z": lh.Int})
    t.insert([{"a": 1, "z": 0}], progress=False)
    t.add_computed_column(b=t.a + 1, progress=False)
    t.add_computed_column(c=t.b * 2, progress=False)
    before = t.version
    with pytest.raises(lh.DependencyError) as info:
        t.drop_column("a")
    assert "'b'" in str(info.value) and "'c'" in str(info.value)
    assert "cascade" in str(info.value)
    with pytest.raises(lh.DependencyError, match="'c'"):
        t.drop_column("b")
    assert t.version == before
    assert t.columns() == ["a", "z", "b", "c"]


def test_drop_column_cascade_drops_dependents_in_one_commit(db, lakehouse_root):
    t = db.create_table("t", {"a": lh.Int, "z": lh.Int})
    t.insert([{"a": 1, "z": 0}, {"a": -1, "z": 1}], progress=False)
    t.add_computed_column(b=U.picky(t.a), on_error="ignore", progress=False)
    t.add_computed_column(c=t.b * 2, progress=False)
    t.add_computed_column(keep=t.z + 1, progress=False)
    before = t.version
    version = t.drop_column("a", cascade=True)
    assert version == before + 1 == t.version
    assert t.columns() == ["z", "keep"]
    assert sorted(_dataset(t, lakehouse_root).schema.names) == ["keep", "z"]
    t.insert([{"z": 5}], progress=False)
    assert _values(t, "keep", key="z") == [1, 2, 6]


def test_drop_leaf_computed_column(db):
    t = db.create_table("t", {"a": lh.Int})
    t.add_computed_column(b=t.a + 1, progress=False)
    before = t.version
    assert t.drop_column("b") == before + 1
    t.insert([{"a": 1}], progress=False)
    assert t.collect().to_dicts() == [{"a": 1}]


def test_rename_input_column_keeps_computed_column_working(db, lakehouse_root):
    t = db.create_table("t", {"n": lh.Int, "s": lh.String})
    t.insert([{"n": 1, "s": "a"}], progress=False)
    t.add_computed_column(b=t.n * 2, progress=False)
    t.add_computed_column(loud=U.shout(t.s), progress=False)
    t.add_computed_column(c=t.b + 1, progress=False)
    before = t.version
    assert t.rename_column("n", "num") == before + 1
    assert t.rename_column("s", "text") == before + 2
    assert t.rename_column("b", "double") == before + 3
    t.insert([{"num": 5, "text": "bee"}], progress=False)
    df = t.order_by(t.num).collect()
    assert df.columns == ["num", "text", "double", "loud", "c"]
    assert df.to_dicts() == [
        {"num": 1, "text": "a", "double": 2, "loud": "A!", "c": 3},
        {"num": 5, "text": "bee", "double": 10, "loud": "BEE!", "c": 11},
    ]
    # updating the renamed input recomputes the dependents
    t.update({"num": 7}, where=t.num == 1, progress=False)
    assert t.where(t.num == 7).select(t.double, t.c).collect().to_dicts() == [
        {"double": 14, "c": 15}]
    # the stored expression still names the input by id
    expr = _field_def(t, lakehouse_root, "double")["computed"]["expr"]
    assert expr["left"]["op"] == "column"
    assert expr["left"]["id"] == _field_def(t, lakehouse_root, "num")["id"]


# --------------------------------------------------------------------------------------------
# the stored definition
# --------------------------------------------------------------------------------------------


def test_definition_is_json_in_lance_field_metadata(db, lakehouse_root):
    t = db.create_table("t", {"n": lh.Int, "s": lh.String})
    t.add_computed_column(n2=t.n * 2 + 1, progress=False)
    t.add_computed_column(loud=U.shout(t.s), on_error="ignore", progress=False)
    ds = _dataset(t, lakehouse_root)
    assert ds.schema.metadata[b"lakehouse.format"] == b"1"

    n_def = json.loads(ds.schema.field("n").metadata[b"lakehouse"])
    assert n_def == {"format": 1, "id": n_def["id"], "type": {"kind": "int"}}

    n2_def = json.loads(ds.schema.field("n2").metadata[b"lakehouse"])
    assert n2_def["format"] == 1
    assert n2_def["type"] == {"kind": "int"}
    assert n2_def["computed"]["on_error"] == "abort"
    expr = n2_def["computed"]["expr"]
    assert expr["op"] == "+"
    assert expr["right"]["op"] == "literal" and expr["right"]["value"] == 1
    assert expr["left"]["op"] == "*"
    assert expr["left"]["left"] == {"op": "column", "id": n_def["id"], "name": "n"}

    loud_def = json.loads(ds.schema.field("loud").metadata[b"lakehouse"])
    assert loud_def["computed"]["on_error"] == "ignore"
    call = loud_def["computed"]["expr"]
    assert call["op"] == "call"
    assert call["fn"] == "udfs_for_tests:shout"
    assert len(call["fingerprint"]) == 16
    int(call["fingerprint"], 16)  # hex
    # the hidden error columns are described too
    hidden = [f.name for f in ds.schema if f.name.startswith("_lh_error")]
    assert len(hidden) == 2
    for name in hidden:
        info = json.loads(ds.schema.field(name).metadata[b"lakehouse"])
        assert info["format"] == 1 and info["of"] == loud_def["id"]


def test_definition_survives_reopen(db, lakehouse_root):
    t = db.create_table("t", {"n": lh.Int})
    t.add_computed_column(n2=t.n * 2 + 1, progress=False)
    again = lh.connect(lakehouse_root.uri, storage_options=lakehouse_root.storage_options)
    t2 = again.get_table("t")
    t2.insert([{"n": 4}], progress=False)
    assert t2.collect().to_dicts() == [{"n": 4, "n2": 9}]
    desc = t2.describe().to_dicts()
    assert desc[1]["column"] == "n2"
    assert desc[1]["computed"] == "((n * 2) + 1)"


def test_computed_column_cannot_be_inserted_into(db):
    t = db.create_table("t", {"n": lh.Int})
    t.add_computed_column(c=t.n + 1, progress=False)
    before = t.version
    with pytest.raises(lh.ComputedColumnError, match="computed"):
        t.insert([{"n": 1, "c": 5}], progress=False)
    assert t.version == before


# --------------------------------------------------------------------------------------------
# execution
# --------------------------------------------------------------------------------------------


def test_native_expressions_never_call_python_row_forms(db, monkeypatch):
    """Built-ins with a Polars form run vectorised: their Python row forms are never called."""
    import dataclasses

    from lakehouse.exprs import registry

    def boom(*args, **kwargs):
        raise AssertionError("a Python row form was called")

    for name, fn in list(registry._FUNCTIONS.items()):
        if fn.polars is not None:
            monkeypatch.setitem(registry._FUNCTIONS, name, dataclasses.replace(fn, python=boom))
    t = db.create_table("t", {"s": lh.String})
    t.insert([{"s": " Ab "}, {"s": None}], progress=False)
    t.add_computed_column(u=t.s.str.strip().str.upper(), progress=False)
    t.add_computed_column(n=t.s.str.len() + 1, progress=False)
    t.add_computed_column(c=t.s.str.contains("b") & t.s.str.startswith(" "), progress=False)
    t.insert([{"s": "xyz"}], progress=False)
    df = t.order_by(t.s).collect()
    assert df.to_dicts() == [
        {"s": " Ab ", "u": "AB", "n": 5, "c": True},
        {"s": "xyz", "u": "XYZ", "n": 4, "c": False},
        {"s": None, "u": None, "n": None, "c": None},
    ]


def test_backfill_streams_in_batches(db, monkeypatch):
    """Backfill computes batch by batch (bounded memory), not over the whole table at once."""
    from lakehouse.exec import writes

    monkeypatch.setattr(writes, "BACKFILL_BATCH_ROWS", 4)
    t = db.create_table("t", {"s": lh.String})
    t.insert([{"s": "x" * i} for i in range(10)], progress=False)
    U.reset()
    t.add_computed_column(n=U.lengths(t.s), progress=False)
    sizes = [len(b) for b in U.CALLS["lengths"]]
    assert sum(sizes) == 10
    assert sizes == [3, 1, 3, 1, 2]  # batches of 4 rows, each split into UDF calls of <= 3
    assert sorted(_values(t, "n", key="n")) == list(range(10))

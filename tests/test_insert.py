"""insert(): every column type round-trips, every input form gives the same rows, each call is one
Lance commit, bad values are refused naming the column and row with nothing written, and an
iterator of batches is streamed in bounded memory."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import re
from collections.abc import Callable, Iterator
from typing import Any

import lance
import numpy as np
import pandas as pd
import polars as pl
import pyarrow as pa
import pytest

import lakehouse as lh

UTC = dt.UTC


def _lance_version_count(t: lh.Table, root) -> int:
    """How many versions Lance itself has for the table (not what lakehouse reports)."""
    return len(lance.dataset(t.uri, storage_options=root.storage_options).versions())


# --------------------------------------------------------------------------------------------
# Types
# --------------------------------------------------------------------------------------------

# (column type, values inserted (in row dicts), values read back, Polars dtype)
TYPE_CASES: dict[str, tuple[Any, list[Any], list[Any], pl.DataType]] = {
    "string": (lh.String, ["a", "", "ünïcødé 🎉", None], ["a", "", "ünïcødé 🎉", None],
               pl.String),
    "int": (lh.Int, [0, -5, 2**63 - 1, np.int32(7), np.int64(-8), None],
            [0, -5, 2**63 - 1, 7, -8, None], pl.Int64),
    "float": (lh.Float, [1.5, -0.0, 3, np.float32(0.25), np.int64(2), 1e300, None],
              [1.5, -0.0, 3.0, 0.25, 2.0, 1e300, None], pl.Float64),
    "bool": (lh.Bool, [True, False, np.bool_(True), None], [True, False, True, None], pl.Boolean),
    "timestamp": (
        lh.Timestamp,
        [
            dt.datetime(2024, 1, 2, 3, 4, 5, 678901),  # naive: taken as UTC
            dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=dt.timezone(dt.timedelta(hours=2))),
            "2024-01-02T03:04:05",
            "2024-01-02T03:04:05+02:00",
            "2024-01-02T03:04:05Z",
            "2024-01-02",
            np.datetime64("2024-01-02T03:04:05.123456"),
            None,
        ],
        [
            dt.datetime(2024, 1, 2, 3, 4, 5, 678901, tzinfo=UTC),
            dt.datetime(2024, 1, 2, 1, 4, 5, tzinfo=UTC),
            dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC),
            dt.datetime(2024, 1, 2, 1, 4, 5, tzinfo=UTC),
            dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC),
            dt.datetime(2024, 1, 2, 0, 0, 0, tzinfo=UTC),
            dt.datetime(2024, 1, 2, 3, 4, 5, 123456, tzinfo=UTC),
            None,
        ],
        pl.Datetime("us", "UTC"),
    ),
    "date": (lh.Date, [dt.date(2024, 2, 29), "1999-12-31", None],
             [dt.date(2024, 2, 29), dt.date(1999, 12, 31), None], pl.Date),
    "json": (
        lh.Json,
        [{"a": [1, 2], "b": {"c": None}}, [1, "x", True], 3, 2.5, "text", True, {}, [], None],
        [{"a": [1, 2], "b": {"c": None}}, [1, "x", True], 3, 2.5, "text", True, {}, [], None],
        pl.String,
    ),
    "array_1d": (
        lh.Array[(3,), "float32"],
        [[1, 2, 3], (0.5, 1.5, 2.5), np.array([7, 8, 9], dtype=np.float64), None],
        [[1.0, 2.0, 3.0], [0.5, 1.5, 2.5], [7.0, 8.0, 9.0], None],
        pl.Array(pl.Float32, 3),
    ),
    "array_2d": (
        lh.Array[(2, 2), "int32"],
        [[[1, 2], [3, 4]], np.arange(4).reshape(2, 2), None],
        [[[1, 2], [3, 4]], [[0, 1], [2, 3]], None],
        pl.Array(pl.Int32, (2, 2)),
    ),
    "array_ragged": (
        lh.Array[(None,), "float64"],
        [[1.5], [], [1, 2, 3], None],
        [[1.5], [], [1.0, 2.0, 3.0], None],
        pl.List(pl.Float64),
    ),
}


@pytest.mark.parametrize("case", list(TYPE_CASES))
def test_type_round_trips(db, case: str) -> None:
    column_type, inserted, expected, dtype = TYPE_CASES[case]
    t = db.create_table("t", {"k": lh.Int, "v": column_type})
    result = t.insert([{"k": i, "v": v} for i, v in enumerate(inserted)], progress=False)
    assert result == lh.WriteResult(len(inserted), 0, 2)

    df = t.order_by(t.k).collect()
    assert df.schema == pl.Schema({"k": pl.Int64, "v": dtype})
    got = df["v"].to_list()
    if case == "json":  # stored as JSON text
        got = [None if g is None else json.loads(g) for g in got]
    assert got == expected
    if case == "timestamp":
        assert all(g.utcoffset() == dt.timedelta(0) for g in got if g is not None)
    if case == "json":
        assert [type(g) for g in got] == [type(e) for e in expected]


def test_json_is_stored_as_json_text(db, lakehouse_root) -> None:
    t = db.create_table("t", {"k": lh.Int, "j": lh.Json})
    t.insert([{"k": 0, "j": {"a": 1}}, {"k": 1, "j": "a"}, {"k": 2, "j": [1]}], progress=False)
    # a plain Arrow string column: any reader sees JSON text
    stored = lance.dataset(t.uri, storage_options=lakehouse_root.storage_options)
    assert stored.schema.field("j").type == pa.string()
    assert t.order_by(t.k).collect()["j"].to_list() == ['{"a":1}', '"a"', "[1]"]


def test_all_types_in_one_table_and_reopened(db, lakehouse_root) -> None:
    schema = {name.replace("array_", "a_"): case[0] for name, case in TYPE_CASES.items()}
    t = db.create_table("all", schema)
    row = {name.replace("array_", "a_"): case[1][0] for name, case in TYPE_CASES.items()}
    nulls = {name: None for name in schema}
    t.insert([row, nulls], progress=False)

    again = lh.connect(lakehouse_root.uri, storage_options=lakehouse_root.storage_options)
    df = again.get_table("all").collect()
    assert df.height == 2
    assert df.schema == pl.Schema(
        {name.replace("array_", "a_"): case[3] for name, case in TYPE_CASES.items()})
    first = {name: values[0] for name, values in df.to_dict(as_series=False).items()}
    first["json"] = json.loads(first["json"])
    assert first == {name.replace("array_", "a_"): case[2][0]
                     for name, case in TYPE_CASES.items()}
    assert df.row(1) == (None,) * len(schema)


# --------------------------------------------------------------------------------------------
# Input forms
# --------------------------------------------------------------------------------------------

FORM_SCHEMA = {"n": lh.Int, "s": lh.String, "f": lh.Float, "ts": lh.Timestamp, "d": lh.Date}
ROWS = [
    {"n": 1, "s": "a", "f": 0.5, "ts": dt.datetime(2024, 1, 1, 12, 0), "d": dt.date(2024, 1, 1)},
    {"n": 2, "s": None, "f": 1.5, "ts": dt.datetime(2024, 1, 2, 12, 0), "d": dt.date(2024, 1, 2)},
    {"n": 3, "s": "c", "f": 2.5, "ts": dt.datetime(2024, 1, 3, 12, 0), "d": dt.date(2024, 1, 3)},
]
EXPECTED = [{**r, "ts": r["ts"].replace(tzinfo=UTC)} for r in ROWS]


def _arrow() -> pa.Table:
    """The rows as Arrow, in narrower types than storage (int32, float32, ns naive timestamps)."""
    return pa.table({
        "n": pa.array([r["n"] for r in ROWS], pa.int32()),
        "s": pa.array([r["s"] for r in ROWS], pa.large_string()),
        "f": pa.array([r["f"] for r in ROWS], pa.float32()),
        "ts": pa.array([r["ts"] for r in ROWS], pa.timestamp("ns")),
        "d": pa.array([r["d"] for r in ROWS], pa.date32()),
    })


def _polars() -> pl.DataFrame:
    return pl.DataFrame(ROWS)


def _batches_of_frames() -> Iterator[pl.DataFrame]:
    frame = _polars()
    yield frame.slice(0, 1)
    yield frame.slice(1, 0)  # an empty batch is skipped
    yield frame.slice(1, 2)


def _batches_of_dicts() -> Iterator[list[dict]]:
    yield ROWS[:2]
    yield ROWS[2:]


def _batches_of_arrow() -> Iterator[pa.Table | pa.RecordBatch]:
    table = _arrow()
    yield table.slice(0, 2)
    yield table.slice(2).to_batches()[0]


FORMS: dict[str, Callable[[], Any]] = {
    "list_of_dicts": lambda: [dict(r) for r in ROWS],
    "polars": _polars,
    "pandas": lambda: pd.DataFrame(ROWS),
    "arrow_table": _arrow,
    "record_batch": lambda: _arrow().combine_chunks().to_batches()[0],
    "record_batch_reader": lambda: pa.RecordBatchReader.from_batches(
        _arrow().schema, _arrow().to_batches(max_chunksize=2)),
    "generator_of_polars": _batches_of_frames,
    "generator_of_dicts": _batches_of_dicts,
    "generator_of_arrow": _batches_of_arrow,
}


@pytest.mark.parametrize("form", list(FORMS))
def test_every_input_form_gives_the_same_rows_in_one_version(db, lakehouse_root,
                                                             form: str) -> None:
    t = db.create_table("t", FORM_SCHEMA)
    t.insert([{"n": 0}], progress=False)
    before = t.version
    assert before == 2

    result = t.insert(FORMS[form](), progress=False)

    assert result == lh.WriteResult(rows_written=3, rows_with_errors=0, version=before + 1)
    assert t.version == before + 1
    assert _lance_version_count(t, lakehouse_root) == before + 1
    history = t.history()
    assert history["version"].to_list() == [3, 2, 1]  # newest first
    assert history.row(0, named=True) | {"time": None} == {
        "version": 3, "time": None, "operation": "insert", "rows_added": 3, "rows_changed": 0,
        "rows_removed": 0, "total_rows": 4, "snapshots": []}
    df = t.where(t.n > 0).order_by(t.n).collect()
    assert df.schema == pl.Schema({"n": pl.Int64, "s": pl.String, "f": pl.Float64,
                                   "ts": pl.Datetime("us", "UTC"), "d": pl.Date})
    assert df.to_dicts() == EXPECTED


def test_single_dict_is_one_row(db) -> None:
    t = db.create_table("t", FORM_SCHEMA)
    result = t.insert(dict(ROWS[0]), progress=False)
    assert result == lh.WriteResult(1, 0, 2)
    assert t.collect().to_dicts() == EXPECTED[:1]


def test_missing_columns_are_null_and_column_order_is_free(db) -> None:
    t = db.create_table("t", FORM_SCHEMA)
    t.insert([{"d": "2024-05-06", "n": 1}, {"s": "only"}], progress=False)
    t.insert(pl.DataFrame({"f": [9.5], "n": [3]}), progress=False)
    assert t.order_by(t.n).collect().to_dicts() == [
        {"n": 1, "s": None, "f": None, "ts": None, "d": dt.date(2024, 5, 6)},
        {"n": 3, "s": None, "f": 9.5, "ts": None, "d": None},
        {"n": None, "s": "only", "f": None, "ts": None, "d": None},
    ]


def test_each_insert_is_exactly_one_version(db, lakehouse_root) -> None:
    t = db.create_table("t", {"n": lh.Int})
    assert t.version == 1

    def many_batches() -> Iterator[pl.DataFrame]:
        for k in range(7):
            yield pl.DataFrame({"n": [k * 10 + i for i in range(10)]})

    versions = []
    for data in ([{"n": -1}], many_batches(), pl.DataFrame({"n": list(range(100, 200))}),
                 {"n": -2}):
        versions.append(t.insert(data, progress=False).version)
    assert versions == [2, 3, 4, 5]
    assert t.version == 5
    assert _lance_version_count(t, lakehouse_root) == 5
    history = t.history().reverse()  # oldest first
    assert history["operation"].to_list() == ["create", "insert", "insert", "insert", "insert"]
    assert history["rows_added"].to_list() == [0, 1, 70, 100, 1]
    assert history["total_rows"].to_list() == [0, 1, 71, 171, 172]
    assert t.count() == 172


def test_empty_insert_writes_nothing(db, lakehouse_root) -> None:
    t = db.create_table("t", {"n": lh.Int})
    t.insert([{"n": 1}], progress=False)
    empty_inputs = [[], pl.DataFrame({"n": []}, schema={"n": pl.Int64}), iter([]),
                    (f for f in [pl.DataFrame(schema={"n": pl.Int64})])]
    for data in empty_inputs:
        assert t.insert(data, progress=False) == lh.WriteResult(0, 0, 2)
    assert t.version == 2
    assert _lance_version_count(t, lakehouse_root) == 2


# --------------------------------------------------------------------------------------------
# Refused values: a clear error naming column and row; nothing written
# --------------------------------------------------------------------------------------------

BAD_SCHEMA = {"n": lh.Int, "s": lh.String, "f": lh.Float, "ts": lh.Timestamp, "d": lh.Date,
              "j": lh.Json, "a": lh.Array[(3,), "float32"], "r": lh.Required(lh.Int)}

# (data, error class, column, row or None where the input has no single bad row)
BAD_INSERTS: dict[str, tuple[Any, type[Exception], str, int | None]] = {
    "str_in_int": ([{"r": 1, "n": 1}, {"r": 1, "n": "2"}], lh.TypeMismatchError, "n", 1),
    "str_in_int_polars": (pl.DataFrame({"r": [1, 1], "n": ["1", "2"]}),
                          lh.TypeMismatchError, "n", 0),
    "float_in_int": ([{"r": 1, "n": 1}, {"r": 1, "n": 2}, {"r": 1, "n": 2.5}],
                     lh.TypeMismatchError, "n", 2),
    "integral_float_in_int": ([{"r": 1, "n": 1}, {"r": 1, "n": 2.0}],
                              lh.TypeMismatchError, "n", 1),
    "float_in_int_arrow": (pa.table({"r": [1, 1], "n": [1.0, 2.5]}),
                           lh.TypeMismatchError, "n", 0),
    "bool_in_int": ([{"r": 1, "n": 1}, {"r": 1, "n": True}], lh.TypeMismatchError, "n", 1),
    "bool_in_int_polars": (pl.DataFrame({"r": [1], "n": [True]}), lh.TypeMismatchError, "n", 0),
    "int_too_large": ([{"r": 1}, {"r": 1}, {"r": 2**64}], lh.TypeMismatchError, "r", 2),
    "uint64_too_large_arrow": (pa.table({"r": pa.array([1, 2**63], pa.uint64())}),
                               lh.TypeMismatchError, "r", 1),
    "int_in_string": ([{"r": 1, "s": "a"}, {"r": 1, "s": 5}], lh.TypeMismatchError, "s", 1),
    "int_in_string_polars": (pl.DataFrame({"r": [1, 1], "s": [1, 2]}),
                             lh.TypeMismatchError, "s", 0),
    "str_in_float": ([{"r": 1, "f": "1.5"}], lh.TypeMismatchError, "f", 0),
    "bad_iso_timestamp": ([{"r": 1, "ts": "2024-01-01"}, {"r": 1, "ts": "yesterday"}],
                          lh.TypeMismatchError, "ts", 1),
    "int_in_timestamp": ([{"r": 1, "ts": 1700000000}], lh.TypeMismatchError, "ts", 0),
    "bad_iso_date": ([{"r": 1, "d": "2024-02-30"}], lh.TypeMismatchError, "d", 0),
    "datetime_in_date": ([{"r": 1}, {"r": 1, "d": dt.datetime(2024, 1, 1, 5)}],
                         lh.TypeMismatchError, "d", 1),
    "bad_json_text_arrow": (pa.table({"r": [1, 1, 1], "j": ['{"a": 1}', "[1, 2]", "{bad"]}),
                            lh.TypeMismatchError, "j", 2),
    "bad_json_text_pandas": (pd.DataFrame({"r": [1, 1], "j": ["3", "{'single': 1}"]}),
                             lh.TypeMismatchError, "j", 1),
    "bad_json_text_polars": (pl.DataFrame({"r": [1, 1], "j": ["nope", "{}"]}),
                             lh.TypeMismatchError, "j", 0),
    "unserialisable_json": ([{"r": 1, "j": {"a": 1}}, {"r": 1, "j": {1, 2}}],
                            lh.TypeMismatchError, "j", 1),
    "nan_in_json": ([{"r": 1, "j": [float("nan")]}], lh.TypeMismatchError, "j", 0),
    "short_array": ([{"r": 1, "a": [1, 2, 3]}, {"r": 1, "a": [1, 2]}],
                    lh.TypeMismatchError, "a", 1),
    "nested_array": ([{"r": 1, "a": [[1, 2, 3]]}], lh.TypeMismatchError, "a", 0),
    "text_array": ([{"r": 1, "a": ["x", "y", "z"]}], lh.TypeMismatchError, "a", 0),
    "short_array_polars": (pl.DataFrame({"r": [1, 1, 1], "a": [[1.0, 2, 3], [4.0, 5, 6], [7.0]]}),
                           lh.TypeMismatchError, "a", 2),
    "short_array_arrow": (pa.table({"r": [1, 1], "a": pa.array([[1.0, 2, 3], [4.0, 5]])}),
                          lh.TypeMismatchError, "a", 1),
    "null_in_required": ([{"r": 1}, {"r": None}], lh.TypeMismatchError, "r", 1),
    "missing_required": ([{"r": 1}, {"r": 2}, {"n": 3}], lh.TypeMismatchError, "r", 2),
    "null_in_required_polars": (pl.DataFrame({"r": [1, None, 3]}), lh.TypeMismatchError, "r", 1),
    "required_column_absent_arrow": (pa.table({"n": [1, 2]}), lh.TypeMismatchError, "r", 0),
    "unknown_column": ([{"r": 1}, {"r": 1, "zz": 1}], lh.ColumnNotFoundError, "zz", 1),
    "unknown_column_polars": (pl.DataFrame({"r": [1], "zz": [1]}),
                              lh.ColumnNotFoundError, "zz", None),
    "computed_column": ([{"r": 1}, {"r": 1, "c": 5}], lh.ComputedColumnError, "c", 1),
    "computed_column_arrow": (pa.table({"r": [1], "c": [5]}), lh.ComputedColumnError, "c", None),
}


BAD_COLUMNS = sorted({column for _, _, column, _ in BAD_INSERTS.values()})


@pytest.mark.parametrize("column", BAD_COLUMNS)
def test_bad_values_are_refused_naming_column_and_row(db, lakehouse_root, column: str) -> None:
    """Each case of BAD_INSERTS for this column (grouped to keep the S3 half quick)."""
    t = db.create_table("bad", BAD_SCHEMA)
    t.add_computed_column(c=t.r + 1, progress=False)
    t.insert([{"r": 10, "n": 1}, {"r": 20, "s": "x"}], progress=False)
    version, before = t.version, t.collect()

    cases = {name: case for name, case in BAD_INSERTS.items() if case[2] == column}
    assert cases
    for case, (data, error, _, row) in cases.items():
        with pytest.raises(error) as info:
            t.insert(data, progress=False)
        message = str(info.value)
        assert f"'{column}'" in message, (case, message)
        assert "'bad'" in message, (case, message)  # the table
        if row is not None:
            assert re.search(rf"\brow {row}\b", message), (case, message)
            assert len(re.findall(r"\brow \d+", message)) == 1, (case, message)
        assert t.version == version, case

    assert _lance_version_count(t, lakehouse_root) == version
    assert db.get_table("bad").collect().equals(before)
    assert t.history().height == version


def test_error_classes_are_builtin_subclasses(db) -> None:
    t = db.create_table("t", {"n": lh.Int})
    with pytest.raises(TypeError):
        t.insert([{"n": "x"}], progress=False)
    with pytest.raises(KeyError):
        t.insert([{"nope": 1}], progress=False)
    with pytest.raises(lh.TypeMismatchError, match="cannot take int"):
        t.insert(42, progress=False)
    with pytest.raises(lh.TypeMismatchError, match="row 1 is not a dict"):
        t.insert([{"n": 1}, 2], progress=False)
    assert t.version == 1


def _batches_failing_in_third(kind: str, consumed: list[int]) -> Iterator[Any]:
    for k in range(5):
        consumed.append(k)
        if k == 2 and kind == "raise":
            raise RuntimeError("source broke in batch 3")
        if kind == "polars":
            r = [1, None, 3, 4] if k == 2 else [1, 2, 3, 4]
            yield pl.DataFrame({"r": r, "n": [k] * 4}, schema={"r": pl.Int64, "n": pl.Int64})
        elif kind in ("dicts", "raise"):
            yield [{"r": 1, "n": "oops" if k == 2 and i == 2 else k} for i in range(4)]


@pytest.mark.parametrize(("kind", "message"), [
    ("polars", r"column 'r', row 9\b"),
    ("dicts", r"column 'n', row 10\b"),
    ("raise", r"source broke in batch 3"),
], ids=["polars", "dicts", "raise"])
def test_failure_in_third_batch_leaves_table_unchanged(db, lakehouse_root, kind: str,
                                                       message: str) -> None:
    t = db.create_table("t", BAD_SCHEMA)
    t.insert([{"r": 1, "n": 100}], progress=False)
    version, before = t.version, t.collect()
    consumed: list[int] = []

    expected = RuntimeError if kind == "raise" else lh.TypeMismatchError
    with pytest.raises(expected, match=message):
        t.insert(_batches_failing_in_third(kind, consumed), progress=False)

    assert consumed == [0, 1, 2]  # streamed: batches 1 and 2 were taken before the failure
    assert t.version == version
    assert _lance_version_count(t, lakehouse_root) == version
    assert t.count() == 1
    assert db.get_table("t").collect().equals(before)

    t.insert(pl.DataFrame({"r": [5], "n": [5]}), progress=False)  # the table still works
    assert t.version == version + 1
    assert sorted(t.collect()["n"].to_list()) == [5, 100]


# --------------------------------------------------------------------------------------------
# WriteResult
# --------------------------------------------------------------------------------------------


@lh.udf
def inverse(n: int) -> float:
    return 1 / n


def test_write_result_fields(db) -> None:
    assert [f.name for f in dataclasses.fields(lh.WriteResult)] == [
        "rows_written", "rows_with_errors", "version"]
    t = db.create_table("t", {"n": lh.Int})
    t.add_computed_column(inv=inverse(t.n), on_error="ignore", progress=False)  # version 2

    result = t.insert([{"n": 1}, {"n": 0}, {"n": 4}, {"n": 0}, {"n": None}], progress=False)
    assert isinstance(result, lh.WriteResult)
    assert (result.rows_written, result.rows_with_errors, result.version) == (5, 2, 3)
    assert result.version == t.version
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.rows_written = 0  # type: ignore[misc]

    df = t.select(t.n, t.inv, err=t.inv.errortype).collect()
    rows = sorted(df.rows(), key=lambda r: (r[0] is None, r[0] or 0))
    assert rows == [(0, None, "ZeroDivisionError"), (0, None, "ZeroDivisionError"),
                    (1, 1.0, None), (4, 0.25, None), (None, None, None)]

    second = t.insert(pl.DataFrame({"n": [2, 5]}), progress=False)
    assert second == lh.WriteResult(rows_written=2, rows_with_errors=0, version=4)


def test_computed_column_failure_with_abort_writes_nothing(db, lakehouse_root) -> None:
    t = db.create_table("t", {"n": lh.Int})
    t.add_computed_column(inv=inverse(t.n), progress=False)  # on_error="abort"
    t.insert([{"n": 2}], progress=False)
    version = t.version
    with pytest.raises(lh.ComputeError, match=r"'inv'.*row 2\b|row 2\b.*'inv'"):
        t.insert([{"n": 1}, {"n": 4}, {"n": 0}], progress=False)
    assert t.version == version
    assert _lance_version_count(t, lakehouse_root) == version
    assert t.collect().to_dicts() == [{"n": 2, "inv": 0.5}]


# --------------------------------------------------------------------------------------------
# Bounded memory
# --------------------------------------------------------------------------------------------

STREAMING_SCRIPT = """
import json, resource, shutil, sys, time
import numpy as np, polars as pl
import lakehouse as lh

ROWS, WARMUP, BATCHES = 50_000, 20, 120

def batch(k):
    n = np.arange(k * ROWS, (k + 1) * ROWS, dtype=np.int64)
    return pl.DataFrame({"n": n, "f": n * 0.5,
                         "s": pl.Series(n).cast(pl.String).str.zfill(10)})

def peak():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux

db = lh.connect(sys.argv[1], maintenance=False)  # the inserts alone, no zone map between them
t = db.create_table("big", {"n": lh.Int, "f": lh.Float, "s": lh.String})
t.insert((batch(k) for k in range(WARMUP)), progress=False)
full = batch(0).to_arrow().nbytes * BATCHES
before = peak()
start = time.monotonic()
result = t.insert((batch(k) for k in range(WARMUP, WARMUP + BATCHES)), progress=False)
seconds = time.monotonic() - start
growth = peak() - before
print(json.dumps({"growth": growth, "full": full, "rows": result.rows_written,
                  "version": result.version, "count": t.count(), "seconds": seconds,
                  "last": t.where(t.n == (WARMUP + BATCHES) * ROWS - 1).collect().to_dicts()}))
shutil.rmtree(sys.argv[1])  # about 240 MB on disk
"""


def test_iterator_insert_streams_in_bounded_memory(run_python, tmp_path) -> None:
    """6M rows (204 MB as Arrow) from a generator; peak RSS must not grow with the input.

    A warm-up insert first brings Lance's writer (it buffers each column up to a page, about
    1M narrow rows, before flushing) and the thread pools to their steady size, so the measured
    growth is what the insert adds as the input gets longer: materialising the input would add
    at least its full size; streaming adds a few MB.
    """
    proc = run_python(STREAMING_SCRIPT, args=[str(tmp_path / "lh")], timeout=120)
    assert proc.returncode == 0, proc.stderr
    stats = json.loads(proc.stdout.strip().splitlines()[-1])
    assert stats["rows"] == 6_000_000
    assert stats["version"] == 3
    assert stats["count"] == 7_000_000
    assert stats["last"] == [{"n": 6_999_999, "f": 3_499_999.5, "s": "0006999999"}]
    assert stats["growth"] < stats["full"] / 3, (
        f"peak RSS grew {stats['growth'] / 1e6:.0f} MB while inserting "
        f"{stats['full'] / 1e6:.0f} MB of batches")


def test_a_list_of_dataframes_is_a_list_of_batches(db):
    t = db.create_table("batches", {"n": lh.Int, "s": lh.String})
    frames = [pl.DataFrame({"n": [1, 2], "s": ["a", "b"]}), pl.DataFrame({"n": [3], "s": ["c"]})]
    result = t.insert(frames, progress=False)
    assert result.rows_written == 3
    assert sorted(t.collect()["n"].to_list()) == [1, 2, 3]

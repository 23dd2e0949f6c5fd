"""Small inserts keep nothing stale: the computed-column plan made once per definition read, the
version an insert committed handed to the handle, eager evaluation of small batches (issue 18).

A plan kept for a definition still follows a UDF registered again; a handle that inserted still
sees what other handles wrote and defined after; small (eager) and large (lazy) batches compute
and refuse the same values. What an insert no longer does changes no stored value: validated
columns reach Polars column by column as a whole-table conversion makes them; an Int overflow
nulls the value (or the UDF argument) it went into after the batch is computed, whatever the
value's type; a UDF's values are stored as the UDF's Arrow array.
"""

from __future__ import annotations

import polars as pl
import pyarrow as pa
import pytest

import lakehouse as lh
from lakehouse.exec import evaluate, writes
from lakehouse.exec.evaluate import EAGER_ROWS, PLANS_KEPT, table_plan
from lakehouse.metadata import TableDef


def _other(db: lh.Catalog, name: str) -> lh.Table:
    return lh.connect(db.root, storage_options=db.location.storage_options).get_table(name)


def test_the_plan_is_kept_per_definition_and_follows_a_udf_registered_again(db):
    t = db.create_table("plans", {"n": lh.Int})

    @lh.udf
    def bump(n: int) -> int:
        return n + 1

    t.add_computed_column(m=bump(t.n), progress=False)
    tdef = t.table_definition
    plan = table_plan("plans", tdef)
    assert plan is not None and table_plan("plans", tdef) is plan
    t.insert([{"n": 1}], progress=False)
    assert t.table_definition is tdef  # the insert handed its definition on: nothing re-read

    @lh.udf
    def bump(n: int) -> int:  # noqa: F811 - the same UDF, defined again (as in a notebook)
        return n + 100

    with pytest.warns(lh.UDFChangedWarning):
        t.insert([{"n": 2}], progress=False)
    assert table_plan("plans", tdef) is not plan  # the kept plan named the old function
    assert t.order_by(t.n).collect()["m"].to_list() == [2, 102]


def test_plans_are_kept_for_the_definitions_used_last(db):
    t = db.create_table("kept", {"n": lh.Int})
    t.add_computed_column(m=t.n * 2, progress=False)
    schema = t.table_state().dataset.schema
    first = TableDef.from_schema(schema, "kept")  # each read is a definition of its own
    plan = table_plan("kept", first)
    for _ in range(PLANS_KEPT):
        table_plan("kept", TableDef.from_schema(schema, "kept"))
    assert len(evaluate._table_plans) <= PLANS_KEPT
    assert all(held[0] is not first for held in evaluate._table_plans.values())
    assert table_plan("kept", first) is not plan  # made again


def test_a_handle_that_inserted_sees_what_others_wrote_and_defined_after(db):
    t = db.create_table("seen", {"n": lh.Int})
    t.insert([{"n": 1}], progress=False)
    other = _other(db, "seen")
    other.insert([{"n": 2}], progress=False)
    assert t.count() == 2 and t.table_version == other.table_version
    t.insert([{"n": 3}], progress=False)
    other.add_computed_column(m=other.n * 10, progress=False)
    assert t.table_definition.has("m")
    result = t.insert([{"n": 4}], progress=False)  # computed under the new definition
    assert result.version == t.table_version == _other(db, "seen").table_version
    assert t.order_by(t.n).collect()["m"].to_list() == [10, 20, 30, 40]


def test_an_insert_result_is_the_plain_write_result(db):
    t = db.create_table("plain", {"n": lh.Int})
    t.add_computed_column(m=t.n + 1, progress=False)
    result = t.insert([{"n": 1}], progress=False)
    assert type(result) is lh.WriteResult
    assert result == lh.WriteResult(1, 0, 3)


@pytest.mark.parametrize("rows", [100, EAGER_ROWS + 1])
def test_small_and_large_batches_compute_and_refuse_the_same(db, rows):
    t = db.create_table("sizes", {"n": lh.Int, "x": lh.Float})
    t.add_computed_column(m=t.n * 2 + t.x, progress=False)
    t.add_computed_column(k=t.n * 4, on_error="ignore", progress=False)
    big = 2**61 + 1  # n * 4 leaves the Int range, n * 2 does not
    ns = list(range(rows - 1)) + [big]
    data = pa.table({"n": pa.array(ns, pa.int64()), "x": pa.array([0.5] * rows)})
    assert t.insert(data, progress=False).rows_with_errors == 1
    out = t.where(t.n >= rows - 2).order_by(t.n).select(t.m, t.k, err=t.k.errortype).collect()
    assert out.rows() == [((rows - 2) * 2 + 0.5, (rows - 2) * 4, None),
                          (big * 2 + 0.5, None, "ComputeError")]
    refused = db.create_table("refused", {"n": lh.Int})
    refused.add_computed_column(m=refused.n * 8, progress=False)
    version = refused.table_version
    with pytest.raises(lh.ComputeError, match="integer overflow"):
        refused.insert(pa.table({"n": pa.array(ns, pa.int64())}), progress=False)
    assert refused.count() == 0 and refused.table_version == version


def test_validated_columns_reach_polars_as_a_whole_table_conversion_makes_them():
    types = {"i": lh.Int, "f": lh.Float, "s": lh.String, "b": lh.Bool, "t": lh.Timestamp,
             "d": lh.Date, "j": lh.Json, "m": lh.Image, "v": lh.Array[(2,), "float32"],
             "w": lh.Array[(2, 2), "int32"]}
    values = {"i": 1, "f": 0.5, "s": "x", "b": True, "t": 1_700_000_000_000_000, "d": 19_000,
              "j": '{"a": 1}', "m": b"\x89PNG", "v": [1.0, 2.0], "w": [[1, 2], [3, 4]]}
    table = pa.table({name: pa.array([values[name], None, values[name]], ct.arrow_type())
                      for name, ct in types.items()})
    frame = writes._polars_frame(table, list(types))
    assert frame.equals(pl.from_arrow(table)) and frame.schema == pl.from_arrow(table).schema
    assert writes._polars_frame(table, ["s", "i"]).columns == ["s", "i"]
    assert writes._polars_frame(table, []).shape == (3, 0)


def test_an_overflow_nulls_only_the_udf_argument_it_went_into(db):
    t = db.create_table("args", {"k": lh.Int, "n": lh.Int})

    @lh.udf
    def pair(a: int | None, b: int | None) -> str:
        return f"{a}/{b}"

    t.add_computed_column(p=pair(t.n * 2, t.k + 1), on_error="ignore", progress=False)
    big = 2**62  # n * 2 leaves the Int range; k + 1 leaves it for k = 2**63 - 1
    result = t.insert([{"k": 0, "n": 3}, {"k": 1, "n": big}, {"k": 2**63 - 1, "n": 5}],
                      progress=False)
    assert result.rows_with_errors == 2
    got = t.order_by(t.n).select(t.p, t.p.errortype).collect().rows()
    assert got == [("6/1", None), ("10/None", "ComputeError"), ("None/2", "ComputeError")]


@pytest.mark.parametrize("rows", [3, EAGER_ROWS + 1])
def test_an_overflow_nulls_a_value_of_any_type_it_went_into(db, rows):
    t = db.create_table("typed", {"n": lh.Int, "v": lh.Array[(2,), "float32"]})
    t.add_computed_column(w=lh.if_else(t.n * 2 > 0, t.v, t.v), on_error="ignore",
                          progress=False)
    t.add_computed_column(z=(t.n * 2).is_null(), on_error="ignore", progress=False)
    ns = [2**62 if i == 1 else i for i in range(rows)]
    t.insert(pa.table({"n": pa.array(ns, pa.int64()),
                       "v": pa.array([[1.0, 2.0]] * rows, pa.list_(pa.float32(), 2))}),
             progress=False)
    got = t.where(t.n < 3).order_by(t.n).select(t.w, t.z, t.w.errortype).collect().rows()
    assert got == [([1.0, 2.0], False, None), ([1.0, 2.0], False, None)]
    assert t.where(t.n == 2**62).select(t.w, t.z, t.z.errortype).collect().rows() == \
        [(None, None, "ComputeError")]


def test_udf_values_are_stored_as_the_udf_made_them(db):
    t = db.create_table("made", {"s": lh.String})

    @lh.udf
    def loud(s: str) -> str:
        return s.upper()

    @lh.udf
    def size(s: str) -> float:
        return len(s) if s != "bad" else "not a number"  # an int is a Float; a str is refused

    @lh.udf(returns=lh.Array[(2,), "float32"])
    def pair(s: str) -> list[float]:
        return [len(s), 0.5]

    t.add_computed_column(u=loud(t.s), progress=False)
    t.add_computed_column(n=size(t.s), on_error="ignore", progress=False)
    t.add_computed_column(v=pair(t.s), progress=False)
    result = t.insert([{"s": "ab"}, {"s": "bad"}, {"s": None}], progress=False)
    assert result.rows_with_errors == 1
    got = t.select(t.s, t.u, t.n, t.v, t.n.errortype).collect().rows()
    assert got == [("ab", "AB", 2.0, [2.0, 0.5], None),
                   ("bad", "BAD", None, [3.0, 0.5], "TypeError"), (None, None, None, None, None)]
    stored = t.table_state().dataset.to_table(columns=["u", "n", "v"])
    assert stored.schema.types == [pa.string(), pa.float64(), pa.list_(pa.float32(), 2)]

"""Queries: where / select / order_by / limit / collect, head, count, to_polars, scan, describe,
columns; the split of a filter into Lance SQL and a Polars residual; literal escaping.

Expected rows come from plain Python over the inserted rows (with SQL's three-valued logic for
nulls), never from the code under test. Every test runs on both backends.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import operator
import struct
from collections.abc import Callable
from typing import Any

import polars as pl
import pytest

import lakehouse as lh
from lakehouse.queries import Filter

UTC = dt.UTC
INT_MIN, INT_MAX = -(2**63), 2**63 - 1

SCHEMA = {
    "id": lh.Int,
    "label": lh.String,
    "age": lh.Int,
    "score": lh.Float,
    "active": lh.Bool,
    "joined": lh.Timestamp,
    "day": lh.Date,
    "meta": lh.Json,
}


def _row(i: int, label: str | None, age: int | None, score: float | None, active: bool | None,
         meta: Any) -> dict[str, Any]:
    return {"id": i, "label": label, "age": age, "score": score, "active": active,
            "joined": dt.datetime(2024, 1, i, 12, tzinfo=UTC), "day": dt.date(2024, 1, i),
            "meta": meta}


ROWS = [
    _row(1, "alice", 30, 1.5, True, {"city": "Paris", "tags": ["a", "b"], "n": 1}),
    _row(2, "bob", 25, 2.5, False, {"city": "Oslo", "tags": [], "n": 2}),
    _row(3, "carol", 35, None, True, {"city": "Paris", "n": 3}),
    _row(4, "dave", None, 0.5, None, None),
    _row(5, None, 40, 3.0, False, {"city": "Rome"}),
    _row(6, "Eve", 25, 4.0, True, {"city": "oslo", "tags": ["c"]}),
]
BY_ID = {r["id"]: r for r in ROWS}

# UDFs used in queries; CALLS records every value the row UDF was called with.
CALLS: list[str] = []


@lh.udf
def shout(s: str) -> str:
    CALLS.append(s)
    return s.upper() + "!"


@lh.udf
def starts_with_vowel(s: str) -> bool:
    return s[:1].lower() in "aeiou"


@lh.udf(batch_size=2)
def lengths(xs: list[str]) -> list[int]:
    CALLS.extend(f"batch:{x}" for x in xs)
    return [len(x) for x in xs]


@pytest.fixture
def people(db):
    t = db.create_table("people", SCHEMA)
    t.insert(ROWS, progress=False)
    return t


def _ids(df: pl.DataFrame) -> list[int]:
    return sorted(df.get_column("id").to_list())


# --- a tiny oracle with SQL's three-valued logic -------------------------------------------------


def cmp(op: Callable[[Any, Any], bool], field: str, value: Any) -> Callable[[dict], bool | None]:
    def pred(r: dict) -> bool | None:
        v = r[field]
        return None if v is None else op(v, value)
    return pred


def k_and(*preds):
    def pred(r):
        vals = [p(r) for p in preds]
        if any(v is False for v in vals):
            return False
        return None if any(v is None for v in vals) else True
    return pred


def k_or(*preds):
    def pred(r):
        vals = [p(r) for p in preds]
        if any(v is True for v in vals):
            return True
        return None if any(v is None for v in vals) else False
    return pred


def k_not(p):
    def pred(r):
        v = p(r)
        return None if v is None else not v
    return pred


def on(field: str, fn: Callable[[Any], Any]) -> Callable[[dict], Any]:
    """fn(value) for non-null values, null otherwise."""
    return lambda r: None if r[field] is None else fn(r[field])


def meta_path(*keys: Any) -> Callable[[dict], Any]:
    """The scalar at a JSON path, as the text Polars' json_path_match returns, or None."""
    def get(r: dict) -> Any:
        v = r["meta"]
        for k in keys:
            if isinstance(k, int):
                if not isinstance(v, list) or k >= len(v):
                    return None
            elif not isinstance(v, dict) or k not in v:
                return None
            v = v[k]
        return None if v is None else str(v)
    return get


def expected_ids(pred: Callable[[dict], bool | None]) -> list[int]:
    return sorted(r["id"] for r in ROWS if pred(r) is True)


# (label, expression builder, oracle, fully pushed into Lance SQL?)
WHERE_CASES: list[tuple[str, Callable, Callable, bool]] = [
    ("age == 25", lambda t: t.age == 25, cmp(operator.eq, "age", 25), True),
    ("age != 25", lambda t: t.age != 25, cmp(operator.ne, "age", 25), True),
    ("age < 30", lambda t: t.age < 30, cmp(operator.lt, "age", 30), True),
    ("age <= 30", lambda t: t.age <= 30, cmp(operator.le, "age", 30), True),
    ("age > 30", lambda t: t.age > 30, cmp(operator.gt, "age", 30), True),
    ("age >= 30", lambda t: t.age >= 30, cmp(operator.ge, "age", 30), True),
    ("30 < age (reflected)", lambda t: 30 < t.age,  # noqa: SIM300 - tests __gt__ reflection
     cmp(operator.gt, "age", 30), True),
    ("age > 29.5 (int vs float)", lambda t: t.age > 29.5, cmp(operator.gt, "age", 29.5), True),
    ("score >= 2 (float vs int)", lambda t: t.score >= 2, cmp(operator.ge, "score", 2), True),
    ("score == 2.5", lambda t: t.score == 2.5, cmp(operator.eq, "score", 2.5), True),
    ("score < age / 10", lambda t: t.score < t.age / 10,
     lambda r: None if r["score"] is None or r["age"] is None else r["score"] < r["age"] / 10,
     False),
    ("label == 'bob'", lambda t: t.label == "bob", cmp(operator.eq, "label", "bob"), True),
    ("label < 'c'", lambda t: t.label < "c", cmp(operator.lt, "label", "c"), True),
    ("label >= 'bob'", lambda t: t.label >= "bob", cmp(operator.ge, "label", "bob"), True),
    ("active (bare bool)", lambda t: t.active, lambda r: r["active"], True),
    ("~active", lambda t: ~t.active, k_not(lambda r: r["active"]), True),
    ("active == False", lambda t: t.active == False,  # noqa: E712 - builds an expression
     cmp(operator.eq, "active", False), True),
    ("joined >= aware datetime", lambda t: t.joined >= dt.datetime(2024, 1, 3, 12, tzinfo=UTC),
     lambda r: r["id"] >= 3, True),
    ("joined < naive datetime (UTC)", lambda t: t.joined < dt.datetime(2024, 1, 3, 12),
     lambda r: r["id"] < 3, True),
    ("joined > datetime at +02:00",
     lambda t: t.joined > dt.datetime(2024, 1, 4, 13, tzinfo=dt.timezone(dt.timedelta(hours=2))),
     lambda r: r["id"] >= 4, True),
    ("day == date", lambda t: t.day == dt.date(2024, 1, 2), lambda r: r["id"] == 2, True),
    ("day > date", lambda t: t.day > dt.date(2024, 1, 4), lambda r: r["id"] > 4, True),
    ("age.isin([25, 35])", lambda t: t.age.isin([25, 35]), on("age", lambda v: v in (25, 35)),
     True),
    ("label.isin([...])", lambda t: t.label.isin(["alice", "Eve", "zed"]),
     on("label", lambda v: v in ("alice", "Eve", "zed")), True),
    # SQL has no empty IN list that is NULL for a null age, as Polars is: evaluated in Polars
    ("age.isin([])", lambda t: t.age.isin([]), lambda r: False, False),
    ("age.isin([25.0, 30.5])", lambda t: t.age.isin([25.0, 30.5]),
     on("age", lambda v: v in (25.0, 30.5)), True),
    ("~age.isin([25])", lambda t: ~t.age.isin([25]), k_not(on("age", lambda v: v == 25)), True),
    ("age.is_null()", lambda t: t.age.is_null(), lambda r: r["age"] is None, True),
    ("age.is_not_null()", lambda t: t.age.is_not_null(), lambda r: r["age"] is not None, True),
    ("age == None", lambda t: t.age == None,  # noqa: E711 - builds an is_null expression
     lambda r: r["age"] is None, True),
    ("label != None", lambda t: t.label != None,  # noqa: E711
     lambda r: r["label"] is not None, True),
    ("score.is_null()", lambda t: t.score.is_null(), lambda r: r["score"] is None, True),
    ("meta.is_null()", lambda t: t.meta.is_null(), lambda r: r["meta"] is None, False),
    ("(age > 26) & active", lambda t: (t.age > 26) & t.active,
     k_and(cmp(operator.gt, "age", 26), lambda r: r["active"]), True),
    ("(age > 30) | (label == 'bob')", lambda t: (t.age > 30) | (t.label == "bob"),
     k_or(cmp(operator.gt, "age", 30), cmp(operator.eq, "label", "bob")), True),
    ("~((age > 30) | (label == 'bob'))", lambda t: ~((t.age > 30) | (t.label == "bob")),
     k_not(k_or(cmp(operator.gt, "age", 30), cmp(operator.eq, "label", "bob"))), True),
    # Int arithmetic stays in Polars, which reports an overflow where Lance would wrap around
    ("age * 2 > 60", lambda t: t.age * 2 > 60, on("age", lambda v: v * 2 > 60), False),
    ("age + 5 >= 35", lambda t: t.age + 5 >= 35, on("age", lambda v: v + 5 >= 35), False),
    ("age - 5 < 25", lambda t: t.age - 5 < 25, on("age", lambda v: v - 5 < 25), False),
    ("-age < -30", lambda t: -t.age < -30, on("age", lambda v: -v < -30), False),
    ("age > -(-25) (folded)", lambda t: t.age > -lh.lit(-25), cmp(operator.gt, "age", 25), True),
    ("age / 2 > 14", lambda t: t.age / 2 > 14, on("age", lambda v: v / 2 > 14), False),
    ("age // 10 == 2", lambda t: t.age // 10 == 2, on("age", lambda v: v // 10 == 2), False),
    ("age % 2 == 1", lambda t: t.age % 2 == 1, on("age", lambda v: v % 2 == 1), False),
    ("age.astype(Float) > 30.5", lambda t: t.age.astype(lh.Float) > 30.5,
     on("age", lambda v: v > 30.5), True),
    ("if_else(age > 30, ...)", lambda t: lh.if_else(t.age > 30, True, False),
     on("age", lambda v: v > 30), False),
    ("meta['city'] == 'Paris'", lambda t: t.meta["city"] == "Paris",
     lambda r: meta_path("city")(r) == "Paris" if meta_path("city")(r) is not None else None,
     False),
    ("meta['n'].astype(Int) >= 2", lambda t: t.meta["n"].astype(lh.Int) >= 2,
     lambda r: None if meta_path("n")(r) is None else int(meta_path("n")(r)) >= 2, False),
    ("meta['tags'][0] == 'a'", lambda t: t.meta["tags"][0] == "a",
     lambda r: None if meta_path("tags", 0)(r) is None else meta_path("tags", 0)(r) == "a",
     False),
    ("meta['city'].is_null()", lambda t: t.meta["city"].is_null(),
     lambda r: meta_path("city")(r) is None, False),
    ("label.str.upper() == 'ALICE'", lambda t: t.label.str.upper() == "ALICE",
     on("label", lambda v: v.upper() == "ALICE"), False),
    ("label.str.lower() == 'eve'", lambda t: t.label.str.lower() == "eve",
     on("label", lambda v: v.lower() == "eve"), False),
    ("label.str.contains('o')", lambda t: t.label.str.contains("o"),
     on("label", lambda v: "o" in v), False),
    ("label.str.contains('.') is literal", lambda t: t.label.str.contains("."),
     on("label", lambda v: "." in v), False),
    ("label.str.startswith('a')", lambda t: t.label.str.startswith("a"),
     on("label", lambda v: v.startswith("a")), False),
    ("label.str.endswith('e')", lambda t: t.label.str.endswith("e"),
     on("label", lambda v: v.endswith("e")), False),
    ("label.str.len() > 3", lambda t: t.label.str.len() > 3, on("label", lambda v: len(v) > 3),
     False),
    ("label.str.slice(0, 2) == 'bo'", lambda t: t.label.str.slice(0, 2) == "bo",
     on("label", lambda v: v[:2] == "bo"), False),
    ("label.str.replace('a', '4') == '4lice'", lambda t: t.label.str.replace("a", "4") == "4lice",
     on("label", lambda v: v.replace("a", "4") == "4lice"), False),
    ("UDF in where", lambda t: starts_with_vowel(t.label),
     on("label", lambda v: v[:1].lower() in "aeiou"), False),
    ("(age > 26) & label.str.contains('a') (mixed)",
     lambda t: (t.age > 26) & t.label.str.contains("a"),
     k_and(cmp(operator.gt, "age", 26), on("label", lambda v: "a" in v)), False),
]


def test_where_every_operator_matches_python(people):
    mismatches = []
    tdef = people.table_definition
    for label, build, oracle, pushed in WHERE_CASES:
        expr = build(people)
        want = expected_ids(oracle)
        q = people.where(expr)
        got = _ids(q.collect())
        counted = q.count()
        lazy = _ids(q.scan().collect()) if label != "UDF in where" else want
        split = Filter.split(expr, tdef)
        is_pushed = split.residual is None and split.sql is not None
        if (got, counted, lazy, is_pushed) != (want, len(want), want, pushed):
            mismatches.append(f"{label}: collect {got}, count {counted}, scan {lazy}, "
                              f"pushed {is_pushed} ({split}); want {want}, pushed {pushed}")
    assert not mismatches, "\n".join(mismatches)


def test_where_calls_combine_with_and(people):
    q = people.where(people.age >= 25).where(people.label.str.contains("e"))
    assert _ids(q.collect()) == [1, 6]  # alice, Eve (carol has no 'e'; dave has no age)
    assert q.count() == 2


def test_collect_returns_full_rows_with_types(people):
    df = people.where(people.id == 1).collect()
    assert df.columns == list(SCHEMA)
    assert df.schema == pl.Schema({
        "id": pl.Int64, "label": pl.String, "age": pl.Int64, "score": pl.Float64,
        "active": pl.Boolean, "joined": pl.Datetime("us", "UTC"), "day": pl.Date,
        "meta": pl.String,
    })
    row = df.row(0, named=True)
    assert row["label"] == "alice"
    assert row["joined"] == dt.datetime(2024, 1, 1, 12, tzinfo=UTC)
    assert row["day"] == dt.date(2024, 1, 1)
    assert json.loads(row["meta"]) == {"city": "Paris", "tags": ["a", "b"], "n": 1}


def test_select_columns_and_named_expressions(people):
    df = people.order_by(people.id).select(
        people.id, "label", age2=people.age * 2, up=people.label.str.upper(),
        city=people.meta["city"], half=people.age / 2, ok=people.age > 26,
    ).collect()
    assert df.columns == ["id", "label", "age2", "up", "city", "half", "ok"]
    assert df.schema == pl.Schema({
        "id": pl.Int64, "label": pl.String, "age2": pl.Int64, "up": pl.String,
        "city": pl.String, "half": pl.Float64, "ok": pl.Boolean,
    })
    assert df.get_column("age2").to_list() == [60, 50, 70, None, 80, 50]
    assert df.get_column("up").to_list() == ["ALICE", "BOB", "CAROL", "DAVE", None, "EVE"]
    assert df.get_column("city").to_list() == ["Paris", "Oslo", "Paris", None, "Rome", "oslo"]
    assert df.get_column("half").to_list() == [15.0, 12.5, 17.5, None, 20.0, 12.5]
    assert df.get_column("ok").to_list() == [True, False, True, None, True, False]


def test_select_json_object_comes_back_as_json_text(people):
    df = people.where(people.id == 1).select(tags=people.meta["tags"]).collect()
    assert json.loads(df.item()) == ["a", "b"]


def test_select_rejects_duplicate_names(people):
    with pytest.raises(lh.InvalidOptionError, match="duplicate"):
        people.select(people.age, age=people.age * 2)


def test_select_keeps_the_order_of_named_pairs(people):
    q = people.order_by(people.id)
    df = q.select(people.label, ("age2", people.age * 2), "id", (None, people.age + 1),
                  ok=people.age > 26).collect()
    assert df.columns == ["label", "age2", "id", "col_3", "ok"]
    assert df.get_column("age2").to_list() == [60, 50, 70, None, 80, 50]
    # a parsed selection is selected as it is, in its order
    selection = lh.parse_selection("label, decade = age // 10 * 10, id", people)
    assert [n for n, _ in selection] == [None, "decade", None]
    assert q.select(*selection).collect().columns == ["label", "decade", "id"]
    assert q.select(("n", 1)).collect().columns == ["n"]  # a pair's value may be a literal
    with pytest.raises(lh.TypeMismatchError, match="string name"):
        people.select((1, people.age))


def test_udf_in_select_runs_only_on_returned_rows(people):
    CALLS.clear()
    df = (people.where(people.age >= 25).order_by(people.age, asc=False).limit(2)
          .select(people.label, loud=shout(people.label), n=lengths(people.label)).collect())
    assert df.rows() == [(None, None, None), ("carol", "CAROL!", 5)]
    # both UDFs saw only the one non-null value of the returned rows
    assert sorted(CALLS) == ["batch:carol", "carol"]

    CALLS.clear()
    df = people.where(people.label.isin(["bob", "Eve"])).select(loud=shout(people.label)).collect()
    assert sorted(df.get_column("loud").to_list()) == ["BOB!", "EVE!"]
    assert sorted(CALLS) == ["Eve", "bob"]


def test_order_by_multiple_keys_and_directions(people):
    # age descending (nulls last), then label ascending among equal ages ("Eve" < "bob")
    df = people.order_by(people.age, asc=False).order_by(people.label).collect()
    assert df.get_column("id").to_list() == [5, 3, 1, 6, 2, 4]
    df = people.order_by(people.age, people.label).collect()
    assert df.get_column("id").to_list() == [6, 2, 1, 3, 5, 4]
    # by name, and by a computed expression
    assert people.order_by("score").collect().get_column("id").to_list() == [4, 1, 2, 5, 6, 3]
    df = people.where(people.label.is_not_null()).order_by(people.label.str.lower()).collect()
    assert df.get_column("label").to_list() == ["alice", "bob", "carol", "dave", "Eve"]
    df = people.order_by(people.joined, asc=False).select(people.id).collect()
    assert df.get_column("id").to_list() == [6, 5, 4, 3, 2, 1]
    # sorting by a column that is not selected
    df = people.order_by(people.id, asc=False).select(people.label).collect()
    assert df.columns == ["label"]
    assert df.get_column("label").to_list() == ["Eve", None, "dave", "carol", "bob", "alice"]


def test_order_by_with_select_and_where(people):
    df = (people.where(people.active).order_by(people.score, asc=False)
          .select(people.label, s2=people.score * 2).collect())
    # active rows: alice 1.5, carol null, Eve 4.0 -> by score descending, nulls last
    assert df.rows() == [("Eve", 8.0), ("alice", 3.0), ("carol", None)]


def test_limit_with_and_without_order(people):
    # without order: any n distinct rows of the table
    df = people.limit(3).collect()
    assert df.height == 3
    assert len(set(df.get_column("id").to_list())) == 3
    assert set(df.get_column("id").to_list()) <= set(BY_ID)
    # with order: exactly the first n
    assert people.order_by(people.id, asc=False).limit(2).collect().get_column("id").to_list() \
        == [6, 5]
    # with a pushed filter and with a residual one: n matching rows
    df = people.where(people.age >= 25).limit(2).collect()
    assert df.height == 2 and set(df.get_column("id").to_list()) <= {1, 2, 3, 5, 6}
    df = people.where(people.label.str.contains("a")).limit(2).collect()
    assert df.height == 2 and set(df.get_column("id").to_list()) <= {1, 3, 4}
    df = people.where(people.label.str.contains("a")).limit(10).collect()
    assert _ids(df) == [1, 3, 4]
    # more than there are, and zero
    assert people.limit(100).collect().height == len(ROWS)
    empty = people.limit(0).collect()
    assert empty.height == 0 and empty.columns == list(SCHEMA)
    assert people.where(people.label.str.contains("a")).limit(0).collect().height == 0


def test_head(people):
    assert people.head(2).height == 2
    assert people.head().height == len(ROWS)  # default 10 > 6 rows
    head = people.order_by(people.id).head(3)
    assert head.get_column("id").to_list() == [1, 2, 3]
    assert head.columns == list(SCHEMA)
    assert people.where(people.age == 25).head(1).get_column("age").to_list() == [25]


def test_count(people):
    assert people.count() == len(ROWS)
    assert people.where(people.age > 26).count() == 3  # pushed
    assert people.where(people.label.str.contains("o")).count() == 2  # residual: bob, carol
    assert people.where((people.age > 26) & people.label.str.contains("o")).count() == 1  # carol
    assert people.where(people.age > 1000).count() == 0
    assert people.where(people.label.str.contains("zzz")).count() == 0


def test_to_polars_is_whole_table(people):
    df = people.to_polars()
    assert df.columns == list(SCHEMA)
    assert df.height == len(ROWS)
    by_id = {r["id"]: r for r in df.iter_rows(named=True)}
    for i, row in BY_ID.items():
        got = by_id[i]
        for col in ("label", "age", "score", "active", "joined", "day"):
            assert got[col] == row[col], (i, col)
    assert _ids(people.collect()) == sorted(BY_ID)


def test_columns_and_describe(db):
    t = db.create_table("described", {"a": lh.Int, "s": lh.String, "v": lh.Array[(3,), "float32"],
                                       "r": lh.Required(lh.Int)})
    t.insert([{"a": 1, "s": "x", "v": [1, 2, 3], "r": 0}], progress=False)
    t.add_computed_column(a2=t.a * 2 + 1, progress=False)
    t.add_computed_column(up=t.s.str.upper(), on_error="ignore", progress=False)
    t.add_computed_column(loud=shout(t.s), on_error="ignore", progress=False)
    assert t.columns() == ["a", "s", "v", "r", "a2", "up", "loud"]  # no hidden columns
    d = t.describe()
    assert d.columns == ["column", "type", "computed", "on_error"]
    assert d.rows() == [
        ("a", "Int", None, None),
        ("s", "String", None, None),
        ("v", "Array[(3,), float32]", None, None),
        ("r", "Required[Int]", None, None),
        ("a2", "Int", "((a * 2) + 1)", "abort"),
        ("up", "String", "str.upper(s)", "ignore"),
        ("loud", "String", "shout(s)", "ignore"),
    ]
    t.rename_column("a", "b")
    d = t.describe()
    assert d.get_column("computed").to_list()[4] == "((b * 2) + 1)"  # follows the rename
    assert t.columns()[0] == "b"


def test_scan_is_lazy_with_pushdown(people):
    lf = people.where(people.age > 26).select(people.label).scan()
    assert isinstance(lf, pl.LazyFrame)
    plan = lf.explain()
    # the filter went into the Lance scan, and only the needed columns are read
    assert "filter: (age > 26)" in plan, plan
    assert f"PROJECT 1/{len(SCHEMA)} COLUMNS" in plan, plan
    assert sorted(lf.collect().get_column("label").to_list(), key=str) == \
        sorted(["alice", "carol", None], key=str)
    assert lf.collect_schema() == pl.Schema({"label": pl.String})


def test_scan_whole_table_and_builders(people):
    lf = people.scan()
    assert lf.collect_schema().names() == list(SCHEMA)  # no hidden columns
    assert _ids(lf.collect()) == sorted(BY_ID)
    lf = (people.where((people.age >= 25) & people.label.str.contains("o"))
          .order_by(people.age, asc=False).limit(1).select(people.label, a=people.age + 1).scan())
    plan = lf.explain()
    assert "filter: (age >= 25)" in plan, plan
    assert lf.collect().rows() == [("carol", 36)]
    # Polars can keep building on it; the projection still reaches the scan
    plan = people.scan().filter(pl.col("score") > 2).select("id").explain()
    assert f"/{len(SCHEMA)} COLUMNS" in plan and "PROJECT */" not in plan, plan


def test_scan_refuses_python_udfs(people):
    with pytest.raises(lh.UnsupportedError, match="collect"):
        people.select(loud=shout(people.label)).scan()


# --- escaping ------------------------------------------------------------------------------------

TRICKY = [
    "it's", "'", "''", "x' OR '1'='1", "a\\b", "a\\", "\\'", "\\\\", "100%", "%", "_", "a_b",
    "a -- b", "--", "/* c */", "a;DROP TABLE t;--", '"dq"', "`bt`", "héllo ☃", "🎉", "e\u0301",
    "\u00e9", "line\nbreak", "tab\t", "", " ", "NULL", "nul\x00l", "$1", "{}", "?",
]


@pytest.fixture
def tricky(db):
    t = db.create_table("tricky", {"n": lh.Int, "s": lh.String})
    t.insert([{"n": i, "s": s} for i, s in enumerate(TRICKY)] + [{"n": 999, "s": None}],
             progress=False)
    return t


def test_string_literals_match_python_equality(tricky):
    df = tricky.to_polars()
    problems = []
    for value in [*TRICKY, "nobody' OR '1'='1", "x' OR 1=1 --", "' OR ''='"]:
        cases = [
            ("==", tricky.s == value, pl.col("s") == value),
            ("!=", tricky.s != value, pl.col("s") != value),
            ("<", tricky.s < value, pl.col("s") < value),
            ("isin", tricky.s.isin([value, "zz"]), pl.col("s").is_in([value, "zz"])),
            ("contains", tricky.s.str.contains(value),
             pl.col("s").str.contains(value, literal=True)),
        ]
        for op, expr, polars_expr in cases:
            want = sorted(df.filter(polars_expr).get_column("n").to_list())
            if op == "==":  # Python's own equality agrees with Polars
                assert want == sorted(i for i, s in enumerate(TRICKY) if s == value)
            q = tricky.where(expr)
            got = sorted(q.select(tricky.n).collect().get_column("n").to_list())
            counted = q.count()
            if got != want or counted != len(want):
                problems.append(f"{value!r} {op}: got {got} (count {counted}), want {want}")
    assert not problems, "\n".join(problems)


def test_quote_cannot_change_a_filter(tricky):
    payload = "x' OR '1'='1"
    split = Filter.split(tricky.s == payload, tricky.table_definition)
    assert split.sql == "(`s` = 'x'' OR ''1''=''1')"
    assert split.residual is None
    assert tricky.where(tricky.s == "no' OR '1'='1").count() == 0
    assert tricky.where(tricky.s == payload).collect().get_column("n").to_list() == \
        [TRICKY.index(payload)]
    # delete uses the same pushed filter: exactly one row goes
    before = tricky.count()
    result = tricky.delete(where=tricky.s == payload)
    assert result.rows_written == 1
    assert tricky.count() == before - 1
    assert payload not in tricky.to_polars().get_column("s").to_list()
    tricky.delete(where=tricky.s == "gone' OR 'a'='a")
    assert tricky.count() == before - 1


def test_nul_character_is_pushed_and_filters_exactly(tricky):
    # Lance reads a NUL inside a literal as itself: the string is neither cut nor refused
    value = "nul\x00l"
    split = Filter.split(tricky.s == value, tricky.table_definition)
    assert split.sql == "(`s` = 'nul\x00l')" and split.residual is None
    assert tricky.where(tricky.s == value).collect().get_column("n").to_list() == \
        [TRICKY.index(value)]
    assert tricky.where(tricky.s == "nul").count() == 0


# --- Filter.split ---------------------------------------------------------------------------------


def test_filter_split_pushes_sql_and_keeps_residual(people):
    tdef = people.table_definition
    f = Filter.split((people.age > 30) & (people.label == "o'neil"), tdef)
    assert f == Filter("(`age` > 30) AND (`label` = 'o''neil')", None)

    f = Filter.split(people.age.isin([1, 2]) & people.score.is_null() & ~people.active, tdef)
    assert f.sql == "(`age` IN (1, 2)) AND (`score` IS NULL) AND (NOT `active`)"
    assert f.residual is None

    f = Filter.split(people.day >= dt.date(2024, 1, 2), tdef)
    assert f.sql == "(`day` >= DATE '2024-01-02')"
    f = Filter.split(people.joined < dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC), tdef)
    assert f.sql == "(`joined` < TIMESTAMP '2024-01-02 03:04:05')"

    upper = people.label.str.upper() == "BOB"
    f = Filter.split((people.age > 20) & upper & (people.active == True), tdef)  # noqa: E712
    assert f.sql == "(`age` > 20) AND (`active` = TRUE)"
    assert f.residual is upper

    either = (people.age > 30) | people.label.str.contains("a")
    f = Filter.split(either, tdef)
    assert f.sql is None and f.residual is either

    json_cond = people.meta["city"] == "Paris"
    f = Filter.split(json_cond & (people.id < 4), tdef)
    assert f.sql == "(`id` < 4)"
    assert f.residual is json_cond
    assert _ids(people.where(json_cond & (people.id < 4)).collect()) == [1, 3]

    two = starts_with_vowel(people.label)
    f = Filter.split(upper & two, tdef)
    assert f.sql is None
    assert repr(f.residual) == repr(upper & two)

    assert Filter.split(None, tdef) == Filter(None, None)
    with pytest.raises(lh.TypeMismatchError):
        Filter.split(people.age, tdef)


def test_filter_uses_current_names_and_quotes_identifiers(db):
    t = db.create_table("kw", {"order": lh.Int, "from": lh.String})
    t.insert([{"order": i, "from": f"f{i}"} for i in range(5)], progress=False)
    f = Filter.split((t["order"] > 2) & (t["from"] != "f4"), t.table_definition)
    assert f.sql == "(`order` > 2) AND (`from` <> 'f4')"
    assert t.where((t["order"] > 2) & (t["from"] != "f4")).collect().rows() == [(3, "f3")]
    t.rename_column("order", "rank")
    f = Filter.split(t.rank >= 3, t.table_definition)
    assert f.sql == "(`rank` >= 3)"
    assert sorted(t.where(t.rank >= 3).collect().get_column("rank").to_list()) == [3, 4]


def test_where_on_computed_columns(people):
    people.add_computed_column(age2=people.age * 2, progress=False)
    people.add_computed_column(up=people.label.str.upper(), progress=False)
    f = Filter.split(people.age2 > 60, people.table_definition)
    assert f.sql == "(`age2` > 60)"
    assert _ids(people.where(people.age2 > 60).collect()) == [3, 5]
    assert _ids(people.where(people.up == "EVE").collect()) == [6]


# --- filters that cannot be misread (issue 11) ---------------------------------------------------

NEGATIVE_NAN = struct.unpack("<d", struct.pack("<Q", 0xFFF8000000000000))[0]


@pytest.fixture
def three(db):
    t = db.create_table("three", {"x": lh.Int, "s": lh.String})
    t.insert([{"x": 1, "s": "a"}, {"x": 7, "s": "b"}, {"x": 9, "s": None}], progress=False)
    return t


def test_negated_negative_literal_cannot_start_a_comment(three):
    # -lit(-5) once compiled to (--5): Lance read the rest of the filter as a comment, and a
    # string holding a newline turned the rest of the filter into SQL
    cond = (-lh.lit(-5) < three.x) & (three.s == "\nTRUE)) OR TRUE --")
    assert Filter.split(cond, three.table_definition).sql == \
        "(`x` > 5) AND (`s` = '\nTRUE)) OR TRUE --')"
    assert three.where(cond).count() == 0
    assert three.where(cond).collect().height == 0
    assert three.delete(where=cond).rows_written == 0
    assert three.count() == 3
    assert three.update({"s": "changed"}, where=cond, progress=False).rows_written == 0
    assert sorted(three.select(three.x).collect().get_column("x").to_list()) == [1, 7, 9]
    # without the string the filter was a raw OSError
    assert _xs(three.where(-lh.lit(-5) < three.x)) == [7, 9]
    assert _xs(three.where(three.x > operator.neg(-lh.lit(-5)))) == [1, 7, 9]  # x > -5
    assert _xs(three.where(three.x - lh.lit(-5) > 10)) == [7, 9]


def test_where_string_with_double_negation_means_what_it_says(three):
    # the CLI's --where "x > -(-5)" goes through parse_condition
    assert _xs(three.where(lh.parse_condition("x > -(-5)", three))) == [7, 9]
    assert _xs(three.where(lh.parse_condition("x > - -5 and x < --10", three))) == [7, 9]
    assert _xs(three.where(lh.parse_condition("-x < -(-(-8))", three))) == [9]
    assert three.delete(where=lh.parse_condition("x > -(-5)", three)).rows_written == 2
    assert _xs(three.select(three.x)) == [1]


def _xs(q) -> list[int]:
    return sorted(q.collect().get_column("x").to_list())


def test_int_extremes_push_down_as_exact_literals(db):
    t = db.create_table("extremes", {"x": lh.Int})
    t.insert([{"x": v} for v in (INT_MIN, INT_MIN + 1, -1, 0, INT_MAX)], progress=False)
    tdef = t.table_definition
    assert Filter.split(t.x == INT_MIN, tdef).sql == "(`x` = (-9223372036854775807 - 1))"
    assert Filter.split(t.x > -3, tdef).sql == "(`x` > (-3))"
    assert _xs(t.where(t.x == INT_MIN)) == [INT_MIN]
    assert _xs(t.where(t.x.isin([INT_MIN, INT_MAX]))) == [INT_MIN, INT_MAX]
    assert _xs(t.where(t.x < INT_MIN + 1)) == [INT_MIN]
    assert _xs(t.where(t.x >= -lh.lit(-INT_MAX))) == [INT_MAX]
    # folding -lit(INT_MIN) leaves the range: Polars evaluates it and reports the overflow
    assert Filter.split(t.x == -lh.lit(INT_MIN), tdef).sql is None
    with pytest.raises(lh.ComputeError, match="integer overflow"):
        t.where(t.x == -lh.lit(INT_MIN)).count()
    # a literal outside the Int range is refused, never wrapped
    with pytest.raises(lh.Error, match="outside the 64-bit Int range"):
        t.where(t.x < 2**63).collect()
    assert t.count() == 5


def test_float_filters_order_nan_and_zero_as_polars(db):
    # Lance puts a NaN with its sign bit below -inf and -0.0 below 0.0 between columns; the
    # filter keeps Polars' order: every NaN above +inf and equal to NaN, -0.0 equal to 0.0
    t = db.create_table("floats", {"k": lh.Int, "f": lh.Float, "g": lh.Float})
    values = [(0.0, -0.0), (-0.0, 0.0), (math.nan, NEGATIVE_NAN), (NEGATIVE_NAN, math.nan),
              (math.inf, 1.0), (-math.inf, 1.0), (1.0, None), (None, 1.0)]
    t.insert([{"k": k, "f": f, "g": g} for k, (f, g) in enumerate(values)], progress=False)

    def keys(cond) -> list[int]:
        return sorted(t.where(cond).collect().get_column("k").to_list())

    assert keys(t.f < 1.0) == [0, 1, 5]
    assert keys(t.f >= 1.0) == [2, 3, 4, 6]
    assert keys(t.f > math.inf) == [2, 3]
    assert keys(t.f == 0.0) == [0, 1]
    assert keys(t.f == -0.0) == [0, 1]
    assert keys(t.f == math.nan) == [2, 3]
    assert keys(t.f == t.g) == [0, 1, 2, 3]
    assert keys(-t.f < 0.0) == [4, 6]
    assert keys(t.f.isin([0.0, math.nan])) == [0, 1, 2, 3]
    assert keys(~(t.f < 1.0)) == [2, 3, 4, 6]
    for cond in (t.f < 1.0, ~(t.f < 1.0), t.f == math.nan, t.f == t.g):
        assert t.where(cond).count() == len(keys(cond))
    assert t.delete(where=~(t.f < 1.0)).rows_written == 4
    assert sorted(t.select(t.k).collect().get_column("k").to_list()) == [0, 1, 5, 7]


def test_delete_removes_only_rows_where_the_filter_is_true(three):
    # NOT (x > 5) is NULL for a null x: that row stays, like the rows where it is FALSE
    three.insert([{"x": None, "s": "null x"}], progress=False)
    assert three.delete(where=~(three.x > 5)).rows_written == 1
    assert set(three.select(three.s).collect().get_column("s").to_list()) == \
        {"b", None, "null x"}


def test_negated_isin_leaves_null_rows_out(db):
    # Lance's simplifier merges IN lists on one column as if no value were null: under NOT,
    # x IN (1) AND x IN (2) became NOT FALSE and selected the null rows
    t = db.create_table("lists", {"k": lh.Int, "x": lh.Int, "f": lh.Float})
    t.insert([{"k": 0}, {"k": 1, "x": 1, "f": 0.0}, {"k": 2, "x": 2, "f": 5.0}], progress=False)

    def keys(cond) -> list[int]:
        return sorted(t.where(cond).collect().get_column("k").to_list())

    cases = [
        (~(t.x.isin([1]) & t.x.isin([2])), [1, 2]),
        (~(t.f.isin([0.0]) & t.f.isin([math.inf])), [1, 2]),
        (~t.x.isin([1]) | ~t.x.isin([2]), [1, 2]),
        (~(((t.x == 1) | (t.x == 3)) & ((t.x == 2) | (t.x == 4))), [1, 2]),
        (~(t.x.isin([1]) & ~t.x.isin([1])), [1, 2]),
        (~t.x.isin([1, None]), [2]),
    ]
    for cond, want in cases:
        assert Filter.split(cond, t.table_definition).residual is None, cond
        assert (keys(cond), t.where(cond).count()) == (want, len(want)), cond
    assert t.delete(where=cases[0][0]).rows_written == 2
    assert keys(t.k >= 0) == [0]


def test_isin_of_a_literal_filters_every_row(three):
    assert three.where(lh.lit(5).isin([1, 2])).count() == 0
    assert three.where(lh.lit(1).isin([1]) & (three.x > 1)).count() == 2
    assert three.where(lh.lit(-(2**63)).isin([])).collect().height == 0


# --- empty results ----------------------------------------------------------------------------


EXPECTED_DTYPES = pl.Schema({
    "id": pl.Int64, "label": pl.String, "age": pl.Int64, "score": pl.Float64,
    "active": pl.Boolean, "joined": pl.Datetime("us", "UTC"), "day": pl.Date, "meta": pl.String,
})


def _check_empty_queries(t) -> None:
    assert t.count() == 0
    assert t.where(t.age > 1).count() == 0
    assert t.where(t.label.str.contains("a")).count() == 0
    for df in (t.collect(), t.to_polars(), t.head(3), t.where(t.age > 1).collect(),
               t.where(t.label.str.contains("a")).collect(), t.order_by(t.age).collect(),
               t.limit(2).collect(), t.scan().collect()):
        assert df.height == 0
        assert df.schema == EXPECTED_DTYPES
    df = (t.where(t.age > 1).order_by(t.label).limit(3)
          .select(t.label, x=t.age * 2, up=t.label.str.upper(), loud=shout(t.label),
                  city=t.meta["city"], ok=t.score > 1).collect())
    assert df.height == 0
    assert df.schema == pl.Schema({"label": pl.String, "x": pl.Int64, "up": pl.String,
                                   "loud": pl.String, "city": pl.String, "ok": pl.Boolean})


def test_empty_table_queries_are_typed(db):
    t = db.create_table("empty", SCHEMA)
    _check_empty_queries(t)


def test_emptied_table_queries_are_typed(people):
    people.delete()
    _check_empty_queries(people)


def test_no_matching_rows_gives_typed_empty_frame(people):
    df = people.where(people.age > 1000).select(people.id, a=people.age + 1).collect()
    assert df.height == 0
    assert df.schema == pl.Schema({"id": pl.Int64, "a": pl.Int64})


# --- errors --------------------------------------------------------------------------------------


def test_where_needs_a_bool_expression(people):
    for bad in (people.age, people.age + 1, people.label, people.label.str.upper()):
        with pytest.raises(lh.TypeMismatchError, match="Bool"):
            people.where(bad)
    # a string is never taken as SQL
    for bad in ("age > 1", "1=1", True, 1, None):
        with pytest.raises(lh.TypeMismatchError, match="expression"):
            people.where(bad)
    with pytest.raises(TypeError, match="&"):
        people.where((people.age > 1) and (people.age < 5))
    with pytest.raises(lh.TypeMismatchError, match="compare"):
        people.where(people.label == 1)


def test_unknown_column(people):
    with pytest.raises(AttributeError) as info:
        _ = people.nope
    message = str(info.value)
    assert "'people'" in message and "'nope'" in message
    assert "label" in message and "meta" in message

    with pytest.raises(lh.ColumnNotFoundError) as info:
        _ = people["nope"]
    assert isinstance(info.value, KeyError)
    message = str(info.value)
    assert "'people'" in message and "'nope'" in message
    assert all(c in message for c in SCHEMA)
    assert "_lh_id" not in message

    with pytest.raises(lh.ColumnNotFoundError, match="nope"):
        people.select("nope")
    with pytest.raises(lh.ColumnNotFoundError, match="nope"):
        people.order_by("nope")


def test_limit_must_be_a_non_negative_integer(people):
    for bad in (-1, -100, 1.5, "3", None):
        with pytest.raises(lh.Error, match="non-negative"):
            people.limit(bad)
    with pytest.raises(lh.Error, match="non-negative"):
        people.head(-1)

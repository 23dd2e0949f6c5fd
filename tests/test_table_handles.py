"""Table handles: shared between threads, and every column reachable as ``t.<column>``."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

import lakehouse as lh
from lakehouse.table import RESERVED_NAMES

WORDS = ["red circle", "blue square", "green triangle", "yellow star"]


# --- threads -------------------------------------------------------------------------------------
def test_one_handle_many_threads(db, clip):
    """Threads running queries, similarity searches and inserts on one handle get the answers
    one thread gets, and nothing raises from Lance's internals ("Already borrowed")."""
    t = db.create_table("shared", {"k": lh.Int, "s": lh.String})
    t.insert([{"k": i, "s": WORDS[i % 4]} for i in range(40)], progress=False)
    t.add_computed_column(k2=t.k * 2, progress=False)
    t.add_embedding_index("s", embedding=clip, progress=False)
    expected_top = t.order_by(t.s.similarity("red circle"), asc=False).limit(3).collect()

    def work(i: int) -> tuple[str, object]:
        kind = i % 4
        if kind == 0:
            result = t.insert([{"k": 1000 + i, "s": WORDS[i % 4]}], progress=False)
            return "insert", result.rows_written
        if kind == 1:
            df = t.where(t.k < 40).order_by(t.k).collect()
            return "query", (df.height, df["k2"].to_list() == [2 * k for k in range(40)])
        if kind == 2:
            top = t.where(t.k < 40).order_by(t.s.similarity("red circle"), asc=False) \
                .limit(3).collect()
            return "search", top["s"].to_list()
        return "count", t.count() >= 40 and t.version >= 1

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(work, range(200)))
    for kind, value in results:
        if kind == "insert":
            assert value == 1
        elif kind == "query":
            assert value == (40, True)
        elif kind == "search":
            assert value == expected_top["s"].to_list()
        else:
            assert value is True
    inserts = sum(1 for kind, _ in results if kind == "insert")
    assert t.count() == 40 + inserts
    df = t.collect()
    assert (df["k2"] == df["k"] * 2).all()


# --- every column reachable --------------------------------------------------------------------
def test_pixeltable_quickstart_runs_as_written(db):
    t = db.create_table("films", {"name": lh.String, "revenue": lh.Float, "budget": lh.Float})
    t.insert([{"name": "Inside Out", "revenue": 800.5, "budget": 200.0},
              {"name": "Toy Story", "revenue": 1073.25, "budget": 200.0}], progress=False)
    t.add_computed_column(profit=t.revenue - t.budget, progress=False)
    df = t.select(t.name, t.profit).collect()
    assert df.columns == ["name", "profit"]
    assert sorted(df.rows()) == [("Inside Out", 600.5), ("Toy Story", 873.25)]
    assert t.where(t.name == "Toy Story").count() == 1
    # the table's own name and version stay reachable
    assert t.table_name == "films"
    assert t.table_version == 3
    assert t.count_rows() == 2


COMMON = ["name", "version", "count", "columns", "uri", "id", "type", "path", "size",
          "history", "describe", "head", "show", "indexes", "at", "scan", "definition"]


def test_columns_named_like_table_attributes(db):
    t = db.create_table("things", {c: lh.Int for c in COMMON})
    t.insert([{c: i for i, c in enumerate(COMMON)}], progress=False)
    for c in COMMON:
        ref = getattr(t, c)
        assert isinstance(ref, lh.Expr), c
        assert t.select(ref).collect().item() == COMMON.index(c), c
    t.add_computed_column(total=t.count + t.version + t.size, progress=False)
    assert t.select(t.total).collect().item() == 2 + 1 + 8
    assert t.table_name == "things"
    assert t.column_names()[:3] == ["name", "version", "count"]
    assert lh.Table.count(t) == 1  # the method, reached through the class


def test_summary_is_one_version_and_reachable_through_the_class(db):
    """lh.Table.summary(t) works whatever the columns are called, and reads one version."""
    t = db.create_table("named", {"summary": lh.String, "describe": lh.Int,
                                  "snapshots": lh.Int, "show": lh.Int})
    t.insert([{"summary": "a", "describe": 1, "snapshots": 2, "show": 3}], progress=False)
    t.snapshot("one")
    t.add_index("describe")
    assert isinstance(t.summary, lh.Expr)  # the column wins
    s = lh.Table.summary(t)
    assert (s.name, s.version, s.read_only, s.rows) == ("named", 3, False, 1)
    assert s.columns["column"].to_list() == ["summary", "describe", "snapshots", "show"]
    assert s.indexes["name"].to_list() == ["describe_btree"]
    assert s.snapshots == {"one": 2}
    old = lh.Table.summary(db.get_table("named@one"))
    assert (old.version, old.read_only, old.rows, old.indexes.height) == (2, True, 1, 0)
    # the table's own calls do not trip over such columns either
    assert t.snapshot("two") == 3 and "rows" in repr(t) and "<table" in t._repr_html_()


def test_table_attributes_without_such_columns(db):
    t = db.create_table("plain", {"n": lh.Int})
    assert t.name == "plain"
    assert t.version == t.table_version == 1
    assert t.count() == 0
    assert t.columns() == ["n"]
    assert t.uri == t.table_uri


@pytest.mark.parametrize("name", sorted(RESERVED_NAMES))
def test_reserved_names_are_refused_with_the_fix(db, name):
    with pytest.raises(lh.InvalidNameError, match="cannot be a column name") as info:
        db.create_table("r", {name: lh.Int})
    assert f"{name}_" in str(info.value)
    t = db.create_table("r2", {"n": lh.Int}, if_exists="replace")
    with pytest.raises(lh.InvalidNameError):
        t.add_column(**{name: lh.Int})
    with pytest.raises(lh.InvalidNameError):
        t.add_computed_column(**{name: t.n + 1})


def test_reserved_names_are_few_and_no_common_column_name():
    assert len(RESERVED_NAMES) <= 30
    assert not set(COMMON) & RESERVED_NAMES


def test_the_definition_is_public_and_a_column_may_take_its_short_name(db):
    t = db.create_table("defs", {"word": lh.String, "definition": lh.String})
    assert isinstance(t.definition, lh.Expr)  # the column wins, as for t.name
    assert [c.name for c in t.table_definition.columns] == ["word", "definition"]
    plain = db.create_table("plain", {"n": lh.Int})
    assert plain.definition == plain.table_definition
    state = plain.table_state()
    assert state.definition == plain.table_definition and state.version == plain.table_version
    for reserved in ("table_definition", "table_state"):
        with pytest.raises(lh.InvalidNameError, match="cannot be a column name"):
            plain.add_column(**{reserved: lh.Int})


def test_an_attribute_lookup_costs_no_extra_refresh(db, monkeypatch):
    """``t.count()`` refreshes the handle once (one request on S3), not twice: deciding that
    ``count`` is the method, not a column, reads the state already held."""
    t = db.create_table("refreshes", {"n": lh.Int})
    t.insert([{"n": 1}], progress=False)
    calls = []
    head_type = type(t._head)
    original = head_type._refresh

    def counted(self, head):
        calls.append(1)
        return original(self, head)

    monkeypatch.setattr(head_type, "_refresh", counted)
    assert t.count() == 1
    assert len(calls) == 1
    assert t.version == 2 and len(calls) == 2

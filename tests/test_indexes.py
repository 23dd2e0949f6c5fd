"""Scalar indexes: add_index / drop_index, one commit each, and filters stay correct."""

from __future__ import annotations

import lance
import pytest

import lakehouse as lh


@pytest.fixture
def table(db):
    t = db.create_table("t", {"a": lh.Int, "s": lh.String, "v": lh.Array[(2,), "float32"]})
    t.insert([{"a": i, "s": f"k{i % 3}", "v": [i, i]} for i in range(300)], progress=False)
    return t


def _indices(t, db):
    ds = lance.dataset(t.uri, storage_options=db.location.storage_options or None)
    return {(i.name, i.index_type) for i in ds.describe_indices()}


def test_add_index_is_one_commit_and_filters_use_it(table, db):
    before = table.version
    assert table.add_index("a") == before + 1
    assert table.add_index("s", kind="bitmap") == before + 2
    assert _indices(table, db) == {("a_btree", "BTree"), ("s_bitmap", "Bitmap")}
    assert table.history()["operation"].to_list()[:2] == ["index", "index"]
    table.insert([{"a": 1000, "s": "new"}], progress=False)  # not in the index yet: still found
    found = table.where(table.a >= 298).order_by(table.a).collect()
    assert found["a"].to_list() == [298, 299, 1000]
    assert table.where(table.s == "new").count() == 1
    assert table.where(table.s == "k1").count() == 100


def test_index_errors_leave_the_table_unchanged(table, db):
    table.add_index("a")
    version = table.version
    with pytest.raises(lh.IndexExistsError, match="already has a btree index"):
        table.add_index("a")
    with pytest.raises(lh.ColumnNotFoundError, match="nope"):
        table.add_index("nope")
    with pytest.raises(lh.InvalidOptionError, match="kind"):
        table.add_index("a", kind="hash")
    with pytest.raises(lh.TypeMismatchError, match="scalar"):
        table.add_index("v")
    with pytest.raises(lh.IndexNotFoundError):
        table.drop_index("s")
    assert table.version == version
    assert table.add_index("a", replace=True) == version + 1


def test_drop_index(table, db):
    table.add_index("a")
    table.drop_index("a")
    assert _indices(table, db) == set()
    assert table.where(table.a == 7).count() == 1


def test_drop_index_by_the_name_indexes_lists(table, db):
    """drop_index(name) drops any index by its listed name; drop_index(column, kind=...) and
    drop_index(column) (its btree index) still work; an unknown name lists the indexes."""
    table.add_index("a")
    table.add_index("s", kind="bitmap")
    table.add_index("a", kind="zonemap")
    table.add_embedding_index("v")
    assert set(table.indexes()["name"]) == {"a_btree", "s_bitmap", "a_zonemap", "v"}
    version = table.version
    with pytest.raises(lh.IndexNotFoundError, match=r"no index 'nope' \(its indexes: v, "):
        table.drop_index("nope")
    with pytest.raises(lh.IndexNotFoundError, match="no index 's'"):
        table.drop_index("s")  # s has a bitmap index, no btree one
    with pytest.raises(lh.IndexNotFoundError, match="column 's' has no zonemap index"):
        table.drop_index("s", kind="zonemap")
    with pytest.raises(lh.ColumnNotFoundError):
        table.drop_index("nope", kind="btree")
    with pytest.raises(lh.InvalidOptionError, match="kind"):
        table.drop_index("a", kind="hash")
    assert table.version == version
    assert table.drop_index("s_bitmap") == version + 1
    assert table.drop_index("a", kind="zonemap") == version + 2
    assert table.drop_index("a") == version + 3  # its btree index, as before index names
    assert table.drop_index("v") == version + 4  # an embedding index, by its name
    assert table.indexes().is_empty() and _indices(table, db) == set()
    assert table.columns() == ["a", "s", "v"]  # a column of vectors keeps its values


def test_zonemap_index(table, db):
    table.add_index("a", kind="zonemap")
    assert {name for name, _ in _indices(table, db)} == {"a_zonemap"}
    found = table.where((table.a >= 10) & (table.a < 13)).collect()
    assert sorted(found["a"].to_list()) == [10, 11, 12]

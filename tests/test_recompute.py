"""t.recompute: compute stored values of computed columns again, for chosen rows or failed
cells only, and the columns that depend on them; one commit. Local and S3."""

from __future__ import annotations

import pytest
import udfs_for_tests as U

import lakehouse as lh


@pytest.fixture
def flaky_table(db, monkeypatch):
    monkeypatch.setattr(U, "FLAKY", True)
    t = db.create_table("t", {"n": lh.Int})
    t.insert([{"n": i} for i in range(10)], progress=False)
    t.add_computed_column(big=U.flaky(t.n), on_error="ignore", progress=False)
    t.add_computed_column(label=t.big.astype(lh.String), progress=False)
    return t


def test_errors_only_retries_just_the_failed_cells_and_their_dependents(flaky_table, monkeypatch):
    t = flaky_table
    failed = t.where(t.big.errortype.is_not_null()).select(t.n).collect()["n"].to_list()
    assert sorted(failed) == [0, 3, 6, 9]
    monkeypatch.setattr(U, "FLAKY", False)
    U.reset()
    version = t.table_version
    result = t.recompute("big", errors_only=True, progress=False)
    assert sorted(U.CALLS["flaky"]) == [0, 3, 6, 9]  # the other rows are not called again
    assert result.rows_written == 4 and result.version == version + 1
    rows = t.order_by(t.n).select(t.n, t.big, t.label, t.big.errortype).collect()
    assert rows["big"].to_list() == [n + 1000 for n in range(10)]
    assert rows["label"].to_list() == [str(n + 1000) for n in range(10)]  # cascaded
    assert rows["errortype"].null_count() == 10
    assert t.recompute("big", errors_only=True, progress=False).rows_written == 0


def test_where_and_cascade(db):
    t = db.create_table("t", {"n": lh.Int})
    t.insert([{"n": i} for i in range(5)], progress=False)
    U.reset()
    t.add_computed_column(x=U.times_ten(t.n), progress=False)
    t.add_computed_column(y=t.x + 1, progress=False)
    U.reset()
    assert t.recompute(["x"], where=t.n >= 3, progress=False).rows_written == 2
    assert sorted(U.CALLS["times_ten"]) == [3, 4]
    assert t.recompute("x", where=t.n == 1, cascade=False, progress=False).rows_written == 1
    assert t.order_by(t.n).select(t.y).collect()["y"].to_list() == [1, 11, 21, 31, 41]


def test_recompute_refuses_what_it_cannot_do(db):
    t = db.create_table("t", {"n": lh.Int})
    t.insert([{"n": 1}], progress=False)
    t.add_computed_column(x=t.n * 2, progress=False)
    version = t.table_version
    with pytest.raises(lh.ComputedColumnError, match="'n' is not a computed column"):
        t.recompute("n", progress=False)
    with pytest.raises(lh.ColumnNotFoundError, match="nope"):
        t.recompute("nope", progress=False)
    with pytest.raises(lh.InvalidOptionError, match="at least one"):
        t.recompute([], progress=False)
    assert t.recompute("x", errors_only=True, progress=False).rows_written == 0  # abort: none
    assert t.table_version == version


def test_a_view_recomputes_its_own_computed_columns(db, monkeypatch):
    monkeypatch.setattr(U, "FLAKY", True)
    base = db.create_table("base", {"n": lh.Int})
    base.insert([{"n": i} for i in range(6)], progress=False)
    v = db.create_view("v", base.where(base.n > 1), progress=False)
    v.add_computed_column(big=U.flaky(v.n), on_error="ignore", progress=False)
    monkeypatch.setattr(U, "FLAKY", False)
    assert v.recompute("big", errors_only=True, progress=False).rows_written == 1  # n == 3
    assert sorted(v.select(v.big).collect()["big"].to_list()) == [1002, 1003, 1004, 1005]

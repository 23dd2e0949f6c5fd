"""t.sample / q.sample: a reproducible random sample, its outputs computed for those rows only."""

from __future__ import annotations

import pytest
import udfs_for_tests as U

import lakehouse as lh


@pytest.fixture
def numbers(db):
    t = db.create_table("numbers", {"n": lh.Int})
    for start in (0, 100, 200):
        t.insert([{"n": i} for i in range(start, start + 100)], progress=False)
    return t


def test_the_same_seed_picks_the_same_rows_and_udfs_run_on_them_only(numbers):
    first = numbers.sample(5, seed=42)
    assert first.equals(numbers.sample(5, seed=42))
    assert first.height == 5 and first["n"].n_unique() == 5
    assert not first.equals(numbers.sample(5, seed=43))
    U.reset()
    tried = numbers.select(numbers.n, ten=U.times_ten(numbers.n)).sample(5, seed=42)
    assert sorted(U.CALLS["times_ten"]) == sorted(first["n"].to_list())  # 5 calls, not 300
    assert (tried["ten"] == tried["n"] * 10).all()


def test_a_sample_of_a_query_keeps_its_filter(numbers):
    even = numbers.where(numbers.n % 2 == 0).sample(50, seed=1)
    assert even.height == 50 and (even["n"] % 2 == 0).all()
    assert numbers.where(numbers.n > 297).sample(10, seed=1)["n"].sort().to_list() == [298, 299]
    assert numbers.sample(0).height == 0


def test_bad_samples_are_refused(numbers):
    with pytest.raises(lh.InvalidOptionError, match="non-negative"):
        numbers.sample(-1)
    with pytest.raises(lh.TypeMismatchError, match="number of rows"):
        numbers.sample("5")
    with pytest.raises(lh.UnsupportedError, match="drop order_by"):
        numbers.order_by(numbers.n).sample(3)

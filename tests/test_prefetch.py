"""prefetched(): items in order, producer errors raised where reached, early stop stops it."""

from __future__ import annotations

import threading
import time

import pytest

from lakehouse.exec.prefetch import prefetched


def test_items_come_in_order_and_the_producer_runs_ahead() -> None:
    produced: list[int] = []

    def items():
        for i in range(5):
            produced.append(i)
            yield i

    seen = []
    for item in prefetched(items()):
        time.sleep(0.02)  # the producer gets ahead meanwhile
        seen.append((item, len(produced)))
    assert [i for i, _ in seen] == [0, 1, 2, 3, 4]
    assert seen[0][1] >= 2  # item 1 was produced while item 0 was being consumed


def test_a_producer_error_is_raised_after_the_items_before_it() -> None:
    def items():
        yield 1
        yield 2
        raise ValueError("chunk 3 is bad")

    seen = []
    with pytest.raises(ValueError, match="chunk 3 is bad"):
        for item in prefetched(items()):
            seen.append(item)
    assert seen == [1, 2]


def test_a_consumer_error_stops_the_producer() -> None:
    produced: list[int] = []

    def items():
        for i in range(1_000):
            produced.append(i)
            yield i

    with pytest.raises(RuntimeError):
        for item in prefetched(items()):
            if item == 3:
                raise RuntimeError("model failed")
    assert len(produced) <= 6  # one or two ahead, not all thousand
    assert not [t for t in threading.enumerate() if t.name == "lakehouse-prefetch"]

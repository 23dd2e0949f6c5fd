"""@lh.udf functions used by the computed-column, UDF and update tests.

They live in an importable package (tests/ is on sys.path under pytest, and subprocesses get it
through PYTHONPATH) so that a stored definition can name them as ``udfs_for_tests:<name>`` and a
fresh process can resolve them. Every function records its calls in :data:`CALLS`, so tests can
assert which rows were (and were not) computed; call :func:`reset` first.
"""

from __future__ import annotations

import os
import time
from collections import defaultdict
from pathlib import Path

import lakehouse as lh

MODULE = __name__
TESTS_DIR = str(Path(__file__).resolve().parent.parent)  # put this on PYTHONPATH for subprocesses

# name of the UDF -> the arguments of each call (row UDFs) or the lists of each batch (batched)
CALLS: defaultdict[str, list] = defaultdict(list)


def reset() -> None:
    """Forget all recorded calls."""
    CALLS.clear()


@lh.udf
def shout(s: str) -> str:
    """Upper-case and add '!'; the parameter is not Optional, so null rows are never passed."""
    CALLS["shout"].append(s)
    return s.upper() + "!"


@lh.udf
def describe_maybe(s: str | None) -> str:
    """Accepts None (Optional parameter): null rows are passed in."""
    CALLS["describe_maybe"].append(s)
    return "<none>" if s is None else f"<{s}>"


@lh.udf
def times_ten(n: int) -> int:
    CALLS["times_ten"].append(n)
    return n * 10


@lh.udf
def plus_one(n: int) -> int:
    CALLS["plus_one"].append(n)
    return n + 1


@lh.udf
def concat(a: str, b: int) -> str:
    """Two parameters of different types."""
    CALLS["concat"].append((a, b))
    return f"{a}-{b}"


@lh.udf(batch_size=3)
def lengths(xs: list[str]) -> list[int]:
    """Batched: receives lists of at most 3 strings."""
    CALLS["lengths"].append(list(xs))
    return [len(x) for x in xs]


@lh.udf(batch_size=4)
def lengths_or_minus_one(xs: list[str | None]) -> list[int]:
    """Batched with Optional elements: null rows are passed in as None."""
    CALLS["lengths_or_minus_one"].append(list(xs))
    return [-1 if x is None else len(x) for x in xs]


@lh.udf
def picky(n: int) -> int:
    """Doubles ``n``; raises ValueError for negative numbers."""
    CALLS["picky"].append(n)
    if n < 0:
        raise ValueError(f"negative input {n}")
    return n * 2


@lh.udf(batch_size=2)
def picky_batched(ns: list[int]) -> list[int]:
    """Batched version of :func:`picky`: a negative number fails its whole batch."""
    CALLS["picky_batched"].append(list(ns))
    for n in ns:
        if n < 0:
            raise ValueError(f"negative input {n}")
    return [n * 2 for n in ns]


@lh.udf
def wrong_type(n: int) -> int:
    """Declared to return int, but returns a string for n == 2."""
    CALLS["wrong_type"].append(n)
    return "two" if n == 2 else n  # type: ignore[return-value]


@lh.udf
def is_even(n: int) -> bool:
    """A predicate that only Python can evaluate (not pushable to Lance SQL)."""
    CALLS["is_even"].append(n)
    return n % 2 == 0


@lh.udf
def run_command(cmd: str) -> str:
    """Harmless: echoes its input. Tests rewrite stored definitions to name os:system instead."""
    CALLS["run_command"].append(cmd)
    return cmd


@lh.udf
def exit_on_13(n: int) -> int:
    """Simulates a crash mid-write: ends the process abruptly when it meets 13 (only where the
    environment allows it, so that it can never take down the test runner itself)."""
    CALLS["exit_on_13"].append(n)
    if n == 13:
        if os.environ.get("LH_TEST_ALLOW_EXIT") == "1":
            os._exit(13)
        raise RuntimeError("exit_on_13 met 13")
    return n


#: The backfill tests' table: FRAGMENTS fragments of ROWS_PER_FRAGMENT numbers each.
FRAGMENTS = 8
ROWS_PER_FRAGMENT = 100


def fill_numbers(db: lh.Catalog) -> lh.Table:
    """Table ``numbers`` (``n``: 0 .. 799), one insert and so one fragment a hundred rows."""
    t = db.create_table("numbers", {"n": lh.Int})
    for f in range(FRAGMENTS):
        start = f * ROWS_PER_FRAGMENT
        t.insert([{"n": i} for i in range(start, start + ROWS_PER_FRAGMENT)], progress=False)
    return t


def rows_logged(log: Path) -> int:
    """The rows :func:`doubled_and_logged` computed, in every process that logged to ``log``."""
    return sum(int(line) for line in log.read_text().split()) if log.exists() else 0


@lh.udf(batch_size=50)
def doubled_and_logged(ns: list[int]) -> list[int]:
    """Double each value; append the batch's size to the file $LAKEHOUSE_TEST_CALL_LOG (so that
    a test can count, across processes, the rows a backfill computed) and sleep
    $LAKEHOUSE_TEST_SLEEP seconds a batch (so that a test can kill it midway). Once the log
    counts $LAKEHOUSE_TEST_HOLD_AFTER_ROWS rows, it waits for ever (so that a test kills it at a
    known point, however slow the machine)."""
    log = os.environ.get("LAKEHOUSE_TEST_CALL_LOG")
    hold = os.environ.get("LAKEHOUSE_TEST_HOLD_AFTER_ROWS")
    if log and hold and rows_logged(Path(log)) >= int(hold):
        while True:
            time.sleep(1)
    if log:
        with open(log, "a") as f:
            f.write(f"{len(ns)}\n")
    time.sleep(float(os.environ.get("LAKEHOUSE_TEST_SLEEP", "0")))
    return [n * 2 for n in ns]


#: While True, :func:`flaky` fails on multiples of 3 (a service that is down for some calls).
FLAKY = True


@lh.udf
def flaky(n: int) -> int:
    """Add 1000; fails on multiples of 3 while :data:`FLAKY` is set."""
    CALLS["flaky"].append(n)
    if FLAKY and n % 3 == 0:
        raise ConnectionError(f"service unavailable for {n}")
    return n + 1000


@lh.iterators.iterator(outputs={"word": lh.String}, input=lh.String)
def logged_words(text: str):
    """Each word of a text; appends a line to $LAKEHOUSE_TEST_CALL_LOG for each text split and
    sleeps $LAKEHOUSE_TEST_SLEEP seconds (so that a test can kill a view's upkeep midway)."""
    log = os.environ.get("LAKEHOUSE_TEST_CALL_LOG")
    if log:
        with open(log, "a") as f:
            f.write("1\n")
    time.sleep(float(os.environ.get("LAKEHOUSE_TEST_SLEEP", "0")))
    for word in text.split():
        yield {"word": word}

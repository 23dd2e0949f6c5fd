"""Long work benchmark: what checkpoints cost a backfill, and what they save after a kill.

    .venv/bin/python benchmarks/long_work.py            # 1,000,000 rows in 20 fragments, best of 3
    .venv/bin/python benchmarks/long_work.py --small    # 20,000 rows in 20 fragments, once

A table of N rows (``n`` = row number) in 20 fragments (one insert each) gets a computed column
``c = plus_one(n)``, a batched ``@lh.udf`` defined here (10,000 rows a call). Measured:

  checkpoint overhead  ``t.add_computed_column(c=plus_one(t.n))`` as it is (each finished
                       fragment recorded in the table's checkpoint) against the same call with
                       checkpoints off. The library has no public switch for that: the run
                       without them calls the same code path with ``checkpoint=False`` passed to
                       ``lakehouse.exec.writes.backfill``, the one place that opens a
                       checkpoint (see :func:`without_checkpoints`). Same table, runs
                       interleaved (with first, then without first, ...), best of ``--repeat``;
                       the column is dropped after each run. Target: at most 5% slower.
  resume after a kill  a child process runs the backfill with ``plus_one_logged``, which
                       appends each call's row count to a file, and is SIGKILLed once half the
                       fragments are checkpointed (polling ``checkpoints.list_jobs``; that run
                       is slowed by 0.1 s a fragment so the kill lands there); the same backfill
                       is then run again in a new process. Rows computed in all (both runs,
                       from the file) against the table's rows. Target: at most rows + one
                       fragment, and every value right (``c == n + 1`` on every row, and no
                       column ``c`` before the resumed run committed it).

The UDFs are stored as ``long_work:plus_one``: the script runs itself as the module
``long_work`` so that the child processes can import them.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import functools
import importlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from reporting import add_output_options, machine, table, write_report

import lakehouse as lh
from lakehouse.exec import checkpoints, writes

DEFAULTS = {"rows": 1_000_000, "fragments": 20, "repeat": 3}
SMALL = {"rows": 20_000, "fragments": 20, "repeat": 1}
OVERHEAD_TARGET = 0.05
UDF_BATCH_ROWS = 10_000
KILLED_RUN_SLOWDOWN_S = 0.1  # a fragment, in the run that is killed
CALL_LOG = "LONG_WORK_CALL_LOG"
SLEEP = "LONG_WORK_SLEEP"
BENCHMARKS = Path(__file__).resolve().parent


@lh.udf(batch_size=UDF_BATCH_ROWS)
def plus_one(ns: list[int]) -> list[int]:
    """The backfill's work: cheap, so that what checkpoints cost is not hidden."""
    return [n + 1 for n in ns]


@lh.udf(batch_size=UDF_BATCH_ROWS)
def plus_one_logged(ns: list[int]) -> list[int]:
    """:func:`plus_one` that appends the rows of each call to the file ``$LONG_WORK_CALL_LOG``
    (read across processes) and sleeps ``$LONG_WORK_SLEEP`` seconds a call."""
    with open(os.environ[CALL_LOG], "a") as f:
        f.write(f"{len(ns)}\n")
    time.sleep(float(os.environ.get(SLEEP, "0")))
    return [n + 1 for n in ns]


def log(message: str) -> None:
    print(f"[long_work] {message}", file=sys.stderr, flush=True)


def make_table(db: lh.Catalog, name: str, rows: int, fragments: int) -> lh.Table:
    """``n`` = 0..rows-1 in ``fragments`` fragments of equal size (one insert each)."""
    import pyarrow as pa

    t = db.create_table(name, {"n": lh.Int})
    size = rows // fragments
    for start in range(0, size * fragments, size):
        t.insert(pa.table({"n": pa.array(range(start, start + size), pa.int64())}),
                 progress=False)
    return t


@contextlib.contextmanager
def without_checkpoints() -> Iterator[None]:
    """Backfills in this block record no checkpoint: ``lakehouse.exec.writes.backfill`` (which
    ``Table.add_computed_column`` calls) gets ``checkpoint=False``, its own switch."""
    original = writes.backfill
    writes.backfill = functools.partial(original, checkpoint=False)
    try:
        yield
    finally:
        writes.backfill = original


def timed_backfill(t: lh.Table, *, checkpoint: bool) -> float:
    """Seconds to add ``c = plus_one(n)``; checks the values, then drops the column."""
    block = contextlib.nullcontext() if checkpoint else without_checkpoints()
    with block:
        start = time.perf_counter()
        result = t.add_computed_column(c=plus_one(t.n), progress=False)
        seconds = time.perf_counter() - start
    values = t.select(t.n, t.c).collect()
    if result.rows_written != values.height or not (values["c"] == values["n"] + 1).all():
        raise AssertionError(f"wrong values after the backfill (checkpoint={checkpoint})")
    if t.jobs().height:
        raise AssertionError("a checkpoint was left behind")
    t.drop_column("c")
    return seconds


def checkpoint_overhead(db: lh.Catalog, rows: int, fragments: int,
                        repeat: int) -> dict[str, Any]:
    t = make_table(db, "overhead", rows, fragments)
    samples: dict[str, list[float]] = {"with": [], "without": []}
    for i in range(repeat):
        order = ("with", "without") if i % 2 == 0 else ("without", "with")
        for side in order:
            samples[side].append(timed_backfill(t, checkpoint=side == "with"))
            log(f"run {i + 1}/{repeat}, {side} checkpoints: {samples[side][-1]:.2f} s")
    best = {side: min(seconds) for side, seconds in samples.items()}
    overhead = best["with"] / best["without"] - 1
    extra = best["with"] - best["without"]
    return {"rows": rows, "fragments": fragments, "repeat": repeat,
            "with_checkpoints_seconds": samples["with"],
            "without_checkpoints_seconds": samples["without"],
            "with_checkpoints": best["with"], "without_checkpoints": best["without"],
            "with_checkpoints_rows_per_s": rows / best["with"],
            "without_checkpoints_rows_per_s": rows / best["without"],
            "overhead": overhead, "target_overhead": OVERHEAD_TARGET,
            "extra_seconds": extra, "extra_ms_per_fragment": extra * 1000 / fragments,
            "met": bool(overhead <= OVERHEAD_TARGET)}


def backfill_in_child(root: str) -> None:
    """What the child processes run: the backfill of ``c = plus_one_logged(n)``."""
    t = lh.connect(root, maintenance=False).get_table("resume")
    t.add_computed_column(c=plus_one_logged(t.n), progress=False)


def _start_child(root: str, calls: Path, sleep: float) -> subprocess.Popen:
    code = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(BENCHMARKS)!r})
        import long_work
        long_work.backfill_in_child({root!r})
    """)
    # checkpoints written from the first fragment on, so the kill lands at a known count
    env = dict(os.environ, **{CALL_LOG: str(calls), SLEEP: str(sleep),
                              "LAKEHOUSE_CHECKPOINT_AFTER_S": "0"})
    return subprocess.Popen([sys.executable, "-c", code], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _fragments_done(t: lh.Table) -> int:
    jobs = checkpoints.list_jobs(t.table_uri, t.table_state().location.storage_options)
    return jobs[0]["fragments_done"] if jobs else 0


def _kill_at(proc: subprocess.Popen, t: lh.Table, fragments: int) -> int:
    """SIGKILL ``proc`` once ``fragments`` are checkpointed; the fragments done then."""
    deadline = time.monotonic() + 600
    while (done := _fragments_done(t)) < fragments:
        if proc.poll() is not None:
            raise RuntimeError(f"the backfill ended before the kill: {proc.communicate()[1]}")
        if time.monotonic() > deadline:
            raise RuntimeError("the backfill made no progress in 10 minutes")
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    return done


def _logged(calls: Path) -> tuple[int, int]:
    """(UDF calls, rows computed) in the call log."""
    sizes = [int(line) for line in calls.read_text().split()] if calls.exists() else []
    return len(sizes), sum(sizes)


def resume_after_kill(db: lh.Catalog, root: str, work: Path, rows: int,
                      fragments: int) -> dict[str, Any]:
    t = make_table(db, "resume", rows, fragments)
    per_fragment = rows // fragments
    calls = work / "calls.log"
    slowdown = KILLED_RUN_SLOWDOWN_S / -(-per_fragment // UDF_BATCH_ROWS)  # a call
    start = time.perf_counter()
    done_at_kill = _kill_at(_start_child(root, calls, slowdown), t, fragments // 2)
    killed_after = time.perf_counter() - start
    calls_before, rows_before = _logged(calls)
    partial_column = "c" in t.column_names()
    log(f"killed after {done_at_kill}/{fragments} fragments: {rows_before:,} rows computed")

    start = time.perf_counter()
    proc = _start_child(root, calls, 0)
    _, err = proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"the resumed backfill failed: {err}")
    resumed_seconds = time.perf_counter() - start
    calls_total, rows_total = _logged(calls)
    values = t.select(t.n, t.c).collect()
    values_ok = values.height == rows and bool((values["c"] == values["n"] + 1).all())
    limit = rows + per_fragment
    return {"rows": rows, "fragments": fragments, "rows_per_fragment": per_fragment,
            "killed_at_fragments": done_at_kill, "killed_after_seconds": killed_after,
            "udf_calls_before_kill": calls_before, "rows_computed_before_kill": rows_before,
            "udf_calls_after": calls_total - calls_before,
            "rows_computed_after": rows_total - rows_before,
            "udf_calls_total": calls_total, "rows_computed_total": rows_total,
            "rows_computed_again": rows_total - rows, "limit_rows": limit,
            "resumed_seconds": resumed_seconds, "partial_column_seen": partial_column,
            "values_ok": values_ok, "jobs_left": t.jobs().height,
            "met": bool(rows_total <= limit and values_ok and not partial_column)}


def render(overhead: dict[str, Any], resume: dict[str, Any]) -> str:
    def yes(met: bool) -> str:
        return "yes" if met else "NO"

    rows, per_fragment = resume["rows"], resume["rows_per_fragment"]
    return table([
        ("measure", "value", "target", "met?"),
        (f"backfill {overhead['rows']:,} rows, checkpoints",
         f"{overhead['with_checkpoints']:.2f} s = "
         f"{overhead['with_checkpoints_rows_per_s']:,.0f} rows/s", "", "-"),
        ("  without checkpoints", f"{overhead['without_checkpoints']:.2f} s = "
         f"{overhead['without_checkpoints_rows_per_s']:,.0f} rows/s", "", "-"),
        ("checkpoint overhead", f"{overhead['overhead']:+.1%} = {overhead['extra_seconds']:+.3f} s"
         f" = {overhead['extra_ms_per_fragment']:+.1f} ms a fragment", f"<= {OVERHEAD_TARGET:.0%}",
         yes(overhead["met"])),
        (f"resume: killed at {resume['killed_at_fragments']}/{resume['fragments']} fragments",
         f"{resume['rows_computed_before_kill']:,} rows in {resume['udf_calls_before_kill']:,} "
         "calls", "", "-"),
        ("  resumed run", f"{resume['rows_computed_after']:,} rows in "
         f"{resume['udf_calls_after']:,} calls, {resume['resumed_seconds']:.1f} s", "", "-"),
        ("rows computed in all", f"{resume['rows_computed_total']:,} = rows + "
         f"{resume['rows_computed_again']:,}", f"<= rows + {per_fragment:,}",
         yes(resume["rows_computed_total"] <= rows + per_fragment)),
        ("values after the resume", "right" if resume["values_ok"] else "WRONG",
         "c == n + 1", yes(resume["values_ok"])),
        ("partial column seen", "yes" if resume["partial_column_seen"] else "no", "no",
         yes(not resume["partial_column_seen"])),
    ])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--small", action="store_true",
                        help=f"a quick run: {SMALL['rows']:,} rows, once")
    parser.add_argument("--rows", type=int, default=None, help="rows in the table")
    parser.add_argument("--repeat", type=int, default=None,
                        help="runs of each side of the overhead measure (best counts)")
    add_output_options(parser, "long_work", "lakehouse")
    args = parser.parse_args(argv)
    sizes = SMALL if args.small else DEFAULTS
    rows, fragments = args.rows or sizes["rows"], sizes["fragments"]
    repeat = args.repeat or sizes["repeat"]
    if rows < 100 * fragments or repeat < 1:
        parser.error(f"need --rows >= {100 * fragments} and --repeat >= 1")
    info = machine(("lakehouse", "pylance", "pyarrow", "polars"))
    started = dt.datetime.now(dt.UTC)
    work = Path(tempfile.mkdtemp(prefix="lh-bench-long-work-", dir=args.root))
    try:
        root = str(work / "lakehouse")
        # maintenance off: the table keeps the fragments the backfill checkpoints one by one
        db = lh.connect(root, maintenance=False)
        overhead = checkpoint_overhead(db, rows, fragments, repeat)
        resume = resume_after_kill(db, root, work, rows, fragments)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    info["load_average_end"] = list(os.getloadavg())
    print(f"long work benchmark: {rows:,} rows in {fragments} fragments, best of {repeat}, on "
          f"{info['cpu_count']} CPU(s) ({info['cpu_model']}), load average "
          f"{info['load_average'][0]:.1f} at start, {info['load_average_end'][0]:.1f} at end")
    print(render(overhead, resume))
    report = {"benchmark": "long_work", "started": started.isoformat(timespec="seconds"),
              "small": args.small, "rows": rows, "fragments": fragments, "repeat": repeat,
              "machine": info,
              "operations": {"checkpoint_overhead": overhead, "resume": resume},
              "all_targets_met": overhead["met"] and resume["met"]}
    write_report(report, args.out)
    return 0


if __name__ == "__main__":
    # run as the module long_work, so that the UDFs are stored as long_work:plus_one, a name
    # the child processes import (not __main__:plus_one)
    sys.exit(importlib.import_module("long_work").main())

"""Maintenance benchmark: a table written row by row stays as fast and as small as the same
table fully compacted and cleaned, maintenance costs the inserts little, and a selective filter
is fast without a user index, in the same run.

    .venv/bin/python benchmarks/maintenance.py          # 10,000 inserts, 1,000,000-row filter
    .venv/bin/python benchmarks/maintenance.py --quick  # 300 inserts, 200,000-row filter

1. Row by row. A table ``events`` (``a`` Int, ``b`` Float, computed ``c = a * 2 + b``) gets
   100,000 rows in one insert, then ``--inserts`` single-row inserts, with maintenance on
   (``lh.MaintenancePolicy(keep_versions=3, keep_for=timedelta(0),
   reader_window=timedelta(0))``: the default compaction, and retention for an application
   that needs no time travel, so that the run's own minutes count as old). Then, beside a copy
   of the same folder fully compacted and cleaned with Lance (``compact_files()`` and
   ``cleanup_old_versions(older_than=0)``):

     point query   t.where(t.a == 777).collect(), median of --calls
     bytes         the table's folder on disk

   Targets: both within 1.5x of the compacted copy (ratio = maintained / compacted). The bytes
   are also given per part of the folder (data files, version manifests, indexes,
   transactions): once compaction merges rows written by different versions, Lance keeps each
   row's created and updated version inline in every version's manifest (about 20 bytes a row
   a version), so the manifests the retention policy keeps weigh as much as the data here.

2. The cost on the inserts. ``--compare`` single-row inserts into two such tables, one opened
   with maintenance on and one with ``maintenance=False``, interleaved in blocks. Target: with
   at most 10% more total time than without (ratio = with / without). Without maintenance
   every insert gets slower as fragments pile up, so the share of the inserts' time spent in
   maintenance itself is reported too (``maintenance_share``).

3. Filter. ``--filter-rows`` rows (``a`` 0.. in order, ``b`` random, ``s`` a word) in one
   insert with maintenance on, no user index; ``t.where(t.a < 1000).collect()``, median of
   --calls, beside the same query on the same rows with ``maintenance=False`` (no zone map).
   Target: < 5 ms.

4. Loader (``benchmarks/loader.py``, when it is there and torch is installed): images/s of
   ``t.to_pytorch()`` in a two-worker DataLoader against a plain loop over the same files.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.util
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import lance
import numpy as np
import pyarrow as pa
from reporting import add_output_options, machine, table, write_report

import lakehouse as lh
from lakehouse.maintenance import compaction

DEFAULTS = {"inserts": 10_000, "compare": 1_000, "filter_rows": 1_000_000, "calls": 50}
QUICK = {"inserts": 300, "compare": 200, "filter_rows": 200_000, "calls": 10}
BASE_ROWS = 100_000
FILTER_MATCHES = 1_000
POLICY = lh.MaintenancePolicy(keep_versions=3, keep_for=dt.timedelta(0),
                              reader_window=dt.timedelta(0))
TARGETS = {"point_query": 1.5, "bytes": 1.5, "insert_cost": 1.10, "filtered_collect_ms": 5.0}


def log(message: str) -> None:
    print(f"[maintenance] {message}", file=sys.stderr, flush=True)


def median_ms(fn: Callable[[], Any], calls: int, warmup: int = 3) -> float:
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(calls):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1e3)
    return statistics.median(samples)


def folder_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def folder_parts(path: Path) -> dict[str, int]:
    """Bytes per top-level folder of a table (``data``, ``_versions``, ``_indices``...)."""
    parts: dict[str, int] = {}
    for f in path.rglob("*"):
        if f.is_file():
            part = f.relative_to(path).parts[0]
            parts[part] = parts.get(part, 0) + f.stat().st_size
    return parts


def make_events(db: lh.Catalog, name: str) -> lh.Table:
    rng = np.random.default_rng(0)
    t = db.create_table(name, {"a": lh.Int, "b": lh.Float})
    t.add_computed_column(c=t.a * 2 + t.b, progress=False)
    t.insert(pa.table({"a": np.arange(BASE_ROWS), "b": rng.random(BASE_ROWS)}), progress=False)
    return t


def insert_rows(t: lh.Table, start: int, n: int) -> float:
    """``n`` single-row inserts; the seconds they took."""
    began = time.perf_counter()
    for i in range(start, start + n):
        t.insert([{"a": BASE_ROWS + i, "b": 0.5}], progress=False)
    return time.perf_counter() - began


def row_by_row(work: Path, inserts: int, calls: int) -> dict[str, Any]:
    root = work / "maintained"
    db = lh.connect(str(root), maintenance=POLICY)
    t = make_events(db, "events")
    log(f"{inserts:,} single-row inserts with maintenance on")
    before = dict(compaction.stats)
    seconds = insert_rows(t, 0, inserts)
    maintained_s = compaction.stats["seconds"] - before.get("seconds", 0.0)
    compactions = compaction.stats["compactions"] - before.get("compactions", 0)
    assert t.count() == BASE_ROWS + inserts
    log("the same folder, fully compacted and cleaned with Lance")
    copy = work / "compacted"
    shutil.copytree(root, copy)
    ds = lance.dataset(str(copy / "events.lance"))
    ds.optimize.compact_files()
    ds = lance.dataset(str(copy / "events.lance"))
    ds.cleanup_old_versions(older_than=dt.timedelta(0), delete_unverified=True)
    compacted = lh.connect(str(copy), maintenance=False).get_table("events")
    ours = median_ms(lambda: t.where(t.a == 777).collect(), calls)
    theirs = median_ms(lambda: compacted.where(compacted.a == 777).collect(), calls)
    assert t.where(t.a == 777).collect().equals(compacted.where(compacted.a == 777).collect())
    size, size_compacted = folder_bytes(root / "events.lance"), folder_bytes(copy / "events.lance")
    return {
        "inserts": inserts, "insert_seconds": seconds, "ms_per_insert": seconds / inserts * 1e3,
        "compactions": compactions, "maintenance_seconds": maintained_s,
        "fragments": len(t.table_state().dataset.get_fragments()),
        "versions": len(t.table_state().dataset.versions()),
        "point_query": {"unit": "ms", "maintained": ours, "compacted": theirs,
                        "ratio": ours / theirs},
        "bytes": {"unit": "bytes", "maintained": size, "compacted": size_compacted,
                  "ratio": size / size_compacted,
                  "maintained_parts": folder_parts(root / "events.lance"),
                  "compacted_parts": folder_parts(copy / "events.lance")},
    }


def insert_cost(work: Path, compare: int) -> dict[str, Any]:
    sides = {"with": lh.connect(str(work / "with"), maintenance=POLICY),
             "without": lh.connect(str(work / "without"), maintenance=False)}
    tables = {side: make_events(db, "events") for side, db in sides.items()}
    spent = {"with": 0.0, "without": 0.0}
    block = max(1, compare // 10)
    log(f"{compare:,} single-row inserts with and without maintenance, in blocks of {block}")
    before = compaction.stats["seconds"]
    for start in range(0, compare, block):
        n = min(block, compare - start)
        for side in ("with", "without") if start // block % 2 == 0 else ("without", "with"):
            spent[side] += insert_rows(tables[side], start, n)
    share = (compaction.stats["seconds"] - before) / spent["with"]
    return {"unit": "s", "inserts": compare, "with": spent["with"], "without": spent["without"],
            "ratio": spent["with"] / spent["without"], "maintenance_share": share}


def filtered_collect(work: Path, rows: int, calls: int) -> dict[str, Any]:
    rng = np.random.default_rng(1)
    words = pa.array(["ant", "bee", "cat", "dog"])
    data = pa.table({"a": np.arange(rows), "b": rng.random(rows),
                     "s": words.take(pa.array(rng.integers(0, 4, rows)))})
    figures = {}
    for side, maintenance in (("maintained", True), ("no_maintenance", False)):
        log(f"{rows:,} rows in one insert, maintenance {'on' if maintenance else 'off'}")
        t = lh.connect(str(work / f"filter_{side}"), maintenance=maintenance).create_table(
            "big", {"a": lh.Int, "b": lh.Float, "s": lh.String})
        t.insert(data, progress=False)
        query = t.where(t.a < FILTER_MATCHES)
        assert query.collect().height == FILTER_MATCHES
        figures[side] = median_ms(query.collect, calls)
        figures[f"{side}_indexes"] = t.indexes()["name"].to_list()
    return {"unit": "ms", "rows": rows, "matches": FILTER_MATCHES, **figures,
            "ratio": figures["no_maintenance"] / figures["maintained"]}


def loader(work: Path, quick: bool) -> dict[str, Any] | None:
    if importlib.util.find_spec("torch") is None:
        return None
    try:
        import loader as loader_benchmark
    except ImportError:
        return None
    sizes = loader_benchmark.QUICK if quick else loader_benchmark.DEFAULTS
    log(f"PyTorch loader over {sizes['images']:,} images")
    return loader_benchmark.measure(work / "loader", sizes["images"], sizes["repeat"])


def judge(ops: dict[str, Any]) -> None:
    rows = ops["row_by_row"]
    rows["point_query"]["met"] = rows["point_query"]["ratio"] <= TARGETS["point_query"]
    rows["bytes"]["met"] = rows["bytes"]["ratio"] <= TARGETS["bytes"]
    ops["insert_cost"]["met"] = ops["insert_cost"]["ratio"] <= TARGETS["insert_cost"]
    ops["filtered_collect"]["met"] = \
        ops["filtered_collect"]["maintained"] < TARGETS["filtered_collect_ms"]


def render(ops: dict[str, Any]) -> str:
    rows, cost, flt = ops["row_by_row"], ops["insert_cost"], ops["filtered_collect"]
    yes = {True: "yes", False: "NO"}
    lines = [
        ("measure", "maintained", "baseline", "ratio", "target", "met?"),
        (f"point query after {rows['inserts']:,} inserts",
         f"{rows['point_query']['maintained']:.2f} ms",
         f"{rows['point_query']['compacted']:.2f} ms", f"{rows['point_query']['ratio']:.2f}x",
         "<= 1.5x compacted", yes[rows["point_query"]["met"]]),
        ("bytes on disk", f"{rows['bytes']['maintained'] / 1e6:.1f} MB",
         f"{rows['bytes']['compacted'] / 1e6:.1f} MB", f"{rows['bytes']['ratio']:.2f}x",
         "<= 1.5x compacted", yes[rows["bytes"]["met"]]),
        (f"{cost['inserts']:,} inserts, total", f"{cost['with']:.1f} s",
         f"{cost['without']:.1f} s", f"{cost['ratio']:.2f}x", "<= 1.10x without",
         yes[cost["met"]]),
        (f"collect {flt['matches']:,} of {flt['rows']:,} rows", f"{flt['maintained']:.2f} ms",
         f"{flt['no_maintenance']:.2f} ms", f"{flt['ratio']:.1f}x faster", "< 5 ms",
         yes[flt["met"]]),
    ]
    if ops.get("loader"):
        result = ops["loader"]
        lines.append(("PyTorch loader (2 workers)", f"{result['lakehouse_map']:,.0f} img/s",
                      f"{result['plain_loop']:,.0f} img/s", f"{result['ratio']:.2f}x",
                      "none (reported)", "-"))
    return table(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", "--small", action="store_true", dest="quick",
                        help=f"a CI-sized run: {QUICK['inserts']} inserts, "
                             f"{QUICK['filter_rows']:,}-row filter, {QUICK['calls']} calls")
    parser.add_argument("--inserts", type=int, default=None, help="single-row inserts (part 1)")
    parser.add_argument("--compare", type=int, default=None,
                        help="single-row inserts on each side of part 2")
    parser.add_argument("--filter-rows", type=int, default=None, help="rows of part 3's table")
    parser.add_argument("--calls", type=int, default=None, help="timed calls of each query")
    parser.add_argument("--no-loader", action="store_true", help="skip the PyTorch loader")
    add_output_options(parser, "maintenance", "tables")
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else DEFAULTS
    inserts, compare = args.inserts or sizes["inserts"], args.compare or sizes["compare"]
    filter_rows, calls = args.filter_rows or sizes["filter_rows"], args.calls or sizes["calls"]
    if min(inserts, compare, calls) < 1 or filter_rows < FILTER_MATCHES:
        parser.error(f"need positive counts and --filter-rows >= {FILTER_MATCHES}")
    info = machine(("lakehouse", "pylance", "pyarrow", "polars", "numpy"))
    started = dt.datetime.now(dt.UTC)
    work = Path(tempfile.mkdtemp(prefix="lh-bench-maintenance-", dir=args.root))
    try:
        ops: dict[str, Any] = {
            "row_by_row": row_by_row(work, inserts, calls),
            "insert_cost": insert_cost(work, compare),
            "filtered_collect": filtered_collect(work, filter_rows, calls),
        }
        if not args.no_loader:
            ops["loader"] = loader(work, args.quick)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    judge(ops)
    info["load_average_end"] = list(os.getloadavg())
    rows = ops["row_by_row"]
    print(f"maintenance benchmark: {BASE_ROWS:,} rows + {inserts:,} single-row inserts "
          f"({rows['ms_per_insert']:.1f} ms each, {rows['compactions']} compactions, "
          f"{rows['fragments']} fragments and {rows['versions']} versions at the end); "
          f"maintenance took {ops['insert_cost']['maintenance_share']:.1%} of the insert time; "
          f"on {info['cpu_count']} CPUs ({info['cpu_model']}), load average "
          f"{info['load_average'][0]:.1f} at start, lakehouse {info['versions']['lakehouse']}")
    print(render(ops))
    write_report({"benchmark": "maintenance", "started": started.isoformat(timespec="seconds"),
                  "small": args.quick, "policy": repr(POLICY), "machine": info,
                  "operations": ops}, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

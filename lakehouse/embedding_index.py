"""Adding, replacing and dropping embedding indexes, and keeping their vector indexes current.

An embedding index is stored in the table definition (field metadata, like computed columns): on
a hidden computed column ``_lh_embedding_<id>`` holding the vectors, or on the searched column
itself when that already holds vectors. Its definition names the searched column, the embedding
function's spec (model and weights digest) and the metric. See docs/FORMAT.md.
"""

from __future__ import annotations

import dataclasses
import json

import lance
import polars as pl

from lakehouse import calibration
from lakehouse import types as T
from lakehouse.errors import (
    IndexExistsError,
    IndexNotFoundError,
    InvalidNameError,
    TypeMismatchError,
    check_choice,
)
from lakehouse.exec import protocol, writes
from lakehouse.exec.evaluate import Plan
from lakehouse.exec.protocol import WriteContext
from lakehouse.exec.writes import WriteResult
from lakehouse.exprs import serialize
from lakehouse.exprs.nodes import Call, check_recall
from lakehouse.functions.embeddings import EmbeddingFunction
from lakehouse.metadata import (
    FIELD_KEY,
    METRICS,
    PENDING_PREFIX,
    ColumnDef,
    IndexDef,
    TableDef,
    vectors_column,
)
from lakehouse.progress import report
from lakehouse.vector_index import VECTOR_INDEXES, ann_state, apply_upkeep, needed_upkeep


@dataclasses.dataclass(frozen=True)
class IndexRequest:
    """What ``Table.add_embedding_index`` was asked for (one options object, passed down)."""

    column: str
    embedding: EmbeddingFunction | None
    metric: str
    name: str
    if_exists: str
    on_error: str
    vector_index: str
    progress: bool
    recall: float | None = None  # the recall@10 target of default searches (None: 0.95)

    def check(self, table_name: str) -> None:
        """Refuse bad options before anything is read or computed.

        >>> IndexRequest("title", None, "hamming", "title", if_exists="error", on_error="abort",
        ...              vector_index="IVF_PQ", progress=False).check("films")
        Traceback (most recent call last):
        ...
        lakehouse.errors.InvalidOptionError: metric must be one of 'cosine', 'l2', 'dot', got ...
        """
        if not isinstance(self.name, str) or not self.name.isidentifier():
            raise InvalidNameError(f"table {table_name!r}: {self.name!r} is not a valid index "
                                   "name")
        check_choice("metric", self.metric, METRICS)
        check_choice("vector_index", self.vector_index, VECTOR_INDEXES)
        check_recall(self.recall)
        if self.embedding is not None and not isinstance(self.embedding, EmbeddingFunction):
            raise TypeMismatchError(
                "embedding must be lh.functions.clip(...) or "
                f"lh.functions.sentence_transformer(...), got {self.embedding!r}")


def add(ctx: WriteContext, request: IndexRequest, pending: list[str]) -> WriteResult:
    """Add (or with ``if_exists="replace"``, recompute into a hidden pending column, whose name
    is appended to ``pending`` for :func:`switch`) the index's vectors, in one commit."""
    tdef = ctx.definition
    source = tdef.get(request.column, ctx.table_name)
    pending.clear()
    existing = tdef.index(request.name)
    if existing is not None:
        if request.if_exists == "ignore":
            return WriteResult(0, 0, ctx.version)
        if request.if_exists == "error":
            raise IndexExistsError(
                f"table {ctx.table_name!r} already has an embedding index {request.name!r}; pass "
                "if_exists='replace' to rebuild it (for example with another model)")
    info = {"name": request.name, "source": source.col_id, "metric": request.metric,
            "vector_index": request.vector_index}
    if request.recall is not None:
        info["recall"] = request.recall
    if request.embedding is None:
        _check_vectors(source, ctx.table_name)
        held = source.index["name"] if source.index is not None else None
        if held is not None and held != request.name and request.if_exists != "replace":
            # a column of vectors holds one index definition: another name would replace it
            raise IndexExistsError(
                f"table {ctx.table_name!r}: column {source.name!r} already has the embedding "
                f"index {held!r}; drop it first, or pass if_exists='replace' to replace it")
        if existing is not None and existing.vectors.col_id != source.col_id:
            _drop(ctx, existing)
        _set_index_info(ctx, source, {**info, "embedding": None})
        return WriteResult(0, 0, ctx.dataset.version)
    return _add_embedded(ctx, source, request, info, existing, pending)


def _check_vectors(column: ColumnDef, table_name: str) -> None:
    shape = getattr(column.type, "shape", None)
    if column.type.kind != "array" or shape is None or len(shape) != 1 or shape[0] is None \
            or getattr(column.type, "dtype", None) not in ("float32", "float16", "float64"):
        raise TypeMismatchError(
            f"table {table_name!r}: column {column.name!r} is {column.type}; an embedding index "
            "needs embedding=lh.functions.clip(...) or sentence_transformer(...) for Image and "
            "String columns, or a column of vectors (lh.Array[(d,), 'float32'])")


def _add_embedded(ctx: WriteContext, source: ColumnDef, request: IndexRequest, info: dict,
                  existing: IndexDef | None, pending: list[str]) -> WriteResult:
    embedding = request.embedding
    assert embedding is not None
    kind = source.type.kind
    if kind not in embedding.modalities:
        raise TypeMismatchError(
            f"table {ctx.table_name!r}: column {source.name!r} is {source.type}; "
            f"{embedding.describe()} embeds {' and '.join(embedding.modalities)} columns")
    spec = embedding.spec()
    dim = embedding.dim  # loads the model: a missing or broken one fails before any write
    vector_type = T.Array[(dim,), "float32"]
    call = Call("embed.image" if kind == "image" else "embed.text", (source.ref(),),
                (("model", spec),), vector_type)
    tdef = ctx.definition
    col_id = tdef.next_id()
    stored = f"{PENDING_PREFIX}{col_id}" if existing is not None else vectors_column(col_id)
    vectors = ColumnDef(stored, col_id, vector_type, expr_json=serialize.to_json(call),
                        on_error=request.on_error, index={**info, "embedding": spec})
    plan = Plan.for_columns(ctx.table_name, TableDef(tdef.columns, (*tdef.hidden, vectors)),
                            [vectors])
    result = writes.backfill(ctx, plan, progress=request.progress, kind="embedding index")
    if existing is not None:
        pending.append(stored)
    return result


def switch(ctx: WriteContext, name: str, pending: str) -> int:
    """Put the new vectors ``pending`` of index ``name`` in place of its old vectors with
    :func:`~lakehouse.exec.protocol.switch_column` (readers see either the old index or the
    new one; dropping the old vectors drops their Lance index). When the old index searched a
    column of vectors, that column stays and only its index definition goes. Safe to run again
    after a conflict: it continues where it stopped."""
    final = vectors_column(int(pending[len(PENDING_PREFIX):]))
    old = [i for i in ctx.definition.indexes()
           if i.name == name and i.vectors.name not in (pending, final)]
    existing = old[0] if old else None
    computed = existing is not None and existing.vectors.is_computed
    protocol.switch_column(ctx, pending, final, existing.vectors if computed else None)
    if existing is not None and not computed:
        _drop(ctx, existing)
    return ctx.dataset.version


def drop(ctx: WriteContext, name: str) -> int:
    """Drop index ``name``: its vectors (or, on a column of vectors, its definition)."""
    index = ctx.definition.index(name)
    if index is None:
        names = ", ".join(repr(i.name) for i in ctx.definition.indexes()) or "none"
        raise IndexNotFoundError(f"table {ctx.table_name!r} has no embedding index {name!r} "
                                 f"(indexes: {names})")
    _drop(ctx, index)
    return ctx.dataset.version


def _drop(ctx: WriteContext, index: IndexDef) -> None:
    if index.vectors.is_computed:
        protocol.drop_columns(ctx, [index.vectors.name,
                                    *index.vectors.info_columns().values()])
        return
    if ann_state(ctx.dataset, index) is not None:
        protocol.drop_index(ctx, index.lance_index)
    _set_index_info(ctx, index.vectors, None)


def _set_index_info(ctx: WriteContext, column: ColumnDef, info: dict | None) -> None:
    """Write (or with None, remove) the index definition on a column of vectors: one commit."""
    field = ctx.dataset.schema.field(column.name)
    meta = json.loads((field.metadata or {})[FIELD_KEY])
    if info is None:
        meta.pop("index", None)
    else:
        meta["index"] = info
    protocol.set_field_metadata(ctx, {column.name: {FIELD_KEY.decode(): json.dumps(meta)}})


def upkeep_all(ctx: WriteContext, *, progress: bool, rebuild: str | None = None) -> int | None:
    """Build, extend or retrain the vector indexes as the rules of ``vector_index`` say; with
    ``rebuild``, that index's vector index is built afresh (its vectors just changed). Returns
    the new version, or None when nothing needed doing."""
    ds = ctx.dataset
    changed = False
    for index in ctx.definition.indexes():
        state = ann_state(ds, index)
        if index.name == rebuild and state is not None and not index.vectors.is_computed:
            protocol.drop_index(ctx, index.lance_index)  # a new metric on the same vectors
            changed = True
        action = needed_upkeep(ds, index)
        if action is None:
            if index.name != rebuild and not calibration.is_current(ds, index, state):
                _calibrate(ctx, index, progress=progress)  # lost to a conflict, or never made
                changed = True
            continue
        with report(f"{action} the vector index of {index.name}", enabled=progress):
            protocol.apply(ctx, lambda ds, index=index, action=action:
                           apply_upkeep(ds, index, action))
        if action != "optimize":  # trained afresh: measure the recall of its settings again
            _calibrate(ctx, index, progress=progress)
        changed = True
    return ds.version if changed else None


def _calibrate(ctx: WriteContext, index: IndexDef, *, progress: bool) -> None:
    """Store (one commit) the calibration of the vector index just trained, or remove a stale
    one when the index is too small to be calibrated (see :mod:`lakehouse.calibration`)."""
    ds = ctx.dataset
    info = dict(index.vectors.index or {})
    if calibration.needs_calibration(ds, index):
        with report(f"calibrate the vector index of {index.name}", enabled=progress):
            info["calibration"] = calibration.calibrate(ds, index).to_json()
    elif info.pop("calibration", None) is None:
        return
    _set_index_info(ctx, index.vectors, info)


def listing(ds: lance.LanceDataset, tdef: TableDef) -> pl.DataFrame:
    """The indexes of a table version, one row each (what ``Table.indexes()`` shows): embedding
    indexes with their model, metric and vector index, and their search: the recall target,
    how a search runs (``"index"`` or ``"exact"``), the default ``nprobes`` and
    ``refine_factor`` and the recall@10 measured with them (see
    :func:`lakehouse.calibration.summary`); then scalar indexes.

    >>> vecs = db.create_table("vecs", {"v": lh.Array[(2,), "float32"]})
    >>> _ = vecs.insert([{"v": [1.0, 0.0]}, {"v": [0.0, 1.0]}], progress=False)
    >>> _ = vecs.add_embedding_index("v", progress=False)  # a column of vectors: no model
    >>> state = vecs.table_state()
    >>> listing(state.dataset, state.definition).rows()
    [('v', 'v', 'embedding', None, 'cosine', None, 2, 0.95, 'exact', None, None, 1.0)]
    """
    rows = []
    for index in tdef.indexes():
        state = ann_state(ds, index)
        fn = EmbeddingFunction.from_spec(index.embedding) if index.embedding else None
        rows.append({
            "name": index.name, "column": tdef.by_id(index.source_id).name, "kind": "embedding",
            "embedding": fn.describe() if fn else None, "metric": index.metric,
            "vector_index": str(state["index_type"]) if state is not None else None,
            "unindexed_rows": int(state["num_unindexed_rows"]) if state is not None
            else ds.count_rows(),
            **calibration.summary(ds, index),
        })
    hidden = {i.lance_index for i in tdef.indexes()}
    for lance_index in ds.describe_indices():
        if lance_index.name in hidden:
            continue
        column, _, kind = lance_index.name.rpartition("_")
        rows.append({"name": lance_index.name, "column": column, "kind": kind,
                     "embedding": None, "metric": None, "vector_index": None,
                     "unindexed_rows": None, "recall_target": None, "search": None,
                     "nprobes": None, "refine_factor": None, "recall": None})
    schema = {"name": pl.String, "column": pl.String, "kind": pl.String, "embedding": pl.String,
              "metric": pl.String, "vector_index": pl.String, "unindexed_rows": pl.Int64,
              "recall_target": pl.Float64, "search": pl.String, "nprobes": pl.Int64,
              "refine_factor": pl.Int64,
              "recall": pl.Float64}
    return pl.DataFrame(rows, schema=schema)

"""Adding, replacing and dropping embedding indexes, and keeping their vector indexes current.

An embedding index is stored in the table definition (field metadata, like computed columns): on
a hidden computed column ``_lh_embedding_<id>`` holding the vectors, or on the searched column
itself when that already holds vectors. Its definition names the searched column, the embedding
function's spec (model and weights digest) and the metric. See docs/FORMAT.md.
"""

from __future__ import annotations

import dataclasses
import json
from typing import TYPE_CHECKING

import lance
import polars as pl

from lakehouse import types as T
from lakehouse.errors import (
    IndexExistsError,
    IndexNotFoundError,
    InvalidNameError,
    TypeMismatchError,
)
from lakehouse.exec import writes
from lakehouse.exec.evaluate import Plan
from lakehouse.exec.writes import WriteResult
from lakehouse.exprs import serialize
from lakehouse.exprs.nodes import Call
from lakehouse.functions.embeddings import EmbeddingFunction
from lakehouse.metadata import (
    FIELD_KEY,
    METRICS,
    PENDING_PREFIX,
    RETIRED_PREFIX,
    ColumnDef,
    IndexDef,
    TableDef,
    vectors_column,
)
from lakehouse.progress import report
from lakehouse.vector_index import VECTOR_INDEXES, ann_state, apply_upkeep, needed_upkeep

if TYPE_CHECKING:
    from lakehouse.table import Table


def add(table: Table, target: writes.Target, column: str, *,
        embedding: EmbeddingFunction | None, metric: str, name: str | None, if_exists: str,
        on_error: str, vector_index: str, progress: bool) -> WriteResult:
    tdef = target.tdef
    source = tdef.get(column, table.name)
    name = column if name is None else name
    if not isinstance(name, str) or not name.isidentifier():
        raise InvalidNameError(f"table {table.name!r}: {name!r} is not a valid index name")
    if metric not in METRICS:
        raise TypeMismatchError(f"metric must be one of {', '.join(map(repr, METRICS))}, got "
                                f"{metric!r}")
    if vector_index not in VECTOR_INDEXES:
        raise TypeMismatchError(f"vector_index must be one of "
                                f"{', '.join(map(repr, VECTOR_INDEXES))}, got {vector_index!r}")
    existing = tdef.index(name)
    if existing is not None:
        if if_exists == "ignore":
            return WriteResult(0, 0, target.dataset.version)
        if if_exists == "error":
            raise IndexExistsError(
                f"table {table.name!r} already has an embedding index {name!r}; pass "
                "if_exists='replace' to rebuild it (for example with another model)")
    info = {"name": name, "source": source.col_id, "metric": metric,
            "vector_index": vector_index}
    if embedding is None:
        _check_vectors(source, table.name)
        if existing is not None and existing.vectors.col_id != source.col_id:
            _drop(target, existing)
            target = table._target()
        _set_index_info(target.dataset, source, {**info, "embedding": None})
        result = WriteResult(0, 0, target.dataset.version)
    else:
        result = _add_embedded(table, target, source, embedding, info, existing, on_error,
                               progress)
    return dataclasses.replace(result, version=upkeep_all(table._target(), progress=progress,
                                                          rebuild=name))


def _check_vectors(column: ColumnDef, table: str) -> None:
    shape = getattr(column.type, "shape", None)
    if column.type.kind != "array" or shape is None or len(shape) != 1 or shape[0] is None \
            or getattr(column.type, "dtype", None) not in ("float32", "float16", "float64"):
        raise TypeMismatchError(
            f"table {table!r}: column {column.name!r} is {column.type}; an embedding index needs "
            "embedding=lh.functions.clip(...) or sentence_transformer(...) for Image and String "
            "columns, or a column of vectors (lh.Array[(d,), 'float32'])")


def _add_embedded(table: Table, target: writes.Target, source: ColumnDef,
                  embedding: EmbeddingFunction, info: dict, existing: IndexDef | None,
                  on_error: str, progress: bool) -> WriteResult:
    if not isinstance(embedding, EmbeddingFunction):
        raise TypeMismatchError(
            f"embedding must be lh.functions.clip(...) or lh.functions.sentence_transformer(...), "
            f"got {embedding!r}")
    kind = source.type.kind
    if kind not in embedding.modalities:
        raise TypeMismatchError(
            f"table {table.name!r}: column {source.name!r} is {source.type}; "
            f"{embedding.describe()} embeds {' and '.join(embedding.modalities)} columns")
    spec = embedding.spec()
    dim = embedding.dim  # loads the model: a missing or broken one fails before any write
    vector_type = T.Array[(dim,), "float32"]
    call = Call("embed.image" if kind == "image" else "embed.text", (source.ref(),),
                (("model", spec),), vector_type)
    tdef = target.tdef
    col_id = tdef.next_id()
    stored = f"{PENDING_PREFIX}{col_id}" if existing is not None else vectors_column(col_id)
    vectors = ColumnDef(stored, col_id, vector_type, expr_json=serialize.to_json(call),
                        on_error=on_error, index={**info, "embedding": spec})
    plan = Plan.for_columns(table.name, TableDef(tdef.columns, (*tdef.hidden, vectors)),
                            [vectors])
    result = writes.backfill(target, plan, progress=progress)
    if existing is None:
        return result
    return dataclasses.replace(result, version=_switch(table._target(), existing, stored,
                                                       vectors_column(col_id)))


def _switch(target: writes.Target, existing: IndexDef, pending: str, final: str) -> int:
    """Put the new vectors in place of the old in one commit (readers see either the old index
    or the new one), then drop the old vectors, which drops their Lance index."""
    ds = target.dataset
    if existing.vectors.is_computed:
        retired = f"{RETIRED_PREFIX}{existing.vectors.col_id}"
        ds.alter_columns({"path": existing.vectors.name, "name": retired},
                         {"path": pending, "name": final})
        ds.drop_columns([retired, *existing.vectors.info_columns().values()])
    else:  # the old index searched a column of vectors: keep the column, forget the index
        ds.alter_columns({"path": pending, "name": final})
        _drop(target, existing)
    return ds.version


def drop(table: Table, target: writes.Target, name: str) -> int:
    index = target.tdef.index(name)
    if index is None:
        names = ", ".join(repr(i.name) for i in target.tdef.indexes()) or "none"
        raise IndexNotFoundError(f"table {table.name!r} has no embedding index {name!r} "
                                 f"(indexes: {names})")
    _drop(target, index)
    return target.dataset.version


def _drop(target: writes.Target, index: IndexDef) -> None:
    ds = target.dataset
    if index.vectors.is_computed:
        ds.drop_columns([index.vectors.name, *index.vectors.info_columns().values()])
        return
    if ann_state(ds, index) is not None:
        ds.drop_index(index.lance_index)
    _set_index_info(ds, index.vectors, None)


def _set_index_info(ds: lance.LanceDataset, column: ColumnDef, info: dict | None) -> None:
    """Write (or with None, remove) the index definition on a column of vectors: one commit."""
    field = ds.schema.field(column.name)
    meta = json.loads((field.metadata or {})[FIELD_KEY])
    if info is None:
        meta.pop("index", None)
    else:
        meta["index"] = info
    ds.update_field_metadata({column.name: {FIELD_KEY.decode(): json.dumps(meta)}},
                             replace=True)


def upkeep_all(target: writes.Target, *, progress: bool, rebuild: str | None = None) -> int:
    """Build, extend or retrain the vector indexes as the rules of ``vector_index`` say; with
    ``rebuild``, that index's vector index is built afresh (its vectors just changed)."""
    ds = target.dataset
    for index in target.tdef.indexes():
        state = ann_state(ds, index)
        if index.name == rebuild and state is not None and not index.vectors.is_computed:
            ds.drop_index(index.lance_index)  # a new metric on the same vectors
        action = needed_upkeep(ds, index)
        if action is None:
            continue
        with report(f"{action} the vector index of {index.name}", enabled=progress):
            writes.commit(target, lambda index=index, action=action:
                          apply_upkeep(ds, index, action))
    return ds.version


def listing(ds: lance.LanceDataset, tdef: TableDef) -> pl.DataFrame:
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
        })
    hidden = {i.lance_index for i in tdef.indexes()}
    for lance_index in ds.describe_indices():
        if lance_index.name in hidden:
            continue
        column, _, kind = lance_index.name.rpartition("_")
        rows.append({"name": lance_index.name, "column": column, "kind": kind,
                     "embedding": None, "metric": None, "vector_index": None,
                     "unindexed_rows": None})
    schema = {"name": pl.String, "column": pl.String, "kind": pl.String, "embedding": pl.String,
              "metric": pl.String, "vector_index": pl.String, "unindexed_rows": pl.Int64}
    return pl.DataFrame(rows, schema=schema)

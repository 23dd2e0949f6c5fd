"""Similarity searches of a query: which index each ``col.similarity(query)`` uses, the vector it
searches with (the query embedded by the index's model, or given as a vector), and the Lance
nearest-neighbour options of a top-k search."""

from __future__ import annotations

import dataclasses
import io
import pathlib
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from lakehouse.calibration import search_parameters
from lakehouse.errors import IndexNotFoundError, MediaError, SourceRefusedError, TypeMismatchError
from lakehouse.exprs.nodes import Expr, Similarity, TextQuery
from lakehouse.functions.embeddings import EmbeddingFunction
from lakehouse.media.fetch import Fetcher, describe_failure, to_uri
from lakehouse.metadata import IndexDef, TableDef
from lakehouse.storage import redact_uri
from lakehouse.vector_index import ann_partitions

if TYPE_CHECKING:
    import lance

    from lakehouse.table import Table

_URI_SCHEMES = ("file://", "s3://", "http://", "https://")


@dataclasses.dataclass(frozen=True)
class SimilaritySearch:
    """One search: the similarity nodes that ask it (equal ones built separately share it), the
    index they search and the query vector.

    >>> vecs = db.create_table("vecs", {"v": lh.Array[(2,), "float32"]})
    >>> _ = vecs.insert([{"v": [1.0, 0.0]}, {"v": [0.0, 1.0]}], progress=False)
    >>> _ = vecs.add_embedding_index("v", progress=False)
    >>> state = vecs.table_state()
    >>> [search] = similarity_searches([vecs.v.similarity([1.0, 0.0])], vecs, state.dataset,
    ...                                state.definition)
    >>> options = search.nearest(state.dataset, k=1)  # no vector index yet (2 rows): exact
    >>> {name: value for name, value in options.items() if name != "q"}, options["q"].type
    ({'column': 'v', 'k': 1, 'metric': 'cosine'}, DataType(float))
    """

    nodes: tuple[Similarity, ...]
    index: IndexDef
    vector: np.ndarray

    @property
    def node(self) -> Similarity:
        return self.nodes[0]

    def asks(self, expr: Expr) -> bool:
        return any(expr is n for n in self.nodes)

    def nearest(self, ds: lance.LanceDataset, k: int) -> dict[str, Any]:
        """Lance's nearest-neighbour options for the ``k`` closest rows. The query goes as a
        float32 Arrow array, which Lance takes as it is (a NumPy vector it copies twice)."""
        return {"column": self.index.vectors.name, "q": pa.array(self.vector), "k": k,
                "metric": self.index.metric, **self.index_options(ds)}

    def index_options(self, ds: lance.LanceDataset) -> dict[str, Any]:
        """How the search uses the vector index at ``ds``'s version (see
        :func:`_index_options`), worked out once per version, index and knobs."""
        node = self.nodes[0]
        key = (ds.uri, ds.version, self.index.lance_index, node.nprobes, node.refine_factor,
               node.recall)
        options = _options.get(key)
        if options is None:
            if len(_options) > 1024:
                _options.clear()
            options = _options[key] = _index_options(ds, self.index, node)
        return options


#: (dataset, version, Lance index, nprobes, refine factor, recall) -> the index options
_options: dict[tuple[Any, ...], dict[str, Any]] = {}


def _index_options(ds: lance.LanceDataset, index: IndexDef, node: Similarity) -> dict[str, Any]:
    """``nprobes`` and ``refine_factor`` of a search of the vector index, or ``use_index``
    False for the exact search; none without a vector index (Lance compares every vector)."""
    partitions = ann_partitions(ds, index)
    if not partitions:
        return {}
    # explicit knobs win over the calibrated pick (lakehouse.calibration)
    picked = search_parameters(ds, index, partitions, node.recall)
    if picked["exact"] and not (node.nprobes or node.refine_factor):
        return {"use_index": False}  # cheaper than the index's settings
    options = {"nprobes": node.nprobes or picked["nprobes"]}
    refine = node.refine_factor or picked["refine_factor"]
    if refine:  # 0: the codes rank well enough without re-ranking
        options["refine_factor"] = refine
    return options


def similarity_searches(exprs: Iterable[Expr], table: Table, ds: lance.LanceDataset,
                        tdef: TableDef, *,
                        fetcher: Fetcher | None = None) -> list[SimilaritySearch]:
    """One search per distinct similarity in ``exprs``, in order of appearance; similarity
    nodes built separately with the same column, query, index and knobs share one search.
    ``fetcher`` reads query images (by default the table's: a query passes the one of the
    state it already read, which saves a refresh of the handle).

    >>> vecs = db.create_table("vecs", {"v": lh.Array[(2,), "float32"]})
    >>> _ = vecs.add_embedding_index("v", progress=False)
    >>> sim = vecs.v.similarity([1.0, 0.0])
    >>> state = vecs.table_state()
    >>> searches = similarity_searches([sim, sim + 1, vecs.v.similarity([1.0, 0.0])], vecs,
    ...                                state.dataset, state.definition)
    >>> len(searches), len(searches[0].nodes), searches[0].vector
    (1, 2, array([1., 0.], dtype=float32))
    """
    found: list[SimilaritySearch] = []
    for expr in exprs:
        for node in expr.walk():
            if not isinstance(node, Similarity) or any(s.asks(node) for s in found):
                continue  # not a similarity, or one already met (a sort key also output)
            same = next((i for i, s in enumerate(found) if _same_search(s.node, node)), None)
            if same is None:
                found.append(similarity_search(node, table, tdef, fetcher=fetcher))
            else:
                found[same] = dataclasses.replace(found[same], nodes=(*found[same].nodes, node))
    return found


def similarity_search(node: Similarity, table: Table, tdef: TableDef, *,
                      fetcher: Fetcher | None = None) -> SimilaritySearch:
    """The search of one similarity node: its index (:func:`find_index`) and its query as a
    vector (:func:`query_vector`); ``fetcher`` as in :func:`similarity_searches`.

    >>> vecs = db.create_table("vecs", {"v": lh.Array[(2,), "float32"]})
    >>> _ = vecs.add_embedding_index("v", progress=False)
    >>> similarity_search(vecs.v.similarity([0.0, 1.0]), vecs, vecs.table_definition).vector
    array([0., 1.], dtype=float32)
    """
    name = table.table_name
    index = find_index(tdef, node, name)
    vector = query_vector(index, node.query, fetcher or table.table_state().fetcher, name)
    return SimilaritySearch((node,), index, vector)


def _same_search(a: Similarity, b: Similarity) -> bool:
    """Whether two similarity nodes ask the same search: the same column, index, knobs and
    query (compared only where a query has several similarity nodes)."""
    return (a.column.col_id, a.index, a.nprobes, a.refine_factor, a.recall) \
        == (b.column.col_id, b.index, b.nprobes, b.refine_factor, b.recall) \
        and _query_key(a.query) == _query_key(b.query)


def _query_key(query: Any) -> Any:
    """What makes two queries the same: their value for strings, paths, bytes and vectors;
    the object itself for anything else (an image)."""
    if isinstance(query, str | bytes | pathlib.Path):
        return (type(query).__name__, query)
    if isinstance(query, np.ndarray | list | tuple):
        return ("vector", np.asarray(query, dtype=np.float32).tobytes())
    return ("object", id(query))


def find_index(tdef: TableDef, node: Similarity, table_name: str) -> IndexDef:
    """The index ``node`` searches: the one named, else the only one on its column.

    >>> vecs = db.create_table("vecs", {"v": lh.Array[(2,), "float32"]})
    >>> _ = vecs.add_embedding_index("v", progress=False)
    >>> index = find_index(vecs.table_definition, vecs.v.similarity([1.0, 0.0]), "vecs")
    >>> index.name, index.metric, index.dim
    ('v', 'cosine', 2)
    >>> find_index(t.table_definition, t.title.similarity("x"), "films")
    Traceback (most recent call last):
    ...
    lakehouse.errors.IndexNotFoundError: table 'films': column 'title' has no embedding index; ...
    """
    on_column = _indexes_by_column(tdef).get(node.column.col_id, [])
    if node.index is not None:
        chosen = [i for i in on_column if i.name == node.index]
        if not chosen:
            names = ", ".join(repr(i.name) for i in on_column) or "none"
            raise IndexNotFoundError(f"table {table_name!r}: column {node.column.name!r} has no "
                                     f"embedding index {node.index!r} (indexes: {names})")
        return chosen[0]
    if not on_column:
        raise IndexNotFoundError(
            f"table {table_name!r}: column {node.column.name!r} has no embedding index; add one "
            f"with t.add_embedding_index({node.column.name!r}, embedding=...)")
    if len(on_column) > 1:
        names = ", ".join(repr(i.name) for i in on_column)
        raise IndexNotFoundError(f"table {table_name!r}: column {node.column.name!r} has several "
                                 f"embedding indexes ({names}); pick one with similarity(..., "
                                 "index=name)")
    return on_column[0]


#: id(definition) -> (the definition, its embedding indexes by the id of the column searched)
_indexes: dict[int, tuple[TableDef, dict[int, list[IndexDef]]]] = {}


def _indexes_by_column(tdef: TableDef) -> dict[int, list[IndexDef]]:
    """The embedding indexes of ``tdef`` (by name) by the id of the column they search,
    worked out once per definition (a definition is read once per table version), not once
    per search. The entry holds the definition, so its id names no other while kept."""
    held = _indexes.get(id(tdef))
    if held is None or held[0] is not tdef:
        if len(_indexes) > 64:
            _indexes.clear()
        by_column: dict[int, list[IndexDef]] = {}
        for index in tdef.indexes():
            by_column.setdefault(index.source_id, []).append(index)
        held = _indexes[id(tdef)] = (tdef, by_column)
    return held[1]


def query_vector(index: IndexDef, query: Any, fetcher: Fetcher, table_name: str) -> np.ndarray:
    """The vector to search with: ``query`` embedded by the index's function (text or image),
    or ``query`` itself when it is a vector.

    >>> _ = t.add_embedding_index("title", embedding=minilm, progress=False)
    >>> index = t.table_definition.index("title")
    >>> query_vector(index, "a film about a heist", Fetcher(), "films").shape
    (384,)
    >>> query_vector(index, [0.5] * 3, Fetcher(), "films")
    Traceback (most recent call last):
    ...
    lakehouse.errors.TypeMismatchError: table 'films': index 'title' holds 384-dimensional \
vectors; the query vector has 3
    """
    if isinstance(query, np.ndarray) or (isinstance(query, list | tuple) and query
                                         and all(isinstance(v, int | float) for v in query)):
        vector = np.asarray(query, dtype=np.float32).reshape(-1)
        if vector.shape[0] != index.dim:
            raise TypeMismatchError(f"table {table_name!r}: index {index.name!r} holds "
                                    f"{index.dim}-dimensional vectors; the query vector has "
                                    f"{vector.shape[0]}")
        return vector  # the usual search: no message prepared for errors it cannot meet
    where = f"table {table_name!r}: index {index.name!r}"
    if index.embedding is None:
        raise TypeMismatchError(f"{where} searches stored vectors; pass a vector of "
                                f"{index.dim} numbers, not {type(query).__name__}")
    fn = EmbeddingFunction.from_spec(index.embedding)
    if isinstance(query, TextQuery) or (isinstance(query, str)
                                        and not query.startswith(_URI_SCHEMES)):
        return fn.embed_texts([query])[0]
    image = _image_query(query, fetcher, where)
    if "image" not in fn.modalities:
        raise TypeMismatchError(f"{where} uses {fn.describe()}, which embeds text only; "
                                "search it with a string")
    try:
        return fn.embed_images([image])[0]
    except ValueError as exc:  # the bytes are not an image this library decodes
        raise MediaError(f"{where}: the query image cannot be decoded: {exc}") from None


def _image_query(query: Any, fetcher: Fetcher, where: str) -> Any:
    if isinstance(query, bytes):
        return query
    if isinstance(query, str | pathlib.Path):
        try:
            return fetcher.read(to_uri(query) if isinstance(query, pathlib.Path) else query)
        except Exception as exc:
            msg = (f"{where}: cannot read the query image {redact_uri(str(query))!r}: "
                   f"{describe_failure(exc)}")
            if isinstance(exc, SourceRefusedError):
                raise SourceRefusedError(msg, kind=exc.kind) from None
            raise MediaError(msg) from None  # the cause's message may hold the URI's secrets
    if hasattr(query, "convert") and hasattr(query, "save"):  # a PIL image
        buffer = io.BytesIO()
        query.convert("RGB").save(buffer, format="PNG")
        return buffer.getvalue()
    raise TypeMismatchError(f"{where}: cannot search with a {type(query).__name__}; pass a "
                            "string, a PIL image, an image path or URI, bytes, or a vector")



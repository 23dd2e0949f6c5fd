"""Scanning a table version: the rows that match a condition, as Polars frames, batch by batch.

Queries, updates, deletes and backfills all read rows through :func:`scan_frames`, so the split of
a where() condition into the part Lance evaluates (SQL pushed into the scan, see ``exprs.sql``)
and the residual Polars evaluates (:class:`Filter`) is made in one place.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any

import lance
import polars as pl

from lakehouse.errors import TypeMismatchError
from lakehouse.exec.evaluate import Plan
from lakehouse.exprs.nodes import BinaryOp, ColumnRef, Expr
from lakehouse.exprs.sql import NotPushable, rowid_filter, to_sql
from lakehouse.media.fetch import Fetcher
from lakehouse.media.references import resolve_references
from lakehouse.metadata import ROW_ADDRESS, ROW_ID, TableDef

SCAN_BATCH_ROWS = 65_536
MEDIA_SCAN_ROWS = 256  # rows per batch when media bytes are read: bounded memory for large files
DISTANCE = "_distance"  # Lance's distance of each row to a nearest-neighbour query


@dataclasses.dataclass(frozen=True)
class Filter:
    """A where() condition split into a Lance SQL part and a residual evaluated in Polars.

    >>> Filter.split((t.year > 1990) & (t.title.str.upper() == "HEAT"), t.table_definition)
    Filter(sql='(`year` > 1990)', residual=(str.upper(title) == 'HEAT'))
    """

    sql: str | None
    residual: Expr | None

    @staticmethod
    def split(condition: Expr | None, tdef: TableDef) -> Filter:
        if condition is None:
            return _NO_FILTER
        if condition.type.kind != "bool":
            raise TypeMismatchError(f"where() needs a Bool expression, got {condition!r}")
        pushed, rest = [], []
        names = known_columns(tdef).names
        for part in _conjuncts(condition):
            try:
                pushed.append(to_sql(part, names))
            except NotPushable:
                rest.append(part)
        residual = None
        for part in rest:
            residual = part if residual is None else BinaryOp("&", residual, part)
        return Filter(" AND ".join(pushed) if pushed else None, residual)


@dataclasses.dataclass(frozen=True)
class KnownColumns:
    """What queries look up in a table definition on every call, worked out once per
    definition (see :func:`known_columns`): shared, so read it, do not change it.

    >>> known = known_columns(t.table_definition)
    >>> known.names, sorted(known.media), known.refs["year"]
    ({0: 'title', 1: 'year', 2: 'rating'}, [], year)
    """

    definition: TableDef
    names: dict[int, str]  # the stored name of each column (hidden ones included) by id
    media: frozenset[str]  # the names of the media columns
    refs: dict[str, ColumnRef]  # a reference to each of the table's columns, by name


#: id(definition) -> what is known of it; each entry holds its definition, so the id names no
#: other definition while it is kept
_known: dict[int, KnownColumns] = {}


def known_columns(tdef: TableDef) -> KnownColumns:
    """The column names, media columns and column references of ``tdef``, worked out once
    per definition (a table version's definition is read once and shared by its readers),
    not on every query.

    >>> known_columns(t.table_definition) is known_columns(t.table_definition)
    True
    """
    known = _known.get(id(tdef))
    if known is None or known.definition is not tdef:
        if len(_known) > 64:
            _known.clear()
        known = _known[id(tdef)] = KnownColumns(
            tdef, tdef.names(), frozenset(c.name for c in tdef.media_columns()),
            {c.name: c.ref() for c in tdef.columns})
    return known


_NO_FILTER = Filter(None, None)


def _conjuncts(expr: Expr) -> list[Expr]:
    if isinstance(expr, BinaryOp) and expr.op == "&":
        return _conjuncts(expr.left) + _conjuncts(expr.right)
    return [expr]


def lance_filter(tdef: TableDef, condition: Expr | None, columns: list[str]) -> Filter | None:
    """``condition`` as the filter Lance evaluates alone when a query reads ``columns``; None
    where Lance cannot answer the query alone (a condition it cannot evaluate, a media
    column): :func:`scan_frames` reads those. Decided before any search is resolved, so a
    query that goes the general way embeds its query text once.

    >>> lance_filter(t.table_definition, t.year > 1990, ["title"])
    Filter(sql='(`year` > 1990)', residual=None)
    >>> lance_filter(t.table_definition, t.title.str.upper() == "HEAT", ["title"]) is None
    True
    """
    flt = Filter.split(condition, tdef)
    media = known_columns(tdef).media
    if flt.residual is not None or (media and not media.isdisjoint(columns)):
        return None
    return flt


def lance_frame(ds: lance.LanceDataset, flt: Filter, columns: list[str], *,
                limit: int | None = None, nearest: dict[str, Any] | None = None) -> pl.DataFrame:
    """The rows matching ``flt`` (a :func:`lance_filter`; at most ``limit``; with
    ``nearest``, the k closest to its query, closest first, with their ``_distance``, as in
    :func:`scan_frames`) as one Polars frame of ``columns``, through Arrow's C interface (no
    Arrow table on the way, no check of its rows): the k rows of a search as Lance's stream,
    which Polars reads in one call; other rows batch by batch.

    >>> vecs = db.create_table("vecs", {"n": lh.Int, "v": lh.Array[(2,), "float32"]})
    >>> _ = vecs.insert([{"n": 1, "v": [1.0, 0.0]}, {"n": 2, "v": [0.0, 1.0]}], progress=False)
    >>> state = vecs.table_state()
    >>> near = {"column": "v", "q": [1.0, 0.5], "k": 1, "metric": "l2"}
    >>> flt = lance_filter(state.definition, vecs.n > 0, ["n"])
    >>> lance_frame(state.dataset, flt, ["n"], nearest=near).rows()
    [(1, 0.25)]
    >>> more = lance_filter(state.definition, vecs.n > 1, ["n"])
    >>> lance_frame(state.dataset, more, ["n"]).rows()
    [(2,)]
    """
    search: dict[str, Any] = {"limit": limit, "batch_size": SCAN_BATCH_ROWS}
    if nearest is not None:
        columns = [*columns, DISTANCE]
        search = {"nearest": nearest, "disable_scoring_autoprojection": True}
        if flt.sql is not None:
            search["prefilter"] = True
    scanner = ds.scanner(columns=columns, filter=flt.sql, **search)
    if nearest is not None:  # k rows: Polars reads Lance's stream itself, one call for all
        return pl.DataFrame(scanner.to_reader())
    # a frame per batch (Polars reading Lance's stream itself took 0.3 ms more on a 1M-row scan)
    frames = [pl.DataFrame(batch) for batch in scanner.to_batches()]
    if len(frames) == 1:
        return frames[0]
    return pl.concat(frames) if frames else pl.DataFrame(scanner.projected_schema.empty_table())


def scan_frames(ds: lance.LanceDataset, tdef: TableDef, table_name: str, condition: Expr | None,
                columns: list[str], *, limit: int | None = None, row_ids: bool = False,
                fetcher: Fetcher | None = None, nearest: dict[str, Any] | None = None,
                fragments: list[int] | None = None, batch_rows: int | None = None,
                only_rows: list[int] | None = None) -> Iterator[pl.DataFrame]:
    """Scan ``columns`` of the rows matching ``condition``, as Polars frames, batch by batch;
    with ``row_ids``, also each row's ``_rowid`` and ``_rowaddr``.

    Media columns come back as their bytes: Lance reads blobs only for the rows scanned, and the
    values of ``store="reference"`` columns are fetched from their sources (with ``fetcher``).

    With ``fragments`` (fragment ids), only the rows of those fragments are scanned.
    ``batch_rows`` sets the rows a frame holds (by default a size fit for the columns read).
    ``only_rows`` (row ids) keeps only those rows (a sample).

    With ``nearest`` (Lance's nearest-neighbour options), only the ``k`` rows closest to its
    query vector among the rows matching ``condition`` come back, closest first, with their
    ``_distance``: the condition is a prefilter, so k rows come back whenever k rows match. A
    condition Lance cannot evaluate is evaluated first, and its matching row ids prefilter.

    >>> state = t.table_state()
    >>> frames = scan_frames(state.dataset, state.definition, "films", t.year > 1990, ["title"])
    >>> [f.get_column("title").to_list() for f in frames]
    [['Heat', 'Up']]
    """
    flt = Filter.split(condition, tdef)
    if only_rows is not None:
        chosen = rowid_filter(only_rows)
        flt = Filter(chosen if flt.sql is None else f"({flt.sql}) AND {chosen}", flt.residual)
    if nearest is not None and flt.residual is not None:
        matching = [i for f in scan_frames(ds, tdef, table_name, condition, [], row_ids=True,
                                            fetcher=fetcher) for i in f.get_column(ROW_ID)]
        flt = Filter(rowid_filter(matching), None)
    read = list(columns)
    if flt.residual is not None:
        read += [c for c in tdef.stored_columns([flt.residual]) if c not in read]
    media = [c for c in tdef.media_columns() if c.name in read]
    references = [c for c in media if c.type.store == "reference"]  # type: ignore[attr-defined]
    read += [c.info_columns()[kind] for c in references for kind in ("fileurl", "errortype")
             if c.info_columns()[kind] not in read]
    search: dict[str, Any] = {}
    if nearest is not None:
        read.append(DISTANCE)
        search = {"nearest": nearest, "prefilter": True, "disable_scoring_autoprojection": True}
    scanner = ds.scanner(columns=read, filter=flt.sql,
                         batch_size=batch_rows or (MEDIA_SCAN_ROWS if media else SCAN_BATCH_ROWS),
                         limit=limit if flt.residual is None else None,
                         with_row_id=row_ids, with_row_address=row_ids,
                         blob_handling="all_binary" if media else None,
                         fragments=None if fragments is None else
                         [ds.get_fragment(i) for i in fragments], **search)
    keep_columns = [*columns, ROW_ID, ROW_ADDRESS] if row_ids else list(columns)
    if nearest is not None:
        keep_columns.append(DISTANCE)
    keep = None
    if flt.residual is not None:
        keep = Plan.for_exprs(table_name, tdef, {"__keep": flt.residual})
    # references the residual filter reads are fetched before it runs, the others after it
    filtered_on = set(tdef.stored_columns([flt.residual])) if flt.residual is not None else set()
    early = [c for c in references if c.name in filtered_on]
    late = [c for c in references if c.name not in filtered_on]
    remaining = limit
    for batch in scanner.to_batches():
        frame = pl.DataFrame(batch)  # through Arrow's C interface: a third cheaper than from_arrow
        for column in early:
            frame = resolve_references(frame, column, fetcher or Fetcher(), table_name)
        if keep is not None:
            mask, _ = keep.run(frame)
            frame = frame.filter(mask.get_column("__keep").fill_null(False))
            if remaining is not None:
                frame = frame.head(remaining)
                remaining -= frame.height
        for column in late:
            frame = resolve_references(frame, column, fetcher or Fetcher(), table_name)
        yield frame if frame.columns == keep_columns else frame.select(keep_columns)
        if remaining is not None and remaining <= 0:
            return

"""Queries: ``where / select / order_by / limit`` built lazily, run by ``collect()`` as one Lance
scan whose result is a Polars DataFrame.

The where() conditions are split into the conjuncts Lance can evaluate, pushed into the scan as SQL
(see ``exprs.sql``), and the rest, evaluated by Polars on the scanned batches. Selected expressions
run after filtering, ordering and limiting, so a UDF in select() only sees the rows returned.
"""

from __future__ import annotations

import dataclasses
import os
import random
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import polars as pl
import pyarrow as pa

from lakehouse.display import Rendered
from lakehouse.errors import InvalidOptionError, TypeMismatchError, UnsupportedError
from lakehouse.exec.evaluate import Plan
from lakehouse.exec.scan import (
    DISTANCE,
    Filter,
    known_columns,
    lance_filter,
    lance_frame,
    scan_frames,
)
from lakehouse.export import parquet, pytorch
from lakehouse.export.parquet import ExportResult
from lakehouse.exprs.nodes import (
    BinaryOp,
    Call,
    ColumnRef,
    Expr,
    InfoColumn,
    Similarity,
    lit,
)
from lakehouse.exprs.polars import Context, needs_python, to_polars
from lakehouse.media.blobs import is_blob
from lakehouse.metadata import ROW_ID, TableDef
from lakehouse.search import SimilaritySearch, similarity_search, similarity_searches
from lakehouse.vector_index import exact_scores, scores_from_distance

if TYPE_CHECKING:
    import lance

    from lakehouse.table import Table, TableState


@dataclasses.dataclass(frozen=True)
class Query:
    """A lazy query over one table version; every builder method returns a new Query.

    >>> recent = t.where(t.year > 1990)
    >>> recent.order_by(t.title, asc=False).select(t.title).collect()["title"].to_list()
    ['Up', 'Heat']
    >>> recent.count()  # recent itself is unchanged
    2
    """

    table: Table
    condition: Expr | None = None
    outputs: tuple[tuple[str, Expr], ...] | None = None
    ordering: tuple[tuple[Expr, bool], ...] = ()
    row_limit: int | None = None
    sampled: tuple[int, ...] | None = None  # the row ids sample() picked

    @staticmethod
    def of(table: Table) -> Query:
        """The query of all of ``table``'s rows, every builder's start, made as :meth:`_with`
        makes queries.

        >>> Query.of(t) == Query(t)
        True
        """
        query = object.__new__(Query)
        fields = query.__dict__
        fields.update(_ALL_ROWS)
        fields["table"] = table
        return query

    def _with(self, **changes: Any) -> Query:
        """This query with ``changes`` to its fields: what each builder returns. Its fields
        are copied into a new instance's dict (the dataclass's ``__init__`` would set each
        field through ``object.__setattr__``: four times the cost, and a query is built per
        call).

        >>> q = t.limit(2)
        >>> q._with(row_limit=1).row_limit, q.row_limit
        (1, 2)
        """
        query = object.__new__(Query)
        fields = query.__dict__
        fields.update(self.__dict__)
        fields.update(changes)
        return query

    def where(self, condition: Expr) -> Query:
        """Keep rows where ``condition`` holds; several where() calls combine with &.

        Conditions are expressions: ``&``, ``|`` and ``~`` combine them (not ``and``, ``or``,
        ``not``); :func:`lakehouse.parse_condition` reads one from text.

        >>> q = t.where(t.year > 1990).where(t.title.str.startswith("H"))
        >>> q.collect()["title"].to_list()
        ['Heat']
        >>> t.where((t.year < 1980) | t.title.isin(["Up"])).collect()["title"].to_list()
        ['Alien', 'Up']
        """
        if not isinstance(condition, Expr):
            raise TypeMismatchError(
                f"where() needs an expression such as t.n > 1, got {condition!r}")
        if condition.type.kind != "bool":
            raise TypeMismatchError(f"where() needs a Bool expression, got {condition!r}")
        for node in condition.walk():
            if isinstance(node, Similarity):
                raise UnsupportedError(
                    f"where() cannot filter on a similarity ({condition!r}); order by it and "
                    "limit() to get the k most similar rows, then filter the result")
        combined = condition if self.condition is None else BinaryOp("&", self.condition, condition)
        return self._with(condition=combined)

    def select(self, *exprs: Any, **named: Any) -> Query:
        """Choose the output columns, in the order given: column references or names,
        expressions and ``(name, expr)`` pairs, then ``name=expr`` keywords.

        An unnamed output is named after its column, its method (``t.image.width`` ->
        ``width``) or else its position (``col_2``). A pair keeps a named output in its place
        among the others; its name may be None (named as if unnamed), so the list that
        :func:`lakehouse.parse_selection` returns selects in its own order:
        ``t.select(*lh.parse_selection("title, decade = year // 10 * 10, rating", t))``.

        >>> q = t.select(t.title, ("decade", t.year // 10 * 10), t.rating)
        >>> q.collect().row(0)
        ('Alien', 1970, 8.5)
        >>> q.collect().columns
        ['title', 'decade', 'rating']
        >>> t.select("title", upper=t.title.str.upper()).collect().row(2)
        ('Up', 'UP')
        """
        # expressions as they are, other arguments through _selected and lit
        given = [(None, e) if isinstance(e, Expr) else self._selected(e) for e in exprs]
        if named:
            given += [(n, e if isinstance(e, Expr) else lit(e)) for n, e in named.items()]
        names = [_output_name(e, i) if n is None else n for i, (n, e) in enumerate(given)]
        if len(set(names)) < len(names):
            names = _distinct_names(given, names)
        return self._with(outputs=tuple(zip(names, [e for _, e in given], strict=True)))

    def _selected(self, item: Any) -> tuple[str | None, Expr]:
        """One positional argument of select(): its given name (None when unnamed) and its
        expression; a string names a column."""
        name: Any = None
        if isinstance(item, tuple) and len(item) == 2:
            name, item = item
            if name is not None and not isinstance(name, str):
                raise TypeMismatchError(f"select() takes (name, expr) pairs with a string "
                                        f"name, got {name!r}")
            if name is not None:
                return name, lit(item)
        if isinstance(item, str):
            item = self.table[item]
        if not isinstance(item, Expr):
            raise TypeMismatchError(f"select() takes expressions, column names or (name, expr) "
                                    f"pairs, got {item!r}")
        return None, item

    def order_by(self, *exprs: Any, asc: bool = True) -> Query:
        """Sort by one or more expressions; later calls sort by further keys.

        >>> q = t.order_by(t.rating, asc=False).order_by(t.title)
        >>> q.select(t.title).collect()["title"].to_list()
        ['Alien', 'Heat', 'Up']
        >>> t.order_by(t.rating, t.year, asc=False).collect()["title"].to_list()
        ['Alien', 'Up', 'Heat']
        """
        keys = [(e if isinstance(e, Expr) else self.table[e] if isinstance(e, str) else lit(e),
                 asc) for e in exprs]
        return self._with(ordering=(*self.ordering, *keys))

    def limit(self, n: int) -> Query:
        """At most ``n`` rows; after order_by(), the first ``n`` in that order.

        >>> t.order_by(t.year, asc=False).limit(1).select(t.title).collect().item()
        'Up'
        """
        if not isinstance(n, int) or n < 0:
            msg = f"limit() needs a non-negative integer, got {n!r}"
            raise InvalidOptionError(msg) if isinstance(n, int) else TypeMismatchError(msg)
        return self._with(row_limit=n)

    def head(self, n: int = 10) -> pl.DataFrame:
        """The first ``n`` rows of the result, as a Polars DataFrame.

        >>> t.where(t.rating < 8.4).head(1).rows()
        [('Heat', 1995, 8.3)]
        """
        return self.limit(n).collect()

    def sample(self, n: int, *, seed: int | None = None) -> pl.DataFrame:
        """``n`` rows picked at random among the matching rows (all of them if fewer), with the
        query's outputs computed for those rows only, as a Polars DataFrame; the same ``seed``
        picks the same rows of the same table version. The way to try an expression or a UDF
        on a few rows before declaring it with ``add_computed_column``.

        >>> t.select(t.title, shout=t.title.str.upper()).sample(2, seed=7).rows()
        [('Alien', 'ALIEN'), ('Heat', 'HEAT')]
        >>> t.where(t.year > 1990).sample(5, seed=1).height  # only two rows match
        2
        """
        if not isinstance(n, int) or isinstance(n, bool) or n < 0:
            msg = f"sample() needs a non-negative number of rows, got {n!r}"
            raise InvalidOptionError(msg) if isinstance(n, int) else TypeMismatchError(msg)
        if self.ordering or self.row_limit is not None:
            raise UnsupportedError("sample() picks rows at random: drop order_by() and limit(), "
                                   "or sort the sample it returns")
        ds, tdef = self._checked_snapshot()
        ids = [i for f in scan_frames(ds, tdef, self.table.table_name, self.condition, [],
                                      row_ids=True) for i in f.get_column(ROW_ID).to_list()]
        chosen = sorted(random.Random(seed).sample(sorted(ids), min(n, len(ids))))
        return self._with(sampled=tuple(chosen)).collect()

    def count(self) -> int:
        """The number of matching rows, counted by Lance where the filter allows.

        >>> t.where(t.rating == 8.3).count()
        2
        """
        ds, tdef = self._checked_snapshot()
        flt = Filter.split(self.condition, tdef)
        if flt.residual is None:
            return ds.count_rows(filter=flt.sql) if flt.sql else ds.count_rows()
        return sum(f.height for f in scan_frames(ds, tdef, self.table.table_name,
                                                 self.condition, [], row_ids=True))

    def _checked_snapshot(self) -> tuple[lance.LanceDataset, TableDef]:
        state = self._checked_state()
        return state.dataset, state.definition

    def _checked_state(self) -> TableState:
        """The table's state, read once for the whole call (one refresh: one request on S3),
        with every expression of the query checked against its definition."""
        state = self.table.table_state()
        refs = known_columns(state.definition).refs
        exprs = [e for e, _ in self.ordering]
        if self.outputs:
            exprs += [e for _, e in self.outputs]
        if self.condition is not None:
            exprs.append(self.condition)
        checked: set[int] = set()  # each once: a similarity ordered by is often also an output
        for expr in exprs:
            if id(expr) not in checked:
                checked.add(id(expr))
                if not _made_by(expr, refs):
                    state.definition.check_refs(expr, self.table.table_name)
        return state

    def collect(self) -> pl.DataFrame:
        """Run the query and return a Polars DataFrame.

        Ordered by a similarity (``order_by(sim, asc=False)``) with a ``limit(k)``, the query is
        one Lance nearest-neighbour search for the k closest rows, with where() as a prefilter;
        similarities elsewhere are computed exactly from the stored vectors.

        >>> t.where(t.year < 2000).select(t.title, t.year).collect()
        shape: (2, 2)
        ┌───────┬──────┐
        │ title ┆ year │
        │ ---   ┆ ---  │
        │ str   ┆ i64  │
        ╞═══════╪══════╡
        │ Alien ┆ 1979 │
        │ Heat  ┆ 1995 │
        └───────┴──────┘
        """
        state = self._checked_state()
        outputs = list(self.outputs) if self.outputs is not None else \
            [(c.name, c.ref()) for c in state.definition.columns]
        answered = self._lance_only(state, outputs)
        if answered is not None:
            return answered
        ds, tdef, name = state.dataset, state.definition, self.table.table_name
        # order keys that are plain columns sort directly; others become temporary columns
        sort_exprs = {f"__sort{i}": e for i, (e, _) in enumerate(self.ordering)}
        read = tdef.stored_columns([e for _, e in outputs] + list(sort_exprs.values()))
        searches = similarity_searches([e for _, e in outputs] + list(sort_exprs.values()),
                                       self.table, ds, tdef, fetcher=state.fetcher)
        lead = None
        if searches and self.row_limit is not None and self.ordering \
                and not self.ordering[0][1]:  # the k most similar rows: a Lance top-k search
            lead = next((s for s in searches if s.asks(self.ordering[0][0])), None)
        for search in searches:
            if search is not lead and search.index.vectors.name not in read:
                read.append(search.index.vectors.name)
        pushed_limit = self.row_limit if not self.ordering else None
        nearest = lead.nearest(ds, self.row_limit) if lead is not None else None  # type: ignore[arg-type]
        frames = list(scan_frames(ds, tdef, name, self.condition, read, limit=pushed_limit,
                                  fetcher=state.fetcher, nearest=nearest,
                                  only_rows=None if self.sampled is None else list(self.sampled)))
        frame = _concat(frames) if frames else \
            _empty(read, ds, with_distance=lead is not None)
        frame, scored = _add_scores(frame, searches, lead)
        if self.ordering:
            frame = _ordered(frame, sort_exprs, [not a for _, a in self.ordering], tdef, name,
                             scored)
        if self.row_limit is not None and frame.height > self.row_limit:
            frame = frame.head(self.row_limit)
        return _result(frame, outputs, tdef, name, scored)

    def _lance_only(self, state: TableState,
                    outputs: list[tuple[str, Expr]]) -> pl.DataFrame | None:
        """The result of a query Lance answers whole, read into one frame: out only stored
        columns, and either in no order (a point query) or ordered by a similarity, best first,
        with a limit (a top-k search; Lance returns the rows closest first, which is that
        order), that similarity out too. None for any other query, or where Lance cannot
        answer alone (see :func:`~lakehouse.exec.scan.lance_filter`): collect() runs those its
        general way."""
        if self.sampled is not None:
            return None
        key = self.ordering[0][0] if self.ordering else None
        if key is not None and (not self.row_limit or len(self.ordering) != 1
                                or self.ordering[0][1] or not isinstance(key, Similarity)):
            return None
        names = known_columns(state.definition).names
        columns: list[str] = []
        for _, expr in outputs:
            if isinstance(expr, ColumnRef):
                if names[expr.col_id] not in columns:
                    columns.append(names[expr.col_id])
            elif expr is not key:
                return None
        flt = lance_filter(state.definition, self.condition, columns)
        if flt is None:
            return None
        search, nearest = None, None
        if isinstance(key, Similarity) and self.row_limit:
            search = similarity_search(key, self.table, state.definition, fetcher=state.fetcher)
            nearest = search.nearest(state.dataset, self.row_limit)
        frame = lance_frame(state.dataset, flt, columns, limit=self.row_limit, nearest=nearest)
        return _lance_result(frame, outputs, names, search,
                             columns if search is None else [*columns, DISTANCE])

    def to_polars(self) -> pl.DataFrame:
        """The result as a Polars DataFrame, like :meth:`collect`.

        >>> t.where(t.year > 2000).to_polars()["title"].to_list()
        ['Up']
        """
        return self.collect()

    def show(self, n: int = 20) -> Rendered:
        """The first ``n`` rows, shown in a notebook as an HTML table with image thumbnails.

        >>> shown = pics.select(pics.label, pics.image).show()
        >>> shown.frame["label"].to_list()
        ['astronaut', 'coffee']
        >>> shown._repr_html_().count("<img")
        2
        """
        frame = self.limit(n if self.row_limit is None else min(n, self.row_limit)).collect()
        tdef = self.table.table_definition
        outputs = self.outputs if self.outputs is not None else \
            tuple((c.name, c.ref()) for c in tdef.columns)
        media = {name: e.type.kind for name, e in outputs if e.type.is_media}
        return Rendered(frame, media)

    def _repr_html_(self) -> str:
        return self.show()._repr_html_()

    def to_parquet(self, path: str | os.PathLike[str], *, media: str = "bytes",
                   overwrite: bool = False, progress: bool = True) -> ExportResult:
        """Write the result to one Parquet file (a local path or ``s3://bucket/key``), batch
        by batch from the table version current now, under the output names; media as bytes
        or (``media="uri"``) source URIs. As :meth:`Table.to_parquet
        <lakehouse.Table.to_parquet>`.

        >>> t.where(t.year > 1990).select(t.title).to_parquet("recent.parquet",
        ...                                                    progress=False).rows_written
        2
        >>> pl.read_parquet("recent.parquet")["title"].to_list()
        ['Heat', 'Up']
        """
        return parquet.write_parquet(self, path, parquet.ParquetOptions(
            media=media, overwrite=overwrite, progress=progress))

    def to_pytorch(self, columns: list[str] | None = None, *,
                   transform: Callable[[dict[str, Any]], Any] | None = None,
                   shuffle: bool = False, seed: int | None = None, iterable: bool = False,
                   images: str = "uint8") -> Any:
        """A PyTorch dataset of the matching rows at the table version current now (the
        selected columns, or ``columns``), as :meth:`Table.to_pytorch
        <lakehouse.Table.to_pytorch>`.

        >>> ds = t.where(t.year > 1990).select(t.title).to_pytorch()
        >>> [ds[i] for i in range(len(ds))]
        [{'title': 'Heat'}, {'title': 'Up'}]
        """
        return pytorch.make_dataset(self, columns=columns, transform=transform,
                                    shuffle=shuffle, seed=seed, iterable=iterable,
                                    images=images)

    def scan(self) -> pl.LazyFrame:
        """A lazy Polars frame over the Lance dataset; Polars pushes projections and filters into
        the scan. Expressions that need Python UDFs or read media are not allowed here, and
        without a select() the frame leaves media columns out: use collect() for those.

        >>> lazy = t.where(t.year > 1990).select(t.title, t.rating).scan()
        >>> lazy.filter(pl.col("rating") > 8.2).collect()["title"].to_list()
        ['Heat', 'Up']
        """
        ds, tdef = self._checked_snapshot()
        # pin the version: given a dataset alone, Polars reads the latest version, which breaks
        # t.at(n).scan() and could disagree with the column names of this snapshot
        lf = pl.scan_lance(ds, version=ds.version)
        ctx = Context(names=tdef.names(), info_names=tdef.info_names())
        exprs = [e for e in (self.condition, *(e for e, _ in self.ordering)) if e is not None]
        exprs += [e for _, e in self.outputs or ()]
        for e in exprs:
            if needs_python(e):
                raise UnsupportedError(f"scan() cannot run Python UDFs ({e!r}); use collect()")
        if self.condition is not None:
            lf = lf.filter(to_polars(self.condition, ctx))
        if self.ordering:
            lf = lf.sort([to_polars(e, ctx) for e, _ in self.ordering],
                         descending=[not a for _, a in self.ordering], nulls_last=True)
        if self.row_limit is not None:
            lf = lf.head(self.row_limit)
        if self.outputs is None:  # media columns are left out: see the docstring
            return lf.select([c.name for c in tdef.columns if not c.type.is_media])
        for _, e in self.outputs:
            if any(n.type.is_media for n in e.walk()):
                raise UnsupportedError(f"scan() cannot read media ({e!r}); use collect()")
        return lf.select([to_polars(e, ctx).alias(n) for n, e in self.outputs])


#: the fields of a query of all rows but its table
_ALL_ROWS = {f.name: f.default for f in dataclasses.fields(Query) if f.name != "table"}


def _made_by(expr: Expr, refs: dict[str, ColumnRef]) -> bool:
    """Whether every column ``expr`` reads is one of ``refs``, the references a definition
    made of its columns (``t.col`` hands them out): then the columns are the definition's,
    as :meth:`TableDef.check_refs <lakehouse.metadata.TableDef.check_refs>` would find,
    without a lookup and a type comparison per reference.

    >>> refs = known_columns(t.table_definition).refs
    >>> _made_by(t.year + 1, refs), _made_by(ColumnRef("year", 1, lh.Int) + 1, refs)
    (True, False)
    """
    for node in expr.walk():
        if isinstance(node, ColumnRef) and refs.get(node.name) is not node:
            return False
    return True


def _output_name(expr: Expr, position: int) -> str:
    """The default output name of an unnamed select() expression: a column's name, the method
    of a call (``t.image.width`` -> ``width``), the field of ``t.x.errortype``; else
    ``col_<position>``."""
    if isinstance(expr, ColumnRef):
        return expr.name
    if isinstance(expr, InfoColumn):
        return expr.field
    if isinstance(expr, Call):
        return expr.fn.rsplit(":", 1)[-1].rsplit(".", 1)[-1]
    return f"col_{position}"


def _distinct_names(given: list[tuple[str | None, Expr]], names: list[str]) -> list[str]:
    """The output names of select()'s ``given`` (name, expression) pairs where ``names``
    repeats one: a derived name (``given`` names none) of anything but a column falls back to
    its position; names that still repeat are refused."""
    names = [f"col_{i}" if name is None and names.count(n) > 1
             and not isinstance(e, ColumnRef) else n
             for i, ((name, e), n) in enumerate(zip(given, names, strict=True))]
    dupes = {n for n in names if names.count(n) > 1}
    if dupes:
        raise InvalidOptionError(f"select() has duplicate output names {sorted(dupes)}; "
                                 "name them with select(name=expr)")
    return names


def _evaluate(frame: pl.DataFrame, exprs: dict[str, Expr], tdef: TableDef,
              table: str, scored: dict[int, str] | None = None) -> pl.DataFrame:
    """``frame`` with a column per expression. Stored columns and similarity scores are taken
    as they are, cast to the expression's type (what a Plan computes for them, without its
    per-expression work); anything else runs through a Plan."""
    names = tdef.names()
    sources = [_source(e, names, scored or {}) for e in exprs.values()]
    if all(source is not None for source in sources) and not set(exprs) & set(frame.columns):
        return frame.hstack([_as_type(frame.get_column(source), e).alias(n)
                             for (n, e), source in zip(exprs.items(), sources, strict=True)
                             if source is not None])
    out, _ = Plan.for_exprs(table, tdef, exprs).run(frame, materialized=scored)
    return out


def _source(expr: Expr, names: dict[int, str], scored: dict[int, str]) -> str | None:
    """The column of the scanned frame that holds ``expr`` as it is: a stored column (named
    in ``names``, by column id), or a similarity already scored; None for any other
    expression."""
    if isinstance(expr, ColumnRef):
        return names.get(expr.col_id)
    if isinstance(expr, Similarity):
        return scored.get(id(expr))
    return None


def _ordered(frame: pl.DataFrame, keys: dict[str, Expr], descending: list[bool],
             tdef: TableDef, table: str, scored: dict[int, str]) -> pl.DataFrame:
    """``frame`` sorted by the expressions ``keys`` (stable, nulls last). A single key that the
    frame holds as it is, already in that order (the k nearest rows Lance returns, by their
    score), costs neither a sort nor a column."""
    if len(keys) == 1:
        source = _source(next(iter(keys.values())), tdef.names(), scored)
        if source is not None and frame.get_column(source).is_sorted(
                descending=descending[0], nulls_last=True):
            return frame
    frame = _evaluate(frame, keys, tdef, table, scored)
    return frame.sort(list(keys), descending=descending, nulls_last=True, maintain_order=True)


def _result(frame: pl.DataFrame, outputs: list[tuple[str, Expr]], tdef: TableDef, table: str,
            scored: dict[int, str]) -> pl.DataFrame:
    """The query's result: a column per output, under its name. Outputs the frame holds as
    they are (stored columns, similarity scores) are taken from it: as stored when every
    output is a column (the frame itself when it holds just those, in order, under their
    names), else cast to the expression's type as a Plan would; any other output runs
    through a Plan."""
    names = tdef.names()
    sources = [_source(e, names, scored) for _, e in outputs]
    if all(source is not None for source in sources):
        plain = all(isinstance(e, ColumnRef) for _, e in outputs)
        if plain and sources == [n for n, _ in outputs] == frame.columns:
            return frame
        return _frame([_as_type(frame.get_column(source), None if plain else e).alias(n)
                       for (n, e), source in zip(outputs, sources, strict=True)
                       if source is not None])
    result = _evaluate(frame, {f"__out{i}": e for i, (_, e) in enumerate(outputs)}, tdef,
                       table, scored)
    return _frame([result.get_column(f"__out{i}").alias(n) for i, (n, _) in enumerate(outputs)])


def _frame(columns: list[pl.Series]) -> pl.DataFrame:
    """A frame of ``columns`` (of one length, with distinct names): the first one's frame
    with the others stacked beside it, which costs a third of a frame built from the list
    (no checks, no conversions to try)."""
    if not columns:
        return pl.DataFrame()
    return columns[0].to_frame().hstack(columns[1:])


def _lance_result(frame: pl.DataFrame, outputs: list[tuple[str, Expr]], names: dict[int, str],
                  search: SimilaritySearch | None, held: list[str]) -> pl.DataFrame:
    """The result of a query Lance answered whole (see :meth:`Query._lance_only`), from its
    frame: stored columns (stored names by column id in ``names``) as they are, and the
    search's score from its distances. Stored columns need no cast: but for media (not read
    here) they are stored as their type's Polars type. When the frame holds just the outputs,
    in order (the usual top-k search: the columns asked, then the distances), it is the
    result: the score takes the distances' place and the columns take the outputs' names.
    ``held``: the frame's columns, which the caller knows (asking the frame costs a call).

    >>> vecs = db.create_table("vecs", {"n": lh.Int, "v": lh.Array[(2,), "float32"]})
    >>> _ = vecs.add_embedding_index("v", progress=False)
    >>> sim = vecs.v.similarity([1.0, 0.0])
    >>> frame = pl.DataFrame({"n": [1], "_distance": pl.Series([0.25], dtype=pl.Float32)})
    >>> state = vecs.table_state()
    >>> [search] = similarity_searches([sim], vecs, state.dataset, state.definition)
    >>> _lance_result(frame, [("id", vecs.n), ("score", sim)], {0: "n", 1: "v"}, search,
    ...               ["n", "_distance"]).rows()
    [(1, 0.75)]
    """
    wanted = [n for n, _ in outputs]
    if search is None and held == wanted:
        return frame
    score = None if search is None else \
        scores_from_distance(search.index.metric, frame.get_column(DISTANCE))
    sources = [names[e.col_id] if isinstance(e, ColumnRef) else DISTANCE for _, e in outputs]
    if sources == held:  # the frame is Lance's, made for this query: changed in place
        if score is not None:
            frame.replace_column(len(held) - 1, score.alias(wanted[-1]))
            held = [*held[:-1], wanted[-1]]
        if held != wanted:  # renaming a frame costs more than naming its score
            frame.columns = wanted
        return frame
    columns = []
    for name, expr in outputs:
        if isinstance(expr, ColumnRef):
            column = frame.get_column(names[expr.col_id])
            columns.append(column if column.name == name else column.alias(name))
        elif score is not None:  # the search's own similarity
            columns.append(score.alias(name))
    return _frame(columns)


def _as_type(column: pl.Series, expr: Expr | None) -> pl.Series:
    """``column`` with the Polars type of ``expr`` (as it is without one, or already of it)."""
    if expr is None:
        return column
    wanted = expr.type.polars_type()
    return column if column.dtype == wanted else column.cast(wanted)


def _concat(frames: list[pl.DataFrame]) -> pl.DataFrame:
    """The scanned frames as one (most small results come as a single frame: no copy)."""
    return frames[0] if len(frames) == 1 else pl.concat(frames)


def _add_scores(frame: pl.DataFrame, searches: list[SimilaritySearch],
                lead: SimilaritySearch | None) -> tuple[pl.DataFrame, dict[int, str]]:
    """Add a score column per similarity: from Lance's distances for the nearest-neighbour
    search, computed exactly from the stored vectors for the others."""
    scored: dict[int, str] = {}
    for i, search in enumerate(searches):
        name = f"__sim{i}"
        if search is lead:
            score = scores_from_distance(search.index.metric, frame.get_column(DISTANCE))
        else:
            score = exact_scores(frame.get_column(search.index.vectors.name), search.vector,
                                 search.index.metric)
        frame = frame.hstack([score.alias(name)])
        scored.update({id(node): name for node in search.nodes})
    return frame, scored


def _empty(columns: list[str], ds: lance.LanceDataset, *,
           with_distance: bool = False) -> pl.DataFrame:
    fields = [ds.schema.field(c) for c in columns]
    if with_distance:
        fields.append(pa.field(DISTANCE, pa.float32()))
    schema = pa.schema([pa.field(f.name, pa.large_binary()) if is_blob(f.type) else f
                        for f in fields])
    frame = pl.from_arrow(schema.empty_table())
    assert isinstance(frame, pl.DataFrame)
    return frame

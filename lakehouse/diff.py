"""Diff: what changed between two states of a table, as Polars frames.

A row is known by its stable row id (``_rowid``). ``update()`` and ``recompute()`` write the
rows they change again, as new rows with new row ids in place of the old ones (the old are
deleted in the same commit), and they write them in the order they scanned them, which is the
order of their row ids; so the k-th row id such a commit removed became the k-th row id it
wrote. :func:`replacements` reads that pairing from the commits between two versions and
follows it through several updates, and the diff reports such a row as *updated* (old and new
values of the columns that changed), not as deleted and inserted. A row inserted and deleted
between the two versions is in neither.

Rows are compared on the columns both states have (by column id, so a renamed column is the
same column); columns added, dropped, renamed or redefined, and indexes added or dropped, are
*schema* changes. Media values are shown as their source URI when the table kept it, else as
``<N bytes>``, never as their bytes (two media values of the same size and no URI compare
equal).

:func:`compare` takes two table states (a Lance dataset and its definition each) and the
pairing of row ids between them, so it also compares states that are not versions of one line
of history (a branch and main), given the pairing of their rows.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import lance
import polars as pl

from lakehouse.errors import VersionNotFoundError
from lakehouse.exec.protocol import OPERATION_KEY
from lakehouse.exprs.sql import rowid_filter
from lakehouse.functions.embeddings import EmbeddingFunction
from lakehouse.metadata import ColumnDef, TableDef
from lakehouse.names import ROW_ID

#: The write protocol's labels of commits that write changed rows again in place of old ones.
REWRITES = frozenset({"update", "recompute"})
#: How many commits are read at once (each read waits on storage, not on the CPU).
READ_THREADS = 8
#: Up to this many rows are read with a row id filter; more, with one scan of the version.
_FILTERED_READ_ROWS = 5_000
ROW_ID_BEFORE = "_rowid_before"

_SCHEMA_CHANGES = {"change": pl.String, "name": pl.String, "before": pl.String,
                   "after": pl.String}


@dataclasses.dataclass(frozen=True)
class Side:
    """One state of a table: a Lance dataset (a version, of any branch) and its definition."""

    dataset: lance.LanceDataset
    definition: TableDef

    @property
    def version(self) -> int:
        return self.dataset.version


@dataclasses.dataclass(frozen=True)
class Diff:
    """What changed from version ``before`` to version ``after`` of ``table``:

    - ``inserted``: the rows only ``after`` has (``_rowid`` and the columns at ``after``);
    - ``updated``: the rows both have whose values differ: ``_rowid`` (at ``after``),
      ``_rowid_before``, ``changed`` (the names of the columns that changed in that row) and,
      for each column that changed in some row, a struct of its ``before`` and ``after`` value;
    - ``deleted``: the rows only ``before`` has (``_rowid`` and the columns at ``before``);
    - ``schema``: one row per change of the definition: ``change`` (add column, drop column,
      rename column, change column, add embedding index, drop embedding index, change
      embedding index, add index, drop index), ``name``, and what it was ``before`` and is
      ``after`` (a column's type, with `` = expression`` for a computed one).

    >>> _ = t.update({"rating": 8.4}, where=t.title == "Up", progress=False)
    >>> d = t.diff(2)
    >>> d.updated.select("changed", "rating").rows()
    [(['rating'], {'before': 8.3, 'after': 8.4})]
    >>> d.summary()
    'films: version 2 -> 3: 0 inserted, 1 updated, 0 deleted, 0 schema changes'
    """

    table: str
    before: int
    after: int
    inserted: pl.DataFrame
    updated: pl.DataFrame
    deleted: pl.DataFrame
    schema: pl.DataFrame
    #: the updated rows as they are at ``after`` (``_rowid`` and every column)
    updated_rows: pl.DataFrame = dataclasses.field(repr=False, default_factory=pl.DataFrame)

    def summary(self) -> str:
        """One line: the versions and how many rows and definitions changed.

        >>> _ = t.delete(where=t.title == "Up")
        >>> t.diff(2).summary()
        'films: version 2 -> 3: 0 inserted, 0 updated, 1 deleted, 0 schema changes'
        """
        return (f"{self.table}: version {self.before} -> {self.after}: "
                f"{self.inserted.height} inserted, {self.updated.height} updated, "
                f"{self.deleted.height} deleted, {self.schema.height} schema changes")

    def changes(self) -> pl.DataFrame:
        """The row changes as one frame, inserts, then updates, then deletes: ``change``
        (insert, update or delete), ``_rowid``, ``changed``, the columns (the values at
        ``after``; a deleted row's at ``before``, under the names of ``after`` where a column
        was renamed) and ``before``, a struct of an updated row's old values of the columns
        that changed.

        >>> _ = t.delete(where=t.title == "Up")
        >>> t.diff(2).changes().select("change", "title").rows()
        [('delete', 'Up')]
        """
        changed = [c for c in self.updated.columns if c not in (ROW_ID, ROW_ID_BEFORE,
                                                                "changed")]
        before = self.updated.select(ROW_ID, "changed", pl.struct(
            [pl.when(pl.col("changed").list.contains(c)).then(pl.col(c).struct.field("before"))
             .alias(c) for c in changed]).alias("before")) if changed else \
            self.updated.select(ROW_ID, "changed")
        updated = self.updated_rows.join(before, on=ROW_ID, how="left") \
            if self.updated_rows.width else self.updated.drop(ROW_ID_BEFORE)
        renamed = {b: a for change, _, b, a in self.schema.rows() if change == "rename column"}
        frames = [self.inserted.with_columns(change=pl.lit("insert")),
                  updated.with_columns(change=pl.lit("update")),
                  self.deleted.rename(renamed, strict=False)
                  .with_columns(change=pl.lit("delete"))]
        out = pl.concat([f for f in frames if f.height] or [frames[0]], how="diagonal_relaxed")
        first = ["change", ROW_ID, *(["changed"] if "changed" in out.columns else [])]
        return out.select(*first, *(c for c in out.columns if c not in first))


def resolve(ds: lance.LanceDataset, table_name: str, ref: int | str | None) -> lance.LanceDataset:
    """The version ``ref`` names (a number, a snapshot name; None: ``ds``'s own version).

    >>> resolve(t.table_state().dataset, "films", 1).version
    1
    """
    if ref is None:
        return ds
    try:
        if isinstance(ref, str):
            return ds.checkout_version(int(ds.tags.list()[ref]["version"]))
        return ds.checkout_version(int(ref))
    except (KeyError, ValueError, OSError) as exc:
        if isinstance(ref, str):
            names = ", ".join(repr(n) for n in sorted(ds.tags.list())) or "none"
            message = f"table {table_name!r} has no snapshot {ref!r} (snapshots: {names})"
        else:
            message = (f"table {table_name!r} has no version {ref} (latest is "
                       f"{ds.latest_version}; a version removed by retention cannot be read)")
        raise VersionNotFoundError(message) from exc


def between(ds: lance.LanceDataset, table_name: str, a: int | str,
            b: int | str | None = None) -> Diff:
    """The diff from version (or snapshot) ``a`` to ``b`` (None: ``ds``'s version) of one
    line of history; ``a`` may be the later one (the diff then undoes the changes).

    >>> between(t.table_state().dataset, "films", 1).inserted.height
    3
    """
    old, new = resolve(ds, table_name, a), resolve(ds, table_name, b)
    if old.version <= new.version:
        pairs = replacements(new, old.version, new.version)
    else:
        pairs = {n: o for o, n in replacements(old, new.version, old.version).items()}
    return compare(Side(old, TableDef.from_schema(old.schema, table_name)),
                   Side(new, TableDef.from_schema(new.schema, table_name)), table_name, pairs)


def replacements(ds: lance.LanceDataset, first: int, last: int) -> dict[int, int]:
    """Row id at version ``first`` -> row id at version ``last``, for the rows that update or
    recompute commits in between wrote again (followed through several such commits). A
    commit whose versions were removed (retention) pairs nothing: its rows read as deleted
    and inserted.

    >>> before = t.version
    >>> _ = t.update({"rating": 8.4}, where=t.title == "Up", progress=False)
    >>> replacements(t.table_state().dataset, before, t.version)
    {2: 3}
    """
    # each commit is read on its own handle (a copy shares the cache and reads nothing): a
    # Lance handle cannot check out versions on two threads at once
    handles = [(copy.copy(ds), v) for v in range(first + 1, last + 1)]
    with ThreadPoolExecutor(max_workers=READ_THREADS) as pool:
        commits = list(pool.map(lambda handle: _commit_pairs(*handle), handles))
    origin_of: dict[int, int] = {}  # a row id written by a commit -> the id at ``first``
    for pairs in commits:
        for old, new in pairs:
            origin_of[new] = origin_of.pop(old, old)
    return {origin: new for new, origin in origin_of.items()}


def _commit_pairs(ds: lance.LanceDataset, version: int) -> list[tuple[int, int]]:
    """(old row id, new row id) for the rows commit ``version`` wrote again; none unless it is
    an update or recompute whose versions are still there."""
    try:
        tx = ds.read_transaction(version)
        if tx is None or tx.transaction_properties.get(OPERATION_KEY) not in REWRITES:
            return []
        before, after = ds.checkout_version(version - 1), ds.checkout_version(version)
        deleted = pl.from_arrow(ds.delta(begin_version=version - 1, end_version=version)
                                .get_deleted_row_ids().read_all())
    except (ValueError, OSError):
        return []
    old_fragments = {f.fragment_id for f in before.get_fragments()}
    new_fragments = [f for f in after.get_fragments() if f.fragment_id not in old_fragments]
    if not new_fragments:
        return []
    written = after.scanner(columns=[], with_row_id=True, fragments=new_fragments,
                            scan_in_order=True).to_table().column(ROW_ID).to_pylist()
    removed = sorted(deleted.get_column(ROW_ID).to_list()) if deleted.height else []
    if len(removed) != len(written):
        return []
    return list(zip(removed, written, strict=True))


def compare(before: Side, after: Side, table_name: str,
            pairs: Mapping[int, int] | None = None) -> Diff:
    """The diff between two states of a table. ``pairs`` maps a row id of ``before`` to the
    row id the same row has in ``after`` where the two differ (:func:`replacements`); rows
    whose id is in both states are the same row.

    >>> old = t.table_state()
    >>> _ = t.insert([{"title": "Alien", "year": 1979}], progress=False)
    >>> new = t.table_state()
    >>> compare(Side(old.dataset, old.definition), Side(new.dataset, new.definition),
    ...         "films").inserted.select("title").rows()
    [('Alien',)]
    """
    pairs = pairs or {}
    ids_before, ids_after = _row_ids(before.dataset), _row_ids(after.dataset)
    gone = set(ids_before.filter(~ids_before.is_in(ids_after.implode())).to_list())
    new = set(ids_after.filter(~ids_after.is_in(ids_before.implode())).to_list())
    matched = {o: n for o, n in pairs.items() if o in gone and n in new}
    deleted = _read(before, gone - matched.keys())
    inserted = _read(after, new - set(matched.values()))
    updated, updated_rows = _updated(before, after, matched)
    return Diff(table_name, before.version, after.version, inserted, updated, deleted,
                schema_changes(before, after), updated_rows)


def _row_ids(ds: lance.LanceDataset) -> pl.Series:
    """The row ids of a version (Lance reads them from the manifest, not the data files)."""
    table = ds.scanner(columns=[], with_row_id=True).to_table()
    return pl.Series(ROW_ID, table.column(ROW_ID), dtype=pl.UInt64)


def _read(side: Side, ids: Iterable[int]) -> pl.DataFrame:
    """``_rowid`` and the user columns of the rows ``ids`` of ``side``, sorted by row id,
    media values as text."""
    ids = sorted(ids)
    columns = list(side.definition.columns)
    uris = [c.info_columns()["fileurl"] for c in columns if c.type.is_media
            and c.info_columns().get("fileurl") in side.dataset.schema.names]
    read = [c.name for c in columns] + uris
    if not ids:
        table = side.dataset.scanner(columns=read, with_row_id=True, limit=0).to_table()
        frame = _frame(table)
    elif len(ids) <= _FILTERED_READ_ROWS:
        frame = _frame(side.dataset.scanner(columns=read, with_row_id=True,
                                            filter=rowid_filter(ids)).to_table())
    else:
        frame = _frame(side.dataset.scanner(columns=read, with_row_id=True).to_table())
        frame = frame.filter(pl.col(ROW_ID).is_in(ids))
    frame = frame.with_columns(_media_text(frame, c) for c in columns if c.type.is_media)
    return frame.select(ROW_ID, *(c.name for c in columns)).sort(ROW_ID)


def _frame(table: Any) -> pl.DataFrame:
    frame = pl.from_arrow(table)
    assert isinstance(frame, pl.DataFrame)
    return frame


def _media_text(frame: pl.DataFrame, column: ColumnDef) -> pl.Expr:
    """A media value as its source URI, when the table kept it, else ``<N bytes>``."""
    value = pl.col(column.name)
    dtype = frame.schema[column.name]
    if isinstance(dtype, pl.Struct):  # a blob column's descriptor
        size: pl.Expr = pl.format("<{} bytes>", value.struct.field("size"))
    elif dtype in (pl.Binary,):
        size = pl.format("<{} bytes>", value.bin.size())
    else:
        size = value.cast(pl.String)
    text = pl.when(value.is_null()).then(None).otherwise(size)
    uri = column.info_columns().get("fileurl")
    if uri in frame.columns:
        text = pl.coalesce(pl.col(uri), text)
    return text.alias(column.name)


def _updated(before: Side, after: Side, matched: Mapping[int, int]) -> (
        tuple[pl.DataFrame, pl.DataFrame]):
    """The paired rows whose values differ in a column both states have: the changes, and
    those rows as they are in ``after``."""
    common = [(b, after.definition.by_id(b.col_id)) for b in before.definition.columns
              if any(a.col_id == b.col_id for a in after.definition.columns)]
    if not matched:
        return (pl.DataFrame(schema={ROW_ID: pl.UInt64, ROW_ID_BEFORE: pl.UInt64,
                                     "changed": pl.List(pl.String)}),
                _read(after, []))
    old = _read(before, matched.keys()).rename(
        {ROW_ID: ROW_ID_BEFORE, **{b.name: f"{b.col_id}:before" for b, _ in common}})
    new = _read(after, matched.values()).rename(
        {a.name: f"{a.col_id}:after" for _, a in common})
    link = pl.DataFrame({ROW_ID_BEFORE: list(matched.keys()), ROW_ID: list(matched.values())},
                        schema={ROW_ID_BEFORE: pl.UInt64, ROW_ID: pl.UInt64})
    both = link.join(old, on=ROW_ID_BEFORE).join(new, on=ROW_ID)
    differs = {a.name: pl.col(f"{b.col_id}:before").ne_missing(pl.col(f"{b.col_id}:after"))
               for b, a in common}
    both = both.with_columns(changed=pl.concat_list(
        [pl.when(flag).then(pl.lit(name)) for name, flag in differs.items()]
    ).list.drop_nulls() if differs else pl.lit([], pl.List(pl.String)))
    both = both.filter(pl.col("changed").list.len() > 0)
    shown = [(b, a) for b, a in common if both.height
             and both.get_column("changed").list.contains(a.name).any()]
    common_after = {a.col_id for _, a in common}
    rows = both.select(ROW_ID, *(pl.col(f"{a.col_id}:after" if a.col_id in common_after
                                        else a.name).alias(a.name)
                                 for a in after.definition.columns)).sort(ROW_ID)
    return both.select(
        ROW_ID, ROW_ID_BEFORE, "changed",
        *(pl.struct(before=pl.col(f"{b.col_id}:before"),
                    after=pl.col(f"{b.col_id}:after")).alias(a.name) for b, a in shown),
    ).sort(ROW_ID), rows


def schema_changes(before: Side, after: Side) -> pl.DataFrame:
    """The changes of the definition from ``before`` to ``after``: columns (by column id: a
    column replaced under the same name is changed), embedding indexes and other indexes.

    >>> old = t.table_state()
    >>> _ = t.add_computed_column(decade=t.year // 10 * 10, progress=False)
    >>> new = t.table_state()
    >>> schema_changes(Side(old.dataset, old.definition),
    ...                Side(new.dataset, new.definition)).rows()
    [('add column', 'decade', None, 'Int = ((year // 10) * 10)')]
    """
    rows = _column_changes(before.definition, after.definition)
    rows += _index_changes(before.definition, after.definition)
    rows += _scalar_index_changes(before.dataset, after.dataset)
    return pl.DataFrame(rows, schema=_SCHEMA_CHANGES, orient="row")


def _describe(tdef: TableDef, column: ColumnDef) -> str:
    if column.is_computed:
        return f"{column.type} = {tdef.expr(column)}"
    return str(column.type)


def _column_changes(old: TableDef, new: TableDef) -> list[tuple[Any, ...]]:
    before = {c.col_id: c for c in old.columns}
    after = {c.col_id: c for c in new.columns}
    added = {after[i].name: after[i] for i in after.keys() - before.keys()}
    rows: list[tuple[Any, ...]] = []
    for col_id in sorted(before.keys() - after.keys()):
        column = before[col_id]
        if column.name in added:  # replaced under the same name
            rows.append(("change column", column.name, _describe(old, column),
                         _describe(new, added.pop(column.name))))
        else:
            rows.append(("drop column", column.name, _describe(old, column), None))
    for col_id in sorted(before.keys() & after.keys()):
        b, a = before[col_id], after[col_id]
        if b.name != a.name:
            rows.append(("rename column", a.name, b.name, a.name))
        if _describe(old, b) != _describe(new, a):
            rows.append(("change column", a.name, _describe(old, b), _describe(new, a)))
    rows += [("add column", name, None, _describe(new, c)) for name, c in added.items()]
    return rows


def _index_changes(old: TableDef, new: TableDef) -> list[tuple[Any, ...]]:
    def describe(tdef: TableDef, name: str) -> str:
        index = tdef.index(name)
        assert index is not None
        model = EmbeddingFunction.from_spec(index.embedding).describe() \
            if index.embedding else "vectors"
        return f"{tdef.by_id(index.source_id).name}: {model}, {index.metric}"

    before = {i.name for i in old.indexes()}
    after = {i.name for i in new.indexes()}
    rows: list[tuple[Any, ...]] = []
    rows += [("drop embedding index", n, describe(old, n), None) for n in sorted(before - after)]
    for name in sorted(before & after):
        if describe(old, name) != describe(new, name):
            rows.append(("change embedding index", name, describe(old, name),
                         describe(new, name)))
    rows += [("add embedding index", n, None, describe(new, n)) for n in sorted(after - before)]
    return rows


def _scalar_index_changes(old: lance.LanceDataset, new: lance.LanceDataset) -> (
        list[tuple[Any, ...]]):
    def names(ds: lance.LanceDataset) -> set[str]:
        return {i.name for i in ds.describe_indices() if not i.name.startswith("lh_")}

    before, after = names(old), names(new)
    return [*(("drop index", n, n, None) for n in sorted(before - after)),
            *(("add index", n, None, n) for n in sorted(after - before))]

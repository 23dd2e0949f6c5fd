"""Table: a handle on one Lance dataset, with data changes, schema changes, queries and versions.

Every method that changes the table makes exactly one Lance commit (one new version). A handle
follows the latest version unless it was opened at a fixed version (``db.get_table("t:3")`` or
``t.at(3)``), which makes it read-only.
"""

from __future__ import annotations

import dataclasses
import datetime
import functools
import os
import threading
import warnings
from collections.abc import Callable
from typing import IO, Any, TypeVar

import lance
import polars as pl
import pyarrow as pa

from lakehouse import branches, diff, ingest, versions, views
from lakehouse import embedding_index as indexes
from lakehouse import types as T
from lakehouse.diff import Diff
from lakehouse.display import Rendered
from lakehouse.engine import RayEngine, resolve_engine
from lakehouse.errors import (
    ColumnExistsError,
    ColumnNotFoundError,
    ComputedColumnError,
    DependencyError,
    IndexExistsError,
    IndexNotFoundError,
    InvalidNameError,
    InvalidOptionError,
    ReadOnlyError,
    SnapshotExistsError,
    TypeMismatchError,
    UnsupportedError,
    VersionNotFoundError,
    check_choice,
)
from lakehouse.exec import checkpoints, protocol, writes
from lakehouse.exec.evaluate import Plan
from lakehouse.exec.intake import is_pandas_frame
from lakehouse.exec.protocol import WriteContext
from lakehouse.exec.scan import known_columns
from lakehouse.exec.writes import WriteResult
from lakehouse.export import parquet, pytorch
from lakehouse.export.parquet import ExportResult
from lakehouse.exprs import serialize
from lakehouse.exprs.nodes import ColumnRef, Expr, Literal, lit
from lakehouse.exprs.polars import Context, to_polars
from lakehouse.exprs.sql import rowid_filter
from lakehouse.functions.embeddings import EmbeddingFunction
from lakehouse.maintenance import compaction, filters, retention
from lakehouse.maintenance.compaction import OptimizeReport
from lakehouse.maintenance.retention import GcReport
from lakehouse.media.fetch import Fetcher
from lakehouse.media.intake import MediaOptions, load_column
from lakehouse.metadata import ON_ERROR, PENDING_PREFIX, ROW_ID, ColumnDef, TableDef
from lakehouse.names import RESERVED_NAMES, check_column_name
from lakehouse.queries import Filter, Query, scan_frames
from lakehouse.storage import Location, storage_error
from lakehouse.version_watch import VersionWatch
from lakehouse.views import ViewStatus

_IF_EXISTS = ("error", "ignore", "replace")
_INDEX_KINDS = ("btree", "bitmap", "zonemap")
_R = TypeVar("_R")


@dataclasses.dataclass(frozen=True)
class TableState:
    """One consistent read of a table: the Lance dataset at one version, the table definition
    stored in it, and the table's location (storage options, fetch policy). The dataset is
    shared by every thread that reads this version and never moved, so read it, do not check
    out other versions on it. What queries, search and bulk ingest read a table through."""

    dataset: lance.LanceDataset
    definition: TableDef
    location: Location

    @property
    def version(self) -> int:
        """The version read."""
        return self.dataset.version

    @functools.cached_property
    def fetcher(self) -> Fetcher:
        """Reads media sources (``store="reference"`` values, query images) with the table's
        storage options, under the lakehouse's fetch policy; one per state (a query would
        otherwise build one per call, though most never fetch)."""
        return Fetcher(self.location.storage_options, self.location.fetch)


class _Head:
    """The version a handle reads and how it follows the latest one: a dataset moved to the
    latest version (``checkout_latest``, only under the lock) and the immutable state handed
    to readers (never moved, only replaced). Apart from the :class:`Table` so that a read of
    its state costs one attribute lookup of the table's (each is a Python call there, see
    ``Table.__getattribute__``), not one per field.
    """

    __slots__ = ("name", "location", "dataset", "pinned", "watch", "lock", "current", "wrote",
                 "committed")

    def __init__(self, name: str, location: Location, dataset: lance.LanceDataset, *,
                 pinned: bool, watch: VersionWatch | None) -> None:
        self.name = name
        self.location = location
        self.dataset = dataset
        self.pinned = pinned
        self.watch = watch  # a local table skips Lance's check while its folder is unchanged
        self.lock = threading.Lock()
        self.current: TableState | None = None
        self.wrote = False  # a write went through the handle since it last read its state
        self.committed = False  # dataset is the one a write's commit returned

    def state(self) -> TableState:
        """See :meth:`Table.table_state`."""
        with self.lock:
            head, current = self.dataset, self.current
            observed = None
            # the first read takes the dataset the handle was opened with (just opened or
            # written: latest already); later reads look for a newer version (a request on S3)
            if not self.pinned and current is not None:
                self.wrote = False  # before the check: a write that lands after it sets it
                try:
                    unchanged, observed = self._refresh(head)
                except OSError as exc:
                    raise storage_error(self.location, f"read table {self.name!r}",
                                        exc) from exc
                if unchanged:
                    return current
            if current is None or current.version != head.version:
                ds = head if self.pinned else head.checkout_version(head.version)
                self.current = TableState(ds, TableDef.from_schema(ds.schema, self.name),
                                          self.location)
            if observed is not None:  # the state of the latest version was read: trust it
                self.watch.confirm(observed)  # type: ignore[union-attr]
            return self.current  # type: ignore[return-value]

    def _refresh(self, head: lance.LanceDataset) -> tuple[bool, tuple[int, int, int] | None]:
        """Move the head to the latest version (under the lock): whether the state last read
        is surely still the latest one (nothing changed since a successful check), and how
        the version folder looked just before the check (for the watch to trust once the new
        state is read). A head the handle's own write committed is first asked only for the
        latest version number: Lance would read its manifest again though it is the latest
        (0.5 ms of a 1,000-row insert). A local table whose version folder is as it was at
        the last check is not checked again (:class:`~lakehouse.version_watch.VersionWatch`)."""
        watch = self.watch
        if watch is not None and watch.unchanged():
            return True, None
        observed = watch.observe() if watch is not None else None
        if self.committed:
            if head.latest_version == head.version:
                return False, observed
            self.committed = False
        head.checkout_latest()
        return False, observed

    def adopt(self, state: TableState) -> None:
        """Read ``state`` next, the one the handle's own write committed (unless a newer one
        was read meanwhile): its refresh then only checks for a newer version."""
        with self.lock:
            self.wrote = False  # the state of its own write is read
            if self.current is None or self.current.version < state.version:
                self.current = state
            if self.dataset.version < state.version:
                self.dataset = state.dataset.checkout_version(state.version)
                self.committed = True

    def held_definition(self) -> TableDef:
        """The definition the handle last read, read again only if it never read one or wrote
        since: building ``t.a == 1`` costs no request on S3, and the query that runs it reads
        the latest version and checks its columns there (``check_refs``)."""
        state = self.current
        if state is None or self.wrote:
            state = self.state()
        return state.definition

    def column(self, name: str) -> ColumnRef | None:
        """The column ``name`` in the :meth:`held_definition`: deciding what ``t.count``
        means must not cost a second refresh (a request on S3) on top of the one ``count()``
        itself makes."""
        return known_columns(self.held_definition()).refs.get(name)


@dataclasses.dataclass(frozen=True, eq=False)
class TableSummary:
    """A table at one version, all read from that version: its name, version, whether the
    handle is read-only, its row count, its columns (as :meth:`Table.describe`), its indexes
    (as :meth:`Table.indexes`) and its snapshots (as :meth:`Table.snapshots`). What
    ``lakehouse describe`` prints; get one from :meth:`Table.summary`.

    >>> s = t.summary()
    >>> s.name, s.version, s.read_only, s.rows
    ('films', 2, False, 3)
    >>> s.columns["column"].to_list(), s.indexes.height, s.snapshots
    (['title', 'year', 'rating'], 0, {})
    """

    name: str
    version: int
    read_only: bool
    rows: int
    columns: pl.DataFrame
    indexes: pl.DataFrame
    snapshots: dict[str, int]
    view: ViewStatus | None = None  # for a view: its base and how far it lags


class Table:
    """A lakehouse table. Get one from ``db.create_table`` or ``db.get_table``.

    Every column is reachable as an attribute, ``t.<column>``, even when its name is also one
    of the table's own attributes (``name``, ``version``, ``definition``, ``count``,
    ``columns``, ``uri``...): the column wins. The table's own name, version, URI and
    definition stay reachable as ``t.table_name``, ``t.table_version``, ``t.table_uri`` and
    ``t.table_definition``, its row count and column names as ``t.count_rows()`` and
    ``t.column_names()``: code that takes any table (the CLI, the search page, other modules)
    uses these spellings. Only the names in :data:`RESERVED_NAMES` (the table's verbs, such as
    ``insert`` and ``where``, and the ``table_*`` spellings) cannot be column names.

    A handle is safe to share between threads: reads see a consistent version and writes go
    through the write protocol (:mod:`lakehouse.exec.protocol`).

    >>> t = db.get_table("films")
    >>> t.where(t.year > 1990).select(t.title).collect()["title"].to_list()
    ['Heat', 'Up']
    """

    def __init__(self, name: str, uri: str, location: Location, dataset: lance.LanceDataset,
                 *, pinned: bool = False, branch: str | None = None) -> None:
        self._name = name
        self._uri = uri
        self._branch = branch  # a branch handle's URI is the branch's folder (lakehouse.branches)
        self._location = location
        self._pinned = pinned
        self._head = _Head(name, location, dataset, pinned=pinned, watch=(
            VersionWatch(uri) if location.is_local and not pinned else None))

    def __getattribute__(self, name: str) -> Any:
        # a column first: found without a failed attribute lookup (an exception) on the way
        if name[0] != "_" and name not in RESERVED_NAMES:
            column = object.__getattribute__(self, "_head").column(name)
            if column is not None:
                return column
        return object.__getattribute__(self, name)

    # --- state ----------------------------------------------------------------------------------
    @property
    def table_name(self) -> str:
        """The table's name in its lakehouse (``t.name`` too, unless a column is called so).

        >>> t.table_name
        'films'
        """
        return self._name

    @property
    def table_uri(self) -> str:
        """Where the Lance dataset lives; open it with ``lance.dataset(uri)``.

        >>> import lance
        >>> lance.dataset(t.table_uri).count_rows()
        3
        """
        return self._uri

    @property
    def table_version(self) -> int:
        """The version this handle reads: the latest, unless it was opened at a version.

        >>> t.table_version  # 1: created, 2: three rows inserted
        2
        """
        return self.table_state().version

    @property
    def table_definition(self) -> TableDef:
        """The table definition at the version this handle reads: its columns with their
        types, the computed columns' expressions and the embedding indexes
        (:class:`~lakehouse.metadata.TableDef`). ``t.definition`` too, unless a column is
        called so.

        >>> [(c.name, str(c.type)) for c in t.table_definition.columns]
        [('title', 'String'), ('year', 'Int'), ('rating', 'Float')]
        """
        return self.table_state().definition

    name = table_name
    uri = table_uri
    version = table_version
    definition = table_definition

    @property
    def is_read_only(self) -> bool:
        """Whether this handle was opened at a version (``t.at(n)``, ``db.get_table("t:3")``):
        such a handle reads that version and refuses writes.

        >>> t.is_read_only, t.at(1).is_read_only
        (False, True)
        """
        return self._pinned

    @property
    def table_branch(self) -> str | None:
        """The branch this handle reads and writes (``db.get_table("films#dev")``,
        ``t.branch("dev")``), or None for the table's main line.

        >>> t.table_branch, t.branch("dev").table_branch
        (None, 'dev')
        """
        return self._branch

    def table_state(self) -> TableState:
        """What this handle reads now: the dataset at its version (the latest, unless the
        handle was opened at a version), the definition stored there, and the table's
        location. Read from the one state, so the dataset and the definition always agree.

        >>> state = t.table_state()
        >>> state.version, state.dataset.count_rows(), state.definition.has("title")
        (2, 3, True)
        """
        return self._head.state()

    def _context(self, *, tags_only: bool = False,
                 state: TableState | None = None) -> WriteContext:
        """Open one attempt of a write (see :mod:`lakehouse.exec.protocol`). A handle opened at
        a version can only name it (``tags_only``: a snapshot changes no version). ``state``:
        the state the same call read a moment ago (not read again: one request less on S3)."""
        if self._pinned and not tags_only:
            raise ReadOnlyError(
                f"table {self._name!r} is opened at version {self.table_state().version} and is "
                "read-only; use db.get_table(name) for the latest version, or revert(to=n) to "
                "restore this one"
            )
        state = state or self.table_state()
        ds = state.dataset
        return WriteContext(self._name, self._uri, self._location.storage_options,
                            ds.checkout_version(ds.version), state.definition,
                            self._location.fetch, engine=self._location.engine)

    def _on(self, engine: str | RayEngine | None) -> Table | None:
        """For a call's own ``engine=`` (:func:`lakehouse.engine.resolve_engine`): a handle of
        this table whose work runs there, or None when it runs where this handle's does."""
        chosen = resolve_engine(engine, self._location.engine)
        if chosen == self._location.engine:
            return None
        ds = self.table_state().dataset
        self._head.wrote = True  # the other handle writes: this one reads its state again
        return Table(self._name, self._uri, dataclasses.replace(self._location, engine=chosen),
                     ds.checkout_version(ds.version), pinned=self._pinned, branch=self._branch)

    def _write(self, body: Callable[[WriteContext], _R], *, what: str,
               replayable: bool = True, state: TableState | None = None) -> _R:
        """Run ``body`` under the write protocol. A view first catches up with its base, in
        case a base write stopped before bringing it up to date. The first attempt works from
        ``state`` (else from one read now); a redone attempt reads the latest again."""
        state = state or self.table_state()
        if not self._pinned and state.definition.view is not None:
            views.catch_up(self._location, self._name)
            state = self.table_state()  # the catch-up wrote a version
        first = [state]
        try:
            return protocol.write(lambda: self._context(state=first.pop() if first else None),
                                  body, what=what, replayable=replayable)
        finally:
            self._head.wrote = True

    # --- column references ----------------------------------------------------------------------
    def __getattr__(self, name: str) -> ColumnRef:
        if name.startswith("_"):
            raise AttributeError(name)
        try:
            return self._column_ref(name)
        except ColumnNotFoundError as exc:
            raise AttributeError(str(exc)) from None

    def __getitem__(self, name: str) -> ColumnRef:
        return self._column_ref(name)

    def _column_ref(self, name: str) -> ColumnRef:
        """``t.name`` / ``t["name"]``: from the definition held (no request on S3), or the
        latest one when the held one lacks the column (one added since)."""
        tdef = self._head.held_definition()
        if not tdef.has(name):
            tdef = self.table_definition
        return tdef.get(name, self._name).ref()

    def columns(self) -> list[str]:
        """The names of the table's columns, in order (hidden bookkeeping columns excluded).

        >>> t.columns()
        ['title', 'year', 'rating']
        """
        return self.column_names()

    def column_names(self) -> list[str]:
        """The names of the table's columns; the spelling of :meth:`columns` that a column
        named ``columns`` cannot take over.

        >>> t.column_names()
        ['title', 'year', 'rating']
        """
        return [c.name for c in self.table_definition.columns]

    def describe(self) -> pl.DataFrame:
        """One row per column: name, type, and for computed columns the expression and policy.

        >>> _ = t.add_computed_column(decade=t.year // 10 * 10, progress=False)
        >>> t.describe().filter(pl.col("column") == "decade").row(0)
        ('decade', 'Int', '((year // 10) * 10)', 'abort')
        """
        return _describe(self.table_definition)

    def summary(self) -> TableSummary:
        """The table at the version this handle reads, in one read: name, version, row count,
        columns, indexes and snapshots (a :class:`TableSummary`), all of that one version even
        while others write. Code that takes any table calls it as ``lh.Table.summary(t)``, which
        a column named ``summary`` cannot take over.

        >>> _ = t.add_index("year")
        >>> s = lh.Table.summary(t)
        >>> s.version, s.rows, s.indexes["name"].to_list()
        (3, 3, ['year_btree'])
        """
        state = self.table_state()
        return TableSummary(
            name=self._name, version=state.version, read_only=self._pinned,
            rows=state.dataset.count_rows(), columns=_describe(state.definition),
            indexes=indexes.listing(state.dataset, state.definition),
            snapshots=versions.snapshots(state.dataset), view=self._view_status(state))

    def __repr__(self) -> str:
        state = self.table_state()
        pinned = " (read-only)" if self._pinned else ""
        return (f"Table {self._name!r}{pinned}: version {state.version}, "
                f"{state.dataset.count_rows()} rows\n{_describe(state.definition)}")

    # --- data changes ---------------------------------------------------------------------------
    def insert(self, data: Any, *, on_error: str = "abort", progress: bool = True) -> WriteResult:
        """Insert rows and compute every computed column for them, in one commit.

        ``data`` is a list of dicts, a Polars or pandas DataFrame, an Arrow table or record batch
        reader, or an iterator of such batches (streamed in bounded memory). Values are validated
        against the column types first; a bad value raises and nothing is written.

        A media value may be a path, a ``file://``, ``s3://`` or ``http(s)://`` URI, bytes, or
        for images a PIL image or numpy array. A missing, unreadable or corrupt one fails the
        insert (``on_error="abort"``), or with ``on_error="ignore"`` is kept as null with its
        error in ``t.col.errortype`` / ``t.col.errormsg`` (counted in ``rows_with_errors``).

        If another process changes the table's definition while the rows are computed (a new
        computed column, say), the insert is computed again under the new definition; input
        that can be read only once (an iterator, a reader) fails with ConcurrentWriteError
        instead, and nothing is written.

        >>> t.insert([{"title": "Jaws", "year": 1975, "rating": 8.1}], progress=False)
        WriteResult(rows_written=1, rows_with_errors=0, version=3)
        >>> t.insert(pl.DataFrame({"title": ["Ran"], "year": [1985]}), progress=False).version
        4
        """
        check_choice("on_error", on_error, ON_ERROR)
        return self.write_rows(lambda ctx: writes.insert(ctx, data, progress=progress,
                                                         on_error=on_error),
                               what="the insert", replayable=is_replayable(data),
                               progress=progress)

    def write_rows(self, body: Callable[[WriteContext], WriteResult], *, what: str,
                   replayable: bool = True, progress: bool = True) -> WriteResult:
        """Run a data change (``body`` writes and commits rows through the write protocol),
        then bring the vector indexes up to date. Bulk ingest uses it too: its body is one of
        the row writers of :mod:`lakehouse.exec.writes`, which commit through the context.

        >>> from lakehouse.exec import writes
        >>> rows = [{"title": "Ran", "year": 1985, "rating": 8.2}]
        >>> t.write_rows(lambda ctx: writes.insert(ctx, rows, progress=False), what="an insert")
        WriteResult(rows_written=1, rows_with_errors=0, version=3)
        """
        state = self.table_state()  # read once for the checks and the write's first attempt
        self._refuse_if_view(what, state.definition)
        result = self._write(body, what=what, replayable=replayable, state=state)
        if result.rows_written == 0:
            return result
        return self._update_indexes_and_views(result, progress)

    def _update_indexes_and_views(self, result: WriteResult, progress: bool) -> WriteResult:
        """After a data change: bring the vector indexes and then the views up to date."""
        state = self._state_after(result)
        if isinstance(result, writes.Appended):
            result = result.plain()
        if state.definition.indexes():
            version = self._write(lambda ctx: indexes.upkeep_all(ctx, progress=progress),
                                  what="the vector index upkeep")
            result = result if version is None else dataclasses.replace(result, version=version)
        if self._branch is None:  # views follow the main line
            views.update_dependents(self._location, state.dataset, progress=progress)
            compaction.after_write(self._location, self._name, state.dataset, state.definition)
        return result

    def _state_after(self, result: WriteResult) -> TableState:
        """The table as a data change left it: the version its commit returned, when the write
        kept it (no request, no definition parsed again), else the latest, read again. The
        handle's next read starts from it: its refresh then only checks for a newer version
        instead of reading this one's manifest again."""
        if not isinstance(result, writes.Appended) or self._pinned:
            return self.table_state()
        state = TableState(result.dataset, result.definition, self._location)
        self._head.adopt(state)
        return state

    def _refuse_if_view(self, what: str, definition: TableDef | None = None) -> None:
        vdef = (definition or self.table_definition).view
        if vdef is not None:
            raise ReadOnlyError(
                f"{self._name!r} is a view of {vdef.base!r}: its rows follow its base, so "
                f"{what} is refused; change {vdef.base!r} instead and the view follows")

    def _update_views(self) -> None:
        """Bring the views of this table up to date (after a delete or a revert)."""
        if self._branch is None:  # views follow the main line
            ds = self.table_state().dataset
            views.update_dependents(self._location, ds, progress=False)
            compaction.after_write(self._location, self._name, ds)

    def insert_files(self, sources: Any, **options: Any) -> WriteResult:
        """Insert every media file found in ``sources`` (paths, folders, globs or ``s3://``
        prefixes) into the table's media column, in one commit. See
        :func:`lakehouse.ingest.insert_files` for the options.

        >>> pets = db.create_table("pets", {"image": lh.Image, "file": lh.String})
        >>> pets.insert_files([photo], extra=lambda uri: {"file": uri.rsplit("/", 1)[-1]})
        WriteResult(rows_written=1, rows_with_errors=0, version=2)
        >>> pets.select(pets.file, pets.image.width).collect().rows()
        [('astronaut.png', 512)]
        """
        return ingest.insert_files(self, sources, **options)

    def update(self, values: dict[str, Any], where: Expr | None = None, *,
               progress: bool = True) -> WriteResult:
        """Set columns of the rows matching ``where`` (all rows if None) to literals or
        expressions, and recompute the computed columns that depend on them, for those rows only.

        Updates commute with concurrent inserts; if another writer changes one of the matched
        rows or the table's definition meanwhile, the update is done again on the latest
        version.

        >>> t.update({"rating": t.rating + 0.1}, where=t.title == "Up", progress=False)
        WriteResult(rows_written=1, rows_with_errors=0, version=3)
        >>> t.where(t.title == "Up").select(t.rating).collect().item()
        8.4
        """
        if not values:
            raise InvalidOptionError("update() needs at least one column to set")
        return self.write_rows(lambda ctx: self._update(ctx, values, where, progress),
                               what="the update", progress=progress)

    def _update(self, ctx: WriteContext, values: dict[str, Any], where: Expr | None,
                progress: bool) -> WriteResult:
        tdef = ctx.definition
        ctx_names = Context(names=tdef.names(), info_names=tdef.info_names())
        new_values: dict[str, pl.Expr] = {}
        for name, value in values.items():
            column = tdef.get(name, self._name)
            if column.is_computed:
                raise ComputedColumnError(
                    f"table {self._name!r}: column {name!r} is computed; update the columns it "
                    "depends on instead"
                )
            if column.type.is_media and not isinstance(value, Expr):
                new_values.update(_media_values(column, value, ctx, self._name))
                continue
            expr = _value_expr(value, column, self._name)
            tdef.check_refs(expr, self._name)
            new_values[name] = to_polars(expr, ctx_names).cast(column.type.polars_type(),
                                                                strict=True)
        changed_ids = {tdef.get(n, self._name).col_id for n in values}
        dependents = tdef.dependents(changed_ids)
        plan = Plan.for_columns(self._name, tdef, dependents) if dependents else None
        tdef.check_refs(where, self._name)
        # matched rows are rewritten whole (new fragments plus deletion files), so read them whole
        stored = [f.name for f in ctx.dataset.schema]
        scan = scan_frames(ctx.dataset, tdef, self._name, where, stored, row_ids=True,
                           fetcher=ctx.fetcher)
        return writes.update(ctx, new_values, plan, scan, progress=progress)

    def delete(self, where: Expr | None = None) -> WriteResult:
        """Delete the rows matching ``where`` (all rows if None), in one commit.

        >>> t.delete(where=t.year < 1990).rows_written
        1
        >>> t.count()
        2
        """
        self._refuse_if_view("the delete")
        result = self._write(lambda ctx: self._delete(ctx, where), what="the delete")
        if result.rows_written:
            self._update_views()
        return result

    def recompute(self, columns: str | list[str], where: Expr | None = None, *,
                  errors_only: bool = False, cascade: bool = True, progress: bool = True,
                  engine: str | RayEngine | None = None) -> WriteResult:
        """Compute the stored values of computed ``columns`` again, for the rows matching
        ``where`` (all rows if None), and the computed columns that depend on them
        (``cascade=False`` leaves those as they are), in one commit. ``errors_only=True``
        takes only the rows where one of ``columns`` recorded an error (``on_error="ignore"``):
        the way to retry the cells a flaky model or service failed. A view's own computed
        columns are recomputed the same way. ``engine`` (``"local"``, ``"ray"`` or a
        :class:`~lakehouse.RayEngine`) runs this call there instead of on the connection's
        engine.

        >>> _ = t.add_computed_column(decade=t.year // 10 * 10, progress=False)
        >>> t.recompute("decade", where=t.year > 2000, progress=False).rows_written
        1
        """
        other = self._on(engine)
        if other is not None:
            return other.recompute(columns, where, errors_only=errors_only, cascade=cascade,
                                   progress=progress)
        names = [columns] if isinstance(columns, str) else list(columns)
        if not names:
            raise InvalidOptionError("recompute() needs at least one computed column")
        result = self._write(
            lambda ctx: self._recompute(ctx, names, where, errors_only, cascade, progress),
            what="the recompute")
        if result.rows_written:
            self._update_indexes_and_views(result, progress)
        return result

    def _recompute(self, ctx: WriteContext, names: list[str], where: Expr | None,
                   errors_only: bool, cascade: bool, progress: bool) -> WriteResult:
        tdef = ctx.definition
        targets = [tdef.get(n, self._name) for n in names]
        plain = [c.name for c in targets if not c.is_computed]
        if plain:
            raise ComputedColumnError(
                f"table {self._name!r}: {', '.join(map(repr, plain))} "
                f"{'is not a computed column' if len(plain) == 1 else 'are not computed columns'}"
                "; only computed columns can be recomputed")
        ids = {c.col_id for c in targets}
        chosen = [c for c in tdef.computed_columns() if c.col_id in ids]
        if cascade:
            chosen = [c for c in tdef.computed_columns()
                      if c.col_id in ids or c in tdef.dependents(ids)]
        if errors_only:
            failed = [c.ref().errortype.is_not_null() for c in targets if c.keeps_errors]
            if not failed:  # with on_error="abort" no error is ever stored
                return WriteResult(0, 0, ctx.version)
            condition = failed[0]
            for more in failed[1:]:
                condition = condition | more
            where = condition if where is None else where & condition
        tdef.check_refs(where, self._name)
        plan = Plan.for_columns(self._name, tdef, chosen)
        return writes.recompute(ctx, plan, where, progress=progress)

    def _delete(self, ctx: WriteContext, where: Expr | None) -> WriteResult:
        ctx.definition.check_refs(where, self._name)
        flt = Filter.split(where, ctx.definition)
        if flt.residual is None:
            predicate = flt.sql or "true"
        else:
            frames = scan_frames(ctx.dataset, ctx.definition, self._name, where, [],
                                 row_ids=True)
            ids = [v for f in frames for v in f.get_column(ROW_ID).to_list()]
            if not ids:
                return WriteResult(0, 0, ctx.version)
            predicate = rowid_filter(ids)
        return writes.delete(ctx, predicate)

    # --- schema changes -------------------------------------------------------------------------
    def add_column(self, *, if_exists: str = "error", **columns: Any) -> int:
        """Add empty (null) columns: ``t.add_column(note=lh.String)``. Returns the new version.

        >>> t.add_column(note=lh.String)
        3
        >>> t.select(t.title, t.note).collect().row(0)
        ('Alien', None)
        """
        check_choice("if_exists", if_exists, _IF_EXISTS[:2])
        for name in columns:
            check_column_name(name, self._name)
        return self._write(lambda ctx: self._add_column(ctx, if_exists, columns),
                           what="the new column")

    def _add_column(self, ctx: WriteContext, if_exists: str, columns: dict[str, Any]) -> int:
        tdef = ctx.definition
        next_id = tdef.next_id()
        fields = []
        for name, spec in columns.items():
            if tdef.has(name):
                if if_exists == "ignore":
                    continue
                raise ColumnExistsError(f"table {self._name!r} already has a column {name!r}")
            column = ColumnDef(name, next_id, T.parse_type(spec, column=name))
            if not column.type.nullable:
                raise TypeMismatchError(
                    f"table {self._name!r}: a new column {name!r} must be nullable, since "
                    "existing rows have no value for it"
                )
            fields.extend(column.fields())
            next_id += 1
        if not fields:
            return ctx.version
        return protocol.add_null_columns(ctx, fields).version

    def add_columns(self, columns: dict[str, Any], *, if_exists: str = "error") -> int:
        """Add several empty columns at once, in one commit. Returns the new version.

        >>> t.add_columns({"note": lh.String, "seen": lh.Bool})
        3
        >>> t.column_names()
        ['title', 'year', 'rating', 'note', 'seen']
        """
        return self.add_column(if_exists=if_exists, **columns)

    def add_computed_column(self, *, on_error: str = "abort", if_exists: str = "error",
                            progress: bool = True, engine: str | RayEngine | None = None,
                            **column: Any) -> WriteResult:
        """Declare a computed column and fill it for the existing rows; from then on it is
        computed for every inserted or updated row.

        >>> t.add_computed_column(score=t.rating * 10, progress=False)
        WriteResult(rows_written=3, rows_with_errors=0, version=3)
        >>> t.select(t.title, t.score).collect().row(0)
        ('Alien', 85.0)

        Existing rows are backfilled with Lance data evolution: only the new column's files are
        written. ``on_error="ignore"`` keeps failing rows with a null value and their error
        (``t.n2.errortype``, ``t.n2.errormsg``); ``"abort"`` fails the call and writes nothing.
        Rows inserted by other processes while the column is computed are computed too.
        ``engine`` (``"local"``, ``"ray"`` or a :class:`~lakehouse.RayEngine`) runs this
        backfill there instead of on the connection's engine.
        """
        if isinstance(engine, Expr):  # a column called "engine"
            column, engine = {**column, "engine": engine}, None
        other = self._on(engine)
        if other is not None:
            return other.add_computed_column(on_error=on_error, if_exists=if_exists,
                                             progress=progress, **column)
        check_choice("on_error", on_error, ON_ERROR)
        check_choice("if_exists", if_exists, _IF_EXISTS)
        if len(column) != 1:
            raise TypeMismatchError("add_computed_column() takes exactly one name=expression")
        ((name, expr),) = column.items()
        if not isinstance(expr, Expr):
            raise TypeMismatchError(f"computed column {name!r} needs an expression, got {expr!r}")
        check_column_name(name, self._name)
        if "__main__:" in str(serialize.to_json(expr)):
            warnings.warn(
                f"computed column {name!r} calls a UDF defined in __main__: other processes "
                "cannot compute it; define the UDF in an importable module", stacklevel=2)
        pending: list[str] = []

        def backfill(ctx: WriteContext) -> WriteResult:
            tdef = ctx.definition
            tdef.check_refs(expr, self._name)
            pending.clear()
            if tdef.has(name):
                replacing = tdef.get(name, self._name)
                if if_exists == "ignore":
                    return WriteResult(0, 0, ctx.version)
                if if_exists == "error":
                    raise ColumnExistsError(
                        f"table {self._name!r} already has a column {name!r}; pass "
                        "if_exists='replace' to redefine it"
                    )
                self._check_replaceable(replacing, expr, tdef)
            col_id = tdef.next_id()
            # a replacement is computed under a hidden name first, then switched in
            stored = f"{PENDING_PREFIX}{col_id}" if tdef.has(name) else name
            column_def = ColumnDef(stored, col_id, expr.type,
                                   expr_json=serialize.to_json(expr), on_error=on_error)
            extended = TableDef((*tdef.columns, column_def))
            plan = Plan.for_columns(self._name, extended, [column_def])
            result = writes.backfill(ctx, plan, progress=progress)
            if stored != name:
                pending.append(stored)
            return result

        result = self._write(backfill, what=f"computed column {name!r}")
        if pending:
            version = self._write(lambda ctx: protocol.switch_column(
                ctx, pending[0], name, ctx.definition.get(name, self._name)),
                                  what=f"the switch to the new definition of {name!r}")
            result = dataclasses.replace(result, version=version)
        if result.rows_written and self._branch is None:  # a new column may want a zone map
            compaction.after_write(self._location, self._name, self.table_state().dataset)
        return result

    def _check_replaceable(self, existing: ColumnDef, expr: Expr, tdef: TableDef) -> None:
        dependents = tdef.dependents({existing.col_id})
        if dependents:
            names = ", ".join(c.name for c in dependents)
            raise DependencyError(
                f"table {self._name!r}: cannot replace {existing.name!r}: computed columns "
                f"{names} depend on it (a new definition could form a cycle); drop them first"
            )
        if existing.col_id in expr.column_ids():
            raise DependencyError(
                f"table {self._name!r}: the new definition of {existing.name!r} refers to "
                f"{existing.name!r} itself (a cycle)"
            )

    def drop_column(self, name: str, *, cascade: bool = False) -> int:
        """Drop a column. Refused if computed columns depend on it, unless ``cascade=True``,
        which drops them too (in the same commit). Returns the new version.

        >>> _ = t.add_computed_column(decade=t.year // 10 * 10, progress=False)
        >>> t.drop_column("year", cascade=True)  # decade is computed from year: it goes too
        4
        >>> t.column_names()
        ['title', 'rating']
        """
        return self._write(lambda ctx: self._drop_column(ctx, name, cascade),
                           what=f"the drop of column {name!r}")

    def _drop_column(self, ctx: WriteContext, name: str, cascade: bool) -> int:
        tdef = ctx.definition
        column = tdef.get(name, self._name)
        vdef = tdef.view
        if vdef is not None and not column.is_computed:
            raise DependencyError(
                f"view {self._name!r}: column {name!r} comes from its base {vdef.base!r}; only "
                "the view's own computed columns can be dropped")
        readers = views.readers_of(self._location, ctx.dataset, column.col_id)
        if readers:
            raise DependencyError(
                f"table {self._name!r}: cannot drop {name!r}: views {', '.join(readers)} read "
                "it; drop them first")
        dependents = tdef.dependents({column.col_id})
        if dependents and not cascade:
            names = ", ".join(repr(c.name) for c in dependents)
            raise DependencyError(
                f"table {self._name!r}: cannot drop {name!r}: computed columns {names} depend on "
                "it; drop them first or pass cascade=True"
            )
        names = []
        for c in [column, *dependents]:
            names += [c.name, *c.info_columns().values()]
        return protocol.drop_columns(ctx, names).version

    def rename_column(self, old: str, new: str) -> int:
        """Rename a column; computed columns that use it keep working (they refer to columns by
        id). Returns the new version.

        >>> t.rename_column("rating", "score")
        3
        >>> t.column_names()
        ['title', 'year', 'score']
        """
        check_column_name(new, self._name)

        def rename(ctx: WriteContext) -> int:
            ctx.definition.get(old, self._name)
            if ctx.definition.has(new):
                raise ColumnExistsError(f"table {self._name!r} already has a column {new!r}")
            return protocol.rename_columns(ctx, (old, new)).version

        return self._write(rename, what=f"the rename of column {old!r}")

    def add_index(self, column: str, *, kind: str = "btree", replace: bool = False) -> int:
        """Index a scalar column so that filters on it read only matching rows (one commit).

        ``kind``: ``"btree"`` (ranges and equality on many distinct values), ``"bitmap"`` (few
        distinct values) or ``"zonemap"`` (min/max per block of rows: tiny and quick to build,
        best when values arrive roughly sorted, such as ids and timestamps). Rows inserted
        later are still found (Lance scans the unindexed part). A zone map that maintenance
        made on the column by itself (:mod:`lakehouse.maintenance.filters`) gives way to it.
        Returns the new version.

        >>> t.add_index("year")
        3
        >>> t.indexes()["name"].to_list()
        ['year_btree']
        """
        check_choice("kind", kind, _INDEX_KINDS)

        def build(ctx: WriteContext) -> int:
            col = ctx.definition.get(column, self._name)
            if col.type.kind not in ("string", "int", "float", "bool", "date", "timestamp"):
                raise TypeMismatchError(
                    f"table {self._name!r}: column {column!r} is {col.type}; only scalar columns "
                    "take a scalar index"
                )
            name = f"{col.name}_{kind}"
            filters.release(ctx, col.name)
            if not replace and name in _index_names(ctx.dataset):
                raise IndexExistsError(
                    f"table {self._name!r}: column {column!r} already has a {kind} index; pass "
                    "replace=True to rebuild it"
                )
            return protocol.create_scalar_index(ctx, column, kind, name, replace).version

        return self._write(build, what=f"the {kind} index on {column!r}")

    # --- embedding indexes ----------------------------------------------------------------------
    def add_embedding_index(self, column: str, *, embedding: EmbeddingFunction | None = None,
                            metric: str = "cosine", name: str | None = None,
                            if_exists: str = "error", on_error: str = "abort",
                            vector_index: str = "IVF_SQ", recall: float | None = None,
                            progress: bool = True,
                            engine: str | RayEngine | None = None) -> WriteResult:
        """Make ``column`` searchable by similarity: ``t.col.similarity(query)``.

        ``embedding`` turns the column's values into vectors: :func:`lh.functions.clip` for
        Image and String columns (text and images share one space), or
        :func:`lh.functions.sentence_transformer` for String columns. A column that already
        holds vectors (``lh.Array[(d,), "float32"]``) needs none. The vectors are a hidden
        computed column, embedded for every inserted or updated row in the same commit, and
        searched through a Lance vector index (see the README for when it is built and kept
        up to date). ``metric``: ``"cosine"``, ``"l2"`` or ``"dot"``. ``name`` defaults to
        the column's name. ``if_exists="replace"`` re-embeds every row with a new model (in
        bounded memory) and drops the old vectors and their index when the new ones are in.
        ``on_error="ignore"`` keeps rows the model fails on, with no vector (they are not found).
        ``vector_index``: the Lance index built from 10,000 rows on, ``"IVF_SQ"`` (fastest at
        high recall) or ``"IVF_PQ"`` (smallest). ``recall``: the recall@10 that searches reach
        by default (0.95 unless given): each time the vector index is trained, its search
        parameters are measured on its own vectors (see :meth:`indexes`) and a search picks the
        fastest that reach the target. ``engine`` (``"local"``, ``"ray"`` or a
        :class:`~lakehouse.RayEngine`) computes the vectors there instead of on the
        connection's engine.

        >>> _ = t.add_embedding_index("title", embedding=minilm, progress=False)
        >>> sim = t.title.similarity("a monster aboard a spaceship")
        >>> t.order_by(sim, asc=False).limit(1).select(t.title).collect().item()
        'Alien'
        """
        other = self._on(engine)
        if other is not None:
            return other.add_embedding_index(
                column, embedding=embedding, metric=metric, name=name, if_exists=if_exists,
                on_error=on_error, vector_index=vector_index, recall=recall, progress=progress)
        check_choice("if_exists", if_exists, _IF_EXISTS)
        check_choice("on_error", on_error, ON_ERROR)
        request = indexes.IndexRequest(
            column=column, embedding=embedding, metric=metric,
            name=column if name is None else name, if_exists=if_exists, on_error=on_error,
            vector_index=vector_index, progress=progress, recall=recall)
        request.check(self._name)
        pending: list[str] = []
        result = self._write(lambda ctx: indexes.add(ctx, request, pending),
                             what=f"embedding index {request.name!r}")
        if pending:
            version = self._write(lambda ctx: indexes.switch(ctx, request.name, pending[0]),
                                  what=f"the switch to the new vectors of {request.name!r}")
            result = dataclasses.replace(result, version=version)
        version = self._write(lambda ctx: indexes.upkeep_all(ctx, progress=progress,
                                                             rebuild=request.name),
                              what="the vector index upkeep")
        return result if version is None else dataclasses.replace(result, version=version)

    def drop_embedding_index(self, name: str) -> int:
        """Drop an embedding index: its vectors and its Lance vector index. Returns the new
        version.

        >>> _ = t.add_embedding_index("title", embedding=minilm, progress=False)
        >>> _ = t.drop_embedding_index("title")
        >>> t.indexes().height
        0
        """
        return self._write(lambda ctx: indexes.drop(ctx, name),
                           what=f"the drop of embedding index {name!r}")

    def indexes(self) -> pl.DataFrame:
        """One row per index: its name, column, kind (``embedding``, ``btree``, ``bitmap``,
        ``zonemap``), embedding model, metric, rows the vector index does not cover yet, and
        for embedding indexes the recall target, the ``nprobes`` and ``refine_factor`` a search
        uses by default and the recall@10 measured with them (1.0 where the search is exact),
        and whether maintenance made the index by itself (``automatic``: a zone map, see
        :mod:`lakehouse.maintenance.filters`).

        >>> _ = t.add_index("rating", kind="bitmap")
        >>> t.indexes().select("name", "column", "kind").rows()
        [('rating_bitmap', 'rating', 'bitmap')]
        """
        state = self.table_state()
        return filters.mark(indexes.listing(state.dataset, state.definition), state.dataset)

    def drop_index(self, name: str, *, kind: str | None = None) -> int:
        """Drop the index :meth:`indexes` lists as ``name``, whatever its kind: a scalar index
        (``"year_btree"``) or an embedding index, whose vectors and vector index go with it
        (as :meth:`drop_embedding_index`). Returns the new version.

        With ``kind``, ``name`` is a column and the index ``add_index(column, kind=kind)`` made
        goes. A name that no index has is read so too, with ``kind="btree"``:
        ``drop_index("year")`` drops ``year_btree``. An index name comes first: where an
        embedding index and a column share a name, ``drop_index(name)`` drops the embedding
        index and ``drop_index(name, kind="btree")`` the column's btree index.

        >>> _ = t.add_index("year")
        >>> _ = t.add_index("rating", kind="bitmap")
        >>> _ = t.drop_index("year_btree")
        >>> _ = t.drop_index("rating", kind="bitmap")
        >>> t.indexes().height
        0
        """
        if kind is not None:
            check_choice("kind", kind, _INDEX_KINDS)

        def drop(ctx: WriteContext) -> int:
            scalar = _scalar_index_names(ctx)
            if kind is None:
                if ctx.definition.index(name) is not None:
                    return indexes.drop(ctx, name)
                if name in scalar:
                    return protocol.drop_index(ctx, name).version
                if f"{name}_btree" not in scalar or not ctx.definition.has(name):
                    known = [i.name for i in ctx.definition.indexes()] + sorted(scalar)
                    raise IndexNotFoundError(f"table {self._name!r} has no index {name!r} (its "
                                             f"indexes: {', '.join(known) or 'none'})")
            column_kind = kind or "btree"
            ctx.definition.get(name, self._name)
            if f"{name}_{column_kind}" not in scalar:
                raise IndexNotFoundError(
                    f"table {self._name!r}: column {name!r} has no {column_kind} index")
            return protocol.drop_index(ctx, f"{name}_{column_kind}").version

        return self._write(drop, what=f"the drop of index {name!r}")

    # --- queries --------------------------------------------------------------------------------
    def _query(self) -> Query:
        return Query.of(self)

    def where(self, condition: Expr) -> Query:
        """A query of the rows where ``condition`` holds (see :meth:`Query.where`); nothing
        is read until it is collected.

        >>> t.where((t.year > 1990) & (t.rating > 8)).collect()["title"].to_list()
        ['Heat', 'Up']
        """
        return Query.of(self).where(condition)

    def select(self, *exprs: Any, **named: Any) -> Query:
        """A query of chosen columns and expressions, in the order given (see
        :meth:`Query.select`).

        >>> t.select(t.title, t.year, ("age", 2025 - t.year)).collect().row(0)
        ('Alien', 1979, 46)
        """
        return Query.of(self).select(*exprs, **named)

    def order_by(self, *exprs: Any, asc: bool = True) -> Query:
        """A query of the rows sorted by ``exprs`` (column references, names or expressions),
        ascending unless ``asc=False``; ties keep the table's order.

        >>> t.order_by(t.rating, asc=False).collect()["title"].to_list()
        ['Alien', 'Heat', 'Up']
        """
        return Query.of(self).order_by(*exprs, asc=asc)

    def limit(self, n: int) -> Query:
        """A query of at most ``n`` rows.

        >>> t.limit(2).collect().height
        2
        """
        return Query.of(self).limit(n)

    def sample(self, n: int, *, seed: int | None = None) -> pl.DataFrame:
        """``n`` rows picked at random (all of them if fewer), as a Polars DataFrame; the same
        ``seed`` picks the same rows. On a query (``t.select(...).sample(5, seed=1)``) the
        outputs are computed for the sampled rows only: try an expression or a UDF on a few
        rows, then declare it with :meth:`add_computed_column`.

        >>> t.sample(2, seed=7)["title"].to_list()
        ['Alien', 'Heat']
        """
        return self._query().sample(n, seed=seed)

    def collect(self) -> pl.DataFrame:
        """Every row and column, read as a Polars DataFrame (media as bytes).

        >>> t.collect().rows()
        [('Alien', 1979, 8.5), ('Heat', 1995, 8.3), ('Up', 2009, 8.3)]
        """
        return self._query().collect()

    def head(self, n: int = 10) -> pl.DataFrame:
        """The first ``n`` rows as a Polars DataFrame.

        >>> t.head(1).rows()
        [('Alien', 1979, 8.5)]
        """
        return self._query().head(n)

    def blob_files(self, column: str, where: Expr | None = None) -> list[IO[bytes] | None]:
        """Lazy, seekable file objects on the values of a media column (None for nulls), in row
        order: nothing is read until you read, and seeks turn into ranged reads. Values stored in
        the table open as Lance blob files; ``store="reference"`` values open their source.

        >>> with clips.blob_files("video")[0] as f:
        ...     header = f.read(12)
        >>> header[4:8]  # an MP4 starts with its ftyp box
        b'ftyp'
        """
        state = self.table_state()
        ds, tdef = state.dataset, state.definition
        col = tdef.get(column, self._name)
        if not col.type.is_media:
            raise TypeMismatchError(f"table {self._name!r}: column {column!r} is {col.type}, "
                                    "not a media column")
        tdef.check_refs(where, self._name)
        uri_col = col.info_columns().get("fileurl")
        read = [uri_col] if uri_col else []
        frames = list(scan_frames(ds, tdef, self._name, where, read, row_ids=True))
        if not frames:
            return []
        ids = [i for f in frames for i in f.get_column(ROW_ID).to_list()]
        uris = [u for f in frames for u in f.get_column(uri_col).to_list()] if uri_col \
            else [None] * len(ids)
        stored = ds.take_blobs(column, ids=ids)
        fetcher = state.fetcher
        return [blob if blob is not None else (fetcher.open(uri) if uri else None)
                for blob, uri in zip(stored, uris, strict=True)]

    def show(self, n: int = 20) -> Rendered:
        """The first ``n`` rows as an HTML table with image thumbnails (for notebooks).

        >>> html = pics.show(1)._repr_html_()
        >>> "<table" in html and "data:image/" in html
        True
        """
        return self._query().show(n)

    def _repr_html_(self) -> str:
        return self._query().show(20)._repr_html_()  # a column may be called "show"

    def count(self) -> int:
        """The number of rows (``t.count_rows()`` too, which no column can take over).

        >>> t.count()
        3
        """
        return self.table_state().dataset.count_rows()

    def count_rows(self) -> int:
        """The number of rows; the spelling of :meth:`count` that a column named ``count``
        cannot take over.

        >>> t.count_rows()
        3
        """
        return self.table_state().dataset.count_rows()

    def to_polars(self) -> pl.DataFrame:
        """The whole table as a Polars DataFrame, like :meth:`collect`.

        >>> t.to_polars().shape
        (3, 3)
        """
        return self._query().collect()

    def scan(self) -> pl.LazyFrame:
        """A lazy Polars frame over the table, with projection and predicate pushdown.

        >>> t.scan().filter(pl.col("year") > 1990).select("title").collect()["title"].to_list()
        ['Heat', 'Up']
        """
        return self._query().scan()

    def to_parquet(self, path: str | os.PathLike[str], *, media: str = "bytes",
                   overwrite: bool = False, progress: bool = True) -> ExportResult:
        """Write every row to one Parquet file (a local path or ``s3://bucket/key``), batch by
        batch from the version current now: computed columns included, hidden bookkeeping
        columns left out, media as their bytes or (``media="uri"``) the URIs they were
        inserted from. An existing file is refused unless ``overwrite=True``. See
        :mod:`lakehouse.export.parquet`.

        >>> t.to_parquet("films.parquet", progress=False).rows_written
        3
        >>> pl.read_parquet("films.parquet").equals(t.collect())
        True
        """
        return parquet.write_parquet(self._query(), path, parquet.ParquetOptions(
            media=media, overwrite=overwrite, progress=progress))

    def to_pytorch(self, columns: list[str] | None = None, *,
                   transform: Callable[[dict[str, Any]], Any] | None = None,
                   shuffle: bool = False, seed: int | None = None, iterable: bool = False,
                   images: str = "uint8") -> Any:
        """A PyTorch dataset of the rows at the version current now: map-style, or
        ``iterable=True`` for an ``IterableDataset`` that shares its rows between
        ``DataLoader`` workers. Images become ``(3, H, W)`` uint8 tensors (``images="float"``:
        float32 in [0, 1]), arrays tensors, other values stay as they are; ``transform`` gets
        each row's dict. Safe with ``DataLoader(num_workers=...)``: each worker opens its own
        handle. Needs torch (``pip install 'lakehouse[models]'``). See
        :mod:`lakehouse.export.pytorch`.

        >>> ds = t.to_pytorch(columns=["title", "year"], shuffle=True, seed=0)
        >>> len(ds), sorted(row["title"] for row in ds)
        (3, ['Alien', 'Heat', 'Up'])
        """
        return pytorch.make_dataset(self._query(), columns=columns, transform=transform,
                                    shuffle=shuffle, seed=seed, iterable=iterable,
                                    images=images)

    # --- versions -------------------------------------------------------------------------------
    def history(self, limit: int | None = 20) -> pl.DataFrame:
        """One row per version, newest first, like ``git log``: version, time, operation, rows
        added / changed / removed, total rows, and ``snapshots``, the names of the snapshots of
        that version (a list, empty if none). The newest ``limit`` versions (``None``: all);
        the default call reads only those, however old the table. A handle on an old version
        (``t.at(n)``) lists version ``n`` and those before it.

        >>> _ = t.snapshot("v1")
        >>> t.history().select("version", "operation", "rows_added", "snapshots").rows()
        [(2, 'insert', 3, ['v1']), (1, 'create', 0, [])]
        >>> t.history(limit=1)["version"].to_list()
        [2]
        """
        return versions.history(self.table_state().dataset, limit)

    def version_count(self) -> int:
        """How many versions the table has, up to the version this handle reads (versions
        removed by retention not counted): one listing of the table's versions, where
        ``len(t.history(limit=None))`` reads every one (a request each on S3).

        >>> _ = t.delete(where=t.title == "Up")
        >>> t.version_count(), t.at(2).version_count()
        (3, 2)
        """
        return versions.count(self.table_state().dataset)

    def diff(self, a: int | str, b: int | str | None = None) -> Diff:
        """What changed from version (or snapshot) ``a`` to ``b`` (None: the version this
        handle reads): a :class:`~lakehouse.diff.Diff` with the ``inserted``, ``updated`` (old
        and new values of the changed columns) and ``deleted`` rows as Polars frames, keyed by
        ``_rowid``, and the ``schema`` changes (columns, computed expressions, indexes).

        >>> _ = t.update({"rating": 8.4}, where=t.title == "Up", progress=False)
        >>> d = t.diff(2)
        >>> d.inserted.height, d.updated.select("changed").item().to_list(), d.deleted.height
        (0, ['rating'], 0)

        With a branch (a handle, or ``"#dev"``) instead of versions: what the branch changed
        since it was made or last promoted, which a promote brings (see
        :func:`lakehouse.branches.changes`).

        >>> dev = t.branch("dev")
        >>> _ = dev.insert([{"title": "Ran", "year": 1985}], progress=False)
        >>> t.diff(dev).inserted["title"].to_list(), t.diff("#dev").summary()[:27]
        (['Ran'], 'films#dev: version 3 -> 4: ')
        """
        branch = _branch_in_diff(self, a, b)
        if branch is not None:
            return branches.changes(self._location, self._name.partition("#")[0],
                                    branches.main_uri(self._uri, self._branch), branch)
        return diff.between(self.table_state().dataset, self._name, a, b)

    def at(self, version: int) -> Table:
        """A read-only handle on an earlier version.

        >>> _ = t.delete(where=t.title == "Up")
        >>> t.count(), t.at(2).count()
        (2, 3)
        """
        ds = self.table_state().dataset
        first = branches.first_version(ds, self._branch)
        if self._branch is not None and version < first:
            raise VersionNotFoundError(
                f"branch {self._branch!r} of {self._name!r} has no version {version}: it starts "
                f"at version {first}; earlier ones are the table's main line")
        try:
            old = ds.checkout_version(version)
        except (ValueError, OSError) as exc:
            raise retention.missing_version(
                self._name, version, retention.VersionTimes.list(self._location, self._uri),
                self._location.maintenance) from exc
        return Table(self._name, self._uri, self._location, old, pinned=True,
                     branch=self._branch)

    def snapshot(self, name: str, *, replace: bool = False) -> int:
        """Name the version this handle reads (a Lance tag), so that ``db.get_table("t@name")``
        opens it later, whatever happens to the table since. Returns that version.

        >>> t.snapshot("before-cleanup")
        2
        >>> _ = t.delete()
        >>> db.get_table("films@before-cleanup").count()
        3
        """
        # snapshots name main-line versions; a branch's version is read as "films#dev:3"
        branches.check_no_branch(self._branch, self._name, "a snapshot")
        if not isinstance(name, str) or not name \
                or not all(c.isalnum() or c in "-_." for c in name):
            raise InvalidNameError(f"table {self._name!r}: {name!r} is not a valid snapshot name "
                                   "(letters, digits, '-', '_' and '.')")
        ds = self.table_state().dataset
        version, exists = ds.version, name in versions.snapshots(ds)
        if exists and not replace:
            raise SnapshotExistsError(f"table {self._name!r} already has a snapshot {name!r}; "
                                      "pass replace=True to move it")
        protocol.write(lambda: self._context(tags_only=True),
                       lambda ctx: protocol.tag(ctx, name, version, move=exists),
                       what=f"snapshot {name!r}")
        return version

    def snapshots(self) -> dict[str, int]:
        """Snapshot name -> version, sorted by name.

        >>> _ = t.snapshot("v1")
        >>> t.snapshots()
        {'v1': 2}
        """
        return versions.snapshots(self.table_state().dataset)

    def revert(self, to: int | None = None) -> int:
        """Make the table's content that of an earlier version (default: the previous one), as a
        new version; history is kept. Returns the new version. If another writer changed the
        table since this handle last read it, the revert is refused (ConcurrentWriteError):
        reverting would silently drop their change.

        >>> _ = t.delete()
        >>> t.revert()  # version 4 has the content of version 2
        4
        >>> t.count()
        3
        """
        state = self.table_state()
        current = state.dataset.version
        first = branches.first_version(state.dataset, self._branch)  # a branch starts later
        to = current - 1 if to is None else to
        if to < first or to >= current + 1:
            raise VersionNotFoundError(
                f"table {self._name!r} cannot revert to version {to} (versions "
                f"{first}..{current})")
        self._refuse_if_view("a revert")
        before = self.table_state().dataset
        version = self._write(lambda ctx: protocol.restore(ctx, to, seen=current).version,
                              what=f"the revert to version {to}", replayable=False)
        if views.views_of(before):
            self._write(lambda ctx: views.keep_registrations(ctx, before),
                        what="the list of views after the revert")
            self._update_views()
        return version

    # --- branches -------------------------------------------------------------------------------
    def branch(self, name: str, from_: int | str | None = None) -> Table:
        """Make a writable branch of the table and return a handle on it: it starts as the
        version this handle reads (or main-line version ``from_``, or the snapshot named
        ``from_``), and its writes never touch the table's main line. Open it later with
        ``db.get_table("films#dev")``; see :mod:`lakehouse.branches`.

        >>> dev = t.branch("dev")
        >>> _ = dev.insert([{"title": "Ran", "year": 1985}], progress=False)
        >>> dev.table_name, dev.count(), t.count()
        ('films#dev', 4, 3)
        """
        branches.check_no_branch(self._branch, self._name, "branch()")
        state = self.table_state()
        if state.definition.view is not None:
            raise UnsupportedError(f"{self._name!r} is a view: its rows follow its base, so it "
                                   "has no branches; branch the base table instead")
        version = state.version if from_ is None else from_
        if isinstance(version, str):
            version = versions.snapshots(state.dataset).get(version, version)
        if not isinstance(version, int):
            raise VersionNotFoundError(f"table {self._name!r} has no snapshot {from_!r} to "
                                       "branch from")
        branches.validate_branch_name(name, self._name)
        ds = protocol.write(lambda: self._context(tags_only=True),
                            lambda ctx: branches.create(ctx, name, version),
                            what=f"branch {name!r}", replayable=False)
        return Table(f"{self._name}#{name}", ds.uri, self._location, ds, branch=name)

    def branches(self) -> pl.DataFrame:
        """The table's branches, one row each by name: ``branch``, ``parent_version`` (the
        version it was made from), ``latest_version`` and ``created``.

        >>> _ = t.branch("dev")
        >>> t.branches().select("branch", "parent_version", "latest_version").rows()
        [('dev', 2, 2)]
        """
        return branches.listing(self._location, branches.main_uri(self._uri, self._branch))

    def promote(self, branch: str | None = None, *, progress: bool = True) -> int:
        """Make a branch's latest content the table's next version (a fast-forward) and return
        the table's version after it: ``t.promote("dev")``, or ``dev.promote()`` on a branch
        handle. Refused
        with :class:`~lakehouse.BranchDivergedError`, changing nothing, when the table has a
        data commit since the branch was made or last promoted (index builds, compaction and
        metadata do not count). The table's scalar indexes then follow the branch's (built
        again) and its vector indexes are brought up to date, as after a write. The branch
        stays: delete it when done, or keep writing on it and promote it again.

        >>> dev = t.branch("dev")
        >>> _ = dev.insert([{"title": "Ran", "year": 1985}], progress=False)
        >>> t.promote("dev"), t.count()
        (3, 4)
        """
        name = branch if branch is not None else self._branch
        if name is None:
            raise InvalidOptionError(f"table {self._name!r}: name the branch to promote, "
                                     "t.promote('dev')")
        main = self if self._branch is None else self._main()
        if main.table_definition.view is not None:
            raise UnsupportedError(f"{main._name!r} is a view and has no branches")
        version = main._write(lambda ctx: branches.promote(ctx, main._location, name).version,
                              what=f"the promote of branch {name!r}", replayable=False)
        branch_ds = branches.open_branch(main._location, main._name, main._uri, name)
        version = main._write(lambda ctx: branches.sync_indexes(ctx, branch_ds),
                              what=f"the indexes of branch {name!r}")
        return main._update_indexes_and_views(WriteResult(0, 0, version), progress).version

    def delete_branch(self, name: str) -> None:
        """Delete branch ``name`` of the table (never the main line); its versions go with it.

        >>> _ = t.branch("scratch")
        >>> t.delete_branch("scratch")
        >>> t.branches().height
        0
        """
        main = self if self._branch is None else self._main()
        protocol.write(lambda: main._context(tags_only=True),
                       lambda ctx: branches.remove(ctx, name),
                       what=f"the delete of branch {name!r}", replayable=False)

    def _main(self) -> Table:
        """A handle on the main line of the table this branch handle belongs to."""
        uri = branches.main_uri(self._uri, self._branch)
        try:
            ds = lance.dataset(uri, storage_options=self._location.storage_options or None)
        except (ValueError, OSError) as exc:
            raise storage_error(self._location, f"open table {self._name!r}", exc) from exc
        return Table(self._name.partition("#")[0], uri, self._location, ds)

    def jobs(self) -> pl.DataFrame:
        """The checkpointed backfills of this table (new computed columns, embedding indexes)
        not yet committed: running, or abandoned by a process that stopped (crashed, killed,
        interrupted). One row each: ``job`` id, ``kind``, ``columns``, ``state`` (``running``
        while its progress moved in the last minute, else ``abandoned``), ``rows_done``,
        ``rows_total``, ``errors``, ``started``, ``updated``, ``rows_per_s`` and ``eta_s``.
        Another process reads the progress of a running job here. Calling the same
        ``add_computed_column`` (or ``add_embedding_index``) again resumes an abandoned job;
        :meth:`discard_job` throws one away.

        >>> t.jobs().height  # nothing left unfinished
        0
        """
        rows = []
        for job in checkpoints.list_jobs(self._uri, self._location.storage_options):
            elapsed = max(float(job["updated"]) - float(job["started"]), 1e-9)
            rate = job["rows_done"] / elapsed if job["rows_done"] else None
            left = job["rows_total"] - job["rows_done"]
            rows.append({"job": job["id"], "kind": job["kind"], "columns": job["columns"],
                         "state": job["state"], "rows_done": job["rows_done"],
                         "rows_total": job["rows_total"], "errors": job["errors"],
                         "started": job["started"], "updated": job["updated"],
                         "rows_per_s": rate, "eta_s": left / rate if rate else None})
        schema = {"job": pl.String, "kind": pl.String, "columns": pl.List(pl.String),
                  "state": pl.String, "rows_done": pl.Int64, "rows_total": pl.Int64,
                  "errors": pl.Int64, "started": pl.Float64, "updated": pl.Float64,
                  "rows_per_s": pl.Float64, "eta_s": pl.Float64}
        frame = pl.DataFrame(rows, schema=schema)
        return frame.with_columns(pl.from_epoch(pl.col("started"), time_unit="s"),
                                  pl.from_epoch(pl.col("updated"), time_unit="s"))

    def discard_job(self, job: str) -> bool:
        """Throw away the checkpoint of an unfinished backfill (see :meth:`jobs`); the files it
        wrote are never part of the table and go with Lance's cleanup. Returns whether there
        was such a job.

        >>> t.discard_job("0123456789abcdef")
        False
        """
        return checkpoints.discard(self._uri, self._location.storage_options, job)

    def gc(self, *, keep_versions: int | None = None, keep_for: datetime.timedelta | None = None,
           dry_run: bool = False) -> GcReport:
        """Remove old versions the retention rules no longer keep, with the files only they
        reference, and files left by writes that crashed before their commit; ``dry_run=True``
        removes nothing and reports the same. The rules come from ``lh.connect(maintenance=
        lh.MaintenancePolicy(...))`` (keep the newest ``keep_versions`` and every version younger
        than ``keep_for``; override either here). Whatever they say, a snapshot's version, a
        branch's base, the versions views and running backfills need and the versions replaced
        within the policy's ``reader_window`` stay: the report says which and why (see
        :mod:`lakehouse.maintenance.retention`). Opening a removed version then raises
        ``VersionNotFoundError`` naming the policy.

        >>> report = t.gc(keep_versions=1, keep_for=datetime.timedelta(0), dry_run=True)
        >>> report.removed_versions, report.kept[1]  # replaced a moment ago: readers may use it
        ((), ('replaced less than 10 minutes ago (reader_window)',))
        """
        branches.check_no_branch(self._branch, self._name, "gc()")
        if self._pinned:
            raise ReadOnlyError(f"table {self._name!r} is opened at a version; run gc() on "
                                f"db.get_table({self._name!r})")
        return retention.collect_garbage(self._name, self._uri, self._location,
                                         keep_versions=keep_versions, keep_for=keep_for,
                                         dry_run=dry_run)

    def optimize(self, *, progress: bool = True,
                 engine: str | RayEngine | None = None) -> OptimizeReport:
        """Compact the table's fragments (small ones, and ones with many deleted rows), extend
        its indexes over the rows they do not cover yet and build the zone maps that are due,
        now, whatever ``lh.connect(maintenance=...)`` says: the upkeep writes do by themselves
        (see :mod:`lakehouse.maintenance.compaction`), all at once. Returns what changed.
        ``engine`` (``"local"``, ``"ray"`` or a :class:`~lakehouse.RayEngine`) compacts there
        instead of on the connection's engine.

        >>> for year in (2001, 2002):
        ...     _ = t.insert([{"title": "New", "year": year}], progress=False)
        >>> report = t.optimize(progress=False)
        >>> report.fragments_before, report.fragments_after, report.rows
        (3, 1, 5)
        """
        other = self._on(engine)
        if other is not None:
            return other.optimize(progress=progress)
        branches.check_no_branch(self._branch, self._name, "optimize()")
        if self._pinned:
            raise ReadOnlyError(f"table {self._name!r} is opened at a version; run optimize() "
                                f"on db.get_table({self._name!r})")
        return compaction.optimize(self._location, self._name, progress=progress)

    def view_status(self) -> ViewStatus | None:
        """For a view, where it stands against its base (a :class:`~lakehouse.views.ViewStatus`:
        the base, the base version the rows of this view version reflect, the base's latest
        version and the lag between them); None for a table. A handle at an earlier view
        version (``v.at(3)``) tells the base version that version reflects.

        >>> v = db.create_view("old", t.where(t.year < 1990))
        >>> _ = t.insert([{"title": "Ran", "year": 1985}], progress=False)
        >>> s = v.view_status()
        >>> s.base, s.base_version, s.lag, v.count()  # films 3 lists the view, 4 has Ran
        ('films', 4, 0, 2)
        >>> v.at(2).view_status().base_version  # its first rows reflect films version 2
        2
        """
        return self._view_status(self.table_state())

    def _view_status(self, state: TableState) -> ViewStatus | None:
        vdef = state.definition.view
        return None if vdef is None else views.status(self._location, state.dataset, vdef)


def _branch_in_diff(table: Table, a: Any, b: Any) -> str | None:
    """The branch ``t.diff(a, b)`` compares (``a`` a branch handle of the same table, or
    ``"#dev"``), or None when ``a`` and ``b`` name versions or snapshots."""
    if isinstance(a, Table):
        here = branches.main_uri(table.table_uri, table.table_branch)
        if a.table_branch is None or branches.main_uri(a.table_uri, a.table_branch) != here:
            raise InvalidOptionError(f"table {table.table_name!r}: diff takes versions, "
                                     "snapshots or a branch of this table (t.diff(dev) or "
                                     "t.diff('#dev'))")
        name: str | None = a.table_branch
    else:
        name = branches.referenced(a, table.table_name)
    if name is not None and b is not None:
        raise InvalidOptionError(f"table {table.table_name!r}: a branch is compared with the "
                                 "version it was made from; pass it alone, t.diff('#dev')")
    return name


def _describe(tdef: TableDef) -> pl.DataFrame:
    """One row per column of ``tdef``: name, type, computed expression and policy. A view's
    columns that come from its base say where from: ``from films`` for a carried column,
    the iterator for the columns it makes."""
    origins = _view_origins(tdef)
    rows = [{
        "column": c.name,
        "type": str(c.type),
        "computed": repr(tdef.expr(c)) if c.is_computed else origins.get(c.col_id),
        "on_error": c.on_error if c.is_computed else None,
    } for c in tdef.columns]
    schema = {"column": pl.String, "type": pl.String, "computed": pl.String,
              "on_error": pl.String}
    return pl.DataFrame(rows, schema=schema)


def _view_origins(tdef: TableDef) -> dict[int, str]:
    vdef = tdef.view
    if vdef is None:
        return {}
    carried = {v for v, _ in vdef.carried}
    made = "" if vdef.iterator is None else _iterator_text(vdef.iterator)
    return {c.col_id: f"from {vdef.base}" if c.col_id in carried else made
            for c in tdef.columns if not c.is_computed}


def _iterator_text(stored: dict[str, Any]) -> str:
    """A stored iterator as it was written: ``frame_iterator(video, fps=1.0)``."""
    options = [f"{k}={v!r}" for k, v in stored.get("args", {}).items() if v is not None]
    return f"{stored['name']}({', '.join([stored['input']['name'], *options])})"


def _value_expr(value: Any, column: ColumnDef, table_name: str) -> Expr:
    if isinstance(value, Expr):
        vt = value.type
        ok = vt.same_kind(column.type) or (vt.kind == "int" and column.type.kind == "float")
        if not ok:
            raise TypeMismatchError(
                f"table {table_name!r}: cannot set column {column.name!r} ({column.type}) to "
                f"{value!r} ({vt})"
            )
        return value
    if value is None:
        if not column.type.nullable:
            raise TypeMismatchError(f"table {table_name!r}: column {column.name!r} may not be null")
        return lit(None)
    try:
        coerced = column.type.coerce(value)
    except TypeError as exc:
        raise TypeMismatchError(f"table {table_name!r}: column {column.name!r}: {exc}") \
            from None
    if column.type.kind in ("json", "array"):
        return Literal(coerced, column.type)
    return lit(coerced)


def _media_values(column: ColumnDef, value: Any, ctx: WriteContext,
                  table_name: str) -> dict[str, pl.Expr]:
    """The new bytes, source URI and (cleared) errors of a media column set by update()."""
    options = MediaOptions(fetcher=ctx.fetcher, ignorable=False)
    loaded = load_column([value], column.type, options,  # type: ignore[arg-type]
                         table_name=table_name, column=column.name, row_offset=0)
    info = column.info_columns()
    return {
        column.name: pl.lit(loaded.data[0].as_py(), dtype=pl.Binary),
        info["fileurl"]: pl.lit(loaded.uris[0].as_py(), dtype=pl.String),
        info["errortype"]: pl.lit(None, dtype=pl.String),
        info["errormsg"]: pl.lit(None, dtype=pl.String),
    }


def _index_names(ds: lance.LanceDataset) -> set[str]:
    return {index.name for index in ds.describe_indices()}


def _scalar_index_names(ctx: WriteContext) -> set[str]:
    """The Lance indexes ``add_index`` made (``<column>_<kind>``): all but the vector indexes
    of embedding indexes."""
    return _index_names(ctx.dataset) - {i.lance_index for i in ctx.definition.indexes()}


def is_replayable(data: Any) -> bool:
    """Whether an insert's input can be read again, so that the insert can be redone."""
    return isinstance(data, (list, tuple, dict, pa.Table, pa.RecordBatch, pl.DataFrame)) \
        or is_pandas_frame(data)


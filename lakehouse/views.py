"""Views: tables whose rows follow a base table (or view), kept current by every base write.

A view is its own versioned Lance dataset next to the tables. Its definition (the base, the
filter, the iterator, the base columns it carries) is stored on its hidden base-row column
(:class:`~lakehouse.metadata.ViewDef`); each of its rows records the stable row id of the base row
it came from. The base lists its views in its Lance configuration (one key per view), so that a
base write knows, from the manifest it already read, which views to bring up to date.

Upkeep is incremental: :func:`catch_up` compares the base version the view reflects (recorded in
the view's commits) with the base's latest version, fragment by fragment (:func:`change_set`):
only fragments that appeared, disappeared or gained deletions are read, and only the base rows
that are new in them are expanded; the view rows of base rows that left are deleted, in the same
exclusive commit (see :func:`lakehouse.exec.protocol.rewrite`), which records the new base
version. An update of a base row gives it a new row id: its view rows are replaced. If a process
dies between a base commit and the view's, the next write of the base, or the next open of the
view, catches the view up from the same comparison.

With a Ray engine (``lh.connect(..., engine="ray")``, or ``create_view(..., engine="ray")``),
the expansion is split by base fragment (``fragments_per_task`` per task): each Ray task
(:func:`expand_fragments`) opens the view and the base at the versions the driver read,
rebuilds the iterator and the view's computed columns from their stored definitions under the
driver's trust, and writes its view rows as new fragments; when those columns run a model (an
embedding index's vectors), the tasks run in model actors that load it once and keep it. The
driver records each base fragment's in the upkeep's checkpoint as its task returns (a task Ray
runs again after its worker died redoes only its fragments; a run that stopped resumes from
the checkpoint) and makes the one commit, with the fragments in base order: the view's rows,
positions, values, errors and history are those of the upkeep in this process.
"""

from __future__ import annotations

import dataclasses
import importlib
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from typing import Any

import lance
import pyarrow as pa
from lance.fragment import FragmentMetadata

from lakehouse import embedding_index as indexes
from lakehouse import types as T
from lakehouse.errors import (
    ComputeError,
    Error,
    InvalidOptionError,
    TableNotFoundError,
    TypeMismatchError,
    UDFNotFoundError,
)
from lakehouse.exec import protocol, ray_engine, writes
from lakehouse.exec.checkpoints import Checkpoint
from lakehouse.exec.permissions import Permissions
from lakehouse.exec.protocol import Redo, WriteContext
from lakehouse.exec.scan import scan_frames
from lakehouse.exec.writes import WriteResult
from lakehouse.exprs import serialize
from lakehouse.exprs.nodes import Call, Expr
from lakehouse.iterators import IteratorCall
from lakehouse.media.policy import FetchPolicy
from lakehouse.metadata import (
    BASE_ROW,
    POSITION,
    ROW_ADDRESS,
    ROW_ID,
    ColumnDef,
    TableDef,
    ViewDef,
)
from lakehouse.names import TABLE_SUFFIX
from lakehouse.progress import report
from lakehouse.storage import Location

REGISTRY_PREFIX = "lakehouse.view."  # a base's config key for each of its views
BASE_VERSION_KEY = "lakehouse.base_version"  # recorded by each upkeep commit of a view
_DELETE_BATCH = 5_000  # base row ids looked up in the view per query

#: Base rows expanded into view rows in this process (for tests and benchmarks: upkeep reads
#: only the base rows that changed).
stats: Counter[str] = Counter()


@dataclasses.dataclass(frozen=True)
class ViewStatus:
    """Where a view stands: its base, the base version the view's rows reflect (at the view
    version read), the base's latest version, and the lag (base versions not yet reflected).

    >>> v = db.create_view("recent", t.where(t.year > 1990))
    >>> s = lh.Table.view_status(v)
    >>> s.base, s.base_version == s.base_latest, s.lag
    ('films', True, 0)
    """

    base: str
    base_version: int | None
    base_latest: int

    @property
    def lag(self) -> int:
        """Base versions the view does not reflect yet (0: up to date).

        >>> v = db.create_view("recent", t.where(t.year > 1990))
        >>> lh.Table.view_status(v).lag
        0
        """
        return self.base_latest - (self.base_version or 0)


@dataclasses.dataclass(frozen=True)
class ChangeSet:
    """The base rows that appeared (``inserted``; None: every row) and left (``deleted``)
    between two base versions, and the fragments that hold the new ones (None: all)."""

    inserted: set[int] | None
    deleted: set[int]
    fragments: list[int] | None


def table_uri(location: Location, name: str) -> str:
    return location.join(name + TABLE_SUFFIX)


def open_context(location: Location, name: str) -> WriteContext:
    """A write context on table or view ``name`` at its latest version."""
    uri = table_uri(location, name)
    try:
        ds = lance.dataset(uri, storage_options=location.storage_options or None)
    except (ValueError, OSError) as exc:
        raise TableNotFoundError(f"table {name!r} does not exist in {location.uri}") from exc
    return WriteContext(name, uri, location.storage_options, ds,
                        TableDef.from_schema(ds.schema, name), location.fetch,
                        engine=location.engine)


def define(view: str, base_name: str, base: TableDef, *, pinned: int | None,
           where: Expr | None, iterator: IteratorCall | None, columns: list[str] | None,
           on_error: str) -> TableDef:
    """The definition of a new view of ``base``: its columns are the base columns it carries
    (``columns``; by default every base column, or for a view with an iterator every column
    but media columns and the iterator's input, which would be copied into each of its rows),
    then ``pos`` and the iterator's own columns. Checks every reference against the base."""
    if where is not None:
        base.check_refs(where, base_name)
        if where.type.kind != "bool":
            raise TypeMismatchError(f"view {view!r}: where needs a Bool expression, got {where!r}")
    if iterator is not None:
        if not isinstance(iterator, IteratorCall):
            raise TypeMismatchError(
                f"view {view!r}: iterator must be an iterator such as "
                f"lh.iterators.frame_iterator(t.video, fps=1), got {iterator!r}")
        base.check_refs(iterator.input, base_name)
        iterator.check(base_name)
    if columns is None:
        carried = [c for c in base.columns if iterator is None or not (
            c.type.is_media or c.col_id == iterator.input.col_id)]
    elif isinstance(columns, (list, tuple)) and all(isinstance(c, str) for c in columns):
        carried = [base.get(c, base_name) for c in columns]
    else:
        raise TypeMismatchError(f"view {view!r}: columns must be a list of column names of "
                                f"{base_name!r}, got {columns!r}")
    out = [ColumnDef(c.name, i, c.type) for i, c in enumerate(carried)]
    if iterator is not None:
        made = {POSITION: T.Int, **iterator.output_columns()}
        out += [ColumnDef(n, len(out) + i, t) for i, (n, t) in enumerate(made.items())]
    names = [c.name for c in out]
    clashes = sorted({n for n in names if names.count(n) > 1})
    if clashes:
        raise InvalidOptionError(
            f"view {view!r}: the iterator's columns {clashes} have the names of base columns "
            f"it carries; pass columns=[...] to carry the base columns you need")
    vdef = ViewDef(base_name, pinned, None if where is None else serialize.to_json(where),
                   None if iterator is None else iterator.to_json(),
                   tuple((i, c.col_id) for i, c in enumerate(carried)), on_error)
    return TableDef(tuple(out), (), vdef)


# --- the base's list of views ---------------------------------------------------------------------
def views_of(ds: lance.LanceDataset) -> list[str]:
    """The views registered on a table, sorted (read from the manifest already loaded)."""
    return sorted(k[len(REGISTRY_PREFIX):] for k in ds.config() if k.startswith(REGISTRY_PREFIX))


def register(location: Location, base: str, view: str, *, add: bool = True) -> None:
    """Add (or remove) ``view`` in the list of views of ``base``. One key per view: two views
    registered at once never overwrite each other."""
    key = REGISTRY_PREFIX + view
    protocol.write(lambda: open_context(location, base),
                   lambda ctx: protocol.set_config(ctx, {key: "1"} if add else {},
                                                   [] if add else [key]),
                   what=f"the list of views of {base!r}")


def readers_of(location: Location, ds: lance.LanceDataset, col_id: int) -> list[str]:
    """The views of table version ``ds`` that read its column ``col_id`` (carry it, filter on
    it or iterate over it): dropping that column would leave them unable to follow."""
    found = []
    for view in views_of(ds):
        if _exists(location, view):
            vdef = open_context(location, view).definition.view
            if vdef is not None and col_id in base_columns_read(vdef):
                found.append(view)
    return found


def base_columns_read(vdef: ViewDef) -> set[int]:
    """The ids of the base columns a view reads."""
    read = {b for _, b in vdef.carried}
    if vdef.iterator is not None:
        read.add(int(vdef.iterator["input"]["id"]))
    if vdef.where is not None:
        read |= _column_ids(vdef.where)
    return read


def _column_ids(data: Any) -> set[int]:
    if isinstance(data, dict):
        found = {int(data["id"])} if data.get("op") == "column" else set()
        for value in data.values():
            found |= _column_ids(value)
        return found
    if isinstance(data, list):
        return set().union(*map(_column_ids, data)) if data else set()
    return set()


def unfinished(location: Location, name: str, schema: pa.Schema) -> bool:
    """Whether ``name`` is a view with this definition that was never filled: a create_view
    of it stopped (killed, crashed) before its first commit of rows, and can resume."""
    try:
        ds = open_context(location, name).dataset
    except TableNotFoundError:
        return False
    return ds.schema.equals(schema, check_metadata=True) and recorded_base_version(ds) is None


def keep_registrations(ctx: WriteContext, before: lance.LanceDataset) -> None:
    """After a revert: the restored manifest carries the list of views of its time; put back
    the list that was current, so that views made since still follow the table."""
    current = {k: v for k, v in before.config().items() if k.startswith(REGISTRY_PREFIX)}
    restored = views_of(ctx.dataset)
    stale = [REGISTRY_PREFIX + v for v in restored if REGISTRY_PREFIX + v not in current]
    if stale or set(current) != {REGISTRY_PREFIX + v for v in restored}:
        protocol.set_config(ctx, current, stale)


# --- what the view reflects ---------------------------------------------------------------------
def recorded_base_version(ds: lance.LanceDataset) -> int | None:
    """The base version a view version reflects: recorded by the last upkeep commit at or before
    it (None: never brought up to date)."""
    version = ds.version
    while version >= 1:
        try:
            tx = ds.read_transaction(version)
        except (ValueError, OSError):
            return None  # the versions before were cleaned up: nothing is known
        if tx is not None and BASE_VERSION_KEY in tx.transaction_properties:
            return int(tx.transaction_properties[BASE_VERSION_KEY])
        version -= 1
    return None


def status(location: Location, ds: lance.LanceDataset, vdef: ViewDef) -> ViewStatus:
    """Where the view version ``ds`` stands against its base."""
    latest = vdef.pinned if vdef.pinned is not None else open_context(location, vdef.base).version
    return ViewStatus(vdef.base, recorded_base_version(ds), latest)


def change_set(base: lance.LanceDataset, since: int | None) -> ChangeSet:
    """The rows that appeared and left between base version ``since`` and ``base``. Only the
    fragments whose rows changed are read: new or removed fragments, and fragments whose
    deletions changed (column additions leave rows alone). Compaction moves rows without
    changing their stable ids, so moved rows cancel out."""
    if since is None:
        return ChangeSet(None, set(), None)
    try:
        old = base.checkout_version(since)
    except (ValueError, OSError):  # cleaned up: compare everything
        return ChangeSet(None, set(), None)
    before = {f.fragment_id: _rows_signature(f) for f in old.get_fragments()}
    after = {f.fragment_id: _rows_signature(f) for f in base.get_fragments()}
    gone = [i for i, sig in before.items() if after.get(i) != sig]
    new = [i for i, sig in after.items() if before.get(i) != sig]
    old_ids, new_ids = _row_ids(old, gone), _row_ids(base, new)
    return ChangeSet(new_ids - old_ids, old_ids - new_ids, new)


def _rows_signature(fragment: lance.LanceFragment) -> tuple[Any, ...]:
    md = fragment.metadata
    deletions = md.deletion_file
    return (md.physical_rows, None if deletions is None else
            (deletions.id, deletions.read_version, deletions.num_deleted_rows))


def _row_ids(ds: lance.LanceDataset, fragment_ids: list[int]) -> set[int]:
    if not fragment_ids:
        return set()
    scanner = ds.scanner(columns=[], with_row_id=True,
                         fragments=[ds.get_fragment(i) for i in fragment_ids])
    return set(scanner.to_table().column(ROW_ID).to_pylist())


# --- upkeep -------------------------------------------------------------------------------------
def catch_up(location: Location, name: str, *, progress: bool = False) -> WriteResult | None:
    """Bring view ``name`` up to its base's latest version in one commit, then the views of the
    view; returns what the view's commit did (None when it was already current)."""
    result = protocol.write(lambda: open_context(location, name),
                            lambda ctx: _catch_up(location, ctx, progress=progress),
                            what=f"the upkeep of view {name!r}")
    if result is None:
        return None
    tdef = open_context(location, name).definition
    if result.rows_written and tdef.indexes():
        protocol.write(lambda: open_context(location, name),
                       lambda ctx: indexes.upkeep_all(ctx, progress=progress),
                       what="the vector index upkeep")
    update_dependents(location, open_context(location, name).dataset, progress=progress)
    return result


def update_dependents(location: Location, ds: lance.LanceDataset, *, progress: bool) -> None:
    """Bring every view of the table version ``ds`` up to date (after a write of the table)."""
    for view in views_of(ds):
        if _exists(location, view):
            catch_up(location, view, progress=progress)


def _exists(location: Location, name: str) -> bool:
    try:
        lance.dataset(table_uri(location, name), storage_options=location.storage_options or None)
    except (ValueError, OSError):
        return False
    return True


def _catch_up(location: Location, ctx: WriteContext, *, progress: bool) -> WriteResult | None:
    vdef = ctx.definition.view
    if vdef is None:
        return None
    seen = recorded_base_version(ctx.dataset)
    try:
        base = open_context(location, vdef.base).dataset
    except TableNotFoundError:
        return None  # the base is gone (dropped outside lakehouse): the view keeps its rows
    if vdef.pinned is not None:
        base = base.checkout_version(vdef.pinned)
    if seen is not None and seen >= base.version:
        return None
    changes = change_set(base, seen)
    if changes.inserted is None and seen is not None:  # compared everything: start over
        changes = ChangeSet(None, _base_rows_in(ctx.dataset), None)
    replacing = _view_rows_of(ctx.dataset, changes.deleted)
    expansion = Expansion(ctx.definition, TableDef.from_schema(base.schema, vdef.base), ctx)

    def guard(latest: lance.LanceDataset) -> None:
        if recorded_base_version(latest) != seen:
            raise Redo("another process brought the view up to date meanwhile")

    ctx = dataclasses.replace(ctx, properties={BASE_VERSION_KEY: str(base.version)})
    # a long upkeep (a new view, or a change of many base fragments) is checkpointed per base
    # fragment, so that after a crash the next upkeep continues where this one stopped
    long = changes.fragments is None or len(changes.fragments) > 1
    saved = Checkpoint.open(ctx.uri, ctx.storage_options, list(ctx.dataset.schema),
                            kind="view upkeep", version=ctx.version,
                            total_rows=0, basis=f"from base version {seen}") if long else None
    if ctx.engine is not None and (keys := group_keys(base, changes)):  # rows to expand
        job = ExpansionJob.of(ctx, location, base, changes, expansion)
        return _upkeep_on_ray(ctx, job, keys, replacing, guard=guard, progress=progress,
                              checkpoint=saved)
    result = writes.replace_rows(ctx, expansion.groups(base, changes), replacing, guard=guard,
                                 progress=progress, on_error=vdef.on_error,
                                 trusted=expansion.trusted, checkpoint=saved)
    return dataclasses.replace(result, rows_with_errors=result.rows_with_errors
                               + expansion.failed)


# --- upkeep on Ray ------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class ExpansionJob:
    """What every Ray task of one view upkeep needs, sent to the cluster once: the view and
    its base, each at the version read (the tasks read their stored definitions there), the
    base rows that are new (None: all), the fetch policy, what the driver allows to be
    imported and loaded (:class:`~lakehouse.exec.permissions.Permissions`) and the module of
    the view's user iterator, which the driver has registered (imported or trusted): a worker
    imports it, so that it resolves the iterator as the driver did
    (:mod:`lakehouse.iterators.registry`), and nothing else of that module is trusted."""

    view: str
    view_uri: str
    view_version: int
    base_uri: str
    base_version: int
    storage_options: dict[str, str] = dataclasses.field(repr=False)
    inserted: frozenset[int] | None = dataclasses.field(repr=False)
    fetch: FetchPolicy
    permissions: Permissions
    iterator_module: str | None
    modules: tuple[str, ...]  # the modules of the iterator and UDFs it runs, for messages

    @staticmethod
    def of(ctx: WriteContext, location: Location, base: lance.LanceDataset, changes: ChangeSet,
           expansion: Expansion) -> ExpansionJob:
        called = {node.fn for column in ctx.definition.computed_columns()
                  for node in ctx.definition.expr(column).walk() if isinstance(node, Call)}
        user_iterator = None
        if expansion.iterator is not None:
            called.add(expansion.iterator.name)
            if ":" in expansion.iterator.name:
                user_iterator = expansion.iterator.name.partition(":")[0]
            if user_iterator == "__main__":
                raise UDFNotFoundError(
                    f"view {ctx.table_name!r}: iterator {expansion.iterator.name!r} is defined "
                    "in __main__, which Ray workers cannot import: define it in a module of "
                    "its own (shipped with lh.RayEngine(runtime_env={'py_modules': [...]}) "
                    "where the workers lack it), or pass engine='local'")
        return ExpansionJob(ctx.table_name, ctx.uri, ctx.version,
                            table_uri(location, expansion.vdef.base), base.version,
                            dict(ctx.storage_options), None if changes.inserted is None
                            else frozenset(changes.inserted), ctx.fetch, Permissions.held(),
                            user_iterator,
                            tuple(sorted({n.partition(":")[0] for n in called if ":" in n})))


#: What a task returns for each base fragment it expands (its group key, the view fragments
#: written, rows, rows with an error), and the base rows it skipped (``on_error="ignore"``).
ExpandedGroups = tuple[list[tuple[str, list[FragmentMetadata], int, int]], int]


def _upkeep_on_ray(ctx: WriteContext, job: ExpansionJob, keys: list[tuple[str, int]],
                   replacing: dict[int, list[int]], *,
                   guard: Callable[[lance.LanceDataset], None], progress: bool,
                   checkpoint: Checkpoint | None) -> WriteResult:
    """A view's upkeep on the context's Ray engine: one task per group of
    ``fragments_per_task`` base fragments (:func:`expand_fragments`), each writing the view
    rows of its fragments as new fragments; when the view's computed columns run a model (an
    embedding index's vectors), the groups go to model actors that load it once and keep it
    (:func:`~lakehouse.exec.ray_engine.run_groups`), as a backfill's and an import's do. Each
    fragment's rows are recorded in the checkpoint as its task returns (a group a previous
    run finished is not sent again), and the driver makes the one commit of
    :func:`~lakehouse.exec.writes.replace_rows`, with its fragments in base fragment order,
    as this process would."""
    engine = ctx.engine
    assert engine is not None
    done = checkpoint.done_groups() if checkpoint is not None else {}
    written = {key: done[key] for key, _ in keys if key in done}
    todo = [k for k in keys if k[0] not in done]
    size = engine.fragments_per_task
    rows = errors = 0
    with report(f"update view {ctx.table_name}", enabled=progress) as reporter:
        try:
            for _, (groups, skipped) in ray_engine.run_groups(
                    engine, ctx.table_name, expand_fragments, job,
                    [todo[i:i + size] for i in range(0, len(todo), size)],
                    what=f"the upkeep of view {ctx.table_name!r}",
                    models=ray_engine.runs_models(ctx.definition)):
                for key, fragments, n, failed in groups:
                    if checkpoint is not None:
                        checkpoint.record_group(key, n, fragments)
                    written[key] = fragments
                    rows, errors = rows + n, errors + failed
                    reporter.advance(n, errors=errors)
                errors += skipped
        except BaseException:
            if checkpoint is not None:
                checkpoint.keep()  # what finished is there for the next run
            raise
        ds = protocol.rewrite(ctx, None, replacing, failures=protocol.Failures(),
                              kind="view upkeep", guard=guard,
                              written=[f for key, _ in keys for f in written.get(key, [])])
    if checkpoint is not None:
        checkpoint.finish()
    return WriteResult(rows, errors, ds.version)


def expand_fragments(job: ExpansionJob, fragments: list[tuple[str, int]]) -> ExpandedGroups:
    """A Ray task: the view rows of some base fragments (``(group key, fragment id)``), with
    the view's computed columns, written as new fragments of the view (not committed), as
    :func:`~lakehouse.exec.writes.replace_rows` writes them in this process. The view's
    definition, its iterator and its UDFs are rebuilt from storage under the driver's trust
    rules; a module the worker cannot import says how to ship it."""
    job.permissions.grant()
    options = job.storage_options or None
    view = lance.dataset(job.view_uri, version=job.view_version, storage_options=options)
    base = lance.dataset(job.base_uri, version=job.base_version, storage_options=options)
    ctx = WriteContext(job.view, job.view_uri, job.storage_options, view,
                       TableDef.from_schema(view.schema, job.view), job.fetch)
    vdef = ctx.definition.view
    assert vdef is not None
    try:
        if job.iterator_module is not None:
            _import_iterator_module(job.iterator_module)
        expansion = Expansion(ctx.definition, TableDef.from_schema(base.schema, vdef.base), ctx)
        groups = ((key, expansion._chunks(base, i, job.inserted)) for key, i in fragments)
        written = list(writes.write_groups(ctx, groups, on_error=vdef.on_error,
                                           trusted=expansion.trusted))
    except UDFNotFoundError as exc:
        raise ray_engine.not_on_worker(exc, list(job.modules)) from None
    return [(str(key), f, n, e) for key, f, n, e in written], expansion.failed


def _import_iterator_module(module: str) -> None:
    """Import the module of a user iterator the driver registered, on a worker."""
    try:
        importlib.import_module(module)
    except ImportError as exc:
        raise UDFNotFoundError(f"the module {module!r} of the view's iterator cannot be "
                               f"imported ({exc})") from exc


def group_keys(base: lance.LanceDataset, changes: ChangeSet) -> list[tuple[str, int]]:
    """The base fragments whose rows an upkeep expands, in order, each with the key of its
    group in a checkpoint: what the fragment's rows are (its id, data files and deletions)."""
    if changes.inserted is not None and not changes.inserted:
        return []
    fragments = changes.fragments if changes.fragments is not None else \
        [f.fragment_id for f in base.get_fragments()]
    keys = []
    for fragment_id in fragments:
        fragment = base.get_fragment(fragment_id)
        keys.append((f"{fragment_id}:{_rows_signature(fragment)}:"
                     + ",".join(f.path for f in fragment.metadata.files), fragment_id))
    return keys


def _base_rows_in(view: lance.LanceDataset) -> set[int]:
    table = view.to_table(columns=[BASE_ROW])
    return set(table.column(BASE_ROW).to_pylist())


def _view_rows_of(view: lance.LanceDataset, base_rows: set[int]) -> dict[int, list[int]]:
    """The view rows of the given base rows: fragment id -> view row ids."""
    out: dict[int, list[int]] = defaultdict(list)
    ids = sorted(base_rows)
    for start in range(0, len(ids), _DELETE_BATCH):
        chunk = ids[start:start + _DELETE_BATCH]
        found = view.to_table(columns=[], with_row_id=True, with_row_address=True,
                              filter=f"{BASE_ROW} IN ({', '.join(map(str, chunk))})")
        for row_id, address in zip(found.column(ROW_ID).to_pylist(),
                                   found.column(ROW_ADDRESS).to_pylist(), strict=True):
            out[address >> 32].append(row_id)
    return dict(out)


class Expansion:
    """Turns base rows into view rows: the carried base columns, and for a view with an
    iterator, one row per item the iterator yields (with its ``pos``)."""

    def __init__(self, view: TableDef, base: TableDef, ctx: WriteContext) -> None:
        vdef = view.view
        assert vdef is not None
        self.name = ctx.table_name
        self.vdef = vdef
        self.base = base
        self.fetcher = ctx.fetcher
        self.carried = {base.by_id(b).name: view.by_id(v).name for v, b in vdef.carried}
        self.where = None if vdef.where is None else serialize.from_json(
            vdef.where, lambda i: base.by_id(i).ref())
        self.iterator = None if vdef.iterator is None else IteratorCall.from_json(
            vdef.iterator, lambda _name, i: base.by_id(i).ref())
        self.chunk_rows = writes.chunk_rows(view, None)
        self.failed = 0  # base rows whose iterator failed, skipped under on_error="ignore"
        self.columns = view.base_columns()
        made_here = self.iterator is None or ":" not in self.iterator.name  # a built-in's
        self.trusted = frozenset(c.name for c in view.media_columns() if made_here or
                                 c.col_id in {v for v, _ in vdef.carried})

    @property
    def read_columns(self) -> list[str]:
        names = list(self.carried)
        if self.iterator is not None and self.iterator.input.name not in names:
            names.append(self.base.by_id(self.iterator.input.col_id).name)
        return names

    def groups(self, base: lance.LanceDataset, changes: ChangeSet) -> Iterator[writes.Group]:
        """The view rows of the rows ``changes`` inserted: one group per base fragment, keyed
        by what that fragment's rows are (its id, data files and deletions), each made only
        when the writer takes it."""
        for key, fragment_id in group_keys(base, changes):
            yield key, self._chunks(base, fragment_id, changes.inserted)

    def _chunks(self, base: lance.LanceDataset, fragment_id: int,
                inserted: set[int] | None) -> Iterator[
            tuple[pa.Table | list[dict[str, Any]], dict[str, pa.Array]]]:
        frames = scan_frames(base, self.base, self.vdef.base, self.where, self.read_columns,
                             row_ids=True, fetcher=self.fetcher, fragments=[fragment_id])
        rows: list[dict[str, Any]] = []
        keys: list[int] = []
        for frame in frames:
            for row in frame.iter_rows(named=True):
                key = row[ROW_ID]
                if inserted is not None and key not in inserted:
                    continue
                stats["expanded"] += 1
                for out in self._expand(row, key):
                    rows.append(out)
                    keys.append(key)
                    if len(rows) >= self.chunk_rows:
                        yield self._arrow(rows), {BASE_ROW: pa.array(keys, pa.uint64())}
                        rows, keys = [], []
        if rows:
            yield self._arrow(rows), {BASE_ROW: pa.array(keys, pa.uint64())}

    def _arrow(self, rows: list[dict[str, Any]]) -> pa.Table | list[dict[str, Any]]:
        """The rows as an Arrow table of the view's columns, which the writer converts column
        by column; the rows themselves where a value does not fit its column's Arrow type (the
        writer then names the bad value)."""
        arrays = {}
        for column in self.columns:
            values = [row.get(column.name) for row in rows]
            try:
                if column.type.is_media:
                    if not all(v is None or isinstance(v, bytes) for v in values):
                        return rows
                    arrays[column.name] = pa.array(values, pa.large_binary())
                elif column.type.kind == "json":
                    arrays[column.name] = pa.array([None if v is None else column.type.coerce(v)
                                                    for v in values], pa.string())
                else:
                    arrays[column.name] = pa.array(values, column.type.arrow_type())
            except (TypeError, ValueError, OverflowError, pa.ArrowException):
                return rows
        return pa.table(arrays)

    def _expand(self, row: dict[str, Any], key: int) -> Iterator[dict[str, Any]]:
        carried = {view: row[base] for base, view in self.carried.items()}
        if self.iterator is None:
            yield carried
            return
        value = row[self.base.by_id(self.iterator.input.col_id).name]
        items = self.iterator.rows(value)
        try:
            if self.vdef.on_error == "ignore":  # all or nothing: a failure keeps no partial rows
                items = iter(list(items))
            for pos, item in enumerate(items):
                yield {**carried, POSITION: pos, **item}
        except Error as exc:
            if self.vdef.on_error == "ignore":
                self.failed += 1
                return
            raise ComputeError(
                f"view {self.name!r}: {self.iterator!r} failed on base row {key} of "
                f"{self.vdef.base!r}: {exc}; fix or delete that row, or create the view with "
                "on_error='ignore' to skip such rows") from exc


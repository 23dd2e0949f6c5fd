"""The write protocol: the one way a change reaches a table.

Every mutating call (insert, update, delete, schema and definition changes, indexes, revert,
snapshots, index upkeep) runs as :func:`write`:

1. **Open.** ``open_context()`` checks that the table is writable and returns a
   :class:`WriteContext`: a private Lance handle at the latest version and the table definition
   read from it.
2. **Compute.** The write's body validates its input, computes the computed columns under that
   definition and writes data files. Nothing is visible to readers yet.
3. **Commit**, once, through one of this module's functions, against the version the context
   read. Lance rebases the commit over concurrent commits that commute with it: appends with
   appends, deletes and updates of other fragments. When Lance reports a conflict, the commit
   compares the table's latest definition with the one the write computed under:

   - unchanged: the write is *rebased* where it knows how (an append commits the same
     fragments again; an update deletes its old rows from the latest copies of their fragments;
     a backfill computes the new column for the fragments that appeared or were rewritten) and
     committed against the latest version;
   - changed, or the rows it rewrites were changed by another writer: the whole write is
     *redone* from step 1 (:class:`Redo`), so that its computed columns follow the new
     definition. Writes whose input cannot be read twice (a one-shot iterator) are not redone:
     they fail with :class:`~lakehouse.errors.ConcurrentWriteError` and write nothing.

   Definition changes that add computed values commit as Lance ``Merge`` operations, which
   conflict with every concurrent data commit; data commits are Lance ``Update`` operations,
   which conflict with a ``Merge``. So a write computed under an older definition can never
   commit after a new computed column: it is redone, never stored with a silent null.
4. **Upkeep** (vector indexes) is a write of its own, run by the table after a data change.

A conflict that persists after :data:`ATTEMPTS` tries, and only then, is a
``ConcurrentWriteError``. Lance's own errors become :class:`~lakehouse.errors.StorageError`.
No module but this one makes a Lance commit (``tests/test_write_protocol.py`` checks it).
"""

from __future__ import annotations

import dataclasses
import random
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from typing import Any, TypeVar

import lance
import pyarrow as pa
from lance.commit import CommitConflictError
from lance.fragment import DataFile, FragmentMetadata
from lance.optimize import Compaction

from lakehouse.engine import RayEngine
from lakehouse.errors import ConcurrentWriteError, Error, StorageError
from lakehouse.exec.checkpoints import Checkpoint, FragmentKey, fragment_key
from lakehouse.exprs.sql import rowid_filter
from lakehouse.media.fetch import Fetcher
from lakehouse.media.policy import FetchPolicy
from lakehouse.metadata import RETIRED_PREFIX, ColumnDef, TableDef, error_column, uri_column

ATTEMPTS = 12
OPERATION_KEY = "lakehouse.operation"

#: What the protocol did in this process: ``rebased`` commits (retried against a newer version
#: with the same work), ``redone`` writes (computed again from the start) and ``refused`` writes
#: (ConcurrentWriteError). For tests, benchmarks and logs.
stats: Counter[str] = Counter()

T = TypeVar("T")


class Redo(Exception):
    """The basis of a write changed under it (the definition it computed with, or rows it
    rewrites): it must be redone from the start on the latest version."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclasses.dataclass(frozen=True)
class WriteContext:
    """What one attempt of a write works from: the table, a private Lance handle at the version
    it read (nobody else uses it, so Lance calls that move it are safe) and the definition read
    at that version. Secrets in the storage options never appear in its repr.

    >>> ds = t.table_state().dataset
    >>> ctx = WriteContext("films", ds.uri, {}, ds.checkout_version(ds.version),
    ...                    t.table_definition)
    >>> ctx.version, ctx.definition.has("year")
    (2, True)
    """

    table_name: str
    uri: str
    storage_options: dict[str, str] = dataclasses.field(repr=False)
    dataset: lance.LanceDataset = dataclasses.field(repr=False)
    definition: TableDef = dataclasses.field(repr=False)
    fetch: FetchPolicy = FetchPolicy()  # how media sources may be read (lh.connect(fetch=...))
    # recorded with every commit this write makes (a view records the base version it reflects)
    properties: Mapping[str, str] = dataclasses.field(default_factory=dict)
    engine: RayEngine | None = None  # where backfills run (lh.connect(engine=...))

    @property
    def version(self) -> int:
        """The version this write read (and commits against)."""
        return self.dataset.version

    @property
    def fetcher(self) -> Fetcher:
        """Reads media sources with the table's storage options."""
        return Fetcher(self.storage_options, self.fetch)

    @property
    def options(self) -> dict[str, str] | None:
        return self.storage_options or None

    def latest(self) -> lance.LanceDataset:
        """A fresh handle on the table's latest version."""
        try:
            return lance.dataset(self.uri, storage_options=self.options)
        except OSError as exc:
            raise StorageError(f"table {self.table_name!r}: cannot read the latest version: "
                               f"{exc}") from exc


def write(open_context: Callable[[], WriteContext], body: Callable[[WriteContext], T], *,
          what: str, replayable: bool = True) -> T:
    """Run ``body`` under the protocol: open, compute, commit; redo it from a fresh context
    when its basis changed (``replayable=False``: fail with ConcurrentWriteError instead).

    ``open_context`` opens each attempt at the latest version (as a Table does):

    >>> def open_context() -> WriteContext:
    ...     ds = lance.dataset(t.table_state().dataset.uri)
    ...     return WriteContext("films", ds.uri, {}, ds, TableDef.from_schema(ds.schema, "films"))
    >>> def insert_ran(ctx: WriteContext) -> int:
    ...     rows = pa.Table.from_pylist([{"title": "Ran", "year": 1985, "rating": 8.2}],
    ...                                 schema=ctx.dataset.schema)
    ...     return append(ctx, rows.to_reader(), failures=Failures()).version
    >>> write(open_context, insert_ran, what="insert"), t.count()
    (3, 4)
    """
    reason = "it kept conflicting with concurrent writers"
    table_name = "?"
    for attempt in range(ATTEMPTS):
        ctx = open_context()
        table_name = ctx.table_name
        try:
            return body(ctx)
        except Redo as exc:
            reason = exc.reason
            if not replayable:
                break
            stats["redone"] += 1
            _pause(attempt)
    stats["refused"] += 1
    hint = "its input could not be read again; run it again" if not replayable \
        else "try again"
    raise ConcurrentWriteError(
        f"table {table_name!r}: {what} was not written: {reason} (concurrent writers); nothing was "
        f"written, {hint}")


def _pause(attempt: int) -> None:
    """Back off a little before the next attempt, with jitter so that racing writers spread."""
    time.sleep(random.uniform(0, min(0.5, 0.005 * 2 ** attempt)))


def same_definition(a: lance.LanceDataset, b: lance.LanceDataset) -> bool:
    """Whether two versions have the same columns and definitions (field metadata).

    >>> ds = t.table_state().dataset
    >>> same_definition(ds, ds.checkout_version(1))  # no rows yet, the same columns
    True
    """
    return a.schema.equals(b.schema, check_metadata=True)


class Failures:
    """Remembers the first exception raised by our code while Lance was pulling batches from it,
    so that the caller sees that exception rather than Lance's wrapped copy."""

    def __init__(self) -> None:
        self.first: BaseException | None = None

    def guard(self, batches: Iterator[Any]) -> Iterator[Any]:
        try:
            yield from batches
        except BaseException as exc:
            self.first = self.first or exc
            raise

    def wrap(self, fn: Callable[..., T]) -> Callable[..., T]:
        def wrapped(*args: Any) -> T:
            try:
                return fn(*args)
            except BaseException as exc:
                self.first = self.first or exc
                raise
        return wrapped


def _lance_call(ctx: WriteContext, call: Callable[[], T], failures: Failures | None) -> T:
    """Run a Lance call, turning its failures into ours: our own exception raised while Lance
    pulled data from us, Redo for a commit conflict, StorageError for the rest."""
    try:
        return call()
    except BaseException as exc:
        if failures is not None and failures.first is not None and failures.first is not exc:
            raise failures.first from None
        if isinstance(exc, (Error, Redo)) or not isinstance(exc, OSError):
            raise
        if _conflict(exc):
            raise Redo(f"a concurrent commit conflicted with it ({exc})") from exc
        if _removed(ctx, ctx.version):
            raise Redo("garbage collection removed the version it read") from exc
        raise StorageError(f"table {ctx.table_name!r}: the write failed: {exc}") from exc


def _conflict(exc: OSError) -> bool:
    """Whether Lance refused a commit because of concurrent commits: a conflict, or its own
    retries of one running out ("Too many concurrent writers", which a loaded machine or a slow
    store reaches within Lance's 30 s): either way the write is worth redoing on the latest
    version, not a storage failure."""
    text = str(exc).lower()
    return isinstance(exc, CommitConflictError) or "conflict" in text \
        or "too many concurrent writers" in text


def _removed(ctx: WriteContext, version: int) -> bool:
    """Whether ``version`` of the table is gone (removed by garbage collection while a write
    that read it ran: the write must be redone on the latest version)."""
    try:
        lance.dataset(ctx.uri, version=version, storage_options=ctx.options)
    except (ValueError, OSError):
        return True
    return False


def commit(ctx: WriteContext, operation: lance.LanceOperation.BaseOperation, *, kind: str,
           rebase: Callable[[lance.LanceDataset], Any] | None = None) -> lance.LanceDataset:
    """Commit ``operation`` against the version ``ctx`` read, recorded as ``kind`` in the
    history. On a conflict with an unchanged definition, ``rebase(latest)`` gives the operation
    again for the latest version; without ``rebase``, or with a changed definition, Redo."""
    read_version = ctx.version
    for _ in range(ATTEMPTS):
        transaction = lance.Transaction(
            read_version, operation,
            transaction_properties={**ctx.properties, OPERATION_KEY: kind})
        try:
            # committed on the handle read: Lance reuses its manifest instead of opening the
            # table again (two requests fewer on S3)
            return lance.LanceDataset.commit(ctx.dataset, transaction,
                                             storage_options=ctx.options)
        except OSError as exc:
            if not _conflict(exc):
                if _removed(ctx, read_version):
                    raise Redo("garbage collection removed the version it read") from exc
                raise StorageError(f"table {ctx.table_name!r}: the write failed: {exc}") from exc
            latest = ctx.latest()
            if not same_definition(latest, ctx.dataset):
                raise Redo("the table's columns or definitions changed while it ran") from exc
            if rebase is None:
                raise Redo(f"a concurrent commit conflicted with it ({exc})") from exc
            operation = rebase(latest)
            read_version = latest.version
            stats["rebased"] += 1
    raise Redo("it kept conflicting with concurrent writers")


def apply(ctx: WriteContext, action: Callable[[lance.LanceDataset], Any], *,
          failures: Failures | None = None) -> lance.LanceDataset:
    """Run a Lance call that commits by itself on the context's private handle (a schema
    change, an index build, a streamed column backfill) and return the handle, now at the new
    version. Lance bases the commit on the version read; a conflict is a Redo."""
    ds = ctx.dataset
    _lance_call(ctx, lambda: action(ds), failures)
    return ds


# --- data commits --------------------------------------------------------------------------------
def append(ctx: WriteContext, reader: pa.RecordBatchReader, *, failures: Failures,
           kind: str = "insert") -> lance.LanceDataset:
    """Write the rows of ``reader`` as new fragments and commit them. Appends commute with
    everything but a definition change, so a rebase commits the same fragments again."""
    fragments = write_fragments(ctx, reader, failures)
    operation = lance.LanceOperation.Update(new_fragments=fragments)
    return commit(ctx, operation, kind=kind, rebase=lambda latest: operation)


def append_written(ctx: WriteContext, fragments: list[FragmentMetadata], *,
                   kind: str = "insert") -> lance.LanceDataset:
    """Commit fragments already written (:func:`write_fragments`, by the Ray tasks of a bulk
    import) as one append, in their order: readers see all of them or none. Rebased as
    :func:`append` is."""
    operation = lance.LanceOperation.Update(new_fragments=fragments)
    return commit(ctx, operation, kind=kind, rebase=lambda latest: operation)


def rewrite(ctx: WriteContext, reader: pa.RecordBatchReader | None,
            matched: dict[int, list[int]], *, failures: Failures, kind: str = "update",
            guard: Callable[[lance.LanceDataset], None] | None = None,
            written: list[FragmentMetadata] | None = None) -> lance.LanceDataset:
    """Write the rows of ``reader`` (if any) as new fragments in place of the rows ``matched``
    (fragment id -> row ids), plus fragments already ``written`` (:func:`write_fragments`),
    and commit them in one Lance ``Update``. On a conflict the old rows
    are deleted again from the latest copies of their fragments; if another writer changed or
    removed any of them, the update is redone.

    With ``guard``, the commit is *exclusive*: two guarded commits read from the same version
    never both land, and on a conflict ``guard(latest)`` decides whether the write may still
    commit (it raises :class:`Redo` when not). View upkeep uses it: two processes bringing a
    view up to date must not both add the same rows, and Lance would rebase two appends over
    each other. The commit names the table's first fragment as updated (unchanged), so that two
    such commits conflict; a table without fragments has none to name, so there the new rows
    *replace* the table's content (a Lance ``Overwrite``: the last of two such commits wins,
    and each holds all the rows). An ``Overwrite`` that landed over a concurrent change of the
    columns is undone (the version before it restored) and the write redone."""
    new = [*(written or []), *(write_fragments(ctx, reader, failures) if reader else [])]
    made: list[lance.LanceOperation.BaseOperation] = []

    def operation(ds: lance.LanceDataset, check: bool) -> lance.LanceOperation.BaseOperation:
        if check and guard is not None:
            guard(ds)
        fragments = ds.get_fragments()
        if guard is not None and not fragments and not matched:
            made.append(lance.LanceOperation.Overwrite(ds.schema, new))
            return made[-1]
        updated, removed = [], []
        for fragment_id, row_ids in matched.items():
            fragment = ds.get_fragment(fragment_id)
            predicate = rowid_filter(row_ids)
            if fragment is None or (check and fragment.count_rows(predicate) != len(row_ids)):
                raise Redo("rows it rewrites were changed or removed by another writer")
            kept = fragment.delete(predicate)
            if kept is None:
                removed.append(fragment_id)
            else:
                updated.append(kept)
        if guard is not None and fragments and fragments[0].fragment_id not in {*matched}:
            updated.append(fragments[0].metadata)  # unchanged: it only makes the commit exclusive
        made.append(lance.LanceOperation.Update(removed_fragment_ids=removed,
                                                updated_fragments=updated, new_fragments=new))
        return made[-1]

    committed = commit(ctx, operation(ctx.dataset, check=False), kind=kind,
                       rebase=lambda latest: operation(latest, check=True))
    if isinstance(made[-1], lance.LanceOperation.Overwrite):
        previous = committed.checkout_version(committed.version - 1)
        if not same_definition(previous, ctx.dataset):
            _lance_call(ctx, previous.restore, None)
            raise Redo("it replaced the rows of a table whose columns changed meanwhile")
    return committed


def delete(ctx: WriteContext, predicate: str) -> lance.LanceDataset:
    """Delete the rows where ``predicate`` (Lance SQL) is true.

    >>> ds = t.table_state().dataset
    >>> ctx = WriteContext("films", ds.uri, {}, ds.checkout_version(ds.version),
    ...                    t.table_definition)
    >>> delete(ctx, "year < 1980").version, t.count()
    (3, 2)
    """
    return apply(ctx, lambda ds: ds.delete(predicate))


def write_fragments(ctx: WriteContext, reader: pa.RecordBatchReader,
                    failures: Failures) -> list[FragmentMetadata]:
    """Write the rows of ``reader`` as new fragments of the table, not yet committed (an append
    or a rewrite commits them)."""
    return _lance_call(ctx, lambda: lance.fragment.write_fragments(
        reader, ctx.dataset, schema=reader.schema, storage_options=ctx.options), failures)


# --- column backfills ----------------------------------------------------------------------------
#: One fragment whose new column files are written: its metadata as it was read, its new data
#: files and the table's schema with the new columns (as Lance's ``merge_columns`` gives it).
Merged = tuple[FragmentMetadata, list[DataFile], Any]
#: Writes the new column files of some fragments of a version, yielding each fragment as soon
#: as it is done: in this process (:func:`merge_each`) or on Ray (``exec.ray_engine``).
Merge = Callable[[lance.LanceDataset, list[lance.LanceFragment]], Iterator[Merged]]


def merge_each(ctx: WriteContext, compute: Callable[[lance.LanceDataset, int],
                                                    pa.RecordBatchReader],
               failures: Failures) -> Merge:
    """Fragments computed one after the other in this process: ``compute(ds, fragment_id)``
    gives the new columns' values for the live rows of that fragment, in order, and Lance's
    ``merge_columns`` writes them as new column files of the fragment (not committed)."""
    def merge(ds: lance.LanceDataset, fragments: list[lance.LanceFragment]) -> Iterator[Merged]:
        for fragment in fragments:
            md = fragment.metadata
            new_md, new_schema = _lance_call(
                ctx, lambda f=fragment, i=md.id: f.merge_columns(compute(ds, i)), failures)
            yield md, list(new_md.files[len(md.files):]), new_schema
    return merge


def add_computed(ctx: WriteContext, merge: Merge, *, kind: str = "add column",
                 checkpoint: Checkpoint | None = None,
                 on_fragment: Callable[[int], None] | None = None) -> lance.LanceDataset:
    """Add columns to every row with Lance data evolution: ``merge`` writes the new column
    files of each fragment (:func:`merge_each`), and one ``Merge`` commit adds them all. On a
    conflict with appends, deletes or compaction, only the fragments that appeared or were
    rewritten are computed; the files already written are kept.

    With a ``checkpoint``, each finished fragment is recorded as soon as its files are written,
    and fragments a previous run of the same backfill finished are not computed again (one
    fragment is, if every fragment was done: Lance needs a fragment's new schema for the
    commit). ``on_fragment(rows)`` is told of each fragment taken from the checkpoint."""
    done: dict[FragmentKey, list[Any]] = {}
    schema: list[Any] = []
    if checkpoint is not None:
        for key, (rows, files) in checkpoint.done().items():
            done[key] = files
            if on_fragment is not None:
                on_fragment(rows)

    def operation(ds: lance.LanceDataset) -> lance.LanceOperation.Merge:
        fragments = ds.get_fragments()
        missing = [f for f in fragments if fragment_key(f.metadata) not in done]
        if not schema and not missing:
            missing = [min(fragments, key=lambda f: f.metadata.physical_rows)]
        for md, files, new_schema in merge(ds, missing):
            key = fragment_key(md)
            done[key] = files
            schema[:] = [new_schema]
            if checkpoint is not None:
                checkpoint.record(key, md.physical_rows, files)
        # the latest metadata (deletions made meanwhile) plus the new column files, which
        # cover every physical row of the fragment
        out = [dataclasses.replace(f.metadata, files=[*f.metadata.files,
                                                      *done[fragment_key(f.metadata)]])
               for f in fragments]
        return lance.LanceOperation.Merge(out, schema[0])

    first = operation(ctx.dataset)
    return commit(ctx, first, kind=kind, rebase=operation)


# --- schema and definition changes ---------------------------------------------------------------
def add_null_columns(ctx: WriteContext, fields: list[pa.Field]) -> lance.LanceDataset:
    """Add columns that are null for every existing row (no data files written)."""
    return apply(ctx, lambda ds: ds.add_columns(fields))


def rename_columns(ctx: WriteContext, *renames: tuple[str, str]) -> lance.LanceDataset:
    """Rename columns in one commit (several renames at once can swap names)."""
    changes = [{"path": old, "name": new} for old, new in renames]
    return apply(ctx, lambda ds: ds.alter_columns(*changes))


def drop_columns(ctx: WriteContext, names: list[str]) -> lance.LanceDataset:
    return apply(ctx, lambda ds: ds.drop_columns(names))


def switch_column(ctx: WriteContext, pending: str, final: str,
                  replaced: ColumnDef | None) -> int:
    """Put a replacement computed into the hidden column ``pending`` in place, as ``final``.

    One commit renames ``replaced`` (the column it replaces, if any) to a retired name and
    ``pending`` to ``final``, so that a reader sees either the old definition or the new one; a
    second commit drops the retired column with its hidden error and URI columns. A row written
    between the two stores null in the retired column, which is never read. Safe to run again
    after a conflict: once ``pending`` is gone the renames are done (``replaced`` is then not
    used) and only the retired columns left behind are dropped. Returns the version reached.
    This is how both a computed column and an embedding index get a new definition."""
    if pending in ctx.dataset.schema.names:
        renames = [(pending, final)]
        if replaced is not None:
            renames.insert(0, (replaced.name, f"{RETIRED_PREFIX}{replaced.col_id}"))
        rename_columns(ctx, *renames)
    names = ctx.dataset.schema.names
    retired_ids = [int(n[len(RETIRED_PREFIX):]) for n in names if n.startswith(RETIRED_PREFIX)]
    leftovers = [n for col_id in retired_ids
                 for n in (f"{RETIRED_PREFIX}{col_id}", error_column(col_id, "errortype"),
                           error_column(col_id, "errormsg"), uri_column(col_id))
                 if n in names]
    if leftovers:
        drop_columns(ctx, leftovers)
    return ctx.dataset.version


def set_field_metadata(ctx: WriteContext, metadata: dict[str, dict[str, str]]) -> (
        lance.LanceDataset):
    """Replace the metadata of the named fields (where definitions live)."""
    return apply(ctx, lambda ds: ds.update_field_metadata(metadata, replace=True))


def create_scalar_index(ctx: WriteContext, column: str, kind: str, name: str,
                        replace: bool) -> lance.LanceDataset:
    return apply(ctx, lambda ds: ds.create_scalar_index(column, kind.upper(), name=name,
                                                        replace=replace))


def drop_index(ctx: WriteContext, name: str) -> lance.LanceDataset:
    return apply(ctx, lambda ds: ds.drop_index(name))


def restore(ctx: WriteContext, version: int, *, seen: int) -> lance.LanceDataset:
    """Make ``version``'s content the latest version, provided nobody wrote since the caller
    looked at version ``seen`` (a revert decided on an older state would drop their rows)."""
    if ctx.version != seen:
        raise Redo(f"the table changed since version {seen}, which the revert was based on")
    old = ctx.dataset.checkout_version(version)
    _lance_call(ctx, old.restore, None)
    return old


def set_config(ctx: WriteContext, upsert: dict[str, str], remove: list[str]) -> (
        lance.LanceDataset):
    """Set and remove keys of the dataset's configuration (a table's list of views). Lance's
    config changes commute with data changes, so this never conflicts with other writers."""
    def action(ds: lance.LanceDataset) -> None:
        if upsert:
            ds.update_config(upsert)
        present = [k for k in remove if k in ds.config()]
        if present:
            ds.delete_config_keys(present)
    return apply(ctx, action)


def tag(ctx: WriteContext, name: str, version: int, *, move: bool) -> None:
    """Point the snapshot (Lance tag) ``name`` at ``version``."""
    def action(ds: lance.LanceDataset) -> None:
        if move:
            ds.tags.update(name, version)
        else:
            ds.tags.create(name, version)
    apply(ctx, action)


# --- maintenance ---------------------------------------------------------------------------------
COMPACT = "compact"  # the history's name for a compaction commit
#: Runs the tasks of a compaction plan on a context's engine (a Ray cluster), giving their
#: results in order: registered by ``exec.ray_engine``, so this module needs no engine.
remote_compaction: list[Callable[[WriteContext, list[Any]], list[Any]]] = []


def compact(ctx: WriteContext, options: Mapping[str, Any]) -> lance.LanceDataset | None:
    """Rewrite the fragments Lance's compaction planner picks under ``options`` (the keys of
    ``lance.optimize.CompactionOptions``, ``excluded_fragment_ids`` included) into larger ones
    and commit them as one Lance ``Rewrite``, recorded as ``compact`` in the history. Rows keep
    their stable row ids and values: readers, views and checkpoints see no row change. The
    indexes stop covering the rewritten fragments until ``optimize_indices`` (their answers stay
    right: Lance scans what an index does not cover). Returns the new version's handle, or None
    when the planner found nothing to merge. A conflict with a concurrent commit (an update or
    delete of a fragment it rewrote) is a :class:`Redo`: the caller plans again or gives up.

    >>> ds = t.table_state().dataset
    >>> ctx = WriteContext("films", ds.uri, {}, ds.checkout_version(ds.version),
    ...                    t.table_definition)
    >>> compact(ctx, {}) is None  # one fragment: nothing to merge
    True
    """
    plan = _lance_call(ctx, lambda: Compaction.plan(ctx.dataset, dict(options)), None)
    if plan.num_tasks() == 0:
        return None
    if ctx.engine is not None and remote_compaction:
        results = remote_compaction[0](ctx, list(plan.tasks))
    else:
        results = [_lance_call(ctx, lambda task=task: task.execute(ctx.dataset), None)
                   for task in plan.tasks]
    groups = [lance.LanceOperation.RewriteGroup(old_fragments=r.original_fragments,
                                                new_fragments=r.new_fragments)
              for r in results]
    operation = lance.LanceOperation.Rewrite(groups=groups, rewritten_indices=[])
    return commit(ctx, operation, kind=COMPACT)


def optimize_indices(ctx: WriteContext, names: list[str]) -> lance.LanceDataset:
    """Extend the Lance indexes ``names`` over the fragments they do not cover yet (rows
    appended since they were built, fragments compaction rewrote), in one commit."""
    return apply(ctx, lambda ds: ds.optimize.optimize_indices(index_names=names))


# --- branches ------------------------------------------------------------------------------------
def create_branch(ctx: WriteContext, name: str, version: int) -> lance.LanceDataset:
    """Make Lance branch ``name`` of the table from ``version`` and return a handle on it. The
    branch starts as that version, sharing its files; its commits go to its own folder."""
    return _lance_call(ctx, lambda: ctx.dataset.create_branch(name, version,
                                                              storage_options=ctx.options), None)


def delete_branch(ctx: WriteContext, name: str) -> None:
    """Remove Lance branch ``name`` of the table and the files only it held."""
    _lance_call(ctx, lambda: ctx.dataset.branches.delete(name), None)


def fast_forward(ctx: WriteContext, operation: lance.LanceOperation.BaseOperation, *,
                 seen: int, branch: str, branch_version: int) -> lance.LanceDataset:
    """Commit ``operation``, which makes the table's next version hold version
    ``branch_version`` of a branch (its files already in the table's folders), provided the
    table is still at version ``seen`` (the one the caller found the branch can fast-forward
    from: no data commit since it was made or last promoted). Both are recorded
    (``lakehouse.branch``, ``lakehouse.branch_version``): the next promote starts from there.
    It is never rebased: a writer that lands first makes it a Redo (the caller refuses the
    promote), never a lost change."""
    if ctx.version != seen:
        raise Redo(f"the table moved past version {seen}, where branch {branch!r} was made or "
                   "last promoted")
    properties = {**ctx.properties, "lakehouse.branch": branch,
                  "lakehouse.branch_version": str(branch_version)}
    return commit(dataclasses.replace(ctx, properties=properties), operation, kind="promote")


# --- retention -----------------------------------------------------------------------------------
def remove_versions(table_name: str, ds: lance.LanceDataset,
                    versions: list[int]) -> lance.CleanupStats:
    """Remove ``versions`` of table ``ds`` and the files only they reference (Lance's
    cleanup; :mod:`lakehouse.maintenance.retention` decides which). Lance never removes the
    latest version, a tagged one or a branch's base, nor files no version references."""
    try:
        return ds.cleanup_old_versions(versions=versions, error_if_tagged_old_versions=False)
    except OSError as exc:
        raise StorageError(f"table {table_name!r}: old versions were not removed: {exc}") \
            from exc


__all__ = [
    "ATTEMPTS", "Failures", "Merge", "Merged", "Redo", "WriteContext", "add_computed",
    "add_null_columns", "append", "append_written", "apply", "commit", "compact", "create_branch",
    "create_scalar_index", "optimize_indices",
    "delete", "delete_branch", "drop_columns", "drop_index", "fast_forward", "merge_each",
    "remove_versions", "rename_columns",
    "restore", "rewrite", "same_definition", "set_config", "set_field_metadata", "switch_column",
    "tag", "write", "write_fragments",
]

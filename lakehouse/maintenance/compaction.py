"""Compaction: merging a table's small fragments, by itself after writes and on demand.

Every write adds at least one fragment (a set of data files), and a query opens every fragment:
a table that grows row by row answers slower with every insert (measured: 100,000 rows answer a
point query in 1.5 ms in one fragment, 28 ms after 500 single-row inserts). Compaction rewrites
neighbouring small fragments into larger ones with Lance's compaction. The table's stable row ids
carry over, so a row keeps its identity: views, checkpoints and indexes still name the same
rows, and a reader sees the same rows before and after.

**After a write** (:func:`after_write`; insert, update, delete, recompute, backfill), when the
maintenance policy is on (``lh.connect(maintenance=...)``) and the table holds
``max_small_fragments`` (16) or more fragments of fewer than ``small_fragment_rows`` (65,536)
rows that can be merged, the newest small fragments are merged (:func:`merge_plan`): like a
binary counter, an older small fragment joins the merge only while it holds no more than twice
the rows of the newer ones merged with it, so a row is rewritten a few times over its life
(about log2 of the fragment size it ends in), not once per compaction; large fragments are
never rewritten by this step. Then the scalar indexes that leave ``small_fragment_rows`` rows
or more uncovered are extended (:mod:`lakehouse.maintenance.filters`), the vector indexes' own
upkeep decides about theirs (:mod:`lakehouse.vector_index`), the views of the
table record the new version (a compaction changes no row: :func:`lakehouse.views.change_set`
finds nothing to expand), automatic zone maps are built when due, and old versions are removed
by the retention rules (:mod:`lakehouse.maintenance.retention`).

**Concurrency.** A compaction commits one Lance ``Rewrite`` through the write protocol
(:func:`lakehouse.exec.protocol.compact`), recorded as ``compact`` in the history. It commutes
with concurrent inserts; an update or delete of a fragment it rewrote makes one of the two
commits conflict: a compaction that loses is planned again on the latest version up to
:data:`ATTEMPTS` times and then skipped, and a user's write that loses is redone by the protocol
as for any concurrent writer. Maintenance never raises into the write that triggered it: a
failure is a :class:`MaintenanceWarning` and the write's result stands.

**On demand**, ``t.optimize()`` (:func:`optimize`) merges every fragment Lance's compaction
would (small ones, and ones with many deleted rows), extends every index, builds the zone maps
that are due, and returns an :class:`OptimizeReport`.
"""

from __future__ import annotations

import dataclasses
import time
import warnings
from collections import Counter
from collections.abc import Sequence

import lance

from lakehouse import embedding_index as indexes
from lakehouse import views
from lakehouse.errors import TableNotFoundError
from lakehouse.exec import protocol
from lakehouse.exec.protocol import Redo
from lakehouse.maintenance import filters, retention
from lakehouse.maintenance.policy import MaintenancePolicy
from lakehouse.metadata import TableDef
from lakehouse.progress import report
from lakehouse.storage import Location

ATTEMPTS = 3  # plans of one compaction before it gives way to concurrent writers
MERGE_RATIO = 2  # an older fragment joins a merge if it holds at most this times the newer rows

#: What maintenance did in this process (for tests and benchmarks): ``compactions``,
#: ``skipped`` (compactions that gave way to concurrent writers), ``fragments_rewritten``,
#: ``zonemaps`` built and ``seconds`` spent after writes.
stats: Counter[str] = Counter()


class MaintenanceWarning(UserWarning):
    """Automatic maintenance after a write failed; the write itself stands."""


@dataclasses.dataclass(frozen=True)
class OptimizeReport:
    """What ``t.optimize()`` did: fragments and bytes (data files of the latest version) before
    and after, the rows of the table, the indexes it extended or built, and the time it took.

    >>> report = t.optimize(progress=False)
    >>> report.fragments_before >= report.fragments_after, report.rows
    (True, 3)
    """

    table: str
    version: int
    fragments_before: int
    fragments_after: int
    rows: int
    bytes_before: int
    bytes_after: int
    indexes_optimized: tuple[str, ...]
    indexes_built: tuple[str, ...]
    seconds: float


def merge_plan(rows: Sequence[int], policy: MaintenancePolicy) -> list[int]:
    """Which fragments (positions in ``rows``, the row counts of the table's fragments in
    order) the step after a write merges: none until ``max_small_fragments`` small fragments can
    be merged; then, in each run of neighbouring small fragments, the newest ones, an older one
    joining while it holds at most :data:`MERGE_RATIO` times the rows of those after it, and the
    whole run when that would still leave too many.

    >>> policy = MaintenancePolicy(max_small_fragments=4)
    >>> merge_plan([100_000, 1, 1, 1], policy)  # three small fragments: not yet
    []
    >>> merge_plan([100_000, 1, 1, 1, 1], policy)
    [1, 2, 3, 4]
    >>> merge_plan([100_000, 40, 4, 1, 1, 1, 1], policy)  # 40 waits until the newer catch up
    [2, 3, 4, 5, 6]
    """
    runs = _small_runs(rows, policy.small_fragment_rows)
    if sum(len(run) for run in runs) < policy.max_small_fragments:
        return []
    chosen: list[list[int]] = []
    for run in runs:
        total, picked = 0, []
        for position in reversed(run):
            if picked and rows[position] > MERGE_RATIO * total:
                break
            picked.append(position)
            total += rows[position]
        chosen.append(sorted(picked) if len(picked) > 1 else [])
    left = sum(len(run) - len(pick) + (1 if pick else 0) for run, pick in zip(runs, chosen,
                                                                               strict=True))
    if left >= policy.max_small_fragments:
        chosen = runs
    return [position for pick in chosen for position in pick]


def _small_runs(rows: Sequence[int], small: int) -> list[list[int]]:
    """The runs of two or more neighbouring fragments with fewer than ``small`` rows."""
    runs: list[list[int]] = [[]]
    for position, count in enumerate(rows):
        if count < small:
            runs[-1].append(position)
        elif runs[-1]:
            runs.append([])
    return [run for run in runs if len(run) > 1]


def after_write(location: Location, name: str, ds: lance.LanceDataset,
                definition: TableDef | None = None) -> None:
    """The maintenance due after a write that left table ``name`` at version ``ds`` (whose
    ``definition`` the write may hand over, so it is not parsed again): nothing unless the
    policy is on; compaction when :func:`merge_plan` picks fragments; zone maps when
    :func:`lakehouse.maintenance.filters.undecided` names columns; retention when its rules
    say. Reads only ``ds``'s manifest unless something is due. Never raises (a failure is a
    :class:`MaintenanceWarning`): the write it follows has succeeded.

    >>> after_write(t.table_state().location, "films", t.table_state().dataset)  # nothing due
    """
    policy = location.maintenance
    if not policy.auto:
        return
    began = time.perf_counter()
    try:
        _maintain(location, name, ds, policy, definition)
    except Exception as exc:  # whatever went wrong, the write it follows has succeeded
        warnings.warn(MaintenanceWarning(
            f"table {name!r}: the maintenance after this write was skipped ({exc}); the write "
            "itself succeeded, and t.optimize() runs it again"), stacklevel=3)
    finally:
        stats["seconds"] += time.perf_counter() - began


def _maintain(location: Location, name: str, ds: lance.LanceDataset,
              policy: MaintenancePolicy, definition: TableDef | None = None) -> None:
    fragments = ds.get_fragments()
    picked = merge_plan([f.metadata.physical_rows for f in fragments], policy)
    if picked:
        keep = {fragments[i].fragment_id for i in picked}
        options = {"target_rows_per_fragment": policy.target_rows_per_fragment,
                   "excluded_fragment_ids": [f.fragment_id for f in fragments
                                             if f.fragment_id not in keep]}
        compacted = compact(location, name, options)
        if compacted is not None:
            ds = _after_compaction(location, name, compacted, policy.small_fragment_rows,
                                   progress=False)
    # a compaction rewrites rows, never columns: the definition still holds
    if filters.undecided(ds, definition or TableDef.from_schema(ds.schema, name), policy):
        _build_filters(location, name)
    retention.auto_collect(name, views.table_uri(location, name), location, ds.version)
    for view in views.views_of(ds):  # a view gains fragments with every upkeep too
        try:
            view_ds = views.open_context(location, view).dataset
        except TableNotFoundError:
            continue
        _maintain(location, view, view_ds, policy)


def compact(location: Location, name: str, options: dict[str, object]) -> (
        lance.LanceDataset | None):
    """Compact table ``name`` under Lance compaction ``options``, planned again on the latest
    version when a concurrent commit conflicts, at most :data:`ATTEMPTS` times; then skipped
    (None, counted in ``stats["skipped"]``), as when there was nothing to merge."""
    for _ in range(ATTEMPTS):
        ctx = views.open_context(location, name)
        before = {f.fragment_id for f in ctx.dataset.get_fragments()}
        try:
            done = protocol.compact(ctx, options)
        except Redo:
            continue
        if done is None:
            return None
        stats["compactions"] += 1
        stats["fragments_rewritten"] += len(before - {f.fragment_id for f in
                                                      done.get_fragments()})
        return done
    stats["skipped"] += 1
    return None


def _after_compaction(location: Location, name: str, ds: lance.LanceDataset,
                      min_unindexed: int, *, progress: bool) -> lance.LanceDataset:
    """After a compaction that made table version ``ds``: extend the scalar indexes that leave
    ``min_unindexed`` rows or more uncovered, let the vector indexes' upkeep decide, and let
    the views record the new version (they find no row changed). Returns the latest version."""
    def open_context() -> protocol.WriteContext:
        return views.open_context(location, name)

    tdef = TableDef.from_schema(ds.schema, name)
    if filters.stale(ds, tdef, min_unindexed):
        protocol.write(open_context, lambda ctx: filters.keep_current(ctx, min_unindexed),
                       what="the index upkeep after a compaction")
    if tdef.indexes():
        protocol.write(open_context, lambda ctx: indexes.upkeep_all(ctx, progress=progress),
                       what="the vector index upkeep")
    if tdef.indexes() or filters.stale(ds, tdef, min_unindexed):
        ds = open_context().dataset
    if views.views_of(ds):
        views.update_dependents(location, ds, progress=progress)
    return ds


def _build_filters(location: Location, name: str) -> None:
    """Build the zone maps that are due (see :mod:`lakehouse.maintenance.filters`)."""
    def body(ctx: protocol.WriteContext) -> list[str]:
        columns = filters.undecided(ctx.dataset, ctx.definition, location.maintenance)
        return filters.build(ctx, columns) if columns else []

    built = protocol.write(lambda: views.open_context(location, name), body,
                           what="the automatic zone maps")
    stats["zonemaps"] += len(built)


def optimize(location: Location, name: str, *, progress: bool) -> OptimizeReport:
    """Compact table ``name`` as far as Lance's compaction goes, extend every index over the
    rows it does not cover, build the zone maps that are due, and say what changed. Runs
    whatever the policy's ``auto`` says."""
    began = time.perf_counter()
    before = views.open_context(location, name).dataset
    target = location.maintenance.target_rows_per_fragment
    with report(f"optimize {name}", enabled=progress, total=before.count_rows()) as bar:
        compact(location, name, {"target_rows_per_fragment": target})
        optimized = protocol.write(lambda: views.open_context(location, name),
                                   filters.keep_current, what="the index optimisation")
        latest = _after_compaction(location, name, views.open_context(location, name).dataset,
                                   1, progress=progress)
        built = protocol.write(
            lambda: views.open_context(location, name),
            lambda c: filters.build(c, filters.undecided(c.dataset, c.definition,
                                                         location.maintenance)),
            what="the automatic zone maps")
        after = views.open_context(location, name).dataset if built else latest
        bar.advance(after.count_rows())
    return OptimizeReport(name, after.version, len(before.get_fragments()),
                          len(after.get_fragments()), after.count_rows(), data_bytes(before),
                          data_bytes(after), tuple(optimized), tuple(built),
                          time.perf_counter() - began)


def data_bytes(ds: lance.LanceDataset) -> int:
    """The bytes of the data files table version ``ds`` reads (from its manifest: deletion
    files, indexes and older versions' files are not counted).

    >>> data_bytes(t.table_state().dataset) > 0
    True
    """
    return sum(f.file_size_bytes or 0 for fragment in ds.get_fragments()
               for f in fragment.metadata.files)

"""Data changes: insert, backfill (a new computed column for every row), update and delete.

Each function takes the :class:`~lakehouse.exec.protocol.WriteContext` of one attempt of a write,
does all the computing first (streamed, in bounded memory) and commits exactly once at the end,
through the write protocol (:mod:`lakehouse.exec.protocol`), which rebases the commit over
concurrent writers or asks for the write to be redone. An exception anywhere before the commit
leaves the table at the version it read.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections import defaultdict
from collections.abc import Callable, Iterator
from typing import Any

import lance
import polars as pl
import pyarrow as pa
from lance.fragment import FragmentMetadata

from lakehouse.exec import intake, protocol, ray_engine
from lakehouse.exec.checkpoints import Checkpoint
from lakehouse.exec.evaluate import Plan, table_plan
from lakehouse.exec.fragments import (
    Tally,
    assemble,
    fragment_columns,
    rewritten_batches,
    without_referenced_bytes,
)
from lakehouse.exec.protocol import Failures, WriteContext
from lakehouse.exec.scan import scan_frames
from lakehouse.exprs.nodes import Expr
from lakehouse.functions.media import release_batch_state
from lakehouse.media.intake import MediaOptions
from lakehouse.metadata import HIDDEN_PREFIX, TableDef
from lakehouse.progress import report

BACKFILL_BATCH_ROWS = 65_536
MODEL_BATCH_ROWS = 1_024  # backfills that run a model: progress moves, memory stays small


@dataclasses.dataclass(frozen=True)
class WriteResult:
    """What a data change did: rows written, rows whose computed values recorded an error, and
    the table version it created (unchanged when nothing was written).

    >>> result = t.insert([{"title": "Jaws", "year": 1975}], progress=False)
    >>> result.rows_written, result.rows_with_errors, result.version
    (1, 0, 3)
    >>> t.delete(where=t.year > 3000)  # nothing matched: no new version
    WriteResult(rows_written=0, rows_with_errors=0, version=3)
    """

    rows_written: int
    rows_with_errors: int
    version: int


@dataclasses.dataclass(frozen=True)
class Appended(WriteResult):
    """What an insert did, with the version it committed and that version's definition: the
    one the insert computed under, when no other commit came between (an append changes no
    columns). The table's upkeep after the write starts from them instead of reading the table
    again; the caller gets the plain :class:`WriteResult`.

    >>> ds = t.table_state().dataset
    >>> Appended.after(WriteResult(1, 0, ds.version), ds, ds.checkout_version(ds.version - 1),
    ...                t.table_definition).plain()
    WriteResult(rows_written=1, rows_with_errors=0, version=2)
    """

    dataset: lance.LanceDataset = dataclasses.field(repr=False, compare=False)
    definition: TableDef = dataclasses.field(repr=False, compare=False)

    @staticmethod
    def after(result: WriteResult, committed: lance.LanceDataset, read: lance.LanceDataset,
              definition: TableDef) -> WriteResult:
        """``result`` with ``committed`` and ``definition`` when ``committed`` is the version
        right after ``read``; as it is when other commits came between (one of them may have
        changed the definition: the caller reads it again)."""
        if committed.version != read.version + 1:
            return result
        return Appended(result.rows_written, result.rows_with_errors, result.version,
                        committed, definition)

    def plain(self) -> WriteResult:
        """The result without the version's handle and definition, as the caller gets it."""
        return WriteResult(self.rows_written, self.rows_with_errors, self.version)


def insert(ctx: WriteContext, data: Any, *, progress: bool, on_error: str = "abort",
           total: int | None = None) -> WriteResult:
    """Append rows (validated, with their computed columns) in one commit. ``total``, when
    known, gives the progress bar its length."""
    plan = _plan(ctx)
    rows = _Rows(ctx, plan, on_error)
    chunks = ((chunk, {}) for chunk in intake.chunks(data, chunk_rows(ctx.definition, plan)))
    with report(f"insert into {ctx.table_name}", enabled=progress, total=total) as reporter:
        stream = rows.batches(chunks, reporter)
        first = next(stream, None)
        if first is None:
            return WriteResult(0, 0, ctx.version)
        failures = Failures()

        def write(batches: Iterator[pa.RecordBatch]) -> lance.LanceDataset:
            reader = pa.RecordBatchReader.from_batches(rows.schema,
                                                       failures.guard(batches))
            return protocol.append(ctx, reader, failures=failures)

        if plan is not None and plan.runs_models:  # the model works while Lance writes
            ds = intake.written_beside(_chain(first, stream), write)
        else:
            ds = write(_chain(first, stream))
    return Appended.after(WriteResult(rows.counts["rows"], rows.counts["errors"], ds.version),
                          ds, ctx.dataset, ctx.definition)


def insert_fragments(ctx: WriteContext, data: Any, plan: Plan | None, *, on_error: str,
                     row_offset: int = 0) -> tuple[list[FragmentMetadata], int, int]:
    """The rows of ``data`` validated and computed as :func:`insert` does them (``plan``: the
    table's computed columns, None without), numbered from ``row_offset`` in messages, and
    written as new fragments, not committed: one task's share of a bulk import on Ray
    (:mod:`lakehouse.exec.ray_ingest`), whose driver commits every share at once. Returns the
    fragments, the rows and the rows with an error."""
    rows = _Rows(ctx, plan, on_error)
    rows.counts["rows"] = row_offset
    chunks = ((chunk, {}) for chunk in intake.chunks(data, chunk_rows(ctx.definition, plan)))
    with report(f"insert into {ctx.table_name}", enabled=False) as reporter:
        fragments = rows.fragments(chunks, reporter)
    return fragments, rows.counts["rows"] - row_offset, rows.counts["errors"]


#: One group of rows a view's upkeep writes (the view rows of one base fragment): a key naming
#: it in a checkpoint (None: not checkpointed) and its chunks, made only when it is written.
Group = tuple[str | None, Iterator[tuple[Any, dict[str, pa.Array]]]]


def replace_rows(ctx: WriteContext, groups: Iterator[Group], replacing: dict[int, list[int]],
                 *, guard: Callable[[lance.LanceDataset], None], progress: bool,
                 on_error: str = "abort", trusted: frozenset[str] = frozenset(),
                 checkpoint: Checkpoint | None = None) -> WriteResult:
    """Write new rows in place of the rows ``replacing`` names (fragment id -> row ids), in
    one exclusive commit (see :func:`~lakehouse.exec.protocol.rewrite`): how a view takes in
    a change of its base. Each chunk is rows to validate (as :func:`insert` takes them) and
    hidden columns of the same length that go in as they are (a view row's base row). Media
    columns named in ``trusted`` hold bytes lakehouse made or read from a table: they are
    stored without being decoded again.

    The rows come in groups, each written as fragments of its own; with a ``checkpoint``, each
    group's fragments are recorded once written, and a group a previous run of the same work
    finished is taken from the checkpoint instead of being made again."""
    rows = _Rows(ctx, _plan(ctx), on_error, trusted)
    done = checkpoint.done_groups() if checkpoint is not None else {}
    written: list[FragmentMetadata] = []
    with report(f"update view {ctx.table_name}", enabled=progress) as reporter, \
            _kept_on_failure(checkpoint):
        for key, chunks in groups:
            if key is not None and key in done:
                written += done[key]
                continue
            before = rows.counts["rows"]
            fragments = rows.fragments(chunks, reporter)
            if checkpoint is not None and key is not None:
                checkpoint.record_group(key, rows.counts["rows"] - before, fragments)
            written += fragments
        ds = protocol.rewrite(ctx, None, replacing, failures=Failures(), kind="view upkeep",
                              guard=guard, written=written)
    if checkpoint is not None:
        checkpoint.finish()
    return WriteResult(rows.counts["rows"], rows.counts["errors"], ds.version)


def write_groups(ctx: WriteContext, groups: Iterator[Group], *, on_error: str = "abort",
                 trusted: frozenset[str] = frozenset()) -> Iterator[
        tuple[str | None, list[FragmentMetadata], int, int]]:
    """Each group of new rows (see :func:`replace_rows`) written as fragments of its own, not
    committed, with its rows and rows with an error: the part of a view's upkeep a Ray task
    does (:mod:`lakehouse.views`) for the driver's one commit."""
    rows = _Rows(ctx, _plan(ctx), on_error, trusted)
    with report(f"update view {ctx.table_name}", enabled=False) as reporter:
        for key, chunks in groups:
            before = dict(rows.counts)
            fragments = rows.fragments(chunks, reporter)
            yield key, fragments, rows.counts["rows"] - before["rows"], \
                rows.counts["errors"] - before["errors"]


@contextlib.contextmanager
def _kept_on_failure(checkpoint: Checkpoint | None) -> Iterator[None]:
    """Write out what a checkpointed write finished if it stops before its commit."""
    try:
        yield
    except BaseException:
        if checkpoint is not None:
            checkpoint.keep()
        raise


def chunk_rows(tdef: TableDef, plan: Plan | None) -> int:
    """Rows validated and computed at a time: few for media and models, many for the rest."""
    return intake.MEDIA_CHUNK_ROWS if tdef.media_columns() else \
        intake.MODEL_CHUNK_ROWS if plan is not None and plan.runs_models \
        else intake.DEFAULT_CHUNK_ROWS


def _plan(ctx: WriteContext) -> Plan | None:
    return table_plan(ctx.table_name, ctx.definition)


class _Rows:
    """Turns chunks of new rows into the batches a write stores: validated against the table's
    columns, with their computed columns, in the stored schema; counts rows and errors."""

    def __init__(self, ctx: WriteContext, plan: Plan | None, on_error: str,
                 trusted: frozenset[str] = frozenset()) -> None:
        self.ctx = ctx
        self.plan = plan
        media = ctx.definition.media_columns()
        self.has_media = bool(media)
        reused = frozenset(c.name for c in media
                           if plan is not None and c.name in plan.read_columns)
        self.options = MediaOptions(on_error=on_error, fetcher=ctx.fetcher, reused=reused,
                                    trusted=trusted)
        self.counts = {"rows": 0, "errors": 0}
        self.schema = ctx.dataset.schema  # the stored schema (Lance builds it on each access)

    def batches(self, chunks: Iterator[tuple[Any, dict[str, pa.Array]]],
                reporter: Any) -> Iterator[pa.RecordBatch]:
        tdef, plan, counts = self.ctx.definition, self.plan, self.counts
        for chunk, hidden in chunks:
            offset = counts["rows"]
            base = intake.validate(chunk, tdef, self.ctx.table_name, offset, self.options)
            n = base.num_rows
            if n == 0:
                continue
            columns: dict[str, Any] = {c: base.column(c) for c in base.column_names}
            columns.update(hidden)
            media_failed = _failed_rows(columns, tdef) if self.has_media else set()
            if plan is not None:
                made: dict[str, pa.Array] = {}  # UDF results, already in their stored type
                out, failed = plan.run(_polars_frame(base, plan.read_columns),
                                       row_offset=offset, arrow=made)
                media_failed |= failed
                for name in plan.output_names:
                    columns[name] = made[name] if name in made else \
                        out.get_column(name).to_arrow()
            if self.has_media:
                release_batch_state()
            counts["errors"] += len(media_failed)
            counts["rows"] += n
            reporter.advance(n, errors=counts["errors"])
            stored = without_referenced_bytes(columns, tdef) if self.has_media else columns
            yield from assemble(stored, self.schema).to_batches()

    def fragments(self, chunks: Iterator[tuple[Any, dict[str, pa.Array]]],
                  reporter: Any) -> list[FragmentMetadata]:
        """The chunks' batches written as new fragments of their own (not committed)."""
        failures = Failures()
        stream = self.batches(chunks, reporter)
        first = next(stream, None)
        return [] if first is None else protocol.write_fragments(
            self.ctx, pa.RecordBatchReader.from_batches(self.schema,
                                                        failures.guard(_chain(first, stream))),
            failures)


def backfill_batch_rows(ctx: WriteContext, plan: Plan) -> int | None:
    """Rows scanned at a time by a backfill: a media column's own batches, fewer rows for a
    model, many for the rest."""
    read = plan.read_columns
    if any(c.name in read for c in ctx.definition.media_columns()):
        return None
    return MODEL_BATCH_ROWS if plan.runs_models else BACKFILL_BATCH_ROWS


def backfill(ctx: WriteContext, plan: Plan, *, progress: bool, kind: str = "add column",
             checkpoint: bool = True) -> WriteResult:
    """Add the plan's columns to every existing row with Lance data evolution (new column files
    only), fragment by fragment (:func:`~lakehouse.exec.fragments.fragment_columns`), in this
    process or, with a Ray engine, as Ray tasks (:mod:`lakehouse.exec.ray_engine`); one commit
    adds them all. With
    ``checkpoint``, finished fragments are recorded with the table
    (:mod:`lakehouse.exec.checkpoints`), so that the same backfill started again after a
    crash computes only the fragments not yet done."""
    ds = ctx.dataset
    fields = plan.output_fields()
    if not ds.get_fragments():
        return WriteResult(0, 0, protocol.add_null_columns(ctx, fields).version)
    total = ds.count_rows()
    saved = Checkpoint.open(ctx.uri, ctx.storage_options, fields, kind=kind,
                            version=ctx.version, total_rows=total,
                            dataset=ds) if checkpoint else None

    shown = [n for n in plan.output_names if not n.startswith(HIDDEN_PREFIX)] or [kind]
    with report(f"compute {', '.join(shown)}", enabled=progress,
                total=total) as reporter:
        failures = Failures()

        def moved(rows: int, reused: bool) -> None:
            reporter.advance(rows, errors=tally.errors, reused=reused)
            if saved is not None:
                saved.progress(tally.rows + tally.reused, tally.errors)

        tally = Tally(moved=moved)
        batch_rows = backfill_batch_rows(ctx, plan)
        merge = protocol.merge_each(
            ctx, fragment_columns(ctx, plan, failures, tally, batch_rows), failures) \
            if ctx.engine is None else ray_engine.backfill_merge(ctx, plan, tally, batch_rows)
        with _kept_on_failure(saved):
            committed = protocol.add_computed(
                ctx, merge, kind=kind, checkpoint=saved,
                on_fragment=lambda rows: tally.add(rows, 0, reused=True))
    if saved is not None:
        saved.finish()
    return WriteResult(tally.rows, tally.errors, committed.version)


def update(ctx: WriteContext, values: dict[str, pl.Expr], plan: Plan | None,
           scan: Iterator[pl.DataFrame], *, progress: bool) -> WriteResult:
    """Write new ``values`` (Polars expressions over the matched rows) and recompute the
    dependent columns of ``plan``, for the whole rows ``scan`` yields (with their row ids and
    addresses). One Lance ``Update`` commit: the new rows as new fragments, plus deletion files
    for the old rows in their fragments."""
    ds = ctx.dataset
    matched: dict[int, list[int]] = defaultdict(list)  # fragment id -> row ids to delete
    with report(f"update {ctx.table_name}", enabled=progress) as reporter:
        tally = Tally(moved=lambda rows, _: reporter.advance(rows, errors=tally.errors))
        stream = rewritten_batches(ctx, values, plan, scan, tally, matched)
        first = next(stream, None)
        if first is None:
            return WriteResult(0, 0, ds.version)
        failures = Failures()
        reader = pa.RecordBatchReader.from_batches(ds.schema,
                                                   failures.guard(_chain(first, stream)))
        updated_ds = protocol.rewrite(ctx, reader, matched, failures=failures)
    return WriteResult(tally.rows, tally.errors, updated_ds.version)


def recompute(ctx: WriteContext, plan: Plan, where: Expr | None, *,
              progress: bool) -> WriteResult:
    """Compute the plan's columns again for the rows matching ``where`` (and write them in
    place of those rows, see :func:`update`): in this process, or on the context's Ray
    engine, one task per group of fragments, each writing its rows as new fragments for
    the one commit."""
    if ctx.engine is None:
        scan = scan_frames(ctx.dataset, ctx.definition, ctx.table_name, where,
                           [f.name for f in ctx.dataset.schema], row_ids=True,
                           fetcher=ctx.fetcher)
        return update(ctx, {}, plan, scan, progress=progress)
    with report(f"update {ctx.table_name}", enabled=progress) as reporter:
        tally = Tally(moved=lambda rows, _: reporter.advance(rows, errors=tally.errors))
        written, matched = ray_engine.rewrite(ctx, plan, where, tally)
        if not matched:
            return WriteResult(0, 0, ctx.version)
        updated_ds = protocol.rewrite(ctx, None, matched, failures=Failures(), written=written)
    return WriteResult(tally.rows, tally.errors, updated_ds.version)


def delete(ctx: WriteContext, predicate: str) -> WriteResult:
    """Delete the rows where ``predicate`` (Lance SQL) is true, in one commit."""
    ds = ctx.dataset
    # count the rows where the predicate is true: NOT (p) would also skip rows where p is null
    removed = ds.count_rows(filter=predicate) if predicate != "true" else ds.count_rows()
    if removed == 0:
        return WriteResult(0, 0, ds.version)
    return WriteResult(removed, 0, protocol.delete(ctx, predicate).version)


def _polars_frame(table: pa.Table, names: list[str]) -> pl.DataFrame:
    """The columns ``names`` of ``table`` as a Polars frame (as many rows, no column when
    ``names`` is empty), converted column by column on this thread. ``pl.from_arrow`` of a
    whole table converts on Polars' thread pool, whose threads then spin (``sched_yield``)
    through the Lance write that follows: about 130 calls a 1,000-row insert on two cores,
    competing with Lance's own threads for the CPUs.

    >>> _polars_frame(pa.table({"a": [1, 2], "b": ["x", "y"]}), ["b"]).rows()
    [('x',), ('y',)]
    >>> _polars_frame(pa.table({"a": [1, 2]}), []).shape
    (2, 0)
    """
    if not names:
        return pl.DataFrame(height=table.num_rows)  # type: ignore[call-arg]
    return pl.DataFrame({name: table.column(name) for name in names})


def _failed_rows(columns: dict[str, Any], tdef: TableDef) -> set[int]:
    """Rows of a validated chunk whose media value was kept with an error."""
    failed: set[int] = set()
    for column in tdef.media_columns():
        name = column.info_columns().get("errortype")
        if name in columns and columns[name].null_count < len(columns[name]):
            failed.update(i for i, v in enumerate(columns[name].to_pylist()) if v is not None)
    return failed


def _chain(first: pa.RecordBatch, rest: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    yield first
    yield from rest

"""Bulk ingest on a Ray cluster: tasks read, convert, compute and write; the driver commits once.

With a Ray engine (``lh.connect(..., engine="ray")`` or ``engine=`` on the call),
``import_parquet``, ``import_csv`` and ``insert_files`` split their input into :class:`Shares`:
parts in input order (a Parquet row group, a CSV file, a chunk of media files' rows), each with
its row count when the input says it. Consecutive parts are grouped into about two tasks per
task slot of the cluster, balanced by rows where they are known. Each Ray task
(:func:`write_share`) opens the table at the version the driver read, rebuilds the plan of its
computed columns from the stored definitions (under the same trust rules as here, with this
process's permissions: :mod:`lakehouse.exec.permissions`; nothing is pickled from
storage), reads its parts with the import's reader (data: the files, the types, the
conversion, and lakehouse's own code), validates and computes them exactly as a local insert
does (:func:`lakehouse.exec.writes.insert_fragments`) and writes them as Lance fragment files.
It returns the fragments, not the rows. When the computed columns run a model (an
embedding index's vectors), the tasks run in ``ModelWorker`` actors instead, as a backfill's
do (``model_actors`` of them, ``gpus_per_model_task`` GPUs each), which keep the model loaded
from one task to the next. The driver commits the fragments of every task, in
input order, in one append through the write protocol
(:func:`~lakehouse.exec.protocol.append_written`): readers see the whole import or nothing,
and the rows, values, errors and history are those of the local import.

Failures are those of the local import too. Each task numbers its rows from where its parts
start (error messages name the row of the whole import); when the start is not known in advance
(CSV files) and a task fails, it is run again with the exact start once the tasks before it
are done, so the message names the same row. The error of the earliest failing rows is raised,
after the tasks before it are done; the tasks after it are cancelled. A task whose worker dies
is run again by Ray (``max_retries``): it writes its parts again, and the files of the lost
attempt are never committed, so nothing is lost or stored twice. A task lost past its retries
is an :class:`~lakehouse.errors.EngineTaskError`, and nothing is written.

lance-ray's ``write_lance`` (a Ray Data sink) writes fragments in tasks too, but commits by
itself, from Ray Data's blocks: here the commit must go through the write protocol (rebased or
redone under a concurrent definition change), the rows must be validated and computed by
lakehouse's own plan, and the fragments must keep the input's order.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator, Sequence
from typing import Any, Protocol

import lance
from lance.fragment import FragmentMetadata

from lakehouse.engine import RayEngine
from lakehouse.errors import EngineTaskError, Error, UDFNotFoundError
from lakehouse.exec import protocol, writes
from lakehouse.exec.evaluate import Plan
from lakehouse.exec.permissions import Permissions
from lakehouse.exec.protocol import WriteContext
from lakehouse.exec.ray_engine import (
    BackfillJob,
    connect,
    not_on_worker,
    run_groups,
    runs_models,
)
from lakehouse.exec.writes import WriteResult
from lakehouse.progress import report

#: Tasks per task slot of the cluster (its CPUs over ``cpus_per_task``): a few more tasks than
#: slots, so a slow part does not leave the other slots idle at the end.
TASKS_PER_SLOT = 2
#: What one task returns: the fragments it wrote, its rows and its rows with an error.
ShareResult = tuple[list[FragmentMetadata], int, int]


class Reader(Protocol):
    """Reads parts of an import on a Ray worker: sent to every task, so it holds data and
    lakehouse's own code only (never a function of the caller)."""

    def read(self, parts: Sequence[Any]) -> Iterator[Any]:
        """What a local insert of these consecutive parts takes: Arrow tables or lists of row
        dicts, in the table's types."""
        ...


@dataclasses.dataclass(frozen=True)
class Shares:
    """An import's input split for Ray: its ``parts`` in input order, each one's rows (None
    where the input does not say), and the ``reader`` of parts.

    >>> shares = Shares(RowChunks(), ([{"n": 1}, {"n": 2}], [{"n": 3}]), (2, 1))
    >>> [list(shares.reader.read([shares.parts[i] for i in g]))
    ...  for g in task_parts(shares, 2)]
    [[[{'n': 1}, {'n': 2}]], [[{'n': 3}]]]
    """

    reader: Reader
    parts: tuple[Any, ...]
    rows: tuple[int | None, ...]


class RowChunks:
    """The reader of parts that are the rows themselves (lists of row dicts): ``insert_files``
    makes its rows (the files' URIs and the values of ``extra``) here, and the tasks read the
    media files they name."""

    def read(self, parts: Sequence[Any]) -> Iterator[Any]:
        """The parts as they are."""
        yield from parts


@dataclasses.dataclass(frozen=True)
class ImportJob:
    """What every task of one import needs, sent once to the workers: the table at the
    version read with its computed columns (definitions, not code) and the driver's
    permissions, the reader of parts and ``on_error``."""

    target: BackfillJob
    version: int
    reader: Reader
    on_error: str

    @staticmethod
    def of(ctx: WriteContext, reader: Reader, on_error: str) -> ImportJob:
        computed = tuple(ctx.definition.computed_columns())
        target = BackfillJob(ctx.table_name, ctx.uri, dict(ctx.storage_options), ctx.definition,
                             ctx.definition, computed, ctx.fetch, None, Permissions.held())
        return ImportJob(target, ctx.version, reader, on_error)


def insert(ctx: WriteContext, shares: Shares, *, on_error: str, progress: bool,
           total: int | None) -> WriteResult:
    """Insert every part of ``shares`` on the context's Ray engine (see the module doc), in
    one commit. ``total``, when known, gives the progress bar its length."""
    engine = ctx.engine
    assert engine is not None
    groups = task_parts(shares, TASKS_PER_SLOT * _slots(engine, ctx.table_name))
    offsets = _row_offsets(groups, shares.rows)
    tasks = [([shares.parts[i] for i in group], offset)
             for group, offset in zip(groups, offsets, strict=True)]
    job = ImportJob.of(ctx, shares.reader, on_error)
    models = runs_models(ctx.definition)  # then in actors that keep the model loaded
    results: dict[int, ShareResult] = {}
    with report(f"insert into {ctx.table_name}", enabled=progress, total=total) as reporter:
        try:
            for i, result in run_groups(engine, ctx.table_name, write_share, job, tasks,
                                        what="the import", models=models,
                                        checkpointed=False):
                results[i] = result
                reporter.advance(result[1], errors=result[2])
        except Error as exc:
            failed = next(i for i in range(len(tasks)) if i not in results)
            if tasks[failed][1] is not None or failed == 0 or isinstance(exc, EngineTaskError):
                raise
            # the rows before it are known now: its task again, with the row numbers of the
            # whole import in its messages, as the local import has them
            start = sum(results[i][1] for i in range(failed))
            list(run_groups(engine, ctx.table_name, write_share, job,
                            [(tasks[failed][0], start)], what="the import", models=models,
                            checkpointed=False))
            raise
    ordered = [results[i] for i in range(len(tasks))]
    fragments = [f for written, _, _ in ordered for f in written]
    if not fragments:
        return WriteResult(0, 0, ctx.version)
    rows = sum(r[1] for r in ordered)
    errors = sum(r[2] for r in ordered)
    return WriteResult(rows, errors, protocol.append_written(ctx, fragments).version)


def write_share(job: ImportJob, task: tuple[list[Any], int | None]) -> ShareResult:
    """A task, run on a Ray worker: read its parts, validate and compute their rows (numbered
    from its row offset in messages, 0 where not known) and write them as new fragments (not
    committed)."""
    parts, row_offset = task
    target = job.target
    target.permissions.grant()
    ds = lance.dataset(target.uri, version=job.version,
                       storage_options=target.storage_options or None)
    ctx = WriteContext(target.table_name, target.uri, target.storage_options, ds,
                       target.definition, target.fetch)
    try:
        plan = Plan.for_columns(target.table_name, target.definition,
                                list(target.columns)) if target.columns else None
    except UDFNotFoundError as exc:
        raise not_on_worker(exc, target.udf_modules()) from None
    return writes.insert_fragments(ctx, job.reader.read(parts), plan, on_error=job.on_error,
                                   row_offset=row_offset or 0)


def task_parts(shares: Shares, tasks: int) -> list[range]:
    """The parts of each task: consecutive, at most ``tasks`` groups, with about as many rows
    each where every part's rows are known, else about as many parts.

    >>> [list(g) for g in task_parts(Shares(RowChunks(), (0,) * 5, (10, 10, 40, 10, 10)), 2)]
    [[0, 1, 2], [3, 4]]
    >>> [list(g) for g in task_parts(Shares(RowChunks(), (0,) * 5, (None,) * 5), 2)]
    [[0, 1, 2], [3, 4]]
    """
    count = len(shares.parts)
    if count == 0:
        return []
    if None in shares.rows or not any(shares.rows):
        size = math.ceil(count / tasks)
        return [range(i, min(i + size, count)) for i in range(0, count, size)]
    rows = [n or 0 for n in shares.rows]
    target = sum(rows) / tasks
    groups: list[range] = []
    start = done = 0
    for i, n in enumerate(rows):
        done += n
        if done >= target * (len(groups) + 1) and i + 1 < count:
            groups.append(range(start, i + 1))
            start = i + 1
    return [*groups, range(start, count)]


def _row_offsets(groups: list[range], rows: tuple[int | None, ...]) -> list[int | None]:
    """Where each task's rows start in the import's numbering of rows, where known."""
    offsets: list[int | None] = []
    start: int | None = 0
    for group in groups:
        offsets.append(start)
        for i in group:
            n = rows[i]
            start = None if start is None or n is None else start + n
    return offsets


def _slots(engine: RayEngine, table_name: str) -> int:
    """How many tasks of ``cpus_per_task`` CPUs the cluster runs at once."""
    ray = connect(engine, table_name)
    return max(1, int(ray.cluster_resources().get("CPU", 1) / engine.cpus_per_task))


__all__ = ["ImportJob", "Reader", "RowChunks", "ShareResult", "Shares", "insert", "task_parts",
           "write_share"]

"""Backfills and recomputes on a Ray cluster: the driver plans and commits, Ray tasks
compute fragments.

With ``lh.connect(..., engine="ray")`` (:mod:`lakehouse.engine`) a backfill's fragments, or
groups of ``fragments_per_task`` of them, become Ray tasks. Each task opens the table at the
version the driver read, rebuilds the plan from the column definitions (data: its UDFs are
resolved on the worker under the same trust rules as here, :mod:`lakehouse.trust`, with this
process's permissions, :mod:`lakehouse.exec.permissions`; nothing is pickled from storage),
computes the new columns exactly as this process would
(:func:`lakehouse.exec.fragments.fragment_columns`) and writes them as new column files of its
fragments with Lance's ``merge_columns``. It returns the files, not the values. The driver
records each fragment in the backfill's checkpoint as its task returns and makes the one
``Merge`` commit through the write protocol (:func:`~lakehouse.exec.protocol.add_computed`),
so values, errors, definitions and history are those of a local backfill. A task whose worker
or node dies is run again by Ray (``max_retries``); files of a lost attempt are never
committed. If the driver itself stops, the checkpoint holds what returned, and the same call
resumes from there, on Ray or locally.

A recompute (:func:`rewrite`) is split the same way: each task scans the matching rows of its
fragments, computes them again and writes them as new fragments; the driver commits them in
place of the old rows with the protocol's ``rewrite``.

lance-ray's ``add_columns`` follows the same pattern (``merge_columns`` per fragment in tasks,
one ``Merge`` commit) but commits by itself, returns nothing until every fragment is done and
ships a pickled Python transform; here the commit must go through the write protocol, each
fragment must reach the checkpoint as it finishes, and workers must compute from the stored
definition. So the tasks are plain Ray tasks over Lance's fragment API.
"""

from __future__ import annotations

import dataclasses
import itertools
import os
import socket
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import closing
from typing import Any, TypeVar

import lance
import pyarrow as pa
from lance.fragment import FragmentMetadata

from lakehouse import trust
from lakehouse.engine import EXTRA, RayEngine
from lakehouse.errors import (
    EngineNotInstalledError,
    EngineTaskError,
    EngineUnavailableError,
    UDFNotFoundError,
)
from lakehouse.exec import protocol
from lakehouse.exec.evaluate import MODEL_FUNCTIONS, Plan
from lakehouse.exec.fragments import Tally, fragment_columns, rewritten_batches
from lakehouse.exec.permissions import Permissions
from lakehouse.exec.protocol import Failures, WriteContext
from lakehouse.exec.scan import scan_frames
from lakehouse.exprs import serialize
from lakehouse.exprs.nodes import Call, Expr
from lakehouse.media.policy import FetchPolicy
from lakehouse.metadata import ColumnDef, TableDef

#: What one fragment's task returns: its new data files, the schema Lance gives the table with
#: the new columns, the rows computed and the rows with an error.
FragmentResult = tuple[list[Any], Any, int, int]
CONNECT_TIMEOUT_S = 5.0
_R = TypeVar("_R")
_K = TypeVar("_K")


@dataclasses.dataclass(frozen=True)
class BackfillJob:
    """What every task of one backfill needs, sent once to the workers: the table, its
    definition at the version read, the columns to compute (definitions, not code), the
    fetch policy, the rows a scan batch holds and what the driver allows to be imported and
    loaded (its permissions, granted on the worker)."""

    table_name: str
    uri: str
    storage_options: dict[str, str] = dataclasses.field(repr=False)
    definition: TableDef = dataclasses.field(repr=False)
    plan_definition: TableDef = dataclasses.field(repr=False)
    columns: tuple[ColumnDef, ...]
    fetch: FetchPolicy
    batch_rows: int | None
    permissions: Permissions

    @staticmethod
    def of(ctx: WriteContext, plan: Plan, batch_rows: int | None) -> BackfillJob:
        return BackfillJob(ctx.table_name, ctx.uri, dict(ctx.storage_options), ctx.definition,
                           plan.tdef, tuple(t.column for t in plan.targets), ctx.fetch,
                           batch_rows, Permissions.held())

    def udf_modules(self) -> list[str]:
        """The modules of the UDFs the columns call."""
        found = {node.fn.partition(":")[0] for column in self.columns
                 for node in self.plan_definition.expr(column).walk()
                 if isinstance(node, Call) and ":" in node.fn}
        return sorted(found)


def backfill_merge(ctx: WriteContext, plan: Plan, tally: Tally,
                   batch_rows: int | None) -> protocol.Merge:
    """The :data:`~lakehouse.exec.protocol.Merge` of a backfill on the context's Ray engine:
    one task per group of fragments (a call of a :class:`ModelWorker` actor when the plan runs
    a model), each fragment yielded (and added to ``tally``) as its
    task returns. When a task fails, the error of the earliest failing rows is raised once the
    tasks before it are done; tasks after it, or still running when the backfill stops, are
    cancelled."""
    engine = ctx.engine
    assert engine is not None
    ray = connect(engine, ctx.table_name)
    job = ray.put(BackfillJob.of(ctx, plan, batch_rows))
    task = ray.remote(merge_fragments).options(
        num_cpus=engine.cpus_per_task, max_retries=engine.max_retries, retry_exceptions=False)

    def merge(ds: lance.LanceDataset,
              fragments: list[lance.LanceFragment]) -> Iterator[protocol.Merged]:
        size = engine.fragments_per_task
        groups = [fragments[i:i + size] for i in range(0, len(fragments), size)]
        offsets = _row_offsets(groups, tally.rows)
        actors = _model_actors(ray, engine, len(groups)) if plan.runs_models else []
        pending: dict[Any, tuple[list[lance.LanceFragment], int]] = {}  # task -> its group
        submit = task.remote if not actors else \
            lambda *args: actors[len(pending) % len(actors)].merge.remote(*args)  # round robin
        for group, offset in zip(groups, offsets, strict=True):
            pending[submit(job, ds.version, [f.fragment_id for f in group], offset)] = \
                (group, offset)
        try:
            with closing(_earliest_first(ray, pending, lambda key: key[1], ctx.table_name,
                                         "the backfill", True)) as returned:
                for (group, _), results in returned:
                    for fragment, (files, schema, rows, errors) in zip(group, results,
                                                                       strict=True):
                        tally.add(rows, errors)
                        yield fragment.metadata, files, schema
        finally:
            for actor in actors:  # their CPUs and GPUs go back to the cluster now
                ray.kill(actor)

    return merge


class ModelWorker:
    """A Ray actor for backfills that run a model: its process keeps the model loaded
    (lakehouse's model cache) for every group of fragments it is given."""

    def merge(self, job: BackfillJob, version: int, fragment_ids: list[int],
              row_offset: int) -> list[FragmentResult]:
        return merge_fragments(job, version, fragment_ids, row_offset)

    def run(self, task: Callable[[Any, Any], _R], job: Any, group: Any) -> _R:
        """``task(job, group)`` in this actor's process (:func:`run_groups` with ``models``)."""
        return task(job, group)


def runs_models(tdef: TableDef) -> bool:
    """Whether the computed columns of ``tdef`` run a model (an embedding index's vectors,
    the functions ``Plan.runs_models`` counts): then a bulk import's or a view upkeep's groups
    go to :class:`ModelWorker` actors. Read from the stored definitions alone: the driver
    resolves and imports none of the UDFs the workers run.

    >>> runs_models(t.table_definition)
    False
    """
    return any(isinstance(node, Call) and node.fn.startswith(MODEL_FUNCTIONS)
               for column in tdef.computed_columns() for node in tdef.expr(column).walk())


def _model_actors(ray: Any, engine: RayEngine, groups: int) -> list[Any]:
    """ModelWorker actors for a backfill of ``groups`` groups of fragments, each asking for
    ``cpus_per_task`` CPUs and ``gpus_per_model_task`` GPUs: ``model_actors`` of them, or as
    many as the cluster holds (no more than the groups)."""
    resources = ray.cluster_resources()
    fit = resources.get("GPU", 0) / engine.gpus_per_model_task if engine.gpus_per_model_task \
        else resources.get("CPU", 1) / engine.cpus_per_task
    count = min(groups, engine.model_actors or max(1, int(fit)))
    actor = ray.remote(ModelWorker).options(
        num_cpus=engine.cpus_per_task, num_gpus=engine.gpus_per_model_task,
        max_restarts=engine.max_retries, max_task_retries=engine.max_retries)
    return [actor.remote() for _ in range(count)]


def rewrite(ctx: WriteContext, plan: Plan, where: Expr | None,
            tally: Tally) -> tuple[list[FragmentMetadata], dict[int, list[int]]]:
    """A recompute on the context's Ray engine: each task scans the rows of its fragments
    that match ``where``, computes the plan's columns again and writes the whole rows as new
    fragments (not committed). Returns them, in fragment order, with the rows they replace
    (fragment id -> row ids), for the driver's one commit."""
    engine = ctx.engine
    assert engine is not None
    ray = connect(engine, ctx.table_name)
    job = ray.put(BackfillJob.of(ctx, plan, None))
    task = ray.remote(rewrite_fragments).options(
        num_cpus=engine.cpus_per_task, max_retries=engine.max_retries, retry_exceptions=False)
    ids = [f.fragment_id for f in ctx.dataset.get_fragments()]
    size = engine.fragments_per_task
    condition = serialize.to_json(where) if where is not None else None  # data, not objects
    refs = [task.remote(job, ctx.version, ids[i:i + size], condition)
            for i in range(0, len(ids), size)]
    written: list[FragmentMetadata] = []
    matched: dict[int, list[int]] = {}
    for i, ref in enumerate(refs):  # in fragment order: the first failing rows are reported
        try:
            fragments, replaced, rows, errors = _result(ray, ref, ctx.table_name)
        except BaseException:
            _cancel(ray, refs[i + 1:])
            raise
        tally.add(rows, errors)
        written += fragments
        matched.update(replaced)
    return written, matched


def rewrite_fragments(job: BackfillJob, version: int, fragment_ids: list[int],
                      condition: dict[str, Any] | None) -> tuple[list[FragmentMetadata],
                                                                 dict[int, list[int]], int, int]:
    """A task, run on a Ray worker: the rows of some fragments that match ``condition`` (a
    serialized expression), computed again and written as new fragments (not committed);
    with the rows they replace, rows and errors."""
    job.permissions.grant()
    ds = lance.dataset(job.uri, version=version, storage_options=job.storage_options or None)
    ctx = WriteContext(job.table_name, job.uri, job.storage_options, ds, job.definition,
                       job.fetch)
    plan = _worker_plan(job)
    where = serialize.from_json(condition, lambda i: job.definition.by_id(i).ref()) \
        if condition is not None else None
    scan = scan_frames(ds, job.definition, job.table_name, where, [f.name for f in ds.schema],
                       row_ids=True, fetcher=ctx.fetcher, fragments=fragment_ids)
    tally = Tally()
    matched: defaultdict[int, list[int]] = defaultdict(list)
    batches = rewritten_batches(ctx, {}, plan, scan, tally, matched)
    first = next(batches, None)
    if first is None:
        return [], {}, 0, 0
    failures = Failures()
    reader = pa.RecordBatchReader.from_batches(
        ds.schema, failures.guard(itertools.chain([first], batches)))
    return protocol.write_fragments(ctx, reader, failures), dict(matched), tally.rows, \
        tally.errors


def compact(ctx: WriteContext, tasks: list[Any]) -> list[Any]:
    """The tasks of a compaction plan (Lance's ``CompactionTask``, made to be sent to other
    processes), each run as a Ray task that rewrites its fragments into new files; their
    results in order, for the driver's one ``Rewrite`` commit
    (:func:`lakehouse.exec.protocol.compact`)."""
    engine = ctx.engine
    assert engine is not None
    ray = connect(engine, ctx.table_name)
    run = ray.remote(compact_task).options(
        num_cpus=engine.cpus_per_task, max_retries=engine.max_retries, retry_exceptions=False)
    refs = [run.remote(ctx.uri, dict(ctx.storage_options), ctx.version, task) for task in tasks]
    results = []
    for i, ref in enumerate(refs):
        try:
            results.append(_result(ray, ref, ctx.table_name))
        except BaseException:
            _cancel(ray, refs[i + 1:])
            raise
    return results


def compact_task(uri: str, storage_options: dict[str, str], version: int, task: Any) -> Any:
    """A task, run on a Ray worker: one compaction task on ``version`` (new files, not
    committed)."""
    ds = lance.dataset(uri, version=version, storage_options=storage_options or None)
    return task.execute(ds)


protocol.remote_compaction[:] = [compact]


def merge_fragments(job: BackfillJob, version: int, fragment_ids: list[int],
                    row_offset: int) -> list[FragmentResult]:
    """A task, run on a Ray worker: compute the new columns of some fragments of ``version``
    and write them as new column files (not committed), returning them per fragment."""
    job.permissions.grant()
    options = job.storage_options or None
    ds = lance.dataset(job.uri, version=version, storage_options=options)
    ctx = WriteContext(job.table_name, job.uri, job.storage_options, ds, job.definition,
                       job.fetch)
    plan = _worker_plan(job)
    tally = Tally(rows=row_offset)
    failures = Failures()
    merge = protocol.merge_each(
        ctx, fragment_columns(ctx, plan, failures, tally, job.batch_rows), failures)
    out: list[FragmentResult] = []
    rows, errors = tally.rows, tally.errors
    for _, files, schema in merge(ds, [ds.get_fragment(i) for i in fragment_ids]):
        out.append((files, schema, tally.rows - rows, tally.errors - errors))
        rows, errors = tally.rows, tally.errors
    return out


def _worker_plan(job: BackfillJob) -> Plan:
    """The plan, rebuilt on the worker; a UDF whose module is not there says how to ship it."""
    try:
        return Plan.for_columns(job.table_name, job.plan_definition, list(job.columns))
    except UDFNotFoundError as exc:
        raise not_on_worker(exc, job.udf_modules()) from None


def not_on_worker(exc: UDFNotFoundError, modules: list[str]) -> UDFNotFoundError:
    """The error of a task whose UDF or iterator module (one of ``modules``, the modules the
    work calls) cannot be imported on its Ray worker: which one, and how to ship it there."""
    missing = [m for m in modules if trust.locate(m) is None] or modules or ["<your module>"]
    names = ", ".join(map(repr, missing))
    msg = (f"{exc}. On the Ray worker {socket.gethostname()!r} module {names} cannot be "
           "imported: ship it to the workers with Ray's runtime_env, "
           f"lh.RayEngine(runtime_env={{'py_modules': [<path of {missing[0]}>]}}) or "
           "{'working_dir': <the folder that holds it>}, or ray.init(runtime_env=...) "
           "when this process joins the cluster itself; or install it on every worker")
    return UDFNotFoundError(msg)


def run_groups(engine: RayEngine, table_name: str, task: Callable[[Any, Any], _R], job: Any,
               groups: list[Any], *, what: str, models: bool = False,
               checkpointed: bool = True) -> Iterator[tuple[int, _R]]:
    """``task(job, group)`` as one Ray task per group (``job`` sent to the cluster once),
    yielding ``(index of the group, result)`` as each task returns: how a view's upkeep runs
    (:mod:`lakehouse.views`); ``what`` names the work in messages. When a task fails, the
    error of the earliest failing group is raised once the groups before it are done (the
    results of those are yielded first); groups after it, and tasks still running when the
    caller stops, are cancelled. No groups: no task, and no connection to the cluster. With
    ``models`` (the work runs a model, :func:`runs_models`: a bulk import's or a view's
    embeddings), the groups are shared out to :class:`ModelWorker` actors instead, round
    robin, as a backfill's are: each actor loads the model once and keeps it for every group
    it is given; the actors are killed when the work ends. ``checkpointed``: whether
    the caller keeps each result for the next call (a lost task's message says so)."""
    if not groups:
        return
    ray = connect(engine, table_name)
    shared = ray.put(job)
    remote = ray.remote(task).options(
        num_cpus=engine.cpus_per_task, max_retries=engine.max_retries, retry_exceptions=False)
    actors = _model_actors(ray, engine, len(groups)) if models else []
    pending = {(actors[i % len(actors)].run.remote(task, shared, group) if actors
                else remote.remote(shared, group)): i for i, group in enumerate(groups)}
    try:
        with closing(_earliest_first(ray, pending, lambda index: index, table_name, what,
                                     checkpointed)) as returned:
            yield from returned
    finally:
        for actor in actors:  # their CPUs and GPUs go back to the cluster now
            ray.kill(actor)


def _earliest_first(ray: Any, pending: dict[Any, _K], position: Callable[[_K], int],
                    table_name: str, what: str, checkpointed: bool,
                    ) -> Iterator[tuple[_K, Any]]:
    """``(key, result)`` of each task of ``pending`` (task -> its key) as it returns. When a
    task fails, the tasks whose ``position`` comes after it are cancelled, those before it are
    waited for (their results yielded), then the error of the earliest failing one is raised,
    as a local run reports its first failing row. Tasks still running when the caller stops
    are cancelled."""
    failed: tuple[int, Exception] | None = None
    try:
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            key = pending.pop(ready[0])
            try:
                result = _result(ray, ready[0], table_name, what, checkpointed)
            except Exception as exc:
                at = position(key)
                if failed is None or at < failed[0]:
                    failed = (at, exc)
                later = [ref for ref, other in pending.items() if position(other) > at]
                _cancel(ray, later)
                for ref in later:
                    del pending[ref]
                continue
            yield key, result
    finally:
        _cancel(ray, list(pending))
    if failed is not None:
        raise failed[1]


def _cancel(ray: Any, refs: list[Any]) -> None:
    """Cancel the tasks of ``refs`` that have not finished (Ray 2.60 aborts the driver when
    asked to cancel a task that has finished)."""
    if refs:
        _, running = ray.wait(refs, num_returns=len(refs), timeout=0)
        for ref in running:
            ray.cancel(ref)


def _row_offsets(groups: list[list[lance.LanceFragment]], start: int) -> list[int]:
    """Where each group's rows start in the backfill's numbering of rows (error messages
    name row numbers as a local backfill does): live rows of the groups before it."""
    offsets = []
    for group in groups:
        offsets.append(start)
        for fragment in group:
            md = fragment.metadata
            start += md.physical_rows - (md.deletion_file.num_deleted_rows
                                         if md.deletion_file is not None else 0)
    return offsets


def _result(ray: Any, ref: Any, table_name: str, what: str = "the backfill",
            checkpointed: bool = True) -> Any:
    """A task's result; its own exception as this process would raise it, or EngineTaskError
    when Ray lost the task (its worker or node kept dying). ``what``: the work, for messages;
    ``checkpointed``: whether the work keeps what finished for the next call."""
    try:
        return ray.get(ref)
    except ray.exceptions.RayTaskError as exc:
        cause = exc.cause
        if isinstance(cause, Exception) and not isinstance(cause, ray.exceptions.RayError):
            raise cause from None
        raise EngineTaskError(f"table {table_name!r}: a Ray task of {what} failed: "
                              f"{cause}; nothing was committed, run it again") from exc
    except ray.exceptions.RayError as exc:
        again = ("the fragments that finished are kept in the checkpoint: run the same call "
                 "again to compute the rest") if checkpointed else "run the same call again"
        raise EngineTaskError(
            f"table {table_name!r}: a Ray task of {what} was lost ({type(exc).__name__}: "
            f"{str(exc).splitlines()[0] if str(exc) else ''}); nothing was committed; "
            f"{again}") from exc


def connect(engine: RayEngine, table_name: str) -> Any:
    """The ``ray`` module, connected: the cluster this process joined already, else the one
    ``engine.address`` names, else (address None) a local Ray started here. ``table_name``:
    the table whose write needs it, for messages."""
    try:
        import ray  # the optional ray extra: imported only when a backfill runs on Ray
    except ImportError as exc:
        raise EngineNotInstalledError(
            f"table {table_name!r}: engine='ray' needs Ray, which is not installed: "
            f"{EXTRA}") from exc
    if ray.is_initialized():
        return ray
    env = dict(engine.runtime_env) if engine.runtime_env else None
    try:
        if engine.address is None:
            ray.init(num_cpus=engine.num_cpus, include_dashboard=False, runtime_env=env)
        else:
            _check_reachable(engine.address)
            ray.init(address=engine.address, runtime_env=env)
    except (ConnectionError, TimeoutError) as exc:
        raise EngineUnavailableError(
            f"table {table_name!r}: the backfill cannot run on Ray: no Ray cluster is "
            f"reachable at {engine.address!r} ({exc}); nothing was written. Start one (`ray start "
            "--head`, or KubeRay) and give its address, lh.RayEngine(address='ray://head:10001')"
            ", or use lh.RayEngine(address=None) to start a local Ray in this process") from exc
    return ray


def _check_reachable(address: str) -> None:
    """Fail in seconds when the cluster's address does not answer (Ray itself retries for
    minutes): "host:port" and "ray://host:port", also through ``RAY_ADDRESS``; "auto" without
    ``RAY_ADDRESS`` is Ray's to find."""
    if address == "auto":
        address = os.environ.get("RAY_ADDRESS", "auto")
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        return
    with socket.create_connection((host, int(port)), timeout=CONNECT_TIMEOUT_S):
        pass


__all__ = ["BackfillJob", "ModelWorker", "backfill_merge", "compact", "compact_task", "connect",
           "merge_fragments", "not_on_worker", "rewrite", "rewrite_fragments", "run_groups",
           "runs_models"]

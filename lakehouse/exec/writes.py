"""Data changes as single Lance commits: insert (append), backfill (add_columns), update
(merge_insert on the row key) and delete.

Each function takes a dataset checked out at the version the change is based on, does all the
computing first (streamed, in bounded memory), and commits exactly once at the end. An exception
anywhere before the commit leaves the table at that version.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from collections.abc import Iterator
from typing import Any

import lance
import polars as pl
import pyarrow as pa

from lakehouse.errors import ComputeError, ConcurrentWriteError, StorageError
from lakehouse.exec import intake
from lakehouse.exec.evaluate import Plan
from lakehouse.functions.media import release_batch_state
from lakehouse.media.blobs import is_blob, to_blob, without_referenced
from lakehouse.media.fetch import Fetcher
from lakehouse.media.intake import MediaOptions
from lakehouse.metadata import ROW_ADDRESS, ROW_ID, TableDef
from lakehouse.progress import report

BACKFILL_BATCH_ROWS = 65_536
MODEL_BATCH_ROWS = 1_024  # backfills that run a model: progress moves, memory stays small


@dataclasses.dataclass(frozen=True)
class WriteResult:
    """What a data change did: rows written, rows whose computed values recorded an error, and
    the table version it created (unchanged when nothing was written)."""

    rows_written: int
    rows_with_errors: int
    version: int


@dataclasses.dataclass(frozen=True)
class Target:
    """The dataset a change applies to, and how to open it."""

    table: str
    uri: str
    storage_options: dict[str, str]
    dataset: lance.LanceDataset
    tdef: TableDef


    @property
    def fetcher(self) -> Fetcher:
        """Reads media sources with the table's storage options."""
        return Fetcher(self.storage_options)


def insert(target: Target, data: Any, *, progress: bool, on_error: str = "abort",
           total: int | None = None) -> WriteResult:
    """Append rows (validated, with their computed columns) in one commit. ``total``, when
    known, gives the progress bar its length."""
    tdef = target.tdef
    computed = tdef.computed_columns()
    plan = Plan.for_columns(target.table, tdef, computed) if computed else None
    schema = target.dataset.schema
    counts = {"rows": 0, "errors": 0}
    media = tdef.media_columns()
    reused = frozenset(c.name for c in media if plan is not None and c.name in plan.read_columns)
    options = MediaOptions(on_error=on_error, fetcher=target.fetcher, reused=reused)
    chunk_rows = intake.MEDIA_CHUNK_ROWS if media else \
        MODEL_BATCH_ROWS if plan is not None and plan.runs_models else intake.DEFAULT_CHUNK_ROWS

    def batches(reporter: Any) -> Iterator[pa.RecordBatch]:
        for chunk in intake.chunks(data, chunk_rows):
            offset = counts["rows"]
            base = intake.validate(chunk, tdef, target.table, offset, options)
            n = base.num_rows
            if n == 0:
                continue
            columns: dict[str, Any] = {c: base.column(c) for c in base.column_names}
            media_failed = _failed_rows(columns, tdef)
            if plan is not None:
                frame = pl.from_arrow(base.select(plan.read_columns)) if plan.read_columns \
                    else pl.DataFrame(height=n)  # type: ignore[call-arg]
                out, failed = plan.run(frame, row_offset=offset)
                media_failed |= failed
                for name in plan.output_names:
                    columns[name] = out.get_column(name).to_arrow()
            if media:
                release_batch_state()
            counts["errors"] += len(media_failed)
            counts["rows"] += n
            reporter.advance(n)
            yield from _assemble(_without_referenced(columns, tdef), schema).to_batches()

    with report(f"insert into {target.table}", enabled=progress, total=total) as reporter:
        stream = batches(reporter)
        first = next(stream, None)
        if first is None:
            return WriteResult(0, 0, target.dataset.version)
        failures = _Failures()
        reader = pa.RecordBatchReader.from_batches(schema, failures.guard(_chain(first, stream)))
        ds = commit(target, lambda: lance.write_dataset(
            reader, target.uri, schema=schema, mode="append",
            storage_options=target.storage_options or None,
            transaction_properties={"lakehouse.operation": "insert"},
        ), failures)
    return WriteResult(counts["rows"], counts["errors"], ds.version)


def backfill(target: Target, plan: Plan, *, progress: bool) -> WriteResult:
    """Add the plan's columns to every existing row with Lance data evolution (new column files
    only), computing them in batches; one commit."""
    ds = target.dataset
    fields = plan.output_fields()
    total = ds.count_rows()
    counts = {"rows": 0, "errors": 0}
    if total == 0:
        ds.add_columns(fields)
        return WriteResult(0, 0, ds.version)
    output_schema = pa.schema(fields)
    read = plan.read_columns
    if plan.reads_tables or any(c.name in read for c in target.tdef.media_columns()):
        return _backfill_streamed(target, plan, progress=progress)

    with report(f"compute {', '.join(plan.output_names)}", enabled=progress,
                total=total) as reporter:

        failures = _Failures()

        def compute(batch: pa.RecordBatch) -> pa.RecordBatch:
            frame = pl.from_arrow(batch) if read else pl.DataFrame(height=batch.num_rows)  # type: ignore[call-arg]
            out, failed = plan.run(frame, row_offset=counts["rows"])  # type: ignore[arg-type]
            counts["rows"] += batch.num_rows
            counts["errors"] += len(failed)
            reporter.advance(batch.num_rows)
            arrays = [out.get_column(f.name).to_arrow().cast(f.type) for f in fields]
            return pa.RecordBatch.from_arrays(arrays, schema=output_schema)

        udf = lance.batch_udf(output_schema=output_schema)(failures.wrap(compute))
        batch_rows = MODEL_BATCH_ROWS if plan.runs_models else BACKFILL_BATCH_ROWS
        commit(target, lambda: ds.add_columns(udf, read_columns=read or [ds.schema[0].name],
                                               batch_size=batch_rows), failures)
    return WriteResult(counts["rows"], counts["errors"], ds.version)


def _backfill_streamed(target: Target, plan: Plan, *, progress: bool) -> WriteResult:
    """Backfill for plans that read media or run queries: Lance's column UDFs cannot read blob
    columns nor start Lance reads themselves, so the rows are scanned in order (blobs as bytes,
    references fetched), computed, and added as new
    columns from a stream. Still one commit, and only the new columns are written."""
    from lakehouse.queries import scan_frames

    ds = target.dataset
    fields = plan.output_fields()
    schema = pa.schema(fields)
    counts = {"rows": 0, "errors": 0}
    # a second handle on the same version: Lance's add_columns holds the first one
    source = lance.dataset(target.uri, version=ds.version,
                           storage_options=target.storage_options or None)
    frames = scan_frames(source, target.tdef, target.table, None, plan.read_columns,
                         fetcher=target.fetcher)

    def batches(reporter: Any) -> Iterator[pa.RecordBatch]:
        for frame in frames:
            out, failed = plan.run(frame, row_offset=counts["rows"])
            release_batch_state()
            counts["rows"] += frame.height
            counts["errors"] += len(failed)
            reporter.advance(frame.height)
            columns = {f.name: out.get_column(f.name).to_arrow() for f in fields}
            yield from _assemble(columns, schema).to_batches()

    with report(f"compute {', '.join(plan.output_names)}", enabled=progress,
                total=ds.count_rows()) as reporter:
        failures = _Failures()
        reader = pa.RecordBatchReader.from_batches(schema, failures.guard(batches(reporter)))
        commit(target, lambda: ds.add_columns(reader), failures)
    return WriteResult(counts["rows"], counts["errors"], ds.version)


def update(target: Target, values: dict[str, pl.Expr], plan: Plan | None,
           scan: Iterator[pl.DataFrame], *, progress: bool) -> WriteResult:
    """Write new ``values`` (Polars expressions over the matched rows) and recompute the
    dependent columns of ``plan``, for the whole rows ``scan`` yields (with their row ids and
    addresses). One Lance ``Update`` commit: the new rows as new fragments, plus deletion files
    for the old rows in their fragments."""
    ds = target.dataset
    schema = ds.schema
    counts = {"rows": 0, "errors": 0}
    matched: dict[int, list[int]] = defaultdict(list)  # fragment id -> row ids to delete

    def batches(reporter: Any) -> Iterator[pa.RecordBatch]:
        for frame in scan:
            if frame.height == 0:
                continue
            fragments = (frame.get_column(ROW_ADDRESS) // (1 << 32)).to_list()
            for fragment, row_id in zip(fragments, frame.get_column(ROW_ID).to_list(),
                                        strict=True):
                matched[fragment].append(row_id)
            frame = frame.with_columns(**values)
            if plan is not None:
                frame, failed = plan.run(frame, row_offset=counts["rows"])
                counts["errors"] += len(failed)
            counts["rows"] += frame.height
            reporter.advance(frame.height)
            columns = {f.name: frame.get_column(f.name).to_arrow() for f in schema}
            yield from _assemble(_without_referenced(columns, target.tdef), schema).to_batches()

    def write_and_commit() -> lance.LanceDataset:
        new = lance.fragment.write_fragments(reader, ds, schema=schema,
                                             storage_options=target.storage_options or None)
        updated, removed = [], []
        for fragment_id, row_ids in matched.items():
            ids = ", ".join(str(i) for i in row_ids)
            kept = ds.get_fragment(fragment_id).delete(f"{ROW_ID} IN ({ids})")
            if kept is None:
                removed.append(fragment_id)
            else:
                updated.append(kept)
        operation = lance.LanceOperation.Update(
            removed_fragment_ids=removed, updated_fragments=updated, new_fragments=new)
        return lance.LanceDataset.commit(ds, operation, read_version=ds.version,
                                         storage_options=target.storage_options or None)

    with report(f"update {target.table}", enabled=progress) as reporter:
        stream = batches(reporter)
        first = next(stream, None)
        if first is None:
            return WriteResult(0, 0, ds.version)
        failures = _Failures()
        reader = pa.RecordBatchReader.from_batches(schema, failures.guard(_chain(first, stream)))
        updated_ds = commit(target, write_and_commit, failures)
    return WriteResult(counts["rows"], counts["errors"], updated_ds.version)


def delete(target: Target, predicate: str) -> WriteResult:
    ds = target.dataset
    # count the rows where the predicate is true: NOT (p) would also skip rows where p is null
    removed = ds.count_rows(filter=predicate) if predicate != "true" else ds.count_rows()
    if removed == 0:
        return WriteResult(0, 0, ds.version)
    commit(target, lambda: ds.delete(predicate))
    return WriteResult(removed, 0, ds.version)


def _failed_rows(columns: dict[str, Any], tdef: TableDef) -> set[int]:
    """Rows of a validated chunk whose media value was kept with an error."""
    failed: set[int] = set()
    for column in tdef.media_columns():
        name = column.info_columns().get("errortype")
        if name in columns and columns[name].null_count < len(columns[name]):
            failed.update(i for i, v in enumerate(columns[name].to_pylist()) if v is not None)
    return failed


def _without_referenced(columns: dict[str, Any], tdef: TableDef) -> dict[str, Any]:
    """Drop the bytes of ``store="reference"`` values that have a source URI to read them from."""
    out = dict(columns)
    for column in tdef.media_columns():
        uri = column.info_columns().get("fileurl")
        if column.type.store == "reference" and uri in out:  # type: ignore[attr-defined]
            out[column.name] = without_referenced(out[column.name], out[uri])
    return out


def _assemble(columns: dict[str, Any], schema: pa.Schema) -> pa.Table:
    arrays = []
    for field in schema:
        arr = columns[field.name]
        if is_blob(field.type):
            arr = to_blob(arr)
        elif arr.type != field.type:
            arr = arr.cast(field.type)
        arrays.append(arr)
    return pa.Table.from_arrays(arrays, schema=schema)


class _Failures:
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

    def wrap(self, fn: Any) -> Any:
        def wrapped(*args: Any) -> Any:
            try:
                return fn(*args)
            except BaseException as exc:
                self.first = self.first or exc
                raise
        return wrapped


def _chain(first: pa.RecordBatch, rest: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    yield first
    yield from rest


def commit(target: Target, action: Any, failures: _Failures | None = None) -> Any:
    """Run a committing Lance call, turning its failures into lakehouse errors."""
    try:
        return action()
    except BaseException as exc:
        if failures is not None and failures.first is not None and failures.first is not exc:
            raise failures.first from None
        if isinstance(exc, ComputeError) or not isinstance(exc, OSError):
            raise
        text = str(exc)
        if "conflict" in text.lower() or "retry" in text.lower():
            raise ConcurrentWriteError(
                f"table {target.table!r}: the write kept conflicting with concurrent writers; "
                f"nothing was written, try again ({text})"
            ) from exc
        raise StorageError(f"table {target.table!r}: the write failed: {text}") from exc

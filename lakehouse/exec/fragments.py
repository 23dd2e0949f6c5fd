"""A backfill's new columns, computed fragment by fragment: the same code in this process
(:func:`lakehouse.exec.writes.backfill`) and in the tasks of a Ray engine
(:mod:`lakehouse.exec.ray_engine`)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from typing import Any

import lance
import polars as pl
import pyarrow as pa

from lakehouse.exec.evaluate import Plan
from lakehouse.exec.protocol import Failures, WriteContext
from lakehouse.exec.scan import scan_frames
from lakehouse.functions.media import release_batch_state
from lakehouse.media.blobs import is_blob, to_blob, without_referenced
from lakehouse.metadata import RETIRED_PREFIX, ROW_ADDRESS, ROW_ID, TableDef


@dataclasses.dataclass
class Tally:
    """What a backfill has done so far: rows computed, rows with an error, rows taken from a
    checkpoint; ``moved`` is told of each step (a progress bar, a checkpoint's progress)."""

    rows: int = 0
    errors: int = 0
    reused: int = 0
    moved: Callable[[int, bool], None] = lambda rows, reused: None

    def add(self, rows: int, errors: int, *, reused: bool = False) -> None:
        if reused:
            self.reused += rows
        else:
            self.rows += rows
            self.errors += errors
        self.moved(rows, reused)


def fragment_columns(ctx: WriteContext, plan: Plan, failures: Failures, tally: Tally,
                     batch_rows: int | None) -> Callable[[lance.LanceDataset, int],
                                                         pa.RecordBatchReader]:
    """``compute(ds, fragment_id)``: the plan's new columns for the live rows of one
    fragment, in order (media as bytes, references fetched), computed in batches as Lance
    pulls them; each batch is added to ``tally``, whose row count numbers the rows in error
    messages. ``batch_rows`` rows are scanned at a time (None: the scan's own choice). The
    same in this process and on a Ray worker."""
    fields = plan.output_fields()
    schema = pa.schema(fields)
    read = plan.read_columns

    def compute(source: lance.LanceDataset, fragment_id: int) -> pa.RecordBatchReader:
        # a second handle on the version: Lance's merge_columns holds the first one
        frames = scan_frames(source.checkout_version(source.version), ctx.definition,
                             ctx.table_name, None, read, row_ids=not read,
                             fetcher=ctx.fetcher, fragments=[fragment_id],
                             batch_rows=batch_rows)

        def batches() -> Iterator[pa.RecordBatch]:
            for frame in frames:
                out, failed = plan.run(frame, row_offset=tally.rows)
                release_batch_state()
                tally.add(frame.height, len(failed))
                columns = {f.name: out.get_column(f.name).to_arrow() for f in fields}
                yield from assemble(columns, schema).to_batches()

        return pa.RecordBatchReader.from_batches(schema, failures.guard(batches()))

    return compute


def assemble(columns: dict[str, Any], schema: pa.Schema) -> pa.Table:
    """The batch in the stored schema's order and types. A column replaced by a new definition
    may linger for one commit under its retired name (see ``switch_column``): it is null."""
    rows = len(next(iter(columns.values()))) if columns else 0
    arrays = []
    for field in schema:
        if field.name not in columns and field.name.startswith(RETIRED_PREFIX):
            arrays.append(pa.nulls(rows, field.type))
            continue
        arr = columns[field.name]
        if is_blob(field.type):
            arr = to_blob(arr)
        elif arr.type != field.type:
            arr = arr.cast(field.type)
        arrays.append(arr)
    return pa.Table.from_arrays(arrays, schema=schema)


def rewritten_batches(ctx: WriteContext, values: dict[str, pl.Expr], plan: Plan | None,
                      scan: Iterator[pl.DataFrame], tally: Tally,
                      matched: dict[int, list[int]]) -> Iterator[pa.RecordBatch]:
    """The rows ``scan`` yields (whole rows, with their row ids and addresses) with new
    ``values`` and the plan's columns computed again, in the stored schema; each row's id is
    added to ``matched`` (fragment id -> row ids), the rows it replaces. How an update and a
    recompute make their new rows, in this process and on a Ray worker."""
    schema = ctx.dataset.schema
    for frame in scan:
        if frame.height == 0:
            continue
        fragments = (frame.get_column(ROW_ADDRESS) // (1 << 32)).to_list()
        for fragment, row_id in zip(fragments, frame.get_column(ROW_ID).to_list(),
                                    strict=True):
            matched[fragment].append(row_id)
        frame = frame.with_columns(**values)
        failed: set[int] = set()
        if plan is not None:
            frame, failed = plan.run(frame, row_offset=tally.rows)
        tally.add(frame.height, len(failed))
        columns = {f.name: frame.get_column(f.name).to_arrow() for f in schema}
        yield from assemble(without_referenced_bytes(columns, ctx.definition),
                            schema).to_batches()


def without_referenced_bytes(columns: dict[str, Any], tdef: TableDef) -> dict[str, Any]:
    """Drop the bytes of ``store="reference"`` values that have a source URI to read them from."""
    out = dict(columns)
    for column in tdef.media_columns():
        uri = column.info_columns().get("fileurl")
        if column.type.store == "reference" and uri in out:  # type: ignore[attr-defined]
            out[column.name] = without_referenced(out[column.name], out[uri])
    return out

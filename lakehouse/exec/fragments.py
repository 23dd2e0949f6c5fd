"""A backfill's new columns, computed fragment by fragment: the same code in this process
(:func:`lakehouse.exec.writes.backfill`) and in the tasks of a Ray engine
(:mod:`lakehouse.exec.ray_engine`)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from typing import Any

import lance
import pyarrow as pa

from lakehouse.exec.evaluate import Plan
from lakehouse.exec.protocol import Failures, WriteContext
from lakehouse.exec.scan import scan_frames
from lakehouse.functions.media import release_batch_state
from lakehouse.media.blobs import is_blob, to_blob
from lakehouse.metadata import RETIRED_PREFIX


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

"""Long work: `recompute` (computed values again, for chosen rows or failed cells only) and
`jobs` (unfinished backfills: their progress, read from another process while they run, and
discarding the abandoned ones).

    $ lakehouse recompute photos caption --errors-only
    $ lakehouse recompute books decade --where "year > 2000" --no-cascade
    $ lakehouse jobs photos
    $ lakehouse jobs photos --format json
    $ lakehouse jobs photos --discard 0123456789abcdef

A backfill (a new computed column, an embedding index's vectors) records each finished fragment
in a checkpoint kept with the table; `jobs` lists those checkpoints. A job is resumed by running
the command that started it again: finished fragments are kept and only the rest is computed.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Annotated

import typer

from lakehouse_cli import output
from lakehouse_cli.common import (
    CommandError,
    ProgressOption,
    RootOption,
    TableArgument,
    library_errors,
    open_table,
    progress_bars,
)
from lakehouse_cli.output import FormatOption, OutputOption

if TYPE_CHECKING:
    import polars as pl


def recompute(
    ctx: typer.Context,
    table: Annotated[str, typer.Argument(metavar="TABLE", show_default=False,
                                         help="Table (or view) whose values to compute again.")],
    columns: Annotated[list[str], typer.Argument(
        metavar="COLUMN...", show_default=False,
        help="Computed columns to compute again, e.g. 'caption'.")],
    errors_only: Annotated[bool, typer.Option(
        "--errors-only",
        help="Only the rows where one of the COLUMNs recorded an error (a column added with "
        "--on-error ignore): retry the cells a flaky model or service failed.")] = False,
    where: Annotated[str | None, typer.Option(
        "--where", "-w", metavar="CONDITION", show_default=False,
        help="Only the rows where this condition holds, e.g. \"year > 2000\".")] = None,
    cascade: Annotated[bool, typer.Option(
        "--cascade/--no-cascade",
        help="Also recompute the computed columns that depend on the COLUMNs.")] = True,
    progress: ProgressOption = None,
    root: RootOption = None,
) -> None:
    """Compute the stored values of computed columns again, in one new version.

    For every row (or those matching --where, or with --errors-only those whose COLUMNs
    recorded an error), and by default the computed columns that depend on them. Prints:
    recomputed COLUMNS of TABLE: N rows (E with errors), version V."""
    import lakehouse as lh

    with library_errors(ctx), progress_bars(progress):
        t = open_table(root, table)
        condition = None if where is None else lh.parse_condition(where, t)
        result = lh.Table.recompute(t, columns, condition, errors_only=errors_only,
                                    cascade=cascade)
    typer.echo(f"recomputed {', '.join(columns)} of {table}: {result.rows_written:,} rows "
               f"({result.rows_with_errors:,} with errors), version {result.version}")


def jobs(
    ctx: typer.Context,
    table: TableArgument,
    discard: Annotated[str | None, typer.Option(
        "--discard", metavar="JOB", show_default=False,
        help="Throw away the checkpoint of job JOB (its id, as listed) instead of listing.")
    ] = None,
    fmt: FormatOption = output.Format.table,
    out: OutputOption = None,
    root: RootOption = None,
) -> None:
    """List a table's unfinished backfills (new computed columns, embedding indexes).

    One row per job: state, rows done of the total, percent, rate, time left, rows with
    errors, its columns and its id. A job is running while its progress moved in the last
    minute, else abandoned (its process crashed, was killed or interrupted); the list is read
    from the table, so another process can watch a running job. To resume an abandoned job,
    run the command that started it again (e.g. `lakehouse index add TABLE COLUMN --model
    ...`, or the same add_computed_column call): its finished fragments are kept and only the
    rest is computed. --discard JOB throws a job away. --format json (csv, parquet) writes
    every field of the library's t.jobs(), with rates in rows/s and times left in seconds."""
    import lakehouse as lh

    with library_errors(ctx):
        t = open_table(root, table)
        if discard is not None:
            if not lh.Table.discard_job(t, discard):  # a column may be called discard_job
                raise CommandError(f"table {table!r} has no unfinished job {discard!r}; "
                                   f"`lakehouse jobs {table}` lists them")
            typer.echo(f"discarded job {discard} of {table}")
            return
        frame = lh.Table.jobs(t)  # a column may be called jobs
        if fmt is output.Format.table:
            if frame.is_empty():
                typer.echo(f"{table} has no unfinished jobs")
                return
            frame = for_people(frame)
        output.write(frame, fmt, out)


def for_people(jobs: pl.DataFrame) -> pl.DataFrame:
    """``t.jobs()`` as the `jobs` table shows it: ``1,200/8,000`` rows, a percent, a rate,
    the time left as ``h:mm:ss`` (only while the job runs), and the columns as one text."""
    import polars as pl

    rows = [{
        "state": job["state"],
        "rows": f"{job['rows_done']:,}/{job['rows_total']:,}",
        "%": round(100 * job["rows_done"] / job["rows_total"], 1) if job["rows_total"] else None,
        "rows/s": None if job["rows_per_s"] is None else f"{job['rows_per_s']:,.0f}",
        "eta": _duration(job["eta_s"]) if job["state"] == "running" else None,
        "errors": job["errors"],
        "kind": job["kind"],
        "columns": ", ".join(job["columns"]),
        "job": job["job"],
        "updated": job["updated"],
    } for job in jobs.iter_rows(named=True)]
    return pl.DataFrame(rows, schema={"state": pl.String, "rows": pl.String, "%": pl.Float64,
                                      "rows/s": pl.String, "eta": pl.String,
                                      "errors": pl.Int64, "kind": pl.String,
                                      "columns": pl.String, "job": pl.String,
                                      "updated": jobs.schema["updated"]})


def _duration(seconds: float | None) -> str | None:
    """``3725.2`` -> ``"1:02:06"`` (rounded up, as the progress bar shows it)."""
    if seconds is None:
        return None
    minutes, secs = divmod(math.ceil(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}"

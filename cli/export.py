"""Data out: `export` (a table or its filtered rows to a Parquet file) and `sql` (one SQL query
over the lakehouse's tables).

    $ lakehouse export photos photos.parquet --media uri --where "width > 512"
    $ lakehouse export books s3://other-bucket/books.parquet --select "title, year"
    $ lakehouse sql "SELECT b.title, count(*) AS n FROM books b JOIN loans l ON b.id = l.book
          GROUP BY b.title ORDER BY n DESC" --format csv
"""

from __future__ import annotations

import enum
from typing import Annotated, Any

import typer

from lakehouse_cli import output
from lakehouse_cli.common import (
    CommandError,
    ProgressOption,
    RootOption,
    TableArgument,
    connect,
    library_errors,
    open_table,
    progress_bars,
)
from lakehouse_cli.data import WhereOption
from lakehouse_cli.output import FormatOption, OutputOption


class ExportMedia(enum.StrEnum):
    """How `export` writes media values."""

    bytes = "bytes"
    uri = "uri"


class SQLMedia(enum.StrEnum):
    """What `sql` does with media columns."""

    exclude = "exclude"
    bytes = "bytes"


def _command_line(message: str) -> str:
    """A library hint in the command line's words."""
    return message.replace("pass overwrite=True", "pass --overwrite") \
        .replace("media='bytes'", "--media bytes")


def export(
    ctx: typer.Context,
    table: TableArgument,
    path: Annotated[str, typer.Argument(
        metavar="PATH", help="The Parquet file to write: a local path or s3://bucket/key (any "
        "bucket, reached with the lakehouse's S3 settings).", show_default=False)],
    media: Annotated[ExportMedia, typer.Option(
        "--media", help="Media columns as their bytes, or as the URIs they were inserted from "
        "(uri).", case_sensitive=False)] = ExportMedia.bytes,
    where: WhereOption = None,
    select: Annotated[str | None, typer.Option(
        "--select", "--columns", "-s", metavar="COLUMNS",
        help="Columns and expressions to write, e.g. \"title, decade = year // 10 * 10\" "
        "(default: every column, computed ones included).", show_default=False)] = None,
    overwrite: Annotated[bool, typer.Option(
        "--overwrite", help="Replace PATH if it exists (else that is an error).")] = False,
    progress: ProgressOption = None,
    root: RootOption = None,
) -> None:
    """Write a table's rows to a Parquet file, batch by batch, from its current version.

    Hidden bookkeeping columns are left out. Prints: wrote N rows of TABLE (version V) to
    PATH."""
    import lakehouse as lh

    with library_errors(ctx), progress_bars(progress):
        t = open_table(root, table)
        q: Any = t if where is None else t.where(lh.parse_condition(where, t))
        if select is not None:
            q = q.select(*lh.parse_selection(select, t))
        try:
            result = q.to_parquet(path, media=media.value, overwrite=overwrite)
        except (lh.OutputExistsError, lh.UnsupportedError) as exc:
            raise CommandError(_command_line(str(exc))) from None
    typer.echo(f"wrote {result.rows_written:,} rows of {table} (version {result.version}) "
               f"to {path}")


def sql(
    ctx: typer.Context,
    statement: Annotated[str, typer.Argument(
        metavar="STATEMENT", help="One SELECT query; tables by name, a name holding '/' in "
        "double quotes (\"ml/images\"), \"name:3\" for version 3.", show_default=False)],
    media: Annotated[SQLMedia, typer.Option(
        "--media", help="Media columns left out (exclude), or kept as bytes.",
        case_sensitive=False)] = SQLMedia.exclude,
    fmt: FormatOption = output.Format.table,
    out: OutputOption = None,
    root: RootOption = None,
) -> None:
    """Run one SQL query over the lakehouse's tables (Polars' SQL engine).

    Only reads of the lakehouse's tables run: file functions (read_parquet...), COPY and
    other statements are refused. Prints a table, JSON, JSON Lines, CSV or Parquet; media
    values (--media bytes) as in `query`."""
    with library_errors(ctx):
        frame = connect(root).sql(statement, media=media.value)
        output.write(frame, fmt, out)

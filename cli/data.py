"""Data commands: `ingest` (files, Parquet, CSV), `query` and `search`.

    $ lakehouse ingest photos 'pictures/**/*.jpg'
    $ lakehouse ingest beans 's3://bucket/beans/train-*.parquet'
    $ lakehouse query books --where "year > 1970" --select "title, year" --format json
    $ lakehouse search photos image "a cat on a sofa" -k 5

Where, select and order-by strings are parsed into expressions by ``lh.parse_condition`` and
``lh.parse_selection`` (Python's own parser, a whitelist of node kinds; nothing is evaluated).
"""

from __future__ import annotations

import enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from lakehouse_cli import output
from lakehouse_cli.common import (
    CommandError,
    OnErrorOption,
    ProgressOption,
    RootOption,
    TableArgument,
    connect,
    library_errors,
    open_table,
    progress_bars,
)
from lakehouse_cli.output import FormatOption, OutputOption

if TYPE_CHECKING:
    import polars as pl

    import lakehouse as lh

WhereOption = Annotated[
    str | None,
    typer.Option("--where", "-w", help="Keep rows where this condition holds, e.g. "
                 "\"year > 1970 and author == 'Le Guin'\".", show_default=False),
]
SelectOption = Annotated[
    str | None,
    typer.Option("--select", "-s", help="Output columns and expressions, e.g. "
                 "\"title, decade = year // 10 * 10, image.fileurl\" (default: every column).",
                 show_default=False),
]


class IngestFormat(enum.StrEnum):
    """What the sources of `ingest` hold."""

    auto = "auto"
    files = "files"
    parquet = "parquet"
    csv = "csv"


# --------------------------------------------------------------------------------------------
# ingest
# --------------------------------------------------------------------------------------------


def _source_kind(sources: list[str]) -> IngestFormat:
    """Parquet or CSV by the sources' extensions (globs included), else media files."""
    from lakehouse.ingest import CSV_EXTENSIONS, PARQUET_EXTENSIONS

    def kind(source: str) -> IngestFormat:
        name = source.lower().rstrip("/")
        if name.endswith(tuple("." + e for e in PARQUET_EXTENSIONS)):
            return IngestFormat.parquet
        if name.endswith(tuple("." + e for e in CSV_EXTENSIONS)):
            return IngestFormat.csv
        return IngestFormat.files

    kinds = {kind(s) for s in sources}
    if len(kinds) > 1:
        raise CommandError("the sources mix " + " and ".join(sorted(k.value for k in kinds))
                           + "; ingest each kind in its own command")
    return kinds.pop()


def ingest(
    ctx: typer.Context,
    table: Annotated[str, typer.Argument(metavar="TABLE", help="Table to fill.",
                                         show_default=False)],
    sources: Annotated[list[str], typer.Argument(
        metavar="SOURCES...", help="Files, folders, globs ('photos/**/*.jpg') or s3:// "
        "prefixes of media files; or Parquet shards or CSV files (local or s3://).",
        show_default=False)],
    fmt: Annotated[IngestFormat, typer.Option(
        "--format", help="What the sources hold; auto: Parquet or CSV by their extension, "
        "else media files (a folder of Parquet shards needs --format parquet).",
        case_sensitive=False)] = IngestFormat.auto,
    column: Annotated[str | None, typer.Option(
        "--column", "-c", help="Media column the files go to (default: the table's only "
        "one).", show_default=False)] = None,
    replace: Annotated[bool, typer.Option(
        "--replace", help="Parquet and CSV: replace an existing table (its earlier versions "
        "stay in its history) instead of adding the rows to it.")] = False,
    on_error: OnErrorOption = "abort",
    progress: ProgressOption = None,
    root: RootOption = None,
) -> None:
    """Insert media files, or rows from Parquet shards or CSV files.

    Media files go into an existing table (create it first with `lakehouse create`), one row
    per file, in one new version. Parquet and CSV rows are added to an existing table (checked
    against its column types, in one new version), or create the table, with column types taken
    from the data. Prints: wrote N rows (M with errors) to TABLE, version V."""
    with library_errors(ctx), progress_bars(progress):
        kind = _source_kind(sources) if fmt is IngestFormat.auto else fmt
        if kind is IngestFormat.files:
            if replace:
                raise CommandError("--replace is for Parquet and CSV sources; media files are "
                                   "added to the table's rows")
            result = _media_table(root, table).insert_files(sources, column=column,
                                                            on_error=on_error)
        else:
            if column is not None:
                raise CommandError("--column is for media files; Parquet and CSV columns keep "
                                   "their names")
            from lakehouse.ingest import import_csv, import_parquet

            importer = import_parquet if kind is IngestFormat.parquet else import_csv
            result = importer(connect(root), table, sources, on_error=on_error,
                              if_exists="replace" if replace else "append")
    typer.echo(f"wrote {result.rows_written:,} rows ({result.rows_with_errors:,} with errors) "
               f"to {table}, version {result.version}")


def _media_table(root: str | None, table: str) -> lh.Table:
    """The table media files go to, which must exist (the files say nothing of its columns)."""
    import lakehouse as lh

    db = connect(root)
    try:
        return db.get_table(table)
    except lh.TableNotFoundError:
        raise CommandError(f"table {table!r} does not exist in {db.root}; create it first, "
                           f"e.g. lakehouse create {table} --schema 'image:image'") from None


# --------------------------------------------------------------------------------------------
# query and search
# --------------------------------------------------------------------------------------------


def _selection(text: str | None, t: lh.Table) -> list[tuple[str | None, lh.Expr]]:
    """The outputs a ``--select`` string names, in its order; every column without one."""
    import lakehouse as lh

    return lh.parse_selection("*" if text is None else text, t)


def _filtered(t: lh.Table, where: str | None) -> Any:
    """``t``, or ``t.where(...)`` for a ``--where`` string."""
    import lakehouse as lh

    return t if where is None else t.where(lh.parse_condition(where, t))


def _json_columns(frame: pl.DataFrame,
                  selection: list[tuple[str | None, lh.Expr]]) -> list[str]:
    """The output columns that hold Json values (the frame's columns are the selection's, in
    its order, and maybe a score after them)."""
    return [name for name, (_, expr) in zip(frame.columns, selection, strict=False)
            if expr.type.kind == "json"]


def query(
    ctx: typer.Context,
    table: TableArgument,
    where: WhereOption = None,
    select: SelectOption = None,
    order_by: Annotated[str | None, typer.Option(
        "--order-by", help="Sort by these expressions, e.g. \"year, title\".",
        show_default=False)] = None,
    desc: Annotated[bool, typer.Option("--desc", help="Sort in descending order.")] = False,
    limit: Annotated[int | None, typer.Option(
        "--limit", "-n", min=0, help="At most this many rows.", show_default=False)] = None,
    fmt: FormatOption = output.Format.table,
    out: OutputOption = None,
    root: RootOption = None,
) -> None:
    """Read rows: filter, sort, limit and choose columns.

    Prints a table, JSON (one array of row objects), CSV or Parquet. Media values print as their
    size in the text formats; select image.fileurl for their source."""
    import lakehouse as lh

    with library_errors(ctx):
        t = open_table(root, table)
        q: Any = _filtered(t, where)
        if order_by is not None:
            q = q.order_by(*(e for _, e in lh.parse_selection(order_by, t, label="order-by")),
                           asc=not desc)
        if limit is not None:
            q = q.limit(limit)
        selection = _selection(select, t)
        frame = q.select(*selection).collect()
        output.write(frame, fmt, out, _json_columns(frame, selection))


def _search_query(text: str | None, image: str | None) -> Any:
    if (text is None) == (image is None):
        raise CommandError("give either a text to search for or --image PATH, not both")
    if text is not None:
        return text
    assert image is not None
    if image.startswith(("s3://", "file://", "http://", "https://")):
        return image
    return Path(image)


def search(
    ctx: typer.Context,
    table: TableArgument,
    column: Annotated[str, typer.Argument(metavar="COLUMN", help="The indexed column.",
                                          show_default=False)],
    text: Annotated[str | None, typer.Argument(metavar="[TEXT]", help="What to look for.",
                                               show_default=False)] = None,
    image: Annotated[str | None, typer.Option(
        "--image", help="Look for pictures like this one: a path, or an s3:// or http(s):// "
        "URI.", show_default=False)] = None,
    k: Annotated[int, typer.Option("-k", "--k", min=1, help="How many rows.")] = 10,
    where: WhereOption = None,
    select: SelectOption = None,
    index: Annotated[str | None, typer.Option(
        "--index", help="The index to use, when the column has several.",
        show_default=False)] = None,
    fmt: FormatOption = output.Format.table,
    out: OutputOption = None,
    root: RootOption = None,
) -> None:
    """The k rows most similar to a text or a picture, most similar first.

    Searches COLUMN's embedding index; the score column is higher for closer rows. --where
    filters before the search, so k rows come back when k rows match."""
    with library_errors(ctx):
        wanted = _search_query(text, image)
        t = open_table(root, table)
        sim = t[column].similarity(wanted, index=index)
        q = _filtered(t, where).order_by(sim, asc=False).limit(k)
        selection = _selection(select, t)
        frame = q.select(*selection, score=sim).collect()
        output.write(frame, fmt, out, _json_columns(frame, selection))

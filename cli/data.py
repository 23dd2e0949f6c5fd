"""Data commands: `ingest` (files, Parquet, CSV), `query` and `search`.

    $ lakehouse ingest photos 'pictures/**/*.jpg'
    $ lakehouse ingest beans 's3://bucket/beans/train-*.parquet'
    $ lakehouse query books --where "year > 1970" --select "title, year" --format json
    $ lakehouse search photos image "a cat on a sofa" -k 5

Where, select and order-by strings are parsed into expressions by ``lakehouse.exprs.parse``
(Python's own parser, a whitelist of node kinds; nothing is evaluated).
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
    progress_setting,
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


def _rows_with_errors(t: lh.Table) -> int:
    """Rows of ``t`` whose media value could not be read (kept with on_error='ignore')."""
    media = [t[c] for c in t.column_names() if t[c].type.is_media]
    if not media:
        return 0
    condition = media[0].errortype.is_not_null()
    for ref in media[1:]:
        condition = condition | ref.errortype.is_not_null()
    return t.where(condition).count()


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
    import lakehouse as lh

    with library_errors(ctx):
        kind = _source_kind(sources) if fmt is IngestFormat.auto else fmt
        show = progress_setting(progress)
        db = connect(root)
        if kind is IngestFormat.files:
            if replace:
                raise CommandError("--replace is for Parquet and CSV sources; media files are "
                                   "added to the table's rows")
            try:
                t = db.get_table(table)
            except lh.TableNotFoundError:
                raise CommandError(f"table {table!r} does not exist in {db.root}; create it "
                                   f"first, e.g. lakehouse create {table} --schema "
                                   "'image:image'") from None
            result = t.insert_files(sources, column=column, on_error=on_error, progress=show)
            written, errors, version = (result.rows_written, result.rows_with_errors,
                                        result.version)
        else:
            if column is not None:
                raise CommandError("--column is for media files; Parquet and CSV columns keep "
                                   "their names")
            before = db.get_table(table) if not replace and table in db.list_tables() else None
            start = (before.count_rows(), _rows_with_errors(before)) if before else (0, 0)
            importer = db.import_parquet if kind is IngestFormat.parquet else db.import_csv
            t = importer(table, sources, if_exists="replace" if replace else "append",
                         on_error=on_error, progress=show)
            written, errors = t.count_rows() - start[0], _rows_with_errors(t) - start[1]
            version = t.table_version
    typer.echo(f"wrote {written:,} rows ({errors:,} with errors) to {table}, version {version}")


# --------------------------------------------------------------------------------------------
# query and search
# --------------------------------------------------------------------------------------------


def _selection(text: str | None, t: lh.Table) -> list[tuple[str | None, lh.Expr]]:
    if text is None:
        return [(None, t[c]) for c in t.column_names()]
    from lakehouse.exprs.parse import parse_selection

    return parse_selection(text, t)


def _filtered(t: lh.Table, where: str | None) -> Any:
    """``t``, or ``t.where(...)`` for a ``--where`` string."""
    if where is None:
        return t
    from lakehouse.exprs.parse import parse_condition

    return t.where(parse_condition(where, t))


def _select(query: Any, selection: list[tuple[str | None, lh.Expr]],
            **extra: lh.Expr) -> tuple[Any, list[int | str]]:
    """``query.select(...)`` for a parsed selection, and how to put the result's columns back
    in the selection's order (select() puts named outputs after the unnamed ones)."""
    unnamed = [e for n, e in selection if n is None]
    named = {n: e for n, e in selection if n is not None}
    position, order = 0, []
    for name, _ in selection:
        if name is None:
            order.append(position)
            position += 1
        else:
            order.append(name)
    return query.select(*unnamed, **named, **extra), order + list(extra)


def _in_order(frame: pl.DataFrame, order: list[int | str]) -> pl.DataFrame:
    return frame.select([frame.columns[o] if isinstance(o, int) else o for o in order])


def _json_columns(frame: pl.DataFrame,
                  selection: list[tuple[str | None, lh.Expr]]) -> list[str]:
    """The output columns (of the frame in selection order) that hold Json values."""
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
    with library_errors(ctx):
        t = open_table(root, table)
        q: Any = _filtered(t, where)
        if order_by is not None:
            q = q.order_by(*(e for _, e in _selection(order_by, t)), asc=not desc)
        if limit is not None:
            q = q.limit(limit)
        selection = _selection(select, t)
        q, order = _select(q, selection)
        frame = _in_order(q.collect(), order)
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
        q, order = _select(q, selection, score=sim)
        frame = _in_order(q.collect(), order)
        output.write(frame, fmt, out, _json_columns(frame, selection))

"""Data commands: `ingest` (media files, Parquet, CSV, JSON, from files or stdin), `query` and
`search`.

    $ lakehouse ingest photos 'pictures/**/*.jpg' --filename-column name
    $ lakehouse ingest beans 's3://bucket/beans/train-*.parquet'
    $ curl -s https://example.com/rows.jsonl | lakehouse ingest rows - --format jsonl
    $ lakehouse query books --where "year > 1970" --select "title, year" --format json
    $ lakehouse query photos --format jsonl | lakehouse ingest copy - --format jsonl \
          --schema "image:image" --media base64
    $ lakehouse search photos image "a cat on a sofa" -k 5

Where, select and order-by strings are parsed into expressions by ``lh.parse_condition`` and
``lh.parse_selection`` (Python's own parser, a whitelist of node kinds; nothing is evaluated).
"""

from __future__ import annotations

import enum
import sys
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
    typer.Option("--where", "-w", metavar="CONDITION",
                 help="Keep rows where this condition holds, in Python or SQL form, e.g. "
                 "\"year > 1970 and author == 'Le Guin'\" or \"year > 1970 AND author = "
                 "'Le Guin'\".", show_default=False),
]
SelectOption = Annotated[
    str | None,
    typer.Option("--select", "-s", metavar="COLUMNS", help="Output columns and expressions, e.g. "
                 "\"title, decade = year // 10 * 10, image.fileurl\" (default: every column).",
                 show_default=False),
]


class IngestFormat(enum.StrEnum):
    """What the sources of `ingest` hold."""

    auto = "auto"
    files = "files"
    parquet = "parquet"
    csv = "csv"
    json = "json"
    jsonl = "jsonl"


class Media(enum.StrEnum):
    """How media values are written as text (`query`) or read from text (`ingest`)."""

    base64 = "base64"
    uri = "uri"


STDIN = "-"


# --------------------------------------------------------------------------------------------
# ingest
# --------------------------------------------------------------------------------------------


def _source_kind(sources: list[str]) -> IngestFormat:
    """Parquet, CSV or JSON by the sources' extensions (globs included), else media files."""
    from lakehouse.ingest import CSV_EXTENSIONS, JSON_EXTENSIONS, PARQUET_EXTENSIONS

    def kind(source: str) -> IngestFormat:
        name = source.lower().rstrip("/")
        for fmt, extensions in ((IngestFormat.parquet, PARQUET_EXTENSIONS),
                                (IngestFormat.csv, CSV_EXTENSIONS),
                                (IngestFormat.json, JSON_EXTENSIONS)):
            if name.endswith(tuple("." + e for e in extensions)):
                return fmt
        return IngestFormat.files

    kinds = {kind(s) for s in sources}
    if len(kinds) > 1:
        raise CommandError("the sources mix " + " and ".join(sorted(k.value for k in kinds))
                           + "; ingest each kind in its own command")
    return kinds.pop()


def _stdin_kind(sources: list[str], fmt: IngestFormat, filename_column: str | None,
                ) -> IngestFormat:
    """The format of rows read from stdin (``-``), which only --format can say."""
    if sources != [STDIN]:
        raise CommandError("'-' (stdin) is the only source of its command; ingest files in "
                           "another one")
    if fmt in (IngestFormat.auto, IngestFormat.files):
        raise CommandError("reading stdin ('-') needs --format csv, json, jsonl or parquet")
    if filename_column is not None:
        raise CommandError("--filename-column is for files; stdin has no file name")
    return fmt


def ingest(
    ctx: typer.Context,
    table: Annotated[str, typer.Argument(metavar="TABLE", help="Table to fill.",
                                         show_default=False)],
    sources: Annotated[list[str], typer.Argument(
        metavar="SOURCES...", help="Files, folders, globs ('photos/**/*.jpg') or s3:// "
        "prefixes of media files; or Parquet, CSV, JSON or JSON Lines files (local or s3://); "
        "or - for rows on stdin (with --format).", show_default=False)],
    fmt: Annotated[IngestFormat, typer.Option(
        "--format", metavar="FORMAT", help="What the sources hold: auto, files, parquet, csv, "
        "json or jsonl. auto: Parquet, CSV or JSON by their extension (.parquet, .csv, .tsv, "
        ".json, .jsonl, .ndjson), else media files. Needed for stdin and for a folder of "
        "Parquet shards. json and jsonl both read an array of objects or one object a line.",
        case_sensitive=False)] = IngestFormat.auto,
    column: Annotated[str | None, typer.Option(
        "--column", "-c", metavar="COLUMN",
        help="Media column the files go to (default: the table's only "
        "one).", show_default=False)] = None,
    schema: Annotated[str | None, typer.Option(
        "--schema", "-s", metavar="COLUMNS",
        help="Rows: the types of named columns, e.g. \"image:image, "
        "year:int\" (the others are found in the data, or are the table's).",
        show_default=False)] = None,
    media: Annotated[Media, typer.Option(
        "--media", help="Rows: what strings in a media column hold; uri: paths or URIs "
        "(relative to the file's folder); base64: the bytes, as query --format json|csv "
        "writes them.", case_sensitive=False)] = Media.uri,
    filename_column: Annotated[str | None, typer.Option(
        "--filename-column", metavar="COLUMN",
        help="Keep each row's file name (astronaut.png) in this column: "
        "a String column of the table, made for a new table of rows.",
        show_default=False)] = None,
    replace: Annotated[bool, typer.Option(
        "--replace", help="Rows: replace an existing table (its earlier versions stay in its "
        "history) instead of adding the rows to it.")] = False,
    on_error: OnErrorOption = "abort",
    progress: ProgressOption = None,
    root: RootOption = None,
) -> None:
    """Insert media files, or rows from Parquet, CSV, JSON or JSON Lines files or stdin.

    Media files go into an existing table (create it first with `lakehouse create`), one row
    per file, in one new version. Rows are added to an existing table (read with its column
    types, in one new version), or create the table, with column types taken from the data
    and --schema. Prints: wrote N rows (M with errors) to TABLE, version V."""
    with library_errors(ctx), progress_bars(progress):
        if STDIN in sources:
            kind = _stdin_kind(sources, fmt, filename_column)
        else:
            kind = _source_kind(sources) if fmt is IngestFormat.auto else fmt
        if kind is IngestFormat.files:
            given = {"--replace": replace, "--schema": schema is not None,
                     "--media": media is not Media.uri}
            flag = next((flag for flag, used in given.items() if used), None)
            if flag is not None:
                raise CommandError(f"{flag} is for rows (Parquet, CSV, JSON); media files are "
                                   "added to the table's rows")
            result = _media_table(root, table).insert_files(
                sources, column=column, on_error=on_error, filename_column=filename_column)
        else:
            if column is not None:
                raise CommandError("--column is for media files; the columns of rows keep "
                                   "their names")
            from lakehouse.ingest import create_from_source
            from lakehouse_cli.tables import parse_schema

            source = sys.stdin.buffer if sources == [STDIN] else sources
            result = create_from_source(
                connect(root), table, source,
                format="json" if kind is IngestFormat.jsonl else kind.value,
                schema=None if schema is None else parse_schema(schema),
                if_exists="replace" if replace else "append", on_error=on_error,
                media=media.value, filename_column=filename_column)
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


def _selection(text: str | None, t: lh.Table) -> Selection:
    """The outputs a ``--select`` string names, in its order; every column without one."""
    import lakehouse as lh

    return lh.parse_selection("*" if text is None else text, t)


def _filtered(t: lh.Table, where: str | None) -> Any:
    """``t``, or ``t.where(...)`` for a ``--where`` string."""
    import lakehouse as lh

    return t if where is None else t.where(lh.parse_condition(where, t))


MediaOption = Annotated[
    Media,
    typer.Option("--media", help="How media values are written in json, jsonl and csv: "
                 "base64: their bytes; uri: where they were inserted from (image.fileurl).",
                 case_sensitive=False),
]
Selection = list[tuple[str | None, "lh.Expr"]]
_CHECK = "lakehouse_has_value_"  # the outputs that say whether a media value is there


def _as_uris(selection: Selection, t: lh.Table) -> tuple[Selection, Selection]:
    """``--media uri``: each media column of the selection as its source URIs, and for each
    one an output that says whether the value is there (a value inserted as bytes has none)."""
    from lakehouse.exprs.nodes import ColumnRef

    outputs: Selection = []
    checks: Selection = []
    for name, expr in selection:
        if not expr.type.is_media:
            outputs.append((name, expr))
            continue
        if not isinstance(expr, ColumnRef) or t.table_definition.get(
                expr.name, t.table_name).is_computed:
            raise CommandError(f"--media uri: {expr!r} is computed, so it has no source URI; "
                               "use --media base64, or select its source column")
        outputs.append((name or expr.name, expr.fileurl))
        checks.append((f"{_CHECK}{name or expr.name}", expr.is_not_null()))
    return outputs, checks


def _check_uris(frame: pl.DataFrame) -> pl.DataFrame:
    """The frame without the check outputs of :func:`_as_uris`, or an error where a media
    value is there but has no source URI."""
    import polars as pl

    checks = [c for c in frame.columns if c.startswith(_CHECK)]
    for check in checks:
        column = check.removeprefix(_CHECK)
        missing = frame.filter(pl.col(check) & pl.col(column).is_null()).height
        if missing:
            raise CommandError(f"--media uri: {missing} value(s) of {column!r} were inserted as "
                               "bytes and have no source URI; use --media base64")
    return frame.drop(checks)


def _collect(q: Any, t: lh.Table, selection: Selection, media: Media,
             **extra: Any) -> pl.DataFrame:
    """The selected rows of ``q``, with media as bytes or (``--media uri``) source URIs."""
    if media is Media.base64:
        return q.select(*selection, **extra).collect()
    outputs, checks = _as_uris(selection, t)
    return _check_uris(q.select(*outputs, *checks, **extra).collect())


def _json_columns(frame: pl.DataFrame, selection: Selection) -> list[str]:
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
        "--order-by", metavar="COLUMNS", help="Sort by these expressions, e.g. \"year, title\".",
        show_default=False)] = None,
    desc: Annotated[bool, typer.Option("--desc", help="Sort in descending order.")] = False,
    limit: Annotated[int | None, typer.Option(
        "--limit", "-n", metavar="N",
        min=0, help="At most this many rows.", show_default=False)] = None,
    fmt: FormatOption = output.Format.table,
    media: MediaOption = Media.base64,
    out: OutputOption = None,
    root: RootOption = None,
) -> None:
    """Read rows: filter, sort, limit and choose columns.

    Prints a table, JSON (one array of row objects), JSON Lines, CSV or Parquet. Media values
    are base64 text in JSON and CSV (or their source URIs with --media uri), bytes in Parquet,
    and their size in the table."""
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
        frame = _collect(q, t, selection, media)
        output.write(frame, fmt, out, _json_columns(frame, selection))


def _search_query(text: str | None, image: str | None) -> Any:
    if text is None and image is None:
        raise CommandError("give a text to search for, or --image PATH to search by picture "
                           "(e.g. lakehouse search TABLE COLUMN 'a red car')")
    if text is not None and image is not None:
        raise CommandError("give a text to search for or --image PATH, not both")
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
    text: Annotated[str | None, typer.Argument(metavar="TEXT", help="What to look for.",
                                               show_default=False)] = None,
    image: Annotated[str | None, typer.Option(
        "--image", metavar="PATH",
        help="Look for pictures like this one: a path, or an s3:// or http(s):// "
        "URI.", show_default=False)] = None,
    k: Annotated[int, typer.Option("-k", "--k", metavar="N", min=1, help="How many rows.")] = 10,
    where: WhereOption = None,
    select: SelectOption = None,
    index: Annotated[str | None, typer.Option(
        "--index", metavar="NAME", help="The index to use, when the column has several.",
        show_default=False)] = None,
    fmt: FormatOption = output.Format.table,
    media: MediaOption = Media.base64,
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
        frame = _collect(q, t, selection, media, score=sim)
        output.write(frame, fmt, out, _json_columns(frame, selection))

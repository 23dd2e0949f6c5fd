"""Table commands: `describe`, `create` and `drop`.

    $ lakehouse create books --schema "title:string, year:int, cover:image"
    $ lakehouse describe books
    $ lakehouse drop books --yes
"""

from __future__ import annotations

import re
import sys
from typing import Annotated, Any

import typer

from lakehouse_cli.common import (
    CommandError,
    RootOption,
    TableArgument,
    connect,
    library_errors,
    open_table,
)
from lakehouse_cli.indexes import vector_index_notes
from lakehouse_cli.output import render_table

_COLUMN = re.compile(r"^\s*(?P<name>[^:\s]+)\s*:\s*(?P<type>.+?)\s*(?P<required>!?)\s*$")


def _split_top_level(text: str) -> list[str]:
    """Split on commas outside brackets: ``a:int, v:array[3, float32]`` -> two parts."""
    parts, depth, current = [], 0, []
    for char in text:
        depth += {"[": 1, "(": 1, "]": -1, ")": -1}.get(char, 0)
        if char == "," and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return [p for p in parts if p.strip()]


def parse_schema(text: str) -> dict[str, Any]:
    """``"title:string, year:int!, v:array[3]"`` -> ``{"title": lh.String, ...}``: each type is
    read by ``lh.parse_type``; a trailing ``!`` makes the column required (never null)."""
    import lakehouse as lh

    schema: dict[str, Any] = {}
    for part in _split_top_level(text):
        match = _COLUMN.match(part)
        if not match:
            raise CommandError(f"--schema: {part.strip()!r} is not 'name:type' (for example "
                               "'title:string, year:int, cover:image')")
        name = match["name"]
        if name in schema:
            raise CommandError(f"--schema: column {name!r} is given twice")
        try:
            column_type = lh.parse_type(match["type"], column=name)
        except (lh.TypeMismatchError, lh.InvalidOptionError) as exc:
            raise CommandError(f"--schema: {exc}") from None
        schema[name] = lh.Required(column_type) if match["required"] else column_type
    if not schema:
        raise CommandError("--schema is empty; give the columns as 'title:string, year:int'")
    return schema


def describe(
    ctx: typer.Context,
    table: TableArgument,
    root: RootOption = None,
) -> None:
    """Show a table or view: version, row count, columns, indexes and snapshots; for a view,
    its base, the base version its rows reflect and the lag.

    Computed columns show their expressions; an embedding index below the size at which its
    vector index is built says so. TABLE:N describes version N."""
    import lakehouse as lh

    with library_errors(ctx):
        summary = lh.Table.summary(open_table(root, table))  # a column may be called summary
    read_only = " (read-only)" if summary.read_only else ""
    kind = "table" if summary.view is None else "view"
    typer.echo(f"{kind} {summary.name}: version {summary.version}, {summary.rows:,} rows"
               f"{read_only}")
    if summary.view is not None:
        status = summary.view
        reflected = "no version" if status.base_version is None else \
            f"version {status.base_version}"
        typer.echo(f"base {status.base}: {reflected} reflected, latest {status.base_latest}, "
                   f"lag {status.lag}")
    typer.echo(render_table(summary.columns))
    if not summary.indexes.is_empty():
        typer.echo("indexes")
        typer.echo(render_table(summary.indexes))
        for note in vector_index_notes(summary.indexes):
            typer.echo(note)
    if summary.snapshots:
        typer.echo("snapshots: " + ", ".join(f"{name} (version {version})"
                                             for name, version in summary.snapshots.items()))


def create(
    ctx: typer.Context,
    table: Annotated[str, typer.Argument(metavar="TABLE", help="Name of the new table.",
                                         show_default=False)],
    schema: Annotated[str, typer.Option(
        "--schema", "-s", metavar="COLUMNS",
        help="Columns as 'name:type, ...'. Types: string, int, float, bool, json, timestamp, "
        "date, image, video, audio, document, array[D] or array[D, dtype] (a vector of D "
        "numbers, float32 unless given; more dimensions and * for any length: "
        "array[*, 3, int8]); a trailing '!' makes a column required.",
        show_default=False)],
    if_exists: Annotated[str, typer.Option(
        "--if-exists", metavar="[error|ignore|replace]",
        help="When the table exists: error, ignore (keep it) or replace it.")] = "error",
    parents: Annotated[bool, typer.Option(
        "--parents", "-p", help="Create the table's directories if they do not exist.")] = False,
    root: RootOption = None,
) -> None:
    """Create an empty table with the given columns."""
    with library_errors(ctx):
        columns = parse_schema(schema)
        t = connect(root).create_table(table, columns, if_exists=if_exists, parents=parents)
        version = t.table_version
    typer.echo(f"created table {table} (version {version})")


def drop(
    ctx: typer.Context,
    table: Annotated[str, typer.Argument(metavar="TABLE", help="Table to drop.",
                                         show_default=False)],
    yes: Annotated[bool, typer.Option(
        "--yes", "-y", help="Drop without asking (needed when stdin is not a terminal).")] = False,
    ignore: Annotated[bool, typer.Option(
        "--ignore", help="Do nothing, without an error, if the table does not exist.")] = False,
    cascade: Annotated[bool, typer.Option(
        "--cascade", help="Drop the table's views (and theirs) too; without it, a table with "
        "views is not dropped.")] = False,
    root: RootOption = None,
) -> None:
    """Delete a table or view and all its versions and snapshots. Asks first, unless --yes."""
    import lakehouse as lh

    with library_errors(ctx):
        db = connect(root)
        try:
            dropped = db.get_table(table)
        except lh.TableNotFoundError:
            if not ignore:
                raise
            typer.echo(f"no table {table}: nothing to drop")
            return
        versions = lh.Table.version_count(dropped)  # its prompt says how many
        kind = "table" if dropped.table_definition.view is None else "view"
        if not yes:
            if not sys.stdin.isatty():
                raise CommandError(f"dropping {kind} {table!r} deletes its {versions} versions "
                                   "for good; pass --yes to confirm")
            if not typer.confirm(f"Drop {kind} {table!r} and its {versions} versions for good?"):
                raise typer.Exit(1)
        db.drop_table(table, cascade=cascade)
    typer.echo(f"dropped {kind} {table}")

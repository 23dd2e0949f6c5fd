"""Version commands: `history`, `diff`, `revert` and `snapshot`. Reading an old version needs no
command of its own: every command that reads takes ``TABLE:N`` (version N) or ``TABLE@name``
(a snapshot), like a git checkout that changes nothing.

    $ lakehouse history books            # the newest 20 versions (--limit N, --all)
    $ lakehouse diff books 2             # what changed since version 2
    $ lakehouse query books:2
    $ lakehouse snapshot books v1
    $ lakehouse revert books --to 2
"""

from __future__ import annotations

from typing import Annotated

import typer

from lakehouse_cli import output
from lakehouse_cli.common import RootOption, TableArgument, library_errors, open_table, stderr
from lakehouse_cli.output import FormatOption, OutputOption


def history(
    ctx: typer.Context,
    table: TableArgument,
    limit: Annotated[int, typer.Option(
        "--limit", "-n", metavar="N", min=1,
        help="Show the newest N versions (default 20).")] = 20,
    show_all: Annotated[bool, typer.Option(
        "--all", help="Show every version (reads them all: slower on an old table).")] = False,
    fmt: FormatOption = output.Format.table,
    out: OutputOption = None,
    root: RootOption = None,
) -> None:
    """List a table's versions, newest first: the newest 20, or --limit N, or --all.

    Time, operation, rows added, changed and removed, and the snapshots naming the version."""
    import polars as pl

    import lakehouse as lh

    with library_errors(ctx):
        t = open_table(root, table)
        versions = lh.Table.history(t, limit=None if show_all else limit)  # a column may be
        # called history; the snapshot names as one text ("v1, v2"; none: null), so every
        # format writes them
        names = pl.col("snapshots").list.join(", ")
        frame = versions.with_columns(pl.when(names != "").then(names).alias("snapshots"))
        output.write(frame, fmt, out)
        if not show_all and versions.height == limit and versions["version"][-1] > 1:
            stderr.print(f"the newest {limit} versions; --limit N or --all for more")


def revert(
    ctx: typer.Context,
    table: Annotated[str, typer.Argument(metavar="TABLE", help="Table to revert.",
                                         show_default=False)],
    to: Annotated[int | None, typer.Option(
        "--to", metavar="N",
        help="The version whose content to restore (default: the previous one).",
        show_default=False)] = None,
    root: RootOption = None,
) -> None:
    """Restore an earlier version's content, as a new version.

    History is kept, so a revert can itself be reverted."""
    with library_errors(ctx):
        t = open_table(root, table)
        target = t.table_version - 1 if to is None else to
        version = t.revert(to=to)
    typer.echo(f"reverted {table} to the content of version {target}: now version {version}")


def snapshot(
    ctx: typer.Context,
    table: TableArgument,
    name: Annotated[str, typer.Argument(metavar="NAME", help="The snapshot's name: letters, "
                                        "digits, '-', '_' and '.'.", show_default=False)],
    replace: Annotated[bool, typer.Option(
        "--replace", help="Move an existing snapshot of that name to this version.")] = False,
    root: RootOption = None,
) -> None:
    """Name the current version (or TABLE:N's version N), to read it later as TABLE@NAME."""
    import lakehouse as lh

    with library_errors(ctx):
        t = open_table(root, table)
        version = lh.Table.snapshot(t, name, replace=replace)  # a column may be called snapshot
    typer.echo(f"snapshot {name} of {t.table_name} is version {version}; "
               f"read it as {t.table_name}@{name}")


def _version_ref(text: str | None) -> int | str | None:
    """A version number, or a snapshot name."""
    return int(text) if text is not None and text.isdigit() else text


def diff(
    ctx: typer.Context,
    table: TableArgument,
    a: Annotated[str, typer.Argument(metavar="A", help="The version (a number) or snapshot "
                                     "to compare from, or '#BRANCH' alone: what that branch "
                                     "changed since it was made.", show_default=False)],
    b: Annotated[str | None, typer.Argument(metavar="B", help="The version or snapshot to "
                                            "compare to (default: the latest).",
                                            show_default=False)] = None,
    fmt: FormatOption = output.Format.table,
    out: OutputOption = None,
    root: RootOption = None,
) -> None:
    """Show what changed between two versions: a summary, the schema changes, and the rows
    inserted, updated (with the old values of the columns that changed) and deleted.

    With --format json, jsonl, csv or parquet the rows are written in that format (one row per
    change, its kind in the column change) and the summary and schema changes go to stderr."""
    import lakehouse as lh

    with library_errors(ctx):
        d = lh.Table.diff(open_table(root, table), _version_ref(a), _version_ref(b))
        rows = d.changes()
        if fmt is output.Format.table:
            typer.echo(d.summary())
            if d.schema.height:
                typer.echo(output.render_table(d.schema))
            if rows.height:
                output.write(rows, fmt, out)
            return
        stderr.print(d.summary())
        for change, name, before, after in d.schema.rows():
            stderr.print(f"{change} {name}: {before or ''} -> {after or ''}")
        output.write(rows, fmt, out)

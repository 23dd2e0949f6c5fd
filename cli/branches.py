"""Branch commands: `branch` (make or delete one), `branches` (list them) and `promote`. A
branch is read and written like a table, as ``TABLE#BRANCH`` (``TABLE#BRANCH:N`` for its
version N), by every command that takes a table.

    $ lakehouse branch books dev               # from the latest version (--from N or a snapshot)
    $ lakehouse ingest books#dev new.csv
    $ lakehouse query books#dev
    $ lakehouse branches books
    $ lakehouse promote books#dev              # books fast-forwards to the branch
    $ lakehouse branch books dev --delete
"""

from __future__ import annotations

from typing import Annotated

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


def branch(
    ctx: typer.Context,
    table: Annotated[str, typer.Argument(metavar="TABLE", help="The table to branch (or "
                                         "TABLE:N, to branch from version N).",
                                         show_default=False)],
    name: Annotated[str, typer.Argument(metavar="NAME", help="The branch's name: letters, "
                                        "digits, '-', '_' and '.'.", show_default=False)],
    from_: Annotated[str | None, typer.Option(
        "--from", metavar="VERSION",
        help="Make it from this version number or snapshot name (default: the latest).",
        show_default=False)] = None,
    delete: Annotated[bool, typer.Option(
        "--delete", help="Delete the branch NAME instead, with its versions.")] = False,
    root: RootOption = None,
) -> None:
    """Make a writable branch of TABLE (or delete one with --delete).

    Write to it as TABLE#NAME; the table itself does not change until you promote it."""
    import lakehouse as lh

    with library_errors(ctx):
        t = open_table(root, table)
        if delete:
            if from_ is not None:
                raise CommandError("--from makes a branch; leave it out with --delete")
            lh.Table.delete_branch(t, name)  # a column may be called delete_branch
            typer.echo(f"deleted branch {name} of {t.table_name}")
            return
        source: int | str | None = int(from_) if from_ and from_.isdigit() else from_
        made = lh.Table.branch(t, name, from_=source)  # a column may be called branch
    typer.echo(f"branch {made.table_name} made from version {made.table_version}; write to "
               f"it as {made.table_name}, then lakehouse promote {made.table_name}")


def branches(
    ctx: typer.Context,
    table: TableArgument,
    fmt: FormatOption = output.Format.table,
    out: OutputOption = None,
    root: RootOption = None,
) -> None:
    """List the branches of TABLE: name, parent version, latest version and when made."""
    import lakehouse as lh

    with library_errors(ctx):
        frame = lh.Table.branches(open_table(root, table))  # a column may be called branches
        output.write(frame, fmt, out)


def promote(
    ctx: typer.Context,
    table: Annotated[str, typer.Argument(metavar="TABLE#BRANCH", help="The branch to promote, "
                                         "e.g. 'books#dev'.", show_default=False)],
    progress: ProgressOption = None,
    root: RootOption = None,
) -> None:
    """Make the table's content that of its branch (a fast-forward), as a new version.

    Refused, changing nothing, when the table moved since the branch was made or last
    promoted: a branch can be promoted again and again."""
    import lakehouse as lh

    with library_errors(ctx):
        t = open_table(root, table)
        if t.table_branch is None:
            raise CommandError(f"{table!r} is not a branch: name one as TABLE#BRANCH, e.g. "
                               f"{table}#dev")
        with progress_bars(progress):
            version = lh.Table.promote(t)  # a column may be called promote
    main = t.table_name.partition("#")[0]
    typer.echo(f"promoted {t.table_name}: {main} is now version {version}")

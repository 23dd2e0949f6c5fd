"""The `lakehouse` command: a thin typer front end over the public `lakehouse` API.

Every command opens the lakehouse, makes one documented library call and prints the result. A
`lakehouse.Error` becomes one red line on stderr and exit code 1; `--debug` shows the traceback
instead (see `lakehouse_cli.common`). The library is imported lazily, inside the commands, so
`--help` and `--version` stay fast. The commands live in modules by concept: `tables` (describe,
create, drop), `data` (ingest, query, search), `versions` (history, revert, snapshot), `indexes`
(the `index` sub-commands), `views` (the `view` sub-commands), `jobs` (recompute, jobs) and
`output` (table, JSON, CSV and Parquet output); `ls` and `demo` are here, and commands of the
search page go at the end of this module.

    $ lakehouse --version
    $ lakehouse ls ml --root s3://bucket/prefix
"""

from __future__ import annotations

import os
import sys
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as _dist_version
from typing import Annotated

import typer
from typer.core import TyperCommand

from lakehouse_cli import (
    branches,
    data,
    export,
    gc,
    indexes,
    jobs,
    maintenance,
    tables,
    versions,
    views,
)
from lakehouse_cli.common import (
    ROOT_HELP,
    Options,
    RootOption,
    connect,
    fail,
    library_errors,
)
from lakehouse_cli.group import LakehouseGroup

# the names commands defined in this module use (kept for commands added here)
_library_errors = library_errors
_fail = fail

app = typer.Typer(
    name="lakehouse",
    help="Lance-based columnar lakehouse: tables are Lance datasets on a local folder or S3.",
    no_args_is_help=True,
    add_completion=False,
    cls=LakehouseGroup,  # --debug after the command too; plain help (see lakehouse_cli.group)
    # We print our own one-line errors; with --debug a plain traceback (never the local
    # variables, which may hold storage credentials).
    pretty_exceptions_enable=False,
)


class FunctionsHelp(TyperCommand):
    """A command whose help ends with the functions its where and select strings may call,
    read from the library's function registry only when the help is shown."""

    def format_help(self, ctx: typer.Context, formatter: object) -> None:  # type: ignore[override]
        # the library loads only for this help, so `lakehouse --help` stays fast
        from lakehouse.exprs.registry import help_text

        self.epilog = "Methods in --where and --select (with literal arguments):\n\n" + \
            help_text().replace("\n", "\n\n")
        super().format_help(ctx, formatter)  # type: ignore[arg-type]


def _version() -> str:
    try:
        return _dist_version("lakehouse")
    except PackageNotFoundError:  # running from a checkout that was never installed
        return "unknown"


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"lakehouse {_version()}")
        raise typer.Exit()


@app.callback()
def main(
    ctx: typer.Context,
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            callback=_print_version,
            is_eager=True,
            help="Print the version and exit.",
        ),
    ] = False,
    debug: Annotated[
        bool,
        typer.Option("--debug", help="Show the full traceback when a command fails. Before or "
                     "after the command."),
    ] = False,
    root: Annotated[
        str | None,
        typer.Option("--root", metavar="ROOT", help=ROOT_HELP, show_default=False),
    ] = None,
) -> None:
    """Lance-based columnar lakehouse: tables are Lance datasets on a local folder or S3."""
    ctx.obj = Options(debug=debug, root=root)


@app.command("ls")
def ls(
    ctx: typer.Context,
    directory: Annotated[
        str | None,
        typer.Argument(
            metavar="DIR",
            help="Directory to list, e.g. 'ml' (default: the root).",
            show_default=False,
        ),
    ] = None,
    root: RootOption = None,
) -> None:
    """List the tables under DIR, one name per line.

    A local root that does not exist is an error, not an empty list."""
    with _library_errors(ctx):
        names = connect(root, existing=True).list_tables(directory)
    for name in names:
        typer.echo(name)


# tables (lakehouse_cli.tables)
app.command("describe")(tables.describe)
app.command("create")(tables.create)
app.command("drop")(tables.drop)
# data (lakehouse_cli.data)
app.command("ingest")(data.ingest)
app.command("query", cls=FunctionsHelp)(data.query)
app.command("search")(data.search)
# versions (lakehouse_cli.versions); `TABLE:N` and `TABLE@name` read old versions everywhere
app.command("history")(versions.history)
app.command("diff")(versions.diff)
app.command("revert")(versions.revert)
app.command("snapshot")(versions.snapshot)
# indexes (lakehouse_cli.indexes): lakehouse index add|ls|drop
app.add_typer(indexes.app, name="index")
# views (lakehouse_cli.views): lakehouse view create|ls; describe, query and drop take views
app.add_typer(views.app, name="view")
# long work (lakehouse_cli.jobs): values computed again; unfinished backfills
app.command("recompute")(jobs.recompute)
app.command("jobs")(jobs.jobs)
# data out (lakehouse_cli.export): a Parquet file; SQL over the tables
app.command("export")(export.export)
app.command("sql")(export.sql)
# upkeep (lakehouse_cli.gc): old versions and orphaned files
app.command("gc")(gc.gc)
# branches (lakehouse_cli.branches): TABLE#BRANCH reads and writes a branch everywhere
app.command("branch")(branches.branch)
app.command("branches")(branches.branches)
app.command("promote")(branches.promote)
app.command("optimize")(maintenance.optimize)


@app.command("demo")
def demo(ctx: typer.Context, root: RootOption = None) -> None:
    """Run the main job: books, photos and pictures, indexed and searched.

    Computed columns, embedding indexes and similarity searches, offline."""
    from lakehouse.demo import run

    with _library_errors(ctx):
        run(root)


# --- the search page -------------------------------------------------------------------------
@app.command("serve")
def serve(
    ctx: typer.Context,
    table: Annotated[str, typer.Argument(
        metavar="TABLE", help="Table to search, e.g. 'pics' (also 'pics:3' or 'pics@tag').")],
    column: Annotated[str, typer.Option(
        "--column", "-c", metavar="COLUMN", help="Image column with an embedding index.")],
    host: Annotated[str, typer.Option(
        "--host", metavar="HOST",
        help="Address to listen on; 0.0.0.0 opens the page to other machines.")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(
        "--port", metavar="PORT",
        min=0, max=65535, help="Port to listen on (0: any free port).")] = 8000,
    k: Annotated[int, typer.Option("-k", metavar="N",
                                   min=1, max=1000, help="Results per search.")] = 24,
    root: RootOption = None,
) -> None:
    """Serve a search page for TABLE: type a description, see the closest images as you type;
    a second page shows the first rows and the history. Ctrl+C stops it."""
    import lakehouse as lh
    from lakehouse.web import serve as serve_page

    def ready(url: str) -> None:
        typer.echo(f"Serving {table} ({column}) at {url}  (Ctrl+C to stop)")

    with _library_errors(ctx):
        serve_page(lh.connect(root).get_table(table), column, host=host, port=port, k=k,
                   on_ready=ready)


def run() -> None:
    """The ``lakehouse`` command: run it, flush what it printed, and end the process at once
    with its exit code. Skipping the interpreter's teardown keeps a native library thread
    still winding down after a failed command (seen after a failed JSON ingest from stdin)
    from aborting the process at exit ("terminate called without an active exception")."""
    try:
        app(prog_name="lakehouse")
        code: object = 0
    except SystemExit as exc:
        code = exc.code
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code if isinstance(code, int) else (0 if code is None else 1))


if __name__ == "__main__":  # pragma: no cover - `python -m lakehouse_cli.app`
    run()

"""View commands, under `lakehouse view`: `create` and `ls`. A view is described, queried and
dropped like a table (`describe`, `query`, `drop`).

    $ lakehouse view create recent --base books --where "year > 1990"
    $ lakehouse view create chunks --base docs --iterator "document_splitter(doc, limit=200, \
separators=('paragraph', 'token_limit'))"
    $ lakehouse view create frames --base videos --iterator "frame_iterator(video, fps=1)"
    $ lakehouse view ls

``--where`` is read by ``lh.parse_condition`` (as `query --where` is) and ``--iterator`` by
``lh.parse_iterator``: Python's parser and a whitelist of forms, nothing is evaluated.
"""

from __future__ import annotations

from typing import Annotated

import typer

from lakehouse_cli import output
from lakehouse_cli.common import (
    CommandError,
    ProgressOption,
    RootOption,
    connect,
    library_errors,
    progress_bars,
)
from lakehouse_cli.group import LakehouseGroup
from lakehouse_cli.output import FormatOption, OutputOption

app = typer.Typer(
    name="view",
    help="Create and list views: tables whose rows follow a base table (filtered, or split by "
    "an iterator into chunks, frames, tiles or clips), kept current by every write of the base.",
    no_args_is_help=True,
    cls=LakehouseGroup,
)


def _columns(text: str | None) -> list[str] | None:
    """``"title, year"`` -> ``["title", "year"]``; None when the option is not given."""
    if text is None:
        return None
    names = [name.strip() for name in text.split(",")]
    if not all(names):
        raise CommandError(f"--columns {text!r} has an empty name; give the base columns to "
                           "carry as 'title,year'")
    return names


@app.command("create")
def create(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(metavar="NAME", show_default=False,
                                        help="Name of the new view.")],
    base: Annotated[str, typer.Option(
        "--base", "-b", metavar="TABLE", show_default=False,
        help="Table or view the view follows, e.g. 'docs'; 'docs:3' or 'docs@tag' freezes it "
        "at that version.")],
    where: Annotated[str | None, typer.Option(
        "--where", "-w", metavar="CONDITION", show_default=False,
        help="Keep the base rows where this condition holds, e.g. \"year > 1990\".")] = None,
    iterator: Annotated[str | None, typer.Option(
        "--iterator", "-i", metavar="CALL", show_default=False,
        help="Make rows from each base row with a built-in iterator: "
        "document_splitter(doc, separators=('paragraph',)), frame_iterator(video, fps=1), "
        "tile_iterator(image, tile_size=256) or audio_splitter(sound, duration=10); options "
        "are literals.")] = None,
    columns: Annotated[str | None, typer.Option(
        "--columns", "-c", metavar="COLUMNS", show_default=False,
        help="Base columns the view carries, e.g. 'title,year' (default: all; with "
        "--iterator, all but media columns and the iterator's input).")] = None,
    on_error: Annotated[str, typer.Option(
        "--on-error", metavar="[abort|ignore]",
        help="abort: a base value the iterator cannot read (a damaged video or PDF) stops the "
        "command and no view is made; ignore: skip it and count it.")] = "abort",
    if_exists: Annotated[str, typer.Option(
        "--if-exists", metavar="[error|ignore|replace]",
        help="When NAME exists: error, ignore (keep it) or replace it.")] = "error",
    progress: ProgressOption = None,
    root: RootOption = None,
) -> None:
    """Create a view of a table: its rows follow the base, incrementally, on every write.

    Each view row comes from one base row matching --where: one row each, or with --iterator
    one row per chunk, frame, tile or clip, numbered by `pos`. With --on-error ignore, base
    values the iterator cannot read are skipped and counted. Prints: created view NAME of BASE:
    N rows, version V."""
    import lakehouse as lh

    with library_errors(ctx), progress_bars(progress):
        db = connect(root)
        t = db.get_table(base)
        condition = None if where is None else lh.parse_condition(where, t)
        call = None if iterator is None else lh.parse_iterator(iterator, t)
        view = db.create_view(name, t, where=condition, iterator=call,
                              columns=_columns(columns), on_error=on_error,
                              if_exists=if_exists)
        rows, version = view.count_rows(), view.table_version
    typer.echo(f"created view {name} of {base}: {rows:,} rows, version {version}")


@app.command("ls")
def ls(
    ctx: typer.Context,
    fmt: FormatOption = output.Format.table,
    out: OutputOption = None,
    root: RootOption = None,
) -> None:
    """List the views: name, base, the base version each reflects, the base's latest version,
    and the lag (base versions not reflected yet; 0 when current)."""
    import polars as pl

    import lakehouse as lh

    with library_errors(ctx):
        db = connect(root, existing=True)
        statuses = {view: lh.Table.view_status(db.get_table(view))
                    for view in db.list_views()}
    frame = pl.DataFrame(
        {"view": list(statuses), "base": [s.base for s in statuses.values()],
         "base_version": [s.base_version for s in statuses.values()],
         "base_latest": [s.base_latest for s in statuses.values()],
         "lag": [s.lag for s in statuses.values()]},
        schema={"view": pl.String, "base": pl.String, "base_version": pl.Int64,
                "base_latest": pl.Int64, "lag": pl.Int64})
    output.write(frame, fmt, out)


"""Index commands, under `lakehouse index`: `add`, `ls` and `drop`.

    $ lakehouse index add photos image --model clip:ViT-B-32@laion2b_s34b_b79k
    $ lakehouse index add docs text --model sentence-transformers:all-MiniLM-L6-v2
    $ lakehouse index add books year --kind btree
    $ lakehouse index ls photos
    $ lakehouse index drop photos image
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from lakehouse_cli import output
from lakehouse_cli.common import (
    CommandError,
    OnErrorOption,
    ProgressOption,
    RootOption,
    TableArgument,
    library_errors,
    open_table,
    progress_bars,
)
from lakehouse_cli.group import LakehouseGroup
from lakehouse_cli.output import FormatOption, OutputOption

if TYPE_CHECKING:
    import polars as pl

app = typer.Typer(
    name="index",
    help="Add, list and drop indexes: embedding indexes for similarity search, and scalar "
    "indexes for filters.",
    no_args_is_help=True,
    cls=LakehouseGroup,
)


@app.command("add")
def add(
    ctx: typer.Context,
    table: Annotated[str, typer.Argument(metavar="TABLE", show_default=False,
                                         help="Table to index.")],
    column: Annotated[str, typer.Argument(metavar="COLUMN", show_default=False,
                                          help="Column to index.")],
    model: Annotated[str | None, typer.Option(
        "--model", "-m", metavar="SPEC", show_default=False,
        help="Embedding model: clip:lakehouse/shapes-clip (shipped, for generated shapes), "
        "clip:ViT-B-32@laion2b_s34b_b79k (open_clip name @ pretrained tag or weights file), "
        "clip:local-dir:FOLDER, sentence-transformers:all-MiniLM-L6-v2 or "
        "sentence-transformers:FOLDER. Not needed for a column of vectors.")] = None,
    metric: Annotated[str, typer.Option(
        "--metric", metavar="[cosine|l2|dot]", help="How closeness is measured.")] = "cosine",
    name: Annotated[str | None, typer.Option(
        "--name", metavar="NAME",
        help="Index name (default: the column's name).", show_default=False)] = None,
    replace: Annotated[bool, typer.Option(
        "--replace", help="Replace an index of that name (re-embeds every row).")] = False,
    kind: Annotated[str | None, typer.Option(
        "--kind", metavar="[btree|bitmap|zonemap]", show_default=False,
        help="A scalar index for filters instead: btree, bitmap or zonemap.")] = None,
    on_error: OnErrorOption = "abort",
    progress: ProgressOption = None,
    root: RootOption = None,
) -> None:
    """Add an embedding index for `lakehouse search`, or with --kind a scalar index.

    A scalar index (btree, bitmap, zonemap) speeds up filters on COLUMN."""
    import lakehouse as lh

    with library_errors(ctx), progress_bars(progress):
        t = open_table(root, table)
        if kind is not None:
            if model is not None or name is not None:
                raise CommandError("--kind makes a scalar index, which takes no --model or "
                                   "--name")
            version = t.add_index(column, kind=kind, replace=replace)
            typer.echo(f"added a {kind} index on {table}.{column}, version {version}")
            return
        embedding = None if model is None else lh.functions.EmbeddingFunction.parse(model)
        result = t.add_embedding_index(column, embedding=embedding, metric=metric, name=name,
                                       if_exists="replace" if replace else "error",
                                       on_error=on_error)
    typer.echo(f"added embedding index {name or column} on {table}.{column}: "
               f"{result.rows_written:,} rows embedded ({result.rows_with_errors:,} with "
               f"errors), version {result.version}")


@app.command("ls")
def ls(
    ctx: typer.Context,
    table: TableArgument,
    fmt: FormatOption = output.Format.table,
    out: OutputOption = None,
    root: RootOption = None,
) -> None:
    """List a table's indexes.

    Name, column, kind, model, metric, and rows the vector index does not cover yet; in the
    table format, a line for each embedding index whose vector index is not built yet."""
    import lakehouse as lh

    with library_errors(ctx):
        frame = lh.Table.indexes(open_table(root, table))  # a column may be called indexes
        output.write(frame, fmt, out)
    if fmt is output.Format.table and out is None:
        for note in vector_index_notes(frame):
            typer.echo(note)


def vector_index_notes(indexes: pl.DataFrame) -> list[str]:
    """A line for each embedding index that has no vector index yet (its ``vector_index`` is
    null): why, and from how many rows one is built."""
    import polars as pl

    from lakehouse.vector_index import MIN_ANN_ROWS

    waiting = indexes.filter((pl.col("kind") == "embedding") & pl.col("vector_index").is_null())
    return [f"vector index of {row['name']}: not built yet ({row['unindexed_rows']:,} rows; "
            f"built from {MIN_ANN_ROWS:,} rows on, searched exactly until then)"
            for row in waiting.iter_rows(named=True)]


@app.command("drop")
def drop(
    ctx: typer.Context,
    table: Annotated[str, typer.Argument(metavar="TABLE", show_default=False,
                                         help="The index's table.")],
    name: Annotated[str, typer.Argument(metavar="NAME", show_default=False,
                                        help="The index's name, as `index ls` shows it.")],
    root: RootOption = None,
) -> None:
    """Drop an index (an embedding index's vectors go with it)."""
    with library_errors(ctx):
        version = open_table(root, table).drop_index(name)
    typer.echo(f"dropped index {name} of {table}, version {version}")

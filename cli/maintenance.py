"""The `optimize` command: compact a table's fragments and bring its indexes up to date now.

    $ lakehouse optimize books
    optimized books: 412 -> 1 fragments, 100,412 rows, 18.6 MB -> 2.4 MB of data files, 0.3 s,
    version 520
"""

from __future__ import annotations

import typer

from lakehouse_cli.common import (
    ProgressOption,
    RootOption,
    TableArgument,
    library_errors,
    open_table,
    progress_bars,
)


def optimize(
    ctx: typer.Context,
    table: TableArgument,
    progress: ProgressOption = None,
    root: RootOption = None,
) -> None:
    """Compact the table's small fragments and extend its indexes over new rows, now.

    Writes do this by themselves once enough small fragments pile up (unless the lakehouse is
    opened with maintenance off); this runs it all at once. Old versions stay until gc. Prints
    the fragments, rows and bytes of data files before and after."""
    import lakehouse as lh

    with library_errors(ctx), progress_bars(progress):
        t = open_table(root, table)
        report = lh.Table.optimize(t)
    extras = [f"indexes extended: {', '.join(report.indexes_optimized)}"
              if report.indexes_optimized else "",
              f"zone maps built: {', '.join(report.indexes_built)}" if report.indexes_built
              else ""]
    typer.echo(f"optimized {table}: {report.fragments_before:,} -> {report.fragments_after:,} "
               f"fragments, {report.rows:,} rows, {_mb(report.bytes_before)} -> "
               f"{_mb(report.bytes_after)} of data files, {report.seconds:.1f} s, version "
               f"{report.version}" + "".join(f"; {e}" for e in extras if e))


def _mb(size: int) -> str:
    """``2.4 MB``: a size in megabytes (decimal), for one line of output.

    >>> _mb(2_400_000)
    '2.4 MB'
    """
    return f"{size / 1e6:.1f} MB"

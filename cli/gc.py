"""The `gc` command: remove a table's old versions and orphaned files, or show what would go.

    $ lakehouse gc books --dry-run
    $ lakehouse gc books --keep-versions 10 --keep-for 1d
"""

from __future__ import annotations

import datetime
import re
from typing import Annotated

import typer

from lakehouse_cli.common import RootOption, library_errors, open_table

_DURATION = re.compile(r"^\s*(\d+)\s*([smhdw]?)\s*$")
_UNIT_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3_600, "d": 86_400, "w": 604_800}


def parse_duration(text: str | None) -> datetime.timedelta | None:
    """``7d``, ``12h``, ``30m``, ``90s``, ``2w`` or a number of seconds, as a timedelta.

    >>> parse_duration("7d")
    datetime.timedelta(days=7)
    """
    if text is None:
        return None
    found = _DURATION.match(text)
    if found is None:
        raise typer.BadParameter(f"{text!r} is not a duration: use a number with s, m, h, d or "
                                 "w, such as 7d or 12h", param_hint="--keep-for")
    return datetime.timedelta(seconds=int(found[1]) * _UNIT_SECONDS[found[2]])


def gc(
    ctx: typer.Context,
    table: Annotated[str, typer.Argument(metavar="TABLE", help="Table to clean up.",
                                         show_default=False)],
    dry_run: Annotated[bool, typer.Option(
        "--dry-run", help="Show what would be removed and the bytes it holds; remove nothing.")
    ] = False,
    keep_versions: Annotated[int | None, typer.Option(
        "--keep-versions", metavar="N",
        help="Keep at least the newest N versions (default: the maintenance policy's, 50).",
        show_default=False)] = None,
    keep_for: Annotated[str | None, typer.Option(
        "--keep-for", metavar="AGE",
        help="Keep every version younger than AGE, such as 7d, 12h or 30m (default: the "
             "maintenance policy's, 7d).", show_default=False)] = None,
    root: RootOption = None,
) -> None:
    """Remove old versions and files left by crashed writes, and say how many bytes that frees.

    Snapshots, branches, versions views or running backfills need, and versions replaced in the
    last minutes (readers may still use them), always stay; the report says why each stays."""
    age = parse_duration(keep_for)  # a usage mistake is refused before the library loads
    import lakehouse as lh

    with library_errors(ctx):
        t = open_table(root, table)
        report = lh.Table.gc(t, keep_versions=keep_versions, keep_for=age, dry_run=dry_run)
    typer.echo(report.summary())

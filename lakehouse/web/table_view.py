"""The table page: the table's columns, its first rows (images as thumbnails) and its history.

What the page reads is bounded whatever ``n`` asks: at most :data:`MAX_ROWS` rows of the
columns that are not media; images only for the first :data:`MAX_THUMBNAIL_ROWS` rows (each
turned into a small thumbnail, see :mod:`lakehouse.web.thumbnails`); other media (video, audio,
documents) never, since a listing has nothing to show of them but their kind; and the newest
:data:`MAX_HISTORY` versions of the history, newest first, with the number of versions in all
counted from one listing of the table's versions (never by reading each: a request a version
on S3). Every read is of one version of the table, so the rows and their thumbnails match.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import polars as pl

from lakehouse.web.cards import text
from lakehouse.web.thumbnails import Thumbnails

if TYPE_CHECKING:
    from lakehouse.table import Table

MAX_ROWS = 1000  # most rows the page shows
MAX_THUMBNAIL_ROWS = 100  # rows whose images the page reads and shows
MAX_HISTORY = 20  # newest versions shown (history's default page)


@dataclass(frozen=True)
class Cell:
    """One value: a thumbnail id for an image, else text; ``null`` marks a missing value and
    ``muted`` a value the page does not show (grey text)."""

    text: str = ""
    image: str | None = None
    null: bool = False
    muted: bool = False


@dataclass(frozen=True)
class TableView:
    """What the table page shows."""

    name: str
    version: int
    row_count: int
    schema: list[tuple[str, str, str]]  # column, type, computed expression ("" for stored)
    columns: list[str]
    rows: list[list[Cell]]
    thumbnail_rows: int  # rows whose images are shown
    history_columns: list[str]
    history: list[list[str]]  # newest first
    versions: int  # all versions, of which the newest MAX_HISTORY are in history


def table_view(table: Table, n: int, thumbnails: Thumbnails) -> TableView:
    """The first ``n`` rows (at most :data:`MAX_ROWS`) of ``table`` and its history, ready to
    render.

    >>> view = table_view(t, 2, Thumbnails())
    >>> view.name, view.version, view.row_count, view.columns, view.versions
    ('films', 2, 3, ['title', 'year', 'rating'], 2)
    >>> [[cell.text for cell in row] for row in view.rows]
    [['Alien', '1979', '8.5'], ['Heat', '1995', '8.3']]
    """
    pinned = table.at(table.table_version)  # one version for every read below
    described = pinned.describe()
    schema = [(row["column"], row["type"], row.get("computed") or "")
              for row in described.iter_rows(named=True)]
    columns = pinned.column_names()
    kinds = {c: pinned[c].type.kind for c in columns}
    plain = [c for c in columns if not pinned[c].type.is_media]
    images = [c for c in columns if kinds[c] == "image"]
    row_count = pinned.count_rows()
    shown = min(n, MAX_ROWS, row_count)
    values = _read(pinned, plain, shown)
    thumbnail_rows = min(shown, MAX_THUMBNAIL_ROWS)
    values.update(_read(pinned, images, thumbnail_rows))
    rows = [[_cell(values.get(c), kinds[c], i, thumbnails) for c in columns]
            for i in range(shown)]
    history_columns, history, versions = _history(pinned)
    return TableView(name=table.table_name, version=pinned.table_version, row_count=row_count,
                     schema=schema, columns=columns, rows=rows, thumbnail_rows=thumbnail_rows,
                     history_columns=history_columns, history=history, versions=versions)


def _read(table: Table, columns: list[str], n: int) -> dict[str, list[Any]]:
    """The first ``n`` values of each of ``columns``, by column."""
    if not columns or n == 0:
        return {}
    frame: pl.DataFrame = table.limit(n).select(*(table[c] for c in columns)).collect()
    return {c: frame.get_column(c).to_list() for c in columns}


def _cell(read: list[Any] | None, kind: str, row: int, thumbnails: Thumbnails) -> Cell:
    """The cell of ``row`` in a column of ``kind`` whose first values are ``read`` (None: the
    page reads none of them)."""
    if read is None or row >= len(read):  # a media value this page does not read
        shown = f"{kind}, not shown" if kind != "image" else \
            f"image, shown in the first {MAX_THUMBNAIL_ROWS} rows"
        return Cell(text=shown, muted=True)
    value = read[row]
    if value is None:
        return Cell(text="null", null=True)
    if kind == "image":
        token = thumbnails.add(value)
        return Cell(image=token) if token else Cell(text="unreadable or too large", muted=True)
    return Cell(text=text(value))


def _history(table: Table) -> tuple[list[str], list[list[str]], int]:
    """The history's column names, its newest :data:`MAX_HISTORY` rows (newest first, with the
    snapshot names of each version as text) and the number of versions in all.

    >>> _ = t.snapshot("v1")
    >>> columns, rows, versions = _history(t)
    >>> [row[columns.index("version")] for row in rows], rows[0][-1], versions
    (['2', '1'], 'v1', 2)
    """
    history = table.history(limit=MAX_HISTORY).select(pl.exclude("snapshots"), "snapshots")
    rows = [[*(text(v) for v in row[:-1]), ", ".join(row[-1])] for row in history.iter_rows()]
    return history.columns, rows, table.version_count()

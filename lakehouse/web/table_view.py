"""The table page: the table's columns, its first rows (images as thumbnails) and its history."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from lakehouse.web.cards import text
from lakehouse.web.thumbnails import Thumbnails

if TYPE_CHECKING:
    from lakehouse.table import Table

MAX_ROWS = 1000  # most rows the page shows


@dataclass(frozen=True)
class Cell:
    """One value: a thumbnail id for an image, else text; ``null`` marks a missing value."""

    text: str = ""
    image: str | None = None
    null: bool = False


@dataclass(frozen=True)
class TableView:
    """What the table page shows."""

    name: str
    version: int
    row_count: int
    schema: list[tuple[str, str, str]]  # column, type, computed expression ("" for stored)
    columns: list[str]
    rows: list[list[Cell]]
    history_columns: list[str]
    history: list[list[str]]


def table_view(table: Table, n: int, thumbnails: Thumbnails) -> TableView:
    """The first ``n`` rows of ``table`` and its history, ready to render."""
    described = table.describe()
    schema = [(row["column"], row["type"], row.get("computed") or "")
              for row in described.iter_rows(named=True)]
    columns = table.columns()
    kinds = {c: table[c].type.kind for c in columns}
    media = {c for c in columns if table[c].type.is_media}
    rows = []
    for row in table.head(n).iter_rows(named=True):
        cells = []
        for c in columns:
            value = row[c]
            if value is None:
                cells.append(Cell(text="null", null=True))
            elif kinds[c] == "image":
                token = thumbnails.add(value)
                cells.append(Cell(image=token) if token else Cell(text="unreadable image"))
            elif c in media:
                cells.append(Cell(text=f"{kinds[c]}, {len(value):,} bytes"))
            else:
                cells.append(Cell(text=text(value)))
        rows.append(cells)
    history = table.history()
    tags: dict[int, list[str]] = {}
    for tag, version in sorted(table.snapshots().items()):
        tags.setdefault(version, []).append(tag)
    history_rows = [[*(text(v) for v in row),
                     ", ".join(tags.get(row[history.columns.index("version")], []))]
                    for row in history.iter_rows()]
    return TableView(name=table.name, version=table.version, row_count=table.count(),
                     schema=schema, columns=columns, rows=rows,
                     history_columns=[*history.columns, "snapshots"], history=history_rows)

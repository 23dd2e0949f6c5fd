"""What the search page shows: the rows of a similarity search (or, before any text is typed, the
first rows) as cards of a thumbnail, a label and a score.

The search itself is the library's top-k query,
``t.order_by(sim, asc=False).limit(k).select(...)`` with ``sim = t[column].similarity(text)``.
What a visitor types is always searched as text, never read as the location of an image (see
``similarity(text=...)``); the rows' images are read only for the ``k`` rows shown.
"""

from __future__ import annotations

import datetime
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from lakehouse.errors import IndexNotFoundError, InvalidOptionError, TypeMismatchError
from lakehouse.web.thumbnails import Thumbnails

if TYPE_CHECKING:
    import polars as pl

    from lakehouse.table import Table

MAX_TEXT = 200  # characters of a value shown in a label or a cell
MAX_QUERY = 1000  # characters of a search text
SCORE = "__lakehouse_web_score"  # output name of the similarity: cannot clash with a column


@dataclass(frozen=True)
class Card:
    """One result: the id of its thumbnail (None: no image, or not a readable one), the text of
    its row's other values, and its similarity (None when the cards are not a search)."""

    image: str | None
    label: str
    score: float | None


class Cards:
    """Searches one image column of one table and turns the rows into cards.

    Raises ``ColumnNotFoundError`` for a column the table lacks, ``TypeMismatchError`` for a column
    that is not an Image or a ``k`` that is not an integer, ``IndexNotFoundError`` when it has no
    embedding index, and ``InvalidOptionError`` for a ``k`` below 1.

    >>> _ = pics.add_embedding_index("image", embedding=lh.functions.clip(lh.functions.SHAPES_CLIP),
    ...                              progress=False)
    >>> cards = Cards(pics, "image", 1, Thumbnails())
    >>> [(card.label, card.score is not None) for card in cards.search("a coffee cup")]
    [('coffee', True)]
    >>> [(card.label, card.score) for card in cards.browse()]  # no search: the first rows
    [('astronaut', None)]
    >>> cards.search("x" * (MAX_QUERY + 1))
    Traceback (most recent call last):
    ...
    lakehouse.errors.InvalidOptionError: a search text has at most 1000 characters, got 1001
    """

    def __init__(self, table: Table, column: str, k: int, thumbnails: Thumbnails) -> None:
        ref = table[column]
        if ref.type.kind != "image":
            raise TypeMismatchError(f"table {table.table_name!r}: column {column!r} is {ref.type}; "
                                    "the search page shows an Image column")
        if column not in table.indexes().get_column("column").to_list():
            raise IndexNotFoundError(
                f"table {table.table_name!r}: column {column!r} has no embedding index; add one "
                f"with t.add_embedding_index({column!r}, embedding=...) or `lakehouse index add`")
        if isinstance(k, bool) or not isinstance(k, int):
            raise TypeMismatchError(f"k must be a positive integer, got {k!r}")
        if k < 1:
            raise InvalidOptionError(f"k must be a positive integer, got {k!r}")
        self.table = table
        self.column = column
        self.k = k
        self.labels = [c for c in table.column_names() if not table[c].type.is_media]
        self._thumbnails = thumbnails
        self._lock = threading.Lock()  # one query at a time: the model is shared

    def search(self, text: str) -> list[Card]:
        """The ``k`` rows most similar to ``text``, most similar first; an
        ``InvalidOptionError`` for a text longer than ``MAX_QUERY`` characters."""
        if len(text) > MAX_QUERY:
            raise InvalidOptionError(f"a search text has at most {MAX_QUERY} characters, "
                                     f"got {len(text)}")
        t = self.table
        sim = t[self.column].similarity(text=text)
        query = t.order_by(sim, asc=False).limit(self.k).select(
            *self._outputs(), **{SCORE: sim})
        with self._lock:
            frame = query.collect()
        return self._cards(frame)

    def browse(self) -> list[Card]:
        """The first ``k`` rows, in table order."""
        with self._lock:
            frame = self.table.limit(self.k).select(*self._outputs()).collect()
        return self._cards(frame)

    def warm(self) -> None:
        """Load the embedding model now, so that the first search is as fast as the others."""
        self.search("")

    def _outputs(self) -> list[Any]:
        return [self.table[c] for c in (*self.labels, self.column)]

    def _cards(self, frame: pl.DataFrame) -> list[Card]:
        cards = []
        for row in frame.iter_rows(named=True):
            image = row[self.column]
            label = " · ".join(text(row[c]) for c in self.labels if row[c] is not None)
            cards.append(Card(image=self._thumbnails.add(image) if image is not None else None,
                              label=label, score=row.get(SCORE)))
        return cards


def text(value: Any) -> str:
    """A value as the page shows it: plain text, at most ``MAX_TEXT`` characters.

    >>> text(3.14159265), text(datetime.date(2024, 1, 31)), len(text("x" * 300))
    ('3.14159', '2024-01-31', 200)
    """
    if isinstance(value, float):
        shown = f"{value:.6g}"
    elif isinstance(value, datetime.datetime | datetime.date):
        shown = value.isoformat(sep=" ", timespec="seconds") \
            if isinstance(value, datetime.datetime) else value.isoformat()
    else:
        shown = str(value)
    return shown if len(shown) <= MAX_TEXT else shown[:MAX_TEXT - 1] + "…"

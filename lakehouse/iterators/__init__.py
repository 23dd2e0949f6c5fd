"""Iterators: what turns each row of a base table into zero or more rows of a view.

``lh.iterators.document_splitter(t.doc)`` (chunks of text), ``frame_iterator(t.video, fps=1)``
(frames), ``tile_iterator(t.image, tile_size=256)`` (tiles) and ``audio_splitter(t.sound,
duration=10.0)`` (clips) each return an :class:`IteratorCall`: the iterator, the column it reads
and its checked options, which a view stores as JSON. ``@lh.iterators.iterator`` makes a
Python generator function an iterator too.

>>> chunks = lh.iterators.document_splitter(t.title, separators=("sentence",))
>>> [row["text"] for row in chunks.rows("It works. Really!")]
['It works.', 'Really!']
"""

from lakehouse.iterators.builtin import (
    audio_splitter,
    document_splitter,
    frame_iterator,
    tile_iterator,
)
from lakehouse.iterators.parse import parse_iterator
from lakehouse.iterators.registry import IteratorCall
from lakehouse.iterators.user import iterator

__all__ = ["IteratorCall", "audio_splitter", "document_splitter", "frame_iterator", "iterator",
           "parse_iterator", "tile_iterator"]

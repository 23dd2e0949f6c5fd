"""Showing results: PIL images from image columns, and HTML tables with thumbnails for notebooks.

Query results hold media as encoded bytes (``pl.Binary``), which every Polars operation accepts;
:func:`to_pil` turns an image column into PIL images in one call, and :class:`Rendered` (what
``Query.show()`` returns, and what a Query displays as in a notebook) draws images as thumbnails.
"""

from __future__ import annotations

import base64
import html
import io
from typing import Any

import polars as pl

from lakehouse.functions.image import open_image
from lakehouse.functions.image import to_pil as _one_image

THUMBNAIL_PX = 128
MAX_TEXT = 200


def to_pil(values: pl.Series | list[bytes | None] | bytes | None) -> Any:
    """PIL images from an image column of a result (a Series or list of bytes; None stays None),
    or one PIL image from one value.

    >>> images = lh.to_pil(pics.select(pics.image).collect()["image"])
    >>> [image.size for image in images]
    [(512, 512), (600, 400)]
    """
    if values is None or isinstance(values, bytes | bytearray | memoryview):
        return _one_image(bytes(values) if values is not None else None)
    return [_one_image(v) for v in (values.to_list() if isinstance(values, pl.Series) else values)]


class Rendered:
    """A result frame that notebooks show as an HTML table, with images as thumbnails.

    >>> shown = Rendered(pl.DataFrame({"n": [1, 2]}))
    >>> shown.frame.height, "<table" in shown._repr_html_()
    (2, True)
    """

    def __init__(self, frame: pl.DataFrame, media: dict[str, str] | None = None) -> None:
        self.frame = frame
        self.media = media if media is not None else _sniff(frame)

    def __repr__(self) -> str:
        return repr(self.frame)

    def _repr_html_(self) -> str:
        head = "".join(f"<th>{html.escape(c)}</th>" for c in self.frame.columns)
        rows = []
        for row in self.frame.iter_rows():
            cells = "".join(f"<td>{_cell(v, self.media.get(c))}</td>"
                            for c, v in zip(self.frame.columns, row, strict=True))
            rows.append(f"<tr>{cells}</tr>")
        rows_, cols = self.frame.height, self.frame.width
        shape = (f"<small>{rows_} row{'' if rows_ == 1 else 's'} × {cols} "
                 f"column{'' if cols == 1 else 's'}</small>")
        return (f"<table class='lakehouse'><thead><tr>{head}</tr></thead>"
                f"<tbody>{''.join(rows)}</tbody></table>{shape}")


def _cell(value: Any, kind: str | None) -> str:
    if value is None:
        return "<i>null</i>"
    if kind == "image" and isinstance(value, bytes):
        return _thumbnail(value)
    if isinstance(value, bytes):
        label = f"{kind or 'binary'}, {len(value):,} bytes"
        return f"<i>{html.escape(label)}</i>"
    text = str(value)
    if len(text) > MAX_TEXT:
        text = text[:MAX_TEXT - 1] + "…"
    return html.escape(text)


def _thumbnail(data: bytes) -> str:
    try:
        image = open_image(data)
        image.thumbnail((THUMBNAIL_PX, THUMBNAIL_PX))
        if image.mode not in ("RGB", "RGBA", "L"):
            image = image.convert("RGBA")
        out = io.BytesIO()
        image.save(out, format="PNG")
    except Exception:
        return f"<i>unreadable image, {len(data):,} bytes</i>"
    encoded = base64.b64encode(out.getvalue()).decode("ascii")
    return f"<img src='data:image/png;base64,{encoded}' alt='image'/>"


def _sniff(frame: pl.DataFrame) -> dict[str, str]:
    """Binary columns whose first value is an image, for frames that did not come from a query."""
    found = {}
    for name, dtype in frame.schema.items():
        if dtype != pl.Binary:
            continue
        first = next((v for v in frame.get_column(name).to_list() if v is not None), None)
        if first is None:
            continue
        try:
            open_image(first)
        except Exception:
            continue
        found[name] = "image"
    return found


def show(frame: pl.DataFrame) -> Rendered:
    """Any Polars frame, shown in a notebook with its image columns as thumbnails.

    >>> frame = pics.collect().with_columns(pl.col("label").str.to_uppercase())
    >>> lh.show(frame)._repr_html_().count("<img")
    2
    """
    return Rendered(frame)

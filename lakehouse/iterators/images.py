"""The rows of ``tile_iterator``: tiles of an image, cut with Pillow, in the image's format.

The image is decoded once (through :func:`lakehouse.functions.image.decode`, which refuses
decompression bombs and formats outside the raster list) and each tile is cropped from it and
encoded as it is yielded.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from lakehouse.functions.image import decode, encode_image


def tiles(data: bytes, *, tile_size: list[int], overlap: int) -> Iterator[dict[str, Any]]:
    """One row per tile of the image ``data``, left to right, then top to bottom: ``tile``
    (encoded in the image's format, PNG where that format cannot be written) and ``box``
    (``[left, top, right, bottom]``); ValueError if the image cannot be read."""
    image = decode(data, remember=False)
    width, height = tile_size
    for top in _starts(image.height, height, overlap):
        for left in _starts(image.width, width, overlap):
            box = [left, top, min(left + width, image.width), min(top + height, image.height)]
            yield {"tile": encode_image(image.crop(tuple(box)), image.format), "box": box}


def _starts(extent: int, size: int, overlap: int) -> Iterator[int]:
    """Where the tiles along one side start: every ``size - overlap`` pixels, until a tile
    reaches the edge."""
    start = 0
    while True:
        yield start
        if start + size >= extent:
            return
        start += size - overlap

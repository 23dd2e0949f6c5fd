"""Thumbnails of the images a page shows, kept in memory and served by an opaque id.

The search page never names a file or a storage location in a URL. Each image a query returned is
turned into a small thumbnail and filed under the SHA-256 of the image's bytes; ``/media/<id>``
answers only for ids filed this way. So the server can only ever send back pictures that a query of
its own table has read, whatever a request asks for.

Decoding is bounded: images open as the library opens them (``open_image``: only the raster
formats Pillow decodes itself, never EPS, which Pillow hands to Ghostscript), an image of more
than :data:`MAX_SOURCE_BYTES` encoded or :data:`MAX_PIXELS` pixels is not decoded at all, and
JPEGs are decoded at a reduced scale close to the thumbnail's size.
"""

from __future__ import annotations

import hashlib
import io
import re
import threading
from collections import OrderedDict
from dataclasses import dataclass

from PIL import Image

from lakehouse.functions.image import open_image

THUMBNAIL_PX = 256  # grid cells are about 180 CSS pixels: sharp on 1.4x screens
MAX_BYTES = 64 * 2**20  # memory kept for thumbnails; the least recently shown go first
MAX_SOURCE_BYTES = 32 * 2**20  # larger encoded images are not shown
MAX_PIXELS = 40_000_000  # nor images of more pixels than this (a 40 MP photo decodes to 160 MB)
_TOKEN = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class Thumbnail:
    """An encoded thumbnail and its media type."""

    data: bytes
    media_type: str


class Thumbnails:
    """A bounded, thread-safe store of thumbnails by id (least recently used are evicted).

    >>> store = Thumbnails()
    >>> token = store.add(open(photo, "rb").read())  # a 512x512 PNG photo
    >>> thumbnail = store.get(token)
    >>> thumbnail.media_type, Image.open(io.BytesIO(thumbnail.data)).size
    ('image/jpeg', (256, 256))
    >>> store.get("../../etc/passwd") is None  # only ids it filed
    True
    """

    def __init__(self, max_bytes: int = MAX_BYTES, size: int = THUMBNAIL_PX) -> None:
        self._max_bytes = max_bytes
        self._size = size
        self._items: OrderedDict[str, Thumbnail] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def add(self, image: bytes) -> str | None:
        """File a thumbnail of ``image`` (encoded image bytes); returns its id, or None when the
        bytes are not a raster image Pillow decodes itself, or are too large to show."""
        if len(image) > MAX_SOURCE_BYTES:
            return None
        token = hashlib.sha256(image).hexdigest()
        with self._lock:
            if token in self._items:
                self._items.move_to_end(token)
                return token
        thumbnail = _thumbnail(image, self._size)
        if thumbnail is None:
            return None
        with self._lock:
            if token not in self._items:
                self._items[token] = thumbnail
                self._bytes += len(thumbnail.data)
            while self._bytes > self._max_bytes and len(self._items) > 1:
                _, dropped = self._items.popitem(last=False)
                self._bytes -= len(dropped.data)
        return token

    def get(self, token: str) -> Thumbnail | None:
        """The thumbnail filed under ``token``; None for any other string."""
        if not _TOKEN.fullmatch(token):
            return None
        with self._lock:
            found = self._items.get(token)
            if found is not None:
                self._items.move_to_end(token)
            return found


def _thumbnail(image: bytes, size: int) -> Thumbnail | None:
    try:
        with open_image(image) as opened:
            if opened.width * opened.height > MAX_PIXELS:
                return None
            opened.draft("RGB", (size, size))  # JPEG: decode at 1/2, 1/4 or 1/8 scale
            opened.thumbnail((size, size))
            return _encode(opened)
    except Exception:  # Pillow's decoders raise many kinds of errors on damaged files
        return None


def _encode(picture: Image.Image) -> Thumbnail:
    """``picture`` as the browser gets it: JPEG for photos, PNG for the rest."""
    if picture.mode not in ("RGB", "RGBA", "L", "LA"):
        picture = picture.convert("RGBA")
    out = io.BytesIO()
    if picture.mode in ("RGB", "L") and max(picture.size) > 128:
        picture.save(out, format="JPEG", quality=85)
        return Thumbnail(out.getvalue(), "image/jpeg")
    picture.save(out, format="PNG")
    return Thumbnail(out.getvalue(), "image/png")

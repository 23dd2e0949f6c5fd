"""Image functions (Pillow): ``t.image.resize((64, 64))``, ``t.image.width``, ...

Images travel as encoded bytes. A function decodes its input, works on the PIL image, and
encodes an image result in the input's format (JPEG stays JPEG; PNG where the input format
cannot hold the result's mode). Decoded images are kept in a small cache keyed by content, so the
check an insert makes and the computed columns of the same rows decode each image once; the
writer empties it after each batch, so it never holds more than one batch's images.

Only raster formats that Pillow decodes with its own code are opened (:data:`RASTER_FORMATS`:
PNG, JPEG, GIF, WebP, BMP, TIFF, ICO, AVIF, ...): never EPS, PS or PDF, which Pillow hands to
Ghostscript where it is installed. An image with more pixels than Pillow's
``Image.MAX_IMAGE_PIXELS`` (a decompression bomb) and a truncated or corrupt file are a
ValueError, which the insert records as that row's error.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import io
import threading
from collections import OrderedDict
from typing import Any

import numpy as np
from PIL import ExifTags, Image, UnidentifiedImageError

from lakehouse import types as T
from lakehouse.functions.media import media_check, media_function, on_write_done

CACHE_BYTES = 128 * 1024 * 1024  # decoded pixels kept for reuse
_SAVE_FORMATS = {"JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF"}
_JPEG_MODES = {"RGB", "L", "CMYK"}
#: The formats images are opened in: rasters Pillow decodes itself (no Ghostscript, no plugins
#: calling other programs); those this Pillow knows (AVIF came with Pillow 11.2). A JPEG holding
#: several pictures (MPO, from some cameras) opens as JPEG.
RASTER_FORMATS = ("PNG", "JPEG", "GIF", "WEBP", "BMP", "DIB", "TIFF", "ICO", "PPM", "TGA",
                  "QOI", "AVIF")


class _DecodedCache:
    """Decoded images by content hash, least recently used first out, bounded in bytes."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._items: OrderedDict[bytes, Image.Image] = OrderedDict()
        self._size = 0
        self._lock = threading.Lock()

    def get(self, key: bytes) -> Image.Image | None:
        with self._lock:
            found = self._items.get(key)
            if found is not None:
                self._items.move_to_end(key)
            return found

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self._size = 0

    def put(self, key: bytes, image: Image.Image) -> None:
        cost = _pixel_bytes(image)
        if cost > self.limit:
            return
        with self._lock:
            if key in self._items:
                return
            self._items[key] = image
            self._size += cost
            while self._size > self.limit:
                _, old = self._items.popitem(last=False)
                self._size -= _pixel_bytes(old)


_cache = _DecodedCache(CACHE_BYTES)
on_write_done(_cache.clear)


def _pixel_bytes(image: Image.Image) -> int:
    """Memory Pillow uses for the pixels: 4 bytes per pixel for multi-band images."""
    per_pixel = 1 if len(image.getbands()) == 1 and image.mode in ("1", "L", "P") else 4
    return image.width * image.height * per_pixel


def decode(data: bytes, *, remember: bool = True) -> Image.Image:
    """The decoded image (shared: callers must not modify it in place). ``remember`` keeps it
    in the cache for the computed columns of the same batch."""
    key = hashlib.blake2b(data, digest_size=16).digest()
    found = _cache.get(key)
    if found is not None:
        return found
    try:
        image = open_image(data)
        _check_pixels(image)
        image.load()
    except Image.DecompressionBombError as exc:
        raise ValueError(f"not a readable image (a decompression bomb: {exc})") from None
    except UnidentifiedImageError:
        raise ValueError("not a readable image (not a recognised raster image format: "
                         f"{', '.join(RASTER_FORMATS)})") from None
    except Exception as exc:  # Pillow's decoders raise many kinds of errors on damaged files
        raise ValueError(f"not a readable image ({exc or type(exc).__name__})") from None
    if remember:
        _cache.put(key, image)
    return image


def open_image(data: bytes) -> Image.Image:
    """The image in ``data``, opened (not yet decoded) in one of :data:`RASTER_FORMATS` only.
    Raises Pillow's errors: ``UnidentifiedImageError`` for any other format,
    ``DecompressionBombError`` above twice ``Image.MAX_IMAGE_PIXELS`` (it warns above once)."""
    return Image.open(io.BytesIO(data), formats=_known_formats())


@functools.cache
def _known_formats() -> tuple[str, ...]:
    Image.init()  # registers every plugin, so that Image.OPEN lists the formats
    return tuple(f for f in RASTER_FORMATS if f in Image.OPEN)


def _check_pixels(image: Image.Image) -> None:
    """Refuse an image with more pixels than ``Image.MAX_IMAGE_PIXELS`` before decoding it."""
    limit = Image.MAX_IMAGE_PIXELS
    if limit is not None and image.width * image.height > limit:
        raise Image.DecompressionBombError(
            f"{image.width}x{image.height} is more than Image.MAX_IMAGE_PIXELS={limit} pixels")


def encode_image(image: Image.Image, format: str | None = None) -> bytes:
    """Encode ``image`` in ``format`` (default: its own format, else PNG)."""
    fmt = (format or image.format or "PNG").upper()
    if fmt == "JPG":
        fmt = "JPEG"
    if fmt not in _SAVE_FORMATS or (fmt == "JPEG" and image.mode not in _JPEG_MODES):
        fmt = "PNG"
    out = io.BytesIO()
    options = {"quality": 90} if fmt in ("JPEG", "WEBP") else {}
    image.save(out, format=fmt, **options)
    return out.getvalue()


def is_pil(value: Any) -> bool:
    return isinstance(value, Image.Image)


def from_numpy(array: np.ndarray) -> Image.Image:
    """A PIL image from an (h, w), (h, w, 3) or (h, w, 4) array of uint8 (or floats in 0..1)."""
    if array.dtype != np.uint8:
        if np.issubdtype(array.dtype, np.floating):
            array = (np.clip(array, 0, 1) * 255).round().astype(np.uint8)
        else:
            raise TypeError(f"an image array must be uint8 or float, got {array.dtype}")
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (3, 4)):
        raise TypeError(f"an image array has shape (h, w), (h, w, 3) or (h, w, 4), "
                        f"got {array.shape}")
    return Image.fromarray(array)


def encode_value(value: Any) -> bytes | None:
    """The encoded bytes of an in-memory image (a PIL image, or a numpy array as
    :func:`from_numpy` takes it), or None for any other value."""
    if is_pil(value):
        return encode_image(value)
    if isinstance(value, np.ndarray):
        return encode_image(from_numpy(value))
    return None


def to_pil(data: bytes | None) -> Image.Image | None:
    """The PIL image of one image value (a cell of a query result), or None for null."""
    if data is None:
        return None
    return open_image(data)


@media_check("image", encode=encode_value)
def check(data: bytes, ctype: T.ImageType, reuse: bool = False) -> None:
    image = decode(data, remember=reuse)
    if ctype.size is not None and tuple(image.size) != tuple(ctype.size):
        raise ValueError(f"image is {image.size[0]}x{image.size[1]}, the column requires "
                         f"{ctype.size[0]}x{ctype.size[1]}")
    if ctype.mode is not None and image.mode != ctype.mode:
        raise ValueError(f"image mode is {image.mode}, the column requires {ctype.mode}")


def _result(image: Image.Image, source: Image.Image) -> bytes:
    return encode_image(image, source.format)


@media_function("image", "resize", T.Image)
def resize(data: bytes, size: tuple[int, int]) -> bytes:
    """The image scaled to exactly ``size`` = (width, height).

    >>> small = pics.image.resize((64, 32))
    >>> pics.select(small.width, small.height).collect().row(0)
    (64, 32)
    """
    image = decode(data)
    return _result(image.resize((int(size[0]), int(size[1])), Image.Resampling.BICUBIC), image)


@media_function("image", "thumbnail", T.Image)
def thumbnail(data: bytes, size: tuple[int, int]) -> bytes:
    """The image scaled to fit within ``size``, keeping its aspect ratio (never enlarged).

    >>> small = pics.image.thumbnail((100, 100))
    >>> pics.select(pics.label, small.width, small.height).collect().rows()
    [('astronaut', 100, 100), ('coffee', 100, 67)]
    """
    image = decode(data)
    small = image.copy()
    small.thumbnail((int(size[0]), int(size[1])), Image.Resampling.BICUBIC)
    return _result(small, image)


@media_function("image", "crop", T.Image)
def crop(data: bytes, box: tuple[int, int, int, int]) -> bytes:
    """The region ``box`` = (left, upper, right, lower), in pixels.

    >>> corner = pics.image.crop((0, 0, 10, 20))
    >>> pics.select(corner.width, corner.height).collect().row(0)
    (10, 20)
    """
    image = decode(data)
    return _result(image.crop(tuple(int(v) for v in box)), image)  # type: ignore[arg-type]


@media_function("image", "rotate", T.Image)
def rotate(data: bytes, angle: float, expand: bool = True) -> bytes:
    """The image rotated ``angle`` degrees counter-clockwise (``expand`` keeps the corners).

    >>> turned = pics.image.rotate(90)
    >>> pics.where(pics.label == "coffee").select(turned.width, turned.height).collect().row(0)
    (400, 600)
    """
    image = decode(data)
    return _result(image.rotate(float(angle), expand=bool(expand)), image)


@media_function("image", "convert", T.Image)
def convert(data: bytes, mode: str) -> bytes:
    """The image in another mode: ``"L"`` (grey), ``"RGB"``, ``"RGBA"``, ...

    >>> pics.select(pics.image.convert("L").mode).collect().row(0)
    ('L',)
    """
    image = decode(data)
    return _result(image.convert(mode), image)


@media_function("image", "width", T.Int, is_property=True)
def width(data: bytes) -> int:
    """Width in pixels.

    >>> pics.select(pics.label, pics.image.width).collect().rows()
    [('astronaut', 512), ('coffee', 600)]
    """
    return decode(data).width


@media_function("image", "height", T.Int, is_property=True)
def height(data: bytes) -> int:
    """Height in pixels.

    >>> pics.where(pics.image.height < 500).select(pics.label).collect().item()
    'coffee'
    """
    return decode(data).height


@media_function("image", "mode", T.String, is_property=True)
def mode(data: bytes) -> str:
    """Pillow's mode: ``RGB``, ``RGBA``, ``L``, ...

    >>> pics.select(pics.image.mode).collect().row(0)
    ('RGB',)
    """
    return decode(data).mode


@media_function("image", "b64_encode", T.String)
def b64_encode(data: bytes, format: str | None = None) -> str:
    """Base64 text of the image, re-encoded in ``format`` (``"png"``, ``"jpeg"``) if given:
    for data URLs and model APIs that take images as text.

    >>> text = pics.select(pics.image.b64_encode("png")).collect().item(0, 0)
    >>> text[:8]  # the PNG signature in base64
    'iVBORw0K'
    """
    if format is not None:
        data = encode_image(decode(data), format)
    return base64.b64encode(data).decode("ascii")


@media_function("image", "metadata", T.Json)
def metadata(data: bytes) -> dict[str, Any]:
    """Format, size, mode and EXIF tags (by name), as Json.

    >>> pics.select(pics.image.metadata()).collect().item(0, 0)
    '{"format":"PNG","width":512,"height":512,"mode":"RGB","exif":{}}'
    """
    image = decode(data)
    return {"format": image.format, "width": image.width, "height": image.height,
            "mode": image.mode, "exif": _exif(image)}


@media_function("image", "exif", T.Json)
def exif(data: bytes) -> dict[str, Any]:
    """The EXIF tags by name (``Make``, ``Model``, ``DateTime``, ...), as Json.

    >>> pics.select(pics.image.exif()).collect().item(0, 0)  # these PNGs carry none
    '{}'
    """
    return _exif(decode(data))


def _exif(image: Image.Image) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for tag, value in image.getexif().items():
        name = ExifTags.TAGS.get(tag, str(tag))
        if isinstance(value, bytes):
            value = value.decode("utf-8", "replace").rstrip("\x00")
        elif not isinstance(value, str | int | float):
            value = str(value)
        out[name] = value
    return out

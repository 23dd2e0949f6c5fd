"""@lh.udf functions over image bytes, used by the media tests (importable as
``udfs_for_tests.media_udfs`` so that stored definitions resolve in other processes)."""

from __future__ import annotations

import io

from PIL import Image, ImageOps

import lakehouse as lh


@lh.udf
def pixels_unless_bad(data: bytes, label: str) -> int:
    """Width times height of the image; raises ValueError for the label ``"bad"``."""
    if label == "bad":
        raise ValueError(f"refusing the image labelled {label!r}")
    with Image.open(io.BytesIO(data)) as image:
        return image.width * image.height


@lh.udf(returns=lh.Image)
def mirror_unless_bad(data: bytes, label: str) -> bytes:
    """The image mirrored left to right, as PNG bytes; raises ValueError for ``"bad"``."""
    if label == "bad":
        raise ValueError(f"refusing the image labelled {label!r}")
    with Image.open(io.BytesIO(data)) as image:
        out = io.BytesIO()
        ImageOps.mirror(image).save(out, format="PNG")
        return out.getvalue()

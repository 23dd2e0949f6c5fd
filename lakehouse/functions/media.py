"""Built-in media functions and the methods they add to media expressions.

Each function is written once, as a row function taking the encoded bytes of one value
(``resize(data, size)``); registering it with :func:`media_function` also registers a batched
form that runs the rows of a batch on the shared thread pool, so decoding uses every core, and
makes it a method (or, for cheap attributes, a property) of expressions of that media type:
``t.image.resize((64, 64))``, ``t.image.width``, ``t.video.frame(at=1.0)``.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import os
from collections.abc import Callable
from typing import Any

from lakehouse import types as T
from lakehouse.exprs.nodes import Call, Expr, InfoColumn
from lakehouse.exprs.registry import MEDIA, Function, Method, register, register_method
from lakehouse.media.fetch import cache_dir, local_path, write_atomic
from lakehouse.media.pool import pmap

BATCH_ROWS = 64
_RELEASE: list[Callable[[], None]] = []


def media_function(kind: str, name: str, returns: T.ColumnType, *, is_property: bool = False,
                   choices: dict[str, Any] | None = None,
                   ) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register ``fn(data, **options)`` as the built-in ``<kind>.<name>`` and as a method of
    ``kind`` expressions. Options must be JSON values: they are stored in table definitions.
    ``choices`` maps an option to its allowed values, checked when the expression is built."""
    def register_fn(fn: Callable[..., Any]) -> Callable[..., Any]:
        def batched(values: list[bytes], **options: Any) -> list[Any]:
            return pmap(functools.partial(fn, **options), values)

        register(Function(name=f"{kind}.{name}", python=batched, return_type=lambda _: returns,
                          batched=True, batch_size=BATCH_ROWS, null_safe=(False,)))
        register_method(Method(kind, name, f"{kind}.{name}", returns, inspect.signature(fn),
                               inspect.getdoc(fn) or "", is_property=is_property,
                               choices={k: tuple(v) for k, v in (choices or {}).items()}))
        return fn
    return register_fn


def media_check(kind: str, *, check_source: Callable[[str, bytes], None] | None = None,
                encode: Callable[[Any], bytes | None] | None = None,
                ) -> Callable[[T.Checker], T.Checker]:
    """Register the function that validates every inserted value of ``kind`` (and optionally
    the check of the name a value was read from, and the encoder of in-memory values) with the
    media type (:func:`lakehouse.types.register_media`)."""
    def register_fn(fn: T.Checker) -> T.Checker:
        T.register_media(kind, T.MediaHooks(fn, check_source, encode))
        return fn
    return register_fn


def on_write_done(release: Callable[[], None]) -> None:
    """Register a function that frees per-batch state (such as decoded images) once a write has
    finished with a batch."""
    _RELEASE.append(release)


def release_batch_state() -> None:
    """Free what media functions kept for the batch just written."""
    for release in _RELEASE:
        release()


def fileurl(value: Expr) -> Expr:
    """The path or URI the value was inserted from (null for bytes and in-memory values).

    >>> pics.select(pics.label, pics.image.fileurl).collect().row(0)
    ('astronaut', 'file:///.../skimage/data/astronaut.png')
    """
    return InfoColumn(value, "fileurl")  # type: ignore[arg-type]


def localpath(value: Expr) -> Expr:
    """A local file holding the value: the source file itself when it is local and still there,
    else a copy in the cache, named by content.

    >>> from PIL import Image
    >>> path = pics.select(pics.image.localpath).collect().item(0, 0)
    >>> path == photo, Image.open(path).size
    (True, (512, 512))
    """
    return Call("media.localpath", (value, fileurl(value)), (), T.String)


def _localpath(data: bytes, fileurl: str | None) -> str:
    """A local file holding the value: the source file itself when it is local and still there,
    else a copy in the cache, named by content."""
    path = local_path(fileurl) if fileurl else None
    if path is not None and os.path.exists(path):
        return path
    suffix = os.path.splitext(fileurl or "")[1][:10]
    target = cache_dir() / "files" / (hashlib.sha256(data).hexdigest() + suffix)
    if not target.exists():
        write_atomic(target, data)
    return str(target)


register(Function(name="media.localpath", python=_localpath, return_type=lambda _: T.String,
                  null_safe=(False, True)))
register_method(Method(MEDIA, "fileurl", None, T.String, inspect.signature(fileurl),
                       inspect.getdoc(fileurl) or "", is_property=True, build=fileurl))
register_method(Method(MEDIA, "localpath", "media.localpath", T.String,
                       inspect.signature(localpath), inspect.getdoc(localpath) or "",
                       is_property=True, build=localpath))

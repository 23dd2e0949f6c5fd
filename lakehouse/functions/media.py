"""Built-in media functions and the methods they add to media expressions.

Each function is written once, as a row function taking the encoded bytes of one value
(``resize(data, size)``); registering it with :func:`media_function` also registers a batched
form that runs the rows of a batch on the shared thread pool, so decoding uses every core, and
makes it a method (or, for cheap attributes, a property) of expressions of that media type:
``t.image.resize((64, 64))``, ``t.image.width``, ``t.video.frame(at=1.0)``.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import importlib
import inspect
import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from lakehouse import types as T
from lakehouse.errors import TypeMismatchError
from lakehouse.functions.registry import Function, register
from lakehouse.media.fetch import cache_dir, local_path, write_atomic
from lakehouse.media.pool import pmap

if TYPE_CHECKING:
    from lakehouse.exprs.nodes import Expr

BATCH_ROWS = 64
_MODULES = {"image": "image", "video": "video", "audio": "audio", "document": "document"}


@dataclasses.dataclass(frozen=True)
class Method:
    function: str
    returns: T.ColumnType
    is_property: bool
    signature: inspect.Signature
    doc: str
    choices: dict[str, Any]


_METHODS: dict[str, dict[str, Method]] = {}
_RELEASE: list[Callable[[], None]] = []
_CHECKERS: dict[str, Checker] = {}


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
        _METHODS.setdefault(kind, {})[name] = Method(
            f"{kind}.{name}", returns, is_property, inspect.signature(fn),
            inspect.getdoc(fn) or "", dict(choices or {}))
        return fn
    return register_fn


# checker(data, column type, reuse): raise ValueError if ``data`` is not a valid value; ``reuse``
# says computed columns of the same write will read the value, so what was decoded may be kept
Checker = Callable[[bytes, Any, bool], None]


def media_check(kind: str) -> Callable[[Checker], Checker]:
    """Register the function that validates every inserted value of ``kind``."""
    def register_fn(fn: Checker) -> Checker:
        _CHECKERS[kind] = fn
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


def _load(kind: str) -> None:
    importlib.import_module(f"lakehouse.functions.{_MODULES[kind]}")


def checker(kind: str) -> Checker:
    _load(kind)
    return _CHECKERS[kind]


def methods(kind: str) -> dict[str, Method]:
    """The methods of expressions of a media kind, by name."""
    if kind not in _MODULES:
        return {}
    _load(kind)
    return _METHODS.get(kind, {})


def method(expr: Expr, name: str) -> Any:
    """``expr.<name>`` for a media expression: a Call (properties) or a function building one;
    raises AttributeError naming the available methods when there is no such method."""
    from lakehouse.exprs.nodes import Call, ErrorInfo

    if name == "fileurl":
        return ErrorInfo(expr, "fileurl")  # type: ignore[arg-type]
    if name == "localpath":
        return Call("media.localpath", (expr, ErrorInfo(expr, "fileurl")), (),  # type: ignore[arg-type]
                    T.String)
    found = methods(expr.type.kind).get(name)
    if found is None:
        known = ", ".join(sorted(methods(expr.type.kind))) or "none"
        raise AttributeError(f"{expr!r} ({expr.type}) has no method {name!r} (methods: {known})")
    if found.is_property:
        return Call(found.function, (expr,), (), found.returns)

    def build(*args: Any, **kwargs: Any) -> Expr:
        try:
            bound = found.signature.bind(None, *args, **kwargs)
        except TypeError as exc:
            raise TypeMismatchError(f"{expr!r}.{name}(): {exc}") from None
        bound.apply_defaults()
        options = list(bound.arguments.items())[1:]
        for key, value in options:
            _check_option(expr, name, key, value)
            allowed = found.choices.get(key)
            if allowed is not None and value not in allowed:
                raise TypeMismatchError(f"{expr!r}.{name}(): {key} must be one of "
                                        f"{', '.join(map(repr, allowed))}, got {value!r}")
        return Call(found.function, (expr,), tuple((k, _plain(v)) for k, v in options),
                    found.returns)

    build.__name__ = name
    build.__doc__ = found.doc
    return build


def _plain(value: Any) -> Any:
    return [_plain(v) for v in value] if isinstance(value, tuple | list) else value


def _check_option(expr: Expr, name: str, key: str, value: Any) -> None:
    from lakehouse.exprs.nodes import Expr

    if isinstance(value, Expr):
        raise TypeMismatchError(f"{expr!r}.{name}(): {key} must be a literal, got {value!r}")
    ok = value is None or isinstance(value, str | int | float | bool) or (
        isinstance(value, tuple | list) and all(isinstance(v, int | float) for v in value))
    if not ok:
        raise TypeMismatchError(f"{expr!r}.{name}(): {key}={value!r} is not a plain value")


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

"""``@lh.udf``: Python functions usable in computed columns and queries.

A UDF is stored in a table definition as a reference, ``module:qualname``, plus a fingerprint of
its source code: never pickled, never evaluated from storage. Another process resolves the
reference by importing the module, and only functions registered by this decorator resolve; it
imports the module only when it is already imported, trusted, or its source (read without running
it) holds this decorated function with the stored fingerprint (see :mod:`lakehouse.trust`).

Row UDFs take one value per argument; batched UDFs (``batch_size=``) take one list per argument
and return a list, which is how models run efficiently.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import linecache
import sys
import types as pytypes
import typing
from collections.abc import Callable
from typing import Any, overload

from lakehouse import types as T
from lakehouse.errors import TypeMismatchError
from lakehouse.exprs.nodes import Call, Expr, lit
from lakehouse.exprs.registry import Function, register
from lakehouse.trust import block_fingerprint


class UDF:
    """A registered user function; calling it on expressions builds a :class:`Call` node,
    calling it on plain values runs the function.

    >>> @lh.udf
    ... def initials(title: str) -> str:
    ...     return "".join(word[0] for word in title.split())
    >>> initials.name, initials.return_type
    ('lakehouse.udf:initials', lh.String)
    >>> initials(t.title)
    initials(title)
    >>> t.select(t.title, initials(t.title)).collect().row(0)
    ('Alien', 'A')
    """

    def __init__(self, fn: Callable[..., Any], *, batch_size: int | None,
                 returns: Any = None, reads_tables: bool = False) -> None:
        self.fn = fn
        self.name = f"{_importable_module(fn)}:{fn.__qualname__}"
        self.batched = batch_size is not None
        self.signature = inspect.signature(fn)
        hints = typing.get_type_hints(fn)
        self.return_type = self._return_type(hints, returns)
        self.param_types = {
            name: _element_type(hints.get(name), self.batched) for name in self.signature.parameters
        }
        self.function = register(Function(
            name=self.name,
            python=fn,
            return_type=lambda _: self.return_type,
            batched=self.batched,
            batch_size=batch_size or 1024,
            fingerprint=fingerprint(fn),
            reads_tables=reads_tables,
            null_safe=tuple(_accepts_none(_list_element(hints.get(p)) if self.batched
                                          else hints.get(p)) for p in self.signature.parameters),
        ))
        functools.update_wrapper(self, fn)

    def _return_type(self, hints: dict[str, Any], returns: Any) -> T.ColumnType:
        if returns is not None:
            return T.parse_type(returns, column=f"return value of {self.name}")
        found = _element_type(hints.get("return"), self.batched)
        if found is None:
            raise TypeMismatchError(
                f"@lh.udf {self.name}: annotate the return type (e.g. '-> str') or pass returns="
            )
        return found

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if not any(isinstance(a, Expr) for a in (*args, *kwargs.values())):
            return self.fn(*args, **kwargs)
        try:
            bound = self.signature.bind(*args, **kwargs)
        except TypeError as exc:
            raise TypeMismatchError(f"{self.name}: {exc}") from None
        bound.apply_defaults()
        exprs = []
        for pname, value in bound.arguments.items():
            expr = lit(value)
            want = self.param_types.get(pname)
            if want is not None and not _compatible(expr.type, want):
                raise TypeMismatchError(
                    f"{self.name}: parameter {pname!r} expects {want}, got {expr!r} ({expr.type})"
                )
            exprs.append(expr)
        return Call(self.name, tuple(exprs), (), self.return_type)

    def __repr__(self) -> str:
        return f"<lh.udf {self.name}>"


@overload
def udf(fn: Callable[..., Any]) -> UDF: ...
@overload
def udf(*, batch_size: int | None = None, returns: Any = None) -> Callable[[Callable], UDF]: ...
def udf(fn: Callable[..., Any] | None = None, *, batch_size: int | None = None,
        returns: Any = None) -> Any:
    """Register a Python function for use in computed columns.

    >>> @udf
    ... def shout(s: str) -> str:
    ...     return s.upper() + "!"
    >>> shout("hi")
    'HI!'

    With ``batch_size=N`` the function receives lists of up to N values per argument and returns a
    list of results (annotate parameters as ``list[str]`` and the result as ``list[float]``).

    >>> @udf(batch_size=64)
    ... def lengths(titles: list[str]) -> list[int]:
    ...     return [len(s) for s in titles]
    >>> _ = t.add_computed_column(title_length=lengths(t.title), progress=False)
    >>> t.select(t.title, t.title_length).collect().rows()
    [('Alien', 5), ('Heat', 4), ('Up', 2)]
    """
    if fn is None:
        return lambda f: UDF(f, batch_size=batch_size, returns=returns)
    return UDF(fn, batch_size=batch_size, returns=returns)


def _importable_module(fn: Callable[..., Any]) -> str:
    """The module name another process can import ``fn`` from (``python -m pkg.mod`` runs
    ``pkg.mod`` as ``__main__``, but it is still importable as ``pkg.mod``)."""
    module = fn.__module__
    if module == "__main__":
        spec = getattr(sys.modules.get("__main__"), "__spec__", None)
        if spec is not None and spec.name:
            return spec.name
    return module


def fingerprint(fn: Callable[..., Any]) -> str:
    """A short hash of the function's source block, taken from its module's source text so that
    another process can check a module's source against it without importing the module (see
    :mod:`lakehouse.trust`); the source or bytecode of ``fn`` itself when that fails (a function
    defined inside another one, or without a source file)."""
    fn = inspect.unwrap(fn)
    try:
        lines = linecache.getlines(inspect.getsourcefile(fn) or "", fn.__globals__)
        found = block_fingerprint("".join(lines), fn.__qualname__) if lines else None
    except (TypeError, SyntaxError, ValueError):
        found = None
    if found is not None:
        return found
    try:
        data = inspect.getsource(fn).strip().encode()
    except (OSError, TypeError):
        data = fn.__code__.co_code
    return hashlib.sha256(data).hexdigest()[:16]


def _element_type(hint: Any, batched: bool) -> T.ColumnType | None:
    if hint is None:
        return None
    hint = _strip_optional(hint)
    if batched and typing.get_origin(hint) is list:
        (hint,) = typing.get_args(hint) or (None,)
        hint = _strip_optional(hint)
    return T.from_python_type(hint)


def _strip_optional(hint: Any) -> Any:
    if typing.get_origin(hint) in (typing.Union, pytypes.UnionType):
        rest = [a for a in typing.get_args(hint) if a is not type(None)]
        if len(rest) == 1:
            return rest[0]
    return hint


def _list_element(hint: Any) -> Any:
    """The element hint of a batched parameter: ``str | None`` for ``list[str | None]``."""
    if typing.get_origin(hint) is list:
        (element,) = typing.get_args(hint) or (None,)
        return element
    return hint


def _accepts_none(hint: Any) -> bool:
    return hint is None or (
        typing.get_origin(hint) in (typing.Union, pytypes.UnionType)
        and type(None) in typing.get_args(hint)
    )


def _compatible(got: T.ColumnType, want: T.ColumnType) -> bool:
    if got.same_kind(want) or (got.kind == "int" and want.kind == "float"):
        return True
    return want.kind == "json"

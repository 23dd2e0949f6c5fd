"""String functions (``t.s.str.upper()``), each with a Polars form and a Python row form."""

from __future__ import annotations

from typing import Any

import polars as pl

from lakehouse import types as T
from lakehouse.errors import TypeMismatchError
from lakehouse.exprs.nodes import Call, Expr
from lakehouse.functions.registry import Function, register


def _builtin(name: str, returns: T.ColumnType, python: Any, polars: Any) -> None:
    register(Function(name=f"str.{name}", python=python, return_type=lambda _: returns,
                      polars=polars))


_builtin("upper", T.String, lambda s: s.upper(), lambda e: e.str.to_uppercase())
_builtin("lower", T.String, lambda s: s.lower(), lambda e: e.str.to_lowercase())
_builtin("strip", T.String, lambda s: s.strip(), lambda e: e.str.strip_chars())
_builtin("len", T.Int, lambda s: len(s), lambda e: e.str.len_chars().cast(pl.Int64))
_builtin("contains", T.Bool, lambda s, sub: sub in s,
         lambda e, sub: e.str.contains(sub, literal=True))
_builtin("startswith", T.Bool, lambda s, p: s.startswith(p), lambda e, p: e.str.starts_with(p))
_builtin("endswith", T.Bool, lambda s, p: s.endswith(p), lambda e, p: e.str.ends_with(p))
_builtin("replace", T.String, lambda s, old, new: s.replace(old, new),
         lambda e, old, new: e.str.replace_all(old, new, literal=True))
_builtin("slice", T.String,
         lambda s, start, length=None: s[start:None if length is None else start + length],
         lambda e, start, length=None: e.str.slice(start, length))


class StringMethods:
    """The ``.str`` namespace of a String expression."""

    def __init__(self, expr: Expr) -> None:
        if expr.type.kind != "string":
            raise TypeMismatchError(f".str needs a String expression, got {expr!r} ({expr.type})")
        self._expr = expr

    def _call(self, name: str, *args: Any, returns: T.ColumnType) -> Expr:
        for a in args:
            if isinstance(a, Expr):
                raise TypeMismatchError(f"str.{name}() takes literal arguments, got {a!r}")
        kwargs = tuple((f"arg{i}", a) for i, a in enumerate(args))
        return Call(f"str.{name}", (self._expr,), kwargs, returns)

    def upper(self) -> Expr:
        return self._call("upper", returns=T.String)

    def lower(self) -> Expr:
        return self._call("lower", returns=T.String)

    def strip(self) -> Expr:
        return self._call("strip", returns=T.String)

    def len(self) -> Expr:
        return self._call("len", returns=T.Int)

    def contains(self, sub: str) -> Expr:
        return self._call("contains", sub, returns=T.Bool)

    def startswith(self, prefix: str) -> Expr:
        return self._call("startswith", prefix, returns=T.Bool)

    def endswith(self, suffix: str) -> Expr:
        return self._call("endswith", suffix, returns=T.Bool)

    def replace(self, old: str, new: str) -> Expr:
        return self._call("replace", old, new, returns=T.String)

    def slice(self, start: int, length: int | None = None) -> Expr:
        return self._call("slice", start, length, returns=T.String)

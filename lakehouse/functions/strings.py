"""String functions (``t.s.str.upper()``), each with a Polars form and a Python row form.

Each function is one entry: its Python row form, whose signature gives the method's parameters
and whose docstring its documentation, decorated with its return type and Polars form. The
decorator registers both forms in the function registry (:mod:`lakehouse.exprs.registry`) and
makes the function a ``.str`` method of String expressions; the where/select parser, the CLI's
help and the README's table of functions read it from there.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable
from typing import Any

import polars as pl

from lakehouse import types as T
from lakehouse.exprs.registry import STRING, Function, Method, register, register_method


def string_method(returns: T.ColumnType, polars: Callable[..., pl.Expr], *, name: str = "",
                  ) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register ``fn(s, *options)`` as the built-in ``str.<name>`` (``name`` defaults to the
    function's) with the Polars form ``polars(expr, *options)``, and as the method
    ``.str.<name>(*options)``. Options are stored by position (``arg0``, ``arg1``...)."""
    def register_fn(fn: Callable[..., Any]) -> Callable[..., Any]:
        method = name or fn.__name__
        full = f"{STRING}.{method}"
        register(Function(name=full, python=fn, return_type=lambda _: returns, polars=polars))
        register_method(Method(STRING, method, full, returns, inspect.signature(fn),
                               inspect.getdoc(fn) or "", positional=True))
        return fn
    return register_fn


@string_method(T.String, lambda e: e.str.to_uppercase())
def upper(s: str) -> str:
    """The text in upper case.

    >>> t.select(t.title.str.upper()).collect()["upper"].to_list()
    ['ALIEN', 'HEAT', 'UP']
    """
    return s.upper()


@string_method(T.String, lambda e: e.str.to_lowercase())
def lower(s: str) -> str:
    """The text in lower case.

    >>> t.where(t.title.str.lower() == "heat").count()
    1
    """
    return s.lower()


@string_method(T.String, lambda e: e.str.strip_chars())
def strip(s: str) -> str:
    """The text without leading and trailing whitespace.

    >>> _ = t.insert([{"title": "  Ran "}], progress=False)
    >>> t.where(t.title.str.strip() == "Ran").select(t.title).collect().item()
    '  Ran '
    """
    return s.strip()


@string_method(T.Int, lambda e: e.str.len_chars().cast(pl.Int64), name="len")
def length(s: str) -> int:
    """The number of characters.

    >>> t.select(t.title, t.title.str.len()).collect().rows()
    [('Alien', 5), ('Heat', 4), ('Up', 2)]
    """
    return len(s)


@string_method(T.Bool, lambda e, sub: e.str.contains(sub, literal=True))
def contains(s: str, sub: str) -> bool:
    """Whether the text contains ``sub`` (literally, not as a pattern).

    >>> t.where(t.title.str.contains("e")).collect()["title"].to_list()
    ['Alien', 'Heat']
    """
    return sub in s


@string_method(T.Bool, lambda e, prefix: e.str.starts_with(prefix))
def startswith(s: str, prefix: str) -> bool:
    """Whether the text starts with ``prefix``.

    >>> t.where(t.title.str.startswith("U")).collect()["title"].to_list()
    ['Up']
    """
    return s.startswith(prefix)


@string_method(T.Bool, lambda e, suffix: e.str.ends_with(suffix))
def endswith(s: str, suffix: str) -> bool:
    """Whether the text ends with ``suffix``.

    >>> t.where(t.title.str.endswith("t")).collect()["title"].to_list()
    ['Heat']
    """
    return s.endswith(suffix)


@string_method(T.String, lambda e, old, new: e.str.replace_all(old, new, literal=True))
def replace(s: str, old: str, new: str) -> str:
    """The text with every ``old`` replaced by ``new`` (literally).

    >>> t.select(t.title.str.replace("e", "3")).collect()["replace"].to_list()
    ['Ali3n', 'H3at', 'Up']
    """
    return s.replace(old, new)


@string_method(T.String, lambda e, start, length=None: e.str.slice(start, length),
               name="slice")
def substring(s: str, start: int, length: int | None = None) -> str:
    """``length`` characters from ``start`` (to the end without ``length``).

    >>> t.select(t.title.str.slice(1, 2), t.title.str.slice(2)).collect().row(0)
    ('li', 'ien')
    """
    return s[start:None if length is None else start + length]


@string_method(T.Bool, lambda e, pattern, escape=None:
               e.str.contains(f"^{_like_regex(pattern, escape, ignore_case=False)}$"))
def like(s: str, pattern: str, escape: str | None = None) -> bool:
    """Whether the whole text matches the SQL LIKE ``pattern``: ``%`` stands for any text,
    ``_`` for one character; ``escape`` (one character) makes the character after it literal.
    Case-sensitive.

    >>> t.where(t.title.str.like("%e%")).collect()["title"].to_list()
    ['Alien', 'Heat']
    """
    return re.fullmatch(_like_regex(pattern, escape, ignore_case=False), s) is not None


@string_method(T.Bool, lambda e, pattern, escape=None:
               e.str.contains(f"^{_like_regex(pattern, escape, ignore_case=True)}$"))
def ilike(s: str, pattern: str, escape: str | None = None) -> bool:
    """As ``like``, ignoring case (SQL ILIKE).

    >>> t.where(t.title.str.ilike("a%")).collect()["title"].to_list()
    ['Alien']
    """
    return re.fullmatch(_like_regex(pattern, escape, ignore_case=True), s) is not None


def _like_regex(pattern: str, escape: str | None, *, ignore_case: bool) -> str:
    """A regular expression, read alike by Python's ``re`` and Polars (Rust's regex), for the
    LIKE ``pattern``; it matches the whole text with ``re.fullmatch``, or between ``^`` and
    ``$`` in Polars. Other characters are escaped with a backslash, which both read as the
    character itself before any ASCII punctuation."""
    if escape is not None and len(escape) != 1:
        raise ValueError(f"a LIKE escape is one character, got {escape!r}")
    parts = ["(?is)(?:" if ignore_case else "(?s)(?:"]
    chars = iter(pattern)
    for ch in chars:
        if ch == escape:
            parts.append(re.escape(next(chars, escape)))  # a trailing escape stands for itself
        elif ch in "%_":
            parts.append(".*" if ch == "%" else ".")
        else:
            parts.append(re.escape(ch))
    return "".join(parts) + ")"

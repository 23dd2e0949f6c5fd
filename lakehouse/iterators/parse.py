"""Read an iterator call from text, as in the command line's ``--iterator "frame_iterator(video)"``.

The text is parsed by Python's own parser (through :class:`lakehouse.exprs.parse.ParsedText`, as
where strings are) and the syntax tree is read, never compiled or evaluated. Exactly one shape is
accepted::

    NAME(COLUMN, option=literal, ...)

``NAME`` is a built-in iterator (``document_splitter``, ``frame_iterator``, ``tile_iterator``,
``audio_splitter``); ``COLUMN`` a bare column name of the table; each option a literal: a
string, a number (negative too), True, False, None, or a list or tuple of them. Everything else is
an ExpressionSyntaxError naming what was refused, its column and the iterators there are:
attribute access (``os.system(...)``), calls inside the arguments, private names
(``__import__``), lambdas, f-strings, starred arguments, unknown names. A user iterator
(``module:function``) is refused from text: it runs code of its module, so it is made in Python,
with the function itself (``db.create_view(..., iterator=my_splitter(t.doc))``).

The call is then made through the iterator's public constructor
(``lh.iterators.frame_iterator(t.video, fps=1)``), so its options are checked in one place.
"""

from __future__ import annotations

import ast
import difflib
import inspect
import re
from typing import TYPE_CHECKING, Any

from lakehouse.errors import (
    ColumnNotFoundError,
    ExpressionSyntaxError,
    InvalidOptionError,
    TypeMismatchError,
)
from lakehouse.exprs.parse import ParsedText
from lakehouse.iterators import builtin
from lakehouse.iterators.registry import IteratorCall, builtin_names, options_of

if TYPE_CHECKING:
    from lakehouse.table import Table

LABEL = "iterator"
_USER_ITERATOR = re.compile(r"^\s*(['\"]?)([\w.]+:[\w.]+)\1\s*\(")  # module:function(...)


def parse_iterator(text: str, table: Table) -> IteratorCall:
    """The iterator call written in ``text`` over ``table``'s columns, such as
    ``frame_iterator(video, fps=1)`` or ``document_splitter(doc, separators=('paragraph',))``;
    the grammar is in this module's docstring. Raises ExpressionSyntaxError for text that is
    not such a call, ColumnNotFoundError for an unknown column, and the constructor's
    InvalidOptionError or TypeMismatchError for options or a column it does not take.

    >>> lh.parse_iterator("frame_iterator(video, fps=1)", clips)
    frame_iterator(video, fps=1.0)
    >>> lh.parse_iterator("__import__('os').system('ls')", clips)
    Traceback (most recent call last):
    ...
    lakehouse.errors.ExpressionSyntaxError: iterator: cannot call "__import__('os').system": \
only a built-in iterator can be named here (document_splitter, frame_iterator, tile_iterator, \
audio_splitter), like frame_iterator(video, fps=1) at column 1
    >>> lh.parse_iterator("frame_iterator(video, fps=0)", clips)
    Traceback (most recent call last):
    ...
    lakehouse.errors.InvalidOptionError: iterator: frame_iterator(): fps must be a number above \
0, got 0 at column 1
    """
    user = _USER_ITERATOR.match(text) if isinstance(text, str) else None
    if user is not None:
        raise ExpressionSyntaxError(
            f"{LABEL}: {user.group(2)!r} names a user iterator; a user iterator runs "
            "code of its module, so it cannot be given as text: create the view in Python, "
            "db.create_view(name, base, iterator=your_iterator(t.column, ...))",
            text=text, line=1, column=1)
    if isinstance(text, str) and not text.strip():
        raise ExpressionSyntaxError(f"{LABEL}: the text is empty; write an iterator call such "
                                    "as frame_iterator(video, fps=1)", text=text, line=1, column=1)
    parsed = ParsedText.read(text, label=LABEL)
    call = parsed.body
    if not isinstance(call, ast.Call):
        raise _refused(parsed, call, f"expected an iterator call, got {parsed.snippet(call)!r}")
    name = _iterator_name(parsed, call)
    column = _column(parsed, call, table, name)
    options = {k.arg: parsed.literal(k.value) for k in call.keywords if k.arg is not None}
    return _construct(parsed, call, name, column, options)


def _refused(parsed: ParsedText, node: ast.AST, message: str) -> ExpressionSyntaxError:
    return parsed.error(node, f"{message}: only a built-in iterator can be named here "
                              f"({', '.join(builtin_names())}), like frame_iterator(video, "
                              "fps=1)")


def _iterator_name(parsed: ParsedText, call: ast.Call) -> str:
    """The built-in iterator the call names; starred arguments are refused here too."""
    func = call.func
    if not isinstance(func, ast.Name):
        raise _refused(parsed, func, f"cannot call {_shown(parsed, func)!r}")
    if func.id not in builtin_names():
        close = difflib.get_close_matches(func.id, builtin_names(), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise _refused(parsed, func, f"{func.id!r} is not an iterator{hint}")
    for node in (*call.args, *call.keywords):
        if isinstance(node, ast.Starred) or (isinstance(node, ast.keyword) and node.arg is None):
            raise _refused(parsed, node, f"cannot use a starred argument "
                                         f"{_shown(parsed, node)!r}")
    return func.id


def _column(parsed: ParsedText, call: ast.Call, table: Table, name: str) -> Any:
    """The column the iterator reads: its one positional argument, a bare column name."""
    example = f"{name}(column, option=value, ...)"
    if len(call.args) != 1:
        node = call.args[1] if call.args else call
        raise parsed.error(node, f"{name}() takes one column, then options by name: {example}")
    arg = call.args[0]
    if not isinstance(arg, ast.Name) or arg.id.startswith("_"):
        message = (f"{name}() reads a column, named as it is ({example}), got "
                   f"{_shown(parsed, arg)!r}")
        raise parsed.error(arg, message)
    try:
        return table[arg.id]
    except ColumnNotFoundError as exc:
        raise ColumnNotFoundError(str(parsed.error(arg, str(exc)))) from None


def _construct(parsed: ParsedText, call: ast.Call, name: str, column: Any,
               options: dict[str, Any]) -> IteratorCall:
    """Make the call through the iterator's public constructor, which checks the column and
    the options; its errors keep their class and gain the label and the column of the call
    (of the column argument, for a column type the iterator does not read). Options it does
    not take are an InvalidOptionError naming those it does."""
    constructor = getattr(builtin, name)
    try:
        inspect.signature(constructor).bind(column, **options)
    except TypeError as exc:
        known = options_of(constructor)
        unknown = [k for k in options if k not in known]
        close = difflib.get_close_matches(unknown[0], known, n=1) if unknown else []
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        message = f"{name}(): {exc}{hint}; its options are {', '.join(known) or 'none'}"
        raise InvalidOptionError(str(parsed.error(call, message))) from None
    try:
        return constructor(column, **options)
    except InvalidOptionError as exc:
        raise InvalidOptionError(str(parsed.error(call, str(exc)))) from None
    except TypeMismatchError as exc:
        raise TypeMismatchError(str(parsed.error(call.args[0], str(exc)))) from None


def _shown(parsed: ParsedText, node: ast.AST) -> str:
    """The node's text without the trailing ``(...)`` a call's snippet has."""
    shown = parsed.snippet(node)
    return shown.removesuffix("(...)") if isinstance(node, ast.Call) else shown


__all__ = ["parse_iterator"]

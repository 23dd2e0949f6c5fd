"""``@lh.iterators.iterator``: a Python generator function as an iterator of views.

The function takes one base value (bytes of a media file, or a plain value) and keyword
options, and yields one dict per view row. It is registered under ``module:qualname``, the name
a view's stored definition keeps; another process finds it again only when the module is
imported or trusted there (see :mod:`lakehouse.iterators.registry`).
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from lakehouse import types as T
from lakehouse.errors import InvalidOptionError, TypeMismatchError
from lakehouse.iterators.registry import (
    RESERVED,
    IteratorCall,
    IteratorDef,
    make_call,
    register,
)

RowsFunction = Callable[..., Iterator[dict[str, Any]]]


class UserIterator:
    """A registered user iterator; calling it on a column makes an :class:`IteratorCall`.

    >>> @lh.iterators.iterator(outputs={"word": lh.String}, input=lh.String)
    ... def words(text, *, lower=False):
    ...     for word in text.split():
    ...         yield {"word": word.lower() if lower else word}
    >>> call = words(t.title, lower=True)
    >>> call, [row["word"] for row in call.rows("Blade Runner")]
    (words(title, lower=True), ['blade', 'runner'])
    """

    def __init__(self, fn: RowsFunction, outputs: Mapping[str, Any],
                 input: T.ColumnType | Sequence[T.ColumnType]) -> None:
        self.fn = fn
        self.name = f"{fn.__module__}:{fn.__qualname__}"
        self.outputs = _outputs(self.name, outputs)
        self.options = _options(self.name, fn)
        kinds = tuple(t.kind for t in ([input] if isinstance(input, T.ColumnType) else input))
        if not kinds or not all(isinstance(k, str) and k for k in kinds):
            raise TypeMismatchError(f"@lh.iterators.iterator {self.name}: input= takes the "
                                    f"column type it reads (lh.String, lh.Video...), got "
                                    f"{input!r}")
        register(IteratorDef(self.name, kinds, self.options, self._normalise,
                             lambda _: dict(self.outputs), fn, builtin=False))

    def _normalise(self, options: dict[str, Any]) -> dict[str, Any]:
        found = {}
        for key, value in options.items():
            try:
                found[key] = json.loads(json.dumps(value, allow_nan=False))
            except (TypeError, ValueError):
                msg = (f"{self.name}: option {key}={value!r} is not a JSON value; a view "
                       "stores its iterator's options as JSON")
                raise InvalidOptionError(msg) from None
        return found

    def __call__(self, column: Any, **options: Any) -> IteratorCall:
        return make_call(self.name, column, options)

    def __repr__(self) -> str:
        return f"<lh.iterators.iterator {self.name}>"


def iterator(*, outputs: Mapping[str, Any], input: T.ColumnType | Sequence[T.ColumnType],
             ) -> Callable[[RowsFunction], UserIterator]:
    """Register a generator function ``fn(value, **options)`` as an iterator of views.

    ``outputs`` names its columns and their types (``pos`` is the view's own); ``input`` is
    the column type it reads (or several). Options are the function's other parameters, given
    when the iterator is applied (``words(t.title, lower=True)``) and stored as JSON.

    >>> @iterator(outputs={"letter": lh.String, "count": lh.Int}, input=lh.String)
    ... def letters(text):
    ...     for letter in sorted(set(text)):
    ...         yield {"letter": letter, "count": text.count(letter)}
    >>> list(letters(t.title).rows("Heat"))[:2]
    [{'letter': 'H', 'count': 1}, {'letter': 'a', 'count': 1}]
    """
    return lambda fn: UserIterator(fn, outputs, input)


def _outputs(name: str, outputs: Mapping[str, Any]) -> dict[str, T.ColumnType]:
    if not isinstance(outputs, Mapping) or not outputs:
        raise TypeMismatchError(f"@lh.iterators.iterator {name}: outputs= maps each output "
                                f"column to its type, such as {{'word': lh.String}}")
    reserved = [k for k in outputs if k in RESERVED]
    if reserved:
        raise InvalidOptionError(f"@lh.iterators.iterator {name}: {reserved[0]!r} is the "
                                 "view's own column (each row's position); name the output "
                                 "otherwise")
    return {str(k): T.parse_type(v, column=str(k)) for k, v in outputs.items()}


def _options(name: str, fn: RowsFunction) -> dict[str, Any]:
    params = list(inspect.signature(fn).parameters.values())
    variadic = [p.name for p in params if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
    if not params or variadic:
        raise TypeMismatchError(f"@lh.iterators.iterator {name}: the function takes the value "
                                "first, then named options (no *args or **kwargs)")
    return {p.name: p.default for p in params[1:]}  # inspect's empty is REQUIRED


__all__ = ["UserIterator", "iterator"]

"""``@lh.query``: a parameterised query that computed columns can call, row by row.

>>> @lh.query
... def films_before(year: int) -> lh.Query:
...     return t.where(t.year < year).order_by(t.year).select(t.title)
>>> events = db.create_table("events", {"event": lh.String, "year": lh.Int})
>>> _ = events.insert([{"event": "moon landing", "year": 1969},
...                    {"event": "Berlin Wall falls", "year": 1989}], progress=False)
>>> _ = events.add_computed_column(earlier_films=films_before(events.year), progress=False)
>>> events.select(events.event, events.earlier_films).collect().rows()
[('moon landing', '[]'), ('Berlin Wall falls', '[{"title":"Alien"}]')]

Each row's call runs the query with that row's values and stores its result rows as a JSON list
of objects. Like a UDF, the function is stored by reference (``module:qualname`` and a
fingerprint of its code), so it must live in an importable module for other processes to keep
the column current; its body, not the stored definition, decides which table it reads. Another
process imports that module only when it is trusted or its source still holds this decorated
function with the stored fingerprint (see :mod:`lakehouse.trust`).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from typing import Any

import polars as pl

from lakehouse import types as T
from lakehouse.errors import TypeMismatchError
from lakehouse.udf import UDF


def query(fn: Callable[..., Any]) -> UDF:
    """Turn ``fn`` (returning a :class:`lakehouse.Query`) into a function usable in computed
    columns and queries; its result per row is a JSON list of the query's rows. Called on
    plain values it runs the query at once.

    >>> @query
    ... def rated_above(rating: float) -> lh.Query:
    ...     return t.where(t.rating > rating).select(t.title, t.rating)
    >>> rated_above(8.4)
    [{'title': 'Alien', 'rating': 8.5}]
    >>> rated_above(lh.lit(8.0))  # on an expression: a call a computed column can store
    rated_above(8.0)
    """
    @functools.wraps(fn)
    def rows(*args: Any, **kwargs: Any) -> list[dict[str, Any]]:
        result = fn(*args, **kwargs)
        collect = getattr(result, "collect", None)
        if collect is None:
            raise TypeMismatchError(f"@lh.query {fn.__qualname__} must return a query "
                                    f"(t.where(...).select(...)), got {type(result).__name__}")
        frame = collect()
        return _json_rows(frame)

    rows.__annotations__ = {k: v for k, v in getattr(fn, "__annotations__", {}).items()
                            if k != "return"}
    return UDF(rows, batch_size=None, returns=T.Json, reads_tables=True)


def _json_rows(frame: pl.DataFrame) -> list[dict[str, Any]]:
    """The rows as JSON values (binary media left out: a JSON column cannot hold bytes)."""
    keep = [c for c, dtype in frame.schema.items() if dtype != pl.Binary]
    return json.loads(frame.select(keep).write_json())

"""Expressions <-> JSON, for computed-column definitions stored in the Lance manifest.

The JSON is plain data: column references by id (with the name for readers), literals, operators
and function names. Decoding builds nodes and never runs anything; function names are resolved only
when the executor needs them (see :mod:`lakehouse.exprs.registry`).
"""

from __future__ import annotations

import datetime as dt
import inspect
from collections.abc import Callable
from typing import Any

from lakehouse import types as T
from lakehouse.errors import UnsafeDefinitionError, UnsupportedError
from lakehouse.exprs import registry
from lakehouse.exprs.nodes import (
    ARITHMETIC,
    COMPARISON,
    LOGICAL,
    BinaryOp,
    Call,
    Cast,
    ColumnRef,
    Expr,
    IfElse,
    InfoColumn,
    IsIn,
    IsNull,
    JsonPath,
    Literal,
    Similarity,
    UnaryOp,
)
from lakehouse.secrets import refuse_literals


def to_json(expr: Expr) -> dict[str, Any]:
    """The JSON form of an expression, as a table definition stores it (columns by id).

    >>> to_json(t.year + 1)
    {'op': '+', 'left': {'op': 'column', 'id': 1, 'name': 'year'}, \
'right': {'op': 'literal', 'value': 1, 'type': {'kind': 'int'}}}
    """
    match expr:
        case ColumnRef():
            return {"op": "column", "id": expr.col_id, "name": expr.name}
        case InfoColumn():  # stored under its first name, which also covers fileurl
            return {"op": "error_info", "column": to_json(expr.column), "field": expr.field}
        case Literal():
            return {"op": "literal", "value": _encode_value(expr.value),
                    "type": expr.type.to_json()}
        case BinaryOp():
            return {"op": expr.op, "left": to_json(expr.left), "right": to_json(expr.right)}
        case UnaryOp():
            return {"op": expr.op, "operand": to_json(expr.operand)}
        case IsNull():
            return {"op": "is_null", "operand": to_json(expr.operand), "negate": expr.negate}
        case IsIn():
            return {"op": "isin", "operand": to_json(expr.operand),
                    "values": [to_json(v) for v in expr.values]}
        case Cast():
            return {"op": "cast", "operand": to_json(expr.operand), "to": expr.to.to_json()}
        case IfElse():
            return {"op": "if_else", "condition": to_json(expr.condition),
                    "then": to_json(expr.then), "otherwise": to_json(expr.otherwise)}
        case JsonPath():
            return {"op": "json_path", "operand": to_json(expr.operand), "path": list(expr.path)}
        case Call():
            fn = registry.lookup(expr.fn)
            refuse_literals(expr.fn, _named_literals(expr, fn))
            data = {"op": "call", "fn": expr.fn, "args": [to_json(a) for a in expr.args],
                    "kwargs": [[k, v] for k, v in expr.kwargs], "type": expr.type.to_json()}
            if fn is not None and fn.fingerprint:
                data["fingerprint"] = fn.fingerprint
            return data
        case Similarity():
            raise UnsupportedError(
                f"{expr!r} is a query-time expression and cannot be stored in a computed column; "
                "use it in a query, or in an @lh.query function")
    raise UnsafeDefinitionError(f"cannot store expression {expr!r}")


def _named_literals(call: Call, fn: registry.Function | None) -> list[tuple[str, Any]]:
    """The literal arguments (by parameter name where the function's signature gives one, else
    ``arg0``...) and the options of a call: what the secret check looks at."""
    try:
        names = list(inspect.signature(fn.python).parameters) if fn is not None else []
    except (TypeError, ValueError):  # a callable without a signature
        names = []
    found = [(names[i] if i < len(names) else f"arg{i}", a.value)
             for i, a in enumerate(call.args) if isinstance(a, Literal)]
    return found + list(call.kwargs)


def from_json(data: dict[str, Any], columns: Callable[[int], ColumnRef]) -> Expr:
    """Rebuild an expression; ``columns`` maps a stored column id to the current reference.

    >>> stored = to_json(t.year + 1)
    >>> _ = t.rename_column("year", "released")
    >>> from_json(stored, lambda i: t.table_definition.by_id(i).ref())
    (released + 1)
    """
    try:
        return _decode(data, columns)
    except (KeyError, TypeError, ValueError) as exc:
        raise UnsafeDefinitionError(f"malformed expression in table definition: {exc!r}") from exc


def _decode(d: dict[str, Any], col: Callable[[int], ColumnRef]) -> Expr:
    op = d["op"]
    sub = lambda key: _decode(d[key], col)  # noqa: E731
    if op == "column":
        return col(int(d["id"]))
    if op == "error_info":
        column = _decode(d["column"], col)
        assert isinstance(column, ColumnRef)
        return InfoColumn(column, str(d["field"]))
    if op == "literal":
        t = T.ColumnType.from_json(d["type"])
        return Literal(_decode_value(d["value"], t), t)
    if op in ARITHMETIC or op in COMPARISON or op in LOGICAL:
        return BinaryOp(op, sub("left"), sub("right"))
    if op in ("neg", "not"):
        return UnaryOp(op, sub("operand"))
    if op == "is_null":
        return IsNull(sub("operand"), bool(d["negate"]))
    if op == "isin":
        values = tuple(_decode(v, col) for v in d["values"])
        if not all(isinstance(v, Literal) for v in values):
            raise ValueError("isin values must be literals")
        return IsIn(sub("operand"), values)  # type: ignore[arg-type]
    if op == "cast":
        return Cast(sub("operand"), T.ColumnType.from_json(d["to"]))
    if op == "if_else":
        return IfElse(sub("condition"), sub("then"), sub("otherwise"))
    if op == "json_path":
        return JsonPath(sub("operand"), tuple(d["path"]))
    if op == "call":
        args = tuple(_decode(a, col) for a in d["args"])
        kwargs = tuple((str(k), v) for k, v in d["kwargs"])
        return Call(str(d["fn"]), args, kwargs, T.ColumnType.from_json(d["type"]))
    raise ValueError(f"unknown operator {op!r}")


def stored_fingerprints(data: dict[str, Any]) -> dict[str, str]:
    """Function name -> fingerprint recorded for every call in a stored expression."""
    found: dict[str, str] = {}
    stack = [data]
    while stack:
        node = stack.pop()
        if node.get("op") == "call" and "fingerprint" in node:
            found[node["fn"]] = node["fingerprint"]
        for value in node.values():
            if isinstance(value, dict):
                stack.append(value)
            elif isinstance(value, list):
                stack.extend(v for v in value if isinstance(v, dict))
    return found


def _encode_value(value: Any) -> Any:
    if isinstance(value, dt.date | dt.datetime):
        return value.isoformat()
    return value


def _decode_value(value: Any, t: T.ColumnType) -> Any:
    if value is None:
        return None
    if t.kind == "timestamp":
        return dt.datetime.fromisoformat(value)
    if t.kind == "date":
        return dt.date.fromisoformat(value)
    return value

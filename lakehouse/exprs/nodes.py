"""The expression tree: immutable nodes built by Python operators on column references.

``t.a * 2 + 1`` builds ``BinaryOp("+", BinaryOp("*", ColumnRef(a), Literal(2)), Literal(1))``.
Nodes carry their logical type, so a mistyped expression fails when it is written, not when rows
arrive. Nodes hold no execution state: compiling to Polars (``exprs.polars``) and to Lance SQL
(``exprs.sql``) happens elsewhere, one rule per node type.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import inspect
import operator
from collections.abc import Callable, Iterator
from typing import Any

from lakehouse import types as T
from lakehouse.errors import InvalidOptionError, TypeMismatchError, check_choice
from lakehouse.exprs import registry

ARITHMETIC = ("+", "-", "*", "/", "//", "%")
COMPARISON = ("==", "!=", "<", "<=", ">", ">=")
LOGICAL = ("&", "|")


class Expr:
    """Base of all expression nodes; operators build new nodes and never mutate.

    >>> expr = (t.rating * 10).astype(lh.Int) > 84
    >>> expr, expr.type
    (((rating * 10).astype(lh.Int) > 84), lh.Bool)
    >>> t.where(expr).collect()["title"].to_list()
    ['Alien']
    """

    __slots__ = ()

    @property
    def type(self) -> T.ColumnType:
        """The column type of the expression's values, worked out when it is built.

        >>> (t.year // 10).type, (t.year / 10).type, (t.title == "Up").type
        (lh.Int, lh.Float, lh.Bool)
        """
        raise NotImplementedError

    def children(self) -> tuple[Expr, ...]:
        """The expressions this node is built from (none for columns and literals).

        >>> (t.year + 1).children()
        (year, 1)
        """
        return ()

    def walk(self) -> Iterator[Expr]:
        """This node and all nodes below it, children before parents (left to right). Listed
        from one stack, not a generator per node: queries walk their expressions on every call.

        >>> list((t.year + 1).walk())
        [year, 1, (year + 1)]
        >>> list(((t.year + 1) * (t.rating - 2)).walk())
        [year, 1, (year + 1), rating, 2, (rating - 2), ((year + 1) * (rating - 2))]
        """
        # parents before children, right to left, reversed; a leaf's children are not asked
        order: list[Expr] = []
        stack: list[Expr] = [self]
        leaf = Expr.children
        while stack:
            node = stack.pop()
            order.append(node)
            if type(node).children is not leaf:
                stack.extend(node.children())
        order.reverse()
        return iter(order)

    def column_ids(self) -> set[int]:
        """The ids of the columns the expression reads (ids, unlike names, survive renames).

        >>> (t.year * t.rating).column_ids()  # title is column 0, year 1, rating 2
        {1, 2}
        """
        return {n.col_id for n in self.walk() if isinstance(n, ColumnRef)}

    def __bool__(self) -> bool:
        raise TypeError(
            f"the truth value of expression {self!r} is ambiguous: use & and | instead of "
            "'and' and 'or', ~ instead of 'not', and .isin() instead of 'in'"
        )

    __hash__ = object.__hash__

    # --- arithmetic --------------------------------------------------------------------------
    def __add__(self, other: Any) -> Expr:
        return BinaryOp.make("+", self, other)

    def __radd__(self, other: Any) -> Expr:
        return BinaryOp.make("+", other, self)

    def __sub__(self, other: Any) -> Expr:
        return BinaryOp.make("-", self, other)

    def __rsub__(self, other: Any) -> Expr:
        return BinaryOp.make("-", other, self)

    def __mul__(self, other: Any) -> Expr:
        return BinaryOp.make("*", self, other)

    def __rmul__(self, other: Any) -> Expr:
        return BinaryOp.make("*", other, self)

    def __truediv__(self, other: Any) -> Expr:
        return BinaryOp.make("/", self, other)

    def __rtruediv__(self, other: Any) -> Expr:
        return BinaryOp.make("/", other, self)

    def __floordiv__(self, other: Any) -> Expr:
        return BinaryOp.make("//", self, other)

    def __rfloordiv__(self, other: Any) -> Expr:
        return BinaryOp.make("//", other, self)

    def __mod__(self, other: Any) -> Expr:
        return BinaryOp.make("%", self, other)

    def __rmod__(self, other: Any) -> Expr:
        return BinaryOp.make("%", other, self)

    def __neg__(self) -> Expr:
        return UnaryOp.make("neg", self)

    # --- comparison and logic ----------------------------------------------------------------
    def __eq__(self, other: Any) -> Expr:  # type: ignore[override]
        if other is None:
            return IsNull(self)
        return BinaryOp.make("==", self, other)

    def __ne__(self, other: Any) -> Expr:  # type: ignore[override]
        if other is None:
            return IsNull(self, negate=True)
        return BinaryOp.make("!=", self, other)

    def __lt__(self, other: Any) -> Expr:
        return BinaryOp.make("<", self, other)

    def __le__(self, other: Any) -> Expr:
        return BinaryOp.make("<=", self, other)

    def __gt__(self, other: Any) -> Expr:
        return BinaryOp.make(">", self, other)

    def __ge__(self, other: Any) -> Expr:
        return BinaryOp.make(">=", self, other)

    def __and__(self, other: Any) -> Expr:
        return BinaryOp.make("&", self, other)

    def __rand__(self, other: Any) -> Expr:
        return BinaryOp.make("&", other, self)

    def __or__(self, other: Any) -> Expr:
        return BinaryOp.make("|", self, other)

    def __ror__(self, other: Any) -> Expr:
        return BinaryOp.make("|", other, self)

    def __invert__(self) -> Expr:
        return UnaryOp.make("not", self)

    # --- methods -----------------------------------------------------------------------------
    def is_null(self) -> Expr:
        """True where the value is null.

        >>> _ = t.insert([{"title": "Dune"}], progress=False)
        >>> t.where(t.year.is_null()).collect()["title"].to_list()
        ['Dune']
        """
        return IsNull(self)

    def is_not_null(self) -> Expr:
        """True where the value is not null.

        >>> _ = t.insert([{"title": "Dune"}], progress=False)
        >>> t.where(t.year.is_not_null()).count()
        3
        """
        return IsNull(self, negate=True)

    def isin(self, values: Any) -> Expr:
        """True where the value is one of ``values`` (a list, tuple or set of literals).

        >>> t.where(t.year.isin([1979, 2009])).collect()["title"].to_list()
        ['Alien', 'Up']
        """
        if isinstance(values, Expr | str | bytes):
            raise TypeMismatchError(f"isin() takes a list of values, got {values!r}")
        items = tuple(_literal(v) for v in values)
        for item in items:
            _check_comparable(self, item, "isin")
        return IsIn(self, items)

    def astype(self, to: Any) -> Expr:
        """Convert to another column type; values that cannot convert become null.

        >>> t.select(t.rating.astype(lh.Int), t.year.astype(lh.String)).collect().row(0)
        (8, '1979')
        """
        return Cast(self, T.parse_type(to, column=repr(self)))

    def __getitem__(self, key: str | int) -> Expr:
        """Path access into a Json value: ``t.meta["a"]["b"]`` or ``t.meta["items"][0]``."""
        if not isinstance(key, str | int) or isinstance(key, bool):
            raise TypeMismatchError(f"a JSON path key must be a string or an integer, got {key!r}")
        if isinstance(self, JsonPath):
            return JsonPath(self.operand, (*self.path, key))
        if self.type.kind != "json":
            raise TypeMismatchError(f"{self!r} is {self.type}, not Json: [] needs a Json value")
        return JsonPath(self, (key,))

    def __getattr__(self, name: str) -> Any:
        """Methods of media expressions: ``t.image.resize((64, 64))``, ``t.image.width``,
        ``t.image.fileurl``, ``t.video.frame(at=1.0)``, from the function registry
        (:mod:`lakehouse.exprs.registry`)."""
        fields = {f.name for f in dataclasses.fields(self)} if dataclasses.is_dataclass(self) \
            else set()
        if name.startswith("_") or name in fields or not self.type.is_media:
            raise AttributeError(f"{type(self).__name__} {self!r} has no attribute {name!r}")
        found = registry.methods_of(self.type)
        if name not in found:
            known = ", ".join(sorted(found)) or "none"
            message = f"{self!r} ({self.type}) has no method {name!r} (methods: {known})"
            raise AttributeError(message)
        return bind_method(self, found[name])

    def __dir__(self) -> list[str]:
        return sorted({*super().__dir__(), *registry.methods_of(self.type)})

    @property
    def str(self) -> StringNamespace:
        """String functions, as in Polars: ``t.name.str.upper()``.

        >>> t.select(t.title.str.upper(), t.title.str.len()).collect().row(0)
        ('ALIEN', 5)
        """
        return StringNamespace(self)

    def __repr__(self) -> str:
        raise NotImplementedError


class StringNamespace:
    """The ``.str`` methods of a String expression (``t.title.str.upper()``), from the function
    registry's ``str`` namespace."""

    __slots__ = ("_expr",)

    def __init__(self, expr: Expr) -> None:
        if expr.type.kind != "string":
            raise TypeMismatchError(f".str needs a String expression, got {expr!r} ({expr.type})")
        self._expr = expr

    def __getattr__(self, name: str) -> Callable[..., Expr]:
        found = {m.name: m for m in registry.methods(registry.STRING)}
        if name.startswith("_") or name not in found:
            known = ", ".join(found) or "none"
            message = f"{self._expr!r}.str has no method {name!r} (methods: {known})"
            raise AttributeError(message)
        return bind_method(self._expr, found[name])

    def __dir__(self) -> list[str]:
        return [m.name for m in registry.methods(registry.STRING)]


def bind_method(expr: Expr, method: registry.Method) -> Any:
    """``expr.<method>``: the expression for a property, else a function that takes the
    method's options (literals, checked against its signature and choices) and builds the
    call."""
    if method.build is not None:
        return method.build(expr)
    if method.is_property:
        return Call(method.function or method.name, (expr,), (), method.returns)
    shown = f"{expr!r}.{method.usage().partition('(')[0]}"

    def build(*args: Any, **kwargs: Any) -> Expr:
        try:
            bound = method.signature.bind(None, *args, **kwargs)
        except TypeError as exc:
            raise TypeMismatchError(f"{shown}(): {exc}") from None
        bound.apply_defaults()
        options = list(bound.arguments.items())[1:]
        for key, value in options:
            _check_option(shown, key, value, method.choices.get(key))
        stored = tuple((f"arg{i}" if method.positional else key, _plain(value))
                       for i, (key, value) in enumerate(options))
        return Call(method.function or method.name, (expr,), stored, method.returns)

    build.__name__ = method.name
    build.__doc__ = method.doc
    build.__signature__ = inspect.Signature(method.options)  # type: ignore[attr-defined]
    return build


def _check_option(shown: str, key: str, value: Any, allowed: tuple[Any, ...] | None) -> None:
    if isinstance(value, Expr):
        raise TypeMismatchError(f"{shown}(): {key} must be a literal, got {value!r}")
    plain = value is None or isinstance(value, str | int | float | bool) or (
        isinstance(value, tuple | list) and all(isinstance(v, int | float) for v in value))
    if not plain:
        raise TypeMismatchError(f"{shown}(): {key}={value!r} is not a plain value")
    if allowed is not None:
        check_choice(f"{shown}(): {key}", value, allowed)


def _plain(value: Any) -> Any:
    return [_plain(v) for v in value] if isinstance(value, tuple | list) else value


@dataclasses.dataclass(frozen=True, eq=False, repr=False)
class ColumnRef(Expr):
    """A reference to a table column; ``col_id`` stays valid when the column is renamed.

    >>> t.year, t.year.name, t.year.col_id, t.year.type
    (year, 'year', 1, lh.Int)
    """

    name: str
    col_id: int
    col_type: T.ColumnType

    #: the column's type (read by a C getter: a query reads it several times per column)
    type = property(operator.attrgetter("col_type"), doc="""The column's type.

        >>> t.title.type
        lh.String
        """)

    @property
    def errortype(self) -> Expr:
        """The error type of a computed column's failed rows (null where the row succeeded).

        >>> @lh.udf
        ... def before_2000(year: int) -> int:
        ...     if year >= 2000:
        ...         raise ValueError(f"{year} is too recent")
        ...     return year
        >>> _ = t.add_computed_column(old=before_2000(t.year), on_error="ignore", progress=False)
        >>> t.select(t.title, t.old, t.old.errortype).collect().rows()
        [('Alien', 1979, None), ('Heat', 1995, None), ('Up', None, 'ValueError')]
        """
        return InfoColumn(self, "errortype")

    @property
    def errormsg(self) -> Expr:
        """The error message of a computed column's failed rows (null where the row succeeded).

        >>> @lh.udf
        ... def before_2000(year: int) -> int:
        ...     if year >= 2000:
        ...         raise ValueError(f"{year} is too recent")
        ...     return year
        >>> _ = t.add_computed_column(old=before_2000(t.year), on_error="ignore", progress=False)
        >>> t.where(t.old.errormsg.is_not_null()).select(t.old.errormsg).collect().item()
        '2009 is too recent'
        """
        return InfoColumn(self, "errormsg")

    def similarity(self, query: Any = None, *, text: str | None = None,
                   index: str | None = None, nprobes: int | None = None,
                   refine_factor: int | None = None, recall: float | None = None) -> Similarity:
        """How similar each row's value is to ``query`` through the column's embedding index
        (higher is more similar), for ``order_by(sim, asc=False).limit(k)`` and ``select()``.

        ``query`` is a string (text), a PIL image, a ``pathlib.Path`` or a ``file://``,
        ``s3://`` or ``http(s)://`` URI of an image, image bytes, or a vector. ``text=``
        instead of ``query`` is always embedded as text, never read as a location (for text
        that comes from someone else, such as a search box). ``index`` picks
        one of several indexes on the column; ``nprobes`` (partitions searched) and
        ``refine_factor`` (candidates re-ranked exactly, as a multiple of k) trade speed for
        recall on large tables; ``recall`` (a recall@10 target such as 0.99) picks them
        instead from what the index measured when it was built (by default the index's own
        target, 0.95 unless ``add_embedding_index(recall=)`` said otherwise). Scores: cosine
        similarity for ``metric="cosine"``, the dot product for ``"dot"``, minus the squared
        distance for ``"l2"``.

        >>> _ = t.add_embedding_index("title", embedding=minilm, progress=False)
        >>> sim = t.title.similarity(text="the heat of summer")
        >>> t.order_by(sim, asc=False).limit(1).select(t.title, sim).collect().row(0)
        ('Heat', ...)
        """
        if text is not None:
            if query is not None:
                raise InvalidOptionError(
                    f"{self!r}.similarity() takes either a query or text= (a string), not both; "
                    f"got query={query!r}, text={text!r}")
            if not isinstance(text, str):
                raise TypeMismatchError(
                    f"{self!r}.similarity(text=...) takes a string, got {text!r}")
            query = TextQuery(text)
        return Similarity.make(self, query, index, nprobes, refine_factor, recall)

    def __repr__(self) -> str:
        return self.name


def check_recall(recall: Any) -> float | None:
    """Refuse a recall target outside (0, 1] (``similarity(recall=)``,
    ``add_embedding_index(recall=)``); None stays None (the default applies).

    >>> check_recall(0.99), check_recall(None)
    (0.99, None)
    >>> check_recall(1.5)
    Traceback (most recent call last):
    ...
    lakehouse.errors.InvalidOptionError: recall must be a number above 0 and at most 1 (a ...
    """
    if recall is None:
        return None
    if isinstance(recall, bool) or not isinstance(recall, int | float) or not 0 < recall <= 1:
        raise InvalidOptionError(f"recall must be a number above 0 and at most 1 (a recall@10 "
                                 f"target such as 0.95), got {recall!r}")
    return float(recall)


class TextQuery(str):
    """A similarity query that is text whatever it holds: never read as an image location."""

    __slots__ = ()


@dataclasses.dataclass(frozen=True, eq=False, repr=False)
class Similarity(Expr):
    """The similarity of a column's values to a query, through the column's embedding index.
    A query-time expression: it reads the index's vectors (not the column), so it has no
    children, and it cannot be stored in a computed column."""

    column: ColumnRef
    query: Any
    index: str | None = None
    nprobes: int | None = None
    refine_factor: int | None = None
    recall: float | None = None

    @staticmethod
    def make(column: ColumnRef, query: Any, index: str | None, nprobes: int | None,
             refine_factor: int | None, recall: float | None = None) -> Similarity:
        if query is None or isinstance(query, Expr):
            raise TypeMismatchError(
                f"{column!r}.similarity() needs a query value (a string, an image, an image "
                f"path or URI, or a vector), got {query!r}")
        for knob, value in (("nprobes", nprobes), ("refine_factor", refine_factor)):
            if value is None:
                continue
            msg = f"{knob} must be a positive integer, got {value!r}"
            if not isinstance(value, int) or isinstance(value, bool):
                raise TypeMismatchError(msg)
            if value < 1:
                raise InvalidOptionError(msg)
        return Similarity(column, query, index, nprobes, refine_factor, check_recall(recall))

    @property
    def type(self) -> T.ColumnType:
        return T.Float

    def __repr__(self) -> str:
        shown = repr(self.query) if isinstance(self.query, str | int | float) \
            else f"<{type(self.query).__name__}>"
        if len(shown) > 40:
            shown = shown[:37] + "..."
        return f"{self.column!r}.similarity({shown})"


@dataclasses.dataclass(frozen=True, eq=False, repr=False)
class InfoColumn(Expr):
    """A value a column keeps beside each row in a hidden column: ``t.x.errortype`` and
    ``t.x.errormsg`` (why a computed or media value failed) and ``t.x.fileurl`` (where a media
    value was inserted from). It reads only the hidden column, never ``x`` itself. Stored
    definitions name it ``error_info``, its first name (docs/FORMAT.md).

    >>> t.title.errortype, t.title.errortype.field, t.title.errortype.children()
    (title.errortype, 'errortype', (title,))
    """

    column: ColumnRef
    field: str  # "errortype" | "errormsg" | "fileurl"

    @property
    def type(self) -> T.ColumnType:
        return T.String

    def children(self) -> tuple[Expr, ...]:
        return (self.column,)

    def __repr__(self) -> str:
        return f"{self.column!r}.{self.field}"


@dataclasses.dataclass(frozen=True, eq=False, repr=False)
class Literal(Expr):
    value: Any
    lit_type: T.ColumnType

    type = property(operator.attrgetter("lit_type"), doc="The literal's type.")

    def __repr__(self) -> str:
        return repr(self.value)


@dataclasses.dataclass(frozen=True, eq=False, repr=False)
class BinaryOp(Expr):
    op: str
    left: Expr
    right: Expr

    @staticmethod
    def make(op: str, left: Any, right: Any) -> BinaryOp:
        left, right = _literal(left), _literal(right)
        lt, rt = left.type, right.type
        if op in ARITHMETIC:
            strings = lt.kind == rt.kind == "string"
            if not (lt.is_numeric() and rt.is_numeric()) and not (op == "+" and strings):
                raise TypeMismatchError(
                    f"cannot apply {op!r} to {left!r} ({lt}) and {right!r} ({rt})"
                )
        elif op in COMPARISON:
            _check_comparable(left, right, op)
        elif op in LOGICAL and not (lt.kind == rt.kind == "bool"):
            raise TypeMismatchError(
                f"{op!r} needs two Bool expressions, got {left!r} ({lt}) and {right!r} ({rt})"
            )
        return BinaryOp(op, left, right)

    @property
    def type(self) -> T.ColumnType:
        if self.op in COMPARISON or self.op in LOGICAL:
            return T.Bool
        lt, rt = self.left.type, self.right.type
        if lt.kind == "string":
            return T.String
        if self.op == "/":
            return T.Float
        return T.numeric_result(lt, rt)

    def children(self) -> tuple[Expr, ...]:
        return (self.left, self.right)

    def __repr__(self) -> str:
        return f"({self.left!r} {self.op} {self.right!r})"


@dataclasses.dataclass(frozen=True, eq=False, repr=False)
class UnaryOp(Expr):
    op: str  # "neg" | "not"
    operand: Expr

    @staticmethod
    def make(op: str, operand: Expr) -> UnaryOp:
        kind = operand.type.kind
        if op == "not" and kind != "bool":
            raise TypeMismatchError(f"~ needs a Bool expression, got {operand!r} ({operand.type})")
        if op == "neg" and not operand.type.is_numeric():
            raise TypeMismatchError(f"cannot negate {operand!r} ({operand.type})")
        return UnaryOp(op, operand)

    @property
    def type(self) -> T.ColumnType:
        return T.Bool if self.op == "not" else self.operand.type

    def children(self) -> tuple[Expr, ...]:
        return (self.operand,)

    def __repr__(self) -> str:
        return f"~{self.operand!r}" if self.op == "not" else f"-{self.operand!r}"


@dataclasses.dataclass(frozen=True, eq=False, repr=False)
class IsNull(Expr):
    operand: Expr
    negate: bool = False

    @property
    def type(self) -> T.ColumnType:
        return T.Bool

    def children(self) -> tuple[Expr, ...]:
        return (self.operand,)

    def __repr__(self) -> str:
        return f"{self.operand!r}.{'is_not_null' if self.negate else 'is_null'}()"


@dataclasses.dataclass(frozen=True, eq=False, repr=False)
class IsIn(Expr):
    operand: Expr
    values: tuple[Literal, ...]

    @property
    def type(self) -> T.ColumnType:
        return T.Bool

    def children(self) -> tuple[Expr, ...]:
        return (self.operand, *self.values)

    def __repr__(self) -> str:
        return f"{self.operand!r}.isin({[v.value for v in self.values]!r})"


@dataclasses.dataclass(frozen=True, eq=False, repr=False)
class Cast(Expr):
    operand: Expr
    to: T.ColumnType

    @property
    def type(self) -> T.ColumnType:
        return self.to

    def children(self) -> tuple[Expr, ...]:
        return (self.operand,)

    def __repr__(self) -> str:
        return f"{self.operand!r}.astype({self.to!r})"


@dataclasses.dataclass(frozen=True, eq=False, repr=False)
class IfElse(Expr):
    condition: Expr
    then: Expr
    otherwise: Expr

    @staticmethod
    def make(condition: Any, then: Any, otherwise: Any) -> IfElse:
        condition, then, otherwise = _literal(condition), _literal(then), _literal(otherwise)
        if condition.type.kind != "bool":
            raise TypeMismatchError(f"if_else() needs a Bool condition, got {condition!r}")
        tt, ot = then.type, otherwise.type
        if not (tt.same_kind(ot) or (tt.is_numeric() and ot.is_numeric()) or _is_null(then)
                or _is_null(otherwise)):
            raise TypeMismatchError(
                f"if_else() branches have different types: {then!r} ({tt}) and {otherwise!r} ({ot})"
            )
        return IfElse(condition, then, otherwise)

    @property
    def type(self) -> T.ColumnType:
        tt, ot = self.then.type, self.otherwise.type
        if _is_null(self.then):
            return ot
        if tt.is_numeric() and ot.is_numeric():
            return T.numeric_result(tt, ot)
        return tt

    def children(self) -> tuple[Expr, ...]:
        return (self.condition, self.then, self.otherwise)

    def __repr__(self) -> str:
        return f"if_else({self.condition!r}, {self.then!r}, {self.otherwise!r})"


@dataclasses.dataclass(frozen=True, eq=False, repr=False)
class JsonPath(Expr):
    """A path into a Json value. Scalars come back as strings (``astype`` converts them);
    objects and arrays come back as their JSON text."""

    operand: Expr
    path: tuple[str | int, ...]

    @property
    def type(self) -> T.ColumnType:
        return T.String

    def children(self) -> tuple[Expr, ...]:
        return (self.operand,)

    def jsonpath(self) -> str:
        parts = ["$"]
        for key in self.path:
            parts.append(f"[{key}]" if isinstance(key, int) else f"['{_jsonpath_key(key)}']")
        return "".join(parts)

    def __repr__(self) -> str:
        return f"{self.operand!r}" + "".join(f"[{k!r}]" for k in self.path)


@dataclasses.dataclass(frozen=True, eq=False, repr=False)
class Call(Expr):
    """A call of a built-in function or an ``@lh.udf``, by its registry name."""

    fn: str
    args: tuple[Expr, ...]
    kwargs: tuple[tuple[str, Any], ...]
    result_type: T.ColumnType

    @property
    def type(self) -> T.ColumnType:
        return self.result_type

    def children(self) -> tuple[Expr, ...]:
        return self.args

    def __repr__(self) -> str:
        parts = [repr(a) for a in self.args] + [f"{k}={v!r}" for k, v in self.kwargs]
        return f"{self.fn.rsplit(':', 1)[-1]}({', '.join(parts)})"


def if_else(condition: Any, then: Any, otherwise: Any) -> Expr:
    """``then`` where ``condition`` holds, else ``otherwise``.

    >>> label = lh.if_else(t.year < 1990, "classic", "recent")
    >>> t.select(t.title, label=label).collect().rows()
    [('Alien', 'classic'), ('Heat', 'recent'), ('Up', 'recent')]
    """
    return IfElse.make(condition, then, otherwise)


def lit(value: Any) -> Expr:
    """A literal value as an expression (rarely needed: operators wrap plain values).

    >>> lh.lit(3), lh.lit(3).type, lh.lit("x").type
    (3, lh.Int, lh.String)
    >>> t.select(t.title, one=lh.lit(1)).collect().row(0)
    ('Alien', 1)
    """
    return _literal(value)


def _literal(value: Any) -> Expr:
    if isinstance(value, Expr):
        return value
    return Literal(value, literal_type(value))


def literal_type(value: Any) -> T.ColumnType:
    if value is None:
        return T.String  # a typeless null; comparisons treat it as compatible with anything
    if isinstance(value, bool):
        return T.Bool
    if isinstance(value, int):
        return T.Int
    if isinstance(value, float):
        return T.Float
    if isinstance(value, str):
        return T.String
    if isinstance(value, dt.datetime):
        return T.Timestamp
    if isinstance(value, dt.date):
        return T.Date
    raise TypeMismatchError(
        f"{type(value).__name__} {value!r} cannot be used as a literal in an expression"
    )


def _is_null(e: Expr) -> bool:
    return isinstance(e, Literal) and e.value is None


def _check_comparable(left: Expr, right: Expr, op: str) -> None:
    lt, rt = left.type, right.type
    if _is_null(left) or _is_null(right):
        return
    if lt.same_kind(rt) or (lt.is_numeric() and rt.is_numeric()):
        return
    if {lt.kind, rt.kind} <= {"timestamp", "date"}:
        return
    raise TypeMismatchError(f"cannot compare {left!r} ({lt}) {op} {right!r} ({rt})")


def _jsonpath_key(key: str) -> str:
    if "'" in key or "\\" in key:
        raise TypeMismatchError(f"JSON path key {key!r} may not contain quotes or backslashes")
    return key

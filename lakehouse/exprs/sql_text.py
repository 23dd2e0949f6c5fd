"""Read a condition written in SQL (``year > 1950 AND title = 'x'``) into an expression.

:func:`lakehouse.exprs.parse.parse_condition` reads Python first; text Python's parser cannot
read is read here, as SQL in sqlglot's DuckDB dialect: ``read`` parses it into sqlglot's syntax
tree (parsed, never run, never passed on as text) and ``translate`` turns that tree, node by node,
into the same expression tree the Python form builds. Only the node kinds below are translated;
anything else (a subquery, ``*``, a parameter, a function the registry does not have, ``;``, a
comment) is an :class:`~lakehouse.errors.ExpressionSyntaxError` naming it and its column.

Grammar (with the Python form each stands for)::

    title = 'x'   <> !=  < <= > >=      comparisons (== != < <= > >=); 'it''s' is it's
    AND  OR  NOT                        and, or, not (SQL's precedence: NOT a = 1 is not (a = 1))
    year IN (1999, 2005), NOT IN        year in [1999, 2005], not in
    year BETWEEN 1990 AND 1999          year >= 1990 and year <= 1999 (NOT BETWEEN too)
    title LIKE 'D_ne%', ILIKE           title.str.like("D_ne%"), .str.ilike(...): % any text,
    ... LIKE 'a!%' ESCAPE '!'           _ one character; LIKE is case-sensitive, ILIKE is not
    x IS NULL, x IS NOT NULL            x is None, x is not None
    TRUE, FALSE, NULL, 42, -1.5, 1e3    True, False, None and numbers
    "my col", "Title"                   a column by its exact name (unquoted names may differ
                                        in case, as SQL's do, when one column matches)
    + - * / % //, unary -, ||           arithmetic as in the Python form (/ divides exactly, %
                                        takes the divisor's sign); || joins strings (+)
    meta->'origin'->>'country'          meta["origin"]["country"] (-> and ->> alike: scalars
    meta.origin.country, meta->'t'->>0  are text); a dotted name that starts with a Json column
    CAST(x AS INT), x::DOUBLE           x.astype("int"), x.astype("float"); also VARCHAR, BOOLEAN,
    DATE '2024-01-31', TIMESTAMP '...'  DATE, TIMESTAMP; a string compared with a Date column
                                        is an ISO date, as in the Python form
    CASE WHEN c THEN a ELSE b END       lh.if_else(c, a, b)
    upper(title), length(title)         the function registry's methods, the value first:
    starts_with(title, 'D'), trim(x)    string methods by their SQL or registry names, media
    width(image)                        properties and methods (image.width)

NULL behaves as in the Python form (three-valued logic); ``x = NULL`` and ``x <> NULL``, which
are never true in SQL, are refused with the fix (``IS NULL``), and ``x IN (1, NULL)`` means
``x in [1, None]``.

>>> import lakehouse as lh
>>> db = lh.connect("doctest-lakehouse")
>>> t = db.create_table("sql_demo", {"title": lh.String, "year": lh.Int}, if_exists="replace")
>>> lh.parse_condition("year BETWEEN 1990 AND 1999 AND title ILIKE 'the %'", t)
(((year >= 1990) & (year <= 1999)) & str.ilike(title, arg0='the %', arg1=None))
>>> lh.parse_condition("year = 1999; DROP TABLE sql_demo", t)
Traceback (most recent call last):
...
lakehouse.errors.ExpressionSyntaxError: where: cannot use ';' (one condition, not statements) \
at column 12; write a condition in Python (year > 1950 and title == 'x') or in SQL (year > 1950 \
AND title = 'x')
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterator
from contextlib import AbstractContextManager
from typing import Any, Protocol

import sqlglot
from sqlglot import exp
from sqlglot.dialects.duckdb import DuckDB
from sqlglot.tokens import Token, TokenType

from lakehouse.errors import ExpressionSyntaxError
from lakehouse.exprs import registry
from lakehouse.exprs.nodes import BinaryOp, ColumnRef, Expr, IsNull, UnaryOp, if_else, lit

DIALECT = DuckDB()
EXAMPLE = "year > 1950 AND title = 'x'"

_COMPARE = {exp.EQ: "==", exp.NEQ: "!=", exp.LT: "<", exp.LTE: "<=", exp.GT: ">", exp.GTE: ">="}
_ARITHMETIC = {exp.Add: "+", exp.Sub: "-", exp.Mul: "*", exp.Div: "/", exp.Mod: "%",
               exp.IntDiv: "//"}
_LOGIC = {exp.And: "&", exp.Or: "|"}
_TYPES = {
    "int": ("TINYINT", "SMALLINT", "INT", "BIGINT", "UTINYINT", "USMALLINT", "UINT", "UBIGINT"),
    "float": ("FLOAT", "DOUBLE", "DECIMAL"),
    "string": ("VARCHAR", "TEXT", "CHAR", "NCHAR", "NVARCHAR"),
    "bool": ("BOOLEAN",),
    "date": ("DATE",),
    "timestamp": ("TIMESTAMP", "TIMESTAMPTZ", "TIMESTAMPNTZ", "DATETIME"),
}
_TYPE_NAMES = {sql: name for name, sqls in _TYPES.items() for sql in sqls}
#: SQL names of string functions and the registry's ``.str`` method each stands for
_STRING_FUNCTIONS = {"upper": "upper", "lower": "lower", "trim": "strip", "length": "len",
                     "starts_with": "startswith", "ends_with": "endswith",
                     "contains": "contains", "replace": "replace"}
_SQL_ONLY = {TokenType.LIKE, TokenType.ILIKE, TokenType.BETWEEN, TokenType.NULL,
             TokenType.ARROW, TokenType.DARROW, TokenType.DPIPE, TokenType.DCOLON,
             TokenType.SELECT, TokenType.FROM, TokenType.UNION, TokenType.INSERT,
             TokenType.UPDATE, TokenType.DELETE, TokenType.DROP}
_CAPITALISED = {TokenType.AND, TokenType.OR, TokenType.NOT, TokenType.TRUE, TokenType.FALSE}
_TOKEN_OF = {exp.Null: (TokenType.NULL,), exp.Boolean: (TokenType.TRUE, TokenType.FALSE),
             exp.Placeholder: (TokenType.PLACEHOLDER, TokenType.PARAMETER),
             exp.Parameter: (TokenType.PARAMETER,), exp.Star: (TokenType.STAR,)}
_OPENING = (TokenType.L_PAREN, TokenType.SELECT, TokenType.CASE, TokenType.WHEN)
_REFUSED: dict[type[exp.Expression], str] = {
    exp.Select: "a subquery", exp.Subquery: "a subquery", exp.Union: "a subquery",
    exp.Exists: "a subquery", exp.Star: "a star", exp.Placeholder: "a parameter",
    exp.Parameter: "a parameter", exp.RegexpLike: "a regular expression match",
    exp.SimilarTo: "SIMILAR TO", exp.NullSafeEQ: "IS NOT DISTINCT FROM",
    exp.NullSafeNEQ: "IS DISTINCT FROM",
}


class Scope(Protocol):
    """What translating needs from the reader of the whole text: its columns, its errors (with
    the label and a column of the text) and its reading of ISO dates."""

    def column(self, name: str, index: int, *, exact: bool = True) -> ColumnRef:
        """The column ``name`` (ColumnNotFoundError naming the columns when there is none); not
        ``exact``: a column whose name differs only in case, when one does."""

    def error(self, index: int, message: str) -> ExpressionSyntaxError:
        """``label: message at column N``."""

    def at(self, index: int) -> AbstractContextManager[None]:
        """Re-raise an error of the expression API with the label and the column of index."""

    def coerce(self, other: Expr, value: Any, index: int) -> Any:
        """``value`` read as an ISO date or time when it is a string and ``other`` is a Date or
        Timestamp expression; else ``value``."""

    def logic(self, op: str, exprs: list[Expr], index: int) -> Expr:
        """``exprs`` joined by ``&`` or ``|`` as the Python form joins them."""


@dataclasses.dataclass(frozen=True)
class Problem:
    """Why the text is not SQL this module reads, and where (a character index);
    ``looks_like_sql`` where it uses words or operators only SQL has (``=``, ``<>``, ``AND``,
    ``LIKE``...), so its error is the one to show."""

    index: int
    message: str
    looks_like_sql: bool = False


@dataclasses.dataclass(frozen=True)
class Parsed:
    """The text as sqlglot's syntax tree, and the tokens it was parsed from (for positions)."""

    tree: exp.Expression
    tokens: list[Token]


def read(text: str, max_depth: int) -> Parsed | Problem:
    """Parse ``text`` as one SQL condition; a Problem where it is not one (a syntax error, a
    comment, a ``;``, a NUL character, nesting deeper than ``max_depth``)."""
    if "\x00" in text:
        return Problem(text.index("\x00"), "cannot use a NUL character")
    try:
        tokens = DIALECT.tokenize(text)
    except sqlglot.errors.TokenError:
        return Problem(0, "the text cannot be read as SQL (a quote that is never closed?)")
    refused = _refused_tokens(text, tokens)
    if refused is not None:
        return refused
    sql = _looks_like_sql(tokens)
    try:
        trees = DIALECT.parser().parse_into(exp.Condition, tokens, text)
    except sqlglot.errors.ParseError as exc:
        return dataclasses.replace(_parse_problem(text, tokens, exc), looks_like_sql=sql)
    except RecursionError:
        return Problem(0, "the text is nested too deeply", sql)
    tree = trees[0]
    if tree is None:
        return Problem(0, "the text is empty", sql)
    deepest = max(_depths(tree), key=lambda pair: pair[1])
    if deepest[1] > max_depth:
        return Problem(_leaf_start(deepest[0]),
                       f"the expression is nested more than {max_depth} levels deep", sql)
    return Parsed(tree, tokens)


def translate(parsed: Parsed, scope: Scope) -> Expr:
    """The expression ``parsed`` stands for, over the columns of ``scope``."""
    return _Translator(parsed.tree, parsed.tokens, scope).expr(parsed.tree)


# --- reading -----------------------------------------------------------------------------------


def _refused_tokens(text: str, tokens: list[Token]) -> Problem | None:
    """A Problem for a ``;`` or a comment (which SQL would skip, and an injection hides in)."""
    for token in tokens:
        if token.token_type == TokenType.SEMICOLON:
            return Problem(token.start, "cannot use ';' (one condition, not statements)", True)
    if any(token.comments for token in tokens):
        starts = [i for i in range(len(text) - 1) if text[i:i + 2] in ("--", "/*")
                  and not any(t.start <= i <= t.end for t in tokens)]
        return Problem(starts[0] if starts else 0, "cannot use a comment (-- or /* */)", True)
    return None


def _looks_like_sql(tokens: list[Token]) -> bool:
    """Whether the tokens use something only SQL has: a single ``=``, ``<>``, ``LIKE``,
    ``BETWEEN``, ``NULL``, ``->``, ``||``, ``::``, or AND, OR, NOT, TRUE, FALSE in capitals."""
    for token in tokens:
        kind = token.token_type
        if kind in _SQL_ONLY or (kind == TokenType.EQ and token.text == "=") \
                or (kind == TokenType.NEQ and token.text == "<>") \
                or (kind in _CAPITALISED and token.text.isupper()):
            return True
    return False


def _parse_problem(text: str, tokens: list[Token],
                   exc: sqlglot.errors.ParseError) -> Problem:
    """sqlglot's first error in our words, placed: after the token that needs an operand, at
    a '(' that is never closed, or at an unexpected token."""
    error = exc.errors[0] if exc.errors else {}
    line, column = error.get("line") or 1, error.get("col") or 1
    end = sum(len(row) + 1 for row in text.split("\n")[:line - 1]) + column - 1
    found = [i for i, token in enumerate(tokens) if token.start <= end <= token.end]
    at = found[0] if found else len(tokens) - 1
    token = tokens[at] if tokens else None
    description = str(error.get("description", exc))
    if token is None:
        return Problem(0, "the text cannot be read as SQL")
    if description.startswith("Required keyword") or description.startswith("Expected"):
        if at == len(tokens) - 1 and token.token_type != TokenType.R_PAREN:  # text ends
            return Problem(len(text.rstrip()), f"expected a value after {token.text!r}")
        return Problem(token.start, f"expected a value, got {token.text!r}")
    if description.startswith("Expecting )"):
        unclosed = _unclosed(tokens)
        if unclosed is not None:
            return Problem(unclosed, "'(' was never closed")
        return Problem(token.start, "expected ')'")
    return Problem(token.start, f"unexpected {token.text!r}")


def _unclosed(tokens: list[Token]) -> int | None:
    opened: list[int] = []
    for token in tokens:
        if token.token_type == TokenType.L_PAREN:
            opened.append(token.start)
        elif token.token_type == TokenType.R_PAREN and opened:
            opened.pop()
    return opened[0] if opened else None


def _depths(tree: exp.Expression) -> Iterator[tuple[exp.Expression, int]]:
    """Every node and its depth; a chain of AND (or of OR) counts as one level, as it is
    translated flat."""
    stack = [(tree, 0)]
    while stack:
        node, depth = stack.pop()
        yield node, depth
        for child in node.iter_expressions():
            same_chain = type(child) in _LOGIC and type(child) is type(node)
            stack.append((child, depth if same_chain else depth + 1))


def _leaf_start(node: exp.Expression) -> int:
    """The index of the first name or value inside ``node`` (0 when it has none)."""
    return min((n.meta["start"] for n in node.walk() if "start" in n.meta), default=0)


def _positions(tree: exp.Expression, tokens: list[Token]) -> dict[int, int]:
    """Where each node of ``tree`` starts in the text, by ``id``: names and values carry their
    position; NULL, TRUE, ``?``, ``*`` take the next token of their kind in text order; a node
    starts at its first part, or for a call, CAST, CASE or subquery, at the word before it."""
    starts: dict[int, int] = {}
    cursor, order = 0, []
    stack: list[tuple[exp.Expression, bool]] = [(tree, False)]
    while stack:  # children in the order they are written; iterative, for long AND chains
        node, done = stack.pop()
        if done:
            order.append(node)
            continue
        if "start" in node.meta:
            cursor = starts[id(node)] = node.meta["start"]
        elif type(node) in _TOKEN_OF:
            kinds = _TOKEN_OF[type(node)]
            found = next((t.start for t in tokens if t.start >= cursor and t.token_type in kinds),
                         None)
            if found is not None:
                cursor = starts[id(node)] = found
        stack.append((node, True))
        stack.extend((child, False) for child in reversed(list(node.iter_expressions())))
    at_token = {token.start: i for i, token in enumerate(tokens)}
    for node in order:  # children before parents
        found = [starts[id(n)] for n in (node, *node.iter_expressions()) if id(n) in starts]
        if found:
            starts[id(node)] = _keyword_start(node, min(found), tokens, at_token)
    return starts


def _keyword_start(node: exp.Expression, first: int, tokens: list[Token],
                   at_token: dict[int, int]) -> int:
    """``first``, or where the words and brackets that open ``node`` start (``upper(``,
    ``CAST(``, ``CASE WHEN``, ``(SELECT``)."""
    if not isinstance(node, exp.Func | exp.Query | exp.Subquery | exp.Cast | exp.Case):
        return first
    at = at_token.get(first, 0)
    while at > 0 and tokens[at - 1].token_type in _OPENING:
        at -= 1
    name = tokens[at - 1] if at > 0 else None
    if name is not None and isinstance(node, exp.Func) \
            and tokens[at].token_type == TokenType.L_PAREN \
            and (name.token_type == TokenType.VAR or name.text.upper() == node.sql_name()):
        at -= 1  # the function's name before its bracket
    return tokens[at].start


# --- translating -------------------------------------------------------------------------------


class _Translator:
    """Translates sqlglot nodes into expressions; one method per kind of node."""

    def __init__(self, tree: exp.Expression, tokens: list[Token], scope: Scope) -> None:
        self.starts = _positions(tree, tokens)
        self.scope = scope

    def index(self, node: exp.Expression) -> int:
        """Where ``node`` starts in the text."""
        return self.starts.get(id(node), 0)

    def error(self, node: exp.Expression, message: str) -> ExpressionSyntaxError:
        return self.scope.error(self.index(node), message)

    def refuse(self, node: exp.Expression, what: str, hint: str = "",
               shown: str = "") -> ExpressionSyntaxError:
        """``cannot use <what> '<the node as SQL>' at column N; <hint>``."""
        shown = shown or node.sql(dialect=DIALECT)
        shown = shown if len(shown) <= 40 else shown[:37] + "..."
        error = self.error(node, f"cannot use {what} '{shown}'")
        if not hint:
            return error
        return ExpressionSyntaxError(f"{error}; {hint}", text=error.text, line=error.line,
                                     column=error.column)

    def expr(self, node: exp.Expression) -> Expr:  # noqa: C901, PLR0911 - one branch per kind
        if isinstance(node, exp.Paren):
            return self.expr(node.this)
        if isinstance(node, exp.Literal | exp.Boolean | exp.Null) or _is_negative_number(node):
            return lit(self.value(node))
        if isinstance(node, exp.Column | exp.Dot):
            return self.column(node)
        if type(node) in _LOGIC:
            parts = list(node.flatten())
            return self.scope.logic(_LOGIC[type(node)], [self.expr(p) for p in parts],
                                    self.index(node))
        if isinstance(node, exp.Not):
            return self.negation(node)
        if type(node) in _COMPARE:
            return self.compare(node)
        if type(node) in _ARITHMETIC or isinstance(node, exp.DPipe):
            return self.arithmetic(node)
        if isinstance(node, exp.Neg):
            operand = self.expr(node.this)
            with self.scope.at(self.index(node)):
                return UnaryOp.make("neg", operand)
        return self.special(node)

    def special(self, node: exp.Expression) -> Expr:  # noqa: PLR0911 - one branch per kind
        """IS, IN, BETWEEN, LIKE, JSON paths, casts, CASE and functions."""
        if node.args.get("negate"):  # x NOT IN (...), x NOT LIKE '...', x NOT BETWEEN ...
            return self.negated(self.special(_plain(node)), node)
        if isinstance(node, exp.Is):
            return self.is_null(node, negate=False)
        if isinstance(node, exp.In):
            return self.membership(node)
        if isinstance(node, exp.Between):
            return self.between(node)
        if isinstance(node, exp.Like | exp.ILike | exp.Escape):
            return self.like(node)
        if isinstance(node, exp.JSONExtract | exp.JSONExtractScalar):
            return self.json_path(node)
        if isinstance(node, exp.Cast | exp.TryCast):
            return self.cast(node)
        if isinstance(node, exp.Case):
            return self.case(node)
        refused = next((w for k, w in _REFUSED.items() if isinstance(node, k)), None)
        if isinstance(node, exp.Func) and refused is None:
            return self.function(node)
        raise self.refuse(node, refused or f"SQL's {type(node).__name__}")

    # --- values and names ------------------------------------------------------------------------
    def value(self, node: exp.Expression) -> Any:
        """A literal: a string, number (negative too), TRUE, FALSE or NULL."""
        if isinstance(node, exp.Null):
            return None
        if isinstance(node, exp.Boolean):
            return bool(node.this)
        if isinstance(node, exp.Literal):
            if node.is_string:
                return node.this
            text = node.this
            return int(text) if text.isdigit() else float(text)
        if _is_negative_number(node):
            return -self.value(node.this)
        raise self.error(node, "expected a literal value (a string, number, TRUE, FALSE or "
                               f"NULL), got '{node.sql(dialect=DIALECT)}'")

    def column(self, node: exp.Column | exp.Dot) -> Expr:
        """A column, or a path into a Json column written with dots (meta.origin.country)."""
        parts = node.parts if isinstance(node, exp.Column) else _dot_parts(node)
        if not all(isinstance(p, exp.Identifier) for p in parts):
            raise self.refuse(node, "this name")
        first = parts[0]
        ref = self.scope.column(first.name, self.index(first), exact=bool(first.quoted))
        if len(parts) == 1:
            return ref
        if ref.type.kind != "json":
            raise self.error(node, f"'{node.sql(dialect=DIALECT)}': {ref!r} is {ref.type}, not "
                                   "Json, so it has no fields (the SQL reads only columns of "
                                   "this table, without a table name)")
        path: Expr = ref
        for part in parts[1:]:
            path = path[part.name]
        return path

    # --- logic and comparisons -------------------------------------------------------------------
    def negation(self, node: exp.Not) -> Expr:
        if isinstance(node.this, exp.Is):  # x IS NOT NULL; NOT (x IS NULL) stays ~(...)
            return self.is_null(node.this, negate=True)
        return self.negated(self.expr(node.this), node)

    def negated(self, expr: Expr, node: exp.Expression) -> Expr:
        with self.scope.at(self.index(node)):
            return UnaryOp.make("not", expr)

    def is_null(self, node: exp.Is, *, negate: bool) -> Expr:
        if not isinstance(node.expression, exp.Null):
            raise self.error(node, "IS only tests for NULL (x IS NULL, x IS NOT NULL); compare "
                                   "values with = and <>")
        return IsNull(self.expr(node.this), negate=negate)

    def compare(self, node: exp.Expression) -> Expr:
        op = _COMPARE[type(node)]
        left, right = node.this, node.expression
        if op in ("==", "!=") and (isinstance(left, exp.Null) or isinstance(right, exp.Null)):
            fix = "IS NULL" if op == "==" else "IS NOT NULL"
            raise self.error(node, f"a comparison with NULL is never true in SQL; write {fix}")
        lhs, rhs = self.expr(left), self.expr(right)
        lhs = self.scope.coerce(rhs, lhs, self.index(left))
        rhs = self.scope.coerce(lhs, rhs, self.index(right))
        with self.scope.at(self.index(node)):
            return BinaryOp.make(op, lhs, rhs)

    def membership(self, node: exp.In) -> Expr:
        if node.args.get("query") is not None or node.args.get("unnest") is not None:
            raise self.refuse(node, "a subquery", "list the values: year IN (1999, 2005)")
        operand = self.expr(node.this)
        values = [self.scope.coerce(operand, self.value(v), self.index(v))
                  for v in node.expressions]
        with self.scope.at(self.index(node)):
            return operand.isin(values)

    def between(self, node: exp.Between) -> Expr:
        if node.args.get("symmetric"):
            raise self.refuse(node, "BETWEEN SYMMETRIC")
        operand = self.expr(node.this)
        low = self.scope.coerce(operand, self.expr(node.args["low"]), self.index(node))
        high = self.scope.coerce(operand, self.expr(node.args["high"]), self.index(node))
        with self.scope.at(self.index(node)):
            return (operand >= low) & (operand <= high)

    def arithmetic(self, node: exp.Expression) -> Expr:
        left, right = self.expr(node.this), self.expr(node.expression)
        if isinstance(node, exp.DPipe) and not left.type.kind == right.type.kind == "string":
            raise self.error(node, f"|| joins strings, got {left!r} ({left.type}) and {right!r} "
                                   f"({right.type}); cast numbers with CAST(x AS VARCHAR)")
        op = "+" if isinstance(node, exp.DPipe) else _ARITHMETIC[type(node)]
        with self.scope.at(self.index(node)):
            return BinaryOp.make(op, left, right)

    # --- LIKE, JSON, casts, CASE, functions -------------------------------------------------------
    def like(self, node: exp.Expression) -> Expr:
        """LIKE and ILIKE, maybe with ESCAPE and NOT: the registry's str.like and str.ilike."""
        outer, escape = node, None
        if isinstance(node, exp.Escape):
            escape = self.value(node.expression)
            if not isinstance(escape, str) or len(escape) != 1:
                raise self.error(node.expression, "ESCAPE takes one character, got "
                                                  f"{node.expression.sql(dialect=DIALECT)}")
            node = node.this
            if not isinstance(node, exp.Like | exp.ILike):
                raise self.refuse(outer, "ESCAPE here", "it follows a LIKE or ILIKE pattern")
        operand = self.expr(node.this)
        pattern = self.value(node.expression)
        if not isinstance(pattern, str):
            raise self.error(node.expression, "a LIKE pattern is a string, like '%Dune%'")
        if operand.type.kind != "string":
            raise self.error(node, f"LIKE needs a String value, got {operand!r} ({operand.type})")
        method = operand.str.ilike if isinstance(node, exp.ILike) else operand.str.like
        with self.scope.at(self.index(outer)):
            found = method(pattern) if escape is None else method(pattern, escape)
        return self.negated(found, outer) if node.args.get("negate") else found

    def json_path(self, node: exp.JSONExtract | exp.JSONExtractScalar) -> Expr:
        path = self.expr(node.this)
        for step in node.expression.expressions if isinstance(node.expression, exp.JSONPath) \
                else [node.expression]:
            if isinstance(step, exp.JSONPathRoot):
                continue
            if not isinstance(step, exp.JSONPathKey | exp.JSONPathSubscript) \
                    or not isinstance(step.this, str | int) or step.this == "*":
                raise self.refuse(node, "this JSON path", "name keys and positions: "
                                                          "meta->'tags'->>0")
            with self.scope.at(self.index(node)):
                path = path[step.this]
        return path

    def cast(self, node: exp.Cast | exp.TryCast) -> Expr:
        to = node.args["to"]
        name = _TYPE_NAMES.get(to.this.name if isinstance(to, exp.DataType) else "")
        if name is None:
            known = "INT, BIGINT, DOUBLE, VARCHAR, BOOLEAN, DATE, TIMESTAMP"
            raise self.error(node, f"cannot cast to {to.sql(dialect=DIALECT)} (types: {known})")
        if isinstance(node.this, exp.Literal) and node.this.is_string and name in ("date",
                                                                                   "timestamp"):
            like = lit(dt.date(2000, 1, 1) if name == "date" else dt.datetime(2000, 1, 1))
            return lit(self.scope.coerce(like, node.this.this, self.index(node)))  # ISO text
        operand = self.expr(node.this)
        with self.scope.at(self.index(node)):
            return operand.astype(name)

    def case(self, node: exp.Case) -> Expr:
        if node.this is not None:
            raise self.refuse(node, "CASE x WHEN", "write CASE WHEN x = 1 THEN ... END")
        result = self.expr(node.args["default"]) if node.args.get("default") else lit(None)
        for branch in reversed(node.args["ifs"]):
            condition, then = self.expr(branch.this), self.expr(branch.args["true"])
            with self.scope.at(self.index(branch)):
                result = if_else(condition, then, result)
        return result

    def function(self, node: exp.Func) -> Expr:
        """A method of the function registry, written as a call with the value first:
        ``upper(title)``, ``starts_with(title, 'D')``, ``width(image)``."""
        name = node.name.lower() if isinstance(node, exp.Anonymous) else node.sql_name().lower()
        args = list(node.expressions) if isinstance(node, exp.Anonymous) else \
            [v for k in node.arg_types if isinstance(v := node.args.get(k), exp.Expression)]
        if not args:
            raise self.unknown_function(node, name, None)
        operand = self.expr(args[0])
        options = [self.value(a) for a in args[1:]]
        if operand.type.kind == "string" and _STRING_FUNCTIONS.get(name, name) in _string_names():
            method = getattr(operand.str, _STRING_FUNCTIONS.get(name, name))
            with self.scope.at(self.index(node)):
                return method(*options)
        found = registry.methods_of(operand.type).get(name)
        if found is None:
            raise self.unknown_function(node, name, operand)
        with self.scope.at(self.index(node)):
            value = getattr(operand, name)
            if found.is_property:
                if options:
                    raise self.error(node, f"{name} takes only the value, like {name}(image)")
                return value
            return value(*options)

    def unknown_function(self, node: exp.Expression, name: str,
                         operand: Expr | None) -> ExpressionSyntaxError:
        names = sorted({*_STRING_FUNCTIONS, *_string_names()}) if operand is None \
            or operand.type.kind == "string" else sorted(registry.methods_of(operand.type))
        of = "" if operand is None else f" of {operand!r} ({operand.type})"
        return self.refuse(node, "the function", f"{name}() is not a function{of} (functions: "
                                                 f"{', '.join(names) or 'none'})",
                           shown=f"{name}(...)")


def _string_names() -> set[str]:
    return {m.name for m in registry.methods(registry.STRING)}


def _is_negative_number(node: exp.Expression) -> bool:
    return isinstance(node, exp.Neg) and isinstance(node.this, exp.Literal) \
        and not node.this.is_string


def _dot_parts(node: exp.Expression) -> list[exp.Expression]:
    if isinstance(node, exp.Dot):
        return [*_dot_parts(node.this), node.expression]
    if isinstance(node, exp.Column):
        return list(node.parts)
    return [node]


def _plain(node: exp.Expression) -> exp.Expression:
    copy = node.copy()
    copy.set("negate", None)
    return copy

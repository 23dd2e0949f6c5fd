"""Turn where and select strings (the CLI's ``--where`` and ``--select``) into expressions.

The text is parsed by Python's own parser (``ast.parse(text, mode="eval")``) and the syntax tree is
translated, node by node, into the expression API of :mod:`lakehouse.exprs.nodes`. Only the node
kinds listed below are translated; anything else is refused with an
:class:`~lakehouse.errors.ExpressionSyntaxError` that names the part and its column. Nothing is
ever evaluated: no ``eval``, no ``exec``, no attribute of a Python object is looked up by a name
from the text before that name has been checked against the list of methods of the expression.

Grammar (a subset of Python's expression syntax)::

    title, year                        a column of the table (unknown: ColumnNotFoundError)
    "text", 'text', 42, -1.5, 1e3      literals: strings, integers, floats,
    True, False, None                  booleans, None
    == != < <= > >=                    comparisons; a chain 1990 <= year < 2000 means "and";
                                       a string compared with a Date or Timestamp column is an
                                       ISO date or time: day >= "2024-01-31"
    x in [1, 2], x not in ("a", "b")   membership in a list, tuple or set of literals (isin)
    x is None, x is not None           null tests (x == None and x != None mean the same)
    and, or, not   (or &, |, ~)        logic on Bool expressions; parentheses group
    + - * / // %, unary -              arithmetic; + also joins strings
    a if condition else b              lh.if_else(condition, a, b)
    meta["a"]["b"], meta["tags"][0]    paths into a Json column (the values are strings)
    title.str.upper()                  string methods with literal arguments (the function
    title.str.contains("x")            registry's: see lakehouse.exprs.registry.help_text())
    x.is_null(), x.is_not_null()       the expression methods of the same names
    x.isin([1, 2]), x.astype(float)    (astype takes a type name: int, float, string, date...)
    image.width, image.fileurl         properties and methods of media columns (Image, Video,
    image.resize((64, 64))             Audio, Document), with literal arguments
    summary.errortype, .errormsg       the error of a computed column's failed rows
    image.similarity("a red circle")   similarity through an embedding index (selections
                                       only; options index=, nprobes=, refine_factor=,
                                       recall=)

A condition (:func:`parse_condition`, the CLI's ``--where``) may also be written in SQL:
``year > 1950 AND title = 'x'``, ``title LIKE '%Dune%'``, ``meta->>'lang' IS NULL``. Text
Python's parser reads is Python, unless the Python form refuses it for a call of a plain name
(``length(title) > 4``) or a name that is no column (``year < NULL``) and SQL reads it; other
text is read as SQL by :mod:`lakehouse.exprs.sql_text` into the same expressions (its docstring
has the grammar).
Where neither reads it, the error is the one of the reader that got further (SQL's where the
text uses something only SQL has) and says both syntaxes are accepted.

A selection is a comma-separated list of such expressions, each optionally named with
``name=expr`` (``title, year, per_page=price / pages``); ``*`` stands for all columns. As in
Python, text may continue on a new line only inside brackets.

Refused: calls of plain names (``open(...)``, ``__import__(...)``), names and attributes that
start with ``_``, lambdas, comprehensions, f-strings, ``:=``, starred arguments, dicts, slices,
the operators ``** @ << >> ^``, bytes and complex literals, text longer than
:data:`MAX_LENGTH` characters, and nesting deeper than :data:`MAX_DEPTH` levels.

>>> import lakehouse as lh
>>> db = lh.connect("doctest-lakehouse")
>>> t = db.create_table("parse_demo", {"title": lh.String, "year": lh.Int}, if_exists="replace")
>>> parse_condition('year >= 2000 and title.str.contains("a")', t)
((year >= 2000) & str.contains(title, arg0='a'))
>>> parse_selection("title, decade=year // 10 * 10", t)
[(None, title), ('decade', ((year // 10) * 10))]
"""

from __future__ import annotations

import ast
import dataclasses
import datetime as dt
import difflib
import inspect
import io
import tokenize
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import TYPE_CHECKING, Any

from lakehouse.errors import (
    ColumnNotFoundError,
    Error,
    ExpressionSyntaxError,
    InvalidOptionError,
    TypeMismatchError,
    UnsupportedError,
)
from lakehouse.exprs import registry, sql_text
from lakehouse.exprs.nodes import (
    BinaryOp,
    ColumnRef,
    Expr,
    IsNull,
    Literal,
    UnaryOp,
    if_else,
    lit,
)

if TYPE_CHECKING:
    from lakehouse.table import Table

ACCEPTED = ("write a condition in Python (year > 1950 and title == 'x') or in SQL "
            "(year > 1950 AND title = 'x')")
MAX_LENGTH = 10_000  # characters of one where or select string
MAX_DEPTH = 100  # levels of the syntax tree
_FLAT_LOGIC = 16  # and/or chains up to this length nest like the API's a & b & c; longer balance

_BINARY = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/", ast.FloorDiv: "//",
           ast.Mod: "%", ast.BitAnd: "&", ast.BitOr: "|"}
_REFUSED_BINARY = {ast.Pow: "**", ast.MatMult: "@", ast.LShift: "<<", ast.RShift: ">>",
                   ast.BitXor: "^"}
_COMPARE = {ast.Eq: "==", ast.NotEq: "!=", ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">",
            ast.GtE: ">="}
_ALLOWED_NODES = (ast.Expression, ast.Name, ast.Constant, ast.Compare, ast.BoolOp, ast.UnaryOp,
                  ast.BinOp, ast.Subscript, ast.Attribute, ast.Call, ast.keyword, ast.List,
                  ast.Tuple, ast.Set, ast.IfExp)
_OPERATOR_NODES = (ast.operator, ast.cmpop, ast.boolop, ast.unaryop, ast.expr_context)
_DESCRIPTIONS: dict[type[ast.AST], str] = {
    ast.Lambda: "a lambda", ast.ListComp: "a comprehension", ast.SetComp: "a comprehension",
    ast.DictComp: "a comprehension", ast.GeneratorExp: "a generator expression",
    ast.JoinedStr: "an f-string", ast.FormattedValue: "an f-string",
    ast.NamedExpr: "an assignment expression (:=)", ast.Starred: "a starred expression",
    ast.Dict: "a dict", ast.Await: "await", ast.Yield: "yield", ast.YieldFrom: "yield",
    ast.Slice: "a slice",
}
_LITERAL_TYPES = (str, int, float, bool, type(None))
_EXPR_METHODS = ("is_null", "is_not_null", "isin", "astype")
_SIMILARITY_OPTIONS = {"index": str, "nprobes": int, "refine_factor": int, "recall": float}


def parse_expression(text: str, table: Table, *, label: str = "expression",
                     allow_similarity: bool = False) -> Expr:
    """One expression over ``table``'s columns, such as ``price / pages`` or
    ``title.str.upper()``; the grammar is in this module's docstring.

    ``label`` starts error messages (``"order by: ..."``). Raises ExpressionSyntaxError for
    text that is not valid or uses something the grammar does not allow,
    ColumnNotFoundError for an unknown column, TypeMismatchError for mistyped operands.

    >>> parse_expression("year - 2000", t)
    (year - 2000)
    >>> t.order_by(parse_expression("rating * -1", t)).collect()["title"].to_list()
    ['Alien', 'Heat', 'Up']
    """
    source = _Source.of(text, label)
    return _Translator(source, table, allow_similarity).expression(source.parse(source.text, 0))


def parse_condition(text: str, table: Table, *, label: str = "where") -> Expr:
    """A Bool expression over ``table``'s columns for ``where()``, such as
    ``year >= 2000 and title.str.contains("cat")``, or the same in SQL,
    ``year >= 2000 AND contains(title, 'cat')`` (see the module docstring). Errors as
    :func:`parse_expression`; a condition that is not Bool is a TypeMismatchError.

    >>> t.where(parse_condition("year in [1979, 2009]", t)).collect()["title"].to_list()
    ['Alien', 'Up']
    >>> t.where(parse_condition("year IN (1979, 2009) AND title LIKE 'U%'", t)).count()
    1
    """
    source = _Source.of(text, label)
    try:
        part = source.parse(source.text, 0)
    except ExpressionSyntaxError as python_error:
        expr, shown, equals = _sql_condition(source, table, python_error), source.text, "="
    else:
        expr = _python_or_sql_condition(source, table, part)
        shown, equals = part.snippet(part.body), "=="
    if expr.type.kind != "bool":
        shown = " ".join(shown.split())
        message = (f"{label}: the condition {shown!r} is {expr.type}, not Bool; compare it, "
                   f"like {shown} {equals} ...")
        raise TypeMismatchError(message)
    return expr


def _python_or_sql_condition(source: _Source, table: Table, part: _Part) -> Expr:
    """The condition Python parsed; or the same text read as SQL, when SQL reads it and the
    Python form refuses it for what SQL reads (a call of a plain name, ``length(title) > 4``; a
    name that is no column, ``x < NULL``, ``YEAR > 2000``) or reads it as something else: a
    quote doubled inside a string (``title != 'it''s'``, in Python ``'it' 's'``) or a
    condition on no column at all (``"title" <> 'x'``, in Python two strings)."""
    try:
        expr = _Translator(source, table, allow_similarity=False).expression(part)
    except (ExpressionSyntaxError, ColumnNotFoundError) as python_error:
        calls = any(isinstance(n, ast.Call) and isinstance(n.func, ast.Name)
                    for n in ast.walk(part.tree))
        if not calls and not isinstance(python_error, ColumnNotFoundError):
            raise
        sql = _sql_if_it_reads(source, table)
        if sql is None:
            raise
        return sql
    if _joins_strings(source.text) or not expr.column_ids():
        sql = _sql_if_it_reads(source, table)
        if sql is not None and (sql.column_ids() or not expr.column_ids()):
            return sql
    return expr


def _sql_if_it_reads(source: _Source, table: Table) -> Expr | None:
    """The text read as SQL, or None where SQL cannot read or translate it."""
    parsed = sql_text.read(source.text, MAX_DEPTH)
    if isinstance(parsed, sql_text.Problem):
        return None
    try:
        return sql_text.translate(parsed, _Scope(source, table))
    except Error:
        return None


def _joins_strings(text: str) -> bool:
    """Whether Python reads two string literals side by side (``'it''s'``) or a triple-quoted
    one (````): in SQL, quotes doubled inside one string."""
    try:
        tokens = [t for t in tokenize.generate_tokens(io.StringIO(text).readline)
                  if t.type not in (tokenize.NL, tokenize.NEWLINE, tokenize.COMMENT)]
    except (tokenize.TokenError, SyntaxError):
        return False
    kinds = [t.type for t in tokens]
    return any(t.type == tokenize.STRING and (t.string[:3] in ("'''", '"""')
                                              or (i > 0 and kinds[i - 1] == tokenize.STRING))
               for i, t in enumerate(tokens))


def _sql_condition(source: _Source, table: Table, python_error: ExpressionSyntaxError) -> Expr:
    """The condition in SQL (:mod:`lakehouse.exprs.sql_text`), for text Python cannot parse.
    Where SQL cannot read it either, the error of the reader that got further into the text,
    with the syntaxes accepted: SQL's where the text uses something only SQL has."""
    parsed = sql_text.read(source.text, MAX_DEPTH)
    if isinstance(parsed, sql_text.Problem):
        python_at = source.index(python_error.line or 1, python_error.column or 1)
        sql_first = parsed.looks_like_sql or parsed.index > python_at
        error = source.error(parsed.index, parsed.message) if sql_first else python_error
        raise ExpressionSyntaxError(f"{error}; {ACCEPTED}", text=error.text, line=error.line,
                                    column=error.column)
    return sql_text.translate(parsed, _Scope(source, table))


def parse_selection(text: str, table: Table, *,
                    label: str = "select") -> list[tuple[str | None, Expr]]:
    """The outputs of a ``select()``: comma-separated expressions, each optionally named
    ``name=expr``; ``*`` stands for every column. An unnamed output gets the name select()
    gives it (``None`` here). ``select()`` takes the list as it is and keeps its order.

    >>> sel = parse_selection("title, per_decade=rating / 10, year", t)
    >>> sel
    [(None, title), ('per_decade', (rating / 10)), (None, year)]
    >>> t.select(*sel).collect().columns
    ['title', 'per_decade', 'year']
    """
    source = _Source.of(text, label)
    translator = _Translator(source, table, allow_similarity=True)
    items: list[tuple[str | None, _Part | None]] = []  # every item is checked before any runs
    for item in _split_items(source):
        part = None if item.star else source.parse(item.text, item.start)
        if part is not None:
            _check(part)
        items.append((item.name, part))
    outputs: list[tuple[str | None, Expr]] = []
    for name, part in items:
        if part is None:
            outputs += [(None, ref) for ref in translator.columns.values()]
        else:
            outputs.append((name, translator.expression(part)))
    return outputs


@dataclasses.dataclass(frozen=True)
class ParsedText:
    """One Python expression read from text (parsed, never evaluated) with the limits, literals
    and error positions of where strings, for the readers of other texts: iterator calls
    (:func:`lakehouse.iterators.parse.parse_iterator`). ``body`` is the syntax tree to inspect.

    >>> parsed = ParsedText.read("f(x, n=-1, sizes=(2, 3))", label="iterator")
    >>> [parsed.literal(k.value) for k in parsed.body.keywords]
    [-1, (2, 3)]
    >>> parsed.error(parsed.body.args[0], "no column 'x'")
    ExpressionSyntaxError("iterator: no column 'x' at column 3")
    >>> parsed.literal(parsed.body.func)
    Traceback (most recent call last):
    ...
    lakehouse.errors.ExpressionSyntaxError: iterator: expected a literal value (a string, \
number, True, False or None), got 'f' at column 1
    """

    part: _Part

    @staticmethod
    def read(text: str, *, label: str) -> ParsedText:
        """Parse ``text``; ExpressionSyntaxError (its column included) for text Python cannot
        parse, empty text or text over :data:`MAX_LENGTH` characters."""
        source = _Source.of(text, label)
        return ParsedText(source.parse(source.text, 0))

    @property
    def body(self) -> ast.expr:
        return self.part.body

    def snippet(self, node: ast.AST) -> str:
        """The text of ``node``, shortened, for messages (``f(...)`` for a call)."""
        return self.part.snippet(node)

    def error(self, node: ast.AST, message: str) -> ExpressionSyntaxError:
        """``label: message at column N``, N the column of ``node``."""
        return self.part.source.error(self.part.index(node), message)

    def literal(self, node: ast.AST) -> Any:
        """The value of a literal node: a string, number (negative too), bool or None, or a
        list or tuple of literals; ExpressionSyntaxError naming anything else."""
        found, value = _literal(node)
        if found:
            return value
        if isinstance(node, ast.List | ast.Tuple | ast.Set):
            values = [self.literal(elt) for elt in node.elts]
            return tuple(values) if isinstance(node, ast.Tuple) else values
        raise self.error(node, f"expected a literal value (a string, number, True, False or "
                               f"None), got {self.snippet(node)!r}")


# --- the text ------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class _Source:
    """The whole text and its label; turns positions in parsed parts into columns of the text."""

    text: str
    label: str

    @staticmethod
    def of(text: str, label: str) -> _Source:
        if not isinstance(text, str):
            raise TypeMismatchError(f"{label}: expected a string, got {text!r}")
        text = text.replace("\r\n", "\n").replace("\r", "\n")
        source = _Source(text, label)
        if len(text) > MAX_LENGTH:
            message = (f"{label}: the text is {len(text):,} characters long; the limit is "
                       f"{MAX_LENGTH:,}")
            raise ExpressionSyntaxError(message, text=text)
        if not text.strip():
            raise source.error(0, "the text is empty; write an expression such as year > 2000")
        return source

    def parse(self, part: str, start: int) -> _Part:
        """Parse ``part``, which begins at index ``start`` of the text, as one expression."""
        stripped = part.lstrip()
        start += len(part) - len(stripped)
        part = stripped.rstrip()
        try:
            tree = ast.parse(part, mode="eval")
        except SyntaxError as exc:
            at = start + _index(part, exc.lineno or 1, (exc.offset or 1) - 1, chars=True)
            raise self.error(min(at, len(self.text)), exc.msg) from None
        except (RecursionError, MemoryError):
            raise self.error(start, "the text is nested too deeply") from None
        return _Part(self, part, start, tree)

    def index(self, line: int, column: int) -> int:
        """The character index of (line, column), both from 1."""
        lines = self.text.split("\n")
        return sum(len(row) + 1 for row in lines[:line - 1]) + column - 1

    def position(self, index: int) -> tuple[int, int]:
        """(line, column), both from 1, of a character index."""
        before = self.text[:index]
        line = before.count("\n") + 1
        return line, index - (before.rfind("\n") + 1) + 1

    def where(self, index: int) -> str:
        line, column = self.position(index)
        return f"line {line}, column {column}" if "\n" in self.text.strip() else f"column {column}"

    def error(self, index: int, message: str) -> ExpressionSyntaxError:
        text = f"{self.label}: {message} at {self.where(index)}"
        return ExpressionSyntaxError(text, text=self.text, column=self.position(index)[1],
                                     line=self.position(index)[0])


@dataclasses.dataclass(frozen=True)
class _Part:
    """One parsed expression of the text (the whole text, or one item of a selection)."""

    source: _Source
    text: str
    start: int
    tree: ast.Expression

    @property
    def body(self) -> ast.expr:
        return self.tree.body

    def index(self, node: ast.AST) -> int:
        if not hasattr(node, "lineno"):  # parts of a node (a comprehension's "for"): its start
            return self.start
        return self.start + _index(self.text, node.lineno, node.col_offset, chars=False)

    def snippet(self, node: ast.AST) -> str:
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name | ast.Attribute):
            return f"{self.snippet(node.func)}(...)"
        shown = ast.get_source_segment(self.text, node) or type(node).__name__
        shown = " ".join(shown.split())
        return shown if len(shown) <= 40 else shown[:37] + "..."


def _index(text: str, lineno: int, offset: int, *, chars: bool) -> int:
    """The character index in ``text`` of a 1-based line and an offset in that line (UTF-8 bytes
    as in ast nodes, or characters as in SyntaxError)."""
    lines = text.split("\n")
    lineno = max(1, min(lineno, len(lines)))
    line = lines[lineno - 1]
    column = offset if chars else len(line.encode()[:max(offset, 0)].decode(errors="ignore"))
    return sum(len(x) + 1 for x in lines[:lineno - 1]) + max(0, min(column, len(line)))


@dataclasses.dataclass(frozen=True)
class _Item:
    """One comma-separated item of a selection."""

    text: str
    start: int
    name: str | None = None
    star: bool = False


def _split_items(source: _Source) -> list[_Item]:
    """Split a selection at its top-level commas, with Python's tokenizer (so commas inside
    strings and brackets stay), and read a leading ``name=``."""
    text = source.text
    line_starts = [0]
    for i, ch in enumerate(text):
        if ch == "\n":
            line_starts.append(i + 1)

    def at(pos: tuple[int, int]) -> int:
        return line_starts[min(pos[0], len(line_starts)) - 1] + pos[1]

    items: list[_Item] = []
    depth, item_start, toks = 0, 0, []
    skip = (tokenize.NL, tokenize.NEWLINE, tokenize.COMMENT, tokenize.INDENT, tokenize.DEDENT,
            tokenize.ENDMARKER)
    try:
        for tok in tokenize.generate_tokens(io.StringIO(text).readline):
            if tok.type == tokenize.OP and tok.string in ("(", "[", "{"):
                depth += 1
            elif tok.type == tokenize.OP and tok.string in (")", "]", "}"):
                depth -= 1
            if tok.type == tokenize.OP and tok.string == "," and depth == 0:
                items.append(_item(source, text[item_start:at(tok.start)], item_start, toks, at))
                item_start, toks = at(tok.end), []
            elif tok.type == tokenize.ENDMARKER:
                items.append(_item(source, text[item_start:], item_start, toks, at))
            elif tok.type not in skip:
                toks.append(tok)
    except (tokenize.TokenError, SyntaxError):
        source.parse(text, 0)  # Python's parser names the problem (an unclosed bracket...)
        raise source.error(0, "the selection cannot be read") from None
    return items


def _item(source: _Source, text: str, start: int, toks: list[tokenize.TokenInfo],
          at: Callable[[tuple[int, int]], int]) -> _Item:
    if not toks:
        raise source.error(start + len(text) - len(text.lstrip()),
                           "an empty item in the selection (two commas, or one at the end)")
    if len(toks) == 1 and toks[0].type == tokenize.OP and toks[0].string == "*":
        return _Item(text, start, star=True)
    if len(toks) >= 2 and toks[0].type == tokenize.NAME and toks[1].string == "=":
        name, after = toks[0].string, at(toks[1].end)
        if name.startswith("_"):
            raise source.error(at(toks[0].start), f"output name {name!r} may not start with '_'")
        return _Item(text[after - start:], after, name=name)
    return _Item(text, start)


# --- the translation -----------------------------------------------------------------------------


class _Scope:
    """The columns of one table and the errors of one text, for the Python and the SQL
    translator (:class:`lakehouse.exprs.sql_text.Scope`); positions are indexes of the text."""

    def __init__(self, source: _Source, table: Table) -> None:
        self.source = source
        self.table_name = table.table_name
        tdef = table.table_definition  # one definition for the whole text
        self.columns: dict[str, ColumnRef] = {c.name: c.ref() for c in tdef.columns}

    def error(self, index: int, message: str) -> ExpressionSyntaxError:
        return self.source.error(index, message)

    def column(self, name: str, index: int, *, exact: bool = True) -> ColumnRef:
        ref = self.columns.get(name)
        if ref is not None:
            return ref
        folded = [r for n, r in self.columns.items() if n.lower() == name.lower()]
        if not exact and len(folded) == 1:
            return folded[0]
        close = difflib.get_close_matches(name, self.columns, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        known = ", ".join(self.columns) or "none"
        message = (f"{self.source.label}: table {self.table_name!r} has no column {name!r} at "
                   f"{self.source.where(index)}{hint} (columns: {known})")
        raise ColumnNotFoundError(message)

    @contextmanager
    def at(self, index: int) -> Iterator[None]:
        """Report an error of the expression API (a type, an option, an unsupported use) with
        the label and the column of ``index``, keeping its type."""
        try:
            yield
        except (TypeMismatchError, InvalidOptionError, UnsupportedError) as exc:
            message = f"{self.source.label}: {exc} at {self.source.where(index)}"
            raise type(exc)(message) from None

    def coerce(self, other: Expr, value: Any, index: int) -> Any:
        """A string compared with a Date or Timestamp expression, read as an ISO date or time."""
        raw = value.value if isinstance(value, Literal) else value
        if not isinstance(raw, str) or not isinstance(other, Expr) \
                or other.type.kind not in ("date", "timestamp"):
            return value
        kind = other.type.kind
        try:
            return dt.date.fromisoformat(raw) if kind == "date" else dt.datetime.fromisoformat(raw)
        except ValueError:
            shape = "2024-01-31" if kind == "date" else "2024-01-31T12:00:00+00:00"
            message = (f"{self.source.label}: {raw!r} is not an ISO "
                       f"{'date' if kind == 'date' else 'time'} like {shape!r} (compared with "
                       f"{other!r}, {other.type}) at {self.source.where(index)}")
            raise TypeMismatchError(message) from None

    def logic(self, op: str, exprs: list[Expr], index: int) -> Expr:
        """``exprs`` joined by ``op`` (& or |): nested like the API's a & b & c up to
        :data:`_FLAT_LOGIC` of them, balanced beyond (so a long chain stays shallow)."""
        with self.at(index):
            if len(exprs) <= _FLAT_LOGIC:
                result = exprs[0]
                for e in exprs[1:]:
                    result = BinaryOp.make(op, result, e)
                return result
            return _balanced(op, exprs)


class _Translator:
    """Translates checked syntax trees into expressions over one table's columns."""

    def __init__(self, source: _Source, table: Table, allow_similarity: bool) -> None:
        self.source = source
        self.scope = _Scope(source, table)
        self.columns = self.scope.columns
        self.allow_similarity = allow_similarity
        self.part: _Part | None = None

    def expression(self, part: _Part) -> Expr:
        self.part = part
        _check(part)
        return self.expr(part.body)

    # --- errors ----------------------------------------------------------------------------------
    def refuse(self, node: ast.AST, what: str, hint: str = "") -> ExpressionSyntaxError:
        assert self.part is not None
        return _refusal(self.part, node, what, hint)

    def error(self, node: ast.AST, message: str) -> ExpressionSyntaxError:
        assert self.part is not None
        return self.source.error(self.part.index(node), message)

    def at(self, node: ast.AST) -> AbstractContextManager[None]:
        """Report an error of the expression API with the label and the node's column."""
        assert self.part is not None
        return self.scope.at(self.part.index(node))

    # --- nodes -----------------------------------------------------------------------------------
    def expr(self, node: ast.expr) -> Expr:
        found, value = _literal(node)
        if found:
            return lit(value)
        if isinstance(node, ast.Name):
            return self.column(node)
        if isinstance(node, ast.Compare):
            lefts = [node.left, *node.comparators[:-1]]
            pairs = zip(lefts, node.ops, node.comparators, strict=True)
            return self.logic("&", [self.compare(left, op, right, node)
                                    for left, op, right in pairs], node)
        if isinstance(node, ast.BoolOp):
            op = "&" if isinstance(node.op, ast.And) else "|"
            return self.logic(op, [self.expr(v) for v in node.values], node)
        if isinstance(node, ast.UnaryOp):
            operand = self.expr(node.operand)
            if isinstance(node.op, ast.UAdd):
                if not operand.type.is_numeric():
                    raise self.error(node, f"unary '+' needs a number, got {operand!r}")
                return operand
            with self.at(node):
                return UnaryOp.make("neg" if isinstance(node.op, ast.USub) else "not", operand)
        if isinstance(node, ast.BinOp):
            left, right = self.expr(node.left), self.expr(node.right)
            with self.at(node):
                return BinaryOp.make(_BINARY[type(node.op)], left, right)
        if isinstance(node, ast.IfExp):
            condition, then, otherwise = (self.expr(node.test), self.expr(node.body),
                                          self.expr(node.orelse))
            with self.at(node):
                return if_else(condition, then, otherwise)
        if isinstance(node, ast.Subscript):
            return self.subscript(node)
        if isinstance(node, ast.Attribute):
            return self.attribute(node)
        if isinstance(node, ast.Call):
            return self.call(node)
        if isinstance(node, ast.List | ast.Tuple | ast.Set):
            kind = {ast.List: "a list", ast.Tuple: "a tuple", ast.Set: "a set"}[type(node)]
            raise self.refuse(node, kind, "lists of values go after 'in' (year in [1, 2]); "
                                          "separate selected expressions with commas")
        raise self.refuse(node, _describe(node))

    def column(self, node: ast.Name) -> ColumnRef:
        assert self.part is not None
        return self.scope.column(node.id, self.part.index(node))

    def logic(self, op: str, exprs: list[Expr], node: ast.AST) -> Expr:
        assert self.part is not None
        return self.scope.logic(op, exprs, self.part.index(node))

    def compare(self, left: ast.expr, op: ast.cmpop, right: ast.expr, node: ast.Compare) -> Expr:
        if isinstance(op, ast.In | ast.NotIn):
            if not isinstance(right, ast.List | ast.Tuple | ast.Set):
                raise self.error(right, "'in' needs a list, tuple or set of literal values on "
                                        f"its right (year in [1999, 2000]), got "
                                        f"{self.part_snippet(right)!r}")
            operand = self.expr(left)
            values = [self.coerce(operand, self.value(elt), elt) for elt in right.elts]
            with self.at(node):
                found = operand.isin(values)
            return UnaryOp.make("not", found) if isinstance(op, ast.NotIn) else found
        left_null, right_null = _is_none(left), _is_none(right)
        if isinstance(op, ast.Is | ast.IsNot) and not (left_null or right_null):
            raise self.error(node, "'is' and 'is not' only compare with None (x is None); "
                                   "use == and != for values")
        if isinstance(op, ast.Is | ast.IsNot | ast.Eq | ast.NotEq) and (left_null or right_null):
            operand = self.expr(right if left_null else left)
            return IsNull(operand, negate=isinstance(op, ast.IsNot | ast.NotEq))
        lhs, rhs = self.expr(left), self.expr(right)
        lhs = self.coerce(rhs, lhs, left)
        rhs = self.coerce(lhs, rhs, right)
        with self.at(node):
            return BinaryOp.make(_COMPARE[type(op)], lhs, rhs)

    def coerce(self, other: Expr, value: Any, node: ast.AST) -> Any:
        """A string compared with a Date or Timestamp expression, read as an ISO date or time."""
        assert self.part is not None
        return self.scope.coerce(other, value, self.part.index(node))

    def value(self, node: ast.expr) -> Any:
        """A literal argument: a constant, or a list or tuple of them."""
        assert self.part is not None
        return ParsedText(self.part).literal(node)

    def part_snippet(self, node: ast.AST) -> str:
        assert self.part is not None
        return self.part.snippet(node)

    def subscript(self, node: ast.Subscript) -> Expr:
        operand = self.expr(node.value)
        found, key = _literal(node.slice)
        if not found or not isinstance(key, str | int) or isinstance(key, bool):
            raise self.error(node.slice, "a JSON path key must be a string or an integer "
                                         f"(meta[\"a\"][0]), got {self.part_snippet(node.slice)!r}")
        with self.at(node):
            return operand[key]

    def attribute(self, node: ast.Attribute) -> Expr:
        operand = self.expr(node.value)
        name = node.attr
        if name in ("errortype", "errormsg") and isinstance(operand, ColumnRef):
            return getattr(operand, name)
        if name in _media_properties(operand):
            with self.at(node):
                return getattr(operand, name)
        if name == "str" or name in _media_methods(operand) or name in _EXPR_METHODS:
            raise self.error(node, f"{name!r} is a method: call it, like "
                                   f"{self.part_snippet(node)}"
                                   f"{'.upper()' if name == 'str' else '()'}")
        raise self.error(node, f"{operand!r} ({operand.type}) has no attribute {name!r} "
                               f"({_available(operand)})")

    def call(self, node: ast.Call) -> Expr:
        func = node.func
        assert isinstance(func, ast.Attribute)  # _check refused calls of anything else
        name = func.attr
        is_str = isinstance(func.value, ast.Attribute) and func.value.attr == "str"
        operand = self.expr(func.value.value if is_str else func.value)  # type: ignore[attr-defined]
        typed = name == "astype" and not is_str  # astype(float): a type's name, not a column
        args = [self.type_name(a) if typed else self.value(a) for a in node.args]
        kwargs = {k.arg: self.value(k.value) for k in node.keywords if k.arg is not None}
        if is_str:
            if name not in _string_methods():
                raise self.error(func, f"'str.{name}' is not a string method (string methods: "
                                       f"{', '.join(_string_methods())})")
            with self.at(node):
                return self.invoke(f"{operand!r}.str.{name}", getattr(operand.str, name),
                                   args, kwargs)
        if name == "similarity" and isinstance(operand, ColumnRef):
            return self.similarity(node, operand, args, kwargs)
        if name == "isin":
            if len(args) != 1 or kwargs or not isinstance(args[0], list | tuple):
                raise self.error(node, "isin() takes one list of literal values, like "
                                       "year.isin([1999, 2000])")
            args = [[self.coerce(operand, v, node) for v in args[0]]]
        if name in _EXPR_METHODS or name in _media_methods(operand):
            with self.at(node):
                return self.invoke(f"{operand!r}.{name}", getattr(operand, name), args, kwargs)
        raise self.error(func, f"{operand!r} ({operand.type}) has no method {name!r} "
                               f"({_available(operand)})")

    @staticmethod
    def invoke(shown: str, method: Any, args: list[Any], kwargs: dict[str, Any]) -> Expr:
        """Call a method of the expression API, first checking the arguments fit it."""
        try:
            inspect.signature(method).bind(*args, **kwargs)
        except TypeError as exc:
            raise TypeMismatchError(f"{shown}(): {exc}") from None
        return method(*args, **kwargs)

    def type_name(self, node: ast.expr) -> str:
        """The argument of astype(): a type's name, as a string or bare (float, lh.Float)."""
        found, value = _literal(node)
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) \
                and node.value.id == "lh":
            found, value = True, node.attr
        elif isinstance(node, ast.Name):
            found, value = True, node.id
        if found and isinstance(value, str):
            return {"str": "string"}.get(value, value)
        raise self.error(node, "astype() takes a type name such as float, int, string or date, "
                               f"got {self.part_snippet(node)!r}")

    def similarity(self, node: ast.Call, column: ColumnRef, args: list[Any],
                   kwargs: dict[str, Any]) -> Expr:
        if not self.allow_similarity:
            raise self.error(node, "similarity() is only allowed in a selection; to filter, "
                                   "search for the closest rows instead")
        if len(args) != 1 or not isinstance(args[0], str):
            raise self.error(node, "similarity() takes one string, the text to compare with "
                                   "(image.similarity(\"a red circle\"))")
        for key, value in kwargs.items():
            wanted = _SIMILARITY_OPTIONS.get(key)
            if wanted is None or not isinstance(value, wanted) or isinstance(value, bool):
                raise self.error(node, f"similarity() option {key}={value!r} is not one of "
                                       "index=\"name\", nprobes=<int>, refine_factor=<int>, "
                                       "recall=<number such as 0.99>")
        with self.at(node):
            return column.similarity(args[0], **kwargs)


# --- checks and helpers --------------------------------------------------------------------------


def _check(part: _Part) -> None:
    """Refuse, before translating anything, every node the grammar does not allow; the leftmost
    refusal is reported."""
    depths: list[tuple[ast.AST, int]] = [(part.tree, 0)]
    refused: list[tuple[int, int, int, ast.AST, str, str]] = []
    while depths:  # the expression is a tree of at most MAX_LENGTH nodes: this ends
        node, depth = depths.pop()
        if depth > MAX_DEPTH:
            message = f"the expression is nested more than {MAX_DEPTH} levels deep"
            raise part.source.error(part.index(node), message)
        depths.extend((child, depth + 1) for child in ast.iter_child_nodes(node))
        if isinstance(node, _OPERATOR_NODES):
            continue
        problem = _problem(node)
        if problem is not None:
            # a node without a position (a comprehension's "for" clause) lies inside a refused
            # node that has one; it is reported only if nothing else is
            placed = hasattr(node, "lineno")
            refused.append((0 if placed else 1, part.index(node), -_span(node), node, *problem))
    if refused:
        *_, node, what, hint = min(refused, key=lambda r: r[:3])
        raise _refusal(part, node, what, hint)


def _problem(node: ast.AST) -> tuple[str, str] | None:
    """(what, hint) when the node is not allowed, else None."""
    if not isinstance(node, _ALLOWED_NODES):
        return _describe(node), ""
    if isinstance(node, ast.Call) and not isinstance(node.func, ast.Attribute):
        return "a function call", "only methods of columns can be called, like title.str.upper()"
    if isinstance(node, ast.Attribute) and node.attr.startswith("_"):
        return "a private attribute", ""
    if isinstance(node, ast.Name) and node.id.startswith("_"):
        return "a private name", ""
    if isinstance(node, ast.keyword) and node.arg is None:
        return "a ** argument", ""
    if isinstance(node, ast.Constant) and not isinstance(node.value, _LITERAL_TYPES):
        kinds = {bytes: "a bytes literal", complex: "a complex number"}
        return kinds.get(type(node.value), "this literal"), ""
    if isinstance(node, ast.BinOp) and type(node.op) in _REFUSED_BINARY:
        return f"the operator {_REFUSED_BINARY[type(node.op)]!r} in", ""
    return None


def _refusal(part: _Part, node: ast.AST, what: str, hint: str) -> ExpressionSyntaxError:
    error = part.source.error(part.index(node), f"cannot use {what} '{part.snippet(node)}'")
    if hint:
        error = ExpressionSyntaxError(f"{error}; {hint}", text=error.text, column=error.column,
                                      line=error.line)
    return error


def _span(node: ast.AST) -> int:
    end = getattr(node, "end_col_offset", None)
    start = getattr(node, "col_offset", 0)
    lines = getattr(node, "end_lineno", 1) - getattr(node, "lineno", 1)
    return lines * MAX_LENGTH + ((end or start) - start)


def _describe(node: ast.AST) -> str:
    return _DESCRIPTIONS.get(type(node), f"this kind of expression ({type(node).__name__})")


def _literal(node: ast.AST) -> tuple[bool, Any]:
    """(True, value) for a constant, including a negative number; else (False, None)."""
    if isinstance(node, ast.Constant) and isinstance(node.value, _LITERAL_TYPES):
        return True, node.value
    if (isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd)
            and isinstance(node.operand, ast.Constant)
            and isinstance(node.operand.value, int | float)
            and not isinstance(node.operand.value, bool)):
        value = node.operand.value
        return True, -value if isinstance(node.op, ast.USub) else value
    return False, None


def _is_none(node: ast.AST) -> bool:
    return isinstance(node, ast.Constant) and node.value is None


def _balanced(op: str, exprs: list[Expr]) -> Expr:
    if len(exprs) == 1:
        return exprs[0]
    middle = len(exprs) // 2
    return BinaryOp.make(op, _balanced(op, exprs[:middle]), _balanced(op, exprs[middle:]))


def _string_methods() -> list[str]:
    """The ``.str`` methods the text may call: those of the function registry."""
    return [m.name for m in registry.methods(registry.STRING)]


def _media_methods(expr: Expr) -> set[str]:
    """The methods of a media expression the text may call, from the function registry."""
    return {name for name, m in registry.methods_of(expr.type).items() if not m.is_property}


def _media_properties(expr: Expr) -> set[str]:
    """The properties of a media expression the text may read, from the function registry."""
    return {name for name, m in registry.methods_of(expr.type).items() if m.is_property}


def _available(expr: Expr) -> str:
    names = [f"{m}()" for m in _EXPR_METHODS]
    if expr.type.kind == "string":
        names += [f"str.{m}()" for m in _string_methods()]
    names += sorted(_media_properties(expr)) + sorted(f"{m}()" for m in _media_methods(expr))
    if isinstance(expr, ColumnRef):
        names += ["errortype", "errormsg", "similarity()"]
    return "available: " + ", ".join(names)

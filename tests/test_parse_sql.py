"""Where conditions in SQL: ``lh.parse_condition`` (and ``--where``) read text Python cannot parse
as SQL (sqlglot, DuckDB dialect), translated node by node into the same expression tree as the
Python form. Each SQL form here sits beside its Python form: the same expression, the same rows.
Statements, comments, subqueries and unknown functions are refused with their column; a text
neither reader accepts says which syntaxes are.

The generated test renders random conditions in both syntaxes and checks that they parse to the
same expression selecting the same rows; another checks LIKE and ILIKE against a reference
matcher written here. CI runs a fixed seed (``LAKEHOUSE_HYPOTHESIS_EXAMPLES`` runs more, from a
random seed, as in test_filter_differential.py). Local tables: parsing reads only the columns.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from test_filter_differential import ROWS, SCHEMA, _settings, floats, ints, strings

import lakehouse as lh
from lakehouse.exprs import sql_text
from lakehouse.exprs.parse import parse_condition

BOOKS = {"id": lh.Int, "title": lh.String, "year": lh.Int, "pages": lh.Int, "price": lh.Float,
         "active": lh.Bool, "meta": lh.Json, "day": lh.Date, "MixedCase": lh.Int}
ROWS_OF_BOOKS = [
    (1, "Dune", 1965, 412, 9.5, True, {"origin": {"country": "US"}, "tags": ["sf", "desert"]}),
    (2, "Dune Messiah", 1969, 256, None, False, {"origin": {"country": "US"}, "tags": []}),
    (3, "Solaris", 1961, 204, 7.25, None, {"origin": {"country": "PL"}}),
    (4, "it's 100% _true_", 2001, None, 12.0, True, None),
    (5, None, None, 380, 4.0, False, {"tags": ["x"]}),
    (6, "DUNE (graphic)", 2020, 160, 25.0, True, {"origin": {"country": "FR"}}),
]
ACCEPTED = ("write a condition in Python (year > 1950 and title == 'x') or in SQL "
            "(year > 1950 AND title = 'x')")


@pytest.fixture(scope="module")
def books(tmp_path_factory: pytest.TempPathFactory) -> lh.Table:
    db = lh.connect(str(tmp_path_factory.mktemp("sql") / "lh"))
    t = db.create_table("books", BOOKS)
    t.insert([{"id": i, "title": title, "year": year, "pages": pages, "price": price,
               "active": active, "meta": meta, "day": dt.date(2024, 1, i), "MixedCase": i * 10}
              for i, title, year, pages, price, active, meta in ROWS_OF_BOOKS], progress=False)
    return t


def _ids(t: lh.Table, condition: lh.Expr) -> list[int]:
    return sorted(t.where(condition).select(t.id).collect()["id"].to_list())


# --- SQL beside Python: the same expression, the same rows ---------------------------------------

# (SQL, the Python form it stands for)
SIDE_BY_SIDE: list[tuple[str, str]] = [
    # the forms of issue 17
    ("title = 'Dune'", "title == 'Dune'"),
    ("year > 1950 AND pages < 400", "year > 1950 and pages < 400"),
    ("title like '%Dune%'", "title.str.like('%Dune%')"),
    # each comparison
    ("year <> 1965", "year != 1965"),
    ("year != 1965", "year != 1965"),
    ("year < 1965", "year < 1965"),
    ("year <= 1965", "year <= 1965"),
    ("year >= 1965", "year >= 1965"),
    ("1965 < year", "1965 < year"),
    ("price > -1.5e0 AND price < 1e1", "price > -1.5 and price < 10.0"),
    ("active = TRUE", "active == True"),
    ("active = false", "active == False"),
    ("title = 'it''s 100% _true_'", "title == \"it's 100% _true_\""),
    # logic, with SQL's precedence
    ("year > 2000 OR price < 8", "year > 2000 or price < 8"),
    ("NOT year = 1965", "not year == 1965"),
    ("NOT active AND year > 1960", "(not active) and year > 1960"),
    ("year > 1960 AND (active OR price > 20)", "year > 1960 and (active or price > 20)"),
    ("year < 1966 or year > 2010 and active", "year < 1966 or (year > 2010 and active)"),
    # membership, ranges, nulls
    ("year IN (1961, 2001)", "year in [1961, 2001]"),
    ("year NOT IN (1961, 2001)", "year not in [1961, 2001]"),
    ("title IN ('Dune', 'Solaris', NULL)", "title in ['Dune', 'Solaris', None]"),
    ("year BETWEEN 1961 AND 1969", "year >= 1961 and year <= 1969"),
    ("year NOT BETWEEN 1961 AND 1969", "not (year >= 1961 and year <= 1969)"),
    ("title IS NULL", "title is None"),
    ("pages IS NOT NULL", "pages is not None"),
    ("NOT (title IS NULL)", "not (title is None)"),
    ("year < NULL OR active", "year < None or active"),
    # LIKE and ILIKE: % any text, _ one character, ESCAPE
    ("title LIKE 'Dune%'", "title.str.like('Dune%')"),
    ("title LIKE 'DUNE%'", "title.str.like('DUNE%')"),
    ("title ILIKE 'dune%'", "title.str.ilike('dune%')"),
    ("title NOT LIKE 'Dune%'", "not title.str.like('Dune%')"),
    ("title LIKE '_une'", "title.str.like('_une')"),
    ("title LIKE '%!%%' ESCAPE '!'", "title.str.like('%!%%', '!')"),
    ("title NOT ILIKE '%!_TRUE!_' ESCAPE '!'", "not title.str.ilike('%!_TRUE!_', '!')"),
    # names: double quotes, and unquoted names in another case
    ('"MixedCase" > 20 AND active', "MixedCase > 20 and active"),
    ("mixedcase > 20 AND active", "MixedCase > 20 and active"),
    ('"title" = \'Solaris\'', "title == 'Solaris'"),
    ("YEAR > 2000 AND active", "year > 2000 and active"),
    # arithmetic, as in the Python form
    ("pages / 2 > 150", "pages / 2 > 150"),
    ("year % 2 = 1", "year % 2 == 1"),
    ("year // 10 = 196", "year // 10 == 196"),
    ("-price < -9", "-price < -9"),
    ("year + 1 - 1 = year AND pages * 2 > 500", "year + 1 - 1 == year and pages * 2 > 500"),
    ("title || '!' = 'Dune!'", "title + '!' == 'Dune!'"),
    # JSON paths: -> and ->> alike, and dots
    ("meta->'origin'->>'country' = 'US'", "meta['origin']['country'] == 'US'"),
    ("meta.origin.country = 'PL'", "meta['origin']['country'] == 'PL'"),
    ("meta->'tags'->>0 = 'sf'", "meta['tags'][0] == 'sf'"),
    ("meta->>'tags' IS NULL", "meta['tags'] is None"),
    # casts, dates, CASE, functions of the registry
    ("CAST(year AS VARCHAR) = '1961'", "year.astype('string') == '1961'"),
    ("year::DOUBLE > 2000.5", "year.astype('float') > 2000.5"),
    ("(meta->'origin'->>'country')::VARCHAR = 'FR'", "meta['origin']['country'] == 'FR'"),
    ("day >= '2024-01-04'", "day >= '2024-01-04'"),
    ("day = DATE '2024-01-02'", "day == '2024-01-02'"),
    ("CASE WHEN price < 10 THEN 'cheap' ELSE 'dear' END = 'cheap'",
     "('cheap' if price < 10 else 'dear') == 'cheap'"),
    ("upper(title) = 'DUNE'", "title.str.upper() == 'DUNE'"),
    ("length(title) > 10", "title.str.len() > 10"),
    ("starts_with(title, 'Dune')", "title.str.startswith('Dune')"),
    ("contains(lower(title), 'dune') AND year > 1960",
     "title.str.lower().str.contains('dune') and year > 1960"),
    ("trim(title) = 'Solaris'", "title.str.strip() == 'Solaris'"),
    # over several lines
    ("year > 1960\n  AND active", "year > 1960 and active"),
]


@pytest.mark.parametrize(("sql", "python"), SIDE_BY_SIDE, ids=[s for s, _ in SIDE_BY_SIDE])
def test_sql_and_python_give_the_same_expression_and_rows(
        books: lh.Table, sql: str, python: str) -> None:
    from_sql, from_python = parse_condition(sql, books), parse_condition(python, books)
    assert _ids(books, from_sql) == _ids(books, from_python)
    if sql != "(meta->'origin'->>'country')::VARCHAR = 'FR'":  # a cast of a String
        assert repr(from_sql) == repr(from_python)


def test_the_side_by_side_forms_keep_some_rows_and_drop_others(books: lh.Table) -> None:
    """Equal results are evidence only where a condition selects some rows but not all."""
    everything = set(range(1, len(ROWS_OF_BOOKS) + 1))
    for sql, _ in SIDE_BY_SIDE:
        found = set(_ids(books, parse_condition(sql, books)))
        assert found and found != everything, sql


def test_a_text_python_can_read_is_read_as_python(books: lh.Table) -> None:
    assert repr(parse_condition("year in (1961, 2001)", books)) == "year.isin([1961, 2001])"
    assert repr(parse_condition('title == "Dune"', books)) == "(title == 'Dune')"
    assert repr(parse_condition("'a' == 'a'", books)) == "('a' == 'a')"


@pytest.mark.parametrize(("text", "sql"), [
    ("title != 'it''s 100% _true_'", "(title != \"it's 100% _true_\")"),  # Python: 'it' 's...'
    ("title != ''''''", "(title != \"''\")"),  # Python: a triple-quoted empty string
    ('"title" != \'x\'', "(title != 'x')"),  # Python: two strings, no column
    ("length(title) > 10", "(str.len(title) > 10)"),  # Python: no plain calls
    ("year < NULL OR active", "((year < None) | active)"),  # Python: no column NULL
    ("YEAR > 2000", "(year > 2000)"),  # Python: no column YEAR
])
def test_text_python_reads_otherwise_or_refuses_is_read_as_sql(
        books: lh.Table, text: str, sql: str) -> None:
    assert repr(parse_condition(text, books)) == sql


# --- refusals ------------------------------------------------------------------------------------

# (text, the start of the message after "where: ", its column)
INJECTIONS: list[tuple[str, str, int]] = [
    ("1=1; DROP TABLE books", "cannot use ';' (one condition, not statements)", 4),
    ("year = 1 -- comment", "cannot use a comment (-- or /* */)", 10),
    ("year = 1 --", "cannot use a comment", 10),
    ("year = /* */ 1", "cannot use a comment", 8),
    ("title = 'x' /* OR 1=1 */", "cannot use a comment", 13),
    ("year = 1 UNION SELECT title FROM books", "unexpected 'UNION'", 10),
    ("year = 1 OR 1=1 UNION ALL SELECT 1", "unexpected 'UNION'", 17),
    ("SELECT * FROM books", "unexpected 'SELECT'", 1),
    ("year IN (SELECT year FROM books)", "cannot use a subquery", 1),
    ("EXISTS (SELECT 1)", "cannot use a subquery", 1),
    ("year = (SELECT 1)", "cannot use a subquery", 8),
    ("read_csv('/etc/passwd') = 1", "cannot use the function 'read_csv(...)'", 1),
    ("pg_sleep(10) = 1", "cannot use the function 'pg_sleep(...)'", 1),
    ("title = getenv('HOME')", "cannot use the function 'getenv(...)'", 9),
    ("year = ?", "cannot use a parameter '?'", 8),
    ("year = $1", "cannot use a parameter", 8),
    ("title ~ 'D.*'", "cannot use a regular expression match", 1),
]


@pytest.mark.parametrize(("text", "message", "column"), INJECTIONS, ids=[i[0] for i in INJECTIONS])
def test_statements_comments_subqueries_and_unknown_functions_are_refused(
        books: lh.Table, text: str, message: str, column: int) -> None:
    with pytest.raises(lh.ExpressionSyntaxError) as info:
        parse_condition(text, books)
    assert str(info.value).startswith(f"where: {message}"), str(info.value)
    assert f"at column {column}" in str(info.value), str(info.value)
    assert info.value.column == column
    assert books.count() == len(ROWS_OF_BOOKS)


@pytest.mark.parametrize(("text", "message"), [
    ("year = NULL", r"^where: a comparison with NULL is never true in SQL; write IS NULL at "
                    r"column 1$"),
    ("NULL <> year", r"IS NOT NULL at column 1$"),
    ("active IS TRUE", r"^where: IS only tests for NULL"),
    ("year LIKE '19%'", r"^where: LIKE needs a String value, got year \(Int\) at column 1$"),
    ("title LIKE year", r"^where: expected a literal value .* got 'year' at column 12$"),
    ("title LIKE 'a' ESCAPE '!!'", r"^where: ESCAPE takes one character, got '!!' at column 23$"),
    ("CAST(year AS BLOB) = 1", r"^where: cannot cast to BLOB \(types: INT, BIGINT"),
    ("year BETWEEN SYMMETRIC 1 AND 2", r"^where: cannot use BETWEEN SYMMETRIC"),
    ("title.x = 1", r"^where: 'title.x': title is String, not Json"),
    ("*", r"^where: cannot use a star '\*' at column 1$"),
    ("upper(year) = 'X'", r"^where: cannot use the function 'upper\(\.\.\.\)' at column 1; "
                          r"upper\(\) is not a function of year \(Int\)"),
])
def test_sql_that_means_something_else_or_nothing_is_refused_with_the_fix(
        books: lh.Table, text: str, message: str) -> None:
    with pytest.raises(lh.ExpressionSyntaxError, match=message):
        parse_condition(text, books)


def test_sql_errors_of_types_and_columns_keep_their_class(books: lh.Table) -> None:
    with pytest.raises(lh.ColumnNotFoundError, match=r"^where: table 'books' has no column "
                                                     r"'titel' at column 14; did you mean"):
        parse_condition("year > 1 AND titel = 'x'", books)
    with pytest.raises(lh.ColumnNotFoundError, match="no column 'mixedcase'"):
        parse_condition('"mixedcase" = 1', books)  # a quoted name is exact
    with pytest.raises(lh.TypeMismatchError, match=r"^where: cannot compare title \(String\) == "
                                                   r"1 \(Int\) at column 1$"):
        parse_condition("title = 1 AND year > 1", books)
    with pytest.raises(lh.TypeMismatchError, match=r"'yesterday' is not an ISO date"):
        parse_condition("day > 'yesterday' AND active", books)
    with pytest.raises(lh.TypeMismatchError, match=r"^where: the condition 'CAST\(year AS INT\) "
                                                   r"\+ 1' is Int, not Bool; compare it, like "
                                                   r"CAST\(year AS INT\) \+ 1 = \.\.\.$"):
        parse_condition("CAST(year AS INT) + 1", books)


@pytest.mark.parametrize(("text", "message", "line", "column"), [
    ("a >", "expected a value after '>'", 1, 4),
    ("year > 1950 AND", "expected a value after 'AND'", 1, 16),
    ("title = 'x' AND pages <", "expected a value after '<'", 1, 24),
    ("year > 1 AND\n  pages < ", "expected a value after '<'", 2, 10),
    ("year > AND pages < 1", "expected a value, got 'AND'", 1, 8),
    ("(year > 1 AND active", "'(' was never closed", 1, 1),
    ("title = 'x' AND year IN (1, 2", "'(' was never closed", 1, 25),
    ("year = 1 AND )", "expected a value, got ')'", 1, 14),
])
def test_a_text_neither_syntax_reads_points_where_the_reading_stopped(
        books: lh.Table, text: str, message: str, line: int, column: int) -> None:
    with pytest.raises(lh.ExpressionSyntaxError) as info:
        parse_condition(text, books)
    where = f"line {line}, column {column}" if line > 1 else f"column {column}"
    assert str(info.value) == f"where: {message} at {where}; {ACCEPTED}"
    assert (info.value.line, info.value.column) == (line, column)


def test_long_sql_is_read_flat_and_deep_sql_is_refused(books: lh.Table) -> None:
    text = " OR ".join(f"year = {y}" for y in range(1900, 2100))
    assert _ids(books, parse_condition(text, books)) == [1, 2, 3, 4, 6]
    with pytest.raises(lh.ExpressionSyntaxError, match="nested"):
        parse_condition("(" * 150 + "year = 1" + ")" * 150 + " AND active = TRUE", books)


def test_nothing_in_sql_text_runs(books: lh.Table, tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    for text in (f"year = 1; COPY books TO '{marker}'", f"read_text('{marker}') = 'x' AND TRUE",
                 f"year IN (SELECT * FROM read_csv('{marker}'))"):
        with pytest.raises(lh.ExpressionSyntaxError):
            parse_condition(text, books)
    assert not marker.exists()
    code = "x'); DROP TABLE books; --"
    condition = parse_condition("title = '" + code.replace("'", "''") + "' AND TRUE", books)
    assert repr(condition) == repr((books.title == code) & True)
    assert _ids(books, condition) == []


def test_the_sql_grammar_names_a_dialect_sqlglot_has() -> None:
    assert sql_text.DIALECT.__class__.__name__ == "DuckDB"
    assert "DuckDB dialect" in (sql_text.__doc__ or "")


# --- the command line ----------------------------------------------------------------------------


def test_query_where_in_sql_and_python_print_the_same_rows(run_cli, tmp_path: Path) -> None:
    root = str(tmp_path / "lh")
    db = lh.connect(root)
    t = db.create_table("books", {"title": lh.String, "year": lh.Int, "pages": lh.Int})
    t.insert([{"title": "Dune", "year": 1965, "pages": 412},
              {"title": "Solaris", "year": 1961, "pages": 204},
              {"title": "Neuromancer", "year": 1984, "pages": 271}], progress=False)
    pairs = [("title = 'Dune'", "title == 'Dune'"),
             ("year > 1950 AND pages < 400", "year > 1950 and pages < 400"),
             ("title like '%o%'", "title.str.like('%o%')")]
    for sql, python in pairs:
        outputs = []
        for where in (sql, python):
            proc = run_cli("query", "books", "--where", where, "--format", "json",
                           "--root", root)
            assert proc.returncode == 0, proc.stderr
            outputs.append(json.loads(proc.stdout))
        assert outputs[0] == outputs[1] and outputs[0], sql
    assert [r["title"] for r in outputs[0]] == ["Solaris", "Neuromancer"]


@pytest.mark.parametrize(("args", "message"), [
    (("--where", "a >"), "Error: --where: expected a value after '>' at column 4; write a "
                         "condition in Python"),
    (("--where", "nosuch = 1"), "Error: --where: table 'books' has no column 'nosuch'"),
    (("--where", "1=1; DROP TABLE books"), "Error: --where: cannot use ';'"),
    (("--order-by", "nosuchcol"), "Error: --order-by: table 'books' has no column 'nosuchcol'"),
    (("--select", "title, open(1)"), "Error: --select: cannot use a function call"),
])
def test_a_cli_parser_error_is_one_line_naming_the_option(
        run_cli, tmp_path: Path, args: tuple[str, ...], message: str) -> None:
    root = str(tmp_path / "lh")
    lh.connect(root).create_table("books", {"title": lh.String, "year": lh.Int})
    proc = run_cli("query", "books", *args, "--root", root)
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr.startswith(message), proc.stderr
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert lh.connect(root).get_table("books").count() == 0


# --- generated: random conditions in both syntaxes ---------------------------------------------


_names = itertools.count()
PLAIN_STRINGS = strings.filter(lambda s: "\x00" not in s)  # SQL strings cannot hold NUL
FINITE = floats.filter(lambda f: f == f and abs(f) != float("inf"))


@st.composite
def _numbers(draw: st.DrawFn, depth: int = 2) -> tuple[str, str]:
    """A numeric operand as (Python text, SQL text)."""
    kind = draw(st.sampled_from(["column", "int", "float", "op"] if depth else
                                ["column", "int", "float"]))
    if kind == "column":
        name = draw(st.sampled_from(["i", "j", "k", "f", "g"]))
        # not "i": text Python reads is Python, and there "i" is a string
        return name, draw(st.sampled_from([name, name.upper()]))
    if kind in ("int", "float"):
        value = draw(ints if kind == "int" else FINITE)
        return repr(value), repr(value)
    op = draw(st.sampled_from(["+", "-", "*", "/"]))
    (lp, ls), (rp, rs) = draw(_numbers(depth - 1)), draw(_numbers(depth - 1))
    return f"({lp}) {op} ({rp})", f"({ls}) {op} ({rs})"


def _sql_string(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _keyword(draw: st.DrawFn, word: str) -> str:
    return draw(st.sampled_from([word, word.lower()]))


@st.composite
def _atoms(draw: st.DrawFn) -> tuple[str, str]:  # noqa: PLR0911 - one branch per kind
    """A Bool condition without AND, OR, NOT, as (Python text, SQL text)."""
    kind = draw(st.sampled_from(["compare", "strings", "bool", "null", "isin", "between",
                                 "like", "is_null"]))
    compare = draw(st.sampled_from([("==", "="), ("!=", "<>"), ("!=", "!="), ("<", "<"),
                                    ("<=", "<="), (">", ">"), (">=", ">=")]))
    if kind == "compare":
        (lp, ls), (rp, rs) = draw(_numbers()), draw(_numbers())
        return f"({lp}) {compare[0]} ({rp})", f"({ls}) {compare[1]} ({rs})"
    if kind == "strings":
        value = draw(PLAIN_STRINGS)
        joined = draw(st.booleans())
        python, sql = ("s + 'x'", "s || 'x'") if joined else ("s", "s")
        return f"{python} {compare[0]} {value!r}", f"{sql} {compare[1]} {_sql_string(value)}"
    if kind == "bool":
        value = draw(st.booleans())
        return f"b {compare[0]} {value}", f"b {compare[1]} {_keyword(draw, str(value).upper())}"
    if kind == "null":
        (python, sql), op = draw(_numbers()), draw(st.sampled_from(["<", "<=", ">", ">="]))
        return f"({python}) {op} None", f"({sql}) {op} {_keyword(draw, 'NULL')}"
    if kind == "isin":
        column, values = draw(st.sampled_from([("i", ints), ("f", FINITE), ("s", PLAIN_STRINGS)]))
        chosen = draw(st.lists(st.one_of(st.none(), values), min_size=1, max_size=4))
        negate = draw(st.booleans())
        py_values = ", ".join(repr(v) for v in chosen)
        sql_values = ", ".join("NULL" if v is None else _sql_string(v) if isinstance(v, str)
                               else repr(v) for v in chosen)
        return (f"{column} {'not in' if negate else 'in'} [{py_values}]",
                f"{column} {'NOT IN' if negate else 'IN'} ({sql_values})")
    if kind == "between":
        (python, sql), low, high = draw(_numbers(1)), draw(ints), draw(ints)
        return (f"({python}) >= {low} and ({python}) <= {high}",
                f"({sql}) {_keyword(draw, 'BETWEEN')} {low} AND {high}")
    if kind == "like":
        pattern = draw(st.text(alphabet="ab%_'\\\n-*é", max_size=5))
        method = draw(st.sampled_from(["like", "ilike"]))
        return f"s.str.{method}({pattern!r})", f"s {_keyword(draw, method.upper())} " \
                                                f"{_sql_string(pattern)}"
    column = draw(st.sampled_from(["i", "f", "s", "b"]))
    negate = draw(st.booleans())
    return (f"{column} is {'not ' if negate else ''}None",
            f"{column} IS {'NOT ' if negate else ''}{_keyword(draw, 'NULL')}")


def _conditions() -> st.SearchStrategy[tuple[str, str]]:
    def combine(inner: st.SearchStrategy[tuple[str, str]]) -> st.SearchStrategy[tuple[str, str]]:
        def joined(pair: tuple[tuple[str, str], tuple[str, str], str]) -> tuple[str, str]:
            (lp, ls), (rp, rs), op = pair
            return f"({lp}) {op} ({rp})", f"({ls}) {op.upper()} ({rs})"
        return st.one_of(
            st.tuples(inner, inner, st.sampled_from(["and", "or"])).map(joined),
            inner.map(lambda p: (f"not ({p[0]})", f"NOT ({p[1]})")))
    return st.recursive(_atoms(), combine, max_leaves=4)


def _outcome(t: lh.Table, condition: lh.Expr) -> list[int] | str:
    try:
        return sorted(t.where(condition).select(t.k).collect()["k"].to_list())
    except lh.ComputeError:  # an Int overflow on some row: both forms must fail alike
        return "ComputeError"


@pytest.fixture(scope="module")
def local_db(tmp_path_factory: pytest.TempPathFactory) -> lh.Catalog:
    return lh.connect(str(tmp_path_factory.mktemp("sql-differential")))


@_settings(ci=100)
@given(rows=ROWS, data=st.data())
def test_random_conditions_in_sql_and_python_select_the_same_rows(
        local_db: lh.Catalog, rows: list[dict[str, Any]], data: st.DataObject) -> None:
    t = local_db.create_table(f"t{next(_names)}", SCHEMA)
    if rows:
        t.insert(rows, progress=False)
    python, sql = data.draw(_conditions())
    from_python, from_sql = parse_condition(python, t), parse_condition(sql, t)
    assert repr(from_sql) == repr(from_python), (python, sql)
    assert _outcome(t, from_sql) == _outcome(t, from_python), (python, sql, rows)


def _like_reference(text: str, pattern: str, escape: str | None, ignore_case: bool) -> bool:
    """SQL LIKE by dynamic programming over (text position, pattern position)."""
    tokens: list[tuple[str, str]] = []  # ("any", ""), ("one", ""), ("char", c)
    chars = iter(pattern)
    for ch in chars:
        if ch == escape:
            tokens.append(("char", next(chars, escape)))
        else:
            tokens.append({"%": ("any", ""), "_": ("one", "")}.get(ch, ("char", ch)))
    if ignore_case:
        text, tokens = text.lower(), [(kind, ch.lower()) for kind, ch in tokens]
    matches = {0}  # the text positions reachable after the tokens so far
    for kind, ch in tokens:
        if kind == "any":
            matches = set(range(min(matches), len(text) + 1)) if matches else set()
        else:
            matches = {i + 1 for i in matches
                       if i < len(text) and (kind == "one" or text[i] == ch)}
    return len(text) in matches


LIKE_TEXT = st.text(alphabet="aAbB%_!\n é", max_size=6)


@_settings(ci=100)
@given(values=st.lists(st.one_of(st.none(), LIKE_TEXT), max_size=6), pattern=LIKE_TEXT,
       escape=st.sampled_from([None, "!", "a"]), ignore_case=st.booleans())
def test_like_and_ilike_match_a_reference(local_db: lh.Catalog, values: list[str | None],
                                          pattern: str, escape: str | None,
                                          ignore_case: bool) -> None:
    t = local_db.create_table(f"like{next(_names)}", {"k": lh.Int, "s": lh.String})
    if values:
        t.insert([{"k": k, "s": v} for k, v in enumerate(values)], progress=False)
    sql = f"s {'ILIKE' if ignore_case else 'LIKE'} {_sql_string(pattern)}" + \
        (f" ESCAPE '{escape}'" if escape else "")
    found = sorted(t.where(parse_condition(sql, t)).select(t.k).collect()["k"].to_list())
    expected = [k for k, v in enumerate(values)
                if v is not None and _like_reference(v, pattern, escape, ignore_case)]
    assert found == expected, (sql, values)

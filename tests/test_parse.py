"""Where and select strings: parsed by Python's parser, translated node by node into the expression
API, never evaluated. Every accepted form gives the same expression (and rows) as the API call it
stands for; every refused form raises ExpressionSyntaxError naming the part and its column.

Local tables only: parsing reads the table's columns, nothing else of the backend.
"""

from __future__ import annotations

import ast
import datetime as dt
import inspect
from collections.abc import Callable
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from PIL import Image

import lakehouse as lh
from lakehouse.exprs import parse as parse_module
from lakehouse.exprs.nodes import Similarity
from lakehouse.exprs.parse import (
    MAX_DEPTH,
    MAX_LENGTH,
    parse_condition,
    parse_expression,
    parse_selection,
)

UTC = dt.UTC
SCHEMA = {"id": lh.Int, "title": lh.String, "year": lh.Int, "price": lh.Float, "pages": lh.Int,
          "active": lh.Bool, "meta": lh.Json, "day": lh.Date, "joined": lh.Timestamp}
ROWS = [
    (1, "A Cat's Tale", 1999, 10.0, 100, True, {"a": {"b": 1}, "tags": ["x", "y"]}),
    (2, "dogs, and more", 2005, 25.5, 300, False, {"a": {"b": 2}, "tags": []}),
    (3, "Été à Paris", 2010, None, 250, None, {"tags": ["z"]}),
    (4, None, None, 5.0, 50, True, None),
    (5, "  padded  ", 1987, 12.0, None, False, {"a": {"b": 3}}),
    (6, "cat nap", 2021, 8.25, 120, True, {"a": {"b": 1}, "tags": ["x"]}),
]


@pytest.fixture(scope="module")
def books(tmp_path_factory: pytest.TempPathFactory) -> lh.Table:
    db = lh.connect(str(tmp_path_factory.mktemp("parse") / "lh"))
    t = db.create_table("books", SCHEMA)
    t.insert([{"id": i, "title": title, "year": year, "price": price, "pages": pages,
               "active": active, "meta": meta, "day": dt.date(2024, 1, i),
               "joined": dt.datetime(2024, 1, i, 12, tzinfo=UTC)}
              for i, title, year, price, pages, active, meta in ROWS], progress=False)
    return t


@pytest.fixture(scope="module")
def pics(tmp_path_factory: pytest.TempPathFactory) -> lh.Table:
    folder = tmp_path_factory.mktemp("pics")
    db = lh.connect(str(folder / "lh"))
    t = db.create_table("pics", {"id": lh.Int, "image": lh.Image})
    rows = []
    for i, (w, h) in enumerate([(16, 8), (32, 32), (8, 24)], start=1):
        path = folder / f"p{i}.png"
        Image.fromarray(np.full((h, w, 3), 40 * i, dtype=np.uint8)).save(path)
        rows.append({"id": i, "image": str(path)})
    t.insert(rows, progress=False)
    return t


def _ids(t: lh.Table, condition: lh.Expr) -> list[int]:
    return sorted(t.where(condition).select(t.id).collect()["id"].to_list())


def _select(t: lh.Table, selection: list[tuple[str | None, lh.Expr]]) -> pl.DataFrame:
    return t.select(*[e for n, e in selection if n is None],
                    **{n: e for n, e in selection if n is not None}).order_by(t.id).collect()


# --- accepted forms: the same expression and rows as the API -------------------------------------

Api = Callable[[lh.Table], lh.Expr]
# (text, the API expression it stands for, whether the two print the same)
CONDITIONS: list[tuple[str, Api, bool]] = [
    # comparisons, each operator, constants on either side, chains
    ("year == 1999", lambda t: t.year == 1999, True),
    ("year != 1999", lambda t: t.year != 1999, True),
    ("year < 2005", lambda t: t.year < 2005, True),
    ("year <= 2005", lambda t: t.year <= 2005, True),
    ("year > 2005", lambda t: t.year > 2005, True),
    ("year >= 2005", lambda t: t.year >= 2005, True),
    ("2005 < year", lambda t: t.year > 2005, False),
    ("1990 <= year < 2010", lambda t: (t.year >= 1990) & (t.year < 2010), False),
    ("1990 <= year < 2010 != year", lambda t: (t.year >= 1990) & (t.year < 2010), False),
    ("price > -1.5", lambda t: t.price > -1.5, True),
    ("price >= 8.25", lambda t: t.price >= 8.25, True),
    ("title == 'A Cat\\'s Tale'", lambda t: t.title == "A Cat's Tale", True),
    ('title == "Été à Paris"', lambda t: t.title == "Été à Paris", True),
    ("active == True", lambda t: t.active == True, True),  # noqa: E712
    ("active", lambda t: t.active, True),
    ("price < pages", lambda t: t.price < t.pages, True),
    # membership
    ("year in [1999, 2021]", lambda t: t.year.isin([1999, 2021]), True),
    ("year in (1999,)", lambda t: t.year.isin([1999]), True),
    ("year in {2005}", lambda t: t.year.isin([2005]), True),
    ("year not in [1999, 2021]", lambda t: ~t.year.isin([1999, 2021]), True),
    ("title in ['cat nap', \"dogs, and more\"]",
     lambda t: t.title.isin(["cat nap", "dogs, and more"]), True),
    ("price in [-1, 5.0]", lambda t: t.price.isin([-1, 5.0]), True),
    ("year in []", lambda t: t.year.isin([]), True),
    # nulls
    ("title is None", lambda t: t.title.is_null(), True),
    ("title is not None", lambda t: t.title.is_not_null(), True),
    ("price == None", lambda t: t.price == None, True),  # noqa: E711
    ("None != price", lambda t: t.price != None, True),  # noqa: E711
    ("active.is_null()", lambda t: t.active.is_null(), True),
    ("pages.is_not_null()", lambda t: t.pages.is_not_null(), True),
    # logic, both spellings, and parentheses
    ("year > 2000 and price < 20", lambda t: (t.year > 2000) & (t.price < 20), True),
    ("year > 2000 or price < 6", lambda t: (t.year > 2000) | (t.price < 6), True),
    ("not year > 2000", lambda t: ~(t.year > 2000), True),
    ("not (year > 2000 or active)", lambda t: ~((t.year > 2000) | t.active), True),
    ("(year > 2000) & (price < 20)", lambda t: (t.year > 2000) & (t.price < 20), True),
    ("(year > 2000) | ~active", lambda t: (t.year > 2000) | ~t.active, True),
    ("year > 1 and year > 2 and year > 3",
     lambda t: (t.year > 1) & (t.year > 2) & (t.year > 3), True),
    ("active and (year < 2000 or year > 2020)",
     lambda t: t.active & ((t.year < 2000) | (t.year > 2020)), True),
    # arithmetic
    ("price / pages > 0.05", lambda t: t.price / t.pages > 0.05, True),
    ("year // 10 == 199", lambda t: t.year // 10 == 199, True),
    ("year % 2 == 1", lambda t: t.year % 2 == 1, True),
    ("-price < -9", lambda t: -t.price < -9, True),
    ("year + 1 - 1 == year", lambda t: t.year + 1 - 1 == t.year, True),
    ("price * 2 >= 20", lambda t: t.price * 2 >= 20, True),
    ("2 * price >= 20", lambda t: 2 * t.price >= 20, True),
    ("+price > 9", lambda t: t.price > 9, True),
    ("title + '!' == 'cat nap!'", lambda t: t.title + "!" == "cat nap!", True),
    # Json paths
    ('meta["a"]["b"] == "1"', lambda t: t.meta["a"]["b"] == "1", True),
    ("meta['tags'][0] == 'x'", lambda t: t.meta["tags"][0] == "x", True),
    ('meta["a"]["b"].astype("int") > 1', lambda t: t.meta["a"]["b"].astype(lh.Int) > 1, True),
    # methods
    ('title.str.contains("cat")', lambda t: t.title.str.contains("cat"), True),
    ('title.str.upper() == "CAT NAP"', lambda t: t.title.str.upper() == "CAT NAP", True),
    ('title.str.lower().str.startswith("a")',
     lambda t: t.title.str.lower().str.startswith("a"), True),
    ('title.str.strip() == "padded"', lambda t: t.title.str.strip() == "padded", True),
    ("title.str.len() > 10", lambda t: t.title.str.len() > 10, True),
    ('title.str.endswith("nap")', lambda t: t.title.str.endswith("nap"), True),
    ('title.str.replace("cat", "dog") == "dog nap"',
     lambda t: t.title.str.replace("cat", "dog") == "dog nap", True),
    ('title.str.slice(0, 3) == "dog"', lambda t: t.title.str.slice(0, 3) == "dog", True),
    ("year.isin([1987, 2005])", lambda t: t.year.isin([1987, 2005]), True),
    ('year.astype("float") > 2000.5', lambda t: t.year.astype(lh.Float) > 2000.5, True),
    ("year.astype(float) > 2000.5", lambda t: t.year.astype(lh.Float) > 2000.5, True),
    ("year.astype(lh.String) == '1999'", lambda t: t.year.astype(lh.String) == "1999", True),
    ("year.astype(str) == '1999'", lambda t: t.year.astype(lh.String) == "1999", True),
    # dates and times from ISO strings
    ('day >= "2024-01-04"', lambda t: t.day >= dt.date(2024, 1, 4), True),
    ('"2024-01-04" < day', lambda t: t.day > dt.date(2024, 1, 4), False),
    ('day in ["2024-01-01", "2024-01-06"]',
     lambda t: t.day.isin([dt.date(2024, 1, 1), dt.date(2024, 1, 6)]), True),
    ('day.isin(["2024-01-02"])', lambda t: t.day.isin([dt.date(2024, 1, 2)]), True),
    ('joined < "2024-01-03T12:00:00+00:00"',
     lambda t: t.joined < dt.datetime(2024, 1, 3, 12, tzinfo=UTC), True),
    ('joined > "2024-01-04 13:00"', lambda t: t.joined > dt.datetime(2024, 1, 4, 13), True),
    # conditional values
    ('("cheap" if price < 10 else "dear") == "cheap"',
     lambda t: lh.if_else(t.price < 10, "cheap", "dear") == "cheap", True),
    # a multi-line condition inside parentheses
    ("(year > 2000\n and active)", lambda t: (t.year > 2000) & t.active, True),
]


@pytest.mark.parametrize(("text", "api", "same_repr"), CONDITIONS,
                         ids=[c[0] for c in CONDITIONS])
def test_a_condition_selects_the_rows_of_its_api_expression(
        books: lh.Table, text: str, api: Api, same_repr: bool) -> None:
    parsed = parse_condition(text, books)
    expected = api(books)
    if same_repr:
        assert repr(parsed) == repr(expected)
    assert _ids(books, parsed) == _ids(books, expected)
    assert parsed.type == lh.Bool


def test_the_conditions_cover_rows_both_ways(books: lh.Table) -> None:
    """Each condition of the table above keeps some rows and drops others, except a few chosen
    to match nothing; so equal results are evidence, not two empty lists."""
    everything = set(range(1, 7))
    vacuous = {"year in []", '("cheap" if price < 10 else "dear") == "cheap"',
               'title.str.slice(0, 3) == "dog"', "year.astype(str) == '1999'"}
    for text, _, _ in CONDITIONS:
        found = set(_ids(books, parse_condition(text, books)))
        if text not in vacuous:
            assert found and found != everything, text


def test_long_and_or_chains_are_balanced_and_keep_their_meaning(books: lh.Table) -> None:
    text = " or ".join(f"year == {y}" for y in range(1900, 2100))
    parsed = parse_condition(text, books)
    assert _ids(books, parsed) == [1, 2, 3, 5, 6]
    depth = max(_depth(parsed), 0)
    assert depth < 20  # 200 terms, not 200 levels


def _depth(e: lh.Expr) -> int:
    return 1 + max((_depth(c) for c in e.children()), default=0)


def test_an_expression_need_not_be_bool(books: lh.Table) -> None:
    per_page = parse_expression("price / pages", books)
    assert repr(per_page) == repr(books.price / books.pages)
    frame = books.select(books.id, v=per_page).order_by(books.id).collect()
    expected = books.select(books.id, v=books.price / books.pages).order_by(books.id).collect()
    assert frame.equals(expected)
    assert repr(parse_expression("'text'", books)) == "'text'"
    assert repr(parse_expression("-3", books)) == "-3"
    assert repr(parse_expression("None", books)) == "None"
    assert repr(parse_expression("  year  ", books)) == "year"
    assert repr(parse_expression("year if active else -year", books)) == \
        repr(lh.if_else(books.active, books.year, -books.year))


def test_a_condition_must_be_bool(books: lh.Table) -> None:
    with pytest.raises(lh.TypeMismatchError, match=r"^where: the condition 'year \+ 1' is Int, "
                                                    r"not Bool"):
        parse_condition("year + 1", books)


def test_a_selection_gives_the_frame_of_its_select_call(books: lh.Table) -> None:
    selection = parse_selection("title, year, per_page=price / pages", books)
    assert [n for n, _ in selection] == [None, None, "per_page"]
    assert [repr(e) for _, e in selection] == ["title", "year", "(price / pages)"]
    expected = books.select(books.title, books.year, per_page=books.price / books.pages) \
        .order_by(books.id).collect()
    assert _select(books, selection).equals(expected)


def test_selection_items_keep_their_order_and_names(books: lh.Table) -> None:
    selection = parse_selection(
        'n = year + 1, title.str.upper(), "a, b", tag=meta["tags"][0], meta["a"]["b"],'
        " cheap=price < 10, id", books)
    assert [n for n, _ in selection] == ["n", None, None, "tag", None, "cheap", None]
    assert [repr(e) for _, e in selection] == [
        "(year + 1)", "str.upper(title)", "'a, b'", "meta['tags'][0]", "meta['a']['b']",
        "(price < 10)", "id"]
    frame = _select(books, selection)
    assert frame["tag"].to_list() == ["x", None, "z", None, None, "x"]
    assert frame["upper"].to_list()[:2] == ["A CAT'S TALE", "DOGS, AND MORE"]


def test_a_star_selects_every_column(books: lh.Table) -> None:
    everything = parse_selection("*", books)
    assert [repr(e) for _, e in everything] == books.columns()
    assert _select(books, everything).equals(books.order_by(books.id).collect())
    more = parse_selection(" * , twice=year * 2", books)
    assert [n for n, _ in more] == [None] * len(books.columns()) + ["twice"]


def test_a_selection_may_span_lines_and_carry_comments(books: lh.Table) -> None:
    selection = parse_selection("title,  # the name\n  n=(year\n  + 1)", books)
    assert [(n, repr(e)) for n, e in selection] == [(None, "title"), ("n", "(year + 1)")]


def test_media_properties_and_methods(pics: lh.Table) -> None:
    selection = parse_selection(
        "image.width, h=image.height, image.mode, url=image.fileurl,"
        " small=image.resize((4, 2)).width, turned=image.rotate(90).height", pics)
    api = pics.select(pics.image.width, h=pics.image.height, mode=pics.image.mode,
                      url=pics.image.fileurl, small=pics.image.resize((4, 2)).width,
                      turned=pics.image.rotate(90).height).order_by(pics.id).collect()
    frame = _select(pics, selection).select(api.columns)  # select() puts named outputs last
    assert frame.equals(api)
    assert frame["width"].to_list() == [16, 32, 8]
    assert frame["small"].to_list() == [4, 4, 4]
    assert _ids(pics, parse_condition("image.width > image.height", pics)) == [1]
    assert _ids(pics, parse_condition('image.fileurl.str.endswith("p2.png")', pics)) == [2]


def test_errors_of_computed_columns_are_attributes(books: lh.Table) -> None:
    assert repr(parse_expression("title.errortype", books)) == repr(books.title.errortype)
    assert repr(parse_expression("title.errormsg", books)) == repr(books.title.errormsg)


def test_similarity_is_parsed_into_the_api_node(books: lh.Table) -> None:
    [(name, sim)] = parse_selection(
        'score=title.similarity("a cat", index="captions", nprobes=4, refine_factor=2)', books)
    assert name == "score"
    assert isinstance(sim, Similarity)
    api = books.title.similarity("a cat", index="captions", nprobes=4, refine_factor=2)
    assert (sim.column.name, sim.query, sim.index, sim.nprobes, sim.refine_factor) == \
        (api.column.name, api.query, api.index, api.nprobes, api.refine_factor)
    assert isinstance(parse_expression('title.similarity("x")', books, allow_similarity=True),
                      Similarity)


@pytest.mark.slow
def test_a_parsed_similarity_scores_like_the_api(tmp_path: Path) -> None:
    from lakehouse.samples import shapes

    db = lh.connect(str(tmp_path / "lh"))
    t = db.create_table("shapes", {"id": lh.Int, "image": lh.Image})
    scenes = list(shapes.samples(4, seed=424242))
    t.insert([{"id": i, "image": img} for i, (img, _) in enumerate(scenes)], progress=False)
    t.add_embedding_index("image", embedding=lh.functions.clip(lh.functions.SHAPES_CLIP),
                          progress=False)
    caption = scenes[2][1].caption
    parsed = _select(t, parse_selection(f'id, score=image.similarity("{caption}")', t))
    api = t.select(t.id, score=t.image.similarity(caption)).order_by(t.id).collect()
    assert parsed.equals(api)
    assert parsed.sort("score", descending=True)["id"][0] == 2


# --- refusals ------------------------------------------------------------------------------------

# (text, the start of the message after "where: ", its column)
REFUSED: list[tuple[str, str, int]] = [
    ("open('f')", "cannot use a function call 'open(...)'", 1),
    ("__import__('os').system('x')", "cannot use a function call '__import__(...)'", 1),
    ("year > 1 and __import__('os').system('x')",
     "cannot use a function call '__import__(...)'", 14),
    ("().__class__", "cannot use a private attribute '().__class__'", 1),
    ("title.__class__", "cannot use a private attribute 'title.__class__'", 1),
    ("title.__class__.__mro__[1].__subclasses__()", "cannot use a private attribute", 1),
    ("title._expr", "cannot use a private attribute 'title._expr'", 1),
    ("__builtins__", "cannot use a private name '__builtins__'", 1),
    ("year == _x", "cannot use a private name '_x'", 9),
    ("getattr(title, 'upper')", "cannot use a function call 'getattr(...)'", 1),
    ("eval('1')", "cannot use a function call 'eval(...)'", 1),
    ("title.str.upper.__call__()", "cannot use a private attribute", 1),
    ("[x for x in y]", "cannot use a comprehension '[x for x in y]'", 1),
    ("year in {x for x in y}", "cannot use a comprehension", 9),
    ("any(x for x in y)", "cannot use a function call 'any(...)'", 1),
    ("lambda: 1", "cannot use a lambda 'lambda: 1'", 1),
    ("(lambda: open('f'))()", "cannot use a function call '(lambda: open('f'))()'", 1),
    ('f"{title}" == "x"', "cannot use an f-string", 1),
    ("(x := 1)", "cannot use an assignment expression (:=) 'x := 1'", 2),
    ("title.str.contains(*x)", "cannot use a starred expression '*x'", 20),
    ("title.str.contains(**x)", "cannot use a ** argument '**x'", 20),
    ("{'a': 1}", "cannot use a dict", 1),
    ("meta[0:2]", "cannot use a slice '0:2'", 6),
    ("year ** 2 > 1", "cannot use the operator '**'", 1),
    ("year << 2 > 1", "cannot use the operator '<<'", 1),
    ("year ^ 2 > 1", "cannot use the operator '^'", 1),
    ("b'x' == title", "cannot use a bytes literal", 1),
    ("1j == year", "cannot use a complex number", 1),
    ("... == year", "cannot use this literal '...'", 1),
    ("await title", "cannot use await", 1),
    ("title, year", "cannot use a tuple 'title, year'", 1),
    ("[year] == 1", "cannot use a list '[year]'", 1),
    ("year is 1", "'is' and 'is not' only compare with None", 1),
    ("year in year", "'in' needs a list, tuple or set of literal values", 9),
    ("year in [pages]", "expected a literal value", 10),
    ("year.isin(1999)", "isin() takes one list of literal values", 1),
    ("meta[title] == 'x'", "a JSON path key must be a string or an integer", 6),
    ("meta[True] == 'x'", "a JSON path key must be a string or an integer", 6),
    ("title.upper() == 'A'", "title (String) has no method 'upper'", 1),
    ("title.str.shout() == 'A'", "'str.shout' is not a string method", 1),
    ("title.str == 'A'", "'str' is a method: call it", 1),
    ("year.is_null", "'is_null' is a method: call it", 1),
    ("title.width > 1", "title (String) has no attribute 'width'", 1),
    ("title.str.contains(pages)", "expected a literal value", 20),
    ("year.astype(1) > 1", "astype() takes a type name", 13),
    ("+title == 'x'", "unary '+' needs a number", 1),
    ('title.similarity("cat") > 0', "similarity() is only allowed in a selection", 1),
]


@pytest.mark.parametrize(("text", "message", "column"), REFUSED, ids=[r[0] for r in REFUSED])
def test_what_the_grammar_does_not_allow_is_refused_with_its_column(
        books: lh.Table, text: str, message: str, column: int) -> None:
    with pytest.raises(lh.ExpressionSyntaxError) as info:
        parse_condition(text, books)
    assert str(info.value).startswith(f"where: {message}"), str(info.value)
    assert f"at column {column}" in str(info.value)
    assert info.value.column == column
    assert info.value.line == 1
    assert info.value.text == text


def test_the_error_is_a_lakehouse_error_and_a_value_error(books: lh.Table) -> None:
    with pytest.raises(ValueError, match=r"^where: cannot use a function call 'open\(\.\.\.\)' "
                                         r"at column 1; only methods of columns can be called"):
        parse_condition("open('/etc/passwd')", books)
    assert issubclass(lh.ExpressionSyntaxError, lh.Error)
    assert issubclass(lh.ExpressionSyntaxError, ValueError)


# text neither Python nor SQL can read: the error of the reader that got further (SQL's where
# the text uses something only SQL has), and the syntaxes a condition may be written in
@pytest.mark.parametrize(("text", "message", "column"), [
    ("year ==", "expected a value after '=='", 8),
    ("a >", "expected a value after '>'", 4),
    ("a > AND b", "expected a value, got 'AND'", 5),
    ("(year > 1", "'(' was never closed", 1),
    ("year > 1)", "unmatched ')'", 9),
    ('"é" == (', "expected a value after '('", 9),
    ("title == 'x", "unterminated string literal (detected at line 1)", 10),
    ("year >> > 1", "invalid syntax", 9),
    ("x\x00", "cannot use a NUL character", 2),
    ("$(rm -rf ~)", "invalid syntax", 1),
    ("year > 1; import os", "cannot use ';' (one condition, not statements)", 9),
])
def test_a_syntax_error_has_its_position_and_the_accepted_syntaxes(
        books: lh.Table, text: str, message: str, column: int) -> None:
    with pytest.raises(lh.ExpressionSyntaxError) as info:
        parse_condition(text, books)
    assert str(info.value) == (f"where: {message} at column {column}; write a condition in "
                               "Python (year > 1950 and title == 'x') or in SQL (year > 1950 "
                               "AND title = 'x')")
    assert info.value.column == column


def test_a_selection_is_python_only(books: lh.Table) -> None:
    with pytest.raises(lh.ExpressionSyntaxError, match=r"^select: invalid syntax at column 7$"):
        parse_selection("title AS name", books)


def test_positions_count_characters_and_lines(books: lh.Table) -> None:
    with pytest.raises(lh.ExpressionSyntaxError, match=r"'open\(\.\.\.\)' at column 19"):
        parse_condition("title == 'ééé' or open(1)", books)
    with pytest.raises(lh.ExpressionSyntaxError) as info:
        parse_condition("(year > 1\n and open(1))", books)
    assert "at line 2, column 6" in str(info.value)
    assert (info.value.line, info.value.column) == (2, 6)
    with pytest.raises(lh.ExpressionSyntaxError, match="after 'and' at line 2, column 4"):
        parse_condition("year > 1\nand", books)  # Python: newlines only inside brackets; SQL


def test_the_label_starts_the_message(books: lh.Table) -> None:
    with pytest.raises(lh.ExpressionSyntaxError, match=r"^order by: cannot use a lambda"):
        parse_expression("lambda: 1", books, label="order by")
    with pytest.raises(lh.ExpressionSyntaxError, match=r"^expression: cannot use a lambda"):
        parse_expression("lambda: 1", books)
    with pytest.raises(lh.ExpressionSyntaxError, match=r"^expression: similarity\(\) is only"):
        parse_expression("title.similarity('x')", books)


def test_an_unknown_column_names_the_columns(books: lh.Table) -> None:
    with pytest.raises(lh.ColumnNotFoundError) as info:
        parse_condition("titel == 'x'", books)
    message = str(info.value)
    assert message == ("where: table 'books' has no column 'titel' at column 1; did you mean "
                       "'title'? (columns: id, title, year, price, pages, active, meta, day, "
                       "joined)")
    assert isinstance(info.value, KeyError)
    with pytest.raises(lh.ColumnNotFoundError, match=r"no column 'zzz' at column 8 \(columns"):
        parse_selection("title, zzz", books)
    with pytest.raises(lh.ColumnNotFoundError, match="no column 'float'"):
        parse_condition("year == float", books)  # a type name is a column outside astype()


@pytest.mark.parametrize(("text", "message"), [
    ("title > 1", r"^where: cannot compare title \(String\) > 1 \(Int\) at column 1$"),
    ("year + 'a' == 1", r"^where: cannot apply '\+' to year \(Int\) and 'a' \(String\) at "
                        r"column 1$"),
    ("not year", r"^where: ~ needs a Bool expression, got year \(Int\) at column 1$"),
    ("active and year", r"^where: '&' needs two Bool expressions.* at column 1$"),
    ("year > 1 and -title == 'x'", r"^where: cannot negate title \(String\) at column 14$"),
    ("year.str.upper() == 'X'", r"^where: \.str needs a String expression"),
    ("title.str.contains() ", r"^where: title\.str\.contains\(\): missing a required argument: "
                              r"'sub' at column 1$"),
    ("year.is_null(1)", r"^where: year\.is_null\(\): too many positional arguments"),
    ("year.astype('nope') == 1", r"^where: column 'year': 'nope' is not a column type"),
    ("day > 'yesterday'", r"^where: 'yesterday' is not an ISO date like '2024-01-31' \(compared "
                          r"with day, Date\) at column 7$"),
    ("joined in ['noon']", r"^where: 'noon' is not an ISO time"),
    ("meta['a'] > 1", r"^where: cannot compare"),
    ("year['a'] == 1", r"^where: year is Int, not Json"),
    ("title if active else 1", r"^where: if_else\(\) branches have different types"),
])
def test_type_errors_keep_their_class_and_gain_a_position(
        books: lh.Table, text: str, message: str) -> None:
    with pytest.raises(lh.TypeMismatchError, match=message):
        parse_condition(text, books)


def test_option_errors_keep_their_class_and_gain_a_position(books: lh.Table) -> None:
    with pytest.raises(lh.InvalidOptionError,
                       match=r"^select: nprobes must be a positive integer, got 0 at column 8$"):
        parse_selection('title, title.similarity("x", nprobes=0)', books)


def test_selection_errors_point_into_the_whole_text(books: lh.Table) -> None:
    cases = {
        "title, x=open(1)": "cannot use a function call 'open(...)' at column 10",
        "title, (year": "'(' was never closed at column 8",
        "title, year)": "unmatched ')' at column 12",
        "a, , b": "an empty item in the selection (two commas, or one at the end) at column 4",
        "title,": "an empty item in the selection (two commas, or one at the end) at column 7",
        "title, _x=1": "output name '_x' may not start with '_' at column 8",
        "title, n=": "invalid syntax at column 10",
        "title, n=year=1": "invalid syntax at column 14",
        'title.similarity(1)': "similarity() takes one string",
        'title.similarity("x", nprobes="many")': "similarity() option nprobes='many'",
        'title.similarity("x", metric="l2")': "similarity() option metric='l2'",
        'title.str.upper().similarity("x")': "str.upper(title) (String) has no method "
                                             "'similarity'",
        "title, 'unterminated": "unterminated string literal (detected at line 1) at column 8",
    }
    for text, message in cases.items():
        with pytest.raises(lh.Error) as info:
            parse_selection(text, books)
        assert str(info.value).startswith("select: "), text
        assert message in str(info.value), (text, str(info.value))


def test_every_item_of_a_selection_is_checked_before_any_is_translated(books: lh.Table) -> None:
    with pytest.raises(lh.ExpressionSyntaxError, match="'open\\(...\\)' at column 15"):
        parse_selection("nosuchcolumn, open('f')", books)


def test_empty_text_and_non_strings(books: lh.Table) -> None:
    for text in ("", "   ", "\n"):
        with pytest.raises(lh.ExpressionSyntaxError, match="the text is empty"):
            parse_condition(text, books)
        with pytest.raises(lh.ExpressionSyntaxError, match="the text is empty"):
            parse_selection(text, books)
    with pytest.raises(lh.TypeMismatchError, match="where: expected a string, got 3"):
        parse_condition(3, books)  # type: ignore[arg-type]


def test_long_and_deep_input_is_refused_quickly(books: lh.Table) -> None:
    with pytest.raises(lh.ExpressionSyntaxError, match=f"limit is {MAX_LENGTH:,}"):
        parse_condition("year == 1 or " * 1000 + "active", books)
    with pytest.raises(lh.ExpressionSyntaxError, match=f"limit is {MAX_LENGTH:,}"):
        parse_selection("title, " * 2000, books)
    deep = [
        "-" * 5000 + "year > 1",
        "+".join(["year"] * 1900) + " > 1",
        "not " * 1500 + "active",
        "meta" + "[0]" * 2000 + " == 'x'",
        "(" * 300 + "active" + ")" * 300,
        "year in " + "[" * 300 + "]" * 300,
    ]
    for text in deep:
        with pytest.raises(lh.ExpressionSyntaxError, match="nested|too many nested"):
            parse_condition(text, books)
    # within the limits, long flat input is fine
    text = "year in [" + ", ".join(str(i) for i in range(1500)) + "]"
    assert _ids(books, parse_condition(text, books)) == []
    nested = "(" * (MAX_DEPTH // 2 - 2) + "active" + ")" * (MAX_DEPTH // 2 - 2)
    assert repr(parse_condition(nested, books)) == "active"


# --- nothing is evaluated ------------------------------------------------------------------------


def test_nothing_in_the_text_runs(books: lh.Table, tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    attempts = [
        f"open({str(marker)!r}, 'w')",
        f"__import__('os').system('touch {marker}')",
        f"__import__('pathlib').Path({str(marker)!r}).touch()",
        f"title.str.contains(open({str(marker)!r}, 'w'))",
        f"year in [open({str(marker)!r}, 'w')]",
        f"[open({str(marker)!r}, 'w') for _ in 'a']",
        f"(lambda: open({str(marker)!r}, 'w'))()",
        f"().__class__.__base__.__subclasses__()[0]({str(marker)!r})",
        f"meta[open({str(marker)!r}, 'w')]",
        f"title.similarity(open({str(marker)!r}, 'w'))",
    ]
    for text in attempts:
        for parse in (parse_condition, parse_selection):
            with pytest.raises(lh.ExpressionSyntaxError):
                parse(text, books)
    assert not marker.exists()
    # code inside a string literal is only a value to compare with
    code = f"__import__('os').system('touch {marker}')"
    condition = parse_condition(f"title == {code!r}", books)
    assert repr(condition) == repr(books.title == code)
    assert _ids(books, condition) == []
    selection = parse_selection(f"x={code!r}, title.str.contains({code!r})", books)
    assert _select(books, selection)["x"].to_list() == [code] * len(ROWS)
    assert not marker.exists()


def test_the_module_never_calls_eval_exec_or_compile() -> None:
    tree = ast.parse(inspect.getsource(parse_module))
    called = {node.func.id for node in ast.walk(tree)
              if isinstance(node, ast.Call) and isinstance(node.func, ast.Name)}
    assert not called & {"eval", "exec", "compile", "__import__", "breakpoint"}


def test_the_grammar_in_the_docstring_runs(docstring_examples: Callable) -> None:
    result = docstring_examples(parse_module)
    assert result.attempted >= 4 and result.failed == 0, result.report


def test_the_parsers_are_public() -> None:
    assert lh.parse_condition is parse_condition
    assert lh.parse_selection is parse_selection
    assert lh.parse_expression is parse_expression
    assert {"parse_condition", "parse_selection", "parse_expression",
            "ExpressionSyntaxError"} <= set(lh.__all__)

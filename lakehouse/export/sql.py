"""SQL over the lakehouse's tables: ``db.sql("SELECT ... FROM films JOIN ratings ON ...")``.

Polars runs the statement (its ``SQLContext``) over lazy scans of the tables it names, so
filters and column choices reach the Lance scans and nothing new is installed (DuckDB would
add a dependency and a second copy of every batch between engines). The rules:

- **Only reads of tables.** The statement is parsed with sqlglot first and refused
  (:class:`~lakehouse.SQLRefusedError`) unless it is one query (``SELECT``, ``WITH``,
  ``UNION``...) whose ``FROM`` and ``JOIN`` items are table names: no table functions
  (``read_parquet('/etc/passwd')``, ``read_csv``...), no ``COPY``, ``CREATE`` or other
  statements, no second statement after ``;``. Only the tables it names are registered, each
  as a scan of its version current now; Polars sees no other frame and no file.
- **Names.** A table in a directory (``ml/images``) or at a version (``films:3``,
  ``films@prod``) is written in double quotes: ``SELECT * FROM "ml/images"``. A dotted name
  (``ml.images``) is refused with that hint.
- **Media.** Media columns are left out by default (``media="exclude"``), as
  :meth:`~lakehouse.Table.scan` does; ``media="bytes"`` keeps them as binary columns (read
  only for the rows and columns the statement needs).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import TYPE_CHECKING

import polars as pl
import sqlglot
from polars.io.plugins import register_io_source
from sqlglot import exp

from lakehouse.errors import ExpressionSyntaxError, SQLRefusedError, TypeMismatchError, check_choice
from lakehouse.exec.scan import scan_frames

if TYPE_CHECKING:
    from lakehouse.catalog import Catalog
    from lakehouse.table import Table

MEDIA = ("exclude", "bytes")
DIALECT = "duckdb"  # the SQL Polars reads is closest to DuckDB's (and PostgreSQL's)
# a call of a table function that reads files, however the parser in between spells it
_FILE_FUNCTION = re.compile(r"\b(read|scan)_\w*\s*[\"'`\]]?\s*(/\*.*?\*/\s*)*\(",
                            re.IGNORECASE | re.DOTALL)


def run(catalog: Catalog, statement: str, *, media: str = "exclude") -> pl.DataFrame:
    """The result of one SQL query over the catalog's tables, as a Polars DataFrame.

    >>> _ = db.create_table("ratings", {"title": lh.String, "votes": lh.Int})
    >>> _ = db.get_table("ratings").insert([{"title": "Heat", "votes": 5}], progress=False)
    >>> run(db, "SELECT f.title, r.votes FROM films f JOIN ratings r ON f.title = r.title").rows()
    [('Heat', 5)]
    """
    check_choice("media", media, MEDIA)
    names = table_names(statement)
    frames = {name: _frame(catalog.get_table(name), media) for name in names}
    context = pl.SQLContext(frames=frames, register_globals=False)
    try:
        return context.execute(statement, eager=False).collect()
    except pl.exceptions.PolarsError as exc:
        raise ExpressionSyntaxError(f"sql: {type(exc).__name__}: {exc}",
                                    text=statement) from None


def table_names(statement: str) -> list[str]:
    """The tables a statement reads, sorted, after refusing anything but one query over plain
    table names (see the module's rules). CTE names are not tables.

    >>> table_names('WITH r AS (SELECT * FROM "ml/images") SELECT * FROM r JOIN films USING (id)')
    ['films', 'ml/images']
    >>> table_names("SELECT * FROM read_csv('/etc/passwd')")
    Traceback (most recent call last):
    ...
    lakehouse.errors.SQLRefusedError: sql: read_csv(...) reads files; a statement may read only \
the lakehouse's tables, named in FROM and JOIN
    """
    if not isinstance(statement, str):
        raise TypeMismatchError(f"sql() takes a statement as a string, got {statement!r}")
    found = _FILE_FUNCTION.search(statement)
    if found:
        called = re.match(r"\w+", found.group())
        raise SQLRefusedError(f"sql: {called.group().lower() if called else 'read_'}(...) reads "
                              "files; a statement may read only the lakehouse's tables, named "
                              "in FROM and JOIN")
    tree = _parse(statement)
    ctes = {cte.alias_or_name for cte in tree.find_all(exp.CTE)}
    names: set[str] = set()
    for node in tree.walk():
        if isinstance(node, exp.Func) and _function_name(node).startswith(("read_", "scan_")):
            raise SQLRefusedError(f"sql: {_function_name(node)}(...) reads files; a statement "
                                  "may read only the lakehouse's tables")
        if isinstance(node, exp.Table):
            name = _table_name(node)
            if name not in ctes:
                names.add(name)
    return sorted(names)


def _parse(statement: str) -> exp.Expression:
    """The one query in ``statement``; anything else is refused."""
    try:
        trees = [t for t in sqlglot.parse(statement, read=DIALECT) if t is not None]
    except sqlglot.errors.ParseError as exc:
        first = exc.errors[0] if exc.errors else {}
        where = f" at line {first.get('line')}, column {first.get('col')}" if first else ""
        raise ExpressionSyntaxError(
            f"sql: not a statement sqlglot can read ({first.get('description', exc)}{where})",
            text=statement, line=first.get("line"), column=first.get("col")) from None
    except sqlglot.errors.SqlglotError as exc:
        raise ExpressionSyntaxError(f"sql: not a statement sqlglot can read ({exc})",
                                    text=statement) from None
    if len(trees) != 1:
        raise SQLRefusedError(f"sql: give one SELECT statement, not {len(trees)}")
    tree = trees[0]
    if not isinstance(tree, exp.Query):
        kind = tree.key.upper()
        raise SQLRefusedError(f"sql: only queries (SELECT, WITH, UNION) are run, not {kind}")
    return tree


def _function_name(node: exp.Func) -> str:
    name = node.name if isinstance(node, exp.Anonymous) else node.sql_name()
    return str(name).lower()


def _table_name(node: exp.Table) -> str:
    """The lakehouse table a FROM or JOIN item names; a function or dotted name is refused."""
    if not isinstance(node.this, exp.Identifier):
        raise SQLRefusedError(f"sql: {node.sql(dialect=DIALECT)!r} is not a table name; FROM "
                              "and JOIN take the lakehouse's tables only")
    if node.args.get("db") or node.args.get("catalog"):
        dotted = ".".join(p.name for p in node.parts)
        raise SQLRefusedError(f"sql: {dotted!r} is not a table name; quote a name holding '/' "
                              f"or '.' in double quotes (\"ml/images\")")
    return str(node.this.name)


def _frame(table: Table, media: str) -> pl.LazyFrame:
    """A lazy frame over the table's version current now: its scan (media left out), or with
    ``media="bytes"`` a source that reads media bytes only for what the query asks."""
    if media == "exclude":
        return table.scan()
    state = table.table_state()
    ds, tdef, name = state.dataset, state.definition, table.table_name
    columns = [c.name for c in tdef.columns]
    schema = table.head(0).schema

    def source(with_columns: list[str] | None, predicate: pl.Expr | None,
               n_rows: int | None, batch_size: int | None) -> Iterator[pl.DataFrame]:
        wanted = list(with_columns or columns)
        read = wanted + [c for c in (predicate.meta.root_names() if predicate is not None
                                     else []) if c not in wanted]
        left = n_rows
        for frame in scan_frames(ds, tdef, name, None, read, fetcher=state.fetcher,
                                 batch_rows=batch_size):
            if predicate is not None:
                frame = frame.filter(predicate)
            if left is not None:
                frame = frame.head(left)
                left -= frame.height
            yield frame.select(wanted)
            if left is not None and left <= 0:
                return

    return register_io_source(source, schema=dict(schema), is_pure=True,
                              explain_name=f"lakehouse {name}")


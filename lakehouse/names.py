"""Names of tables, directories and columns: the one place that says which names are valid.

It sits low in the layers (it imports only :mod:`lakehouse.errors`) so the catalog, bulk ingest
and anything else that takes a table name checks it the same way without importing the catalog.
"""

from __future__ import annotations

import re

from lakehouse.errors import InvalidNameError

ROW_ID = "_rowid"  # Lance's stable row id: how update() and delete() name rows
ROW_ADDRESS = "_rowaddr"  # fragment id << 32 | offset: which fragment a row lives in
TABLE_SUFFIX = ".lance"
"""The suffix of a table's Lance dataset folder: ``ml/images`` lives at ``ml/images.lance``."""

_PART = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]*$")


def validate_name(name: str, what: str = "table") -> str:
    """Check a table or directory path such as ``ml/images``; return it unchanged.

    >>> validate_name("ml/images")
    'ml/images'
    >>> validate_name("x.lance")
    Traceback (most recent call last):
    ...
    lakehouse.errors.InvalidNameError: invalid table name 'x.lance': names may not end with '.lance'
    """
    if not isinstance(name, str) or not name:
        raise InvalidNameError(f"a {what} name must be a non-empty string, got {name!r}")
    problem = None
    if "\\" in name:
        problem = "backslashes are not allowed"
    elif name.startswith("/") or re.match(r"^[A-Za-z]:", name):
        problem = "absolute paths are not allowed"
    else:
        for part in name.split("/"):
            if part in ("", ".", ".."):
                problem = "empty, '.' and '..' path parts are not allowed"
            elif not _PART.fullmatch(part):
                problem = f"{part!r} may only use letters, digits, '_', '-' and '.'"
            elif part.endswith(TABLE_SUFFIX):
                problem = f"names may not end with {TABLE_SUFFIX!r}"
            if problem:
                break
    if problem:
        message = f"invalid {what} name {name!r}: {problem}"
        raise InvalidNameError(message)
    return name


BRANCH_SEPARATOR = "#"
"""Between a table and one of its branches: ``db.get_table("films#dev")``."""
MAIN_BRANCH = "main"
"""The name Lance gives a table's own line of versions; no branch can take it."""


def validate_branch_name(name: str, table: str) -> str:
    """Check the name of a branch of ``table``: one name part (letters, digits, ``_``, ``-``,
    ``.``; no ``/``, ``#``, ``:`` or ``@``), not ``main``, with no ``..`` and not ending with
    ``.``, ``.lock`` or ``.lance``; return it unchanged. Branch names become folder and file
    names inside the table and Lance refs, so they follow the rules of table name parts and
    Lance's rules for refs (which are git's).

    >>> validate_branch_name("dev-2", "films")
    'dev-2'
    >>> validate_branch_name("../x", "films")
    Traceback (most recent call last):
    ...
    lakehouse.errors.InvalidNameError: table 'films': invalid branch name '../x': use letters, \
digits, '_', '-' and '.' (one part, no '/' or '..', not 'main', not ending with '.', '.lock' or \
'.lance')
    """
    if not isinstance(name, str) or name == MAIN_BRANCH or not _PART.fullmatch(name) \
            or ".." in name or name.endswith((".", ".lock", TABLE_SUFFIX)):
        message = (f"table {table!r}: invalid branch name {name!r}: use letters, digits, '_', "
                   f"'-' and '.' (one part, no '/' or '..', not {MAIN_BRANCH!r}, not ending "
                   f"with '.', '.lock' or {TABLE_SUFFIX!r})")
        raise InvalidNameError(message)
    return name


#: Names that cannot be column names: the table's verbs, which build queries and change the
#: table, and the ``table_*`` spellings of its own name, version, URI, definition and state.
#: Every other valid name can be a column, reachable as ``t.<name>`` even where the table has
#: an attribute of that name (see :class:`lakehouse.Table`).
RESERVED_NAMES = frozenset({
    "where", "select", "order_by", "limit", "collect", "insert", "insert_files", "update",
    "delete", "write_rows", "add_column", "add_columns", "add_computed_column",
    "add_embedding_index", "add_index", "drop_column", "drop_embedding_index", "drop_index",
    "rename_column", "revert", "table_name", "table_version", "table_uri", "table_definition",
    "table_state", "count_rows", "column_names", "table_branch",
})


def check_column_name(name: str, table_name: str) -> None:
    """Refuse a name that cannot be a column of table ``table_name``: not an identifier,
    starting with an underscore (hidden bookkeeping columns), or one of
    :data:`RESERVED_NAMES`.

    >>> check_column_name("label", "pets")
    >>> check_column_name("where", "pets")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    lakehouse.errors.InvalidNameError: table 'pets': 'where' cannot be a column name: ...
    """
    if not isinstance(name, str) or not name.isidentifier() or name.startswith("_"):
        message = (f"table {table_name!r}: {name!r} is not a valid column name (use letters, "
                   "digits and underscores, not starting with a digit or an underscore)")
        raise InvalidNameError(message)
    if name in RESERVED_NAMES:
        message = (f"table {table_name!r}: {name!r} cannot be a column name: t.{name} is the "
                   f"table's own method (reserved: {', '.join(sorted(RESERVED_NAMES))}); "
                   f"choose another name, such as {name + '_'!r}")
        raise InvalidNameError(message)


__all__ = ["BRANCH_SEPARATOR", "MAIN_BRANCH", "RESERVED_NAMES", "ROW_ADDRESS", "ROW_ID",
           "TABLE_SUFFIX", "check_column_name", "validate_branch_name", "validate_name"]

"""Names of tables and directories: the one place that says which names are valid.

It sits low in the layers (it imports only :mod:`lakehouse.errors`) so the catalog, bulk ingest
and anything else that takes a table name checks it the same way without importing the catalog.
"""

from __future__ import annotations

import re

from lakehouse.errors import InvalidNameError

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
            elif not _PART.match(part):
                problem = f"{part!r} may only use letters, digits, '_', '-' and '.'"
            elif part.endswith(TABLE_SUFFIX):
                problem = f"names may not end with {TABLE_SUFFIX!r}"
            if problem:
                break
    if problem:
        message = f"invalid {what} name {name!r}: {problem}"
        raise InvalidNameError(message)
    return name


__all__ = ["TABLE_SUFFIX", "validate_name"]

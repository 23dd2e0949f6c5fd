"""The registry of callable functions: built-ins and ``@lh.udf`` functions, by name.

A stored computed column names the functions it calls; only names found here can be run. Built-in
names look like ``str.upper``; UDF names are ``module:qualname``. A UDF whose module is not yet
imported is looked up by importing that module and checking that the name refers to a function
registered through ``@lh.udf`` (so a definition naming, say, ``os:system`` is refused).
"""

from __future__ import annotations

import dataclasses
import importlib
import re
from collections.abc import Callable
from typing import Any

import polars as pl

from lakehouse import types as T
from lakehouse.errors import UDFNotFoundError, UnsafeDefinitionError

_MODULE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")


@dataclasses.dataclass(frozen=True, eq=False)
class Function:
    """A function the executor can run, in up to two forms kept side by side.

    ``polars`` builds a vectorised Polars expression from the argument expressions; ``python``
    is the row form (or, when ``batched``, takes one list per argument and returns a list).
    """

    name: str
    python: Callable[..., Any]
    return_type: Callable[[list[T.ColumnType]], T.ColumnType]
    polars: Callable[..., pl.Expr] | None = None
    batched: bool = False
    batch_size: int = 1024
    fingerprint: str = ""
    null_safe: tuple[bool, ...] = ()  # per parameter: does it accept None (else null in, null out)?
    reads_tables: bool = False  # runs lakehouse queries itself (an @lh.query function)


_REGISTRY: dict[str, Function] = {}
# built-in name prefix -> the module that registers those functions when imported
_BUILTIN_MODULES = {
    "image": "lakehouse.functions.image",
    "video": "lakehouse.functions.video",
    "audio": "lakehouse.functions.audio",
    "document": "lakehouse.functions.document",
    "media": "lakehouse.functions.media",
    "embed": "lakehouse.functions.embeddings",
}


def register(fn: Function) -> Function:
    _REGISTRY[fn.name] = fn
    return fn


def resolve(name: str) -> Function:
    """The function registered under ``name``, importing its module if it is a UDF."""
    found = _REGISTRY.get(name)
    if found is not None:
        return found
    module = _BUILTIN_MODULES.get(name.split(".", 1)[0]) if ":" not in name else None
    if module is not None:  # built-ins whose module loads on first use (media functions)
        importlib.import_module(module)
        found = _REGISTRY.get(name)
        if found is not None:
            return found
    if ":" not in name:
        raise UnsafeDefinitionError(f"{name!r} is not a built-in function of this lakehouse")
    module_name, _, qualname = name.partition(":")
    if not _MODULE_NAME.match(module_name):
        raise UnsafeDefinitionError(f"{name!r} is not a valid UDF reference")
    hint = (
        f"define {qualname!r} with @lh.udf in an importable module and make {module_name!r} "
        "importable in this process (install its package or add its folder to PYTHONPATH)"
    )
    if module_name == "__main__":
        raise UDFNotFoundError(
            f"UDF {name!r} was defined in a script or notebook and cannot be loaded here: {hint}"
        )
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise UDFNotFoundError(f"UDF {name!r} cannot be imported ({exc}): {hint}") from exc
    found = _REGISTRY.get(name)
    if found is None:
        target = module
        for part in qualname.split("."):
            target = getattr(target, part, None)
        what = "does not exist" if target is None else "is not registered with @lh.udf"
        raise UnsafeDefinitionError(
            f"stored definition names {name!r}, which {what}; only @lh.udf functions and "
            "built-ins can be called from a table definition"
        )
    return found

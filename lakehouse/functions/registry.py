"""The registry of callable functions: built-ins and ``@lh.udf`` functions, by name.

A stored computed column names the functions it calls; only names found here can be run. Built-in
names look like ``str.upper``; UDF names are ``module:qualname``. A UDF whose module is not yet
imported is looked up by importing that module, when :mod:`lakehouse.trust` allows it, and
checking that the name refers to a function registered through ``@lh.udf`` (so a definition
naming, say, ``os:system`` is refused).
"""

from __future__ import annotations

import dataclasses
import importlib
import sys
from collections.abc import Callable
from typing import Any

import polars as pl

from lakehouse import trust
from lakehouse import types as T
from lakehouse.errors import UDFNotFoundError, UnsafeDefinitionError


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


def resolve(name: str, fingerprint: str | None = None) -> Function:
    """The function registered under ``name``. A UDF whose module is not imported yet is
    imported only when the user trusts the module or its source verifiably holds the function
    the definition was made from, with the stored ``fingerprint`` (see :mod:`lakehouse.trust`)."""
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
    if not trust.MODULE_NAME.match(module_name):
        raise UnsafeDefinitionError(f"{name!r} is not a valid UDF reference")
    if module_name == "__main__":
        raise UDFNotFoundError(f"UDF {name!r} was defined in a script or notebook and cannot be "
                               f"loaded here: {_hint(module_name, qualname)}")
    if module_name not in sys.modules and not trust.module_trusted(module_name):
        _check_source(name, fingerprint)
    try:
        loaded = importlib.import_module(module_name)
    except ImportError as exc:
        msg = f"UDF {name!r} cannot be imported ({exc}): {_hint(module_name, qualname)}"
        raise UDFNotFoundError(msg) from exc
    found = _REGISTRY.get(name)
    if found is None:
        target = loaded
        for part in qualname.split("."):
            target = getattr(target, part, None)
        what = "does not exist" if target is None else "is not registered with @lh.udf"
        raise UnsafeDefinitionError(
            f"stored definition names {name!r}, which {what}; only @lh.udf functions and "
            "built-ins can be called from a table definition"
        )
    return found


def _check_source(name: str, fingerprint: str | None) -> None:
    """Refuse to import the module of UDF ``name`` unless its source, read without running it,
    verifiably defines the function the stored definition was made from."""
    module_name, _, qualname = name.partition(":")
    spec = trust.locate(module_name)
    if spec is None:
        raise UDFNotFoundError(f"UDF {name!r} cannot be imported (no module named "
                               f"{module_name!r} here): {_hint(module_name, qualname)}")
    problem = trust.unverified(spec, qualname, fingerprint)
    if problem is not None:
        msg = (f"stored definition names UDF {name!r}, and module {module_name!r} was not "
               f"imported: {problem}, so it may not be the module the column was defined with. "
               f"If you trust it, import it before writing, or pass lh.connect(..., "
               f"trusted_modules=[{module_name!r}]) or set "
               f"{trust.MODULES_VARIABLE}={module_name}")
        raise UnsafeDefinitionError(msg)


def _hint(module_name: str, qualname: str) -> str:
    return (f"define {qualname!r} with @lh.udf in an importable module and make "
            f"{module_name!r} importable in this process (install its package or add its folder "
            "to PYTHONPATH)")

"""The function registry: every function an expression can call, and every expression method.

A stored computed column names the functions it calls; only names found here can be run.
Built-in names look like ``str.upper`` (namespace, dot, name); UDF names are
``module:qualname``. Each built-in is one entry, made in one place (a decorator in
``lakehouse/functions/``), that holds everything about it: its :class:`Function` (the Python row
form and, where there is one, the Polars form, the return type) and its :class:`Method` (how it
is written on an expression, ``t.s.str.upper()`` or ``t.image.width``; its options, their
allowed values, and its documentation). The expression API (:mod:`lakehouse.exprs.nodes`), the
where/select parser's allow-list (:mod:`lakehouse.exprs.parse`), the CLI's help and the README's
table of functions (:func:`function_table`) are all read from it.

This module sits in the expressions layer; the modules of ``lakehouse/functions/`` fill it when
imported. A namespace's module is imported the first time one of its names is looked up
(:mod:`lakehouse.providers`), so Pillow, PyAV and pypdf load only when media functions are used.

A UDF whose module is not yet imported is looked up by importing that module, when
:mod:`lakehouse.trust` allows it, and checking that the name refers to a function registered
through ``@lh.udf`` (so a definition naming, say, ``os:system`` is refused).

>>> [m.name for m in methods("str")][:3]
['upper', 'lower', 'strip']
>>> resolve("str.upper").python("abc")
'ABC'
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import sys
import threading
from collections.abc import Callable, Mapping
from typing import Any

import polars as pl

from lakehouse import providers, trust
from lakehouse import types as T
from lakehouse.errors import UDFNotFoundError, UnsafeDefinitionError

STRING = "str"  # the namespace of the string methods: t.s.str.upper()
MEDIA = "media"  # methods of every media kind: t.image.fileurl, t.video.localpath
NAMESPACE_TITLES = {STRING: "strings", "image": "images", "video": "video", "audio": "audio",
                    "document": "documents", MEDIA: "every media type"}


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


@dataclasses.dataclass(frozen=True)
class Method:
    """A built-in function as a method (or property) of expressions.

    ``namespace`` says where it is written: ``"str"`` for ``t.s.str.<name>(...)``, a media kind
    for ``t.image.<name>``, ``"media"`` for every media kind. ``signature`` is the row form's:
    the value first, then the options, which must be literals (they are stored in table
    definitions, by name, or as ``arg0``, ``arg1``... when ``positional``). ``build``, when set,
    makes the expression itself, for methods that are not one plain call (``fileurl`` reads the
    hidden column of source URIs)."""

    namespace: str
    name: str
    function: str | None  # the registry name of the function its calls run (None with build)
    returns: T.ColumnType
    signature: inspect.Signature
    doc: str
    is_property: bool = False
    choices: Mapping[str, tuple[Any, ...]] = dataclasses.field(default_factory=dict)
    positional: bool = False
    build: Callable[[Any], Any] | None = None

    @property
    def options(self) -> list[inspect.Parameter]:
        """The parameters after the value."""
        return list(self.signature.parameters.values())[1:]

    def usage(self) -> str:
        """How the method is written after the value: ``str.contains(sub)``, ``width``,
        ``resize(size)``, ``frame(at=0.0)``."""
        prefix = f"{STRING}." if self.namespace == STRING else ""
        if self.is_property:
            return prefix + self.name
        shown = [p.name if p.default is inspect.Parameter.empty else f"{p.name}={p.default!r}"
                 for p in self.options]
        return f"{prefix}{self.name}({', '.join(shown)})"

    def summary(self) -> str:
        """The first paragraph of the documentation, on one line."""
        return " ".join(self.doc.split("\n\n")[0].split())


_FUNCTIONS: dict[str, Function] = {}
_METHODS: dict[str, dict[str, Method]] = {}
_lock = threading.Lock()


def register(fn: Function) -> Function:
    """Make ``fn`` callable from expressions under ``fn.name``."""
    with _lock:
        _FUNCTIONS[fn.name] = fn
    return fn


def register_method(method: Method) -> Method:
    """Make ``method`` a method of expressions of its namespace."""
    with _lock:
        _METHODS.setdefault(method.namespace, {})[method.name] = method
    return method


def lookup(name: str) -> Function | None:
    """The function registered under ``name``, without importing anything."""
    return _FUNCTIONS.get(name)


def methods(namespace: str) -> list[Method]:
    """The methods of a namespace (``"str"``, ``"image"``...), in the order they were added."""
    providers.load(namespace)
    return list(_METHODS.get(namespace, {}).values())


def methods_of(ctype: T.ColumnType) -> dict[str, Method]:
    """The methods written directly on an expression of type ``ctype`` (``t.image.width``):
    those of its media kind and those of every media kind; none for other types (string
    methods are under ``.str``)."""
    if not ctype.is_media:
        return {}
    found = {m.name: m for m in methods(MEDIA)}
    found.update({m.name: m for m in methods(ctype.kind)})
    return found


def namespaces() -> list[str]:
    """The namespaces that have methods, in the order of :data:`NAMESPACE_TITLES`."""
    for namespace in providers.namespaces():
        providers.load(namespace)
    known = [n for n in NAMESPACE_TITLES if _METHODS.get(n)]
    return known + sorted(n for n in _METHODS if n not in NAMESPACE_TITLES and _METHODS[n])


def resolve(name: str, fingerprint: str | None = None) -> Function:
    """The function registered under ``name``. A UDF whose module is not imported yet is
    imported only when the user trusts the module or its source verifiably holds the function
    the definition was made from, with the stored ``fingerprint`` (see :mod:`lakehouse.trust`)."""
    found = _FUNCTIONS.get(name)
    if found is not None:
        return found
    if ":" not in name:  # a built-in whose module loads on first use (media functions)
        providers.load(name.split(".", 1)[0])
        found = _FUNCTIONS.get(name)
        if found is not None:
            return found
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
    found = _FUNCTIONS.get(name)
    if found is None:
        target = loaded
        for part in qualname.split("."):
            target = getattr(target, part, None)
        what = "does not exist" if target is None else "is not registered with @lh.udf"
        msg = (f"stored definition names {name!r}, which {what}; only @lh.udf functions and "
               "built-ins can be called from a table definition")
        raise UnsafeDefinitionError(msg)
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


# --- documentation -----------------------------------------------------------------------------


def function_table() -> str:
    """The README's table of expression methods, generated from the registry (the README keeps
    it between ``<!-- functions -->`` and ``<!-- /functions -->``; a test compares the two).

    >>> print(function_table().splitlines()[2])
    | strings | `.str.upper()` | String | The text in upper case. |
    """
    lines = ["| on | method | returns | what it gives |", "|---|---|---|---|"]
    for namespace in namespaces():
        title = NAMESPACE_TITLES.get(namespace, namespace)
        for method in methods(namespace):
            lines.append(f"| {title} | `.{method.usage()}` | {method.returns} | "
                         f"{_cell(method.summary())} |")
    return "\n".join(lines) + "\n"


def help_text() -> str:
    """The expression methods in a few lines of plain text, for command-line help.

    >>> print(help_text().splitlines()[0])  # doctest: +ELLIPSIS
    strings: str.upper(), str.lower(), ...
    """
    lines = []
    for namespace in namespaces():
        title = NAMESPACE_TITLES.get(namespace, namespace)
        lines.append(f"{title}: {', '.join(m.usage() for m in methods(namespace))}")
    return "\n".join(lines)


def _cell(text: str) -> str:
    return text.replace("``", "`").replace("|", "\\|")


__all__ = ["MEDIA", "NAMESPACE_TITLES", "STRING", "Function", "Method", "function_table",
           "help_text", "lookup", "methods", "methods_of", "namespaces", "register",
           "register_method", "resolve"]

"""Trust: what a stored table definition may make this process import or load.

A table definition is data: anyone who can write the table's storage can rewrite it. So opening
and reading a table never imports or loads anything it names, and a write that needs a UDF
imports the UDF's module only when one of these holds:

1. the module is already imported in this process (the user's own code imported it);
2. the module is verifiably the one the definition was made from: its source, found through the
   import system's finders without running it or its packages, defines the function under the
   stored qualified name, decorated with lakehouse's ``udf`` or ``query`` (``@lh.udf``,
   ``@lh.query``, ``@udf`` imported from lakehouse), and that function's source block hashes to
   the fingerprint stored with the definition (:func:`block_fingerprint`);
3. the user trusts the module: ``lh.connect(..., trusted_modules=["pkg"])`` or the environment
   variable ``LAKEHOUSE_TRUSTED_MODULES=pkg,other`` (a name trusts its submodules too).

Importing a verified module runs its packages' ``__init__`` files, as every import does.

Embedding models follow the same idea (``lakehouse.functions.embeddings``): local weights load
only when the spec records their SHA-256 and the file matches it; a hub model loads only when
this process allowed it, by building it with ``lh.functions.clip(...)`` or
``sentence_transformer(...)``, or by naming it in ``lh.connect(..., trusted_models=[...])`` or
``LAKEHOUSE_TRUSTED_MODELS``.

Trust belongs to the process, like ``sys.modules``: once a module is imported every table may use
it, so trusting it through one catalog trusts it for all.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import os
import re
import sys
import threading
from collections.abc import Iterable
from importlib.machinery import ModuleSpec

from lakehouse.errors import InvalidNameError, TypeMismatchError

MODULES_VARIABLE = "LAKEHOUSE_TRUSTED_MODULES"
MODELS_VARIABLE = "LAKEHOUSE_TRUSTED_MODELS"
MODULE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")

_modules: set[str] = set()
_models: set[str] = set()
_lock = threading.Lock()

# where lakehouse's decorators can be imported from, and their names
_DECORATOR_HOMES = frozenset({"lakehouse", "lakehouse.udf", "lakehouse.query_function"})
_DECORATORS = frozenset({"udf", "query"})
_DEFS = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)


# --- the user's settings -----------------------------------------------------------------------
def trust(*, modules: Iterable[str] = (), models: Iterable[str] = ()) -> None:
    """Let stored definitions import ``modules`` (and their submodules) and load the hub
    ``models`` in this process, from now on. ``lh.connect(..., trusted_modules=...,
    trusted_models=...)`` calls it.

    >>> trust(modules=["my_udfs"], models=["all-MiniLM-L6-v2"])
    >>> module_trusted("my_udfs.text"), model_trusted("all-MiniLM-L6-v2")
    (True, True)
    >>> trust(modules=["not a module"])
    Traceback (most recent call last):
    lakehouse.errors.InvalidNameError: ...
    """
    checked_modules = _names(modules, "trusted_modules", module=True)
    checked_models = _names(models, "trusted_models", module=False)
    with _lock:
        _modules.update(checked_modules)
        _models.update(checked_models)


def module_trusted(module: str) -> bool:
    """Whether the user trusts ``module``: it, or a package above it, is trusted.

    >>> trust(modules=["their_pkg"])
    >>> module_trusted("their_pkg.udfs"), module_trusted("their_pkg_other")
    (True, False)
    """
    with _lock:
        trusted = _modules | set(_from_environment(MODULES_VARIABLE, module=True))
    return any(module == name or module.startswith(name + ".") for name in trusted)


def model_trusted(model: str) -> bool:
    """Whether the user allowed the hub model ``model`` by name.

    >>> _ = lh.connect("my-lakehouse", trusted_models=["sentence-transformers/all-mpnet-base-v2"])
    >>> model_trusted("sentence-transformers/all-mpnet-base-v2"), model_trusted("other/model")
    (True, False)
    """
    with _lock:
        return model in _models or model in _from_environment(MODELS_VARIABLE, module=False)


def trusted() -> tuple[frozenset[str], frozenset[str]]:
    """The modules and hub models this process trusts (settings and environment), so that
    the processes working for it (Ray workers, :mod:`lakehouse.exec.ray_engine`) apply the
    same rules.

    >>> trust(modules=["their_pkg"])
    >>> "their_pkg" in trusted()[0]
    True
    """
    with _lock:
        return (frozenset(_modules | set(_from_environment(MODULES_VARIABLE, module=True))),
                frozenset(_models | set(_from_environment(MODELS_VARIABLE, module=False))))


def _from_environment(variable: str, *, module: bool) -> list[str]:
    entries = [e.strip() for e in os.environ.get(variable, "").split(",") if e.strip()]
    return _names(entries, variable, module=module)


def _names(names: Iterable[str], where: str, *, module: bool) -> list[str]:
    """The names, checked: a list of strings, each a dotted module name when ``module``."""
    if isinstance(names, str | bytes):
        msg = f"{where} takes a list of names, such as [{names!r}], not a single string"
        raise TypeMismatchError(msg)
    found = list(names)
    bad = [n for n in found if not isinstance(n, str) or not n
           or (module and not MODULE_NAME.match(n))]
    if bad:
        what = "module names such as 'pkg' or 'pkg.udfs'" if module else "model names"
        msg = f"{where} must list {what}; got {', '.join(map(repr, bad))}"
        raise InvalidNameError(msg)
    return found


# --- verifying a module from its source, without running it --------------------------------------
def block_fingerprint(source: str, qualname: str) -> str | None:
    """The fingerprint of the function ``qualname`` in the module source ``source``: a short hash
    of its source block (decorators included, surrounding whitespace stripped), or None when the
    source defines no function by that name at module or class level."""
    node = _find_def(_parse(source), qualname)
    if node is None:
        return None
    first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
    block = "\n".join(source.split("\n")[first - 1:node.end_lineno])
    return hashlib.sha256(block.strip().encode()).hexdigest()[:16]


def locate(module: str) -> ModuleSpec | None:
    """Where ``module`` would be imported from, found without importing it or its parent
    packages (``importlib.util.find_spec`` imports the parents); None when it is not found."""
    spec: ModuleSpec | None = None
    path = None
    parts = module.split(".")
    for depth in range(1, len(parts) + 1):
        name = ".".join(parts[:depth])
        loaded = sys.modules.get(name)
        spec = getattr(loaded, "__spec__", None) if loaded is not None else _find(name, path)
        if spec is None:
            return None
        path = spec.submodule_search_locations
        if depth < len(parts) and path is None:
            return None  # a module, not a package: it has no submodules
    return spec


def unverified(spec: ModuleSpec, qualname: str, fingerprint: str | None) -> str | None:
    """Why the module at ``spec`` is not verifiably the one that defined ``qualname`` with
    ``fingerprint``; None when it is (see the module docstring)."""
    if not fingerprint:
        return "the stored definition carries no fingerprint of the function's code"
    source = _source(spec)
    if source is None:
        return f"its source code is not available ({spec.origin or 'no file'})"
    try:
        tree = _parse(source)
    except (SyntaxError, ValueError) as exc:
        return f"its source does not parse ({exc})"
    node = _find_def(tree, qualname)
    if node is None:
        return f"its source defines no function {qualname!r}"
    if not _is_decorated(node, tree):
        return f"{qualname!r} in its source is not decorated with @lh.udf or @lh.query"
    if block_fingerprint(source, qualname) != fingerprint:
        return (f"the code of {qualname!r} differs from the code the column was defined with "
                f"(fingerprint {fingerprint})")
    return None


def _find(name: str, path: list[str] | None) -> ModuleSpec | None:
    """Ask the import system's finders, as ``import`` would, without loading anything."""
    for finder in sys.meta_path:
        find_spec = getattr(finder, "find_spec", None)
        if find_spec is None:
            continue
        try:
            spec = find_spec(name, path)
        except (ImportError, ValueError, OSError):
            continue
        if spec is not None:
            return spec
    return None


def _source(spec: ModuleSpec) -> str | None:
    get_source = getattr(spec.loader, "get_source", None)
    if get_source is None:
        return None
    try:
        return get_source(spec.name)
    except (ImportError, OSError, UnicodeDecodeError):
        return None


@functools.lru_cache(maxsize=64)
def _parse(source: str) -> ast.Module:
    return ast.parse(source)


def _find_def(tree: ast.Module, qualname: str) -> ast.FunctionDef | ast.AsyncFunctionDef | None:
    """The last definition of ``qualname`` (``f`` or ``Class.f``), as Python would bind it."""
    *classes, name = qualname.split(".")
    body: list[ast.stmt] = tree.body
    for part in classes:
        found = [n for n in body if isinstance(n, ast.ClassDef) and n.name == part]
        if not found:
            return None
        body = found[-1].body
    matches = [n for n in body if isinstance(n, _DEFS) and n.name == name]
    node = matches[-1] if matches else None
    return node if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) else None


def _is_decorated(node: ast.FunctionDef | ast.AsyncFunctionDef, tree: ast.Module) -> bool:
    """Whether one of ``node``'s decorators is lakehouse's ``udf`` or ``query``, by the names
    the module imported them (or lakehouse) under."""
    modules, functions = _lakehouse_names(tree)
    for decorator in node.decorator_list:
        target = decorator.func if isinstance(decorator, ast.Call) else decorator
        if isinstance(target, ast.Name) and target.id in functions:
            return True
        if (isinstance(target, ast.Attribute) and target.attr in _DECORATORS
                and isinstance(target.value, ast.Name) and target.value.id in modules):
            return True
    return False


def _lakehouse_names(tree: ast.Module) -> tuple[set[str], set[str]]:
    """The names a module binds to the lakehouse package, and to its decorators."""
    modules: set[str] = set()
    functions: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules.update(a.asname or a.name for a in node.names if a.name == "lakehouse")
        elif (isinstance(node, ast.ImportFrom) and node.level == 0
              and node.module in _DECORATOR_HOMES):
            functions.update(a.asname or a.name for a in node.names if a.name in _DECORATORS)
    return modules, functions

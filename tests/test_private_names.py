"""No module reaches a private name of another module.

A name starting with one underscore is private to the module that defines it: its functions,
classes and constants (``_literal``), and the attributes and methods of its classes
(``table._def()``, ``catalog._is_table``). What another module needs is public and documented
(``Table.table_definition``, ``Catalog.has_table``). These tests read the source of ``lakehouse/``
and ``cli/`` with :mod:`ast` and fail on:

- ``from lakehouse.x import _name`` (and ``import lakehouse._x``) in another module;
- ``module._name`` where ``module`` was imported from our packages;
- ``obj._name`` (``getattr(obj, "_name")`` too) in a module that does not define ``_name``
  itself, where one of our other modules defines it (as a module-level name, a class attribute
  or method, or a ``self._name`` attribute): the static trace of a private attribute of another
  module's objects. Names such as ``_repr_html_`` (protocols of other libraries) are not ours.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("lakehouse", "cli")


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__") and not name.endswith("_")


@dataclass
class Module:
    name: str
    path: Path  # relative to the root of the packages
    tree: ast.Module
    defines: set[str] = field(default_factory=set)  # private names defined in this module


def _module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _defined_private_names(tree: ast.Module) -> set[str]:
    """Private names a module defines: module-level and class-level names, functions, methods,
    and attributes assigned on ``self`` or ``cls``."""
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            found.add(node.name)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            found.add(node.id)
        elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store) \
                and isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"):
            found.add(node.attr)
        elif isinstance(node, ast.alias) and node.asname:
            found.add(node.asname)
        elif isinstance(node, ast.arg):
            found.add(node.arg)
    return {n for n in found if _private(n)}


def load_modules(root: Path, packages: tuple[str, ...] = PACKAGES) -> dict[str, Module]:
    """Every module of ``packages`` under ``root``, parsed, with the private names it defines."""
    modules = {}
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
            name = _module_name(path, root)
            modules[name] = Module(name, path.relative_to(root), tree,
                                   _defined_private_names(tree))
    return modules


def _ours(module: str | None, packages: tuple[str, ...]) -> bool:
    return module is not None and module.split(".")[0] in packages


def _resolve(module: Module, node: ast.ImportFrom) -> str | None:
    if not node.level:
        return node.module
    base = module.name.split(".")
    if module.path.name != "__init__.py":
        base = base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join([*base, node.module] if node.module else base)


def violations(modules: dict[str, Module], packages: tuple[str, ...] = PACKAGES) -> list[str]:
    """``path:line: what`` for every private name a module reaches in another module."""
    owners: dict[str, set[str]] = {}
    for module in modules.values():
        for name in module.defines:
            owners.setdefault(name, set()).add(module.name)
    found = []
    for module in modules.values():
        imported_modules: set[str] = set()
        for node in ast.walk(module.tree):
            problems: list[str | None] = []
            if isinstance(node, ast.Import):
                for alias in node.names:
                    if _ours(alias.name, packages):
                        if any(_private(part) for part in alias.name.split(".")):
                            problems.append(f"imports private module {alias.name}")
                        imported_modules.add(alias.asname or alias.name.split(".")[0])
            elif isinstance(node, ast.ImportFrom):
                source = _resolve(module, node)
                if _ours(source, packages) and source != module.name:
                    for alias in node.names:
                        if _private(alias.name):
                            problems.append(f"imports {alias.name} from {source}")
                        elif f"{source}.{alias.name}" in modules:
                            imported_modules.add(alias.asname or alias.name)
            elif isinstance(node, ast.Attribute) and _private(node.attr):
                problems.append(_attribute_problem(node.value, node.attr, module, owners,
                                                   imported_modules))
            elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) \
                    and node.func.id in ("getattr", "setattr", "hasattr") and len(node.args) > 1 \
                    and isinstance(node.args[1], ast.Constant) \
                    and isinstance(node.args[1].value, str) and _private(node.args[1].value):
                problems.append(_attribute_problem(node.args[0], node.args[1].value, module,
                                                   owners, imported_modules))
            found += [(module.path.as_posix(), node.lineno, node.col_offset, problem)
                      for problem in problems if problem]
    return [f"{path}:{line}: {problem}" for path, line, _, problem in sorted(found)]


def _attribute_problem(value: ast.expr, attr: str, module: Module,
                       owners: dict[str, set[str]], imported_modules: set[str]) -> str | None:
    if isinstance(value, ast.Name) and value.id in imported_modules:
        return f"reaches {value.id}.{attr}, private to that module"
    if isinstance(value, ast.Name) and value.id in ("self", "cls"):
        return None
    if isinstance(value, ast.Call) and isinstance(value.func, ast.Name) \
            and value.func.id == "super":
        return None
    others = owners.get(attr, set()) - {module.name}
    if others and attr not in module.defines:
        return (f"reaches {ast.unparse(value)}.{attr}, private to "
                f"{', '.join(sorted(others))}")
    return None


def test_no_module_reaches_a_private_name_of_another():
    found = violations(load_modules(ROOT))
    assert not found, "private names used across modules (make them public or move them):\n" \
        + "\n".join(found)


def _write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def test_the_check_finds_each_kind_of_private_reach(tmp_path):
    _write(tmp_path, {
        "pkg/__init__.py": "",
        "pkg/a.py": (
            "_LIMIT = 3\n"
            "def _helper():\n    return 1\n"
            "class Table:\n"
            "    def __init__(self):\n        self._lock = None\n"
            "    def _def(self):\n        return self._lock\n"
            "    def _repr_html_(self):\n        return ''\n"
            "    def same(self, other):\n        return other._lock\n"
        ),
        "pkg/b.py": (
            "from pkg.a import _helper, Table, _LIMIT\n"
            "from pkg import a\n"
            "from . import a as alias\n"
            "from .a import _LIMIT\n"
            "def use(t: Table):\n"
            "    t._def()\n"
            "    a._LIMIT\n"
            "    alias._helper()\n"
            "    getattr(t, '_lock')\n"
            "    t._repr_html_()\n"
            "    t.public()\n"
        ),
    })
    found = violations(load_modules(tmp_path, ("pkg",)), ("pkg",))
    assert [f.split(": ", 1)[1] for f in found] == [
        "imports _LIMIT from pkg.a",
        "imports _helper from pkg.a",
        "imports _LIMIT from pkg.a",
        "reaches t._def, private to pkg.a",
        "reaches a._LIMIT, private to that module",
        "reaches alias._helper, private to that module",
        "reaches t._lock, private to pkg.a",
    ], found
    assert all(f.startswith("pkg/b.py:") for f in found), found

"""The architecture holds: strict layers, one function registry, and the README's function table.

The layers are import-linter contracts in pyproject.toml ([tool.importlinter]), described in
docs/ARCHITECTURE.md ("Layers"); `lint-imports` checks them here, so a change that makes a lower
layer import a higher one fails the tests with the chain of imports that does it.
"""

from __future__ import annotations

import ast
import pathlib
import subprocess
import sys
import tomllib

import pytest

import lakehouse as lh
from lakehouse.exprs import registry

ROOT = pathlib.Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "lakehouse"
README = ROOT / "README.md"
START, END = "<!-- functions -->", "<!-- /functions -->"
REGENERATE = ('python -c "import lakehouse.exprs.registry as r; '
              'print(r.function_table(), end=\'\')"')


def test_the_layers_hold():
    """`lint-imports` keeps every contract: each layer imports only from the layers below it
    (imports inside functions count too), and the library never imports the CLI."""
    run = subprocess.run([sys.executable, "-c", "import sys; from importlinter.cli import "
                          "lint_imports; sys.exit(lint_imports(no_cache=True, no_logo=True))"],
                         cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "0 broken" in run.stdout, run.stdout


def test_no_import_cycles():
    """No module of lakehouse imports, directly or through others, a module that imports it
    (catalog, ingest, table, writes and queries once did; so did types, functions and nodes)."""
    import grimp

    graph = grimp.build_graph("lakehouse", exclude_type_checking_imports=True)
    cycles = sorted({tuple(sorted((a, b))) for a in graph.modules
                     for b in graph.find_modules_directly_imported_by(a)
                     if a != b and graph.chain_exists(importer=b, imported=a)})
    assert not cycles, cycles


def _layers() -> list[str]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    main = next(c for c in config["contracts"] if c.get("containers") == ["lakehouse"])
    return [m.strip() for layer in main["layers"] for m in layer.replace(":", "|").split("|")]


def test_every_media_module_has_a_layer():
    """media/ spans layers, so the main contract names its modules one by one (and ignores the
    package in its exhaustive check): a new media module must be named there too."""
    placed = set(_layers())
    modules = {f"media.{p.stem}" for p in (PACKAGE / "media").glob("*.py")
               if p.stem != "__init__"}
    missing = sorted(modules - placed)
    assert not missing, (f"add {missing} to a layer of the 'lakehouse is layered' contract in "
                         "pyproject.toml and to docs/ARCHITECTURE.md")


def _inner_imports(tree: ast.AST) -> list[ast.Import | ast.ImportFrom]:
    found = []
    for fn in ast.walk(tree):
        if isinstance(fn, ast.FunctionDef | ast.AsyncFunctionDef):
            found += [n for n in ast.walk(fn) if isinstance(n, ast.Import | ast.ImportFrom)]
    return found


def _commented(lines: list[str], lineno: int) -> bool:
    """A comment on the import's line, or on the lines of imports and comments just above."""
    for line in reversed(lines[:lineno]):
        text = line.strip()
        if "#" in text:
            return True
        if not text.startswith(("import ", "from ")):
            return False
    return False


def test_imports_inside_functions_are_only_for_heavy_optional_libraries():
    """No module of lakehouse is imported inside a function (the layers make it unnecessary);
    a library imported there (torch, open_clip, uvicorn...) says why in a comment."""
    problems = []
    for path in sorted(PACKAGE.rglob("*.py")):
        source = path.read_text()
        lines = source.splitlines()
        for node in _inner_imports(ast.parse(source)):
            names = [node.module or ""] if isinstance(node, ast.ImportFrom) \
                else [a.name for a in node.names]
            where = f"{path.relative_to(ROOT)}:{node.lineno}"
            if isinstance(node, ast.ImportFrom) and node.level or \
                    any(n == "lakehouse" or n.startswith("lakehouse.") for n in names):
                problems.append(f"{where} imports lakehouse inside a function: import it at "
                                "the top of the module (the layers allow it) or invert the "
                                "dependency (a registry the higher module fills)")
            elif not _commented(lines, node.lineno):
                problems.append(f"{where} imports {names[0]} inside a function without a "
                                "comment saying why (a heavy, optional library)")
    assert not problems, "\n".join(problems)


def test_readme_function_table_is_the_registry():
    """The README's table of expression methods is generated from the function registry."""
    text = README.read_text()
    assert START in text and END in text, (
        f"README.md needs the function table between {START} and {END}; generate it with "
        f"{REGENERATE}")
    shown = text.split(START, 1)[1].split(END, 1)[0].strip()
    assert shown == registry.function_table().strip(), (
        f"README.md's function table differs from the function registry; replace the text "
        f"between {START} and {END} with the output of {REGENERATE}")


def test_every_method_is_documented_and_reachable():
    """Each registered method has a docstring and is what an expression of its kind offers."""
    for namespace in registry.namespaces():
        for method in registry.methods(namespace):
            assert method.summary(), f"{namespace}.{method.name} has no docstring"
            assert method.function is None or registry.resolve(method.function)
    t_string = lh.lit("a")
    assert sorted(dir(t_string.str)) == sorted(m.name for m in registry.methods("str"))


@pytest.mark.parametrize("namespace", ["str", "image", "video", "audio", "document"])
def test_the_parser_allows_exactly_the_registered_methods(db, namespace):
    """The where/select parser's allow-list is the registry: every registered method parses,
    so adding a function to the registry is all it takes to use it in a where string."""
    kind = "string" if namespace == "str" else namespace
    t = db.create_table("t", {"x": lh.parse_type(kind, column="x")})
    for method in registry.methods(namespace):
        args = ", ".join(_example(p) for p in method.options
                         if p.default is method.signature.empty)
        prefix = "x.str." if namespace == "str" else "x."
        text = prefix + method.name + ("" if method.is_property else f"({args})")
        parsed = lh.parse_expression(text, t)
        assert parsed.type == method.returns, text


def _example(parameter) -> str:
    return {"size": "(8, 8)", "box": "(0, 0, 4, 4)", "angle": "90", "mode": "'L'",
            "start": "0", "sub": "'a'", "prefix": "'a'", "suffix": "'a'", "old": "'a'",
            "new": "'b'"}.get(parameter.name, "'x'")


def test_query_help_lists_the_registered_methods():
    """`lakehouse query --help` ends with the methods of the function registry."""
    from typer.testing import CliRunner

    from lakehouse_cli.app import app

    result = CliRunner().invoke(app, ["query", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    shown = " ".join(result.output.split())
    for namespace in registry.namespaces():
        for method in registry.methods(namespace):
            assert method.usage() in shown, (method.usage(), result.output)

"""The README's examples and the library's docstring examples run, so they cannot drift.

The docstring examples of every module under ``lakehouse/`` run, each docstring in a fresh
lakehouse with the names the ``docstring_examples`` fixture sets up (``lh``, ``db``, a table
``t``, sample media: see ``conftest.example_globals``), so an example shows only its point. An
example is skipped only when it needs a network or a hub, and says so in a comment.
"""

from __future__ import annotations

import doctest
import importlib
import pkgutil
import re
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

import lakehouse

ROOT = Path(__file__).resolve().parents[1]
MODULES = ["lakehouse", *sorted(m.name for m in pkgutil.walk_packages(lakehouse.__path__,
                                                                       "lakehouse."))]


def _python_blocks(text: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", text, re.S)


def test_readme_examples_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    blocks = _python_blocks((ROOT / "README.md").read_text())
    runnable = [b for b in blocks if not b.startswith("# not run")]
    assert len(runnable) >= 3, "the README lost its examples"
    namespace: dict[str, object] = {}
    exec(compile("import polars as pl\n", "README", "exec"), namespace)  # noqa: S102
    for i, block in enumerate(runnable):
        block = block.replace("/tmp/lakehouse-readme", str(tmp_path / "lakehouse-readme"))
        exec(compile(block, f"README block {i}", "exec"), namespace)  # noqa: S102


def test_readme_opens_with_the_two_commands() -> None:
    text = (ROOT / "README.md").read_text()
    first_block = re.search(r"```bash\n(.*?)```", text, re.S)
    assert first_block is not None
    commands = [line for line in first_block.group(1).splitlines()
                if line and not line.startswith("#")]
    ci = [line for line in (ROOT / ".ci" / "run").read_text().splitlines()
          if line and not line.startswith("#") and not line.startswith(("set ", "cd "))]
    assert commands[0].endswith("lakehouse demo")
    assert commands[1] == ci[-1], "README's test command and .ci/run differ"


@pytest.mark.parametrize("module", MODULES)
def test_docstring_examples(module: str, docstring_examples: Callable[[ModuleType], Any],
                            record_property: Callable[[str, object], None]) -> None:
    run = docstring_examples(importlib.import_module(module))
    record_property("examples_run", run.attempted)
    print(f"{module}: {run.attempted} examples run, {run.skipped} skipped")
    assert run.failed == 0, \
        f"{module}: {run.failed} of {run.attempted} examples failed\n{run.report}"
    assert run.attempted or not run.skipped, f"{module} has examples and none of them ran"


def _skipped_examples() -> list[tuple[str, str]]:
    found = []
    for module in MODULES:
        for test in doctest.DocTestFinder().find(importlib.import_module(module)):
            found += [(test.name, ex.source) for ex in test.examples
                      if ex.options.get(doctest.SKIP)]
    return found


def test_a_skipped_example_says_why() -> None:
    """``# doctest: +SKIP`` only after a comment giving the reason (a network, a hub)."""
    unexplained = [name for name, source in _skipped_examples()
                   if not re.search(r"#[^#\n]*\w[^#\n]*#\s*doctest:", source)]
    assert not unexplained, f"skipped examples without a reason: {unexplained}"


def _public_docs() -> dict[str, str]:
    """The docstrings of the public functions, classes and their public methods and properties,
    by name: ``lh.*`` (errors aside), the functions namespace, the built-in functions'
    expression methods (``t.title.str.upper()``, ``t.image.width``) and the trust settings."""
    from lakehouse import trust
    from lakehouse.exprs import registry
    from lakehouse.exprs.nodes import ColumnRef

    found: dict[str, Any] = {}
    owners = [(f"lh.{n}", getattr(lakehouse, n)) for n in lakehouse.__all__
              if not n.endswith(("Error", "Warning")) and n != "functions"]
    owners += [(f"lh.functions.{n}", getattr(lakehouse.functions, n))
               for n in lakehouse.functions.__all__]
    owners += [(f"trust.{n}", getattr(trust, n)) for n in ("trust", "module_trusted",
                                                            "model_trusted")]
    owners.append(("ColumnRef", ColumnRef))  # what t.<column> is
    for name, obj in owners:
        if isinstance(obj, type):
            found[name] = obj
            for attr, member in vars(obj).items():
                if attr.startswith("_") or attr in ("kind",):
                    continue
                if isinstance(member, property):  # its doc: its getter's, or its own
                    found[f"{name}.{attr}"] = member
                    continue
                member = getattr(member, "__func__", member)
                if callable(member):
                    found[f"{name}.{attr}"] = member
        elif callable(obj) and not isinstance(obj, lakehouse.ColumnType):
            found[name] = obj
    docs = {name: getattr(obj, "__doc__", None) or "" for name, obj in found.items()}
    for namespace in (registry.STRING, "media", "image", "video", "audio", "document"):
        docs.update({f"{namespace}.{m.name}": m.doc for m in registry.methods(namespace)})
    return docs


def test_every_public_function_and_method_has_an_example() -> None:
    """Each has a docstring saying what it does, with an example that runs (the test above)."""
    missing = [name for name, doc in _public_docs().items() if ">>>" not in doc]
    assert not missing, f"no docstring example: {missing}"

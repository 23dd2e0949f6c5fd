"""The README's examples and the library's docstring examples run, so they cannot drift."""

from __future__ import annotations

import doctest
import importlib
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCTEST_MODULES = ["lakehouse", "lakehouse.catalog", "lakehouse.udf"]


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


@pytest.mark.parametrize("module", DOCTEST_MODULES)
def test_docstring_examples(module: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = doctest.testmod(importlib.import_module(module), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0

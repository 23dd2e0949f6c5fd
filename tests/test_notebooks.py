"""The notebooks in notebooks/: each runs from top to bottom without an error in a fresh working
directory, checks its own results with asserts, shows what proves it worked, is stored with its
outputs cleared, and is listed in the README."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
IDS = [p.stem for p in NOTEBOOKS]

# text that a notebook's outputs hold only when its steps gave the right results
PROOF = {
    "quickstart": "spirited-away",      # a UDF's computed column, shown in a result
    "image_search": "<img src='data:image/png;base64,",   # results shown with thumbnails
    "rag": "clause is used for exception chaining",  # found in a document inserted later
    "versions": "revert",               # the history after a revert
    "video_search": "best match: bikes at 4.0 s",  # a frame of a video inserted later
}
MIN_ASSERTS = 4  # asserts, in code cells, on the results that matter


def _code_cells(notebook: nbformat.NotebookNode) -> list[nbformat.NotebookNode]:
    return [c for c in notebook.cells if c.cell_type == "code"]


def _outputs_text(notebook: nbformat.NotebookNode) -> str:
    parts = []
    for cell in _code_cells(notebook):
        for output in cell.get("outputs", []):
            if output.get("output_type") == "stream":
                parts.append(output.get("text", ""))
            for value in output.get("data", {}).values():
                parts.append(value if isinstance(value, str) else "")
    return "\n".join(parts)


def test_the_notebooks() -> None:
    assert sorted(IDS) == sorted(PROOF), "a notebook was added or removed: update PROOF"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_notebook_is_stored_clean(path: Path) -> None:
    notebook = nbformat.read(path, as_version=4)
    nbformat.validate(notebook)
    assert notebook.metadata["kernelspec"]["name"] == "python3"
    first = notebook.cells[0]
    assert first.cell_type == "markdown" and first.source.startswith("# "), "no title"
    code = _code_cells(notebook)
    assert code
    for cell in code:
        assert not cell.outputs and cell.execution_count is None, \
            f"{path.name}: store notebooks with their outputs cleared"
    asserts = sum(isinstance(node, ast.Assert)
                  for cell in code for node in ast.walk(ast.parse(cell.source)))
    assert asserts >= MIN_ASSERTS, f"{path.name}: {asserts} asserts"
    kinds = "".join("c" if c.cell_type == "code" else "m" for c in notebook.cells)
    assert "ccc" not in kinds, f"{path.name}: explain each step in a markdown cell"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_notebook_runs(path: Path, tmp_path: Path) -> None:
    notebook = nbformat.read(path, as_version=4)
    NotebookClient(notebook, timeout=300, kernel_name="python3",
                   resources={"metadata": {"path": str(tmp_path)}}).execute()
    errors = [o for c in _code_cells(notebook) for o in c.get("outputs", [])
              if o.get("output_type") == "error"]
    assert not errors
    assert all(c.execution_count is not None for c in _code_cells(notebook))
    assert PROOF[path.stem] in _outputs_text(notebook)
    # the lakehouse is made in the working directory, not beside the notebook
    assert (tmp_path / "nb_lakehouse").is_dir()


def test_readme_lists_every_notebook() -> None:
    readme = (ROOT / "README.md").read_text()
    section = re.search(r"^## Notebooks\n(.*?)(?=^## )", readme, re.S | re.M)
    assert section is not None, "README has no '## Notebooks' section"
    listed = set(re.findall(r"\(notebooks/([\w-]+\.ipynb)\)", section.group(1)))
    assert listed == {p.name for p in NOTEBOOKS}

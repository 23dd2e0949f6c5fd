"""engine="ray": backfills run as Ray tasks on a real local cluster, with the local results.

The session fixture ``ray_cluster`` (tests/ray_cluster.py) starts a Ray head and one worker
node, shared by every Ray test file. The test runner joins that cluster as a driver; tables are
computed once with engine="ray" and once in this process and compared (values, errors,
definitions, history), on a local folder and on the moto S3 server. The workers find the test
UDFs on their own PYTHONPATH and check them against the stored definitions as any other process
does.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest
from ray_cluster import ROOT, connect_to, table_content, table_definitions, table_history
from udfs_for_tests import fill_numbers
from udfs_for_tests.ray_udfs import KILL_AT, ModelChecks, logged_triple, odd_square

import lakehouse as lh
from lakehouse.exec import protocol, ray_engine
from lakehouse.exec.permissions import Permissions

pytestmark = pytest.mark.ray
ray = pytest.importorskip("ray", reason='needs the ray extra: pip install -e ".[ray]"')

@pytest.fixture
def pair(ray_cluster: str, lakehouse_root) -> tuple[lh.Table, lh.Table]:
    """The same numbers table (8 fragments) twice: one handle computes in this process, the
    other on the Ray cluster."""
    t = fill_numbers(connect_to(lakehouse_root))
    t_ray = connect_to(lakehouse_root, engine="ray").create_table("numbers_ray", {"n": lh.Int})
    for start in range(0, 800, 100):
        t_ray.insert([{"n": n} for n in range(start, start + 100)], progress=False)
    return t, t_ray


def test_a_backfill_on_ray_is_the_local_backfill(pair: tuple[lh.Table, lh.Table]) -> None:
    """Values, per-row errors, definitions and history: the same on Ray as in this process."""
    here, on_ray = pair
    assert len(on_ray.table_state().dataset.get_fragments()) == 8
    for t in (here, on_ray):
        r1 = t.add_computed_column(sq=odd_square(t.n), on_error="ignore", progress=False)
        r2 = t.add_computed_column(half=t.sq // 2, progress=False)
        assert (r1.rows_written, r1.rows_with_errors) == (800, 115)
        assert r2.rows_written == 800
    assert table_content(on_ray) == table_content(here)
    assert table_definitions(on_ray) == table_definitions(here)
    assert table_history(on_ray) == table_history(here)
    assert on_ray.jobs().height == 0  # the checkpoint is gone once committed


def test_a_recompute_on_ray_is_the_local_recompute(pair: tuple[lh.Table, lh.Table]) -> None:
    """recompute (some rows, then only the rows in error, with the columns that depend on
    them): the same rows, errors and history on Ray as in this process."""
    here, on_ray = pair
    for t in (here, on_ray):
        t.add_computed_column(sq=odd_square(t.n), on_error="ignore", progress=False)
        t.add_computed_column(half=t.sq // 2, progress=False)
        r1 = t.recompute("sq", where=t.n >= 650, progress=False)
        r2 = t.recompute("sq", errors_only=True, progress=False)
        assert (r1.rows_written, r1.rows_with_errors) == (150, 22)
        assert (r2.rows_written, r2.rows_with_errors) == (115, 115)
    assert table_content(on_ray) == table_content(here)
    assert table_history(on_ray) == table_history(here)


def test_a_failing_row_aborts_on_ray_as_locally(pair: tuple[lh.Table, lh.Table]) -> None:
    """on_error="abort": the same ComputeError (table, column, row), and nothing written."""
    messages = []
    for t in pair:
        version = t.version
        with pytest.raises(lh.ComputeError) as caught:
            t.add_computed_column(sq=odd_square(t.n), progress=False)
        messages.append(str(caught.value))
        assert t.version == version and "sq" not in t.column_names()
    assert messages[0] == messages[1].replace("numbers_ray", "numbers")
    assert "row 0" in messages[0]


def test_a_worker_killed_mid_backfill_only_its_fragment_is_computed_again(
        ray_cluster: str, ray_dir: Path, tmp_path: Path) -> None:
    """A worker process dies (SIGKILL) in the middle of a fragment: Ray runs that fragment's
    task again; every row is computed, stored once, and only that fragment twice."""
    calls = ray_dir / "calls.log"
    calls.unlink(missing_ok=True)
    (ray_dir / "killed").unlink(missing_ok=True)
    t = fill_numbers(lh.connect(tmp_path / "lake", engine="ray", maintenance=False))
    result = t.add_computed_column(tripled=logged_triple(t.n), progress=False)
    assert (ray_dir / "killed").exists(), "no worker was killed"
    assert result.rows_written == 800 and t.count() == 800
    assert t.order_by(t.n).select(t.tripled).collect()["tripled"].to_list() == \
        [3 * n for n in range(800)]
    logged = [int(v) for v in calls.read_text().split()]
    killed_fragment = KILL_AT // 100
    for n in range(800):
        expected = 2 if killed_fragment * 100 <= n <= KILL_AT else 1
        assert logged.count(n) == expected, n


def test_a_task_lost_past_its_retries_fails_and_the_same_call_resumes(
        ray_cluster: str, ray_dir: Path, tmp_path: Path) -> None:
    """With no retries, the killed worker's task is lost: EngineTaskError, nothing committed,
    and the fragments that finished are in the checkpoint; the same call again computes only
    the others."""
    calls = ray_dir / "calls.log"
    calls.unlink(missing_ok=True)
    (ray_dir / "killed").unlink(missing_ok=True)
    engine = lh.RayEngine(max_retries=0)
    t = fill_numbers(lh.connect(tmp_path / "lake", engine=engine, maintenance=False))
    version = t.version
    with pytest.raises(lh.EngineTaskError, match="run the same call again"):
        t.add_computed_column(tripled=logged_triple(t.n), progress=False)
    assert t.version == version and "tripled" not in t.column_names()
    assert t.jobs().height == 1
    first = {int(v) for v in calls.read_text().split()}
    calls.unlink()
    result = t.add_computed_column(tripled=logged_triple(t.n), progress=False)
    assert result.rows_written < 800 and t.jobs().height == 0
    again = {int(v) for v in calls.read_text().split()}
    assert set(range(0, KILL_AT // 100 * 100)) <= first and not again & set(range(100))
    assert t.order_by(t.n).select(t.tripled).collect()["tripled"].to_list() == \
        [3 * n for n in range(800)]


def test_a_udf_module_the_workers_cannot_import_says_how_to_ship_it(
        ray_cluster: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A UDF module importable here but not on the workers: UDFNotFoundError naming the
    module and Ray's runtime_env; nothing written."""
    package = tmp_path / "only_here"
    package.mkdir()
    (package / "shipped_udfs.py").write_text(
        "import lakehouse as lh\n\n\n@lh.udf\ndef plus_one(n: int) -> int:\n    return n + 1\n")
    monkeypatch.syspath_prepend(str(package))
    import shipped_udfs

    t = fill_numbers(lh.connect(tmp_path / "lake", engine="ray", maintenance=False))
    version = t.version
    with pytest.raises(lh.UDFNotFoundError) as caught:
        t.add_computed_column(m=shipped_udfs.plus_one(t.n), progress=False)
    message = str(caught.value)
    assert "'shipped_udfs'" in message and "runtime_env" in message and "py_modules" in message
    assert t.version == version and "m" not in t.column_names()


def test_the_commit_is_the_protocol_s_one_merge(ray_cluster: str, tmp_path: Path) -> None:
    """The driver commits once; no worker commits (the history has one 'add column')."""
    t = fill_numbers(lh.connect(tmp_path / "lake", engine="ray", maintenance=False))
    before = t.version
    t.add_computed_column(sq=odd_square(t.n), on_error="ignore", progress=False)
    assert t.version == before + 1
    assert table_history(t)[0][1] == "add column"  # the newest version


NO_CLUSTER = """\
import sys
{hide}
import lakehouse as lh
db = lh.connect(sys.argv[1], engine={engine})
t = db.create_table("n", {{"n": lh.Int}})
t.insert([{{"n": 1}}], progress=False)
try:
    t.add_computed_column(m=t.n + 1, progress=False)
except lh.Error as exc:
    print(type(exc).__name__, "|", exc, "|", t.column_names())
"""


@pytest.mark.parametrize(("hide", "engine", "error", "words"), [
    ("sys.modules['ray'] = None", '"ray"', "EngineNotInstalledError",
     'pip install "lakehouse[ray]"'),
    ("", "lh.RayEngine(address='127.0.0.1:1')", "EngineUnavailableError", "ray start --head"),
], ids=["ray-not-installed", "no-cluster"])
def test_ray_missing_or_unreachable_is_a_typed_error(tmp_path: Path, hide: str, engine: str,
                                                     error: str, words: str) -> None:
    """Without Ray (connect refuses, naming the extra) or without a reachable cluster (the
    backfill fails in seconds, the table unchanged), in a fresh process."""
    script = NO_CLUSTER.format(hide=hide, engine=engine)
    started = time.monotonic()
    out = subprocess.run([sys.executable, "-c", script, str(tmp_path / "lake")],
                         capture_output=True, text=True, timeout=120,
                         env={**os.environ, "RAY_ADDRESS": ""})
    assert time.monotonic() - started < 60
    text = out.stdout + out.stderr
    assert error in text and words in text, text
    if error == "EngineUnavailableError":
        assert "['n']" in out.stdout  # nothing written


def test_engine_names_one_of_local_or_ray(tmp_path: Path) -> None:
    with pytest.raises(lh.InvalidOptionError, match="RayEngine"):
        lh.connect(tmp_path, engine="spark")
    with pytest.raises(lh.InvalidOptionError, match="fragments_per_task"):
        lh.RayEngine(fragments_per_task=0)
    assert lh.connect(tmp_path, engine="local").location.engine is None


def _vectors(t: lh.Table) -> np.ndarray:
    """The stored vectors of the table's one embedding index, in the order of its texts."""
    stored = t.table_state().dataset.to_table().sort_by("text")
    (column,) = [c for c in stored.column_names if c.startswith("_lh_embedding")]
    return np.array(stored.column(column).to_pylist(), dtype=np.float32)


def _top3(t: lh.Table) -> list[str]:
    return t.order_by(t.text.similarity("a blue square"), asc=False).limit(3) \
        .select(t.text).collect()["text"].to_list()


@pytest.mark.slow
def test_an_embedding_index_built_and_replaced_on_ray_is_the_local_one(
        ray_cluster: str, lakehouse_root, minilm: lh.functions.EmbeddingFunction,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """add_embedding_index with the shipped CLIP, then if_exists="replace" with MiniLM, on a
    local folder and on S3: on Ray each call's vectors are computed in a model actor (which
    loads its model once), and the vectors (within 1e-5), searches, definitions and history
    after each call are the local engine's."""
    real = ray_engine._model_actors
    started: list[int] = []  # the model actors each backfill on Ray started

    def model_actors(*args: Any) -> list[Any]:
        actors = real(*args)
        started.append(len(actors))
        return actors

    monkeypatch.setattr(ray_engine, "_model_actors", model_actors)
    texts = [f"a {c} {s}" for c in ("red", "green", "blue") for s in ("circle", "square")]
    tables = []
    for engine in ("local", lh.RayEngine(model_actors=1)):
        t = connect_to(lakehouse_root, engine).create_table(f"shapes{len(tables)}",
                                                            {"text": lh.String})
        for text in texts:  # 6 fragments
            t.insert([{"text": text}], progress=False)
        tables.append(t)
    here, on_ray = tables
    for model, replace in ((lh.functions.clip(lh.functions.SHAPES_CLIP), "error"),
                           (minilm, "replace")):
        for t in tables:
            result = t.add_embedding_index("text", embedding=model, if_exists=replace,
                                           progress=False)
            assert result.rows_written == 6
        assert np.allclose(_vectors(on_ray), _vectors(here), atol=1e-5)
        assert _top3(on_ray) == _top3(here) and _top3(here)[0] == "a blue square"
        assert table_definitions(on_ray) == table_definitions(here)
        assert on_ray.table_definition.hidden[0].index["embedding"] == model.spec()
        assert table_history(on_ray) == table_history(here)
    assert _vectors(here).shape == (6, minilm.dim)
    assert started == [1, 1]  # the build and the replace, each in its model actor


def test_the_workers_allow_the_models_this_process_allowed_and_no_other(ray_cluster: str) -> None:
    """A hub model built here (allowed here) is refused by a Ray worker until the driver's
    permissions reach it with the work, then allowed there; a model this process never allowed
    stays refused on the worker with the fix named, whatever spec reaches it."""
    name = f"lakehouse-tests/hub-model-{uuid.uuid4().hex[:8]}"  # no worker has seen it yet
    spec = lh.functions.sentence_transformer(name).spec()  # describes it; downloads nothing
    other = {**spec, "model": f"{name}-not-allowed"}
    worker = ray.remote(ModelChecks).remote()  # one process: what it was granted stays
    try:
        before = ray.get(worker.refusals.remote([spec]))
        after = ray.get(worker.refusals.remote([spec, other], Permissions.held()))
    finally:
        ray.kill(worker)
    assert before[0] is not None and f"trusted_models=[{name!r}]" in before[0]
    assert after[0] is None
    assert after[1] is not None and f"trusted_models=[{name + '-not-allowed'!r}]" in after[1]


@pytest.mark.slow
def test_a_hub_model_allowed_here_builds_its_index_on_ray(ray_cluster: str,
                                                          tmp_path: Path) -> None:
    """add_embedding_index with a hub model this process allowed by building it (an open_clip
    architecture without pretrained weights: nothing to download) runs in a Ray actor, which
    loads the model under the driver's permissions; the index covers every row."""
    model = lh.functions.clip("ViT-S-32", pretrained=None)
    db = lh.connect(tmp_path, engine=lh.RayEngine(model_actors=1), maintenance=False)
    t = db.create_table("captions", {"text": lh.String})
    for text in ("a red circle", "a blue square"):
        t.insert([{"text": text}], progress=False)
    t.add_embedding_index("text", embedding=model, progress=False)
    stored = t.table_state().dataset.to_table()
    column = next(c for c in stored.column_names if c.startswith("_lh_embedding"))
    vectors = stored.column(column).to_pylist()
    assert len(vectors) == 2 and all(abs(sum(x * x for x in v) - 1) < 1e-3 for v in vectors)
    assert t.indexes().filter(pl.col("kind") == "embedding").height == 1


@pytest.mark.slow
def test_the_ray_benchmark_runs_quick(tmp_path: Path) -> None:
    """benchmarks/ray.py --quick: its own cluster, every measure in the JSON (the CLIP index
    in 1 and 2 actors too, a 4-picture build that is also the actors' start-up build, so that
    the run starts 3 model actors, not 6; the GPU actors only with a GPU), the Ray columns and
    vectors identical to the local ones."""
    out = tmp_path / "ray.json"
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "ray.py"), "--quick",
                           "--out", str(out), "--root", str(tmp_path)],
                          capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(out.read_text())
    ops = report["operations"]
    assert report["benchmark"] == "ray" and report["quick"] is True
    assert ops["identical"] is True
    for name in ("local_s", "ray_1_worker_s", "ray_2_workers_s", "small_local_s", "small_ray_s",
                 "small_ray_cold_s"):
        assert ops[name] > 0, name
    assert report["all_targets_met"] is (ops["speedup_met"] and ops["overhead_met"])
    assert "Ray, 2 workers" in proc.stdout
    for name in ("local_s", "1_actor_s", "2_actors_s", "1_actor_startup_s",
                 "2_actors_startup_s"):
        assert ops["clip"][name] > 0, name  # the shipped CLIP's index in 1 and 2 actors
    assert "CLIP index, 2 Ray actors" in proc.stdout
    assert ("num_gpus=1: skipped" in proc.stdout) is (report["machine"]["gpus"] == 0)


def test_optimize_compacts_on_ray_as_locally(ray_cluster: str, lakehouse_root,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """t.optimize(): Lance's compaction tasks run as Ray tasks; the driver commits the one
    'compact' Rewrite, and the table reads as the locally compacted one."""
    sent: list[int] = []
    on_ray = protocol.remote_compaction[0]
    monkeypatch.setattr(protocol, "remote_compaction",
                        [lambda ctx, tasks: sent.append(len(tasks)) or on_ray(ctx, tasks)])
    tables = []
    for engine in ("local", "ray"):
        t = connect_to(lakehouse_root, engine).create_table(f"small_{engine}", {"n": lh.Int})
        for start in range(0, 200, 10):
            t.insert([{"n": n} for n in range(start, start + 10)], progress=False)
        t.delete(where=t.n % 3 == 0)
        t.optimize(progress=False)
        assert len(t.table_state().dataset.get_fragments()) == 1
        tables.append(t)
    assert table_content(tables[0]) == table_content(tables[1])
    assert table_history(tables[0]) == table_history(tables[1])
    assert "compact" in [h[1] for h in table_history(tables[1])]
    assert sent and sent[0] >= 1  # only the Ray table's compaction went to the cluster
